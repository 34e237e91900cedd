//! The binary itself: `check`, `--help`, the offline demo, and reload on SIGHUP.

use std::process::{Command, Stdio};
use tokio::io::AsyncBufReadExt as _;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("check"), "{text}");
}

#[test]
fn check_reports_file_line_column_and_key() {
    let dir = temp_dir("check");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nproviders:\n  demo: { type: mock }\nmodels:\n  a:\n    targets:\n      - { provider: nope, model: x }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("bad.yaml:7:"), "{text}");
    assert!(text.contains("models.a.targets[0].provider"), "{text}");

    let good = dir.join("good.yaml");
    std::fs::write(&good, "listen: 127.0.0.1:0\nproviders:\n  demo: { type: mock }\nmodels:\n  a: { targets: [ { provider: demo, model: x } ] }\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `serve` with no config file starts the offline demo and prints a key and a curl line that
/// work.
#[tokio::test]
async fn the_demo_answers_its_own_curl_line() {
    let dir = temp_dir("demo");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--demo-listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut key = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(k) = line.strip_prefix("Admin key (shown once): ") {
            key = Some(k.trim().to_owned());
            break;
        }
    }
    let key = key.expect("no key printed");
    // The banner is printed once the socket accepts connections.
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: Hello");
    child.kill().await.unwrap();
}

/// A changed config file is applied; an invalid one is refused and the running config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_changes_reload_and_invalid_ones_are_refused() {
    let dir = temp_dir("reload");
    let path = dir.join("switchboard.yaml");
    let yaml = |models: &str| {
        format!("listen: 127.0.0.1:0\nadmin_key: k\ndatabase: \"sqlite::memory:\"\nproviders:\n  demo: {{ type: mock }}\nmodels:\n{models}")
    };
    std::fs::write(
        &path,
        yaml("  one: { targets: [ { provider: demo, model: x } ] }\n"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = switchboard::runtime::ConfigSource::File(path.clone());
    let server = switchboard::serve::start(listener, source).await.unwrap();
    let gateway = server.gateway.clone();
    let wait_for = |done: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !done() && start.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        done()
    };

    std::fs::write(&path, yaml("  one: { targets: [ { provider: demo, model: x } ] }\n  two: { targets: [ { provider: demo, model: y } ] }\n")).unwrap();
    let applied =
        tokio::task::block_in_place(|| wait_for(&|| gateway.reload_status().generation == 1));
    assert!(
        applied,
        "the new config was not applied: {:?}",
        gateway.reload_status()
    );
    assert!(gateway.snapshot().router.model("two").is_some());

    std::fs::write(
        &path,
        yaml("  three: { targets: [ { provider: missing, model: y } ] }\n"),
    )
    .unwrap();
    let refused =
        tokio::task::block_in_place(|| wait_for(&|| gateway.reload_status().refused >= 1));
    assert!(refused, "the invalid config was not refused");
    let status = gateway.reload_status();
    assert!(status.last_error.unwrap().contains("missing"));
    assert!(
        gateway.snapshot().router.model("two").is_some(),
        "the running config stays"
    );
    server.shutdown().await;
}
