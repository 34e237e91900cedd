//! Google's Gemini API (Generative Language API): the model goes in the URL,
//! `POST {base_url}/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` for
//! streams and `:batchEmbedContents` for embeddings, with the key in the `x-goog-api-key` header
//! (never in the `?key=` query, where it would end up in access logs and error texts).

use crate::openai::BadHeader;
use crate::stream;
use crate::transport::{
    encode_component, endpoint, secret_header, with_common_headers, PostJson, Secret, Transport,
};
use crate::{with_stream, ChatEventStream, Provider, ProviderError, Upstream};
use async_trait::async_trait;
use http::header::{HeaderMap, HeaderName};
use http::Uri;
use std::sync::Arc;
use switchboard_protocols::gemini as wire;
use switchboard_protocols::UpstreamBody;
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Protocol};

pub(crate) const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

#[derive(Debug)]
pub(crate) struct Gemini {
    transport: Arc<Transport>,
    /// `{base_url}/v1beta/models/`.
    models_url: String,
    headers: HeaderMap,
    secret: Secret,
}

impl Gemini {
    pub(crate) fn new(
        transport: Arc<Transport>,
        base_url: &str,
        api_key: &str,
    ) -> Result<Self, BadHeader> {
        let mut headers = HeaderMap::new();
        let key = secret_header(api_key).map_err(|_| BadHeader("x-goog-api-key".into()))?;
        headers.insert(HeaderName::from_static("x-goog-api-key"), key);
        Ok(Gemini {
            transport,
            models_url: format!("{}/v1beta/models/", base_url.trim_end_matches('/')),
            headers: with_common_headers(headers, base_url),
            secret: Secret::new(api_key),
        })
    }

    /// `{models_url}{model}:{method}`. Configs may name the model as the API lists it
    /// (`models/gemini-2.0-flash`); the prefix is already in the URL.
    fn uri(&self, model: &str, method: &str) -> Result<Uri, ProviderError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        endpoint(format!(
            "{}{}:{method}",
            self.models_url,
            encode_component(model)
        ))
    }

    fn post<'a>(&'a self, uri: Uri, body: Vec<u8>, call: &'a Upstream<'a>) -> PostJson<'a> {
        PostJson {
            uri,
            headers: &self.headers,
            body,
            call,
            error_message: wire::upstream_error_message,
            secret: Some(self.secret.expose()),
        }
    }
}

#[async_trait]
impl Provider for Gemini {
    fn protocol(&self) -> Protocol {
        Protocol::Gemini
    }

    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        // Gemini streams by endpoint, not by a body field, so the body ignores `stream`.
        let UpstreamBody { body, .. } = wire::generate_content_body(req)?;
        let uri = self.uri(call.model, "generateContent")?;
        let answer = self.transport.post(self.post(uri, body, call)).await?;
        let bytes = answer.bytes().await?;
        Ok(wire::parse_generate_response(bytes, call.model)?)
    }

    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        let req = with_stream(req, true);
        let UpstreamBody { body, .. } = wire::generate_content_body(&req)?;
        let uri = self.uri(call.model, "streamGenerateContent?alt=sse")?;
        let answer = self.transport.post(self.post(uri, body, call)).await?;
        Ok(stream::decode(
            answer,
            wire::GenerateStreamDecoder::new(call.model),
        ))
    }

    async fn embed(
        &self,
        call: &Upstream<'_>,
        req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        let body = wire::embed_request_body(req, call.model)?;
        let uri = self.uri(call.model, "batchEmbedContents")?;
        let answer = self.transport.post(self.post(uri, body, call)).await?;
        let bytes = answer.bytes().await?;
        // The `_for` variant checks one embedding per input and estimates usage, which Gemini omits.
        Ok(wire::parse_embed_response_for(&bytes, req, call.model)?)
    }
}
