use super::*;
use crate::config::load_str;

const YAML: &str = r#"
providers: { demo: { type: mock } }
models: { demo: { targets: [ { provider: demo, model: echo } ] } }
prompts:
  sentiment:
    variables:
      type: object
      properties:
        text: { type: string, minLength: 1 }
        lang: { type: string, enum: [en, fr] }
      required: [text]
    versions:
      - { version: 1, system: "Classify.", user: "Text: {{ text }}", params: { temperature: 0 } }
      - { version: 2, system: "Classify ({{ lang | default('en') }}).", user: "{{ text }}" }
      - { version: 3, system: "Classify{% if lang %} ({{ lang }}){% endif %}.", user: "{{ txt }}" }
    labels:
      production: 1
      staging: 2
      ab: { split: [ { version: 1, weight: 90 }, { version: 2, weight: 10 } ] }
"#;

fn library() -> PromptLibrary {
    let config = load_str("t.yaml", YAML, &|_| None).expect("valid");
    PromptLibrary::build(&config.prompts)
}

#[test]
fn renders_a_version_with_its_variables() {
    let lib = library();
    let out = lib
        .render("sentiment", 1, &serde_json::json!({"text": "great"}))
        .unwrap();
    assert_eq!(out.system.as_deref(), Some("Classify."));
    assert_eq!(out.user.as_deref(), Some("Text: great"));
    assert_eq!(out.reference(), "sentiment@1");
    assert_eq!(out.params["temperature"], 0);
}

#[test]
fn a_missing_or_mistyped_variable_is_named() {
    let lib = library();
    let err = lib
        .render("sentiment", 1, &serde_json::json!({"lang": "en"}))
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::InvalidVariables { variable, .. } if variable == "text"),
        "{err:?}"
    );
    let err = lib
        .render("sentiment", 1, &serde_json::json!({"text": 3}))
        .unwrap_err();
    assert!(matches!(&err, GatewayError::InvalidVariables { variable, .. } if variable == "text"));
    let err = lib
        .render(
            "sentiment",
            2,
            &serde_json::json!({"text": "x", "lang": "de"}),
        )
        .unwrap_err();
    assert!(matches!(&err, GatewayError::InvalidVariables { variable, .. } if variable == "lang"));
    assert_eq!(err.status(), 400);
}

#[test]
fn labels_resolve_and_splits_are_sticky_and_proportional() {
    let lib = library();
    assert_eq!(
        lib.choose("sentiment", "production", "k").unwrap().version,
        1
    );
    assert_eq!(lib.choose("sentiment", "staging", "k").unwrap().version, 2);
    assert!(lib.choose("sentiment", "nope", "k").is_err());
    let mut twos = 0;
    for i in 0..10_000 {
        let key = format!("key-{i}");
        let first = lib.choose("sentiment", "ab", &key).unwrap().version;
        assert_eq!(lib.choose("sentiment", "ab", &key).unwrap().version, first);
        if first == 2 {
            twos += 1;
        }
    }
    // 10% of 10 000 callers, within five standard deviations (sd = 30).
    assert!((850..=1150).contains(&twos), "{twos} callers on version 2");
}

#[test]
fn a_rendered_prompt_becomes_a_chat_request() {
    let lib = library();
    let out = lib
        .render("sentiment", 1, &serde_json::json!({"text": "great"}))
        .unwrap();
    let mut over = Map::new();
    over.insert("max_tokens".into(), 5.into());
    let req = chat_request("demo", &out, &[&over], Vec::new(), false).unwrap();
    assert_eq!(req.model, "demo");
    assert_eq!(req.system.len(), 1);
    assert_eq!(req.messages.len(), 1);
    assert_eq!(req.temperature, Some(0.0));
    assert_eq!(req.max_tokens, Some(5));
    assert!(req.raw.is_none());
}

#[test]
fn config_problems_name_their_place() {
    let bad = r#"
models: { demo: { targets: [ { provider: demo, model: echo } ] } }
providers: { demo: { type: mock } }
prompts:
  p:
    versions:
      - { version: 1, user: "{{ text " }
    labels: { production: 2 }
apis:
  a: { prompt: p, model: nope, status: published }
  b: { prompt: missing, model: demo, label: production }
"#;
    let err = load_str("t.yaml", bad, &|_| None).unwrap_err().to_string();
    assert!(err.contains("prompts.p.versions[0].user"), "{err}");
    assert!(err.contains("has no version 2"), "{err}");
    assert!(err.contains("apis.a.model"), "{err}");
    assert!(err.contains("unknown prompt `missing`"), "{err}");
}

#[test]
fn unknown_api_keys_are_refused() {
    let text = format!("{YAML}\napis:\n  a: {{ prompt: sentiment, model: demo, bogus: 1 }}\n");
    let err = load_str("t.yaml", &text, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
    let text = format!("{YAML}\napis:\n  a: {{ prompt: sentiment, model: demo, versions: {{ v1: {{ bogus: 1 }} }} }}\n");
    let err = load_str("t.yaml", &text, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn api_versions_inherit_the_api_keys_and_one_is_current() {
    let text = format!(
        "{YAML}\napis:\n  a:\n    prompt: sentiment\n    model: demo\n    versions:\n      v1: {{ status: deprecated, sunset: 2027-03-31, successor: a@v2 }}\n      v2: {{ status: published, label: staging }}\n      v10: {{ status: draft }}\n"
    );
    let config = load_str("t.yaml", &text, &|_| None).expect("valid");
    let api = &config.apis["a"];
    assert_eq!(api.current().unwrap().version, "v2");
    let v1 = &api.versions["v1"];
    assert_eq!(v1.sunset, Some(1_806_451_200));
    match &api.versions["v2"].body {
        crate::config::prompts::ApiBody::Prompt(call) => {
            assert_eq!(call.label, "staging");
            assert_eq!(call.model, "demo");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn optional_variables_may_be_tested_but_printing_an_undefined_one_fails() {
    let lib = library();
    let out = lib
        .render("sentiment", 2, &serde_json::json!({"text": "x"}))
        .unwrap();
    assert_eq!(out.system.as_deref(), Some("Classify (en)."));
    let err = lib
        .render("sentiment", 3, &serde_json::json!({"text": "x"}))
        .unwrap_err();
    assert!(err.to_string().contains("txt"), "{err}");
    let err_system_ok = lib.render(
        "sentiment",
        3,
        &serde_json::json!({"text": "x", "lang": "fr"}),
    );
    assert!(
        err_system_ok.is_err(),
        "the user template still names `txt`"
    );
}
