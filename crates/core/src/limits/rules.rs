//! Rate-limit and budget rules as the config file, the admin API and `apply` write them
//! (SPEC section 4): a scope (whose counter), an optional match (which requests), and the
//! limits. A rule without a match applies to every caller of its scope, each with its own
//! counter; `match` narrows it (`{ org: acme, team: research }`).

use serde::{Deserialize, Serialize};
use switchboard_types::MicroUsd;

/// Whose counter a rule keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One counter per virtual key.
    Key,
    /// One counter per app (all its keys together).
    App,
    Team,
    Org,
    /// One counter per model alias, whoever calls it.
    Alias,
    /// One counter per upstream target (`provider/model`), to respect the upstream's own limits.
    Target,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::App => "app",
            Scope::Team => "team",
            Scope::Org => "org",
            Scope::Alias => "alias",
            Scope::Target => "target",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "key" => Some(Scope::Key),
            "app" => Some(Scope::App),
            "team" => Some(Scope::Team),
            "org" => Some(Scope::Org),
            "alias" => Some(Scope::Alias),
            "target" => Some(Scope::Target),
            _ => None,
        }
    }
}

/// Which requests a rule applies to; every field given must equal the request's.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// A virtual key's id (`key_...`), as `switchboard keys list` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A model alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `provider/model` as in the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Match {
    pub fn is_empty(&self) -> bool {
        *self == Match::default()
    }
}

/// One `rate_limits:` entry. At least one limit is set (validation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Names the rule in the admin API, `apply` and error messages. Optional in the file; a
    /// rule without one is named after its scope and match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub scope: Scope,
    #[serde(default, rename = "match", skip_serializing_if = "Match::is_empty")]
    pub matches: Match,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u64>,
}

/// The period a budget counts spend over, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the first of the month, 00:00 UTC.
    Month,
    /// Never resets.
    Total,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }
}

/// What happens when a budget is spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    /// Reject with 429 `budget_exceeded` until the period resets.
    #[default]
    Block,
    /// Only alert (webhook and log) at the `alert_at` thresholds.
    Alert,
    /// Serve `downgrade_to` (a cheaper alias) instead.
    Downgrade,
}

/// One `budgets:` entry, as written (dollars as the config writes them are parsed exactly).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `key`, `app`, `team` or `org`.
    pub scope: Scope,
    #[serde(default, rename = "match", skip_serializing_if = "Match::is_empty")]
    pub matches: Match,
    pub period: Period,
    /// The budget in micro-dollars (the file and the API write dollars: `usd: 500`).
    #[serde(rename = "usd", with = "dollars")]
    pub limit: MicroUsd,
    #[serde(default)]
    pub action: BudgetAction,
    /// Alert thresholds in percent of the budget (the file writes fractions: `[0.5, 0.8, 1.0]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "fractions")]
    pub alert_at: Vec<u32>,
    /// The alias served instead once spent, for `action: downgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_to: Option<String>,
}

/// A YAML/JSON number as decimal text: floats through Rust's shortest round-trip `Display`
/// (`0.000001`, never `1e-6`), which `MicroUsd::parse_dollars` then reads exactly.
fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => format!("{f}"),
        _ => n.to_string(),
    }
}

/// `usd:` as a decimal number or string, exactly, to micro-dollars and back.
mod dollars {
    use serde::{Deserialize, Deserializer, Serializer};
    use switchboard_types::MicroUsd;

    pub fn serialize<S: Serializer>(value: &MicroUsd, s: S) -> Result<S::Ok, S::Error> {
        let whole = value.0 / 1_000_000;
        let frac = (value.0 % 1_000_000).abs();
        let text = if frac == 0 {
            whole.to_string()
        } else {
            let digits = format!("{frac:06}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        };
        // Written as a YAML/JSON number so that exports read like the file.
        let number: serde_json::Number = text.parse().map_err(serde::ser::Error::custom)?;
        s.serialize_some(&number)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MicroUsd, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let text = match &value {
            serde_json::Value::Number(n) => super::number_text(n),
            serde_json::Value::String(s) => s.clone(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected an amount of dollars such as 500 or 12.50",
                ))
            }
        };
        match MicroUsd::parse_dollars(&text) {
            Some(amount) if amount.0 > 0 => Ok(amount),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a positive amount of dollars with at most six decimals"
            ))),
        }
    }
}

/// `alert_at: [0.5, 0.8, 1.0]` to whole percents and back.
mod fractions {
    use serde::{Deserialize, Deserializer, Serializer};
    use switchboard_types::MicroUsd;

    pub fn serialize<S: Serializer>(value: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let numbers = value
            .iter()
            .map(|pct| {
                // 50 -> "0.5", 100 -> "1.0", 5 -> "0.05": written back exactly as read.
                let text = format!("{}.{:02}", pct / 100, pct % 100);
                let trimmed = text.trim_end_matches('0');
                let text = if trimmed.ends_with('.') {
                    format!("{trimmed}0")
                } else {
                    trimmed.to_owned()
                };
                text.parse::<serde_json::Number>()
                    .map_err(serde::ser::Error::custom)
            })
            .collect::<Result<Vec<_>, _>>()?;
        s.collect_seq(numbers)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        let values = Vec::<serde_json::Number>::deserialize(d)?;
        values
            .iter()
            .map(|n| {
                // Parsed as a decimal like money (1.0 = 100 %), never through f64 rounding.
                let text = super::number_text(n);
                match MicroUsd::parse_dollars(&text) {
                    Some(m) if m.0 > 0 && m.0 <= 1_000_000 && m.0 % 10_000 == 0 => {
                        u32::try_from(m.0 / 10_000).map_err(serde::de::Error::custom)
                    }
                    _ => Err(serde::de::Error::custom(format!(
                        "alert_at `{text}` must be a fraction of the budget above 0 and at most 1.0, in whole percents (0.5, 0.8, 1.0)"
                    ))),
                }
            })
            .collect()
    }
}
