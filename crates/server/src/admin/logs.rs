//! `/logs`: the call log (one row per request, see docs/observability.md), filtered and
//! paged newest first with an opaque cursor, one request's calls with their bodies, and an
//! export of every matching row as JSON lines, streamed from the store page by page.
//!
//! Who sees what is decided as for `/usage` (`usage::authorize`): the platform admin any
//! organisation, a person an organisation they hold a role in (forced when it is their only
//! one), narrowed to their team when their roles are on teams only. Another organisation's
//! rows are never shown and its requests answer 404.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::openapi::Errors;
use super::usage::{authorize, require_team};
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_core::auth::roles::Action;
use switchboard_core::limits::micros_text;
use switchboard_core::limits::period::rfc3339;
use switchboard_store::{CallLogEntry, LogCursor, LogFilter, StoreError, MAX_PAGE};
use utoipa::{IntoParams, ToSchema};

/// Rows per page when `limit` is left out.
const DEFAULT_LIMIT: usize = 50;

/// `GET /logs` and `/logs/export` filters. Every one given must match; times are Unix ms.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Requests started at or after this time (Unix ms).
    pub from: Option<i64>,
    /// Requests started before this time (Unix ms).
    pub to: Option<i64>,
    /// Organisation name (forced to the caller's for a person in one organisation).
    pub org: Option<String>,
    /// Team name (needs `org` for the platform admin).
    pub team: Option<String>,
    /// App name (needs `team`).
    pub app: Option<String>,
    /// A virtual key's id.
    pub key_id: Option<String>,
    /// The model alias asked for.
    pub alias: Option<String>,
    /// `provider/model` that served (or last failed), or just `provider`.
    pub target: Option<String>,
    /// `ok`, `error` or `cancelled`.
    pub outcome: Option<String>,
    /// The HTTP status the client got.
    pub status: Option<i64>,
    /// The gateway's error code, e.g. `upstream_error`.
    pub error_code: Option<String>,
    /// A tag the request carried, `key=value`.
    pub tag: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Where the page starts: `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1..=1000 (default 50). For export: the most rows to write.
    pub limit: Option<usize>,
}

/// One upstream attempt of a call.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttemptEntry {
    /// `provider/model`.
    pub target: String,
    /// The upstream's HTTP status; 0 when no answer came.
    pub status: u16,
    pub latency_ms: u64,
    pub error_code: Option<String>,
}

/// A request tag.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TagEntry {
    pub key: String,
    pub value: String,
}

/// One call of the log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogEntry {
    pub request_id: String,
    /// Unix ms the request was admitted.
    pub started_at_ms: i64,
    /// The same time, RFC 3339 UTC.
    pub started_at: String,
    pub org: Option<String>,
    pub team: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub user: Option<String>,
    /// `chat` or `embeddings`.
    pub kind: String,
    pub alias: String,
    pub served_alias: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// `reported`, `estimated` or `none`.
    pub usage_source: String,
    pub cost_micros: i64,
    /// Exact decimal dollars.
    pub cost_usd: String,
    pub priced: bool,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    /// `ok`, `error` or `cancelled`.
    pub outcome: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub tags: Vec<TagEntry>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub route: Option<String>,
    /// Every upstream attempt in order.
    pub attempt_log: Vec<AttemptEntry>,
    pub cache: Option<String>,
    pub guardrail: Option<String>,
    pub trace_id: Option<String>,
    /// The stored request body (redacted), when bodies are logged for this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bodies_truncated: Option<bool>,
}

impl From<CallLogEntry> for LogEntry {
    fn from(e: CallLogEntry) -> LogEntry {
        let r = e.record;
        let d = r.details;
        LogEntry {
            started_at: rfc3339(r.started_at_ms),
            request_id: r.request_id,
            started_at_ms: r.started_at_ms,
            org: r.caller.org,
            team: r.caller.team,
            app: r.caller.app,
            key_id: r.caller.key_id,
            user: r.caller.user,
            kind: r.kind.as_str().to_owned(),
            alias: r.alias,
            served_alias: r.served_alias,
            provider: r.provider,
            model: r.model,
            stream: r.stream,
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cached_input_tokens: r.usage.cached_input_tokens,
            cache_write_tokens: r.usage.cache_write_tokens,
            reasoning_tokens: r.usage.reasoning_tokens,
            usage_source: r.usage_source.as_str().to_owned(),
            cost_micros: r.cost.0,
            cost_usd: micros_text(r.cost.0),
            priced: r.priced,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            attempts: r.attempts,
            outcome: r.outcome.as_str().to_owned(),
            status: r.status,
            error_code: r.error_code,
            tags: r
                .tags
                .into_iter()
                .map(|(key, value)| TagEntry { key, value })
                .collect(),
            client_ip: d.client_ip,
            user_agent: d.user_agent,
            route: d.route,
            attempt_log: d
                .attempts
                .into_iter()
                .map(|a| AttemptEntry {
                    target: a.target,
                    status: a.status,
                    latency_ms: a.latency_ms,
                    error_code: a.error_code,
                })
                .collect(),
            cache: d.cache,
            guardrail: d.guardrail,
            trace_id: d.trace_id,
            bodies_truncated: e.bodies.as_ref().map(|b| b.truncated),
            request_body: e.bodies.as_ref().and_then(|b| b.request_body.clone()),
            response_body: e.bodies.and_then(|b| b.response_body),
        }
    }
}

/// One page of the call log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogList {
    /// Newest first.
    pub data: Vec<LogEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The calls recorded under one request id.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogCalls {
    pub request_id: String,
    /// Oldest first (ids may be reused by clients).
    pub data: Vec<LogEntry>,
}

/// Checks the parameters and the caller's rights and turns them into the store's filter.
async fn filter_of(state: &AppState, caller: &Caller, p: &LogParams) -> ApiResult<LogFilter> {
    require_team(p.team.as_ref(), p.app.as_ref())?;
    if p.team.is_some() && p.org.is_none() && caller.is_platform() {
        return Err(ApiError::invalid_field(
            "org",
            "a team is named within its organisation: add `org`",
        ));
    }
    if let (Some(from), Some(to)) = (p.from, p.to) {
        if from >= to {
            return Err(ApiError::invalid_field("to", "`to` must be after `from`"));
        }
    }
    if let Some(outcome) = &p.outcome {
        if !matches!(outcome.as_str(), "ok" | "error" | "cancelled") {
            return Err(ApiError::invalid_field(
                "outcome",
                "`outcome` is one of ok, error, cancelled",
            ));
        }
    }
    if let Some(status) = p.status {
        if !(100..=599).contains(&status) {
            return Err(ApiError::invalid_field(
                "status",
                "`status` is an HTTP status, 100..=599",
            ));
        }
    }
    let tag = match &p.tag {
        Some(tag) => match tag.split_once('=') {
            Some((k, v)) if !k.is_empty() => Some((k.to_owned(), v.to_owned())),
            _ => {
                return Err(ApiError::invalid_field(
                    "tag",
                    "`tag` is `key=value`, e.g. `env=prod`",
                ))
            }
        },
        None => None,
    };
    let subject = authorize(state, caller, p.org.as_deref(), p.team.as_deref()).await?;
    Ok(LogFilter {
        from_ms: p.from,
        to_ms: p.to,
        org: subject.org_name,
        team: subject.team,
        app: p.app.clone(),
        key_id: p.key_id.clone(),
        alias: p.alias.clone(),
        target: p.target.clone(),
        outcome: p.outcome.clone(),
        status: p.status,
        error_code: p.error_code.clone(),
        tag,
        request_id: p.request_id.clone(),
    })
}

fn cursor_of(p: &LogParams) -> ApiResult<Option<LogCursor>> {
    p.cursor
        .as_deref()
        .map(|text| {
            LogCursor::decode(text).ok_or_else(|| {
                ApiError::invalid_field(
                    "cursor",
                    "`cursor` is not one this API gave: pass `next_cursor` unchanged",
                )
            })
        })
        .transpose()
}

/// The calls matching the filters, newest first, one page at a time.
#[utoipa::path(get, path = "/logs", tag = "logs", params(LogParams),
    responses((status = 200, body = LogList), Errors))]
pub async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<LogParams>,
) -> ApiResult<Json<LogList>> {
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "limit",
                format!("`limit` is 1..={MAX_PAGE}"),
            ))
        }
    };
    let cursor = cursor_of(&params)?;
    let filter = filter_of(&state, &caller, &params).await?;
    let page = state
        .runtime
        .store
        .list_calls(&filter, cursor, limit)
        .await?;
    Ok(Json(LogList {
        data: page.entries.into_iter().map(LogEntry::from).collect(),
        next_cursor: page.next.map(LogCursor::encode),
    }))
}

/// Every call recorded under a request id, with its stored bodies. 404 when none is visible to
/// the caller.
#[utoipa::path(get, path = "/logs/{request_id}", tag = "logs",
    params(("request_id" = String, Path, description = "The request id (`x-request-id`)")),
    responses((status = 200, body = LogCalls), Errors))]
pub async fn get_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(request_id): Path<String>,
) -> ApiResult<Json<LogCalls>> {
    let store = &state.runtime.store;
    let calls = store.calls_by_request(&request_id, None).await?;
    let mut visible = Vec::with_capacity(calls.len());
    for call in calls {
        if may_read(&state, &caller, &call).await? {
            visible.push(LogEntry::from(call));
        }
    }
    if visible.is_empty() {
        return Err(ApiError::not_found("request", &request_id));
    }
    Ok(Json(LogCalls {
        request_id,
        data: visible,
    }))
}

/// Whether the caller may read this call: the platform admin always; a person when a role on
/// the call's organisation, or on its team, allows reading usage.
async fn may_read(state: &AppState, caller: &Caller, call: &CallLogEntry) -> ApiResult<bool> {
    if caller.is_platform() {
        return Ok(true);
    }
    let Some(org_name) = &call.record.caller.org else {
        return Ok(false);
    };
    let store = &state.runtime.store;
    let org = match store.get_org(org_name).await {
        Ok(org) => org,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    if caller.may(&org.id, None, Action::ReadUsage) {
        return Ok(true);
    }
    let Some(team_name) = &call.record.caller.team else {
        return Ok(false);
    };
    match store.get_team(&org.id, team_name).await {
        Ok(team) => Ok(caller.may(&org.id, Some(&team.id), Action::ReadUsage)),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Every call matching the filters as JSON lines (`application/x-ndjson`, one `LogEntry` per
/// line, newest first), streamed: memory stays bounded however many rows match. A storage
/// failure midway cuts the response off (the client sees an incomplete body, never a silent
/// end).
#[utoipa::path(get, path = "/logs/export", tag = "logs", params(LogParams),
    responses((status = 200, content_type = "application/x-ndjson",
        description = "One JSON `LogEntry` per line"), Errors))]
pub async fn export_logs(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<LogParams>,
) -> ApiResult<Response> {
    if params.cursor.is_some() {
        return Err(ApiError::invalid_field(
            "cursor",
            "export reads every matching row: leave out `cursor`",
        ));
    }
    if params.limit == Some(0) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be at least 1",
        ));
    }
    let filter = filter_of(&state, &caller, &params).await?;
    let rows = state.runtime.store.export_calls(filter);
    let rows = rows.take(params.limit.unwrap_or(usize::MAX));
    let lines = rows.map(|row| {
        let entry = LogEntry::from(row?);
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        Ok::<Bytes, ExportError>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Why an export stopped midway.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("encoding: {0}")]
    Encode(#[from] std::io::Error),
}
