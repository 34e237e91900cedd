//! The diff: which stored objects to create, update or delete so that storage equals a
//! document. Changes come in the order they must run: creations and updates parent first
//! (providers, models, prompts, APIs, then each organisation, its teams, their apps, then rate
//! limits and budgets), then deletions child first (rate limits and budgets, apps, teams,
//! organisations, then APIs, prompts, models, then providers, so that nothing is ever left
//! pointing at a deleted object).

use super::change::{Change, Kind};
use super::document::{Desired, DesiredProvider, KeyIntent};
use super::state::{Current, CurrentOrg, CurrentTeam};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchboard_core::config::{AppSpec, OrgSpec, TeamSpec};
use switchboard_core::limits::{BudgetRule, RateLimitRule};
use switchboard_store::{StoredProvider, APPLY};

/// What apply would do, in order. `changes[i]` describes `steps[i]`.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Things the user should know that are not changes (ignored sections).
    pub notes: Vec<String>,
    pub(crate) steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub(crate) fn push(&mut self, change: Change, step: Step) {
        self.changes.push(change);
        self.steps.push(step);
    }
}

/// One store call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Create or replace; `settings` holds `api_key` when it is set or removed.
    PutProvider {
        name: String,
        settings: Value,
    },
    PutModel {
        name: String,
        settings: Value,
    },
    PutPrompt {
        name: String,
        settings: Value,
    },
    PutApi {
        name: String,
        settings: Value,
    },
    DeleteApi {
        name: String,
    },
    DeletePrompt {
        name: String,
    },
    CreateOrg {
        name: String,
        display_name: Option<String>,
    },
    UpdateOrg {
        name: String,
        display_name: Option<Option<String>>,
    },
    CreateTeam {
        org: String,
        name: String,
    },
    /// Takes the team over (marks it managed).
    UpdateTeam {
        org: String,
        name: String,
    },
    CreateApp {
        org: String,
        team: String,
        name: String,
        spec: AppSpec,
    },
    UpdateApp {
        org: String,
        team: String,
        name: String,
        spec: AppSpec,
    },
    DeleteApp {
        org: String,
        team: String,
        name: String,
    },
    DeleteTeam {
        org: String,
        name: String,
    },
    DeleteOrg {
        name: String,
    },
    DeleteModel {
        name: String,
    },
    DeleteProvider {
        name: String,
    },
    /// Create or replace (the rule carries its name).
    PutRateLimit {
        rule: RateLimitRule,
    },
    PutBudget {
        rule: BudgetRule,
    },
    DeleteRateLimit {
        name: String,
    },
    DeleteBudget {
        name: String,
    },
}

/// Inputs of the diff besides the two states.
pub(crate) struct Context<'a> {
    /// Decrypted stored API keys, by provider name; read only when the document sets keys.
    pub(crate) stored_keys: &'a BTreeMap<String, String>,
    /// Organisations of the server's own file: never touched by apply.
    pub(crate) file_orgs: &'a BTreeSet<String>,
}

pub(crate) fn diff(desired: &Desired, current: &Current, ctx: &Context<'_>) -> Plan {
    let mut plan = Plan {
        notes: desired.notes.clone(),
        ..Plan::default()
    };
    let mut deletions = Plan::default();
    if let Some(providers) = &desired.providers {
        for (name, want) in providers {
            provider(&mut plan, name, want, current.providers.get(name), ctx);
        }
    }
    if let Some(models) = &desired.models {
        for (name, want) in models {
            let (managed, settings) = match current.models.get(name) {
                Some(have) => (have.managed_by.as_deref(), Some(&have.settings)),
                None => (None, None),
            };
            if let Some(change) = compare(Kind::Model, name, want, settings, managed, &[]) {
                let step = Step::PutModel {
                    name: name.clone(),
                    settings: want.clone(),
                };
                plan.push(change, step);
            }
        }
    }
    named(
        &mut plan,
        Kind::Prompt,
        desired.prompts.as_ref(),
        &current.prompts_now(),
    );
    named(
        &mut plan,
        Kind::Api,
        desired.apis.as_ref(),
        &current.apis_now(),
    );
    if let Some(orgs) = &desired.orgs {
        for (name, want) in orgs {
            org(
                &mut plan,
                &mut deletions,
                name,
                want,
                current.orgs.get(name),
            );
        }
        let gone = current
            .orgs
            .iter()
            .filter(|(name, _)| !orgs.contains_key(*name) && !ctx.file_orgs.contains(*name));
        for (name, have) in gone {
            for (team, have_team) in &have.teams {
                delete_team(&mut deletions, name, team, have_team);
            }
            let step = Step::DeleteOrg { name: name.clone() };
            deletions.push(Change::delete(Kind::Org, name.clone()), step);
        }
    }
    let mut rule_deletions = Plan::default();
    super::rules::diff(desired, current, &mut plan, &mut rule_deletions);
    if let Some(apis) = &desired.apis {
        for name in current.apis.keys().filter(|n| !apis.contains_key(*n)) {
            let step = Step::DeleteApi { name: name.clone() };
            deletions.push(Change::delete(Kind::Api, name.clone()), step);
        }
    }
    if let Some(prompts) = &desired.prompts {
        for name in current.prompts.keys().filter(|n| !prompts.contains_key(*n)) {
            let step = Step::DeletePrompt { name: name.clone() };
            deletions.push(Change::delete(Kind::Prompt, name.clone()), step);
        }
    }
    if let Some(models) = &desired.models {
        for name in current.models.keys().filter(|n| !models.contains_key(*n)) {
            let step = Step::DeleteModel { name: name.clone() };
            deletions.push(Change::delete(Kind::Model, name.clone()), step);
        }
    }
    if let Some(providers) = &desired.providers {
        for name in current
            .providers
            .keys()
            .filter(|n| !providers.contains_key(*n))
        {
            let step = Step::DeleteProvider { name: name.clone() };
            deletions.push(Change::delete(Kind::Provider, name.clone()), step);
        }
    }
    plan.changes.extend(rule_deletions.changes);
    plan.steps.extend(rule_deletions.steps);
    plan.changes.extend(deletions.changes);
    plan.steps.extend(deletions.steps);
    plan
}

/// Creations and updates of a section of named mappings (prompts, APIs); `have` is what is
/// stored: `(settings, managed_by)` by name.
fn named(
    plan: &mut Plan,
    kind: Kind,
    want: Option<&BTreeMap<String, Value>>,
    have: &BTreeMap<&str, (&Value, Option<&str>)>,
) {
    for (name, want) in want.into_iter().flatten() {
        let stored = have.get(name.as_str());
        let settings = stored.map(|(s, _)| *s);
        let managed = stored.and_then(|(_, m)| *m);
        if let Some(change) = compare(kind, name, want, settings, managed, &[]) {
            let (name, settings) = (name.clone(), want.clone());
            let step = match kind {
                Kind::Api => Step::PutApi { name, settings },
                _ => Step::PutPrompt { name, settings },
            };
            plan.push(change, step);
        }
    }
}

fn provider(
    plan: &mut Plan,
    name: &str,
    want: &DesiredProvider,
    have: Option<&StoredProvider>,
    ctx: &Context<'_>,
) {
    let key_changed = match (&want.key, have) {
        (KeyIntent::Keep, _) => false,
        (KeyIntent::Remove, have) => have.is_some_and(|h| h.has_api_key),
        (KeyIntent::Set(key), have) => {
            have.is_none_or(|h| !h.has_api_key) || ctx.stored_keys.get(name) != Some(key)
        }
    };
    let extra: &[&str] = if key_changed && have.is_some() {
        &["api_key"]
    } else {
        &[]
    };
    let change = compare(
        Kind::Provider,
        name,
        &want.settings,
        have.map(|h| &h.settings),
        have.and_then(|h| h.managed_by.as_deref()),
        extra,
    );
    if let Some(change) = change {
        let mut settings = want.settings.clone();
        if let Value::Object(map) = &mut settings {
            match &want.key {
                KeyIntent::Keep => {}
                KeyIntent::Remove => {
                    map.insert("api_key".to_owned(), Value::Null);
                }
                KeyIntent::Set(key) => {
                    map.insert("api_key".to_owned(), Value::String(key.clone()));
                }
            }
        }
        let step = Step::PutProvider {
            name: name.to_owned(),
            settings,
        };
        plan.push(change, step);
    }
}

/// The change that turns stored `have` (None: absent) into `want`, or None when equal.
fn compare(
    kind: Kind,
    name: &str,
    want: &Value,
    have: Option<&Value>,
    managed: Option<&str>,
    extra: &[&str],
) -> Option<Change> {
    let Some(have) = have else {
        return Some(Change::create(kind, name));
    };
    let mut fields = changed_fields(want, have);
    fields.extend(extra.iter().map(|f| (*f).to_owned()));
    if managed != Some(APPLY) {
        fields.push("managed".to_owned());
    }
    (!fields.is_empty()).then(|| Change::update(kind, name, fields))
}

/// The top-level keys whose values differ (a whole value when either side is not a mapping).
fn changed_fields(want: &Value, have: &Value) -> Vec<String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            let keys: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
            keys.into_iter()
                .filter(|k| w.get(*k) != h.get(*k))
                .cloned()
                .collect()
        }
        _ if want == have => Vec::new(),
        _ => vec!["settings".to_owned()],
    }
}

fn managed_field(managed_by: Option<&str>, fields: &mut Vec<String>) {
    if managed_by != Some(APPLY) {
        fields.push("managed".to_owned());
    }
}

fn org(
    plan: &mut Plan,
    deletions: &mut Plan,
    name: &str,
    want: &OrgSpec,
    have: Option<&CurrentOrg>,
) {
    match have {
        None => {
            let step = Step::CreateOrg {
                name: name.to_owned(),
                display_name: want.display_name.clone(),
            };
            plan.push(Change::create(Kind::Org, name), step);
        }
        Some(have) => {
            let mut fields = Vec::new();
            let display_name = (have.org.display_name != want.display_name).then(|| {
                fields.push("display_name".to_owned());
                want.display_name.clone()
            });
            managed_field(have.org.managed_by.as_deref(), &mut fields);
            if !fields.is_empty() {
                let step = Step::UpdateOrg {
                    name: name.to_owned(),
                    display_name,
                };
                plan.push(Change::update(Kind::Org, name, fields), step);
            }
        }
    }
    for (team_name, team_spec) in &want.teams {
        let have_team = have.and_then(|h| h.teams.get(team_name));
        team(plan, deletions, name, team_name, team_spec, have_team);
    }
    if let Some(have) = have {
        for (team_name, have_team) in &have.teams {
            if !want.teams.contains_key(team_name) {
                delete_team(deletions, name, team_name, have_team);
            }
        }
    }
}

fn team(
    plan: &mut Plan,
    deletions: &mut Plan,
    org: &str,
    name: &str,
    want: &TeamSpec,
    have: Option<&CurrentTeam>,
) {
    let path = format!("{org}/{name}");
    match have {
        None => {
            let step = Step::CreateTeam {
                org: org.to_owned(),
                name: name.to_owned(),
            };
            plan.push(Change::create(Kind::Team, path.clone()), step);
        }
        Some(have) if have.team.managed_by.as_deref() != Some(APPLY) => {
            let step = Step::UpdateTeam {
                org: org.to_owned(),
                name: name.to_owned(),
            };
            let change = Change::update(Kind::Team, path.clone(), vec!["managed".to_owned()]);
            plan.push(change, step);
        }
        Some(_) => {}
    }
    for (app_name, spec) in &want.apps {
        let app_path = format!("{path}/{app_name}");
        let have_app = have.and_then(|h| h.apps.get(app_name));
        let Some(have_app) = have_app else {
            let step = Step::CreateApp {
                org: org.to_owned(),
                team: name.to_owned(),
                name: app_name.clone(),
                spec: spec.clone(),
            };
            plan.push(Change::create(Kind::App, app_path), step);
            continue;
        };
        let mut fields = Vec::new();
        if have_app.models != spec.models {
            fields.push("models".to_owned());
        }
        if have_app.apis != spec.apis {
            fields.push("apis".to_owned());
        }
        managed_field(have_app.managed_by.as_deref(), &mut fields);
        if !fields.is_empty() {
            let step = Step::UpdateApp {
                org: org.to_owned(),
                team: name.to_owned(),
                name: app_name.clone(),
                spec: spec.clone(),
            };
            plan.push(Change::update(Kind::App, app_path, fields), step);
        }
    }
    if let Some(have) = have {
        for app_name in have.apps.keys().filter(|a| !want.apps.contains_key(*a)) {
            delete_app(deletions, org, name, app_name);
        }
    }
}

fn delete_app(deletions: &mut Plan, org: &str, team: &str, name: &str) {
    let step = Step::DeleteApp {
        org: org.to_owned(),
        team: team.to_owned(),
        name: name.to_owned(),
    };
    deletions.push(
        Change::delete(Kind::App, format!("{org}/{team}/{name}")),
        step,
    );
}

/// Deletes a team's apps, then the team (its keys and subscriptions go with the apps).
fn delete_team(deletions: &mut Plan, org: &str, name: &str, have: &CurrentTeam) {
    for app_name in have.apps.keys() {
        delete_app(deletions, org, name, app_name);
    }
    let step = Step::DeleteTeam {
        org: org.to_owned(),
        name: name.to_owned(),
    };
    deletions.push(Change::delete(Kind::Team, format!("{org}/{name}")), step);
}
