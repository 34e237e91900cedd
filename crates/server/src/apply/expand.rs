//! `${VAR}` / `${VAR:-default}` expansion of a config-as-code document, with the same rules as
//! the config file's (`switchboard_core::config`): `$${` is a literal `${`, comments are left
//! alone (also inside block scalars `|`/`>` a `#` is text), and a value spanning several lines is
//! refused. The core's expander is private to config loading and returns no text, so this is a
//! small twin of it; `switchboard apply` uses it on the caller's side (with the caller's
//! environment, keeping `$${` so that the server reads a literal), and the server uses it to
//! read documents (with no environment at all: the server's own variables must never leak into
//! stored config) and its own file (with its environment).

/// What to do with `$${` and with `${` inside substituted values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escapes {
    /// The text will be expanded again (by the server): keep `$${` and escape `${` in values.
    Keep,
    /// Final expansion: `$${` becomes `${`.
    Resolve,
}

/// One expansion problem, 1-based position in the original text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Expands `text` with `env`; every problem is collected (a variable that cannot be expanded
/// becomes the empty string).
pub fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    escapes: Escapes,
) -> Result<String, Vec<ExpandProblem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
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
            out.push('\n');
        }
        let line_out = expand_line(line, index + 1, in_block, env, escapes, &mut problems);
        if !in_block && opens_block_scalar(strip_comment(line)) {
            block_indent = Some(indent);
        }
        out.push_str(&line_out);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn expand_line(
    line: &str,
    line_no: usize,
    in_block: bool,
    env: &dyn Fn(&str) -> Option<String>,
    escapes: Escapes,
    problems: &mut Vec<ExpandProblem>,
) -> String {
    let chars: Vec<char> = line.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while let Some(c) = at(i) {
        let prev = i.checked_sub(1).and_then(at);
        if !in_block && quote.is_none() && c == '#' && prev.is_none_or(char::is_whitespace) {
            out.extend(&chars[i..]);
            break;
        }
        if c == '$' && at(i + 1) == Some('$') && at(i + 2) == Some('{') {
            out.push_str(match escapes {
                Escapes::Keep => "$${",
                Escapes::Resolve => "${",
            });
            i += 3;
            continue;
        }
        if c == '$' && at(i + 1) == Some('{') {
            let Some(close) = (i + 2..chars.len()).find(|j| at(*j) == Some('}')) else {
                problems.push(ExpandProblem {
                    line: line_no,
                    column: i + 1,
                    message: "unterminated `${`: close it with `}`, or write `$${` for a literal `${`"
                        .to_owned(),
                });
                out.extend(&chars[i..]);
                break;
            };
            let inner: String = chars[i + 2..close].iter().collect();
            match lookup(&inner, env) {
                Ok(value) => match escapes {
                    Escapes::Keep => out.push_str(&value.replace("${", "$${")),
                    Escapes::Resolve => out.push_str(&value),
                },
                Err(message) => problems.push(ExpandProblem {
                    line: line_no,
                    column: i + 1,
                    message,
                }),
            }
            i = close + 1;
            continue;
        }
        match quote {
            Some('"') if c == '\\' => {
                out.push(c);
                if let Some(next) = at(i + 1) {
                    out.push(next);
                }
                i += 2;
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
        out.push(c);
        i += 1;
    }
    out
}

/// The value of one `${...}` body, or the problem.
fn lookup(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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
        return Err(format!(
            "`${{{inner}}}`: `{name}` is not a valid environment variable name"
        ));
    }
    let value = match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
        (Some(v), _) => v,
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set (write `${{{name}:-default}}` to give \
                 a default)"
            ))
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "the value of `{name}` spans several lines, which is not supported here"
        ));
    }
    Ok(value)
}

/// The line up to a comment (a `#` after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev: Option<char> = None;
    for (byte, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '#' && prev.is_none_or(char::is_whitespace) => return &line[..byte],
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
        prev = Some(c);
    }
    line
}

/// Whether a line ends with a block scalar header such as `key: |` or `- >-`.
fn opens_block_scalar(line: &str) -> bool {
    let trimmed = line.trim_end();
    let body = trimmed.trim_end_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    let Some(rest) = body.strip_suffix(['|', '>']) else {
        return false;
    };
    rest.is_empty() || rest.ends_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".to_owned()),
            "TRICKY" => Some("a${b".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_escapes() {
        let text = "a: ${KEY}\nb: ${NOPE:-x}\nc: $${LIT}\nd: ${EMPTY:-y} # ${NOPE}\ne: ${TRICKY}";
        assert_eq!(
            expand(text, &env, Escapes::Resolve).as_deref(),
            Ok("a: sk-1\nb: x\nc: ${LIT}\nd: y # ${NOPE}\ne: a${b")
        );
        assert_eq!(
            expand(text, &env, Escapes::Keep).as_deref(),
            Ok("a: sk-1\nb: x\nc: $${LIT}\nd: y # ${NOPE}\ne: a$${b")
        );
    }

    #[test]
    fn reports_unset_variables_with_their_place() {
        let Err(problems) = expand("x: 1\ny: \"${NOPE}\"", &env, Escapes::Resolve) else {
            panic!("expected a problem");
        };
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].line, problems[0].column), (2, 5));
        assert!(problems[0].message.contains("`NOPE` is not set"));
    }

    #[test]
    fn block_scalars_keep_hashes() {
        let text = "p: |\n  # ${KEY}\nq: 1";
        assert_eq!(
            expand(text, &env, Escapes::Resolve).as_deref(),
            Ok("p: |\n  # sk-1\nq: 1")
        );
    }
}
