//! The stored state config as code compares against: every stored provider, model, prompt,
//! API, organisation, team, app, rate limit and budget, read page by page; and `export`, which
//! writes it as a document that apply accepts (without provider API keys, which never leave
//! the store).

use super::ApplyError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchboard_core::config::{AppSpec, OrgSpec, TeamSpec};
use switchboard_store::{
    App, Org, Page, PageRequest, Store, StoreError, StoredApi, StoredBudget, StoredModel,
    StoredPrompt, StoredProvider, StoredRateLimit, Team,
};

/// Everything stored, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Current {
    pub(crate) providers: BTreeMap<String, StoredProvider>,
    pub(crate) models: BTreeMap<String, StoredModel>,
    pub(crate) prompts: BTreeMap<String, StoredPrompt>,
    pub(crate) apis: BTreeMap<String, StoredApi>,
    pub(crate) orgs: BTreeMap<String, CurrentOrg>,
    pub(crate) rate_limits: BTreeMap<String, StoredRateLimit>,
    pub(crate) budgets: BTreeMap<String, StoredBudget>,
}

#[derive(Clone, Debug)]
pub(crate) struct CurrentOrg {
    pub(crate) org: Org,
    pub(crate) teams: BTreeMap<String, CurrentTeam>,
}

#[derive(Clone, Debug)]
pub(crate) struct CurrentTeam {
    pub(crate) team: Team,
    pub(crate) apps: BTreeMap<String, App>,
}

/// Reads every page of a list.
async fn all<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(PageRequest {
            limit: Some(PageRequest::MAX_LIMIT),
            cursor,
        })
        .await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

impl Current {
    pub(crate) async fn read(store: &Store) -> Result<Current, StoreError> {
        let providers = all(|page| async move { store.list_providers(&page).await }).await?;
        let models = store.stored_models().await?;
        let orgs = all(|page| async move { store.list_orgs(&page, None).await }).await?;
        let mut current = Current {
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            models: models.into_iter().map(|m| (m.name.clone(), m)).collect(),
            prompts: store
                .stored_prompts()
                .await?
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            apis: store
                .stored_apis()
                .await?
                .into_iter()
                .map(|a| (a.name.clone(), a))
                .collect(),
            orgs: BTreeMap::new(),
            rate_limits: store
                .list_rate_limits()
                .await?
                .into_iter()
                .map(|s| (s.rule.name.clone().unwrap_or_default(), s))
                .collect(),
            budgets: store
                .list_budgets()
                .await?
                .into_iter()
                .map(|s| (s.rule.name.clone().unwrap_or_default(), s))
                .collect(),
        };
        for org in orgs {
            let org_id = org.id.clone();
            let teams = all(|page| {
                let org_id = org_id.clone();
                async move { store.list_teams(&org_id, &page).await }
            })
            .await?;
            let apps = all(|page| {
                let org_id = org_id.clone();
                async move { store.list_apps(&org_id, None, &page).await }
            })
            .await?;
            let mut by_team: BTreeMap<String, BTreeMap<String, App>> = BTreeMap::new();
            for app in apps {
                by_team
                    .entry(app.team_id.clone())
                    .or_default()
                    .insert(app.name.clone(), app);
            }
            let teams = teams
                .into_iter()
                .map(|team| {
                    let apps = by_team.remove(&team.id).unwrap_or_default();
                    (team.name.clone(), CurrentTeam { team, apps })
                })
                .collect();
            current
                .orgs
                .insert(org.name.clone(), CurrentOrg { org, teams });
        }
        Ok(current)
    }

    /// The stored prompts' mappings and owners, by name.
    pub(crate) fn prompts_now(&self) -> BTreeMap<&str, (&Value, Option<&str>)> {
        self.prompts
            .iter()
            .map(|(n, p)| (n.as_str(), (&p.settings, p.managed_by.as_deref())))
            .collect()
    }

    /// The stored APIs' mappings and owners, by name.
    pub(crate) fn apis_now(&self) -> BTreeMap<&str, (&Value, Option<&str>)> {
        self.apis
            .iter()
            .map(|(n, a)| (n.as_str(), (&a.settings, a.managed_by.as_deref())))
            .collect()
    }

    /// The stored organisations as config describes them, without `skip` (the server file's).
    pub(crate) fn org_specs(&self, skip: &BTreeSet<String>) -> BTreeMap<String, OrgSpec> {
        self.orgs
            .iter()
            .filter(|(name, _)| !skip.contains(*name))
            .map(|(name, org)| (name.clone(), org.spec()))
            .collect()
    }
}

impl CurrentOrg {
    pub(crate) fn spec(&self) -> OrgSpec {
        let teams = self
            .teams
            .iter()
            .map(|(name, team)| {
                let apps = team
                    .apps
                    .iter()
                    .map(|(name, app)| {
                        let spec = AppSpec {
                            models: app.models.clone(),
                            apis: app.apis.clone(),
                        };
                        (name.clone(), spec)
                    })
                    .collect();
                (name.clone(), TeamSpec { apps })
            })
            .collect();
        OrgSpec {
            display_name: self.org.display_name.clone(),
            teams,
        }
    }
}

/// What `export` writes first: how the document is meant to be used.
const EXPORT_HEADER: &str = "\
# Switchboard stored config, written by `switchboard export`.
# Apply it with `switchboard apply -f FILE`. Provider API keys are not exported: a provider
# without `api_key` keeps the key stored for it. Entries of the server's own config file are
# not stored and so not listed here.
";

/// The stored state as a YAML document that `apply` accepts unchanged (a round trip plans
/// nothing). `skip_orgs` are the server file's organisations.
pub(crate) fn export_yaml(
    current: &Current,
    skip_orgs: &BTreeSet<String>,
) -> Result<String, ApplyError> {
    let providers: BTreeMap<&str, Value> = current
        .providers
        .iter()
        .map(|(name, p)| (name.as_str(), without_key(&p.settings)))
        .collect();
    let models: BTreeMap<&str, &Value> = current
        .models
        .iter()
        .map(|(name, m)| (name.as_str(), &m.settings))
        .collect();
    let encode = |e: serde_yaml::Error| ApplyError::Server(format!("cannot write YAML: {e}"));
    // A YAML mapping keeps insertion order: sections come in the order of the config file.
    let mut top = serde_yaml::Mapping::new();
    top.insert(
        "providers".into(),
        serde_yaml::to_value(providers).map_err(encode)?,
    );
    top.insert(
        "models".into(),
        serde_yaml::to_value(models).map_err(encode)?,
    );
    let prompts: BTreeMap<&str, &Value> = current
        .prompts
        .iter()
        .map(|(name, p)| (name.as_str(), &p.settings))
        .collect();
    let apis: BTreeMap<&str, &Value> = current
        .apis
        .iter()
        .map(|(name, a)| (name.as_str(), &a.settings))
        .collect();
    top.insert(
        "prompts".into(),
        serde_yaml::to_value(prompts).map_err(encode)?,
    );
    top.insert("apis".into(), serde_yaml::to_value(apis).map_err(encode)?);
    let orgs = current.org_specs(skip_orgs);
    top.insert("orgs".into(), serde_yaml::to_value(orgs).map_err(encode)?);
    let (rate_limits, budgets) = super::rules::export_lists(current).map_err(encode)?;
    top.insert("rate_limits".into(), rate_limits);
    top.insert("budgets".into(), budgets);
    let yaml = serde_yaml::to_string(&top).map_err(encode)?;
    Ok(format!("{EXPORT_HEADER}{yaml}"))
}

/// Settings as stored never hold `api_key`; removed again in case a row was written by hand.
fn without_key(settings: &Value) -> Value {
    let mut settings = settings.clone();
    if let Value::Object(map) = &mut settings {
        map.remove("api_key");
    }
    settings
}
