//! Request extractors whose failures answer in the admin error shape with a message that names
//! the field: a JSON body (parsed whatever the content-type, as on the data plane), an optional
//! JSON body, and query parameters. Also the `Option<Option<T>>` helper that tells "field left
//! out" from "field set to null" in PATCH bodies.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A JSON request body of type `T`.
#[derive(Clone, Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, ApiError> {
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request needs a JSON body (an object)",
            ));
        }
        parse(&bytes).map(Body)
    }
}

/// A JSON body that may be left out (empty or `null`): then `T::default()`.
#[derive(Clone, Debug)]
pub struct OptionalBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<OptionalBody<T>, ApiError> {
        let bytes = read(req, state).await?;
        if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(OptionalBody(T::default()));
        }
        parse(&bytes).map(OptionalBody)
    }
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request_too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// Parses `bytes` as `T`, naming the field that did not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {inner}"),
            );
        }
        let detail = strip_position(&inner.to_string());
        let field = missing_field(&detail)
            .map(str::to_owned)
            .or_else(|| (!path.is_empty() && path != ".").then(|| path.clone()));
        let message = match &field {
            Some(field) if missing_field(&detail).is_some() => {
                format!("field `{field}` is required")
            }
            Some(field) => format!("field `{field}`: {detail}"),
            None => format!("the request body does not fit: {detail}"),
        };
        let mut error = ApiError::bad_request(message);
        error.param = field;
        error
    })?;
    de.end().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {err}"),
        )
    })?;
    Ok(value)
}

/// `missing field `name`` -> `name`.
fn missing_field(detail: &str) -> Option<&str> {
    detail
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// serde_json ends messages with ` at line 1 column 7`: noise for a client, who sent one line.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters of type `T`.
#[derive(Clone, Debug)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Params<T>, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Params(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::bad_request(format!("invalid query parameters: {detail}"))
            })
    }
}

/// For `#[serde(default, deserialize_with = "double_option")]` on an `Option<Option<T>>`:
/// a missing field stays `None` (leave as is), `null` becomes `Some(None)` (clear).
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are only deserialised")]
    struct Sample {
        name: String,
        count: Option<u32>,
        #[serde(default, deserialize_with = "double_option")]
        note: Option<Option<String>>,
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<Sample>(b"{}").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("name"));
        assert!(
            err.message.contains("`name` is required"),
            "{}",
            err.message
        );
        let err = parse::<Sample>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("count"));
        let err = parse::<Sample>(br#"{"name":"a","bogus":1}"#).unwrap_err();
        assert!(err.message.contains("bogus"), "{}", err.message);
        let err = parse::<Sample>(b"{not json").unwrap_err();
        assert_eq!(err.code, "invalid_json");
    }

    #[test]
    fn null_and_absent_differ() {
        let s: Sample = parse(br#"{"name":"a","note":null}"#).unwrap();
        assert_eq!(s.note, Some(None));
        let s: Sample = parse(br#"{"name":"a"}"#).unwrap();
        assert_eq!(s.note, None);
    }
}
