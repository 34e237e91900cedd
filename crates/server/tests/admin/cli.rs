//! The `switchboard` binary end to end against a started server: `apply` (diff, progress,
//! `--dry-run`, `--json`, `${VAR}` from the caller's environment), `export`, `keys
//! create|list|revoke|rotate` (tables and `--json`), and the storage commands `migrate` and
//! `audit verify` (intact, then tampered with by raw SQL), on SQLite and Postgres.

use super::apply::DOC;
use super::kit::{both, path_str, run_cli, write_file, Db, Env, ADMIN};
use serde_json::Value;

both!(
    cli_applies_and_exports,
    cli_manages_keys,
    cli_migrate_is_idempotent,
    cli_audit_verify_finds_tampering,
);

async fn cli_applies_and_exports(db: Db) {
    let gw = Env::config(db, "").await;
    let doc = DOC.replace("sk-upstream-1", "${UPSTREAM_KEY}");
    let file = write_file(&gw.db, "switchboard-config.yaml", &doc);
    let file = path_str(&file);
    let env = [("UPSTREAM_KEY", "sk-upstream-1")];

    let run = run_cli(Some(&gw), &["apply", "-f", &file], &env).await;
    assert_eq!(run.code, 0, "{run:?}");
    for line in ["+ provider keyed", "+ model m2", "+ app acme/research/old"] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run:?}");
    }
    assert!(
        run.stdout.contains("8 to create, 0 to update, 0 to delete"),
        "{run:?}"
    );
    assert!(run.stdout.contains("applied: 8 to create"), "{run:?}");
    assert!(
        run.stderr.contains("[8/8] applied + app acme/research/old"),
        "{run:?}"
    );

    let run = run_cli(Some(&gw), &["apply", "-f", &file], &env).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no changes"), "{run:?}");

    // A changed key in the caller's environment is a change; --dry-run only shows it.
    let other = [("UPSTREAM_KEY", "sk-upstream-2")];
    let run = run_cli(Some(&gw), &["apply", "-f", &file, "--dry-run"], &other).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("~ provider keyed (api_key)"), "{run:?}");
    assert!(
        run.stdout.contains("dry run: nothing was changed"),
        "{run:?}"
    );
    let run = run_cli(Some(&gw), &["apply", "-f", &file, "--json"], &env).await;
    assert_eq!(run.code, 0, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["changes"],
        serde_json::json!([]),
        "the dry run changed nothing"
    );
    assert_eq!(json["applied"], true);

    // export -o, then apply the export: nothing to do.
    let out = path_str(&write_file(&gw.db, "exported.yaml", ""));
    let run = run_cli(Some(&gw), &["export", "-o", &out], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(
        exported.contains("keyed:") && !exported.contains("sk-upstream"),
        "{exported}"
    );
    let run = run_cli(Some(&gw), &["export"], &[]).await;
    assert_eq!(run.stdout, exported);
    let run = run_cli(Some(&gw), &["apply", "-f", &out], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no changes"), "{run:?}");

    // Errors: a variable the caller did not set, and a document the server refuses.
    let run = run_cli(Some(&gw), &["apply", "-f", &file], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!("error: {file}:3:")),
        "names file and line: {run:?}"
    );
    assert!(run.stderr.contains("`UPSTREAM_KEY` is not set"), "{run:?}");
    let bad = path_str(&write_file(
        &gw.db,
        "bad.yaml",
        "models:\n  m1:\n    targets: [ { provider: up, model: echo, wieght: 2 } ]\n",
    ));
    let run = run_cli(Some(&gw), &["apply", "-f", &bad], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains(&format!("{bad}:3:")), "{run:?}");
    assert!(run.stderr.contains("wieght"), "{run:?}");
    gw.stop().await;
}

/// The first row of a `keys list` table whose line contains `needle`.
fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle} in\n{table}"))
}

async fn cli_manages_keys(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let create = [
        "keys",
        "create",
        "--org",
        "acme",
        "--team",
        "research",
        "--app",
        "notebook",
        "--name",
        "ci",
        "--model",
        "m1",
        "--expires-in",
        "30d",
        "--json",
    ];
    let run = run_cli(Some(&gw), &create, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let created: Value = serde_json::from_str(&run.stdout).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let prefix = created["prefix"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with(&prefix) && secret.starts_with("sk-sb-"),
        "{created}"
    );
    assert_eq!(created["models"], serde_json::json!(["m1"]));
    let in_30_days = created["created_at"].as_i64().unwrap() + 30 * 86_400_000;
    assert!((created["expires_at"].as_i64().unwrap() - in_30_days).abs() < 60_000);

    // The key works on the data plane.
    let chat = gw
        .send(
            gw.client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(&secret)
                .json(&serde_json::json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(chat.status, 200, "{}", chat.text);

    let run = run_cli(
        Some(&gw),
        &[
            "keys", "create", "--org", "acme", "--team", "research", "--app", "old",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("for app acme/research/old"), "{run:?}");
    assert!(
        run.stdout.contains("secret (shown once, store it now):"),
        "{run:?}"
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("sk-sb-")),
        "{run:?}"
    );

    let run = run_cli(Some(&gw), &["keys", "list", "--org", "acme"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let header = run.stdout.lines().next().unwrap();
    for column in ["ID", "PREFIX", "NAME", "APP", "MODELS", "EXPIRES", "STATUS"] {
        assert!(header.contains(column), "{header}");
    }
    let ci = row(&run.stdout, &id);
    for cell in [
        prefix.as_str(),
        "ci",
        "research/notebook",
        "m1",
        "UTC",
        "active",
    ] {
        assert!(ci.contains(cell), "{cell} in {ci}");
    }
    assert!(
        row(&run.stdout, "research/old").contains("never"),
        "{}",
        run.stdout
    );

    let run = run_cli(
        Some(&gw),
        &[
            "keys", "list", "--org", "acme", "--team", "research", "--app", "notebook", "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    let run = run_cli(
        Some(&gw),
        &[
            "keys", "rotate", "--org", "acme", &id, "--grace", "1h", "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let rotated: Value = serde_json::from_str(&run.stdout).unwrap();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert!(rotated["secret"].as_str().unwrap().starts_with("sk-sb-"));
    let run = run_cli(Some(&gw), &["keys", "list", "--org", "acme"], &[]).await;
    assert!(
        row(&run.stdout, &id).contains("rotated (grace)"),
        "{}",
        run.stdout
    );
    assert!(
        row(&run.stdout, &new_id).contains("active"),
        "{}",
        run.stdout
    );

    let run = run_cli(
        Some(&gw),
        &["keys", "revoke", "--org", "acme", &new_id],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!("revoked key {new_id}")),
        "{run:?}"
    );
    let run = run_cli(Some(&gw), &["keys", "list", "--org", "acme"], &[]).await;
    assert!(
        !run.stdout.contains(&new_id),
        "revoked keys are hidden: {}",
        run.stdout
    );
    let run = run_cli(Some(&gw), &["keys", "list", "--org", "acme", "--all"], &[]).await;
    assert!(
        row(&run.stdout, &new_id).contains("revoked"),
        "{}",
        run.stdout
    );

    // API errors are one readable line and exit 1.
    let run = run_cli(
        Some(&gw),
        &["keys", "revoke", "--org", "acme", "key_nope"],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with("error: ") && run.stderr.contains("not found"),
        "{run:?}"
    );
    let run = run_cli(Some(&gw), &["keys", "list", "--org", "nope"], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("error: organisation `nope` not found"),
        "{run:?}"
    );
    let run = run_cli(
        Some(&gw),
        &["keys", "list", "--org", "acme"],
        &[("SWITCHBOARD_ADMIN_KEY", "wrong")],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    gw.stop().await;
}

async fn cli_migrate_is_idempotent(db: Db) {
    for _ in 0..2 {
        let run = run_cli(None, &["migrate", "--database", &db.url], &[]).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("up to date"), "{run:?}");
    }
    // The server (which migrates too) starts on it, and the audit log is empty and intact.
    let gw = Env::config(db, "").await;
    let db = gw.stop().await;
    let run = run_cli(None, &["audit", "verify", "--database", &db.url], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "audit log intact: 0 entries");
}

async fn cli_audit_verify_finds_tampering(db: Db) {
    let gw = Env::config(db, "").await;
    gw.apply_ok(DOC).await;
    let entries = gw.audit_count().await;
    let db = gw.stop().await;
    let run = run_cli(None, &["audit", "verify", "--database", &db.url], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout.trim(),
        format!("audit log intact: {entries} entries")
    );

    // The same database named by a config file's `database:` (with a variable).
    let config = write_file(&db, "server.yaml", "database: \"${TEST_DB_URL}\"\n");
    let by_config = ["audit", "verify", "--config", &path_str(&config)];
    let run = run_cli(None, &by_config, &[("TEST_DB_URL", &db.url)]).await;
    assert_eq!(run.code, 0, "{run:?}");

    for sql in db.lift_audit_protection() {
        db.execute(sql, &db.url).await;
    }
    db.execute(
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        &db.url,
    )
    .await;
    let run = run_cli(None, &by_config, &[("TEST_DB_URL", &db.url)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stdout.trim(),
        "audit log TAMPERED at entry 3: hash does not match the row's content"
    );
}

#[tokio::test]
async fn every_command_has_help() {
    let commands: [&[&str]; 13] = [
        &[],
        &["serve"],
        &["check"],
        &["apply"],
        &["export"],
        &["keys"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "revoke"],
        &["keys", "rotate"],
        &["migrate"],
        &["audit"],
        &["audit", "verify"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = run_cli(None, &args, &[]).await;
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(
            run.stdout.contains("Usage: switchboard"),
            "{args:?}: {run:?}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_readable() {
    let args = ["keys", "list", "--org", "a", "--url", "http://127.0.0.1:1"];
    let run = run_cli(None, &args, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: no admin key"), "{run:?}");
    let run = run_cli(None, &args, &[("SWITCHBOARD_ADMIN_KEY", ADMIN)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot connect to http://127.0.0.1:1"),
        "{run:?}"
    );
    let run = run_cli(None, &["apply", "-f", "/nonexistent/x.yaml"], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot read /nonexistent/x.yaml"),
        "{run:?}"
    );
}
