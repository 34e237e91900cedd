//! Issue 6 tests: chat_prompt (filled in by its author).
