//! Token counting before a call: for `/v1/messages/count_tokens`, the context-window check, the
//! token limits and budget reservations, and for estimating a reply's tokens when a provider
//! reports no usage.
//!
//! Which tokenizer depends on the model family (the upstream model name, any `provider/`
//! prefix ignored):
//! - `cl100k_base` for `gpt-3.5*`, `gpt-4`, `gpt-4-turbo*` and `text-embedding-3*` /
//!   `text-embedding-ada-002`: exact, these models use it.
//! - `o200k_base` for `gpt-4o*`, `gpt-4.1*`, `gpt-4.5*`, `gpt-5*`, `o1*`, `o3*`, `o4*`: exact.
//! - every other family (Claude, Gemini, Llama, Mistral, DeepSeek, ...): an *estimate*, the
//!   `o200k_base` count. Those tokenizers are not published as offline vocabularies (Anthropic
//!   and Google count only through an API call), and a modern 200k-entry BPE lands within
//!   roughly 10-20% of them on English text and code; the provider's reported usage, not this
//!   estimate, is what gets billed. [`TokenCount::exact`] says which case applies.
//!
//! The chat overheads (per message, reply primer, per image) are OpenAI's documented
//! constants for every family; images are counted at a flat rate because their size is not
//! known before the call. Encoders are built once, on first use.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use switchboard_types::{ChatRequest, ContentPart, Message};
use tiktoken_rs::CoreBPE;

/// Tokens added per message for the role and separators (OpenAI's documented chat overhead).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMER: u64 = 3;
/// Rough cost of one image; providers charge by size, which is unknown before the call.
const PER_IMAGE: u64 = 765;

/// A token count and whether it came from the model's own tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCount {
    pub tokens: u64,
    /// `true` when the model's own tokenizer was used (OpenAI families); `false` when the
    /// count is the `o200k_base` estimate for another family.
    pub exact: bool,
}

/// The BPE vocabularies this module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Encoding {
    Cl100k,
    O200k,
}

/// Which encoding counts `model`'s tokens, and whether that is the model's own.
fn encoding_for(model: &str) -> (Encoding, bool) {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let name = name.as_str();
    // An o-series reasoning model: `o1`, `o3-mini`, `o4-mini-2025-04-16`, not `omni-...`.
    let o_series = ["o1", "o3", "o4"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|r| r.is_empty() || r.starts_with('-'))
    });
    if o_series
        || ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5"]
            .iter()
            .any(|p| name.starts_with(p))
    {
        (Encoding::O200k, true)
    } else if [
        "gpt-4",
        "gpt-3.5",
        "text-embedding-3",
        "text-embedding-ada-002",
    ]
    .iter()
    .any(|p| name.starts_with(p))
    {
        (Encoding::Cl100k, true)
    } else {
        (Encoding::O200k, false)
    }
}

/// Each encoder, loaded at its first use (or by [`warm`]); `None` if its vocabulary failed to load.
fn cell(encoding: Encoding) -> &'static OnceLock<Option<CoreBPE>> {
    static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    match encoding {
        Encoding::O200k => &O200K,
        Encoding::Cl100k => &CL100K,
    }
}

fn encoder(encoding: Encoding) -> Option<&'static CoreBPE> {
    cell(encoding)
        .get_or_init(|| match encoding {
            Encoding::O200k => tiktoken_rs::o200k_base().ok(),
            Encoding::Cl100k => tiktoken_rs::cl100k_base().ok(),
        })
        .as_ref()
}

/// Loads, on a background thread, the encoders that counting for `models` (upstream model
/// names) will use, so that the first counted request does not wait for one (loading
/// `o200k_base` takes ~0.4 s). Encoders already loaded are not loaded again.
pub fn warm<'a>(models: impl IntoIterator<Item = &'a str>) {
    let mut encodings: Vec<Encoding> = models.into_iter().map(|m| encoding_for(m).0).collect();
    encodings.sort_unstable();
    encodings.dedup();
    if encodings.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("tokenizer-load".to_owned())
        .spawn(move || {
            for encoding in encodings {
                encoder(encoding);
            }
        });
    if let Err(error) = spawned {
        // Not fatal: the first counted request loads the encoder itself.
        tracing::warn!(%error, "cannot start the tokenizer loading thread");
    }
}

/// Counts with one encoding over a whole request.
#[derive(Clone, Copy)]
struct Counter(Encoding);

/// Texts whose count is remembered, at most. Conversations resend their whole history and
/// system prompt on every turn, and many calls share a system prompt: each text is tokenized
/// once (BPE with its regex pre-split costs microseconds for a short text, far more for a long
/// one; it was a quarter of the CPU of a request under a token limit) and looked up afterwards.
const REMEMBERED_TEXTS: usize = 16_384;

/// The remembered counts, keyed by encoding and a keyed 64-bit hash of the text (random keys
/// per process, so texts cannot be crafted to collide).
type Remembered = (quick_cache::sync::Cache<(Encoding, u64), u64>, RandomState);

fn remembered() -> &'static Remembered {
    static CACHE: OnceLock<Remembered> = OnceLock::new();
    CACHE.get_or_init(|| {
        (
            quick_cache::sync::Cache::new(REMEMBERED_TEXTS),
            RandomState::new(),
        )
    })
}

impl Counter {
    fn text(self, text: &str) -> u64 {
        let (cache, hasher) = remembered();
        let key = (self.0, hasher.hash_one(text));
        if let Some(tokens) = cache.get(&key) {
            return tokens;
        }
        let tokens = match encoder(self.0) {
            Some(bpe) => bpe.encode_ordinary(text).len() as u64,
            // The encoder's data ships inside the crate, so this only happens if it is corrupt:
            // fall back to the usual four characters per token.
            None => (text.chars().count() as u64).div_ceil(4),
        };
        cache.insert(key, tokens);
        tokens
    }

    fn parts(self, parts: &[ContentPart]) -> u64 {
        parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => self.text(text),
                ContentPart::Thinking { text, .. } => self.text(text),
                ContentPart::Image { .. } => PER_IMAGE,
            })
            .sum()
    }

    fn message(self, message: &Message) -> u64 {
        let calls: u64 = message
            .tool_calls
            .iter()
            .map(|c| self.text(&c.name) + self.text(&c.arguments))
            .sum();
        PER_MESSAGE + self.parts(&message.content) + calls
    }

    fn request(self, req: &ChatRequest) -> u64 {
        self.fixed(req) + req.messages.iter().map(|m| self.message(m)).sum::<u64>()
    }

    /// Everything but the messages: the system prompt, the tool definitions, the reply primer.
    fn fixed(self, req: &ChatRequest) -> u64 {
        let system = if req.system.is_empty() {
            0
        } else {
            PER_MESSAGE + self.parts(&req.system)
        };
        let tools: u64 = req
            .tools
            .iter()
            .map(|t| {
                self.text(&t.name)
                    + t.description.as_deref().map_or(0, |d| self.text(d))
                    + self.text(&t.parameters.to_string())
            })
            .sum();
        system + tools + REPLY_PRIMER
    }
}

/// A request's input tokens in parts, for fitting it into a context window: what every
/// version of the request keeps (system prompt, tools, reply primer), and each message's own.
/// `fixed + messages.sum()` is [`count_input_for`]'s count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub fixed: u64,
    pub messages: Vec<u64>,
}

impl Breakdown {
    pub fn total(&self) -> u64 {
        self.fixed + self.messages.iter().sum::<u64>()
    }
}

/// [`count_input_for`], message by message.
pub fn breakdown_for(model: &str, req: &ChatRequest) -> Breakdown {
    let counter = Counter(encoding_for(model).0);
    Breakdown {
        fixed: counter.fixed(req),
        messages: req.messages.iter().map(|m| counter.message(m)).collect(),
    }
}

/// Input tokens of a chat request to `model` (the upstream model name): system, messages and
/// tool definitions, with the tokenizer of `model`'s family (see the module docs).
pub fn count_input_for(model: &str, req: &ChatRequest) -> TokenCount {
    let (encoding, exact) = encoding_for(model);
    TokenCount {
        tokens: Counter(encoding).request(req),
        exact,
    }
}

/// Tokens of a plain text for `model` (the upstream model name), without any chat overhead:
/// for example a streamed reply whose provider reported no usage.
pub fn count_text_for(model: &str, text: &str) -> TokenCount {
    let (encoding, exact) = encoding_for(model);
    TokenCount {
        tokens: Counter(encoding).text(text),
        exact,
    }
}

/// Input tokens of a chat request with `o200k_base`, whatever the model: exact for current
/// OpenAI models, an estimate for the others. Prefer [`count_input_for`] when the upstream
/// model is known.
pub fn count_input(req: &ChatRequest) -> u64 {
    Counter(Encoding::O200k).request(req)
}

/// An upper bound on the input tokens that costs no tokenizing: no tokenizer makes more tokens
/// than bytes, plus the fixed overheads. Lets the context-window check skip counting for the
/// common short request.
pub fn upper_bound(req: &ChatRequest) -> u64 {
    fn bytes(parts: &[ContentPart]) -> u64 {
        parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } | ContentPart::Thinking { text, .. } => {
                    text.len() as u64
                }
                ContentPart::Image { .. } => PER_IMAGE,
            })
            .sum()
    }
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| {
            PER_MESSAGE
                + bytes(&m.content)
                + m.tool_calls
                    .iter()
                    .map(|c| (c.name.len() + c.arguments.len()) as u64)
                    .sum::<u64>()
        })
        .sum();
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            (t.name.len() + t.description.as_deref().map_or(0, str::len)) as u64
                + t.parameters.to_string().len() as u64
        })
        .sum();
    PER_MESSAGE + bytes(&req.system) + messages + tools + REPLY_PRIMER
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_types::Role;

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message::new(Role::User, vec![ContentPart::text(text)])],
            ..ChatRequest::default()
        }
    }

    #[test]
    fn remembered_counts_equal_fresh_ones_per_encoding() {
        let text = "A system prompt that every turn of a conversation sends again.";
        let fresh = tiktoken_rs::o200k_base()
            .unwrap()
            .encode_ordinary(text)
            .len() as u64;
        let counter = Counter(Encoding::O200k);
        assert_eq!(counter.text(text), fresh);
        assert_eq!(counter.text(text), fresh, "the remembered count");
        // The same text under the other encoding is its own entry.
        let cl100k = tiktoken_rs::cl100k_base()
            .unwrap()
            .encode_ordinary(text)
            .len() as u64;
        assert_eq!(Counter(Encoding::Cl100k).text(text), cl100k);
        assert_eq!(counter.text("A different text."), 4);
    }

    #[test]
    fn counts_with_tiktoken() {
        // "Hello world" is two tokens in o200k_base; plus message overhead and reply primer.
        assert_eq!(
            count_input(&request("Hello world")),
            2 + PER_MESSAGE + REPLY_PRIMER
        );
    }

    #[test]
    fn upper_bound_is_never_below_the_count() {
        for text in [
            "",
            "a",
            "Hello world",
            "ünïcödé 漢字 text with emoji 🎉",
            &"word ".repeat(500),
        ] {
            let req = request(text);
            assert!(upper_bound(&req) >= count_input(&req), "{text}");
            for model in ["gpt-4-turbo", "gpt-4o", "claude-sonnet-4-5"] {
                assert!(
                    upper_bound(&req) >= count_input_for(model, &req).tokens,
                    "{model}"
                );
            }
        }
    }

    #[test]
    fn warming_loads_the_encoders_of_the_models_in_the_background() {
        warm(["gpt-4", "gpt-4o-mini"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        for encoding in [Encoding::Cl100k, Encoding::O200k] {
            while cell(encoding).get().is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{encoding:?} not loaded"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(cell(encoding).get().unwrap().is_some());
        }
    }

    #[test]
    fn picks_the_encoding_by_model_family() {
        for model in [
            "gpt-4o",
            "gpt-4o-mini-2024-07-18",
            "openai/gpt-4.1-nano",
            "gpt-5-mini",
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "chatgpt-4o-latest",
        ] {
            assert_eq!(encoding_for(model), (Encoding::O200k, true), "{model}");
        }
        for model in [
            "gpt-4",
            "gpt-4-0613",
            "gpt-4-turbo-2024-04-09",
            "gpt-3.5-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
        ] {
            assert_eq!(encoding_for(model), (Encoding::Cl100k, true), "{model}");
        }
        for model in [
            "claude-sonnet-4-5",
            "models/gemini-2.5-pro",
            "llama-3.1-70b",
            "mistral-large-latest",
            "deepseek-chat",
            "omni-moderation-latest",
            "o10-fictional",
        ] {
            assert_eq!(encoding_for(model), (Encoding::O200k, false), "{model}");
        }
    }

    #[test]
    fn counts_with_the_family_encoder() {
        let text = "Grüße aus Köln: 東京タワー, ünïcödé, and some code: fn main() { println!(); }";
        let o200k = tiktoken_rs::o200k_base()
            .unwrap()
            .encode_ordinary(text)
            .len() as u64;
        let cl100k = tiktoken_rs::cl100k_base()
            .unwrap()
            .encode_ordinary(text)
            .len() as u64;
        assert_ne!(o200k, cl100k, "the sample must tell the encoders apart");
        let overhead = PER_MESSAGE + REPLY_PRIMER;
        assert_eq!(
            count_input_for("gpt-4o", &request(text)),
            TokenCount {
                tokens: o200k + overhead,
                exact: true
            }
        );
        assert_eq!(
            count_input_for("gpt-4-turbo", &request(text)),
            TokenCount {
                tokens: cl100k + overhead,
                exact: true
            }
        );
        assert_eq!(
            count_input_for("claude-haiku-4-5", &request(text)),
            TokenCount {
                tokens: o200k + overhead,
                exact: false
            }
        );
        assert_eq!(count_input(&request(text)), o200k + overhead);
        assert_eq!(
            count_text_for("gpt-3.5-turbo", text),
            TokenCount {
                tokens: cl100k,
                exact: true
            }
        );
        assert_eq!(
            count_text_for("gemini-2.5-flash", text),
            TokenCount {
                tokens: o200k,
                exact: false
            }
        );
        assert_eq!(count_text_for("gpt-5", "").tokens, 0);
    }

    #[test]
    fn the_breakdown_adds_up_to_the_count() {
        let mut req = request("Hello there, how are you?");
        req.system = vec![ContentPart::text("Be brief.")];
        req.messages.push(Message::new(
            Role::Assistant,
            vec![ContentPart::text("Fine, thanks.")],
        ));
        for model in ["gpt-4o", "gpt-4-turbo", "claude-sonnet-4-5"] {
            let parts = breakdown_for(model, &req);
            assert_eq!(parts.messages.len(), 2);
            assert_eq!(
                parts.total(),
                count_input_for(model, &req).tokens,
                "{model}"
            );
        }
    }

    #[test]
    fn counts_the_system_prompt_as_a_message() {
        let mut req = request("Hi");
        let base = count_input_for("gpt-4o", &req).tokens;
        req.system = vec![ContentPart::text("Be brief.")];
        let with_system = count_input_for("gpt-4o", &req).tokens;
        assert_eq!(
            with_system,
            base + PER_MESSAGE + count_text_for("gpt-4o", "Be brief.").tokens
        );
    }
}
