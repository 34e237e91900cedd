//! The settings of each provider kind, as written under `providers:` in the config file
//! (`type:` picks the variant). Adding a provider adds one variant here.

use serde::Deserialize;
use switchboard_types::Secret;

/// One provider entry of the config file. API keys are [`Secret`]s, so that Debug of a config
/// never prints them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderSettings {
    /// OpenAI, or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, Groq,
    /// Mistral, DeepSeek, Together, OpenRouter) through `base_url`.
    Openai {
        /// Includes `/v1`, as the official SDK takes it. Default `https://api.openai.com/v1`.
        base_url: Option<String>,
        api_key: Option<Secret>,
        organization: Option<String>,
        /// Extra headers sent on every request.
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
    },
    AzureOpenai {
        /// The resource root, e.g. `https://x.openai.azure.com`.
        base_url: String,
        api_key: Secret,
        /// Default `2024-10-21`.
        api_version: Option<String>,
        /// Free-form region label, for routing and reporting.
        region: Option<String>,
    },
    Anthropic {
        /// The host root. Default `https://api.anthropic.com`.
        base_url: Option<String>,
        api_key: Secret,
        /// `anthropic-version` header. Default `2023-06-01`.
        version: Option<String>,
    },
    Gemini {
        /// The host root. Default `https://generativelanguage.googleapis.com`.
        base_url: Option<String>,
        api_key: Secret,
    },
    /// Built-in deterministic provider for the demo, tests and benchmarks: echoes the last user
    /// message.
    Mock {
        /// Delay before the answer (or the first chunk) in milliseconds.
        #[serde(default)]
        latency_ms: u64,
        /// How many content chunks a stream has. Default 8.
        chunks: Option<u32>,
        /// Delay between stream chunks in milliseconds.
        #[serde(default)]
        chunk_delay_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::ProviderSettings;

    #[test]
    fn debug_never_shows_api_keys() {
        let settings: ProviderSettings =
            serde_yaml::from_str("{ type: anthropic, api_key: sk-ant-very-secret }").unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("*****"));
    }
}
