//! Issue 6 tests: context (filled in by its author).
