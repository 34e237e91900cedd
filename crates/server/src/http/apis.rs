//! Prompt API routes (SPEC section 6): `POST /apis/{name}` and `POST /apis/{name}@{version}`
//! (the body is the variables as JSON; `"stream": true` answers with server-sent events), and
//! their OpenAPI documents at `GET /apis/{name}/openapi.json` and `GET /apis/openapi.json`.
//! Errors are in the OpenAI shape. The documents need a valid key, like every data-plane route,
//! and list only the APIs that key may call.

use super::capture::{self, StreamCapture};
use super::chat::{prepare, Prepared};
use super::context::{request_context, Edge};
use super::format::{apply_rate, json_body, CallMeta, ClientFormat};
use super::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use switchboard_core::apis::lifecycle::{self, LifecycleHeaders};
use switchboard_core::apis::{openapi, sticky_key, usage_json, ApiAnswer, ApiStream};
use switchboard_core::auth::Principal;
use switchboard_core::GatewayError;
use switchboard_protocols::{openai, ClientError, StreamEncoder};
use switchboard_types::{ChatEvent, Usage};

const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
const SUNSET: HeaderName = HeaderName::from_static("sunset");

/// `POST /apis/{name}` and `POST /apis/{name}@{version}`.
pub async fn call(
    State(state): State<AppState>,
    Edge(client): Edge,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = ClientFormat::OpenAi;
    let Prepared {
        snapshot,
        mut ctx,
        body,
    } = match prepare(format, &state, &headers, client, body).await {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    let request_id = ctx.request_id.clone();
    let Some(who) = ctx.principal.clone() else {
        return format.error_response(&GatewayError::MissingKey, &request_id);
    };
    let api = match snapshot.resolve_api(&reference, &who) {
        Ok(api) => api,
        Err(err) => return format.error_response(&err, &request_id),
    };
    let (variables, stream) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(err) => return format.error_response(&err, &request_id),
    };
    let ab_key = headers
        .get(super::chat::X_SWITCHBOARD_AB_KEY)
        .and_then(|v| v.to_str().ok());
    let sticky = sticky_key(ab_key, &ctx);
    let alias = api.alias().unwrap_or_default().to_owned();
    let lifecycle = lifecycle::headers(api.version);
    let api_version = api.version.version.clone();
    let meta = CallMeta {
        request_id: &request_id,
        alias: &alias,
        target: None,
        attempts: 0,
    };
    // `logging.bodies` selects API calls by their model alias (a workflow has none of its own),
    // and keeps the API's request and answer under the API call's request id.
    let capture = capture::start(&state, &snapshot.config, &ctx, &alias, &body);

    // An output checked whole (an output schema, a workflow's) cannot be sent piece by piece:
    // such APIs answer `stream: true` with the same events, sent once the output is checked.
    let streams_live = stream && api.streams_live();
    let mut response = if streams_live {
        match snapshot.stream_api(&mut ctx, api, variables, &sticky).await {
            Ok(ApiStream { served, version }) => {
                let rate = served.meter.admission().headers();
                let encoder = ApiStreamEncoder {
                    text: String::new(),
                    usage: Usage::default(),
                    version: version.clone(),
                    api_version,
                };
                let body = super::sse::body(
                    served.routed.value,
                    Box::new(encoder),
                    request_id.clone(),
                    served.routed.attempts,
                    served.meter,
                    StreamCapture::new(capture),
                );
                let mut response = super::sse::response(body);
                let headers = response.headers_mut();
                CallMeta {
                    target: Some(&served.routed.target),
                    attempts: served.routed.attempts,
                    ..meta
                }
                .apply(headers);
                apply_rate(headers, &rate);
                super::chat::apply_notes(headers, &ctx, Some(&version));
                response
            }
            Err(failure) => {
                capture::failed(capture);
                format.failure_response(&failure, &meta)
            }
        }
    } else {
        match snapshot.call_api(&mut ctx, api, variables, &sticky).await {
            Ok(answer) => {
                let body = answer.body().to_string();
                if let Some(capture) = capture {
                    capture.finish(Some(body.as_bytes()));
                }
                let mut response = if stream {
                    super::sse::response(buffered_events(&answer))
                } else {
                    (StatusCode::OK, json_body(body)).into_response()
                };
                let headers = response.headers_mut();
                CallMeta {
                    target: answer.call.target.as_ref(),
                    attempts: answer.call.attempts,
                    ..meta
                }
                .apply(headers);
                apply_rate(headers, &answer.call.rate);
                super::chat::apply_notes(headers, &ctx, Some(&answer.version));
                response
            }
            Err(failure) => {
                capture::failed(capture);
                format.failure_response(&failure, &meta)
            }
        }
    };
    apply_lifecycle(response.headers_mut(), &lifecycle);
    response
}

/// A whole answer as the events of a stream: its output as one delta (JSON text when it is
/// not a string), then the final event and `[DONE]`, as [`ApiStreamEncoder`] writes them.
fn buffered_events(answer: &ApiAnswer) -> Vec<u8> {
    let mut out = Vec::new();
    let text = match &answer.output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if !text.is_empty() {
        event(&mut out, json!({ "delta": text }).to_string().as_bytes());
    }
    event(&mut out, answer.body().to_string().as_bytes());
    event(&mut out, b"[DONE]");
    out
}

/// The variables object, and whether `stream` was asked for (removed from the variables
/// before they are validated). An empty body is no variables.
fn parse_body(body: &[u8]) -> Result<(Value, bool), GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Value::Object(Map::new()), false));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::MalformedJson(format!("The body is not valid JSON: {e}")))?;
    let Value::Object(mut variables) = value else {
        return Err(GatewayError::InvalidVariables {
            variable: String::new(),
            message: "the body must be a JSON object of the variables".into(),
        });
    };
    let stream = match variables.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => stream,
        Some(_) => {
            return Err(GatewayError::InvalidVariables {
                variable: "stream".into(),
                message: "`stream` must be true or false".into(),
            })
        }
    };
    Ok((Value::Object(variables), stream))
}

fn apply_lifecycle(headers: &mut HeaderMap, lifecycle: &LifecycleHeaders) {
    if let Some(value) = &lifecycle.deprecation {
        set(headers, DEPRECATION, value);
    }
    if let Some(value) = &lifecycle.sunset {
        set(headers, SUNSET, value);
    }
    if let Some(value) = &lifecycle.link {
        set(headers, header::LINK, value);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// A prompt API's stream: `data: {"delta": "..."}` per text delta, then one
/// `data: {"output", "usage", "version", "api_version"}` event and `data: [DONE]`; a failure
/// after the stream began is one `data: {"error": {...}}` event (OpenAI's error shape).
struct ApiStreamEncoder {
    text: String,
    usage: Usage,
    version: String,
    api_version: String,
}

fn event(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

impl StreamEncoder for ApiStreamEncoder {
    fn encode(&mut self, ev: &ChatEvent, out: &mut Vec<u8>) {
        match ev {
            ChatEvent::TextDelta { choice: 0, text } if !text.is_empty() => {
                self.text.push_str(text);
                event(out, json!({ "delta": text }).to_string().as_bytes());
            }
            ChatEvent::Usage(usage) => self.usage.merge(usage),
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let last = json!({
            "output": self.text,
            "usage": usage_json(&self.usage),
            "version": self.version,
            "api_version": self.api_version,
        });
        event(out, last.to_string().as_bytes());
        event(out, b"[DONE]");
    }

    fn error(&mut self, error: &ClientError, out: &mut Vec<u8>) {
        event(out, &openai::render_error(error));
    }
}

/// `GET /apis/openapi.json`: every API the key may call, each with its served versions.
pub async fn openapi_all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = state.gateway.snapshot();
    let mut ctx = request_context(&headers);
    let who = match snapshot.authenticate(&mut ctx).await {
        Ok(who) => who,
        Err(err) => return ClientFormat::OpenAi.error_response(&err, &ctx.request_id),
    };
    let drafts = matches!(who, Principal::Admin);
    let apis: Vec<_> = snapshot
        .visible_apis(&who)
        .map(|api| (api, openapi::served_versions(api, drafts)))
        .filter(|(_, versions)| !versions.is_empty())
        .collect();
    document_response(
        &openapi::document(&apis, &snapshot.prompts),
        &ctx.request_id,
    )
}

/// `GET /apis/{name}/openapi.json`: one API's served versions.
pub async fn openapi_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let format = ClientFormat::OpenAi;
    let snapshot = state.gateway.snapshot();
    let mut ctx = request_context(&headers);
    let who = match snapshot.authenticate(&mut ctx).await {
        Ok(who) => who,
        Err(err) => return format.error_response(&err, &ctx.request_id),
    };
    let drafts = matches!(who, Principal::Admin);
    let Some(api) = snapshot.config.apis.get(&name) else {
        return format.error_response(&GatewayError::UnknownApi(name), &ctx.request_id);
    };
    let versions = openapi::served_versions(api, drafts);
    if versions.is_empty() {
        return format.error_response(&GatewayError::UnknownApi(name), &ctx.request_id);
    }
    // Docs of a gated API are readable before the subscription is approved: that is how an
    // app decides to ask for one. The allow-list still applies.
    if let Err(err) = snapshot.auth.check_api(&who, &name, false) {
        return format.error_response(&err, &ctx.request_id);
    }
    document_response(
        &openapi::document(&[(api, versions)], &snapshot.prompts),
        &ctx.request_id,
    )
}

fn document_response(document: &Value, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, json_body(document.to_string())).into_response();
    CallMeta {
        request_id,
        alias: "",
        target: None,
        attempts: 0,
    }
    .apply(response.headers_mut());
    response
}
