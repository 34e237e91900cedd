//! Limit counters: one suite run against the in-memory `LocalBackend` and against `RedisLimits`
//! (when `SWITCHBOARD_TEST_REDIS` names a Redis), so both give the same answers. Each case gets a
//! [`Shared`] that makes backend instances over the same counters: clones of one `LocalBackend`,
//! or separate `RedisLimits` connections under one fresh key prefix (as separate gateway
//! processes would be), so reruns and parallel tests never share keys.
//!
//! The cases shared by both backends are in `limits/cases.rs`; Redis-only behaviour (keys and
//! TTLs, timeouts, reconnection) and the latency measurement in `limits/connection.rs`.
//!
//! Windows are an hour long so a case does not straddle a boundary (the accuracy case checks and
//! retries once if it did). Time-dependent local behaviour (rollover, expiry) is unit-tested in
//! core on an injected clock; here lease expiry is checked without sleeping through zero-length
//! leases.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::limits::{
    Counter, CounterKind, CounterState, Demand, LimitBackend, LocalBackend, Settle, SettleKind,
    SpendChange, Verdict,
};
use switchboard_store::RedisLimits;

const REDIS_ENV: &str = "SWITCHBOARD_TEST_REDIS";
const TIMEOUT: Duration = Duration::from_secs(2);
const HOUR: u64 = 3_600_000;

/// Where the counters of one case live.
enum Shared {
    Local(Arc<LocalBackend>),
    Redis { url: String, prefix: String },
}

impl Shared {
    fn local() -> Shared {
        Shared::Local(Arc::new(LocalBackend::new()))
    }

    /// Redis under a fresh prefix, or `None` (with a loud note) when the variable is not set.
    fn redis() -> Option<Shared> {
        let Ok(url) = std::env::var(REDIS_ENV) else {
            // Straight to stderr: libtest captures print macros of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED (redis limits): {REDIS_ENV} not set, \
                 e.g. redis://127.0.0.1:6379 ***\n"
            );
            return None;
        };
        let prefix = format!("switchboard:rl:test:{}:", uuid::Uuid::new_v4().simple());
        Some(Shared::Redis { url, prefix })
    }

    /// One more backend instance over the same counters.
    async fn instance(&self) -> Arc<dyn LimitBackend> {
        match self {
            Shared::Local(local) => local.clone(),
            Shared::Redis { url, prefix } => Arc::new(
                RedisLimits::connect(url, TIMEOUT)
                    .await
                    .unwrap()
                    .with_prefix(prefix.clone()),
            ),
        }
    }

    /// Deletes the case's Redis keys (they carry TTLs anyway).
    async fn cleanup(&self) {
        let Shared::Redis { url, prefix } = self else {
            return;
        };
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Runs each `async fn(&Shared)` against both backends: tests `name::local` and `name::redis`.
macro_rules! suite {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                super::$case(&super::Shared::local()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                if let Some(shared) = super::Shared::redis() {
                    super::$case(&shared).await;
                    shared.cleanup().await;
                }
            }
        }
    )+};
}

fn c(key: &str, kind: CounterKind) -> Counter {
    Counter {
        key: key.into(),
        kind,
    }
}

fn requests(key: &str, limit: u64) -> Counter {
    c(
        key,
        CounterKind::Requests {
            limit,
            window_ms: HOUR,
        },
    )
}

fn tokens(key: &str, limit: u64) -> Counter {
    c(
        key,
        CounterKind::Tokens {
            limit,
            window_ms: HOUR,
        },
    )
}

fn concurrent(key: &str, limit: u64, lease_ms: u64) -> Counter {
    c(key, CounterKind::Concurrent { limit, lease_ms })
}

fn budget(key: &str, limit: i64, seed: i64) -> Counter {
    c(
        key,
        CounterKind::Budget {
            limit,
            enforce: true,
            seed,
            expires_at_ms: in_an_hour(),
        },
    )
}

/// An hour from now, as a budget's expiry.
fn in_an_hour() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(now.as_millis()).unwrap() + HOUR
}

fn demand(request_id: &str, tokens: u64, cost: i64) -> Demand<'_> {
    Demand {
        request_id,
        tokens,
        cost,
    }
}

fn admitted(verdict: Verdict) -> Vec<CounterState> {
    match verdict {
        Verdict::Admitted(states) => states,
        other => panic!("expected admission, got {other:?}"),
    }
}

/// The refusal's index, retry and state.
fn refused(verdict: Verdict) -> (usize, u64, CounterState) {
    match verdict {
        Verdict::Refused {
            index,
            retry_after_ms,
            state,
        } => (index, retry_after_ms, state),
        other => panic!("expected refusal, got {other:?}"),
    }
}

fn settle(counter: &Counter, kind: SettleKind) -> Settle {
    Settle {
        counter: counter.clone(),
        kind,
    }
}

async fn used(b: &dyn LimitBackend, counters: &[Counter]) -> Vec<i64> {
    b.peek(counters)
        .await
        .unwrap()
        .iter()
        .map(|s| s.used)
        .collect()
}

// A module loaded through `#[path]` finds its own modules next to itself, so each names its file.
#[path = "limits/cases.rs"]
mod cases;
#[path = "limits/connection.rs"]
mod connection;
