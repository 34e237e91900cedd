//! Token usage, normalised across providers.

use serde::{Deserialize, Serialize};

/// Token counts of one call, normalised so that the same numbers mean the same thing whichever
/// provider served it.
///
/// Invariants (converters must uphold them):
/// - `input_tokens` is the whole prompt, *including* cache reads and cache writes. OpenAI's
///   `prompt_tokens` already is; Anthropic's `input_tokens` excludes both cache counts, so its
///   converter adds them.
/// - `output_tokens` is everything generated, *including* reasoning tokens.
/// - `cached_input_tokens <= input_tokens`, `cache_write_tokens <= input_tokens`,
///   `reasoning_tokens <= output_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic `cache_creation_input_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on hidden reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Input tokens that were neither read from nor written to a cache (Anthropic's
    /// `input_tokens`).
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_tokens)
    }

    /// Merges a later partial report into this one. Streams report usage in pieces (Anthropic
    /// sends input in `message_start` and output in `message_delta`); a non-zero later value
    /// wins.
    pub fn merge(&mut self, later: &Usage) {
        fn pick(a: &mut u64, b: u64) {
            if b != 0 {
                *a = b;
            }
        }
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(&mut self.cached_input_tokens, later.cached_input_tokens);
        pick(&mut self.cache_write_tokens, later.cache_write_tokens);
        pick(&mut self.reasoning_tokens, later.reasoning_tokens);
    }
}
