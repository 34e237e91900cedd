//! The issue's own setting for shared limits: three separate `switchboard serve` processes (the
//! binary this crate builds), one database, one Redis, one requests-per-minute limit. The
//! in-process instances of `redis.rs` share nothing but Redis either; this test removes the
//! last doubt (one address space, one allocator, one Tokio runtime).

use super::kit::{clear_of_minute_boundary, minute_now, redis_url, unique, Db, ADMIN};
use futures::future::join_all;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A gateway process and its address.
struct Process {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

/// Starts `switchboard serve` with `body` on a port picked now, and waits until it answers.
async fn spawn(db: &Db, body: &str) -> Process {
    // Bound then released: another process could take it in between, which would make this
    // test fail loudly (never pass wrongly).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("sb-proc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchboard.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:{port}\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n{body}",
        db.url
    );
    std::fs::write(&config, yaml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the switchboard binary starts");
    let addr = format!("127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // Process start-up is not an event this test can await: poll readiness, bounded.
    for _ in 0..400 {
        let ready = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Process { child, addr, dir };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("switchboard serve on {addr} did not become ready in 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_redis_admit_one_limit_between_them() {
    let Some(redis) = redis_url("three_processes_on_redis_admit_one_limit_between_them") else {
        return;
    };
    const LIMIT: usize = 45;
    const PER_PROCESS: usize = 50;
    let db = Db::shared().await;
    let body = format!(
        "redis: \"{redis}\"\nproviders:\n  mock: {{ type: mock }}\nmodels:\n  m-x: {{ targets: [ {{ provider: mock, model: echo }} ] }}\n\
         rate_limits:\n  - {{ name: {}, scope: alias, match: {{ alias: m-x }}, requests_per_minute: {LIMIT} }}\n",
        unique("proc3")
    );
    // One after the other: the first migrates the database.
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(spawn(&db, &body).await);
    }
    let client = reqwest::Client::new();
    clear_of_minute_boundary().await;
    let window = minute_now();
    let calls = processes.iter().flat_map(|p| {
        let client = client.clone();
        (0..PER_PROCESS).map(move |_| {
            client
                .post(format!("http://{}/v1/chat/completions", p.addr))
                .bearer_auth(ADMIN)
                .json(&json!({"model": "m-x", "messages": [{"role": "user", "content": "Hi"}]}))
                .send()
        })
    });
    let statuses: Vec<u16> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("an answer").status().as_u16())
        .collect();
    assert_eq!(window, minute_now(), "the burst stayed in one window");
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        admitted <= LIMIT + LIMIT.div_ceil(100),
        "admitted {admitted}"
    );
    assert_eq!(admitted, LIMIT, "exactly the limit across three processes");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    for mut process in processes {
        let _ = process.child.kill().await;
        let _ = std::fs::remove_dir_all(&process.dir);
    }
    db.drop().await;
}
