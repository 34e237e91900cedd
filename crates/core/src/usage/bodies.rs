//! Optional request and response bodies of the call log (`logging.bodies`): redacted and cut
//! to size where they are captured, then offered to a bounded queue that a store task drains
//! into `call_bodies`. Unlike usage records, bodies are droppable: when the queue is full the
//! body is dropped and counted (`switchboard_log_rows_dropped_total`), never waited for.

use crate::metrics::Counter;
use serde_json::Value;
use std::collections::HashSet;
use tokio::sync::mpsc;

/// What replaces a redacted value or secret.
pub const REDACTED: &str = "[REDACTED]";

/// Key prefixes of provider and gateway secrets; followed by at least [`MIN_SECRET`] key
/// characters they are scrubbed wherever they appear.
const SECRET_PREFIXES: [&str; 4] = ["sk-", "AIza", "Bearer ", "bearer "];
const MIN_SECRET: usize = 16;

/// One call's bodies, ready to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallBody {
    pub request_id: String,
    pub started_at_ms: i64,
    pub request: Option<String>,
    pub response: Option<String>,
    /// A body was cut at `logging.max_body_bytes`.
    pub truncated: bool,
}

pub type BodyReceiver = mpsc::Receiver<CallBody>;

/// The sending side of the body queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct BodyQueue {
    tx: mpsc::Sender<CallBody>,
}

impl BodyQueue {
    pub fn channel(capacity: usize) -> (BodyQueue, BodyReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (BodyQueue { tx }, rx)
    }

    /// Queues `body` without waiting; `false` (and counted) when the queue is full or closed.
    pub fn offer(&self, body: CallBody) -> bool {
        match self.tx.try_send(body) {
            Ok(()) => true,
            Err(_) => {
                Counter::LogRowsDropped.increment();
                false
            }
        }
    }

    /// Bodies waiting.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Redacts logged bodies: configured JSON field names at any depth, then anything that looks
/// like a secret, plus the exact secrets given (provider API keys).
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    fields: HashSet<String>,
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(fields: &[String], secrets: Vec<String>) -> Redactor {
        Redactor {
            fields: fields.iter().cloned().collect(),
            secrets: secrets.into_iter().filter(|s| s.len() >= 8).collect(),
        }
    }

    /// A JSON body redacted field by field; any other text (SSE) line by line, each `data:`
    /// line that holds JSON redacted as JSON; secrets scrubbed everywhere.
    pub fn redact(&self, text: &str) -> String {
        let redacted = match serde_json::from_str::<Value>(text) {
            Ok(value) => self.json(value),
            Err(_) => text
                .split('\n')
                .map(|line| match line.strip_prefix("data: ") {
                    Some(data) => match serde_json::from_str::<Value>(data) {
                        Ok(value) => format!("data: {}", self.json(value)),
                        Err(_) => line.to_owned(),
                    },
                    None => line.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        self.scrub(&redacted)
    }

    fn json(&self, mut value: Value) -> String {
        self.fields_in(&mut value);
        value.to_string()
    }

    fn fields_in(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if self.fields.contains(key) {
                        *field = Value::String(REDACTED.to_owned());
                    } else {
                        self.fields_in(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.fields_in(v)),
            _ => {}
        }
    }

    /// Replaces configured secrets and key-like tokens with [`REDACTED`].
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        scrub_patterns(&out)
    }
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// `sk-...`, `sk-ant-...`, `AIza...` and `Bearer ...` followed by a long run of key characters.
fn scrub_patterns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for prefix in SECRET_PREFIXES {
            if let Some(after) = rest.strip_prefix(prefix) {
                let at_boundary = out.chars().last().is_none_or(|c| !key_char(c));
                let run = after.find(|c: char| !key_char(c)).unwrap_or(after.len());
                if at_boundary && run >= MIN_SECRET {
                    out.push_str(REDACTED);
                    rest = &after[run..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `text` cut to at most `max` bytes at a character boundary, and whether it was cut.
pub fn cut(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_secrets_are_redacted() {
        let r = Redactor::new(
            &["password".to_owned()],
            vec!["upstream-secret-1".to_owned()],
        );
        let body = r#"{"messages":[{"content":"my key is sk-ant-api03-abcdefghijklmnop and AIzaSyA1234567890abcdefgh","password":"hunter2"}],"x":"upstream-secret-1","short":"sk-1"}"#;
        let out = r.redact(body);
        assert!(!out.contains("sk-ant-api03"), "{out}");
        assert!(!out.contains("AIzaSy"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("upstream-secret-1"), "{out}");
        assert!(out.contains("sk-1"), "short strings are not secrets: {out}");
        let sse = "event: x\ndata: {\"password\":\"p\",\"t\":\"Bearer abcdefghijklmnopqrstu\"}\n\n";
        let out = r.redact(sse);
        assert!(out.starts_with("event: x\ndata: "), "{out}");
        assert!(
            !out.contains("\"p\"") && !out.contains("abcdefghijklmnop"),
            "{out}"
        );
    }

    #[test]
    fn cut_at_a_character_boundary() {
        assert_eq!(cut("héllo".to_owned(), 2), ("h".to_owned(), true));
        assert_eq!(cut("abc".to_owned(), 3), ("abc".to_owned(), false));
    }

    #[test]
    fn a_full_queue_drops() {
        let (q, _rx) = BodyQueue::channel(1);
        let body = CallBody {
            request_id: "r".into(),
            started_at_ms: 0,
            request: None,
            response: None,
            truncated: false,
        };
        assert!(q.offer(body.clone()));
        assert!(!q.offer(body));
        assert_eq!(q.depth(), 1);
    }
}
