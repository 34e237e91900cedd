//! Builds a provider from its settings: the one `match` on provider kind in the codebase. Adding
//! a provider adds one arm here (and its file, its settings variant, its conformance line).

use crate::anthropic::{self, Anthropic};
use crate::azure::Azure;
use crate::gemini::{self, Gemini};
use crate::mock::Mock;
use crate::openai::{self, BadHeader, OpenAi};
use crate::transport::{Secret, Transport};
use crate::{Provider, ProviderSettings};
use std::sync::Arc;

/// A provider's settings cannot be turned into a working client. Messages name the provider and
/// the field, never a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("provider `{provider}`: base_url `{url}` is not a valid http(s) URL: {reason}")]
    InvalidBaseUrl {
        provider: String,
        url: String,
        reason: String,
    },
    #[error("provider `{provider}`: the `{header}` header has an invalid name or value")]
    InvalidHeader { provider: String, header: String },
    #[error("provider `{provider}`: `{field}` must not be empty")]
    Empty {
        provider: String,
        field: &'static str,
    },
}

/// Builds the provider named `name` (the key under `providers:`, used in errors) from its
/// settings. Remote providers share the process-wide pooled transport.
pub fn build(name: &str, settings: &ProviderSettings) -> Result<Arc<dyn Provider>, BuildError> {
    let transport = Transport::shared();
    let bad_header = |BadHeader(header)| BuildError::InvalidHeader {
        provider: name.to_owned(),
        header,
    };
    let provider: Arc<dyn Provider> = match settings {
        ProviderSettings::Openai {
            base_url,
            api_key,
            organization,
            headers,
        } => {
            let base_url = checked_url(name, base_url.as_deref(), openai::DEFAULT_BASE_URL)?;
            Arc::new(
                OpenAi::new(
                    transport,
                    &base_url,
                    api_key.as_ref().map(Secret::expose),
                    organization.as_deref(),
                    headers,
                )
                .map_err(bad_header)?,
            )
        }
        ProviderSettings::AzureOpenai {
            base_url,
            api_key,
            api_version,
            region: _,
        } => {
            let base_url = checked_url(name, Some(base_url), "")?;
            non_empty(name, "api_key", api_key.expose())?;
            Arc::new(
                Azure::new(
                    transport,
                    &base_url,
                    api_key.expose(),
                    api_version.as_deref(),
                )
                .map_err(bad_header)?,
            )
        }
        ProviderSettings::Anthropic {
            base_url,
            api_key,
            version,
        } => {
            let base_url = checked_url(name, base_url.as_deref(), anthropic::DEFAULT_BASE_URL)?;
            non_empty(name, "api_key", api_key.expose())?;
            Arc::new(
                Anthropic::new(transport, &base_url, api_key.expose(), version.as_deref())
                    .map_err(bad_header)?,
            )
        }
        ProviderSettings::Gemini { base_url, api_key } => {
            let base_url = checked_url(name, base_url.as_deref(), gemini::DEFAULT_BASE_URL)?;
            non_empty(name, "api_key", api_key.expose())?;
            Arc::new(Gemini::new(transport, &base_url, api_key.expose()).map_err(bad_header)?)
        }
        ProviderSettings::Mock {
            latency_ms,
            chunks,
            chunk_delay_ms,
        } => Arc::new(Mock::new(*latency_ms, *chunks, *chunk_delay_ms)),
    };
    Ok(provider)
}

/// The configured base URL (or the default), checked to be an absolute http(s) URL with a host
/// and without a query or fragment (paths are appended to it), in its normalised form (host
/// lowercased and IDNA-encoded, path percent-encoded), so that the endpoints built from it parse
/// as plain URIs without a URL parser on each request.
fn checked_url(provider: &str, url: Option<&str>, default: &str) -> Result<String, BuildError> {
    let url = url.unwrap_or(default);
    let invalid = |reason: &str| BuildError::InvalidBaseUrl {
        provider: provider.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in a URL end up in logs; keys belong in `api_key`.
        return Err(BuildError::InvalidBaseUrl {
            provider: provider.to_owned(),
            url: "*****".to_owned(),
            reason: "credentials in the URL are not allowed; use api_key".to_owned(),
        });
    }
    Ok(parsed.into())
}

fn non_empty(provider: &str, field: &'static str, value: &str) -> Result<(), BuildError> {
    if value.trim().is_empty() {
        return Err(BuildError::Empty {
            provider: provider.to_owned(),
            field,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
