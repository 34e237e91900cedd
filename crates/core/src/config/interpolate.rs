//! `${VAR}` / `${VAR:-default}` expansion of the config text, before YAML parsing, one line at a
//! time so that every line keeps its number. Columns move when a value is longer or shorter
//! than its `${...}`; each substitution is recorded so positions found in the expanded text can
//! be mapped back to the file the user wrote. `$${` is a literal `${`. Comments are left alone
//! (a commented-out `# api_key: ${OLD_KEY}` must not fail the load), but inside a block scalar
//! (`key: |`) a `#` is text. A value spanning several lines is refused: it would break the
//! line-by-line mapping and the YAML around it. The values read from the environment are kept
//! so that error messages can be scrubbed of them: they are often secrets.
//!
//! The loader uses [`expand`]; everything else that reads config-shaped text (config-as-code
//! documents, the `database:` of a file read by the CLI) uses [`expand_text`], so that there is
//! one set of rules. Its [`Escapes::Keep`] mode exists for text that is expanded twice: once on
//! the caller's side with the caller's environment, once more by the server.

use super::locate::Pos;

/// What to do with `$${` and with `${` inside substituted values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escapes {
    /// The text will be expanded again later: keep `$${`, and escape a `${` found inside a
    /// substituted value as `$${`, so that the second expansion reads both as literals instead of
    /// expanding them with its own environment.
    Keep,
    /// Final expansion: `$${` becomes `${`, values are copied as they are.
    Resolve,
}

/// One expansion problem, at a 1-based position of the original text. The message names
/// variables but never quotes their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Expands `text`, reading variables through `env`, with the config file's rules. Every problem
/// is collected; the text is returned only when there are none.
pub fn expand_text(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    escapes: Escapes,
) -> Result<String, Vec<ExpandProblem>> {
    let expanded = expand_with(text, env, escapes);
    if expanded.problems.is_empty() {
        return Ok(expanded.text);
    }
    Err(expanded
        .problems
        .into_iter()
        .map(|(pos, message)| ExpandProblem {
            line: pos.line,
            column: pos.column,
            message,
        })
        .collect())
}

/// The expanded text and what is needed to report problems against the original.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    /// Problems of the expansion itself, at positions of the original text.
    pub(crate) problems: Vec<(Pos, String)>,
    /// Values taken from the environment, to be redacted from every message.
    pub(crate) secrets: Vec<String>,
    /// Per line (index 0 = line 1): the substitutions made, in order.
    lines: Vec<Vec<Sub>>,
}

/// One substitution: `orig_len` characters at `orig_start` became `exp_len` at `exp_start`
/// (0-based character columns).
#[derive(Clone, Copy, Debug)]
struct Sub {
    exp_start: usize,
    exp_len: usize,
    orig_start: usize,
    orig_len: usize,
}

impl Expanded {
    /// Maps a position of the expanded text to the original text. A position inside a
    /// substituted value maps to its `${`.
    pub(crate) fn original(&self, pos: Pos) -> Pos {
        let Some(subs) = pos.line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            return pos;
        };
        let col = pos.column.saturating_sub(1);
        let mut shifted = col;
        for sub in subs {
            if col < sub.exp_start {
                break;
            }
            if col < sub.exp_start + sub.exp_len {
                return Pos {
                    line: pos.line,
                    column: sub.orig_start + 1,
                };
            }
            shifted = col + (sub.orig_start + sub.orig_len) - (sub.exp_start + sub.exp_len);
        }
        Pos {
            line: pos.line,
            column: shifted + 1,
        }
    }
}

/// Expands `text`, reading variables through `env`. Never fails: problems are collected, and a
/// variable that cannot be expanded becomes the empty string so that parsing can go on and
/// report everything else.
pub(crate) fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Expanded {
    expand_with(text, env, Escapes::Resolve)
}

/// [`expand`] with a choice of what `$${` and `${` inside values become.
fn expand_with(text: &str, env: &dyn Fn(&str) -> Option<String>, escapes: Escapes) -> Expanded {
    let mut out = Expanded::default();
    // Indentation of the line that opened a block scalar (`key: |`), while inside it.
    let mut block_indent: Option<usize> = None;
    for (index, line) in text.split('\n').enumerate() {
        let indent = line.chars().take_while(|c| *c == ' ').count();
        let in_block = match block_indent {
            Some(open) if line.trim().is_empty() || indent > open => true,
            _ => {
                block_indent = None;
                false
            }
        };
        if index > 0 {
            out.text.push('\n');
        }
        let comment_at = expand_line(line, index + 1, in_block, env, escapes, &mut out);
        if !in_block && opens_block_scalar(&line[..comment_at]) {
            block_indent = Some(indent);
        }
    }
    out
}

/// Expands one line into `out`; returns the byte offset where a comment starts (or the length).
fn expand_line(
    line: &str,
    line_no: usize,
    in_block: bool,
    env: &dyn Fn(&str) -> Option<String>,
    escapes: Escapes,
    out: &mut Expanded,
) -> usize {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut subs = Vec::new();
    let mut exp_col = 0;
    let mut quote: Option<char> = None;
    let mut i = 0;
    let mut comment_at = line.len();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    while let Some((byte, c)) = chars.get(i).copied() {
        let prev = i.checked_sub(1).and_then(at);
        if !in_block && quote.is_none() && c == '#' && prev.is_none_or(char::is_whitespace) {
            // A comment: copied as written, never expanded.
            comment_at = byte;
            out.text.push_str(&line[byte..]);
            break;
        }
        if c == '$' && at(i + 1) == Some('$') && at(i + 2) == Some('{') {
            let literal = match escapes {
                Escapes::Keep => "$${",
                Escapes::Resolve => "${",
            };
            out.text.push_str(literal);
            subs.push(Sub {
                exp_start: exp_col,
                exp_len: literal.len(),
                orig_start: i,
                orig_len: 3,
            });
            exp_col += literal.len();
            i += 3;
            continue;
        }
        if c == '$' && at(i + 1) == Some('{') {
            let pos = Pos {
                line: line_no,
                column: i + 1,
            };
            let Some(close) = (i + 2..chars.len()).find(|j| at(*j) == Some('}')) else {
                out.problems.push((
                    pos,
                    "unterminated `${`: close it with `}`, or write `$${` for a literal `${`"
                        .to_owned(),
                ));
                out.text.push_str(&line[byte..]);
                break;
            };
            let inner: String = chars[i + 2..close].iter().map(|(_, c)| *c).collect();
            let value = lookup(&inner, pos, env, out).map(|value| match escapes {
                Escapes::Keep => value.replace("${", "$${"),
                Escapes::Resolve => value,
            });
            let value = value.unwrap_or_else(|| {
                // A stand-in for a value that could not be read. Where the `${...}` is a whole
                // unquoted scalar, `""` keeps it a string (an empty one would read as null and
                // produce a second, confusing type error).
                let before = prev.is_none_or(|p| p.is_whitespace() || "[{,:-".contains(p));
                let after = at(close + 1).is_none_or(|n| n.is_whitespace() || ",]}#".contains(n));
                if quote.is_none() && before && after {
                    "\"\"".to_owned()
                } else {
                    String::new()
                }
            });
            let exp_len = value.chars().count();
            out.text.push_str(&value);
            subs.push(Sub {
                exp_start: exp_col,
                exp_len,
                orig_start: i,
                orig_len: close + 1 - i,
            });
            exp_col += exp_len;
            i = close + 1;
            continue;
        }
        match quote {
            Some('"') if c == '\\' => {
                // An escaped character inside double quotes: copy both.
                out.text.push(c);
                exp_col += 1;
                i += 1;
                if let Some(next) = at(i) {
                    out.text.push(next);
                    exp_col += 1;
                    i += 1;
                }
                continue;
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'')
                && prev.is_none_or(|p| p.is_whitespace() || "[{,:-?".contains(p)) =>
            {
                quote = Some(c);
            }
            None => {}
        }
        out.text.push(c);
        exp_col += 1;
        i += 1;
    }
    out.lines.push(subs);
    comment_at
}

/// The value of one `${...}` body (`NAME` or `NAME:-default`); `None` (and a problem) when it
/// has none.
fn lookup(
    inner: &str,
    pos: Pos,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Option<String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        out.problems.push((
            pos,
            format!("`${{{inner}}}`: `{name}` is not a valid environment variable name"),
        ));
        return None;
    }
    // As in the shell, `:-` also applies when the variable is set but empty.
    let value = match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
        (Some(v), _) => {
            out.secrets.push(v.clone());
            v
        }
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            out.problems.push((
                pos,
                format!(
                    "environment variable `{name}` is not set (write `${{{name}:-default}}` to \
                     give a default)"
                ),
            ));
            return None;
        }
    };
    if value.contains(['\n', '\r']) {
        out.problems.push((
            pos,
            format!("the value of `{name}` spans several lines, which is not supported here"),
        ));
        return None;
    }
    Some(value)
}

/// Whether a line (comment removed) ends with a block scalar header such as `key: |` or `- >-`.
fn opens_block_scalar(line: &str) -> bool {
    let trimmed = line.trim_end();
    let body = trimmed.trim_end_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    let Some(rest) = body.strip_suffix(['|', '>']) else {
        return false;
    };
    rest.is_empty() || rest.ends_with([' ', '\t'])
}
