//! Issue 6 tests: workflows (filled in by its author).
