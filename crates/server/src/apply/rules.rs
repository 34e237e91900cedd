//! `rate_limits:` and `budgets:` in config as code. In a document every entry needs a `name`
//! (it is how apply tells an update from a delete and a create); entries of the server's own
//! file are not stored, so a document may not use their names. The two lists are made equal
//! like the other sections: a document without the section leaves the stored rules alone,
//! `rate_limits: []` deletes them all. Rules are compared as typed values, so `usd: 500` and
//! `usd: "500.00"` are the same budget.

use super::change::{Change, Kind};
use super::document::{Desired, FileEntries};
use super::plan::{Plan, Step};
use super::state::Current;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchboard_core::config::{Problem, StoredLayer};
use switchboard_core::limits::{BudgetRule, RateLimitRule};
use switchboard_store::{StoredRule, APPLY};

/// The two list sections, in the order they are planned.
pub(crate) const SECTIONS: [&str; 2] = ["rate_limits", "budgets"];

/// The server file's entries of a list section: how many, and the names they give.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileRules {
    pub(crate) count: usize,
    pub(crate) names: BTreeSet<String>,
}

impl FileRules {
    pub(crate) fn of(top: &serde_json::Map<String, Value>, section: &str) -> FileRules {
        let items = top.get(section).and_then(Value::as_array);
        FileRules {
            count: items.map_or(0, Vec::len),
            names: items
                .into_iter()
                .flatten()
                .filter_map(|item| item.get("name")?.as_str().map(str::to_owned))
                .collect(),
        }
    }
}

/// The document's problems with rule names: a missing `name`, or one the server's file uses.
pub(crate) fn name_problems(
    doc_name: &str,
    doc_text: &str,
    top: &serde_json::Map<String, Value>,
    file: &FileEntries,
    server_name: &str,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for section in SECTIONS {
        let Some(items) = top.get(section).and_then(Value::as_array) else {
            continue;
        };
        let taken = &file.rules(section).names;
        for (index, item) in items.iter().enumerate() {
            let message = match item.get("name").and_then(Value::as_str) {
                None if item.is_object() => format!(
                    "every entry of `{section}` in an apply document needs a `name` (apply \
                     tells entries apart by it)"
                ),
                Some(name) if taken.contains(name) => format!(
                    "`{name}` is defined in the server's config file ({server_name}), which wins \
                     over stored config: remove it from one of the two files"
                ),
                _ => continue,
            };
            let (line, column) = find_item(doc_text, section, index).unzip();
            problems.push(Problem {
                file: doc_name.to_owned(),
                line,
                column,
                key: format!("{section}[{index}]"),
                message,
            });
        }
    }
    problems
}

/// Where the `index`-th item of the top-level list `section` starts in a block-style YAML
/// text (1-based line and column), for problems. `None` when the layout is not the usual one.
fn find_item(text: &str, section: &str, index: usize) -> Option<(usize, usize)> {
    let mut in_section = false;
    let mut item_indent: Option<usize> = None;
    let mut seen = 0;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            let key = trimmed.split(':').next().map(str::trim);
            in_section = key == Some(section);
            item_indent = None;
            continue;
        }
        if !in_section || !trimmed.starts_with('-') {
            continue;
        }
        if *item_indent.get_or_insert(indent) != indent {
            continue;
        }
        if seen == index {
            return Some((number + 1, indent + 1));
        }
        seen += 1;
    }
    None
}

/// The rules a validated document asks for, by name (`None` for a section it leaves out).
pub(crate) fn desired(
    top: &serde_json::Map<String, Value>,
    out: &mut Desired,
) -> Result<(), String> {
    out.rate_limits = named(top, "rate_limits", |r: &RateLimitRule| r.name.clone())?;
    out.budgets = named(top, "budgets", |r: &BudgetRule| r.name.clone())?;
    Ok(())
}

fn named<R: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    section: &str,
    name: impl Fn(&R) -> Option<String>,
) -> Result<Option<BTreeMap<String, R>>, String> {
    let Some(value) = top.get(section) else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(Some(BTreeMap::new()));
    }
    let rules: Vec<R> =
        serde_json::from_value(value.clone()).map_err(|e| format!("{section}: {e}"))?;
    let mut out = BTreeMap::new();
    for rule in rules {
        let key = name(&rule).ok_or_else(|| format!("{section}: an entry has no `name`"))?;
        out.insert(key, rule);
    }
    Ok(Some(out))
}

/// The rules storage will hold after the apply, as the config loader's stored layer takes them.
pub(crate) fn final_rules(desired: &Desired, current: &Current, layer: &mut StoredLayer) {
    layer.rate_limits = values(
        desired.rate_limits.as_ref(),
        current.rate_limits.values().map(|s| &s.rule),
    );
    layer.budgets = values(
        desired.budgets.as_ref(),
        current.budgets.values().map(|s| &s.rule),
    );
}

fn values<'a, R: Serialize + 'a>(
    desired: Option<&'a BTreeMap<String, R>>,
    current: impl Iterator<Item = &'a R>,
) -> Vec<Value> {
    let rules: Vec<&R> = match desired {
        Some(map) => map.values().collect(),
        None => current.collect(),
    };
    rules
        .into_iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

/// Creations and updates go to `plan`, deletions to `deletions` (which run before any other
/// deletion: rules name models).
pub(crate) fn diff(desired: &Desired, current: &Current, plan: &mut Plan, deletions: &mut Plan) {
    if let Some(want) = &desired.rate_limits {
        section(
            Kind::RateLimit,
            want,
            &current.rate_limits,
            plan,
            deletions,
            |rule| Step::PutRateLimit { rule },
            |name| Step::DeleteRateLimit { name },
        );
    }
    if let Some(want) = &desired.budgets {
        section(
            Kind::Budget,
            want,
            &current.budgets,
            plan,
            deletions,
            |rule| Step::PutBudget { rule },
            |name| Step::DeleteBudget { name },
        );
    }
}

fn section<R: Serialize + Clone + PartialEq>(
    kind: Kind,
    want: &BTreeMap<String, R>,
    have: &BTreeMap<String, StoredRule<R>>,
    plan: &mut Plan,
    deletions: &mut Plan,
    put: impl Fn(R) -> Step,
    delete: impl Fn(String) -> Step,
) {
    for (name, rule) in want {
        let change = match have.get(name) {
            None => Change::create(kind, name.clone()),
            Some(stored) => {
                let mut fields = if stored.rule == *rule {
                    Vec::new()
                } else {
                    changed_fields(rule, &stored.rule)
                };
                if stored.managed_by.as_deref() != Some(APPLY) {
                    fields.push("managed".to_owned());
                }
                if fields.is_empty() {
                    continue;
                }
                Change::update(kind, name.clone(), fields)
            }
        };
        plan.push(change, put(rule.clone()));
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        deletions.push(Change::delete(kind, name.clone()), delete(name.clone()));
    }
}

/// The top-level fields whose values differ (`settings` if they cannot be compared).
fn changed_fields<R: Serialize>(want: &R, have: &R) -> Vec<String> {
    match (serde_json::to_value(want), serde_json::to_value(have)) {
        (Ok(Value::Object(w)), Ok(Value::Object(h))) => {
            let keys: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
            let fields: Vec<String> = keys
                .into_iter()
                .filter(|k| w.get(*k) != h.get(*k))
                .cloned()
                .collect();
            if fields.is_empty() {
                vec!["settings".to_owned()]
            } else {
                fields
            }
        }
        _ => vec!["settings".to_owned()],
    }
}

/// The stored rules as the export's `rate_limits:` and `budgets:` lists, in name order.
pub(crate) fn export_lists(
    current: &Current,
) -> Result<(serde_yaml::Value, serde_yaml::Value), serde_yaml::Error> {
    let rate_limits: Vec<&RateLimitRule> = current.rate_limits.values().map(|s| &s.rule).collect();
    let budgets: Vec<&BudgetRule> = current.budgets.values().map(|s| &s.rule).collect();
    Ok((
        serde_yaml::to_value(rate_limits)?,
        serde_yaml::to_value(budgets)?,
    ))
}

/// Whether a problem of the final check is about a stored rule (an entry after the file's
/// own in a list section) rather than the server's file.
pub(crate) fn is_stored_entry(key: &str, file: &FileEntries) -> bool {
    SECTIONS.iter().any(|section| {
        key.strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.split(']').next())
            .and_then(|index| index.parse::<usize>().ok())
            .is_some_and(|index| index >= file.rules(section).count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_list_items() {
        let text = "models: {}\nrate_limits:\n  # c\n  - { name: a }\n  - name: b\n    scope: key\nbudgets:\n- name: c\n";
        assert_eq!(find_item(text, "rate_limits", 0), Some((4, 3)));
        assert_eq!(find_item(text, "rate_limits", 1), Some((5, 3)));
        assert_eq!(find_item(text, "rate_limits", 2), None);
        assert_eq!(find_item(text, "budgets", 0), Some((8, 1)));
    }
}
