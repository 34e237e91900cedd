//! A validating walk over the top level of one JSON object that hands each member's key and
//! raw value bytes to the caller, without building anything.
//!
//! Why: a same-protocol answer goes back to the client byte for byte, and the gateway only
//! needs a handful of its top-level fields (id, model, usage, an in-band error). Deserialising
//! even a skeleton struct with serde still runs serde's visitor machinery over every byte of the
//! choices; this walk is a plain loop over the bytes and let the caller decode only the values
//! it wants (with serde, from their own small slices).
//!
//! It accepts exactly what `serde_json` accepts when it skips a value (`IgnoredAny`): strings
//! with valid escapes and no control characters (their UTF-8 is not checked, as serde does not
//! check it when skipping), numbers in JSON's grammar, `true`/`false`/`null`, any nesting depth;
//! whitespace as JSON defines it; nothing but whitespace after the object.

/// Why the walk stopped: what was expected, and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub what: &'static str,
    pub at: usize,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// One member of the top-level object.
pub(crate) struct Member<'a> {
    /// The key as written, without its quotes (escapes not decoded, UTF-8 not checked).
    pub key: &'a [u8],
    /// Whether the key holds a backslash escape (then it must be decoded to be compared).
    pub key_escaped: bool,
    /// The value as written, without surrounding whitespace.
    pub value: &'a [u8],
}

/// Walks the members of the object `body` holds, in order, calling `visit` for each. Stops at
/// the first error, the walk's own or `visit`'s.
pub(crate) fn for_each_member<'a, E: From<ScanError>>(
    body: &'a [u8],
    mut visit: impl FnMut(Member<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut s = Scanner {
        bytes: body,
        pos: 0,
    };
    s.skip_ws();
    s.expect(b'{', "expected a JSON object")?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.skip_ws();
            if s.peek() != Some(b'"') {
                return Err(s.error("expected a key (a string)").into());
            }
            let key_start = s.pos + 1;
            let key_escaped = s.string()?;
            let key = &body[key_start..s.pos - 1];
            s.skip_ws();
            s.expect(b':', "expected `:`")?;
            s.skip_ws();
            let value_start = s.pos;
            s.value()?;
            visit(Member {
                key,
                key_escaped,
                value: &body[value_start..s.pos],
            })?;
            s.skip_ws();
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.error("expected `,` or `}`").into()),
            }
        }
    }
    s.skip_ws();
    if s.pos != body.len() {
        return Err(s.error("trailing characters").into());
    }
    Ok(())
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// The open containers of a value being skipped: one bit per level (set for an object), in a
/// word while the nesting is shallow (always, in practice) and in a vector beyond.
struct Stack {
    bits: u128,
    depth: usize,
    deeper: Vec<bool>,
}

impl Stack {
    const INLINE: usize = 128;

    fn push(&mut self, object: bool) {
        if self.depth < Self::INLINE {
            let bit = 1u128 << self.depth;
            if object {
                self.bits |= bit;
            } else {
                self.bits &= !bit;
            }
        } else {
            self.deeper.push(object);
        }
        self.depth += 1;
    }

    /// The innermost open container: `Some(true)` for an object, `Some(false)` for an array.
    fn top(&self) -> Option<bool> {
        let index = self.depth.checked_sub(1)?;
        if index < Self::INLINE {
            Some(self.bits & (1u128 << index) != 0)
        } else {
            self.deeper.last().copied()
        }
    }

    fn pop(&mut self) {
        if self.depth > Self::INLINE {
            self.deeper.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, what: &'static str) -> ScanError {
        ScanError { what, at: self.pos }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips one string starting at its opening quote; tells whether it held an escape.
    fn string(&mut self) -> Result<bool, ScanError> {
        let mut i = self.pos + 1;
        let mut escaped = false;
        loop {
            i = find_special(self.bytes, i);
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    i += 1;
                    match self.bytes.get(i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                        Some(b'u') => {
                            let hex = self.bytes.get(i + 1..i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(ScanError {
                                    what: "invalid \\u escape",
                                    at: i,
                                });
                            }
                            i += 5;
                        }
                        _ => {
                            return Err(ScanError {
                                what: "invalid escape",
                                at: i,
                            })
                        }
                    }
                }
                Some(_) => {
                    return Err(ScanError {
                        what: "control character in a string",
                        at: i,
                    })
                }
                None => {
                    return Err(ScanError {
                        what: "unterminated string",
                        at: i,
                    })
                }
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips a number in JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Skips one value of any kind and depth, without recursion.
    fn value(&mut self) -> Result<(), ScanError> {
        let mut stack = Stack {
            bits: 0,
            depth: 0,
            deeper: Vec::new(),
        };
        loop {
            // A value starts here.
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(open @ (b'{' | b'[')) => {
                    self.pos += 1;
                    let object = open == b'{';
                    stack.push(object);
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        stack.pop();
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(_) => return Err(self.error("expected a value")),
                None => return Err(self.error("unexpected end of input")),
            }
            // A value ended: close containers until one takes another element.
            loop {
                let Some(object) = stack.top() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    Some(_) if object => return Err(self.error("expected `,` or `}`")),
                    Some(_) => return Err(self.error("expected `,` or `]`")),
                    None => return Err(self.error("unexpected end of input")),
                }
            }
        }
    }

    /// Skips `"key" :` inside an object.
    fn key(&mut self) -> Result<(), ScanError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a key (a string)"));
        }
        self.string()?;
        self.skip_ws();
        self.expect(b':', "expected `:`")
    }
}

/// The index of the first byte at or after `from` that ends a run of plain string bytes (`"`,
/// `\` or a control character), or the length when there is none. Eight bytes at a time (the
/// classic "has zero byte" bit trick): strings are most of a completion's bytes.
fn find_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut i = from;
    while let Some(word) = bytes.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set in each term when that byte is zero (below 0x20 for the
        // last); borrows only ever mark bytes above a marked one, so the lowest mark is exact.
        let marks = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if marks != 0 {
            // The lowest byte of a little-endian word is the first in memory.
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Decodes a string-or-null member value. Unescaped strings (nearly all ids and model names)
/// are copied as they are; anything else goes through serde for its exact rules.
pub(crate) fn opt_string(value: &[u8]) -> Result<Option<String>, serde_json::Error> {
    if let [b'"', inner @ .., b'"'] = value {
        if !inner.contains(&b'\\') {
            if let Ok(text) = std::str::from_utf8(inner) {
                return Ok(Some(text.to_owned()));
            }
        }
    }
    serde_json::from_slice(value)
}

/// Up to this many digits, a decimal number fits any 64-bit integer.
const SAFE_DIGITS: usize = 18;

/// A plain decimal integer (`0`, or digits without a leading zero), short enough not to
/// overflow; `None` sends the value to serde, which knows every other case.
fn plain_integer(digits: &[u8]) -> Option<u64> {
    let plain = !digits.is_empty()
        && digits.len() <= SAFE_DIGITS
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0');
    plain.then(|| {
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
    })
}

/// Decodes an integer-or-null member value; plain short integers without serde.
pub(crate) fn opt_i64(value: &[u8]) -> Result<Option<i64>, serde_json::Error> {
    let (negative, digits) = match value {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, value),
    };
    match plain_integer(digits).and_then(|n| i64::try_from(n).ok()) {
        // serde reads `-0` as the float -0.0 (an error for an i64): its call.
        Some(0) if negative => serde_json::from_slice(value),
        Some(n) if negative => Ok(Some(-n)),
        Some(n) => Ok(Some(n)),
        None => serde_json::from_slice(value),
    }
}

/// Decodes an unsigned-integer-or-null member value; plain short integers without serde.
pub(crate) fn opt_u64(value: &[u8]) -> Result<Option<u64>, serde_json::Error> {
    match plain_integer(value) {
        Some(n) => Ok(Some(n)),
        None => serde_json::from_slice(value),
    }
}

/// Finds which of `fields` a member's key names, as serde's derive would: escapes decoded, and
/// a key that is not valid UTF-8 (or whose escapes do not form a string) refused. `Ok(None)`
/// for a key that is none of them.
pub(crate) fn field_index(member: &Member<'_>, fields: &[&str]) -> Result<Option<usize>, String> {
    if member.key_escaped {
        let Ok(key) = serde_json::from_slice::<String>(&quoted(member.key)) else {
            return Err("a key that is not a valid string".to_owned());
        };
        return Ok(fields.iter().position(|f| *f == key));
    }
    if let Some(index) = fields.iter().position(|f| f.as_bytes() == member.key) {
        return Ok(Some(index));
    }
    if !member.key.is_ascii() && std::str::from_utf8(member.key).is_err() {
        return Err("a key that is not valid UTF-8".to_owned());
    }
    Ok(None)
}

fn quoted(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.push(b'"');
    out.extend_from_slice(inner);
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the walk accepts the body, and the members it saw (keys and values as text).
    fn walk(body: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut seen = Vec::new();
        for_each_member(body.as_bytes(), |m| {
            seen.push((
                String::from_utf8_lossy(m.key).into_owned(),
                String::from_utf8_lossy(m.value).into_owned(),
            ));
            Ok::<(), ScanError>(())
        })?;
        Ok(seen)
    }

    #[test]
    fn members_come_with_their_raw_values() {
        let seen =
            walk(r#" { "a" : 1 , "b":{"c":[1,2,{"d":null}]} ,"e":"x\"y", "f": [ ] } "#).unwrap();
        assert_eq!(
            seen,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), r#"{"c":[1,2,{"d":null}]}"#.into()),
                ("e".into(), r#""x\"y""#.into()),
                ("f".into(), "[ ]".into()),
            ]
        );
        assert_eq!(walk("{}").unwrap(), vec![]);
    }

    #[test]
    fn agrees_with_serde_on_what_is_json() {
        let cases = [
            r#"{"a":1}"#,
            r#"{"a":-0.5e+7}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":.5}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":1} x"#,
            r#"{"a":1}  "#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"{"a":"#,
            r#"{"a":"x"#,
            "",
            "[]",
            "null",
            r#"{"a":{"b":{"c":[[[[]]]]}}}"#,
        ];
        for case in cases {
            let serde = serde_json::from_str::<
                std::collections::BTreeMap<String, serde::de::IgnoredAny>,
            >(case);
            assert_eq!(walk(case).is_ok(), serde.is_ok(), "{case}");
        }
    }

    #[test]
    fn nesting_has_no_limit_but_must_balance() {
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
        assert!(walk(&deep).is_ok());
        let unbalanced = format!(r#"{{"a":{}1{}}}"#, "[".repeat(300), "]".repeat(299));
        assert!(walk(&unbalanced).is_err());
        let mixed = format!(
            r#"{{"a":{}1{}}}"#,
            r#"[{"k":"#.repeat(200),
            "}]".repeat(200)
        );
        assert!(walk(&mixed).is_ok());
    }

    #[test]
    fn special_bytes_are_found_at_any_offset() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    // Non-ASCII and 0x20 are plain.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', 0x20, 0xc3, 0xa9, 0x7f, 0x80][i % 6];
                    }
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(find_special(&bytes, 0), at, "{len} {at} {special}");
                    assert_eq!(find_special(&bytes, at), at, "{len} {at} {special}");
                }
            }
            assert_eq!(find_special(&vec![b'x'; len], 0), len);
        }
    }

    #[test]
    fn values_decode_like_serde() {
        assert_eq!(opt_string(br#""abc""#).unwrap(), Some("abc".into()));
        assert_eq!(opt_string(br#""a\nb""#).unwrap(), Some("a\nb".into()));
        assert_eq!(opt_string(b"null").unwrap(), None);
        assert!(opt_string(b"12").is_err());
        assert!(opt_string(b"\"\xff\"").is_err());
        assert_eq!(opt_i64(b"1700000000").unwrap(), Some(1_700_000_000));
        assert_eq!(opt_i64(b"0").unwrap(), Some(0));
        assert_eq!(opt_i64(b"-5").unwrap(), Some(-5));
        assert_eq!(opt_i64(b"null").unwrap(), None);
        assert!(opt_i64(b"1.5").is_err());
        assert!(opt_i64(b"\"1\"").is_err());
        assert_eq!(opt_i64(b"9223372036854775807").unwrap(), Some(i64::MAX));
        assert_eq!(opt_i64(b"-9223372036854775808").unwrap(), Some(i64::MIN));
        assert!(opt_i64(b"9223372036854775808").is_err());
        assert!(opt_i64(b"-0").is_err(), "serde reads -0 as a float");
        assert!(opt_i64(b"-01").is_err());
        assert_eq!(opt_u64(b"18446744073709551615").unwrap(), Some(u64::MAX));
        assert!(opt_u64(b"18446744073709551616").is_err());
        assert!(opt_u64(b"-1").is_err());
        assert!(opt_u64(b"1e2").is_err());
        assert_eq!(opt_u64(b"null").unwrap(), None);
        assert_eq!(opt_u64(b"42").unwrap(), Some(42));
    }
}
