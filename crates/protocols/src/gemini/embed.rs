//! Embeddings through `models/{model}:batchEmbedContents`: one sub-request per input text, in
//! order, and one embedding per sub-request back.
//!
//! Gemini returns no token usage for embeddings. `parse_embed_response_for` estimates
//! `input_tokens` as ceil(chars / 4) over the input texts (a rough English average, good enough
//! for budgets and rate limits, not exact billing); `parse_embed_response`, which does not see
//! the request, reports zero usage. Gemini only returns floats: `encoding_format: base64` is
//! produced here as base64 of the little-endian f32 bytes, as OpenAI does.

use base64::Engine as _;
use switchboard_types::{EmbedInput, EmbedRequest, EmbedResponse, Embedding, Usage};

use super::response::in_band_error;
use super::wire::{
    BatchEmbedRequest, BatchEmbedResponse, EmbedContent, EmbedContentRequest, EmbedTextPart,
};
use crate::error::{ConvertError, DecodeError};

/// Builds the `batchEmbedContents` body. Token-array input has no Gemini form.
pub fn embed_request_body(req: &EmbedRequest, model: &str) -> Result<Vec<u8>, ConvertError> {
    let texts = match &req.input {
        EmbedInput::Texts(texts) => texts,
        EmbedInput::Tokens(_) => {
            return Err(ConvertError::unsupported(
                "input",
                "this model's provider (Gemini) only embeds text, not token arrays",
            ))
        }
    };
    if texts.is_empty() {
        return Err(ConvertError::invalid(
            Some("input".to_owned()),
            "input must contain at least one text",
        ));
    }
    let model_path = if model.starts_with("models/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    };
    let body = BatchEmbedRequest {
        requests: texts
            .iter()
            .map(|text| EmbedContentRequest {
                model: model_path.clone(),
                content: EmbedContent {
                    parts: vec![EmbedTextPart { text: text.clone() }],
                },
                output_dimensionality: req.dimensions,
            })
            .collect(),
    };
    serde_json::to_vec(&body)
        .map_err(|e| ConvertError::invalid(None, format!("cannot encode request: {e}")))
}

/// Decodes a `batchEmbedContents` response: float embeddings, zero usage (Gemini reports
/// none). Prefer [`parse_embed_response_for`] when the request is at hand.
pub fn parse_embed_response(body: &[u8], model: &str) -> Result<EmbedResponse, DecodeError> {
    let value: serde_json::Value = crate::from_json(body)
        .map_err(|e| DecodeError::Malformed(format!("response is not JSON: {e}")))?;
    if let Some(err) = in_band_error(&value) {
        return Err(err);
    }
    let resp: BatchEmbedResponse = serde_json::from_value(value)
        .map_err(|e| DecodeError::Malformed(format!("unexpected response shape: {e}")))?;
    Ok(EmbedResponse {
        model: model.to_owned(),
        data: resp
            .embeddings
            .into_iter()
            .map(|e| Embedding::Float(e.values))
            .collect(),
        usage: Usage::default(),
    })
}

/// Decodes a `batchEmbedContents` response for `req`: checks that there is one embedding per
/// input, applies `encoding_format: base64`, and estimates usage (see the module doc).
pub fn parse_embed_response_for(
    body: &[u8],
    req: &EmbedRequest,
    model: &str,
) -> Result<EmbedResponse, DecodeError> {
    let mut resp = parse_embed_response(body, model)?;
    if let EmbedInput::Texts(texts) = &req.input {
        if resp.data.len() != texts.len() {
            return Err(DecodeError::Malformed(format!(
                "{} embeddings for {} inputs",
                resp.data.len(),
                texts.len()
            )));
        }
        resp.usage.input_tokens = estimate_tokens(texts);
    }
    if req.encoding_format.as_deref() == Some("base64") {
        for embedding in &mut resp.data {
            if let Embedding::Float(values) = embedding {
                *embedding = Embedding::Base64(f32s_to_base64(values));
            }
        }
    }
    Ok(resp)
}

/// ceil(chars / 4) summed over the texts.
pub(crate) fn estimate_tokens(texts: &[String]) -> u64 {
    texts
        .iter()
        .map(|t| {
            u64::try_from(t.chars().count())
                .unwrap_or(u64::MAX)
                .div_ceil(4)
        })
        .sum()
}

pub(crate) fn f32s_to_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
