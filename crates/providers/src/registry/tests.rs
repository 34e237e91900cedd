//! Unit tests of the registry: base URL checks and header errors.

use super::*;
use std::collections::BTreeMap;

fn openai(base_url: &str) -> ProviderSettings {
    ProviderSettings::Openai {
        base_url: Some(base_url.into()),
        api_key: Some("sk-test".into()),
        organization: None,
        headers: BTreeMap::new(),
    }
}

#[test]
fn builds_every_kind_with_defaults() {
    let settings = [
        ProviderSettings::Openai {
            base_url: None,
            api_key: None,
            organization: Some("org-1".into()),
            headers: BTreeMap::from([("x-extra".into(), "1".into())]),
        },
        ProviderSettings::AzureOpenai {
            base_url: "https://x.openai.azure.com/".into(),
            api_key: "k".into(),
            api_version: None,
            region: Some("eu".into()),
        },
        ProviderSettings::Anthropic {
            base_url: None,
            api_key: "k".into(),
            version: None,
        },
        ProviderSettings::Gemini {
            base_url: None,
            api_key: "k".into(),
        },
        ProviderSettings::Mock {
            latency_ms: 0,
            chunks: None,
            chunk_delay_ms: 0,
        },
    ];
    for s in &settings {
        build("p", s).unwrap();
    }
}

#[test]
fn rejects_bad_base_urls() {
    for url in [
        "api.openai.com/v1",
        "ftp://example.com",
        "http://",
        "https://example.com/v1?x=1",
        "not a url",
    ] {
        let err = build("main", &openai(url)).unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidBaseUrl { ref provider, .. } if provider == "main"),
            "{url}: {err}"
        );
    }
}

#[test]
fn credentials_in_url_are_rejected_without_echoing_them() {
    let err = build("main", &openai("https://user:hunter2@example.com/v1")).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn bad_header_and_empty_key_are_named() {
    let settings = ProviderSettings::Openai {
        base_url: None,
        api_key: None,
        organization: None,
        headers: BTreeMap::from([("bad header".into(), "v".into())]),
    };
    assert!(matches!(
        build("p", &settings).unwrap_err(),
        BuildError::InvalidHeader { .. }
    ));
    let settings = ProviderSettings::Anthropic {
        base_url: None,
        api_key: "sk-ant-\nsecret".into(),
        version: None,
    };
    let err = build("p", &settings).unwrap_err();
    assert_eq!(
        err,
        BuildError::InvalidHeader {
            provider: "p".into(),
            header: "x-api-key".into()
        }
    );
    assert!(!err.to_string().contains("secret"));
    let settings = ProviderSettings::Gemini {
        base_url: None,
        api_key: " ".into(),
    };
    assert!(matches!(
        build("p", &settings).unwrap_err(),
        BuildError::Empty {
            field: "api_key",
            ..
        }
    ));
}
