//! Reading wire fixtures (`tests/fixtures/<family>/...`) of the crate under test.

use std::path::PathBuf;

/// The path of a fixture: `$CARGO_MANIFEST_DIR/tests/fixtures/<path>`. Cargo sets
/// `CARGO_MANIFEST_DIR` to the crate being tested when it runs tests, so this resolves against
/// the caller's crate, not the testkit's.
pub fn path(path: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    root.join("tests").join("fixtures").join(path)
}

/// Reads a fixture as text; an unreadable fixture reads as an empty string, and the error is
/// reported through [`try_read`] for callers that want it.
pub fn read(path: &str) -> String {
    try_read(path).unwrap_or_default()
}

/// Reads a fixture as text.
pub fn try_read(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(self::path(path))
}
