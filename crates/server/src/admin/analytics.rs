//! `/analytics/timeseries` and `/analytics/top`: requests, errors, latency percentiles, time
//! to first token, tokens and cost from the per-minute rollups, as a series per minute, hour
//! or day, or as the top N values of a dimension over a range.
//!
//! Rollups hold one dimension per row, so a query filters and groups by one of `team`, `app`,
//! `alias`, `target`, `key_id` or `tag` (filter and group-by on the same one), within one
//! organisation (forced for org-scoped callers, as for `/usage`). A person whose roles are on
//! one team only reads that team's totals (`team` dimension, no grouping).

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::openapi::Errors;
use super::usage::authorize;
use crate::http::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::auth::roles::Action;
use switchboard_core::limits::micros_text;
use switchboard_store::{Dimension, Interval, RollupPoint, RollupQuery, TopOrder};
use switchboard_types::calendar::now_ms;
use utoipa::{IntoParams, ToSchema};

/// The most buckets one series may span.
const MAX_BUCKETS: i64 = 10_000;
/// The largest top-N.
const MAX_TOP: usize = 1_000;

/// What analytics are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsGroup {
    /// No grouping: one series.
    None,
    Alias,
    /// `provider/model`.
    Target,
    /// `org/team`.
    Team,
    /// `org/team/app`.
    App,
    /// The key id.
    Key,
    /// `key=value`.
    Tag,
}

impl AnalyticsGroup {
    fn dimension(self) -> Dimension {
        match self {
            AnalyticsGroup::None => Dimension::All,
            AnalyticsGroup::Alias => Dimension::Alias,
            AnalyticsGroup::Target => Dimension::Target,
            AnalyticsGroup::Team => Dimension::Team,
            AnalyticsGroup::App => Dimension::App,
            AnalyticsGroup::Key => Dimension::Key,
            AnalyticsGroup::Tag => Dimension::Tag,
        }
    }
}

/// Analytics parameters. Times are Unix ms; the range defaults to the last 24 hours and is
/// widened to whole buckets.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `minute`, `hour` (default) or `day` (series only).
    pub interval: Option<IntervalParam>,
    /// `none` (default for series), `alias`, `target`, `team`, `app`, `key` or `tag`.
    pub group_by: Option<AnalyticsGroup>,
    /// Organisation name (forced to the caller's for a person in one organisation).
    pub org: Option<String>,
    /// Filters: at most one (plus `org`); `app` needs `team`.
    pub team: Option<String>,
    pub app: Option<String>,
    pub alias: Option<String>,
    /// `provider/model`.
    pub target: Option<String>,
    pub key_id: Option<String>,
    /// `key=value`.
    pub tag: Option<String>,
    /// Top only: `requests` (default), `cost`, `tokens`, `errors` or `latency` (p95).
    pub order_by: Option<OrderBy>,
    /// Top only: how many, 1..=1000 (default 10).
    pub limit: Option<usize>,
}

/// The width of a series bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntervalParam {
    Minute,
    Hour,
    Day,
}

impl From<IntervalParam> for Interval {
    fn from(i: IntervalParam) -> Interval {
        match i {
            IntervalParam::Minute => Interval::Minute,
            IntervalParam::Hour => Interval::Hour,
            IntervalParam::Day => Interval::Day,
        }
    }
}

/// What a top list is ordered by (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    Requests,
    Cost,
    /// Input plus output tokens.
    Tokens,
    Errors,
    /// p95 latency.
    Latency,
}

impl From<OrderBy> for TopOrder {
    fn from(o: OrderBy) -> TopOrder {
        match o {
            OrderBy::Requests => TopOrder::Requests,
            OrderBy::Cost => TopOrder::Cost,
            OrderBy::Tokens => TopOrder::Tokens,
            OrderBy::Errors => TopOrder::Errors,
            OrderBy::Latency => TopOrder::Latency,
        }
    }
}

/// Sums over one bucket and group.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsPoint {
    /// The bucket's start, Unix ms (series only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    /// The group's value (null when not grouped).
    pub group: Option<String>,
    pub requests: i64,
    /// Requests that ended in an error (cancellations are counted apart).
    pub errors: i64,
    pub cancelled: i64,
    /// errors / requests.
    pub error_rate: f64,
    /// Latency percentiles in ms, interpolated within the rollups' buckets.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    /// Average time to first token of streamed requests.
    pub avg_ttft_ms: Option<f64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
    pub cost_micros: i64,
    pub cost_usd: String,
}

impl From<RollupPoint> for AnalyticsPoint {
    fn from(p: RollupPoint) -> AnalyticsPoint {
        let s = &p.stats;
        AnalyticsPoint {
            t: p.bucket_ms,
            requests: s.requests,
            errors: s.errors,
            cancelled: s.cancelled,
            error_rate: s.error_rate(),
            p50_ms: s.latency_percentile(0.5),
            p95_ms: s.latency_percentile(0.95),
            p99_ms: s.latency_percentile(0.99),
            avg_latency_ms: s.avg_latency_ms(),
            avg_ttft_ms: s.avg_ttft_ms(),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cached_input_tokens: s.cached_input_tokens,
            cache_write_tokens: s.cache_write_tokens,
            reasoning_tokens: s.reasoning_tokens,
            total_tokens: s.total_tokens(),
            cost_micros: s.cost_micros,
            cost_usd: micros_text(s.cost_micros),
            group: p.group,
        }
    }
}

/// The answer of both analytics routes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsReport {
    /// The organisation read (null: every organisation, platform admin only).
    pub org: Option<String>,
    /// The range read, widened to whole buckets.
    pub from: i64,
    pub to: i64,
    pub interval: Option<IntervalParam>,
    pub group_by: AnalyticsGroup,
    /// The one filter applied, as `dimension` and `value`.
    pub filter: Option<AnalyticsFilter>,
    pub order_by: Option<OrderBy>,
    /// Series: by bucket, then group value. Top: largest first.
    pub data: Vec<AnalyticsPoint>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsFilter {
    pub dimension: String,
    pub value: String,
}

/// The checked query and what to report about it.
struct Plan {
    query: RollupQuery,
    group: AnalyticsGroup,
    filter: Option<AnalyticsFilter>,
}

async fn plan(
    state: &AppState,
    caller: &Caller,
    p: &AnalyticsParams,
    width: i64,
    default_group: AnalyticsGroup,
) -> ApiResult<Plan> {
    let to = p.to.unwrap_or_else(now_ms);
    let from = p.from.unwrap_or(to - 86_400_000);
    if from >= to {
        return Err(ApiError::invalid_field("to", "`to` must be after `from`"));
    }
    let from = from.div_euclid(width) * width;
    let to = (to - 1).div_euclid(width) * width + width;
    if (to - from) / width > MAX_BUCKETS {
        return Err(ApiError::invalid_field(
            "interval",
            format!("the range spans more than {MAX_BUCKETS} buckets: widen `interval` or narrow the range"),
        ));
    }
    if p.app.is_some() && p.team.is_none() {
        return Err(ApiError::invalid_field(
            "team",
            "an app is named within its team: add `team`",
        ));
    }
    if p.team.is_some() && p.org.is_none() && caller.is_platform() {
        return Err(ApiError::invalid_field(
            "org",
            "a team is named within its organisation: add `org`",
        ));
    }
    if let Some(tag) = &p.tag {
        if !tag.contains('=') {
            return Err(ApiError::invalid_field("tag", "`tag` is `key=value`"));
        }
    }
    let subject = authorize(state, caller, p.org.as_deref(), p.team.as_deref()).await?;
    let org = subject.org_name.clone().unwrap_or_default();
    // A person whose only right is on one team reads that team's rows.
    let team_only = match &subject.org {
        Some(record) => {
            p.team.is_none()
                && subject.team.is_some()
                && !caller.may(&record.id, None, Action::ReadUsage)
        }
        None => false,
    };
    let team = subject.team.clone();
    let mut filters: Vec<(Dimension, &'static str, String)> = Vec::new();
    match (&team, &p.app) {
        (Some(team), Some(app)) => {
            filters.push((Dimension::App, "app", format!("{org}/{team}/{app}")))
        }
        (Some(team), None) => filters.push((Dimension::Team, "team", format!("{org}/{team}"))),
        _ => {}
    }
    for (dim, name, value) in [
        (Dimension::Alias, "alias", &p.alias),
        (Dimension::Target, "target", &p.target),
        (Dimension::Key, "key_id", &p.key_id),
        (Dimension::Tag, "tag", &p.tag),
    ] {
        if let Some(value) = value {
            filters.push((dim, name, value.clone()));
        }
    }
    if filters.len() > 1 {
        let message = if team_only {
            "your roles are on one team: its analytics cannot be narrowed further".to_owned()
        } else {
            "filter by at most one of team (with app), alias, target, key_id and tag: the \
             rollups hold one of them per row"
                .to_owned()
        };
        return Err(ApiError::invalid_field(filters[1].1, message));
    }
    let group = p.group_by.unwrap_or(default_group);
    let filter = filters.pop();
    if let Some((dim, name, _)) = &filter {
        if group != AnalyticsGroup::None && group.dimension() != *dim {
            return Err(ApiError::invalid_field(
                name,
                format!(
                    "filtering by `{name}` and grouping by `{}` cannot be combined: the rollups \
                     hold one dimension per row; group by the filtered dimension or by none",
                    group.dimension().as_str()
                ),
            ));
        }
    }
    let dimension = match &filter {
        Some((dim, _, _)) => *dim,
        None => group.dimension(),
    };
    Ok(Plan {
        query: RollupQuery {
            org: subject.org_name,
            dimension,
            value: filter.as_ref().map(|(_, _, v)| v.clone()),
            from_ms: from,
            to_ms: to,
        },
        group,
        filter: filter.map(|(dim, _, value)| AnalyticsFilter {
            dimension: dim.as_str().to_owned(),
            value,
        }),
    })
}

/// A time series of requests, errors, latency percentiles, TTFT, tokens and cost per bucket,
/// optionally per group value.
#[utoipa::path(get, path = "/analytics/timeseries", tag = "analytics", params(AnalyticsParams),
    responses((status = 200, body = AnalyticsReport), Errors))]
pub async fn timeseries(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<AnalyticsParams>,
) -> ApiResult<Json<AnalyticsReport>> {
    if params.order_by.is_some() || params.limit.is_some() {
        return Err(ApiError::invalid_field(
            "order_by",
            "`order_by` and `limit` belong to /analytics/top",
        ));
    }
    let interval_param = params.interval.unwrap_or(IntervalParam::Hour);
    let interval = Interval::from(interval_param);
    let plan = plan(
        &state,
        &caller,
        &params,
        interval.width_ms(),
        AnalyticsGroup::None,
    )
    .await?;
    let points = state
        .runtime
        .store
        .rollup_series(&plan.query, interval)
        .await?;
    Ok(Json(AnalyticsReport {
        org: plan.query.org.clone(),
        from: plan.query.from_ms,
        to: plan.query.to_ms,
        interval: Some(interval_param),
        group_by: plan.group,
        filter: plan.filter,
        order_by: None,
        data: points.into_iter().map(AnalyticsPoint::from).collect(),
    }))
}

/// The top values of a dimension over a range, by requests, cost, tokens, errors or p95
/// latency.
#[utoipa::path(get, path = "/analytics/top", tag = "analytics", params(AnalyticsParams),
    responses((status = 200, body = AnalyticsReport), Errors))]
pub async fn top(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<AnalyticsParams>,
) -> ApiResult<Json<AnalyticsReport>> {
    if params.interval.is_some() {
        return Err(ApiError::invalid_field(
            "interval",
            "`interval` belongs to /analytics/timeseries",
        ));
    }
    let n = match params.limit {
        None => 10,
        Some(n) if (1..=MAX_TOP).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "limit",
                format!("`limit` is 1..={MAX_TOP}"),
            ))
        }
    };
    let Some(group) = params.group_by.filter(|g| *g != AnalyticsGroup::None) else {
        return Err(ApiError::invalid_field(
            "group_by",
            "a top list needs `group_by`: alias, target, team, app, key or tag",
        ));
    };
    let order_param = params.order_by.unwrap_or(OrderBy::Requests);
    let order = TopOrder::from(order_param);
    let plan = plan(&state, &caller, &params, 60_000, group).await?;
    let points = state
        .runtime
        .store
        .rollup_top(&plan.query, order, n)
        .await?;
    Ok(Json(AnalyticsReport {
        org: plan.query.org.clone(),
        from: plan.query.from_ms,
        to: plan.query.to_ms,
        interval: None,
        group_by: plan.group,
        filter: plan.filter,
        order_by: Some(order_param),
        data: points.into_iter().map(AnalyticsPoint::from).collect(),
    }))
}
