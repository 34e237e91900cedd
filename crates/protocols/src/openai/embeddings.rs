//! OpenAI Embeddings: a client's `POST /v1/embeddings` body to canonical and back out to an
//! OpenAI-compatible upstream, and the `list` of embeddings both ways.
//!
//! `extra` is forwarded here (unlike chat): embeddings only ever arrive in the OpenAI format, so
//! its unknown fields are OpenAI vendor fields.

use super::error::in_band_error;
use super::wire::{
    InEmbedInput, InEmbedResponse, InEmbeddingValue, OutEmbedInput, OutEmbedRequest,
    OutEmbedResponse, OutEmbedUsage, OutEmbedding, OutEmbeddingValue,
};
use crate::error::{ConvertError, DecodeError};
use serde::Deserialize;
use serde_json::Value;
use switchboard_types::{EmbedInput, EmbedRequest, EmbedResponse, Embedding, Usage};

/// Parses an embeddings request: `input` is a string, an array of strings, an array of token
/// ids or an array of arrays of token ids.
pub fn parse_embed_request(body: &[u8]) -> Result<EmbedRequest, ConvertError> {
    let object = crate::parse_object(body)?;
    let mut model = None;
    let mut input = None;
    let mut req_dimensions = None;
    let mut encoding_format = None;
    let mut user = None;
    let mut extra = serde_json::Map::new();
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => model = Some(field::<String>(&key, &value)?),
            "input" => input = Some(parse_input(&value)?),
            "dimensions" => req_dimensions = Some(field::<u32>(&key, &value)?),
            "encoding_format" => encoding_format = Some(field::<String>(&key, &value)?),
            "user" => user = Some(field::<String>(&key, &value)?),
            _ => {
                extra.insert(key, value);
            }
        }
    }
    let model = model.filter(|m| !m.is_empty()).ok_or_else(|| {
        ConvertError::invalid(
            "model".to_owned(),
            "`model` is required: name the model alias to call.",
        )
    })?;
    let input =
        input.ok_or_else(|| ConvertError::invalid("input".to_owned(), "`input` is required."))?;
    Ok(EmbedRequest {
        model,
        input,
        dimensions: req_dimensions,
        encoding_format,
        user,
        extra,
    })
}

fn field<'de, T: Deserialize<'de>>(name: &str, value: &'de Value) -> Result<T, ConvertError> {
    T::deserialize(value)
        .map_err(|e| ConvertError::invalid(name.to_owned(), format!("`{name}`: {e}.")))
}

fn parse_input(value: &Value) -> Result<EmbedInput, ConvertError> {
    let input = InEmbedInput::deserialize(value).map_err(|_| {
        ConvertError::invalid(
            "input".to_owned(),
            "`input` must be a string, an array of strings, an array of token ids or an array of arrays of token ids.",
        )
    })?;
    let input = match input {
        InEmbedInput::Text(s) => EmbedInput::Texts(vec![s]),
        InEmbedInput::Texts(v) => EmbedInput::Texts(v),
        InEmbedInput::Tokens(v) => EmbedInput::Tokens(vec![v]),
        InEmbedInput::TokenLists(v) => EmbedInput::Tokens(v),
    };
    let empty = match &input {
        EmbedInput::Texts(v) => v.is_empty(),
        EmbedInput::Tokens(v) => v.is_empty() || v.iter().any(Vec::is_empty),
    };
    if empty {
        return Err(ConvertError::invalid(
            "input".to_owned(),
            "`input` must not be empty.",
        ));
    }
    Ok(input)
}

/// The body for an OpenAI-compatible embeddings endpoint. Inputs are always sent as arrays
/// (one input is an array of one), which every compatible server accepts.
pub fn embed_request_body(req: &EmbedRequest, model: &str) -> Vec<u8> {
    let mut extra = req.extra.clone();
    // Our own fields win over anything of the same name in `extra`.
    for key in ["model", "input", "dimensions", "encoding_format", "user"] {
        extra.remove(key);
    }
    super::to_json(&OutEmbedRequest {
        model,
        input: match &req.input {
            EmbedInput::Texts(t) => OutEmbedInput::Texts(t),
            EmbedInput::Tokens(t) => OutEmbedInput::Tokens(t),
        },
        dimensions: req.dimensions,
        encoding_format: req.encoding_format.as_deref(),
        user: req.user.as_deref(),
        extra: &extra,
    })
}

/// Decodes an upstream embeddings `list`, in `index` order.
pub fn parse_embed_response(body: &[u8]) -> Result<EmbedResponse, DecodeError> {
    let wire: InEmbedResponse = crate::from_json(body)
        .map_err(|e| DecodeError::Malformed(format!("embeddings response: {e}")))?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(in_band_error(error));
    }
    let mut data = wire
        .data
        .ok_or_else(|| DecodeError::Malformed("embeddings response without `data`".to_owned()))?;
    data.sort_by_key(|d| d.index);
    let usage = wire.usage.unwrap_or_default();
    let input = usage.prompt_tokens.or(usage.total_tokens).unwrap_or(0);
    Ok(EmbedResponse {
        model: wire.model.unwrap_or_default(),
        data: data
            .into_iter()
            .map(|d| match d.embedding {
                InEmbeddingValue::Float(v) => Embedding::Float(v),
                InEmbeddingValue::Base64(s) => Embedding::Base64(s),
            })
            .collect(),
        usage: Usage {
            input_tokens: input,
            ..Usage::default()
        },
    })
}

/// Renders an embeddings `list` for an OpenAI client.
pub fn render_embed_response(resp: &EmbedResponse) -> Vec<u8> {
    super::to_json(&OutEmbedResponse {
        object: "list",
        data: resp
            .data
            .iter()
            .enumerate()
            .map(|(index, e)| OutEmbedding {
                object: "embedding",
                index,
                embedding: match e {
                    Embedding::Float(v) => OutEmbeddingValue::Float(v),
                    Embedding::Base64(s) => OutEmbeddingValue::Base64(s),
                },
            })
            .collect(),
        model: &resp.model,
        usage: OutEmbedUsage {
            prompt_tokens: resp.usage.input_tokens,
            total_tokens: resp.usage.total_tokens(),
        },
    })
}
