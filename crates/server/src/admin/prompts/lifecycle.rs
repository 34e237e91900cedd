//! API lifecycle transitions on a stored API's mapping (a config file's `apis:` entry, as
//! JSON): which moves are allowed, and the edits that make one. Pure, so the rules are tested
//! here; the handler validates the resulting whole config and stores it.
//!
//! Allowed: draft → published, published → deprecated, deprecated → published (undo),
//! deprecated → retired, published → retired. Setting the status a version has already is a
//! no-op (PUT is idempotent) that may still set `sunset`/`successor`. Publishing a version
//! while another is published deprecates the other one (at most one version is served as the
//! current one). A version that becomes deprecated gets `deprecated_at` = today unless it has
//! one, so that `/apis/{name}` can send the `Deprecation` header.

use serde_json::{Map, Value};
use switchboard_core::config::prompts::{ApiStatus, RawApi, RawApiStatus};

/// What went wrong with a transition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TransitionError {
    #[error("API `{api}` has no version `{version}`")]
    UnknownVersion { api: String, version: String },
    #[error(
        "API `{api}` version `{version}` cannot go from `{}` to `{}` (allowed: draft → \
         published, published → deprecated or retired, deprecated → published or retired)",
        from.as_str(), to.as_str()
    )]
    NotAllowed {
        api: String,
        version: String,
        from: ApiStatus,
        to: ApiStatus,
    },
    #[error("the stored API `{0}` is not a valid `apis:` entry")]
    Unreadable(String),
}

/// One version's status change, as the answer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) version: String,
    pub(crate) from: ApiStatus,
    pub(crate) to: ApiStatus,
}

/// What a status request asks for besides the status.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    /// `YYYY-MM-DD`.
    pub(crate) sunset: Option<String>,
    pub(crate) successor: Option<String>,
    /// `YYYY-MM-DD` of today, for `deprecated_at`.
    pub(crate) today: String,
}

pub(crate) fn allowed(from: ApiStatus, to: ApiStatus) -> bool {
    use ApiStatus::*;
    from == to
        || matches!(
            (from, to),
            (Draft, Published)
                | (Published, Deprecated)
                | (Deprecated, Published)
                | (Deprecated, Retired)
                | (Published, Retired)
        )
}

fn status(raw: Option<RawApiStatus>) -> ApiStatus {
    match raw.unwrap_or(RawApiStatus::Draft) {
        RawApiStatus::Draft => ApiStatus::Draft,
        RawApiStatus::Published => ApiStatus::Published,
        RawApiStatus::Deprecated => ApiStatus::Deprecated,
        RawApiStatus::Retired => ApiStatus::Retired,
    }
}

/// Every version of the API with its status and whether it has `deprecated_at`, as the config
/// loader reads them (a version's own fields over the API's defaults; no `versions`: `v1`).
fn versions(raw: &RawApi) -> Vec<(String, ApiStatus, bool)> {
    match &raw.versions {
        None => vec![(
            "v1".to_owned(),
            status(raw.defaults.status),
            raw.defaults.deprecated_at.is_some(),
        )],
        Some(listed) => listed
            .iter()
            .map(|(name, v)| {
                let dated = v.deprecated_at.is_some() || raw.defaults.deprecated_at.is_some();
                (
                    name.clone(),
                    status(v.status.or(raw.defaults.status)),
                    dated,
                )
            })
            .collect(),
    }
}

/// The mapping that holds `version`'s own fields: the top level without `versions`. `None`
/// when the mapping is not shaped as the loader read it.
fn fields_of<'a>(
    top: &'a mut Map<String, Value>,
    listed: bool,
    version: &str,
) -> Option<&'a mut Map<String, Value>> {
    if !listed {
        return Some(top);
    }
    top.get_mut("versions")?
        .as_object_mut()?
        .entry(version.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// Moves `version` of the API `name` (its stored mapping `settings`) to `to`, editing the
/// mapping in place. Returns every version whose status changed.
pub(crate) fn transition(
    name: &str,
    settings: &mut Value,
    version: &str,
    to: ApiStatus,
    extras: &Extras,
) -> Result<Vec<Moved>, TransitionError> {
    let raw: RawApi = serde_json::from_value(settings.clone())
        .map_err(|_| TransitionError::Unreadable(name.to_owned()))?;
    let listed = raw.versions.is_some();
    let all = versions(&raw);
    let Some((_, from, dated)) = all.iter().find(|(v, _, _)| v == version) else {
        return Err(TransitionError::UnknownVersion {
            api: name.to_owned(),
            version: version.to_owned(),
        });
    };
    if !allowed(*from, to) {
        return Err(TransitionError::NotAllowed {
            api: name.to_owned(),
            version: version.to_owned(),
            from: *from,
            to,
        });
    }
    let unreadable = || TransitionError::Unreadable(name.to_owned());
    let top = settings.as_object_mut().ok_or_else(unreadable)?;
    let mut moved = Vec::new();
    if to == ApiStatus::Published {
        for (other, status, other_dated) in &all {
            if other != version && *status == ApiStatus::Published {
                let fields = fields_of(top, listed, other).ok_or_else(unreadable)?;
                set_status(fields, ApiStatus::Deprecated, *other_dated, &extras.today);
                moved.push(Moved {
                    version: other.clone(),
                    from: ApiStatus::Published,
                    to: ApiStatus::Deprecated,
                });
            }
        }
    }
    let fields = fields_of(top, listed, version).ok_or_else(unreadable)?;
    set_status(fields, to, *dated, &extras.today);
    if let Some(sunset) = &extras.sunset {
        fields.insert("sunset".into(), Value::String(sunset.clone()));
    }
    if let Some(successor) = &extras.successor {
        fields.insert("successor".into(), Value::String(successor.clone()));
    }
    if *from != to {
        moved.push(Moved {
            version: version.to_owned(),
            from: *from,
            to,
        });
    }
    Ok(moved)
}

fn set_status(fields: &mut Map<String, Value>, to: ApiStatus, dated: bool, today: &str) {
    fields.insert("status".into(), Value::String(to.as_str().to_owned()));
    if to == ApiStatus::Deprecated && !dated {
        fields.insert("deprecated_at".into(), Value::String(today.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extras() -> Extras {
        Extras {
            today: "2026-12-06".into(),
            ..Extras::default()
        }
    }

    #[test]
    fn the_allowed_moves() {
        use ApiStatus::*;
        for (from, to) in [
            (Draft, Published),
            (Published, Deprecated),
            (Deprecated, Published),
            (Deprecated, Retired),
            (Published, Retired),
            (Retired, Retired),
        ] {
            assert!(allowed(from, to), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (Draft, Deprecated),
            (Draft, Retired),
            (Published, Draft),
            (Retired, Published),
            (Retired, Deprecated),
            (Deprecated, Draft),
        ] {
            assert!(!allowed(from, to), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn a_single_version_api_sets_its_top_level_status() {
        let mut api = json!({"prompt": "p", "model": "m"});
        let moved = transition("a", &mut api, "v1", ApiStatus::Published, &extras()).unwrap();
        assert_eq!(api["status"], "published");
        assert_eq!(moved.len(), 1);
        let err = transition("a", &mut api, "v2", ApiStatus::Published, &extras()).unwrap_err();
        assert!(matches!(err, TransitionError::UnknownVersion { .. }));
        let extras = Extras {
            sunset: Some("2027-03-31".into()),
            ..extras()
        };
        transition("a", &mut api, "v1", ApiStatus::Deprecated, &extras).unwrap();
        assert_eq!(api["status"], "deprecated");
        assert_eq!(api["deprecated_at"], "2026-12-06");
        assert_eq!(api["sunset"], "2027-03-31");
        let err = transition("a", &mut api, "v1", ApiStatus::Draft, &extras).unwrap_err();
        assert!(matches!(err, TransitionError::NotAllowed { .. }), "{err}");
    }

    #[test]
    fn publishing_deprecates_the_published_one() {
        let mut api = json!({
            "prompt": "p", "model": "m", "status": "published",
            "versions": {"v1": {}, "v2": {"status": "draft", "label": "staging"}}
        });
        let moved = transition("a", &mut api, "v2", ApiStatus::Published, &extras()).unwrap();
        assert_eq!(api["versions"]["v1"]["status"], "deprecated");
        assert_eq!(api["versions"]["v1"]["deprecated_at"], "2026-12-06");
        assert_eq!(api["versions"]["v2"]["status"], "published");
        assert_eq!(api["versions"]["v2"]["label"], "staging");
        assert_eq!(
            moved,
            vec![
                Moved {
                    version: "v1".into(),
                    from: ApiStatus::Published,
                    to: ApiStatus::Deprecated
                },
                Moved {
                    version: "v2".into(),
                    from: ApiStatus::Draft,
                    to: ApiStatus::Published
                }
            ]
        );
    }
}
