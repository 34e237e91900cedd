//! Config as code through the admin API: `POST /admin/v1/config/apply` and
//! `GET /admin/v1/config/export`, on SQLite and Postgres. Apply makes storage equal to the
//! document (and is idempotent), a dry run writes nothing, an export applies back as no change,
//! removals delete child first, managed objects are read-only in the admin API, and an invalid
//! document changes nothing and says where it is wrong.

use super::kit::{both, diff_lines, eventually, Db, Env, ADMIN};
use reqwest::Method;
use serde_json::json;

/// A document with every kind of object; `keyed` has an API key (stored encrypted).
pub const DOC: &str = "\
providers:
  up: { type: mock }
  keyed: { type: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: sk-upstream-1 }
models:
  m1: { targets: [ { provider: up, model: echo } ] }
  m2:
    targets: [ { provider: keyed, model: gpt-4o } ]
    fallbacks: [m1]
orgs:
  acme:
    display_name: Acme Inc.
    teams:
      research:
        apps:
          notebook: { models: [m1, base-model] }
          old: {}
";

const DOC_CREATES: [&str; 8] = [
    "+ provider keyed",
    "+ provider up",
    "+ model m1",
    "+ model m2",
    "+ org acme",
    "+ team acme/research",
    "+ app acme/research/notebook",
    "+ app acme/research/old",
];

both!(
    apply_creates_everything,
    second_apply_changes_nothing,
    dry_run_changes_nothing,
    export_applies_back_unchanged,
    removals_delete_child_first,
    sections_left_out_are_kept,
    api_keys_are_kept_changed_and_never_exported,
    managed_objects_are_read_only,
    invalid_documents_change_nothing,
    only_the_platform_admin_may_apply,
    progress_streams_as_ndjson,
    server_file_orgs_are_synced_and_protected,
    a_failed_step_reports_what_was_done,
);

async fn apply_creates_everything(db: Db) {
    let gw = Env::config(db, "").await;
    assert_eq!(gw.apply_ok(DOC).await, DOC_CREATES);

    let provider = gw.admin(Method::GET, "/providers/keyed", None).await;
    assert_eq!(provider.status, 200, "{}", provider.text);
    let provider = provider.json();
    assert_eq!(provider["managed_by"], "apply");
    assert_eq!(provider["has_api_key"], true);
    assert!(provider["settings"].get("api_key").is_none(), "{provider}");
    let app = gw
        .admin(Method::GET, "/orgs/acme/teams/research/apps/notebook", None)
        .await
        .json();
    assert_eq!(app["models"], json!(["m1", "base-model"]));
    assert_eq!(app["managed_by"], "apply");
    let org = gw.admin(Method::GET, "/orgs/acme", None).await.json();
    assert_eq!(org["display_name"], "Acme Inc.");

    // The new aliases are live: the answer came after this instance rebuilt its config.
    eventually("m1 and m2 are served", || async {
        let ids = gw.admin_model_ids().await;
        ids.contains(&"m1".to_owned()) && ids.contains(&"m2".to_owned())
    })
    .await;
    let chat = gw
        .send(
            gw.client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(ADMIN)
                .json(&json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    gw.stop().await;
}

async fn second_apply_changes_nothing(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let audit = gw.audit_count().await;
    assert!(audit >= DOC_CREATES.len(), "{audit}");
    assert_eq!(gw.apply_ok(DOC).await, Vec::<String>::new());
    assert_eq!(
        gw.audit_count().await,
        audit,
        "a no-op apply writes no audit rows"
    );
    gw.stop().await;
}

async fn dry_run_changes_nothing(db: Db) {
    let gw = Env::config(db, "").await;
    let reply = gw.apply_named("doc.yaml", DOC, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json();
    assert_eq!(json["applied"], false);
    assert_eq!(diff_lines(&json), DOC_CREATES);
    assert_eq!(json["summary"], "8 to create, 0 to update, 0 to delete");
    assert_eq!(gw.audit_count().await, 0);
    let orgs = gw.admin(Method::GET, "/orgs", None).await.json();
    assert_eq!(orgs["data"], json!([]));
    // The real run then does all of it.
    assert_eq!(gw.apply_ok(DOC).await, DOC_CREATES);
    gw.stop().await;
}

async fn export_applies_back_unchanged(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    // Objects made through the admin API are exported too; applying the export takes them over.
    let made = gw
        .admin(Method::POST, "/orgs", Some(json!({"name": "handmade"})))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let exported = gw.export().await;
    assert!(
        exported.starts_with("# Switchboard stored config"),
        "{exported}"
    );
    assert!(!exported.contains("sk-upstream-1"), "{exported}");
    assert!(!exported.contains("api_key:"), "{exported}");
    assert!(
        !exported.contains("base-model:"),
        "server entries are not exported: {exported}"
    );

    assert_eq!(gw.apply_ok(&exported).await, ["~ org handmade (managed)"]);
    assert_eq!(gw.apply_ok(&exported).await, Vec::<String>::new());
    assert_eq!(gw.export().await, exported);
    gw.stop().await;
}

async fn removals_delete_child_first(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let smaller = "\
providers:
  up: { type: mock }
models:
  m1: { targets: [ { provider: up, model: echo } ] }
orgs:
  acme:
    display_name: Acme Inc.
    teams:
      research:
        apps:
          notebook: { models: [m1] }
      ops:
        apps:
          bot: {}
";
    assert_eq!(
        gw.apply_ok(smaller).await,
        [
            "+ team acme/ops",
            "+ app acme/ops/bot",
            "~ app acme/research/notebook (models)",
            "- app acme/research/old",
            "- model m2",
            "- provider keyed",
        ]
    );
    let gone = gw
        .admin(Method::GET, "/orgs/acme/teams/research/apps/old", None)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(gw.admin(Method::GET, "/models/m2", None).await.status, 404);
    assert_eq!(
        gw.admin(Method::GET, "/providers/keyed", None).await.status,
        404
    );

    let empty = "providers:\n  up: { type: mock }\nmodels:\n  m1: { targets: [ { provider: up, model: echo } ] }\norgs: {}\n";
    assert_eq!(
        gw.apply_ok(empty).await,
        [
            "- app acme/ops/bot",
            "- team acme/ops",
            "- app acme/research/notebook",
            "- team acme/research",
            "- org acme",
        ]
    );
    assert_eq!(gw.admin(Method::GET, "/orgs/acme", None).await.status, 404);
    gw.stop().await;
}

async fn sections_left_out_are_kept(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let models_only = "models:\n  m1: { targets: [ { provider: up, model: echo } ] }\n";
    assert_eq!(gw.apply_ok(models_only).await, ["- model m2"]);
    assert_eq!(gw.admin(Method::GET, "/orgs/acme", None).await.status, 200);
    assert_eq!(
        gw.admin(Method::GET, "/providers/keyed", None).await.status,
        200
    );
    gw.stop().await;
}

/// [`DOC`] with one more provider entry.
fn with_provider(entry: &str) -> String {
    DOC.replacen("providers:\n", &format!("providers:\n  {entry}\n"), 1)
}

async fn api_keys_are_kept_changed_and_never_exported(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    // Without api_key the stored key stays, even for provider types that require one.
    let keyless = DOC.replace(", api_key: sk-upstream-1", "");
    assert_eq!(gw.apply_ok(&keyless).await, Vec::<String>::new());
    let anthropic = with_provider("claude: { type: anthropic, api_key: sk-ant-1 }");
    assert_eq!(gw.apply_ok(&anthropic).await, ["+ provider claude"]);
    let anthropic_keyless = with_provider("claude: { type: anthropic }");
    assert_eq!(gw.apply_ok(&anthropic_keyless).await, Vec::<String>::new());
    // A new key is a change; the same key again is not.
    let rotated = with_provider("claude: { type: anthropic, api_key: sk-ant-2 }");
    assert_eq!(gw.apply_ok(&rotated).await, ["~ provider claude (api_key)"]);
    assert_eq!(gw.apply_ok(&rotated).await, Vec::<String>::new());
    let exported = gw.export().await;
    assert!(!exported.contains("sk-ant"), "{exported}");
    assert!(!exported.contains("sk-upstream"), "{exported}");
    // A provider type that needs a key, new and without one, is refused.
    let missing = with_provider("gem: { type: gemini }");
    let reply = gw.apply(&missing).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("providers.gem"), "{}", reply.text);
    assert!(reply.text.contains("api_key"), "{}", reply.text);
    // Removing a provider that stored models still use is refused, naming the models.
    let orphaning = "providers:\n  up: { type: mock }\n";
    let reply = gw.apply(orphaning).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.text.contains("models.m2.targets[0].provider"),
        "{}",
        reply.text
    );
    gw.stop().await;
}

async fn managed_objects_are_read_only(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let attempts = [
        (
            Method::PATCH,
            "/orgs/acme",
            Some(json!({"display_name": "x"})),
        ),
        (Method::DELETE, "/orgs/acme", None),
        (Method::DELETE, "/orgs/acme/teams/research", None),
        (
            Method::PATCH,
            "/orgs/acme/teams/research/apps/notebook",
            Some(json!({"models": null})),
        ),
        (Method::DELETE, "/orgs/acme/teams/research/apps/old", None),
        (
            Method::PUT,
            "/models/m1",
            Some(json!({"targets": [{"provider": "up", "model": "x"}]})),
        ),
        (Method::DELETE, "/models/m2", None),
        (
            Method::PUT,
            "/providers/up",
            Some(json!({"type": "mock", "latency_ms": 5})),
        ),
    ];
    for (method, path, body) in attempts {
        let reply = gw.admin(method.clone(), path, body).await;
        assert_eq!(reply.status, 409, "{method} {path}: {}", reply.text);
        assert_eq!(
            reply.json()["error"]["code"],
            "managed_by_apply",
            "{method} {path}"
        );
        assert!(reply.text.contains("switchboard apply"), "{}", reply.text);
    }
    // Unmanaged objects inside a managed org stay editable (teams made by hand, say).
    let team = gw
        .admin(
            Method::POST,
            "/orgs/acme/teams",
            Some(json!({"name": "hand"})),
        )
        .await;
    assert_eq!(team.status, 201, "{}", team.text);
    assert_eq!(gw.apply_ok(DOC).await, ["- team acme/hand"]);
    gw.stop().await;
}

async fn invalid_documents_change_nothing(db: Db) {
    let gw = Env::config(db, "").await;
    let typo = "\
providers:
  up: { type: mock }
models:
  m1:
    targets: [ { provider: up, model: echo, wieght: 2 } ]
";
    let reply = gw.apply_named("bad.yaml", typo, false).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let json = reply.json();
    assert_eq!(json["error"]["code"], "invalid_config");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("bad.yaml:5:"), "{message}");
    assert!(message.contains("models.m1.targets[0].wieght"), "{message}");
    let problem = &json["error"]["problems"][0];
    assert_eq!(problem["file"], "bad.yaml");
    assert_eq!(problem["line"], 5);

    let cases = [
        // The server's own entries are not stored.
        ("providers:\n  base: { type: mock }\n", "defined in the server's config file"),
        // Rules in an apply file are named.
        (
            "rate_limits:\n  - { scope: key, requests_per_second: 5 }\n",
            "needs a `name`",
        ),
        // References are checked.
        (
            "orgs:\n  acme:\n    teams:\n      t:\n        apps:\n          a: { models: [nope] }\n",
            "unknown model `nope`",
        ),
        ("models:\n  m: { targets: [ { provider: ghost, model: x } ] }\n", "ghost"),
        ("orgs:\n  Bad Name: {}\n", "lowercase"),
        ("[1, 2]\n", "mapping"),
        // The server never expands documents with its own environment.
        ("providers:\n  p: { type: openai, api_key: \"${HOME}\" }\n", "HOME"),
    ];
    for (doc, expected) in cases {
        let reply = gw.apply(doc).await;
        assert_eq!(reply.status, 400, "{doc}: {}", reply.text);
        assert!(reply.text.contains(expected), "{doc}: {}", reply.text);
    }
    let empty = gw.apply("   \n").await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    assert_eq!(gw.audit_count().await, 0, "nothing was written");
    // A valid document with server settings only notes them.
    let reply = gw.apply("listen: 0.0.0.0:1\nmodels: {}\n").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["notes"][0]
        .as_str()
        .unwrap()
        .contains("`listen`"));
    gw.stop().await;
}

async fn only_the_platform_admin_may_apply(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let key = gw
        .admin(
            Method::POST,
            "/orgs/acme/keys",
            Some(json!({"team": "research", "app": "notebook", "name": "k"})),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let secret = key.json()["secret"].as_str().unwrap().to_owned();
    for (credential, status) in [(None, 401), (Some(secret.as_str()), 403)] {
        let mut export = gw.client.get(gw.url("/admin/v1/config/export"));
        let mut apply = gw
            .client
            .post(gw.url("/admin/v1/config/apply"))
            .body("models: {}\n");
        if let Some(credential) = credential {
            export = export.bearer_auth(credential);
            apply = apply.bearer_auth(credential);
        }
        assert_eq!(gw.send(export).await.status, status);
        assert_eq!(gw.send(apply).await.status, status);
    }
    assert_eq!(gw.admin(Method::GET, "/models/m1", None).await.status, 200);
    gw.stop().await;
}

async fn progress_streams_as_ndjson(db: Db) {
    let gw = Env::config(db, "").await;
    let reply = gw
        .send(
            gw.client
                .post(gw.url("/admin/v1/config/apply"))
                .bearer_auth(ADMIN)
                .header("accept", "application/x-ndjson")
                .body(DOC),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.content_type.starts_with("application/x-ndjson"));
    let events: Vec<serde_json::Value> = reply
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "plan");
    assert_eq!(diff_lines(&events[0]), DOC_CREATES);
    let applied: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "applied").collect();
    assert_eq!(applied.len(), DOC_CREATES.len());
    assert_eq!(applied[0]["change"]["name"], "keyed");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["applied"], true);

    // A failure before the plan keeps its status even when streaming was asked for.
    let bad = gw
        .send(
            gw.client
                .post(gw.url("/admin/v1/config/apply"))
                .bearer_auth(ADMIN)
                .header("accept", "application/x-ndjson")
                .body("models: [1]\n"),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    gw.stop().await;
}

async fn server_file_orgs_are_synced_and_protected(db: Db) {
    let file_orgs = "orgs:\n  filed:\n    teams:\n      t1:\n        apps:\n          a1: { models: [base-model] }\n";
    let gw = Env::config(db, file_orgs).await;
    let config = gw.server.gateway.snapshot().config.clone();
    let store = &gw.server.runtime.store;
    let changes = switchboard::apply::sync_file_orgs(store, &config.orgs)
        .await
        .unwrap();
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    // The server may have synced at startup already; either way the state is right after it.
    assert!(
        lines.is_empty() || lines == ["+ org filed", "+ team filed/t1", "+ app filed/t1/a1"],
        "{lines:?}"
    );
    let again = switchboard::apply::sync_file_orgs(store, &config.orgs)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let org = gw.admin(Method::GET, "/orgs/filed", None).await.json();
    assert_eq!(org["managed_by"], "file");
    // Read-only in the admin API, refused in documents, kept by `orgs: {}`, not exported.
    let patch = gw
        .admin(
            Method::PATCH,
            "/orgs/filed",
            Some(json!({"display_name": "x"})),
        )
        .await;
    assert_eq!(patch.status, 409, "{}", patch.text);
    let reply = gw.apply("orgs:\n  filed: {}\n").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.text.contains("server's config file"),
        "{}",
        reply.text
    );
    assert_eq!(gw.apply_ok("orgs: {}\n").await, Vec::<String>::new());
    assert!(!gw.export().await.contains("filed"));
    gw.stop().await;
}

async fn a_failed_step_reports_what_was_done(db: Db) {
    use switchboard::apply::{self, ApplyError, Document, ServerFile};
    let gw = Env::config(db, "").await;
    let store = &gw.server.runtime.store;
    let server = ServerFile::from_source(&gw.server.runtime.source).unwrap();
    let doc = Document {
        name: "doc.yaml".into(),
        text: DOC.to_owned(),
    };
    let plan = apply::plan(store, &server, &doc).await.unwrap();
    assert_eq!(plan.changes.len(), DOC_CREATES.len());
    // Someone takes the org's name between plan and execution.
    let taken = gw
        .admin(Method::POST, "/orgs", Some(json!({"name": "acme"})))
        .await;
    assert_eq!(taken.status, 201, "{}", taken.text);
    let mut seen = Vec::new();
    let err = apply::execute(store, &plan, &mut |c| seen.push(c.to_string()))
        .await
        .unwrap_err();
    let ApplyError::Partial(partial) = &err else {
        panic!("{err}");
    };
    assert_eq!(partial.applied.len(), 4, "{err}");
    assert_eq!(seen, DOC_CREATES[..4]);
    assert_eq!(partial.failed.to_string(), "+ org acme");
    assert_eq!(partial.not_attempted, 3);
    let message = err.to_string();
    assert!(
        message.contains("apply stopped at `+ org acme`"),
        "{message}"
    );
    assert!(message.contains("apply again to finish"), "{message}");
    // Applying again finishes the job (and takes the hand-made org over).
    assert_eq!(
        gw.apply_ok(DOC).await,
        [
            "~ org acme (display_name, managed)",
            "+ team acme/research",
            "+ app acme/research/notebook",
            "+ app acme/research/old",
        ]
    );
    gw.stop().await;
}
