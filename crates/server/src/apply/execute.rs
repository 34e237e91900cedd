//! Running a plan against the store as the `apply` actor (every object it writes is marked
//! `managed_by: apply`), and the additive sync of the server file's own `orgs:` at startup.
//!
//! The store commits each call in its own transaction (with its audit row), so a plan is not
//! atomic: it runs in dependency order, and when a step fails the error says which changes were
//! made, which one failed, and how many were not attempted. Running apply again finishes the
//! job, since the plan is always computed from what is stored.

use super::change::{Change, Kind};
use super::plan::{Plan, Step};
use super::{ApplyError, PartialFailure};
use std::collections::BTreeMap;
use switchboard_core::config::OrgSpec;
use switchboard_store::{
    Actor, AppPatch, NewApp, NewOrg, NewTeam, OrgPatch, Store, StoreError, TeamPatch, APPLY,
};

/// The `managed_by` of organisations, teams and apps that the server's own config file
/// defines: read-only in the admin API like apply's, and never deleted or exported by apply.
pub const FILE: &str = "file";

/// Ids looked up during a run (a step may need an org or team created by an earlier step).
#[derive(Default)]
struct Ids {
    orgs: BTreeMap<String, String>,
    teams: BTreeMap<(String, String), String>,
}

impl Ids {
    async fn org(&mut self, store: &Store, org: &str) -> Result<String, StoreError> {
        if let Some(id) = self.orgs.get(org) {
            return Ok(id.clone());
        }
        let id = store.get_org(org).await?.id;
        self.orgs.insert(org.to_owned(), id.clone());
        Ok(id)
    }

    async fn team(
        &mut self,
        store: &Store,
        org: &str,
        team: &str,
    ) -> Result<(String, String), StoreError> {
        let org_id = self.org(store, org).await?;
        let key = (org.to_owned(), team.to_owned());
        if let Some(id) = self.teams.get(&key) {
            return Ok((org_id, id.clone()));
        }
        let id = store.get_team(&org_id, team).await?.id;
        self.teams.insert(key, id.clone());
        Ok((org_id, id))
    }
}

/// Runs `plan`; `progress` hears of each change once it is committed.
pub async fn execute(
    store: &Store,
    plan: &Plan,
    progress: &mut (dyn FnMut(&Change) + Send),
) -> Result<Vec<Change>, ApplyError> {
    let actor = Actor::apply();
    let mut ids = Ids::default();
    let mut done = Vec::with_capacity(plan.changes.len());
    for (index, (change, step)) in plan.changes.iter().zip(&plan.steps).enumerate() {
        if let Err(error) = run(store, &actor, &mut ids, step).await {
            return Err(ApplyError::Partial(Box::new(PartialFailure {
                applied: done,
                failed: change.clone(),
                not_attempted: plan.changes.len() - index - 1,
                error,
            })));
        }
        progress(change);
        done.push(change.clone());
    }
    Ok(done)
}

fn managed() -> Option<String> {
    Some(APPLY.to_owned())
}

async fn run(store: &Store, actor: &Actor, ids: &mut Ids, step: &Step) -> Result<(), StoreError> {
    match step {
        Step::PutProvider { name, settings } => {
            store
                .put_provider(actor, name, settings.clone(), managed())
                .await?;
        }
        Step::PutModel { name, settings } => {
            store
                .put_model(actor, name, settings.clone(), managed())
                .await?;
        }
        Step::PutPrompt { name, settings } => {
            store
                .put_prompt(actor, name, settings.clone(), managed())
                .await?;
        }
        Step::PutApi { name, settings } => {
            store
                .put_api(actor, name, settings.clone(), managed())
                .await?;
        }
        Step::DeleteApi { name } => store.delete_api(actor, name).await?,
        Step::DeletePrompt { name } => store.delete_prompt(actor, name).await?,
        Step::CreateOrg { name, display_name } => {
            let new = NewOrg {
                name: name.clone(),
                display_name: display_name.clone(),
                managed_by: managed(),
            };
            let org = store.create_org(actor, new).await?;
            ids.orgs.insert(name.clone(), org.id);
        }
        Step::UpdateOrg { name, display_name } => {
            let patch = OrgPatch {
                display_name: display_name.clone(),
                managed_by: Some(managed()),
            };
            store.update_org(actor, name, patch).await?;
        }
        Step::CreateTeam { org, name } => {
            let org_id = ids.org(store, org).await?;
            let new = NewTeam {
                name: name.clone(),
                managed_by: managed(),
            };
            let team = store.create_team(actor, &org_id, new).await?;
            ids.teams.insert((org.clone(), name.clone()), team.id);
        }
        Step::UpdateTeam { org, name } => {
            let org_id = ids.org(store, org).await?;
            let patch = TeamPatch {
                managed_by: Some(managed()),
            };
            store.update_team(actor, &org_id, name, patch).await?;
        }
        Step::CreateApp {
            org,
            team,
            name,
            spec,
        } => {
            let (org_id, team_id) = ids.team(store, org, team).await?;
            let new = NewApp {
                name: name.clone(),
                models: spec.models.clone(),
                apis: spec.apis.clone(),
                managed_by: managed(),
            };
            store.create_app(actor, &org_id, &team_id, new).await?;
        }
        Step::UpdateApp {
            org,
            team,
            name,
            spec,
        } => {
            let (org_id, team_id) = ids.team(store, org, team).await?;
            let patch = AppPatch {
                models: Some(spec.models.clone()),
                apis: Some(spec.apis.clone()),
                managed_by: Some(managed()),
            };
            store
                .update_app(actor, &org_id, &team_id, name, patch)
                .await?;
        }
        Step::DeleteApp { org, team, name } => {
            let (org_id, team_id) = ids.team(store, org, team).await?;
            store.delete_app(actor, &org_id, &team_id, name).await?;
        }
        Step::DeleteTeam { org, name } => {
            let org_id = ids.org(store, org).await?;
            store.delete_team(actor, &org_id, name).await?;
            ids.teams.remove(&(org.clone(), name.clone()));
        }
        Step::DeleteOrg { name } => {
            store.delete_org(actor, name).await?;
            ids.orgs.remove(name);
        }
        Step::DeleteModel { name } => store.delete_model(actor, name).await?,
        Step::DeleteProvider { name } => store.delete_provider(actor, name).await?,
        Step::PutRateLimit { rule } => {
            store.put_rate_limit(actor, rule.clone(), managed()).await?;
        }
        Step::PutBudget { rule } => {
            store.put_budget(actor, rule.clone(), managed()).await?;
        }
        Step::DeleteRateLimit { name } => store.delete_rate_limit(actor, name).await?,
        Step::DeleteBudget { name } => store.delete_budget(actor, name).await?,
    }
    Ok(())
}

/// Makes the server file's `orgs:` exist in storage, additively: missing organisations, teams
/// and apps are created, apps get the file's model and API lists, and what the file names is
/// marked `managed_by: file`. Nothing is ever deleted (removing an org from the file leaves
/// it stored, where `apply` or the admin API can remove it). Returns the changes made.
pub async fn sync_file_orgs(
    store: &Store,
    orgs: &BTreeMap<String, OrgSpec>,
) -> Result<Vec<Change>, StoreError> {
    let actor = Actor::apply();
    let file = || Some(FILE.to_owned());
    let mut changes = Vec::new();
    for (org_name, spec) in orgs {
        let org = match store.get_org(org_name).await {
            Ok(org) => {
                let mut fields = Vec::new();
                let mut patch = OrgPatch::default();
                if spec.display_name.is_some() && org.display_name != spec.display_name {
                    patch.display_name = Some(spec.display_name.clone());
                    fields.push("display_name".to_owned());
                }
                if org.managed_by.as_deref() != Some(FILE) {
                    patch.managed_by = Some(file());
                    fields.push("managed".to_owned());
                }
                if !fields.is_empty() {
                    store.update_org(&actor, org_name, patch).await?;
                    changes.push(Change::update(Kind::Org, org_name.clone(), fields));
                }
                org
            }
            Err(StoreError::NotFound { .. }) => {
                let new = NewOrg {
                    name: org_name.clone(),
                    display_name: spec.display_name.clone(),
                    managed_by: file(),
                };
                let org = store.create_org(&actor, new).await?;
                changes.push(Change::create(Kind::Org, org_name.clone()));
                org
            }
            Err(err) => return Err(err),
        };
        for (team_name, team_spec) in &spec.teams {
            let path = format!("{org_name}/{team_name}");
            let team = match store.get_team(&org.id, team_name).await {
                Ok(team) => {
                    if team.managed_by.as_deref() != Some(FILE) {
                        let patch = TeamPatch {
                            managed_by: Some(file()),
                        };
                        store.update_team(&actor, &org.id, team_name, patch).await?;
                        changes.push(Change::update(
                            Kind::Team,
                            path.clone(),
                            vec!["managed".into()],
                        ));
                    }
                    team
                }
                Err(StoreError::NotFound { .. }) => {
                    let new = NewTeam {
                        name: team_name.clone(),
                        managed_by: file(),
                    };
                    let team = store.create_team(&actor, &org.id, new).await?;
                    changes.push(Change::create(Kind::Team, path.clone()));
                    team
                }
                Err(err) => return Err(err),
            };
            for (app_name, app_spec) in &team_spec.apps {
                let app_path = format!("{path}/{app_name}");
                match store.get_app(&org.id, &team.id, app_name).await {
                    Ok(app) => {
                        let mut fields = Vec::new();
                        if app.models != app_spec.models {
                            fields.push("models".to_owned());
                        }
                        if app.apis != app_spec.apis {
                            fields.push("apis".to_owned());
                        }
                        if app.managed_by.as_deref() != Some(FILE) {
                            fields.push("managed".to_owned());
                        }
                        if !fields.is_empty() {
                            let patch = AppPatch {
                                models: Some(app_spec.models.clone()),
                                apis: Some(app_spec.apis.clone()),
                                managed_by: Some(file()),
                            };
                            store
                                .update_app(&actor, &org.id, &team.id, app_name, patch)
                                .await?;
                            changes.push(Change::update(Kind::App, app_path, fields));
                        }
                    }
                    Err(StoreError::NotFound { .. }) => {
                        let new = NewApp {
                            name: app_name.clone(),
                            models: app_spec.models.clone(),
                            apis: app_spec.apis.clone(),
                            managed_by: file(),
                        };
                        store.create_app(&actor, &org.id, &team.id, new).await?;
                        changes.push(Change::create(Kind::App, app_path));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(changes)
}
