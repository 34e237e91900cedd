//! Azure OpenAI: the OpenAI wire format at
//! `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={v}` (and
//! `/embeddings`), authenticated by an `api-key` header.
//!
//! The deployment is the target's upstream model (`Upstream::model`). The body is the OpenAI body
//! unchanged, `model` included: Azure routes by the deployment in the path and ignores the field,
//! so removing it would cost a copy of the body for nothing.

use crate::openai::{self, BadHeader, Target};
use crate::transport::{
    encode_component, endpoint, secret_header, with_common_headers, Secret, Transport,
};
use crate::{ChatEventStream, Provider, ProviderError, Upstream};
use async_trait::async_trait;
use http::header::{HeaderMap, HeaderName};
use std::sync::Arc;
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Protocol};

/// The GA API version used when the settings name none.
pub(crate) const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug)]
pub(crate) struct Azure {
    transport: Arc<Transport>,
    /// The resource root, without a trailing slash.
    base_url: String,
    /// Already encoded for the query string.
    api_version: String,
    headers: HeaderMap,
    secret: Secret,
}

impl Azure {
    pub(crate) fn new(
        transport: Arc<Transport>,
        base_url: &str,
        api_key: &str,
        api_version: Option<&str>,
    ) -> Result<Self, BadHeader> {
        let mut headers = HeaderMap::new();
        let key = secret_header(api_key).map_err(|_| BadHeader("api-key".into()))?;
        headers.insert(HeaderName::from_static("api-key"), key);
        Ok(Azure {
            transport,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_version: encode_component(api_version.unwrap_or(DEFAULT_API_VERSION)),
            headers: with_common_headers(headers, base_url),
            secret: Secret::new(api_key),
        })
    }

    fn target(&self, deployment: &str, operation: &str) -> Result<Target<'_>, ProviderError> {
        Ok(Target {
            transport: &self.transport,
            uri: endpoint(format!(
                "{}/openai/deployments/{}/{operation}?api-version={}",
                self.base_url,
                encode_component(deployment),
                self.api_version
            ))?,
            headers: &self.headers,
            secret: Some(&self.secret),
        })
    }
}

#[async_trait]
impl Provider for Azure {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        openai::chat(self.target(call.model, "chat/completions")?, call, req).await
    }

    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        openai::chat_stream(self.target(call.model, "chat/completions")?, call, req).await
    }

    async fn embed(
        &self,
        call: &Upstream<'_>,
        req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        openai::embed(self.target(call.model, "embeddings")?, call, req).await
    }
}
