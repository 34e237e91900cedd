//! `/usage` and `/limits/status`: what callers used (totals of the usage ledger, filtered and
//! grouped) and how the limits and budgets that apply to a caller stand now.
//!
//! The platform admin may ask about anyone. A person asks about an organisation they belong to
//! (it is forced when they belong to one only): an org-wide role (any) sees all of it, a role
//! on a team sees that team only (forced when it is their only team there).

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::openapi::Errors;
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::auth::roles::{allows, Action};
use switchboard_core::limits::{micros_text, LimitReport, Who};
use switchboard_store::{Org, StoreError, UsageFilter, UsageGroup, UsageTotals};
use utoipa::{IntoParams, ToSchema};

/// What usage totals are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The virtual key id.
    Key,
    /// `org/team/app`.
    App,
    /// `org/team`.
    Team,
    Org,
    /// The alias the client asked for.
    Alias,
    /// The upstream model that served.
    Model,
    /// The UTC date, `YYYY-MM-DD`.
    Day,
}

impl From<GroupBy> for UsageGroup {
    fn from(group: GroupBy) -> UsageGroup {
        match group {
            GroupBy::Key => UsageGroup::Key,
            GroupBy::App => UsageGroup::App,
            GroupBy::Team => UsageGroup::Team,
            GroupBy::Org => UsageGroup::Org,
            GroupBy::Alias => UsageGroup::Alias,
            GroupBy::Model => UsageGroup::Model,
            GroupBy::Day => UsageGroup::Day,
        }
    }
}

/// `GET /usage` filters. Every one given must match; times are Unix milliseconds.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Organisation name (forced to the caller's for a person in one organisation).
    pub org: Option<String>,
    /// Team name (needs `org`).
    pub team: Option<String>,
    /// App name (needs `team`).
    pub app: Option<String>,
    /// A virtual key's id.
    pub key_id: Option<String>,
    /// The model alias asked for.
    pub alias: Option<String>,
    /// Requests started at or after this time (Unix ms).
    pub from: Option<i64>,
    /// Requests started before this time (Unix ms).
    pub to: Option<i64>,
    /// `key`, `app`, `team`, `org`, `alias`, `model` or `day`; totals only when left out.
    pub group_by: Option<GroupBy>,
}

/// The filters applied (after any forcing of the caller's organisation or team).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct UsageScope {
    pub org: Option<String>,
    pub team: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub alias: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Totals of one group (or of everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsageRow {
    /// The group's value (null for the overall total, and for records without the value).
    pub group: Option<String>,
    pub requests: i64,
    /// Requests that did not end `ok` (errors and cancellations).
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Input plus output tokens.
    pub total_tokens: i64,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
    /// The same cost in dollars, as an exact decimal string (`"0.00125"`).
    pub cost_usd: String,
}

impl From<UsageTotals> for UsageRow {
    fn from(t: UsageTotals) -> UsageRow {
        UsageRow {
            group: t.group,
            requests: t.requests,
            errors: t.errors,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_input_tokens: t.cached_input_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            total_tokens: t.input_tokens.saturating_add(t.output_tokens),
            cost_micros: t.cost_micros,
            cost_usd: micros_text(t.cost_micros),
        }
    }
}

impl UsageRow {
    fn add(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.total_tokens += other.total_tokens;
        self.cost_micros += other.cost_micros;
        self.cost_usd = micros_text(self.cost_micros);
    }
}

/// The answer of `GET /usage`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub filter: UsageScope,
    pub group_by: Option<GroupBy>,
    /// One row per group value, in order of the value; one row (group null) when not grouped.
    pub data: Vec<UsageRow>,
    /// The sum of every row.
    pub total: UsageRow,
}

/// `GET /limits/status` subject.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusParams {
    /// Organisation name (forced to the caller's for a person in one organisation).
    pub org: Option<String>,
    /// Team name.
    pub team: Option<String>,
    /// App name (needs `team`).
    pub app: Option<String>,
    /// A virtual key's id: its team and app are filled in from the key.
    pub key_id: Option<String>,
}

/// One limit or budget as it stands for the subject.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LimitStatus {
    /// The rule's name (its own, or one made from its scope and match).
    pub rule: String,
    /// `key`, `app`, `team` or `org`: whose counter.
    pub scope: String,
    /// The counter's subject: a key id, `org/team/app`, `org/team` or `org`.
    pub subject: String,
    /// `requests_per_second`, `requests_per_minute`, `tokens_per_minute`, `concurrent` or
    /// `budget`.
    pub limit_kind: String,
    /// For budgets, micro-dollars.
    pub limit: i64,
    /// Including reservations of requests in flight.
    pub used: i64,
    pub remaining: i64,
    /// Milliseconds until the window resets (0 when it does not).
    pub reset_ms: u64,
    /// Budgets: `day`, `week`, `month` or `total`.
    pub period: Option<String>,
    /// Budgets: when the period starts afresh (RFC 3339; null for `total`).
    pub resets_at: Option<String>,
    /// Budgets: `block`, `alert` or `downgrade`.
    pub action: Option<String>,
    /// Budgets: `limit`, `used` and `remaining` in dollars, exact decimal strings.
    pub limit_usd: Option<String>,
    pub used_usd: Option<String>,
    pub remaining_usd: Option<String>,
}

impl From<LimitReport> for LimitStatus {
    fn from(r: LimitReport) -> LimitStatus {
        let budget = r.limit_kind == "budget";
        let usd = |micros: i64| budget.then(|| micros_text(micros));
        LimitStatus {
            scope: r.scope.as_str().to_owned(),
            limit_kind: r.limit_kind.to_owned(),
            limit_usd: usd(r.limit),
            used_usd: usd(r.used),
            remaining_usd: usd(r.remaining),
            period: r.period.map(str::to_owned),
            action: r.action.and_then(|a| {
                serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
            }),
            rule: r.rule,
            subject: r.subject,
            limit: r.limit,
            used: r.used,
            remaining: r.remaining,
            reset_ms: r.reset_ms,
            resets_at: r.resets_at,
        }
    }
}

/// The answer of `GET /limits/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LimitsReport {
    pub org: String,
    pub team: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    /// Every key, app, team and org limit and budget that applies, for any alias.
    pub data: Vec<LimitStatus>,
}

/// Whom a question is about, after authorization: the organisation's name (None: every
/// organisation, for the platform admin only), its record when it exists, and the team.
pub(super) struct Subject {
    pub(super) org: Option<Org>,
    pub(super) org_name: Option<String>,
    pub(super) team: Option<String>,
}

/// Checks that the caller may read usage of `org` (and `team`), forcing the caller's own
/// organisation and team where they have only one.
pub(super) async fn authorize(
    state: &AppState,
    caller: &Caller,
    org: Option<&str>,
    team: Option<&str>,
) -> ApiResult<Subject> {
    let store = &state.runtime.store;
    if caller.is_platform() {
        let record = match org {
            Some(name) => match store.get_org(name).await {
                Ok(org) => Some(org),
                Err(StoreError::NotFound { .. }) => None,
                Err(err) => return Err(err.into()),
            },
            None => None,
        };
        return Ok(Subject {
            org: record,
            org_name: org.map(str::to_owned),
            team: team.map(str::to_owned),
        });
    }
    let org = match org {
        Some(name) => caller.org(store, name).await?,
        None => match caller.visible_orgs().unwrap_or_default().as_slice() {
            [only] => store.get_org_by_id(only).await?,
            [] => {
                return Err(ApiError::forbidden(
                    "reading usage needs a role in an organisation",
                ))
            }
            _ => {
                return Err(ApiError::invalid_field(
                    "org",
                    "you belong to several organisations: say which with `org`",
                ))
            }
        },
    };
    let team = if caller.may(&org.id, None, Action::ReadUsage) {
        team.map(str::to_owned)
    } else {
        Some(forced_team(state, caller, &org, team).await?)
    };
    Ok(Subject {
        org_name: Some(org.name.clone()),
        org: Some(org),
        team,
    })
}

/// The team a caller with team roles only may read: the one asked for (checked), or their only
/// one.
async fn forced_team(
    state: &AppState,
    caller: &Caller,
    org: &Org,
    team: Option<&str>,
) -> ApiResult<String> {
    let store = &state.runtime.store;
    if let Some(name) = team {
        let record = store
            .get_team(&org.id, name)
            .await
            .map_err(|_| ApiError::not_found("team", name))?;
        caller.require(org, Some((&record.id, name)), Action::ReadUsage)?;
        return Ok(name.to_owned());
    }
    let mut teams: Vec<&str> = caller
        .roles()
        .iter()
        .filter(|r| r.org_id == org.id && allows(r.role, Action::ReadUsage))
        .filter_map(|r| r.team_id.as_deref())
        .collect();
    teams.sort_unstable();
    teams.dedup();
    match teams.as_slice() {
        [only] => Ok(store.get_team_by_id(&org.id, only).await?.name),
        _ => Err(ApiError::forbidden(format!(
            "your roles in organisation `{}` are on teams: say which with `team`",
            org.name
        ))),
    }
}

pub(super) fn require_team(team: Option<&String>, app: Option<&String>) -> ApiResult<()> {
    if app.is_some() && team.is_none() {
        return Err(ApiError::invalid_field(
            "team",
            "an app is named within its team: add `team`",
        ));
    }
    Ok(())
}

/// Usage totals (requests, errors, tokens by kind, cost), filtered and optionally grouped.
#[utoipa::path(get, path = "/usage", tag = "usage", params(UsageParams),
    responses((status = 200, body = UsageReport), Errors))]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    require_team(params.team.as_ref(), params.app.as_ref())?;
    if params.team.is_some() && params.org.is_none() && caller.is_platform() {
        return Err(ApiError::invalid_field(
            "org",
            "a team is named within its organisation: add `org`",
        ));
    }
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from >= to {
            return Err(ApiError::invalid_field("to", "`to` must be after `from`"));
        }
    }
    let subject = authorize(
        &state,
        &caller,
        params.org.as_deref(),
        params.team.as_deref(),
    )
    .await?;
    let filter = UsageFilter {
        org: subject.org_name,
        team: subject.team,
        app: params.app,
        key_id: params.key_id,
        alias: params.alias,
        from_ms: params.from,
        to_ms: params.to,
    };
    let group = params.group_by.map(UsageGroup::from);
    let totals = state.runtime.store.usage_totals(&filter, group).await?;
    let data: Vec<UsageRow> = totals.into_iter().map(UsageRow::from).collect();
    let mut total = UsageRow {
        cost_usd: micros_text(0),
        ..UsageRow::default()
    };
    for row in &data {
        total.add(row);
    }
    Ok(Json(UsageReport {
        filter: UsageScope {
            org: filter.org,
            team: filter.team,
            app: filter.app,
            key_id: filter.key_id,
            alias: filter.alias,
            from: filter.from_ms,
            to: filter.to_ms,
        },
        group_by: params.group_by,
        data,
        total,
    }))
}

/// Every key, app, team and org limit and budget that applies to a subject (an organisation,
/// a team, an app or a key), with its current use and what remains. Reading takes nothing.
#[utoipa::path(get, path = "/limits/status", tag = "usage", params(StatusParams),
    responses((status = 200, body = LimitsReport),
        (status = 503, description = "The shared limit counters (Redis) cannot answer"), Errors))]
pub async fn limits_status(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<StatusParams>,
) -> ApiResult<Json<LimitsReport>> {
    require_team(params.team.as_ref(), params.app.as_ref())?;
    if params.org.is_none() && caller.is_platform() {
        return Err(ApiError::invalid_field("org", "`org` is required"));
    }
    let subject = authorize(
        &state,
        &caller,
        params.org.as_deref(),
        params.team.as_deref(),
    )
    .await?;
    let store = &state.runtime.store;
    let org_name = subject.org_name.unwrap_or_default();
    let Some(org) = subject.org else {
        return Err(ApiError::not_found("organisation", &org_name));
    };
    let mut team = subject.team;
    let mut app = params.app;
    if let Some(key_id) = &params.key_id {
        let key = store
            .get_key(&org.id, key_id)
            .await
            .map_err(|_| ApiError::not_found("key", key_id))?;
        let key_team = match &key.team_id {
            Some(id) => Some(store.get_team_by_id(&org.id, id).await?.name),
            None => None,
        };
        let key_app = match (&key.app_id, &key.team_id) {
            (Some(id), Some(_)) => Some(store.get_app_by_id(&org.id, id).await?.name),
            _ => None,
        };
        if team.is_some() && team != key_team {
            // A team-scoped caller asking about another team's key, or a mismatch.
            return Err(ApiError::not_found("key", key_id));
        }
        if app.is_some() && app != key_app {
            return Err(ApiError::invalid_field(
                "app",
                format!(
                    "key `{key_id}` does not belong to app `{}`",
                    app.unwrap_or_default()
                ),
            ));
        }
        team = key_team;
        app = key_app;
    } else if let (Some(team_name), Some(app_name)) = (&team, &app) {
        let team_record = store
            .get_team(&org.id, team_name)
            .await
            .map_err(|_| ApiError::not_found("team", team_name))?;
        store
            .get_app(&org.id, &team_record.id, app_name)
            .await
            .map_err(|_| ApiError::not_found("app", app_name))?;
    }
    let who = Who {
        org: Some(&org.name),
        team: team.as_deref(),
        app: app.as_deref(),
        key_id: params.key_id.as_deref(),
    };
    let snapshot = state.gateway.snapshot();
    let reports = snapshot.limiter.report(&who).await.map_err(|err| {
        tracing::warn!(%err, "Cannot read limit counters for a status report.");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "limits_unavailable",
            "the limit counters cannot be read right now (the shared counter store is \
             unreachable); retry shortly",
        )
    })?;
    Ok(Json(LimitsReport {
        org: org.name.clone(),
        team,
        app,
        key_id: params.key_id,
        data: reports.into_iter().map(LimitStatus::from).collect(),
    }))
}
