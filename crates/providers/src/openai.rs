//! OpenAI, and every server that speaks its API (vLLM, Ollama, Groq, Mistral, OpenRouter, ...):
//! `POST {base_url}/chat/completions` and `{base_url}/embeddings`, `Authorization: Bearer`.
//!
//! The calls themselves (`chat`, `chat_stream`, `embed` below) take the endpoint as a [`Target`]
//! so that Azure OpenAI, which speaks the same wire format at other URLs with another auth
//! header, reuses them.

use crate::stream;
use crate::transport::{secret_header, with_common_headers, PostJson, Secret, Transport};
use crate::{with_stream, ChatEventStream, Provider, ProviderError, Upstream};
use async_trait::async_trait;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_protocols::openai as wire;
use switchboard_protocols::{ResponseMode, UpstreamBody};
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Protocol};

/// The official API root, `/v1` included as the SDK takes it.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Where one OpenAI-format call goes.
pub(crate) struct Target<'a> {
    pub transport: &'a Transport,
    pub uri: Uri,
    pub headers: &'a HeaderMap,
    pub secret: Option<&'a Secret>,
}

impl Target<'_> {
    fn post<'a>(&'a self, body: Vec<u8>, call: &'a Upstream<'a>) -> PostJson<'a> {
        PostJson {
            uri: self.uri.clone(),
            headers: self.headers,
            body,
            call,
            error_message: wire::upstream_error_message,
            secret: self.secret.map(Secret::expose),
        }
    }
}

/// A whole chat completion in the OpenAI format.
pub(crate) async fn chat(
    target: Target<'_>,
    call: &Upstream<'_>,
    req: &ChatRequest,
) -> Result<ChatResponse, ProviderError> {
    let req = with_stream(req, false);
    let UpstreamBody { body, mode } = wire::chat_request_body(&req, call.model)?;
    let answer = target.transport.post(target.post(body, call)).await?;
    let bytes = answer.bytes().await?;
    // An OpenAI client gets this body back byte for byte: decode only what the gateway needs
    // (usage, id), not the choices. Any other client needs the canonical content.
    let client_speaks_openai = req
        .raw
        .as_ref()
        .is_some_and(|r| r.protocol == Protocol::OpenAi);
    if client_speaks_openai && mode == ResponseMode::Plain {
        return Ok(wire::parse_chat_response_passthrough(bytes)?);
    }
    Ok(wire::parse_chat_response(bytes, &mode)?)
}

/// A streamed chat completion in the OpenAI format (the body builder asks for usage).
pub(crate) async fn chat_stream(
    target: Target<'_>,
    call: &Upstream<'_>,
    req: &ChatRequest,
) -> Result<ChatEventStream, ProviderError> {
    let req = with_stream(req, true);
    let UpstreamBody { body, mode } = wire::chat_request_body(&req, call.model)?;
    let answer = target.transport.post(target.post(body, call)).await?;
    Ok(stream::decode(answer, wire::ChatStreamDecoder::new(mode)))
}

/// Embeddings in the OpenAI format.
pub(crate) async fn embed(
    target: Target<'_>,
    call: &Upstream<'_>,
    req: &EmbedRequest,
) -> Result<EmbedResponse, ProviderError> {
    let body = wire::embed_request_body(req, call.model);
    let answer = target.transport.post(target.post(body, call)).await?;
    let bytes = answer.bytes().await?;
    Ok(wire::parse_embed_response(&bytes)?)
}

/// OpenAI or an OpenAI-compatible server.
#[derive(Debug)]
pub(crate) struct OpenAi {
    transport: Arc<Transport>,
    chat_uri: Uri,
    embeddings_uri: Uri,
    headers: HeaderMap,
    secret: Option<Secret>,
}

/// A header of the settings that cannot be sent.
#[derive(Debug)]
pub(crate) struct BadHeader(pub String);

impl OpenAi {
    pub(crate) fn new(
        transport: Arc<Transport>,
        base_url: &str,
        api_key: Option<&str>,
        organization: Option<&str>,
        extra: &BTreeMap<String, String>,
    ) -> Result<Self, BadHeader> {
        let mut headers = HeaderMap::new();
        for (name, value) in extra {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadHeader(name.clone()))?;
            // Extra headers often carry credentials of a gateway in front (`x-api-key`, ...).
            let value = secret_header(value).map_err(|_| BadHeader(name.to_string()))?;
            headers.insert(name, value);
        }
        if let Some(org) = organization {
            let value =
                HeaderValue::from_str(org).map_err(|_| BadHeader("OpenAI-Organization".into()))?;
            headers.insert(HeaderName::from_static("openai-organization"), value);
        }
        // Local servers (Ollama, vLLM) often run without a key: no header then.
        let secret = api_key.filter(|k| !k.is_empty()).map(Secret::new);
        if let Some(key) = &secret {
            let value = secret_header(&format!("Bearer {}", key.expose()))
                .map_err(|_| BadHeader("Authorization".into()))?;
            headers.insert(AUTHORIZATION, value);
        }
        let base_url = base_url.trim_end_matches('/');
        let parse = |path: &str| {
            Uri::try_from(format!("{base_url}{path}")).map_err(|_| BadHeader("base_url".into()))
        };
        Ok(OpenAi {
            transport,
            chat_uri: parse("/chat/completions")?,
            embeddings_uri: parse("/embeddings")?,
            headers: with_common_headers(headers, base_url),
            secret,
        })
    }

    fn target(&self, uri: &Uri) -> Target<'_> {
        Target {
            transport: &self.transport,
            uri: uri.clone(),
            headers: &self.headers,
            secret: self.secret.as_ref(),
        }
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        chat(self.target(&self.chat_uri), call, req).await
    }

    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        chat_stream(self.target(&self.chat_uri), call, req).await
    }

    async fn embed(
        &self,
        call: &Upstream<'_>,
        req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        embed(self.target(&self.embeddings_uri), call, req).await
    }
}
