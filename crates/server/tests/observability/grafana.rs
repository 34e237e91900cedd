//! The Grafana dashboard shipped in docs/grafana: it parses, and every metric its queries use
//! is one the gateway exports (names from `core::metrics`), so a renamed metric cannot leave a
//! silently empty panel behind.

use std::collections::BTreeSet;
use switchboard_core::metrics::{Counter, Gauge, Histogram};

const DASHBOARD: &str = include_str!("../../../../docs/grafana/switchboard-dashboard.json");

/// Every `switchboard_*` name in a query, without the histogram series suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("switchboard_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboard_queries_use_exported_metrics_only() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let exported: BTreeSet<&str> = Counter::ALL
        .iter()
        .map(|c| c.name())
        .chain(Histogram::ALL.iter().map(|h| h.name()))
        .chain(Gauge::ALL.iter().map(|g| g.name()))
        .collect();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                assert!(
                    exported.contains(name.as_str()),
                    "panel {:?} queries {name}, which the gateway does not export",
                    panel["title"]
                );
                used.insert(name);
            }
        }
    }
    // The dashboard covers traffic, latency, tokens, cost, limits, circuits and queues.
    for needed in [
        Counter::Requests.name(),
        Histogram::RequestDuration.name(),
        Histogram::TimeToFirstToken.name(),
        Counter::Tokens.name(),
        Counter::CostMicroUsd.name(),
        Gauge::CircuitState.name(),
        Gauge::UsageQueueDepth.name(),
        Gauge::LogQueueDepth.name(),
        Counter::LogRowsDropped.name(),
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}
