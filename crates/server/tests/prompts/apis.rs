//! Issue 6 tests: apis (filled in by its author).
