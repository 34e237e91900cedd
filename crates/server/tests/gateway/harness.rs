//! Starting a gateway in front of mock providers, and a client for it.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::BTreeMap;
use switchboard::runtime::ConfigSource;
use switchboard::serve::{self, Server};
use switchboard_testkit::{MockKind, MockProvider};

pub const KEY: &str = "sk-test-admin-key";

/// The four HTTP mock providers plus the built-in mock, each behind its own alias:
/// `m-openai`, `m-azure`, `m-anthropic`, `m-gemini`, `m-mock`.
pub struct World {
    pub gateway: Server,
    pub mocks: BTreeMap<&'static str, MockProvider>,
    pub client: reqwest::Client,
}

pub const PROVIDERS: [&str; 4] = ["openai", "azure", "anthropic", "gemini"];

fn kind_of(name: &str) -> MockKind {
    match name {
        "openai" => MockKind::OpenAi,
        "azure" => MockKind::AzureOpenAi,
        "anthropic" => MockKind::Anthropic,
        _ => MockKind::Gemini,
    }
}

fn provider_yaml(name: &str, base_url: &str) -> String {
    match name {
        "openai" => format!("{{ type: openai, base_url: \"{base_url}\", api_key: sk-upstream-openai }}"),
        "azure" => format!(
            "{{ type: azure_openai, base_url: \"{base_url}\", api_key: az-upstream, api_version: \"2024-10-21\" }}"
        ),
        "anthropic" => format!("{{ type: anthropic, base_url: \"{base_url}\", api_key: sk-ant-upstream }}"),
        _ => format!("{{ type: gemini, base_url: \"{base_url}\", api_key: gm-upstream }}"),
    }
}

impl World {
    /// Every provider behind its alias; `extra_models` is YAML appended under `models:`
    /// (indented by 2 spaces), for routing tests.
    pub async fn start() -> World {
        Self::with_models("").await
    }

    pub async fn with_models(extra_models: &str) -> World {
        let mut mocks = BTreeMap::new();
        let mut providers = String::new();
        let mut models = String::new();
        for name in PROVIDERS {
            let mock = MockProvider::start(kind_of(name)).await;
            providers.push_str(&format!(
                "  {name}: {}\n",
                provider_yaml(name, &mock.base_url())
            ));
            let upstream_model = match name {
                "anthropic" => "claude-sonnet-4-5",
                "gemini" => "gemini-2.5-flash",
                _ => "gpt-4o",
            };
            models.push_str(&format!(
                "  m-{name}: {{ targets: [ {{ provider: {name}, model: {upstream_model} }} ] }}\n"
            ));
            mocks.insert(name, mock);
        }
        providers.push_str("  mock: { type: mock }\n");
        models.push_str("  m-mock: { targets: [ { provider: mock, model: echo } ] }\n");
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin_key: {KEY}\nproviders:\n{providers}models:\n{models}{extra_models}"
        );
        let gateway = start_yaml(&yaml).await;
        World {
            gateway,
            mocks,
            client: reqwest::Client::new(),
        }
    }

    pub fn mock(&self, provider: &str) -> &MockProvider {
        &self.mocks[provider]
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    /// POST JSON with the admin key as a Bearer token.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("request to the gateway");
        Reply::read(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str, key: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        Reply::read(req.send().await.expect("request to the gateway")).await
    }
}

/// Starts a gateway on port 0 with `yaml`; unless it names a database, it gets a fresh SQLite
/// database in memory.
pub async fn start_yaml(yaml: &str) -> Server {
    let text = if yaml.contains("\ndatabase:") || yaml.starts_with("database:") {
        yaml.to_owned()
    } else {
        format!("database: \"sqlite::memory:\"\n{yaml}")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = ConfigSource::Text {
        name: "test.yaml".into(),
        text,
    };
    serve::start(listener, source)
        .await
        .unwrap_or_else(|e| panic!("gateway does not start: {e:#}\n---\n{yaml}"))
}

/// A finished response: status, headers, body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// SSE events as (event name, parsed data); `[DONE]` becomes `Value::String("[DONE]")`.
    pub fn sse(&self) -> Vec<(Option<String>, Value)> {
        let mut out = Vec::new();
        for block in self.text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let value = if data == "[DONE]" {
                Value::String(data)
            } else {
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad SSE data ({e}): {data}"))
            };
            out.push((event, value));
        }
        out
    }
}

/// The text of an OpenAI answer (JSON or the concatenated stream deltas).
pub fn openai_text(reply: &Reply, stream: bool) -> String {
    if !stream {
        return reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
    }
    reply
        .sse()
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The text of an Anthropic answer (JSON or the concatenated stream deltas).
pub fn anthropic_text(reply: &Reply, stream: bool) -> String {
    if !stream {
        return reply.json()["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "text")
            .map(|b| b["text"].as_str().unwrap().to_owned())
            .collect();
    }
    reply
        .sse()
        .iter()
        .filter(|(_, v)| v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta")
        .map(|(_, v)| v["delta"]["text"].as_str().unwrap().to_owned())
        .collect()
}
