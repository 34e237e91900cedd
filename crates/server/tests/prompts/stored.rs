//! Issue 6 tests: stored (filled in by its author).
