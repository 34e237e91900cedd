//! The change feed: local delivery, and delivery between two instances through Postgres
//! LISTEN/NOTIFY and through Redis pub/sub, including the "everything changed" signal after a
//! listener reconnects. Remote tests wait for the listener to be subscribed (never a sleep) and
//! then require the event within a second.

use std::time::{Duration, Instant};
use switchboard_store::{Change, ChangeListeners, Store, StoreOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a test waits at most; the assertion on latency is separate (1 s).
const WAIT: Duration = Duration::from_secs(5);

fn postgres_url() -> Option<String> {
    let url = std::env::var("SWITCHBOARD_TEST_POSTGRES").ok();
    if url.is_none() {
        skipped("postgres", "SWITCHBOARD_TEST_POSTGRES");
    }
    url
}

fn redis_url() -> Option<String> {
    let url = std::env::var("SWITCHBOARD_TEST_REDIS").ok();
    if url.is_none() {
        skipped("redis", "SWITCHBOARD_TEST_REDIS");
    }
    url
}

/// Says loudly that a test did not run (straight to stderr: libtest captures `eprintln!`).
fn skipped(what: &str, var: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED ({what} change feed): {var} not set ***\n"
    );
}

/// Receives until `want` arrives (other tests on the same database publish too); panics after
/// [`WAIT`].
async fn expect_change(rx: &mut broadcast::Receiver<Change>, want: Change) {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(change) if change == want => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("change feed closed"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "{want:?} did not arrive within {WAIT:?}");
}

async fn listening(store: &Store, shutdown: &CancellationToken) -> ChangeListeners {
    let listeners = store.start_listening(shutdown.clone());
    tokio::time::timeout(WAIT, listeners.connected())
        .await
        .expect("listeners connect");
    assert!(listeners.is_connected());
    listeners
}

#[tokio::test]
async fn local_subscribers_see_changes() {
    let store = Store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    let mut rx = store.subscribe();
    store.publish(Change::Access).await;
    store.publish(Change::Config).await;
    assert_eq!(rx.recv().await.unwrap(), Change::Access);
    assert_eq!(rx.recv().await.unwrap(), Change::Config);
    // Nothing remote to listen to on SQLite without Redis: ready at once, and stops on cancel.
    let shutdown = CancellationToken::new();
    let listeners = store.start_listening(shutdown.clone());
    assert!(listeners.is_connected());
    listeners.connected().await;
    shutdown.cancel();
    listeners.stopped().await;
}

#[tokio::test]
async fn postgres_notify_reaches_another_instance() {
    let Some(url) = postgres_url() else { return };
    let options = StoreOptions::default();
    let sender = Store::connect(&url, &options).await.unwrap();
    let receiver = Store::connect(&url, &options).await.unwrap();
    let shutdown = CancellationToken::new();
    let listeners = listening(&receiver, &shutdown).await;
    let mut rx = receiver.subscribe();

    for change in [Change::Access, Change::Config] {
        let started = Instant::now();
        sender.publish(change).await;
        expect_change(&mut rx, change).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{change:?} took {took:?}");
    }

    shutdown.cancel();
    tokio::time::timeout(WAIT, listeners.stopped())
        .await
        .expect("listeners stop on shutdown");
}

#[tokio::test]
async fn postgres_listener_reconnects_and_reports_everything_changed() {
    let Some(url) = postgres_url() else { return };
    // A unique application name lets the test find this listener's backend among others.
    let app = format!("sb_feed_{}", uuid::Uuid::new_v4().simple());
    let sep = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{sep}application_name={app}");
    let store = Store::connect(&tagged, &StoreOptions::default())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let listeners = listening(&store, &shutdown).await;
    let mut rx = store.subscribe();

    // Cut the listener's connection from the server side, as a Postgres restart would.
    let killed = terminate_listener(&url, &app).await;
    assert!(killed >= 1, "found no listener backend named {app}");

    // The listener comes back by itself and says that anything may have changed meanwhile.
    expect_change(&mut rx, Change::Access).await;
    expect_change(&mut rx, Change::Config).await;
    tokio::time::timeout(WAIT, listeners.connected())
        .await
        .expect("listener reconnects");

    // And it still forwards notifications.
    let other = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    other.publish(Change::Config).await;
    expect_change(&mut rx, Change::Config).await;
    shutdown.cancel();
    listeners.stopped().await;
}

/// Terminates the `LISTEN` backend of the connection tagged `app`; returns how many.
async fn terminate_listener(url: &str, app: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(app)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    killed
}

#[tokio::test]
async fn redis_pubsub_reaches_another_instance() {
    let Some(url) = redis_url() else { return };
    // SQLite stores: Redis is their only path between instances.
    let options = StoreOptions::default();
    let sender = Store::connect("sqlite::memory:", &options)
        .await
        .unwrap()
        .with_redis(&url)
        .unwrap();
    let receiver = Store::connect("sqlite::memory:", &options)
        .await
        .unwrap()
        .with_redis(&url)
        .unwrap();
    let shutdown = CancellationToken::new();
    let listeners = listening(&receiver, &shutdown).await;
    let mut rx = receiver.subscribe();

    for change in [Change::Access, Change::Config] {
        let started = Instant::now();
        sender.publish(change).await;
        expect_change(&mut rx, change).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{change:?} took {took:?}");
    }

    shutdown.cancel();
    tokio::time::timeout(WAIT, listeners.stopped())
        .await
        .expect("listeners stop on shutdown");
}

#[tokio::test]
async fn redis_listener_reconnects_and_reports_everything_changed() {
    let Some(url) = redis_url() else { return };
    // Database 13 tags this test's connections in CLIENT LIST (channels ignore the number).
    let base = url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some((_, rest)) if rest.contains('/') => base.rsplit_once('/').unwrap().0,
        _ => base,
    };
    let tagged = format!("{base}/13");
    let store = Store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap()
        .with_redis(&tagged)
        .unwrap();
    let shutdown = CancellationToken::new();
    let listeners = listening(&store, &shutdown).await;
    let mut rx = store.subscribe();

    // Drop the subscriber's connection from the server side, as a Redis restart would.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<&str> = list
        .lines()
        .filter(|line| line.contains(" db=13 ") && line.contains(" sub=1 "))
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next())
        .collect();
    assert!(!ids.is_empty(), "no subscriber on db 13 in {list}");
    for id in ids {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    expect_change(&mut rx, Change::Access).await;
    expect_change(&mut rx, Change::Config).await;
    tokio::time::timeout(WAIT, listeners.connected())
        .await
        .expect("listener reconnects");
    let _: i64 = redis::cmd("PUBLISH")
        .arg(switchboard_store::REDIS_CHANNEL)
        .arg("config")
        .query_async(&mut conn)
        .await
        .unwrap();
    expect_change(&mut rx, Change::Config).await;
    shutdown.cancel();
    listeners.stopped().await;
}

#[tokio::test]
async fn unreachable_redis_neither_blocks_nor_fails_publishing() {
    // Nothing listens on port 1: connections are refused at once.
    let store = Store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap()
        .with_redis("redis://127.0.0.1:1")
        .unwrap();
    let mut rx = store.subscribe();
    let shutdown = CancellationToken::new();
    let listeners = store.start_listening(shutdown.clone());
    let started = Instant::now();
    store.publish(Change::Access).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    // Local delivery does not depend on Redis.
    assert_eq!(rx.recv().await.unwrap(), Change::Access);
    assert!(!listeners.is_connected());
    shutdown.cancel();
    tokio::time::timeout(WAIT, listeners.stopped())
        .await
        .expect("a retrying listener still stops on shutdown");
    assert!(matches!(
        Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap()
            .with_redis("not a url"),
        Err(switchboard_store::StoreError::Invalid(_))
    ));
}
