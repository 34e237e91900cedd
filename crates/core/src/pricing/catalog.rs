//! The built-in price catalog: `crates/core/data/prices.yaml`, embedded in the binary and
//! parsed once. [`Catalog::lookup`] finds a model by its exact name, then by a normalised name
//! (`models/`, `openai/`-style prefixes dropped, lower case), then by the longest catalog name
//! the model extends with nothing but a date or version suffix (`-2024-08-06`, `-20250929`,
//! `-latest`, `-preview-05-20`, `-001`). So `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`, never
//! `gpt-4o`, and `claude-opus-4-5-20251101` is not `claude-opus-4` (a bare `-5` is a different
//! model, not a date). [`Catalog::context_window`] resolves names the same way.

use super::Price;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use switchboard_types::MicroUsd;
use tracing::error;

/// The catalog file, compiled in.
const BUILTIN_YAML: &str = include_str!("../../data/prices.yaml");

/// The only currency and unit the catalog file may declare.
const CURRENCY: &str = "USD";
const UNIT: &str = "per million tokens";

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the price catalog is not valid: {0}")]
    Syntax(#[from] serde_yaml::Error),
    #[error("the price catalog's `{field}` must be `{expected}`, not `{found}`")]
    Header {
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("the price catalog has no `version`")]
    NoVersion,
    #[error("the price catalog's model `{model}`: {problem}")]
    Entry {
        model: String,
        problem: &'static str,
    },
}

/// A list of model prices and context windows, by model name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    version: String,
    /// Names (and aliases) in lower case.
    prices: BTreeMap<String, Price>,
    /// Context windows in tokens, by the same names. Kept apart from the prices: an entry may
    /// list a window without a price, and a lookup must then find no price for it.
    windows: BTreeMap<String, u32>,
}

/// The catalog shipped with this build. Parsed on first use; a unit test proves it parses, so
/// the empty fallback (logged) is for a broken build only and never a panic.
pub fn builtin() -> &'static Catalog {
    static BUILTIN: OnceLock<Catalog> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        Catalog::parse(BUILTIN_YAML).unwrap_or_else(|err| {
            error!(%err, "The built-in price catalog does not parse; no model has a built-in price.");
            Catalog::default()
        })
    })
}

impl Catalog {
    /// Parses and checks a catalog file (the format of `crates/core/data/prices.yaml`).
    pub fn parse(yaml: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = serde_yaml::from_str(yaml)?;
        if raw.version.trim().is_empty() {
            return Err(CatalogError::NoVersion);
        }
        if raw.currency != CURRENCY {
            return Err(CatalogError::Header {
                field: "currency",
                expected: CURRENCY,
                found: raw.currency,
            });
        }
        if raw.unit != UNIT {
            return Err(CatalogError::Header {
                field: "unit",
                expected: UNIT,
                found: raw.unit,
            });
        }
        let mut prices = BTreeMap::new();
        let mut windows = BTreeMap::new();
        for (model, entry) in raw.models {
            let problem = |problem| CatalogError::Entry {
                model: model.clone(),
                problem,
            };
            let price = entry.price().map_err(problem)?;
            if entry.context_window == Some(0) {
                return Err(problem("has a context window of 0"));
            }
            if price.is_none() && entry.context_window.is_none() {
                return Err(problem(
                    "has neither an `input` price nor a `context_window`",
                ));
            }
            for name in std::iter::once(&model).chain(&entry.aliases) {
                let key = name.to_lowercase();
                let twice = windows.contains_key(&key) || prices.contains_key(&key);
                if twice {
                    return Err(CatalogError::Entry {
                        model: name.clone(),
                        problem: "is listed twice",
                    });
                }
                if let Some(price) = price {
                    prices.insert(key.clone(), price);
                }
                if let Some(window) = entry.context_window {
                    windows.insert(key, window);
                }
            }
        }
        Ok(Catalog {
            version: raw.version,
            prices,
            windows,
        })
    }

    /// The catalog's `version`, a date such as `2026-11-01`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every listed name (aliases included) with its price, in name order.
    pub fn models(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.prices
            .iter()
            .map(|(name, price)| (name.as_str(), price))
    }

    /// The price of `model` (an upstream model name), if the catalog knows it: by exact name,
    /// by normalised name, or by the longest listed name that `model` extends with only a date
    /// or version suffix.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        resolve(&self.prices, model)
    }

    /// The context window of `model` (an upstream model name) in tokens, if the catalog knows
    /// it, found the way [`Catalog::lookup`] finds a price.
    pub fn context_window(&self, model: &str) -> Option<u32> {
        resolve(&self.windows, model)
    }
}

/// `model`'s value in `map`: by exact name, by normalised name, or by the longest listed name
/// that `model` extends with only a date or version suffix.
fn resolve<T: Copy>(map: &BTreeMap<String, T>, model: &str) -> Option<T> {
    if let Some(value) = map.get(model) {
        return Some(*value);
    }
    let name = normalise(model);
    if let Some(value) = map.get(&name) {
        return Some(*value);
    }
    map.iter()
        .filter(|(known, _)| {
            name.strip_prefix(known.as_str())
                .is_some_and(is_version_suffix)
        })
        .max_by_key(|(known, _)| known.len())
        .map(|(_, value)| *value)
}

/// Lower case, without any `provider/` or `models/` prefix (everything up to the last `/`),
/// with Vertex's `model@version` written `model-version`.
fn normalise(model: &str) -> String {
    let base = model.rsplit('/').next().unwrap_or(model);
    base.trim().to_lowercase().replace('@', "-")
}

/// Whether `rest` (what follows a known name) is only a snapshot date or version tag:
/// `-20250929`, `-2024-08-06`, `-0125`, `-001`, `-latest`, or `-preview`/`-exp` followed by
/// numbers only (`-preview-05-20`, `-exp-1206`).
fn is_version_suffix(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = rest.split('-').collect();
    let mut i = 0;
    while let Some(&part) = parts.get(i) {
        if part == "latest" || digits(part, 8) || digits(part, 3) {
            i += 1;
        } else if part == "preview" || part == "exp" {
            return parts
                .iter()
                .skip(i + 1)
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        } else if digits(part, 4) {
            // `2024-08-06` is one date; `0125` (month and day) is one too.
            let month_day = parts.get(i + 1).is_some_and(|p| digits(p, 2))
                && parts.get(i + 2).is_some_and(|p| digits(p, 2));
            i += if month_day { 3 } else { 1 };
        } else {
            return false;
        }
    }
    true
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: String,
    currency: String,
    unit: String,
    models: BTreeMap<String, RawEntry>,
}

/// One model, dollars per million tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// Absent for an entry that lists only a context window.
    input: Option<CatalogDollars>,
    /// Absent for embedding models, which generate nothing.
    #[serde(default)]
    output: CatalogDollars,
    cached_input: Option<CatalogDollars>,
    cache_write: Option<CatalogDollars>,
    reasoning: Option<CatalogDollars>,
    #[serde(default)]
    aliases: Vec<String>,
    context_window: Option<u32>,
}

impl RawEntry {
    /// The entry's price; `None` when it lists no `input` price (a window-only entry).
    fn price(&self) -> Result<Option<Price>, &'static str> {
        let Some(input) = self.input else {
            let priced = self.output.0 != MicroUsd::ZERO
                || self.cached_input.is_some()
                || self.cache_write.is_some()
                || self.reasoning.is_some();
            return if priced {
                Err("has prices but no `input` price")
            } else {
                Ok(None)
            };
        };
        let price = Price {
            input_per_mtok: input.0,
            output_per_mtok: self.output.0,
            cached_input_per_mtok: self.cached_input.map(|d| d.0),
            cache_write_per_mtok: self.cache_write.map(|d| d.0),
            reasoning_per_mtok: self.reasoning.map(|d| d.0),
        };
        let all = [
            Some(price.input_per_mtok),
            Some(price.output_per_mtok),
            price.cached_input_per_mtok,
            price.cache_write_per_mtok,
            price.reasoning_per_mtok,
        ];
        if all.iter().flatten().any(|m| m.0 < 0) {
            return Err("has a negative price");
        }
        if price
            .cached_input_per_mtok
            .is_some_and(|cached| cached > price.input_per_mtok)
        {
            return Err("has a cache-read price above its input price");
        }
        Ok(Some(price))
    }
}

/// A price in the catalog file: a quoted decimal string such as `"2.50"` (or a whole number),
/// parsed by `MicroUsd::parse_dollars`. YAML floats are refused so that no price ever passes
/// through binary floating point.
#[derive(Clone, Copy, Debug, Default)]
struct CatalogDollars(MicroUsd);

impl<'de> Deserialize<'de> for CatalogDollars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CatalogDollarsVisitor)
    }
}

struct CatalogDollarsVisitor;

impl Visitor<'_> for CatalogDollarsVisitor {
    type Value = CatalogDollars;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dollars per million tokens as a quoted decimal, like \"2.50\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<CatalogDollars, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<CatalogDollars, E> {
        MicroUsd::parse_dollars(v)
            .map(CatalogDollars)
            .ok_or_else(|| E::custom(format!("`{v}` is not dollars with at most 6 decimals")))
    }
}
