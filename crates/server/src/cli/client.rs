//! The admin API client the CLI commands share: base URL and admin key from flags or the
//! environment, and errors turned into one readable message (`error: <message>` on stderr,
//! exit 1, printed by the caller).

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Where the admin API is and how to authenticate, for every client command.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The server's `admin_key`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

/// Why a command failed: the message is printed after `error: `.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError(message.into())
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// An authenticated admin API client.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// Requests are small, but an apply of many objects can take a while.
const TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    pub fn new(args: &ApiArgs) -> CliResult<Client> {
        let key = args
            .admin_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                CliError::new(
                    "no admin key: pass --admin-key or set SWITCHBOARD_ADMIN_KEY (the server's \
                 `admin_key`)",
                )
            })?;
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::new(format!(
                "--url `{base}` must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| CliError::new(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { http, base, key })
    }

    /// The full URL of an admin API path (`/orgs/acme/keys`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/admin/v1{path}", self.base)
    }

    /// A request with the admin key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    /// Sends `request`; a non-2xx answer becomes its error message.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> CliResult<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(CliError::new(api_message(status, &text)))
    }

    /// A JSON request (`body` None: no body) with a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> CliResult<T> {
        let mut request = self
            .request(method, path)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let text = response
            .text()
            .await
            .map_err(|e| CliError::new(format!("cannot read the answer: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::new(format!("the server's answer is not what was expected: {e}"))
        })
    }

    /// A text answer (YAML export).
    pub async fn text(&self, path: &str) -> CliResult<String> {
        let response = self.send(self.request(Method::GET, path)).await?;
        response
            .text()
            .await
            .map_err(|e| CliError::new(format!("cannot read the answer: {e}")))
    }

    /// Posts a YAML document, asking for a streamed answer.
    pub async fn post_yaml(
        &self,
        path: &str,
        yaml: String,
        accept: &str,
    ) -> CliResult<reqwest::Response> {
        let request = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/yaml")
            .header(ACCEPT, accept)
            .body(yaml);
        self.send(request).await
    }

    fn transport(&self, err: &reqwest::Error) -> CliError {
        if err.is_connect() {
            CliError::new(format!(
                "cannot connect to {}: is the server running? (set --url or SWITCHBOARD_URL)",
                self.base
            ))
        } else if err.is_timeout() {
            CliError::new(format!("{} did not answer in time", self.base))
        } else {
            CliError::new(format!("request to {} failed: {err}", self.base))
        }
    }
}

/// The message of an admin API error answer (`{"error":{"message":...}}`), or the status.
pub fn api_message(status: StatusCode, text: &str) -> String {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned));
    match message {
        Some(message) => message,
        None if text.trim().is_empty() => format!("the server answered {status}"),
        None => format!("the server answered {status}: {}", text.trim()),
    }
}

/// A path segment, percent-encoded (names are slugs, but ids and user input may not be).
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_body() {
        let body = r#"{"error":{"message":"key `x` not found","type":"not_found_error"}}"#;
        assert_eq!(
            api_message(StatusCode::NOT_FOUND, body),
            "key `x` not found"
        );
        assert_eq!(
            api_message(StatusCode::BAD_GATEWAY, ""),
            "the server answered 502 Bad Gateway"
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("acme"), "acme");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
