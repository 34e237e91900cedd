//! `/rate-limits` and `/budgets`: rate-limit rules and budgets kept in the database, with the
//! same shape as a config file's `rate_limits:` and `budgets:` entries (named by the URL).
//!
//! A PUT is validated exactly as a reload would validate it: the whole effective config (the
//! server's file plus every stored object, with the candidate in place) is loaded, and its
//! problems answer 400. Names the server's file uses are read-only here (the file wins);
//! rules owned by `switchboard apply` answer 409 `managed_by_apply`. After a change this
//! instance rebuilds its config before answering; the store's change event makes every other
//! instance do the same.
//!
//! Who may: the platform admin everything. A person sees the rules whose `match.org` is an
//! organisation they belong to (others are 404, as if they did not exist) and, as an owner or
//! admin of it, creates, changes and deletes them. Rules that name no organisation apply to
//! everyone: only the platform admin sees or changes them.

use super::auth::Caller;
use super::dto::PageParams;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params};
use super::openapi::Errors;
use crate::http::AppState;
use crate::runtime::ConfigSource;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::auth::roles::Action;
use switchboard_core::config::StoredLayer;
use switchboard_core::limits::{BudgetRule, Match, RateLimitRule};
use switchboard_store::{Actor, Store, StoreError, StoredRule};
use utoipa::ToSchema;

/// A stored rate-limit rule or budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitRule {
    pub name: String,
    /// The entry as a config file's `rate_limits:` (or `budgets:`) list writes it, `name`
    /// included; budgets write `usd` in dollars and `alert_at` as fractions.
    #[schema(value_type = Object)]
    pub rule: Value,
    /// `apply` when config as code owns it: read-only here.
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A page of rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitRulePage {
    pub data: Vec<LimitRule>,
    pub next_cursor: Option<String>,
}

/// What the handlers need of a rule type: its section, its match, and its store calls.
trait Rule: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The config file's section: `rate_limits` or `budgets`.
    const SECTION: &'static str;
    /// The store's (and the audit log's) kind: `rate_limit` or `budget`.
    const KIND: &'static str;
    /// For messages: `rate limit` or `budget`.
    const LABEL: &'static str;
    fn matches(&self) -> &Match;
    fn set_name(&mut self, name: String);
    async fn list(store: &Store) -> Result<Vec<StoredRule<Self>>, StoreError>;
    async fn get(store: &Store, name: &str) -> Result<StoredRule<Self>, StoreError>;
    async fn put(store: &Store, actor: &Actor, rule: Self) -> Result<bool, StoreError>;
    async fn delete(store: &Store, actor: &Actor, name: &str) -> Result<(), StoreError>;
}

impl Rule for RateLimitRule {
    const SECTION: &'static str = "rate_limits";
    const KIND: &'static str = "rate_limit";
    const LABEL: &'static str = "rate limit";
    fn matches(&self) -> &Match {
        &self.matches
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    async fn list(store: &Store) -> Result<Vec<StoredRule<Self>>, StoreError> {
        store.list_rate_limits().await
    }
    async fn get(store: &Store, name: &str) -> Result<StoredRule<Self>, StoreError> {
        store.get_rate_limit(name).await
    }
    async fn put(store: &Store, actor: &Actor, rule: Self) -> Result<bool, StoreError> {
        store.put_rate_limit(actor, rule, None).await
    }
    async fn delete(store: &Store, actor: &Actor, name: &str) -> Result<(), StoreError> {
        store.delete_rate_limit(actor, name).await
    }
}

impl Rule for BudgetRule {
    const SECTION: &'static str = "budgets";
    const KIND: &'static str = "budget";
    const LABEL: &'static str = "budget";
    fn matches(&self) -> &Match {
        &self.matches
    }
    fn set_name(&mut self, name: String) {
        self.name = Some(name);
    }
    async fn list(store: &Store) -> Result<Vec<StoredRule<Self>>, StoreError> {
        store.list_budgets().await
    }
    async fn get(store: &Store, name: &str) -> Result<StoredRule<Self>, StoreError> {
        store.get_budget(name).await
    }
    async fn put(store: &Store, actor: &Actor, rule: Self) -> Result<bool, StoreError> {
        store.put_budget(actor, rule, None).await
    }
    async fn delete(store: &Store, actor: &Actor, name: &str) -> Result<(), StoreError> {
        store.delete_budget(actor, name).await
    }
}

/// Everything stored that joins the server's file: what a reload loads.
pub(crate) async fn stored_layer(store: &Store) -> Result<StoredLayer, StoreError> {
    store.stored_layer().await
}

/// The server file's own entries of a list section: how many, and the names they give.
fn file_rules(source: &ConfigSource, section: &str) -> (usize, Vec<String>) {
    let text = match source {
        ConfigSource::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        ConfigSource::Text { text, .. } => text.clone(),
    };
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
        return (0, Vec::new());
    };
    let Some(items) = doc.get(section).and_then(serde_yaml::Value::as_sequence) else {
        return (0, Vec::new());
    };
    let names = items
        .iter()
        .filter_map(|item| item.get("name")?.as_str().map(str::to_owned))
        .collect();
    (items.len(), names)
}

fn to_dto<R: Rule>(name: String, stored: StoredRule<R>) -> LimitRule {
    LimitRule {
        name,
        rule: serde_json::to_value(&stored.rule).unwrap_or(Value::Null),
        managed_by: stored.managed_by,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

fn rule_name<R: Rule>(stored: &StoredRule<R>) -> String {
    serde_json::to_value(&stored.rule)
        .ok()
        .and_then(|v| v.get("name")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether the caller may see a rule: the platform admin all, a person those whose match
/// names an organisation they belong to.
async fn may_see(store: &Store, caller: &Caller, matches: &Match) -> ApiResult<bool> {
    if caller.is_platform() {
        return Ok(true);
    }
    let Some(org) = &matches.org else {
        return Ok(false);
    };
    match store.get_org(org).await {
        Ok(org) => Ok(caller.is_member(&org.id)),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Checks that the caller may create, change or delete a rule with this match: 404 for a rule
/// of an organisation they do not belong to, 403 below `admin` or for a rule that names no
/// organisation.
async fn require_manage<R: Rule>(
    store: &Store,
    caller: &Caller,
    matches: &Match,
    name: &str,
) -> ApiResult<()> {
    if caller.is_platform() {
        return Ok(());
    }
    let Some(org) = &matches.org else {
        return Err(ApiError::forbidden(format!(
            "only the platform admin (the `admin_key`) may manage a {} whose `match` names no \
             organisation: add `match.org`",
            R::LABEL
        )));
    };
    let org = caller
        .org(store, org)
        .await
        .map_err(|_| ApiError::not_found(R::LABEL, name))?;
    caller.require(&org, None, Action::ManageLimits)
}

/// The stored rule `name`, if the caller may see it (404 otherwise).
async fn visible<R: Rule>(store: &Store, caller: &Caller, name: &str) -> ApiResult<StoredRule<R>> {
    let stored = R::get(store, name).await?;
    if may_see(store, caller, stored.rule.matches()).await? {
        Ok(stored)
    } else {
        Err(ApiError::not_found(R::LABEL, name))
    }
}

async fn list<R: Rule>(
    state: &AppState,
    caller: &Caller,
    page: &PageParams,
) -> ApiResult<LimitRulePage> {
    let store = &state.runtime.store;
    let limit = usize::try_from(page.request().limit()).unwrap_or(50);
    let mut data = Vec::new();
    let mut next_cursor = None;
    for stored in R::list(store).await? {
        let name = rule_name(&stored);
        if page
            .cursor
            .as_ref()
            .is_some_and(|c| name.as_str() <= c.as_str())
        {
            continue;
        }
        if !may_see(store, caller, stored.rule.matches()).await? {
            continue;
        }
        if data.len() == limit {
            next_cursor = data.last().map(|r: &LimitRule| r.name.clone());
            break;
        }
        data.push(to_dto(name, stored));
    }
    Ok(LimitRulePage { data, next_cursor })
}

async fn get<R: Rule>(state: &AppState, caller: &Caller, name: &str) -> ApiResult<LimitRule> {
    let stored = visible::<R>(&state.runtime.store, caller, name).await?;
    Ok(to_dto(name.to_owned(), stored))
}

/// The body as a rule named `name`: a mapping whose `name`, if given, is the URL's.
fn parse_rule<R: Rule>(name: &str, body: Value) -> ApiResult<R> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(format!(
            "the body must be the {}'s mapping, as in a config file's `{}:` list (a JSON object)",
            R::LABEL,
            R::SECTION
        )));
    };
    match map.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(given)) if given == name => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                "name",
                format!("`name` must be the one in the URL (`{name}`) or left out"),
            ))
        }
    }
    map.insert("name".to_owned(), Value::String(name.to_owned()));
    let mut rule: R = serde_path_to_error::deserialize(Value::Object(map)).map_err(|err| {
        let path = err.path().to_string();
        let detail = err.into_inner().to_string();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("the {} does not fit: {detail}", R::LABEL))
        } else {
            ApiError::invalid_field(&path, format!("field `{path}`: {detail}"))
        }
    })?;
    rule.set_name(name.to_owned());
    Ok(rule)
}

/// Loads the whole config with `candidate` stored under `name` (in place of what is stored
/// under that name), as the reload after the change will; 400 with the problems otherwise.
async fn validate<R: Rule>(state: &AppState, name: &str, candidate: &R) -> ApiResult<()> {
    let mut layer = stored_layer(&state.runtime.store).await?;
    let (file_count, file_names) = file_rules(&state.runtime.source, R::SECTION);
    let entries = if R::SECTION == "rate_limits" {
        &mut layer.rate_limits
    } else {
        &mut layer.budgets
    };
    entries.retain(|v| v.get("name").and_then(Value::as_str) != Some(name));
    // The candidate goes last: its index in the loaded list is the file's entries plus the
    // stored ones the loader keeps (those whose names the file does not use).
    let kept = entries
        .iter()
        .filter(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| !file_names.iter().any(|f| f == n))
        })
        .count();
    let value = serde_json::to_value(candidate).map_err(|_| ApiError::internal())?;
    entries.push(value);
    let own = format!("{}[{}]", R::SECTION, file_count + kept);
    let Err(errors) = state.runtime.source.load(&layer) else {
        return Ok(());
    };
    let mut param = None;
    let problems: Vec<String> = errors
        .problems
        .iter()
        .map(|p| match p.key.strip_prefix(&own) {
            Some(rest) => {
                let field = rest.trim_start_matches('.');
                if field.is_empty() {
                    p.message.clone()
                } else {
                    param.get_or_insert_with(|| field.to_owned());
                    format!("{field}: {}", p.message)
                }
            }
            None if p.key.is_empty() => p.message.clone(),
            None => format!("{}: {}", p.key, p.message),
        })
        .collect();
    let mut error = ApiError::bad_request(format!(
        "{} `{name}` is not valid: {}",
        R::LABEL,
        problems.join("; ")
    ));
    error.param = param;
    Err(error)
}

/// 409 for names the server's own file uses: that entry wins, the stored one would be ignored.
fn refuse_server_defined<R: Rule>(state: &AppState, name: &str) -> ApiResult<()> {
    let (_, names) = file_rules(&state.runtime.source, R::SECTION);
    if names.iter().any(|n| n == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "defined_in_config_file",
            format!(
                "{} `{name}` is defined in the server's config file ({}): change it there",
                R::LABEL,
                state.runtime.source.name()
            ),
        ));
    }
    Ok(())
}

fn managed<R: Rule>(stored: &StoredRule<R>, name: &str) -> ApiResult<()> {
    if stored.managed_by.is_some() {
        return Err(StoreError::Managed {
            kind: R::KIND,
            name: name.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Rebuilds this instance's config so that the change is live when the answer arrives.
async fn reload(state: &AppState) {
    if let Err(why) = state.runtime.reload().await {
        tracing::warn!(%why, "Config rebuild after a stored rule change was refused.");
    }
}

async fn put<R: Rule>(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: Value,
) -> ApiResult<(StatusCode, LimitRule)> {
    let store = &state.runtime.store;
    let rule: R = parse_rule(name, body)?;
    let existing = match R::get(store, name).await {
        Ok(existing) => Some(existing),
        Err(StoreError::NotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    require_manage::<R>(store, caller, rule.matches(), name).await?;
    if let Some(existing) = &existing {
        if !may_see(store, caller, existing.rule.matches()).await? {
            // Another tenant's (or a global) rule: as if the name were free, but it is not.
            return Err(ApiError::conflict(format!(
                "{} `{name}` already exists: choose another name",
                R::LABEL
            )));
        }
        require_manage::<R>(store, caller, existing.rule.matches(), name).await?;
    }
    refuse_server_defined::<R>(state, name)?;
    if let Some(existing) = &existing {
        managed(existing, name)?;
    }
    validate(state, name, &rule).await?;
    let created = R::put(store, &caller.actor, rule).await?;
    reload(state).await;
    let stored = R::get(store, name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, to_dto(name.to_owned(), stored)))
}

async fn delete<R: Rule>(state: &AppState, caller: &Caller, name: &str) -> ApiResult<StatusCode> {
    let store = &state.runtime.store;
    refuse_server_defined::<R>(state, name)?;
    let stored = visible::<R>(store, caller, name).await?;
    require_manage::<R>(store, caller, stored.rule.matches(), name).await?;
    managed(&stored, name)?;
    R::delete(store, &caller.actor, name).await?;
    reload(state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Stored rate-limit rules the caller may see, in name order.
#[utoipa::path(get, path = "/rate-limits", tag = "limits", params(PageParams),
    responses((status = 200, body = LimitRulePage), Errors))]
pub async fn list_rate_limits(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<LimitRulePage>> {
    list::<RateLimitRule>(&state, &caller, &page)
        .await
        .map(Json)
}

/// One stored rate-limit rule.
#[utoipa::path(get, path = "/rate-limits/{name}", tag = "limits",
    params(("name" = String, Path, description = "Rule name")),
    responses((status = 200, body = LimitRule), Errors))]
pub async fn get_rate_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<LimitRule>> {
    get::<RateLimitRule>(&state, &caller, &name).await.map(Json)
}

/// Creates or replaces a stored rate-limit rule: the body is a config file's `rate_limits:`
/// entry (`name` may be left out). Validated as a reload would; 201 when created.
#[utoipa::path(put, path = "/rate-limits/{name}", tag = "limits",
    request_body(content = Object, description = "The rule, as a `rate_limits:` entry"),
    params(("name" = String, Path, description = "Rule name")),
    responses((status = 200, body = LimitRule), (status = 201, body = LimitRule), Errors))]
pub async fn put_rate_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<LimitRule>)> {
    let (status, rule) = put::<RateLimitRule>(&state, &caller, &name, body).await?;
    Ok((status, Json(rule)))
}

/// Deletes a stored rate-limit rule.
#[utoipa::path(delete, path = "/rate-limits/{name}", tag = "limits",
    params(("name" = String, Path, description = "Rule name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_rate_limit(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    delete::<RateLimitRule>(&state, &caller, &name).await
}

/// Stored budgets the caller may see, in name order.
#[utoipa::path(get, path = "/budgets", tag = "limits", params(PageParams),
    responses((status = 200, body = LimitRulePage), Errors))]
pub async fn list_budgets(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<LimitRulePage>> {
    list::<BudgetRule>(&state, &caller, &page).await.map(Json)
}

/// One stored budget.
#[utoipa::path(get, path = "/budgets/{name}", tag = "limits",
    params(("name" = String, Path, description = "Budget name")),
    responses((status = 200, body = LimitRule), Errors))]
pub async fn get_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<LimitRule>> {
    get::<BudgetRule>(&state, &caller, &name).await.map(Json)
}

/// Creates or replaces a stored budget: the body is a config file's `budgets:` entry (`usd` in
/// dollars, exact; `name` may be left out). Validated as a reload would; 201 when created.
#[utoipa::path(put, path = "/budgets/{name}", tag = "limits",
    request_body(content = Object, description = "The budget, as a `budgets:` entry"),
    params(("name" = String, Path, description = "Budget name")),
    responses((status = 200, body = LimitRule), (status = 201, body = LimitRule), Errors))]
pub async fn put_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<LimitRule>)> {
    let (status, rule) = put::<BudgetRule>(&state, &caller, &name, body).await?;
    Ok((status, Json(rule)))
}

/// Deletes a stored budget.
#[utoipa::path(delete, path = "/budgets/{name}", tag = "limits",
    params(("name" = String, Path, description = "Budget name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    delete::<BudgetRule>(&state, &caller, &name).await
}
