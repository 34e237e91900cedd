//! Stored prompts and APIs through the admin API (`/admin/v1/prompts`, `/admin/v1/apis`), on
//! SQLite and Postgres: immutable versions (409 on a changed one), labels and splits, the
//! render playground (400 naming the bad variable), API lifecycle transitions, audit rows,
//! `apply`/`export` round trips, and reloads of the server's file that would change a running
//! prompt version (refused, the running config stays).

use super::admin_kit::{both, path_str, run_cli, write_file, Db, Env, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::runtime::ConfigSource;

both!(
    versions_are_appended_and_immutable,
    concurrent_appends_never_lose_a_version,
    labels_and_splits_drive_the_playground,
    playground_names_the_bad_variable,
    apis_crud_and_lifecycle,
    writes_are_audited,
    apply_and_export_round_trip,
    apply_refuses_a_changed_version,
    cli_applies_and_exports_prompts,
    reload_refuses_a_changed_version,
);

fn greet() -> Value {
    json!({
        "description": "Greets someone",
        "variables": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "tone": {"type": "string"}},
            "required": ["name"]
        },
        "versions": [{"version": 1, "system": "Be kind.", "user": "Say hi to {{ name }}."}],
        "labels": {"production": 1}
    })
}

async fn create_greet(gw: &Env) {
    let created = gw
        .admin_ok(Method::PUT, "/prompts/greet", greet(), 201)
        .await;
    assert_eq!(created["name"], "greet");
    assert_eq!(created["settings"], greet());
}

async fn versions_are_appended_and_immutable(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    // The same PUT again is a replace: 200.
    gw.admin_ok(Method::PUT, "/prompts/greet", greet(), 200)
        .await;

    let v2 = gw
        .admin_ok(
            Method::POST,
            "/prompts/greet/versions",
            json!({"user": "Hello {{ name }}!", "params": {"temperature": 0.2}, "note": "shorter"}),
            201,
        )
        .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["prompt"], "greet");
    let v3 = gw
        .admin_ok(
            Method::POST,
            "/prompts/greet/versions",
            json!({"user": "Hey {{ name }}"}),
            201,
        )
        .await;
    assert_eq!(v3["version"], 3);
    let stored = gw
        .admin_ok(Method::GET, "/prompts/greet", Value::Null, 200)
        .await;
    let versions = stored["settings"]["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[1]["params"]["temperature"], 0.2);
    // Appending does not move labels.
    assert_eq!(stored["settings"]["labels"]["production"], 1);

    // Changing version 2 through PUT: 409, nothing changes.
    let mut changed = stored["settings"].clone();
    changed["versions"][1]["user"] = json!("Changed {{ name }}");
    let reply = gw.admin(Method::PUT, "/prompts/greet", Some(changed)).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.code(), "version_immutable");
    assert_eq!(
        reply.message(),
        "prompt `greet` version 2 changed: versions are immutable; add version 4"
    );
    // Leaving version 1 out: 409 too.
    let mut dropped = stored["settings"].clone();
    dropped["versions"].as_array_mut().unwrap().remove(0);
    let reply = gw.admin(Method::PUT, "/prompts/greet", Some(dropped)).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let now = gw
        .admin_ok(Method::GET, "/prompts/greet", Value::Null, 200)
        .await;
    assert_eq!(now["settings"], stored["settings"]);

    // A version with a broken template is a 400 with the problem; a prompt that does not
    // exist gets nothing created.
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/versions",
            Some(json!({"user": "Hi {{ name "})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.message().contains("not a valid template"),
        "{}",
        reply.text
    );
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/nobody/versions",
            Some(json!({"user": "x"})),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = gw.admin(Method::GET, "/prompts/nobody", None).await;
    assert_eq!(reply.status, 404);
    let list = gw.admin(Method::GET, "/prompts", None).await;
    assert_eq!(list.data().len(), 1);

    // Unknown fields in a version are refused by name.
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/versions",
            Some(json!({"user": "x", "version": 9})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    // Readers need a role; the platform admin deletes.
    let reply = gw
        .call(Some("sk-nobody"), Method::GET, "/prompts", None)
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    gw.admin_ok(Method::DELETE, "/prompts/greet", Value::Null, 204)
        .await;
    assert_eq!(
        gw.admin(Method::GET, "/prompts/greet", None).await.status,
        404
    );
    // A deleted prompt may be made again from version 1 with other text: the running config
    // (and every instance's reload) takes it.
    let mut again = greet();
    again["versions"][0]["user"] = json!("Welcome, {{ name }}.");
    gw.admin_ok(Method::PUT, "/prompts/greet", again, 201).await;
    let out = render(&gw, json!({"variables": {"name": "Ada"}})).await;
    assert_eq!(out["user"], "Welcome, Ada.");
    // Even when an instance sees the delete and the new prompt in one reload (another
    // instance made both), the stored prompt is taken: the store guards stored versions.
    let store = &gw.server.runtime.store;
    let actor = switchboard_store::Actor::admin_key();
    store.delete_prompt(&actor, "greet").await.unwrap();
    let mut third = greet();
    third["versions"][0]["user"] = json!("Good day, {{ name }}.");
    store
        .put_prompt(&actor, "greet", third, None)
        .await
        .unwrap();
    gw.server.runtime.reload().await.unwrap();
    let out = render(&gw, json!({"variables": {"name": "Ada"}})).await;
    assert_eq!(out["user"], "Good day, Ada.");
}

/// Appends race: each gets its own number, or 409 when another took it first; no text is
/// ever lost or replaced (writes are serialised and `put_prompt` checks inside the transaction).
async fn concurrent_appends_never_lose_a_version(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    let appends = (0..4).map(|i| {
        gw.admin(
            Method::POST,
            "/prompts/greet/versions",
            Some(json!({"user": format!("Text {i} for {{{{ name }}}}")})),
        )
    });
    let replies = futures::future::join_all(appends).await;
    let mut made = Vec::new();
    for reply in &replies {
        match reply.status {
            201 => made.push((
                reply.json()["version"].as_u64().unwrap(),
                reply.json()["user"].clone(),
            )),
            409 => assert_eq!(reply.code(), "version_immutable", "{}", reply.text),
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert!(!made.is_empty());
    let stored = gw
        .admin_ok(Method::GET, "/prompts/greet", Value::Null, 200)
        .await;
    let versions = stored["settings"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), made.len() + 1, "{stored}");
    for (number, text) in made {
        let found = versions.iter().find(|v| v["version"] == number).unwrap();
        assert_eq!(found["user"], text);
    }
}

async fn render(gw: &Env, body: Value) -> Value {
    gw.admin_ok(Method::POST, "/prompts/greet/render", body, 200)
        .await
}

async fn labels_and_splits_drive_the_playground(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    gw.admin_ok(
        Method::POST,
        "/prompts/greet/versions",
        json!({"user": "Hello {{ name }}!", "params": {"temperature": 0.2}}),
        201,
    )
    .await;

    let out = render(&gw, json!({"variables": {"name": "Ada", "tone": "brief"}})).await;
    assert_eq!(out["version"], 1);
    assert_eq!(out["label"], "production");
    assert_eq!(out["system"], "Be kind.");
    assert_eq!(out["user"], "Say hi to Ada.");
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Say hi to Ada."}
        ])
    );

    // Moving the label changes what it renders.
    let moved = gw
        .admin_ok(
            Method::PUT,
            "/prompts/greet/labels/production",
            json!({"version": 2}),
            200,
        )
        .await;
    assert_eq!(moved["settings"]["labels"]["production"], 2);
    let out = render(&gw, json!({"variables": {"name": "Ada"}})).await;
    assert_eq!(out["version"], 2);
    assert_eq!(out["user"], "Hello Ada!");
    assert_eq!(out["system"], Value::Null);
    assert_eq!(out["params"], json!({"temperature": 0.2}));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": "Hello Ada!"}])
    );
    // By number, whatever the labels.
    let out = render(&gw, json!({"version": 1, "variables": {"name": "Ada"}})).await;
    assert_eq!(out["user"], "Say hi to Ada.");
    assert_eq!(out["label"], Value::Null);

    // A split label: every caller lands on one of its arms, always the same one.
    let split = json!({"split": [{"version": 1, "weight": 1}, {"version": 2, "weight": 3}]});
    let stored = gw
        .admin_ok(
            Method::PUT,
            "/prompts/greet/labels/canary",
            split.clone(),
            200,
        )
        .await;
    assert_eq!(stored["settings"]["labels"]["canary"], split);
    let mut seen = std::collections::BTreeSet::new();
    for caller in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let body = json!({"label": "canary", "ab_key": caller, "variables": {"name": "x"}});
        let first = render(&gw, body.clone()).await["version"].clone();
        assert_eq!(render(&gw, body).await["version"], first);
        seen.insert(first.as_u64().unwrap());
    }
    assert!(seen.iter().all(|v| [1, 2].contains(v)), "{seen:?}");

    // Unknown versions are 404, for labels and splits alike; nothing changes.
    for body in [
        json!({"version": 7}),
        json!({"split": [{"version": 1, "weight": 1}, {"version": 7, "weight": 1}]}),
    ] {
        let reply = gw
            .admin(Method::PUT, "/prompts/greet/labels/production", Some(body))
            .await;
        assert_eq!(reply.status, 404, "{}", reply.text);
        assert!(reply.message().contains("no version 7"), "{}", reply.text);
    }
    let reply = gw
        .admin(Method::PUT, "/prompts/greet/labels/x", Some(json!({})))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    // A zero weight is a config problem: 400 with the problem text.
    let reply = gw
        .admin(
            Method::PUT,
            "/prompts/greet/labels/canary",
            Some(json!({"split": [{"version": 1, "weight": 0}]})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.message().contains("greater than 0"), "{}", reply.text);

    // Removing a label: gone from the playground.
    gw.admin_ok(
        Method::DELETE,
        "/prompts/greet/labels/canary",
        Value::Null,
        200,
    )
    .await;
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/render",
            Some(json!({"label": "canary", "variables": {"name": "x"}})),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        gw.admin(Method::DELETE, "/prompts/greet/labels/canary", None)
            .await
            .status,
        404
    );
}

async fn playground_names_the_bad_variable(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/render",
            Some(json!({"variables": {"name": 42}})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_variables");
    assert_eq!(reply.json()["error"]["param"], "name");
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/render",
            Some(json!({"variables": {"tone": "x"}})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["error"]["param"], "name");
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/render",
            Some(json!({"version": 1, "label": "production", "variables": {}})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/nobody/render",
            Some(json!({"variables": {}})),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/render",
            Some(json!({"version": 5, "variables": {"name": "x"}})),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}

async fn apis_crud_and_lifecycle(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    // References are checked: an unknown model alias is a 400 that says so.
    let reply = gw
        .admin(
            Method::PUT,
            "/apis/hello",
            Some(json!({"prompt": "greet", "model": "nope"})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.message().contains("unknown model alias `nope`"),
        "{}",
        reply.text
    );

    let api = json!({"description": "Say hello", "prompt": "greet", "model": "base-model"});
    let created = gw
        .admin_ok(Method::PUT, "/apis/hello", api.clone(), 201)
        .await;
    assert_eq!(created["settings"], api);
    assert_eq!(gw.admin(Method::GET, "/apis", None).await.data().len(), 1);

    // v1 (the only version): draft -> published; published -> draft is refused.
    let out = gw
        .admin_ok(
            Method::PUT,
            "/apis/hello/versions/v1/status",
            json!({"status": "published"}),
            200,
        )
        .await;
    assert_eq!(out["api"]["settings"]["status"], "published");
    assert_eq!(
        out["transitions"],
        json!([{"version": "v1", "from": "draft", "to": "published"}])
    );
    let reply = gw
        .admin(
            Method::PUT,
            "/apis/hello/versions/v1/status",
            Some(json!({"status": "draft"})),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_transition");
    let reply = gw
        .admin(
            Method::PUT,
            "/apis/hello/versions/v9/status",
            Some(json!({"status": "published"})),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);

    // Two versions: publishing v2 deprecates v1 (dated today), then v1 retires with a successor.
    let versioned = json!({
        "prompt": "greet", "model": "base-model",
        "versions": {"v1": {"status": "published"}, "v2": {"label": "production"}}
    });
    gw.admin_ok(Method::PUT, "/apis/hello", versioned, 200)
        .await;
    let out = gw
        .admin_ok(
            Method::PUT,
            "/apis/hello/versions/v2/status",
            json!({"status": "published"}),
            200,
        )
        .await;
    assert_eq!(
        out["transitions"],
        json!([
            {"version": "v1", "from": "published", "to": "deprecated"},
            {"version": "v2", "from": "draft", "to": "published"}
        ])
    );
    let v1 = &out["api"]["settings"]["versions"]["v1"];
    assert_eq!(v1["status"], "deprecated");
    assert!(v1["deprecated_at"].as_str().unwrap().len() == 10, "{v1}");
    let live = gw.server.gateway.snapshot();
    let config = &live.config.apis["hello"];
    assert_eq!(config.current().unwrap().version, "v2");
    drop(live);

    let out = gw
        .admin_ok(
            Method::PUT,
            "/apis/hello/versions/v1/status",
            json!({"status": "retired", "sunset": "2027-03-31", "successor": "hello@v2"}),
            200,
        )
        .await;
    let v1 = &out["api"]["settings"]["versions"]["v1"];
    assert_eq!(v1["status"], "retired");
    assert_eq!(v1["sunset"], "2027-03-31");
    assert_eq!(v1["successor"], "hello@v2");
    for (body, status) in [
        (json!({"status": "published"}), 409),
        (json!({"status": "deprecated"}), 409),
        (json!({"status": "retired", "sunset": "31/03/2027"}), 400),
        (json!({"status": "retired", "successor": "nowhere"}), 400),
        (json!({"status": "gone"}), 400),
    ] {
        let reply = gw
            .admin(
                Method::PUT,
                "/apis/hello/versions/v1/status",
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
    }

    // A prompt an API uses cannot go, nor can the label it serves.
    let reply = gw.admin(Method::DELETE, "/prompts/greet", None).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let reply = gw
        .admin(Method::DELETE, "/prompts/greet/labels/production", None)
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    gw.admin_ok(Method::DELETE, "/apis/hello", Value::Null, 204)
        .await;
    assert_eq!(gw.admin(Method::GET, "/apis/hello", None).await.status, 404);
    gw.admin_ok(Method::DELETE, "/prompts/greet", Value::Null, 204)
        .await;
}

async fn writes_are_audited(db: Db) {
    let gw = Env::config(db, "").await;
    create_greet(&gw).await;
    gw.admin_ok(
        Method::POST,
        "/prompts/greet/versions",
        json!({"user": "Hi {{ name }}"}),
        201,
    )
    .await;
    gw.admin_ok(
        Method::PUT,
        "/apis/hello",
        json!({"prompt": "greet", "model": "base-model"}),
        201,
    )
    .await;
    gw.admin_ok(
        Method::PUT,
        "/apis/hello/versions/v1/status",
        json!({"status": "published"}),
        200,
    )
    .await;
    gw.admin_ok(Method::DELETE, "/apis/hello", Value::Null, 204)
        .await;
    // A refused write leaves no row.
    let reply = gw.admin(Method::PUT, "/prompts/greet", Some(greet())).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let log = gw
        .admin_ok(Method::GET, "/audit?limit=100", Value::Null, 200)
        .await;
    let rows: Vec<(String, String)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["object_id"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(action, _)| action.starts_with("prompt.") || action.starts_with("api."))
        .collect();
    let mut actions: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "api.create",
            "api.delete",
            "api.update",
            "prompt.create",
            "prompt.update"
        ]
    );
    let audit = gw
        .admin_ok(Method::GET, "/audit?limit=100", Value::Null, 200)
        .await;
    let entry = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "prompt.update")
        .unwrap()
        .clone();
    assert_eq!(entry["object_kind"], "prompt");
    assert_eq!(entry["actor"], "admin_key");
    assert_eq!(entry["after"]["settings"]["versions"][1]["version"], 2);
}

const DOC: &str = "\
prompts:
  greet:
    variables: { type: object, properties: { name: { type: string } }, required: [name] }
    versions:
      - { version: 1, user: \"Say hi to {{ name }}.\" }
      - { version: 2, user: \"Hello {{ name }}!\", params: { temperature: 0.2 }, note: shorter }
    labels:
      production: 2
      canary: { split: [ { version: 1, weight: 1 }, { version: 2, weight: 1 } ] }
apis:
  hello:
    prompt: greet
    model: base-model
    versions:
      v1: { status: deprecated, label: canary }
      v2: { status: published }
";

async fn apply_and_export_round_trip(db: Db) {
    let gw = Env::config(db, "").await;
    assert_eq!(gw.apply_ok(DOC).await, ["+ prompt greet", "+ api hello"]);
    assert_eq!(gw.apply_ok(DOC).await, Vec::<String>::new());
    let exported = gw.export().await;
    assert!(exported.contains("prompts:"), "{exported}");
    assert!(exported.contains("Hello {{ name }}!"), "{exported}");
    assert!(exported.contains("apis:"), "{exported}");
    assert_eq!(gw.apply_ok(&exported).await, Vec::<String>::new());
    assert_eq!(gw.export().await, exported);

    // The playground serves what was applied; apply's objects are read-only here.
    let out = gw
        .admin_ok(
            Method::POST,
            "/prompts/greet/render",
            json!({"variables": {"name": "Ada"}}),
            200,
        )
        .await;
    assert_eq!(out["user"], "Hello Ada!");
    let reply = gw
        .admin(
            Method::POST,
            "/prompts/greet/versions",
            Some(json!({"user": "x"})),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.code(), "managed_by_apply");

    // A third version and a moved label are updates; leaving `apis` out keeps them.
    let more = DOC.replace(
        "    labels:\n      production: 2",
        "      - { version: 3, user: \"Hey {{ name }}\" }\n    labels:\n      production: 3",
    );
    let prompts_only = &more[..more.find("apis:").unwrap()];
    assert_eq!(
        gw.apply_ok(prompts_only).await,
        ["~ prompt greet (labels, versions)"]
    );
    assert_eq!(gw.admin(Method::GET, "/apis/hello", None).await.status, 200);
    // `apis: {}` deletes them, before the prompt they use.
    let doc = "apis: {}\nprompts: {}\n";
    assert_eq!(gw.apply_ok(doc).await, ["- api hello", "- prompt greet"]);
}

async fn apply_refuses_a_changed_version(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let changed = DOC
        .replace("Hello {{ name }}!", "Howdy {{ name }}!")
        .replace("hello:", "hello2:");
    let reply = gw.apply(&changed).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .text
            .contains("prompt `greet` version 2 changed: versions are immutable; add version 3"),
        "{}",
        reply.text
    );
    let problem = &reply.json()["error"]["problems"][0];
    assert_eq!(problem["key"], "prompts.greet.versions");
    assert_eq!(problem["line"], 2);
    // Nothing changed: not the prompt, not the API the document renames.
    assert_eq!(
        gw.admin(Method::GET, "/apis/hello2", None).await.status,
        404
    );
    let exported = gw.export().await;
    assert!(exported.contains("Hello {{ name }}!"), "{exported}");
    // Dropping a version is refused the same way.
    // (The split that used version 1 moves off it: only the missing version is wrong.)
    let dropped = DOC
        .replace(
            "      - { version: 1, user: \"Say hi to {{ name }}.\" }\n",
            "",
        )
        .replace("{ version: 1, weight: 1 }, ", "");
    let reply = gw.apply(&dropped).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.text.contains("version 1 is missing"),
        "{}",
        reply.text
    );
}

/// `switchboard apply -f` / `switchboard export` from the shell: the sections round-trip, and a
/// changed version fails with the immutability message and exit code 1.
async fn cli_applies_and_exports_prompts(db: Db) {
    let gw = Env::config(db, "").await;
    let file = path_str(&write_file(&gw.db, "prompts.yaml", DOC));
    let run = run_cli(Some(&gw), &["apply", "-f", &file], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    for line in ["+ prompt greet", "+ api hello"] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run:?}");
    }
    let out = path_str(&write_file(&gw.db, "exported.yaml", ""));
    let run = run_cli(Some(&gw), &["export", "-o", &out], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(
        exported.contains("greet:") && exported.contains("hello:"),
        "{exported}"
    );
    let run = run_cli(Some(&gw), &["apply", "-f", &out], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no changes"), "{run:?}");

    let changed = path_str(&write_file(
        &gw.db,
        "changed.yaml",
        &DOC.replace("Hello {{ name }}!", "Howdy {{ name }}!"),
    ));
    let run = run_cli(Some(&gw), &["apply", "-f", &changed], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("prompt `greet` version 2 changed: versions are immutable; add version 3"),
        "{run:?}"
    );
}

/// A server whose own file defines a prompt: changing a version's text in the file and
/// reloading is refused, and the running config keeps the old text.
async fn reload_refuses_a_changed_version(db: Db) {
    let base = format!(
        "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n\
         providers:\n  base: {{ type: mock }}\nmodels:\n  base-model: {{ targets: [ {{ provider: base, model: echo }} ] }}\n",
        db.url
    );
    let prompt = |v1: &str, more: &str| {
        format!(
            "{base}prompts:\n  greet:\n    versions:\n      - {{ version: 1, user: \"{v1}\" }}\n{more}    labels: {{ production: 1 }}\n"
        )
    };
    let path = write_file(&db, "server.yaml", &prompt("Hi {{ name }}", ""));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = switchboard::serve::start(listener, ConfigSource::File(path.clone()))
        .await
        .unwrap();
    let text = |server: &switchboard::serve::Server| {
        server.gateway.snapshot().config.prompts["greet"].versions[&1]
            .user
            .clone()
    };
    assert_eq!(text(&server).as_deref(), Some("Hi {{ name }}"));

    // Adding a version is fine.
    let added = prompt("Hi {{ name }}", "      - { version: 2, user: \"Yo\" }\n");
    std::fs::write(&path, &added).unwrap();
    server.runtime.reload().await.unwrap();
    assert_eq!(
        server.gateway.snapshot().config.prompts["greet"]
            .versions
            .len(),
        2
    );

    // Changing version 1 is refused with the reason; the running config stays.
    let changed = prompt("Hello {{ name }}", "      - { version: 2, user: \"Yo\" }\n");
    std::fs::write(&path, &changed).unwrap();
    let why = server.runtime.reload().await.unwrap_err();
    assert!(
        why.contains("prompt `greet` version 1 changed: versions are immutable; add version 3"),
        "{why}"
    );
    assert_eq!(text(&server).as_deref(), Some("Hi {{ name }}"));
    let status = server.gateway.reload_status();
    assert_eq!(status.last_error.as_deref(), Some(why.as_str()));
    server.shutdown().await;
}
