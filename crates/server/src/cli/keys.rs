//! `switchboard keys create|list|revoke|rotate`: virtual keys from the shell, through the admin
//! API. Output is a readable table or summary, or the API's JSON with `--json`. A new secret is
//! printed once, as the API returns it once.

use super::client::{segment, ApiArgs, CliError, CliResult, Client};
use super::table::{format_time, parse_duration, Table};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key for an app (--team and --app) or a person (--user); prints the secret once.
    Create(CreateArgs),
    /// List an organisation's keys (of one app with --team and --app).
    List(ListArgs),
    /// Revoke a key at once.
    Revoke(RevokeArgs),
    /// Replace a key with a new one; the old one keeps working for a grace period.
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Organisation name.
    #[arg(long)]
    pub org: String,
    /// Team of the app (or, for a personal key, an optional team).
    #[arg(long)]
    pub team: Option<String>,
    /// App the key belongs to (needs --team).
    #[arg(
        long,
        requires = "team",
        conflicts_with = "user",
        required_unless_present = "user"
    )]
    pub app: Option<String>,
    /// User id for a personal key.
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<String>,
    /// A name to recognise the key by (default: the app's or the user's).
    #[arg(long)]
    pub name: Option<String>,
    /// A model alias the key may call (repeat for several; default: whatever the app may call).
    #[arg(long = "model", value_name = "ALIAS")]
    pub models: Vec<String>,
    /// Expiry from now, e.g. 30d, 12h, 1w, 90m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub expires_in: Option<std::time::Duration>,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub org: String,
    /// Only keys of this team.
    #[arg(long)]
    pub team: Option<String>,
    /// Only keys of this app (needs --team).
    #[arg(long, requires = "team")]
    pub app: Option<String>,
    /// Also list revoked keys.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    #[arg(long)]
    pub org: String,
    /// The key's id (see `keys list`).
    pub id: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    #[arg(long)]
    pub org: String,
    /// The key's id (see `keys list`).
    pub id: String,
    /// How long the old key keeps working, e.g. 1h (default: the server's
    /// `access.rotation_grace_ms`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub grace: Option<std::time::Duration>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// A key as the admin API returns it (the fields the CLI shows).
#[derive(Debug, Deserialize)]
struct Key {
    id: String,
    name: String,
    prefix: String,
    app_id: Option<String>,
    user_id: Option<String>,
    models: Option<Vec<String>>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rotated_to: Option<String>,
    #[serde(default)]
    active: bool,
    /// Only in answers that made a key.
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    data: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named {
    id: String,
    name: String,
}

pub async fn run(args: KeysArgs) -> ExitCode {
    let result = match &args.command {
        KeysCommand::Create(a) => create(a).await,
        KeysCommand::List(a) => list(a).await,
        KeysCommand::Revoke(a) => revoke(a).await,
        KeysCommand::Rotate(a) => rotate(a).await,
    };
    super::report(result)
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn create(args: &CreateArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let name = match (&args.name, &args.app, &args.user) {
        (Some(name), _, _) => name.clone(),
        (None, Some(app), _) => app.clone(),
        (None, None, Some(user)) => format!("user {user}"),
        (None, None, None) => "key".to_owned(),
    };
    let mut body = json!({ "name": name });
    if let Some(team) = &args.team {
        body["team"] = json!(team);
    }
    if let Some(app) = &args.app {
        body["app"] = json!(app);
    }
    if let Some(user) = &args.user {
        body["user_id"] = json!(user);
    }
    if !args.models.is_empty() {
        body["models"] = json!(args.models);
    }
    if let Some(expires_in) = args.expires_in {
        body["expires_at"] = json!(now_ms().saturating_add(millis(expires_in)));
    }
    let path = format!("/orgs/{}/keys", segment(&args.org));
    let answer: Value = client.json(Method::POST, &path, Some(&body)).await?;
    if args.json {
        print_json(&answer);
        return Ok(());
    }
    let key: Key = decode(answer)?;
    let owner = match (&args.app, &args.user) {
        (Some(app), _) => format!(
            "app {}/{}/{app}",
            args.org,
            args.team.as_deref().unwrap_or("?")
        ),
        (None, Some(user)) => format!("user {user} in {}", args.org),
        (None, None) => args.org.clone(),
    };
    println!("created key {} ({}) for {owner}", key.id, key.name);
    println!("expires: {}", expiry(key.expires_at));
    print_secret(key.secret.as_deref());
    Ok(())
}

fn print_secret(secret: Option<&str>) {
    if let Some(secret) = secret {
        println!("secret (shown once, store it now):");
        println!("{secret}");
    }
}

async fn list(args: &ListArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let org = segment(&args.org);
    let mut query = vec![format!("limit={}", 500)];
    if let Some(team) = &args.team {
        query.push(format!("team={}", segment(team)));
    }
    if let Some(app) = &args.app {
        query.push(format!("app={}", segment(app)));
    }
    if args.all {
        query.push("include_revoked=true".to_owned());
    }
    let mut keys: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.clone();
        if let Some(cursor) = &cursor {
            q.push(format!("cursor={}", segment(cursor)));
        }
        let path = format!("/orgs/{org}/keys?{}", q.join("&"));
        let page: Page<Value> = client.json(Method::GET, &path, None).await?;
        keys.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if args.json {
        print_json(&Value::Array(keys));
        return Ok(());
    }
    let keys: Vec<Key> = keys.into_iter().map(decode).collect::<CliResult<_>>()?;
    let apps = app_names(&client, &org).await;
    let mut table = Table::new(["ID", "PREFIX", "NAME", "APP", "MODELS", "EXPIRES", "STATUS"]);
    let now = now_ms();
    for key in &keys {
        let app = match (&key.app_id, &key.user_id) {
            (Some(app), _) => apps.get(app).cloned().unwrap_or_else(|| app.clone()),
            (None, Some(user)) => format!("user:{user}"),
            (None, None) => "-".to_owned(),
        };
        let models = key
            .models
            .as_ref()
            .map_or_else(|| "(app's)".to_owned(), |m| m.join(","));
        table.row([
            key.id.clone(),
            key.prefix.clone(),
            key.name.clone(),
            app,
            models,
            expiry(key.expires_at),
            status(key, now),
        ]);
    }
    if keys.is_empty() {
        println!("no keys");
    } else {
        print!("{}", table.render());
    }
    Ok(())
}

/// `team/app` by app id, for the table; best effort (ids are shown when it fails).
async fn app_names(client: &Client, org: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let Ok(teams) = all::<Named>(client, &format!("/orgs/{org}/teams")).await else {
        return names;
    };
    for team in teams {
        let path = format!("/orgs/{org}/teams/{}/apps", segment(&team.name));
        if let Ok(apps) = all::<Named>(client, &path).await {
            for app in apps {
                names.insert(app.id, format!("{}/{}", team.name, app.name));
            }
        }
    }
    names
}

/// Every page of a list.
async fn all<T: serde::de::DeserializeOwned>(client: &Client, path: &str) -> CliResult<Vec<T>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut full = format!("{path}?limit=500");
        if let Some(cursor) = &cursor {
            full.push_str(&format!("&cursor={}", segment(cursor)));
        }
        let page: Page<T> = client.json(Method::GET, &full, None).await?;
        out.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

fn status(key: &Key, now: i64) -> String {
    if key.revoked_at.is_some() {
        "revoked".to_owned()
    } else if key.expires_at.is_some_and(|at| at <= now) {
        "expired".to_owned()
    } else if key.rotated_to.is_some() {
        "rotated (grace)".to_owned()
    } else if key.active {
        "active".to_owned()
    } else {
        "inactive".to_owned()
    }
}

fn expiry(at: Option<i64>) -> String {
    at.map_or_else(|| "never".to_owned(), format_time)
}

async fn revoke(args: &RevokeArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let path = format!(
        "/orgs/{}/keys/{}/revoke",
        segment(&args.org),
        segment(&args.id)
    );
    let answer: Value = client.json(Method::POST, &path, None).await?;
    if args.json {
        print_json(&answer);
        return Ok(());
    }
    let key: Key = decode(answer)?;
    println!("revoked key {} ({}, {})", key.id, key.name, key.prefix);
    Ok(())
}

async fn rotate(args: &RotateArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let path = format!(
        "/orgs/{}/keys/{}/rotate",
        segment(&args.org),
        segment(&args.id)
    );
    let body = args.grace.map(|g| json!({ "grace_ms": millis(g) }));
    let answer: Value = client.json(Method::POST, &path, body.as_ref()).await?;
    if args.json {
        print_json(&answer);
        return Ok(());
    }
    let key: Key = decode(answer)?;
    // The old key's new deadline, for the message.
    let old_path = format!("/orgs/{}/keys/{}", segment(&args.org), segment(&args.id));
    let old: Option<Key> = client.json(Method::GET, &old_path, None).await.ok();
    println!(
        "rotated key {} -> new key {} ({})",
        args.id, key.id, key.name
    );
    if let Some(old) = old {
        println!("the old key works until {}", expiry(old.expires_at));
    }
    print_secret(key.secret.as_deref());
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> CliResult<T> {
    serde_json::from_value(value)
        .map_err(|e| CliError::new(format!("the server's answer is not what was expected: {e}")))
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

use switchboard_types::calendar::now_ms;
