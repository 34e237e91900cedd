//! Anthropic's Messages API: `POST {base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version`. `max_tokens` is required upstream, so the body builder fills in
//! `Upstream::default_max_tokens` when the client gave none. Anthropic has no embeddings API.

use crate::openai::BadHeader;
use crate::stream;
use crate::transport::{secret_header, with_common_headers, PostJson, Secret, Transport};
use crate::{with_stream, ChatEventStream, Provider, ProviderError, Upstream};
use async_trait::async_trait;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use std::sync::Arc;
use switchboard_protocols::anthropic as wire;
use switchboard_protocols::{ResponseMode, UpstreamBody};
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Protocol};

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub(crate) const DEFAULT_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub(crate) struct Anthropic {
    transport: Arc<Transport>,
    /// `{base_url}/v1/messages`.
    messages_uri: Uri,
    headers: HeaderMap,
    secret: Secret,
}

impl Anthropic {
    pub(crate) fn new(
        transport: Arc<Transport>,
        base_url: &str,
        api_key: &str,
        version: Option<&str>,
    ) -> Result<Self, BadHeader> {
        let mut headers = HeaderMap::new();
        let key = secret_header(api_key).map_err(|_| BadHeader("x-api-key".into()))?;
        headers.insert(HeaderName::from_static("x-api-key"), key);
        let version = HeaderValue::from_str(version.unwrap_or(DEFAULT_VERSION))
            .map_err(|_| BadHeader("anthropic-version".into()))?;
        headers.insert(HeaderName::from_static("anthropic-version"), version);
        Ok(Anthropic {
            transport,
            messages_uri: Uri::try_from(format!("{}/v1/messages", base_url.trim_end_matches('/')))
                .map_err(|_| BadHeader("base_url".into()))?,
            headers: with_common_headers(headers, base_url),
            secret: Secret::new(api_key),
        })
    }

    fn post<'a>(&'a self, body: Vec<u8>, call: &'a Upstream<'a>) -> PostJson<'a> {
        PostJson {
            uri: self.messages_uri.clone(),
            headers: &self.headers,
            body,
            call,
            error_message: wire::upstream_error_message,
            secret: Some(self.secret.expose()),
        }
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let req = with_stream(req, false);
        let UpstreamBody { body, mode } =
            wire::messages_request_body(&req, call.model, call.default_max_tokens)?;
        let answer = self.transport.post(self.post(body, call)).await?;
        let bytes = answer.bytes().await?;
        // An Anthropic client gets this body back byte for byte: decode only what the gateway
        // needs (usage, id), not the content. Any other client needs the canonical content.
        let client_speaks_anthropic = req
            .raw
            .as_ref()
            .is_some_and(|r| r.protocol == Protocol::Anthropic);
        if client_speaks_anthropic && mode == ResponseMode::Plain {
            return Ok(wire::parse_messages_response_passthrough(bytes)?);
        }
        Ok(wire::parse_messages_response(bytes, &mode)?)
    }

    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        let req = with_stream(req, true);
        let UpstreamBody { body, mode } =
            wire::messages_request_body(&req, call.model, call.default_max_tokens)?;
        let answer = self.transport.post(self.post(body, call)).await?;
        Ok(stream::decode(
            answer,
            wire::MessagesStreamDecoder::new(mode),
        ))
    }

    async fn embed(
        &self,
        _call: &Upstream<'_>,
        _req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        Err(ProviderError::Unsupported {
            param: None,
            message: "Anthropic has no embeddings API".into(),
        })
    }
}
