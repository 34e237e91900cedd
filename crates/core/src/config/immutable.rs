//! Prompt versions are immutable: once version `n` of a prompt exists, its content (system,
//! user, params, note) never changes, so a call log's `prompt@n` always means the same text.
//! One comparison, used by the store (a stored prompt may neither change nor drop a version),
//! by config reloads (the running config's versions may not change) and by `apply` (which
//! refuses before writing anything). Labels and splits are not content: they move freely.

use super::prompts::{PromptVersion, RawPrompt};
use std::collections::BTreeMap;

/// A change that would break a prompt version's immutability.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionConflict {
    /// The content of an existing version differs.
    #[error(
        "prompt `{prompt}` version {version} changed: versions are immutable; add version {next}"
    )]
    Changed {
        prompt: String,
        version: u32,
        /// The number the new content should take instead.
        next: u32,
    },
    /// An existing version is left out (versions live as long as their prompt).
    #[error(
        "prompt `{prompt}` version {version} is missing: versions are never deleted while the \
         prompt exists (keep it and move labels away from it, or delete the whole prompt)"
    )]
    Missing { prompt: String, version: u32 },
}

/// Whether dropping an existing version is a conflict too (it is for stored prompts; a reload
/// of the server's file only refuses changed content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Refuse,
    Allow,
}

/// Checks `new` against `old`, the versions `prompt` has now. The first conflict, by version.
pub fn check_versions(
    prompt: &str,
    old: &BTreeMap<u32, PromptVersion>,
    new: &BTreeMap<u32, PromptVersion>,
    removal: Removal,
) -> Result<(), VersionConflict> {
    let newest = old.keys().chain(new.keys()).max().copied().unwrap_or(0);
    for (number, before) in old {
        match new.get(number) {
            Some(after) if same_content(before, after) => {}
            Some(_) => {
                return Err(VersionConflict::Changed {
                    prompt: prompt.to_owned(),
                    version: *number,
                    next: newest.saturating_add(1),
                })
            }
            None if removal == Removal::Refuse => {
                return Err(VersionConflict::Missing {
                    prompt: prompt.to_owned(),
                    version: *number,
                })
            }
            None => {}
        }
    }
    Ok(())
}

fn same_content(a: &PromptVersion, b: &PromptVersion) -> bool {
    a.system == b.system && a.user == b.user && a.params == b.params && a.note == b.note
}

/// The versions of a prompt's mapping as stored (a config file's `prompts:` entry, as JSON);
/// `None` when it is not such a mapping.
pub fn stored_versions(settings: &serde_json::Value) -> Option<BTreeMap<u32, PromptVersion>> {
    let raw: RawPrompt = serde_json::from_value(settings.clone()).ok()?;
    Some(
        raw.versions
            .into_iter()
            .map(|v| {
                let version = PromptVersion {
                    version: v.version,
                    system: v.system,
                    user: v.user,
                    params: v.params,
                    note: v.note,
                };
                (v.version, version)
            })
            .collect(),
    )
}

/// [`check_versions`] on two stored mappings, refusing removals. A mapping that does not parse
/// is not checked here: validation reports it.
pub fn check_stored(
    prompt: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
) -> Result<(), VersionConflict> {
    match (stored_versions(old), stored_versions(new)) {
        (Some(old), Some(new)) => check_versions(prompt, &old, &new, Removal::Refuse),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prompt(versions: serde_json::Value) -> serde_json::Value {
        json!({"versions": versions, "labels": {"production": 1}})
    }

    #[test]
    fn appending_and_moving_labels_is_fine() {
        let old = prompt(json!([{"version": 1, "user": "Hi {{ name }}"}]));
        let mut new = prompt(json!([
            {"version": 1, "user": "Hi {{ name }}"},
            {"version": 2, "user": "Hello {{ name }}"}
        ]));
        new["labels"]["production"] = json!(2);
        assert_eq!(check_stored("greet", &old, &new), Ok(()));
    }

    #[test]
    fn changed_content_names_the_next_version() {
        let old = prompt(json!([
            {"version": 1, "user": "a"},
            {"version": 2, "user": "b", "params": {"temperature": 0.2}}
        ]));
        let new = prompt(json!([
            {"version": 1, "user": "a"},
            {"version": 2, "user": "b", "params": {"temperature": 0.3}}
        ]));
        let err = check_stored("greet", &old, &new).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prompt `greet` version 2 changed: versions are immutable; add version 3"
        );
        let note = prompt(
            json!([{"version": 1, "user": "a", "note": "x"}, {"version": 2, "user": "b", "params": {"temperature": 0.2}}]),
        );
        assert!(matches!(
            check_stored("greet", &old, &note),
            Err(VersionConflict::Changed { version: 1, .. })
        ));
    }

    #[test]
    fn removal_is_refused_for_stored_prompts_only() {
        let old = stored_versions(&prompt(
            json!([{"version": 1, "user": "a"}, {"version": 2, "user": "b"}]),
        ))
        .unwrap();
        let new = stored_versions(&prompt(json!([{"version": 2, "user": "b"}]))).unwrap();
        assert_eq!(
            check_versions("p", &old, &new, Removal::Refuse),
            Err(VersionConflict::Missing {
                prompt: "p".into(),
                version: 1
            })
        );
        assert_eq!(check_versions("p", &old, &new, Removal::Allow), Ok(()));
    }
}
