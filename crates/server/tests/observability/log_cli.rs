//! The `switchboard logs` and `switchboard analytics` commands against a running gateway:
//! a table with a cursor line, one request as JSON, an export file with every row (and the
//! count on stderr), a series and a top list; an API refusal becomes `error:` and exit 1.

use super::admin_kit::{run_cli, Db};
use super::analytics_kit::{chat, start, two_orgs, wait_written};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_shows_exports_and_charts() {
    let env = start(Db::sqlite(), "").await;
    let (acme, _) = two_orgs(&env).await;
    for i in 0..5 {
        assert_eq!(
            chat(&env, &acme, "open", &format!("c-{i}"), None).await,
            200
        );
    }
    wait_written(&env, 5).await;

    let run = run_cli(
        Some(&env),
        &["logs", "list", "--org", "acme", "--limit", "2"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("REQUEST_ID"), "{}", run.stdout);
    assert!(run.stdout.contains("c-4"), "{}", run.stdout);
    let cursor = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("more: --cursor "))
        .expect("a cursor line")
        .to_owned();
    let next = run_cli(
        Some(&env),
        &[
            "logs", "list", "--org", "acme", "--limit", "2", "--cursor", &cursor, "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(next.code, 0, "{}", next.stderr);
    let page: Value = serde_json::from_str(&next.stdout).unwrap();
    assert_eq!(page["data"][0]["request_id"], "c-2");

    let show = run_cli(Some(&env), &["logs", "show", "c-3"], &[]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let one: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(one["data"][0]["alias"], "open");

    let dir = std::env::temp_dir().join(format!("sb-export-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("calls.jsonl");
    let export = run_cli(
        Some(&env),
        &[
            "logs",
            "export",
            "--org",
            "acme",
            "-o",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(
        export.stderr.contains("exported 5 rows"),
        "{}",
        export.stderr
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 5);
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["org"], "acme");
    }

    let chart = run_cli(
        Some(&env),
        &[
            "analytics",
            "--group-by",
            "alias",
            "--interval",
            "minute",
            "--from",
            "1h",
        ],
        &[],
    )
    .await;
    assert_eq!(chart.code, 0, "{}", chart.stderr);
    assert!(chart.stdout.contains("open"), "{}", chart.stdout);
    let top = run_cli(
        Some(&env),
        &["analytics", "--group-by", "team", "--top", "3", "--json"],
        &[],
    )
    .await;
    assert_eq!(top.code, 0, "{}", top.stderr);
    let top: Value = serde_json::from_str(&top.stdout).unwrap();
    assert_eq!(top["data"][0]["group"], "acme/red");
    assert_eq!(top["data"][0]["requests"], 5);

    let bad = run_cli(Some(&env), &["logs", "list", "--tag", "novalue"], &[]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("error:") && bad.stderr.contains("key=value"),
        "{}",
        bad.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
    env.server.shutdown().await;
}
