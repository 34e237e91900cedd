//! Chat requests that reference a stored prompt (`"prompt": {"id": ..., "variables": ...}` in
//! an OpenAI-format body): the version served (asked for, else the label's, sticky per caller),
//! rendered into the first messages, the version's parameters where the client gave none.

use super::PromptLibrary;
use crate::config::prompts::{DEFAULT_LABEL, PARAMS};
use crate::error::GatewayError;
use serde_json::Value;
use switchboard_types::ChatRequest;

/// `req` with its `prompt` reference rendered, and the `name@version` it was rendered from.
/// The new body is the client's object with the prompt's system and user messages before the
/// client's messages and the version's parameters added where the client set none, parsed
/// again like any client body (so every field is checked the same way, and the same-protocol
/// fast path forwards exactly this body). `sticky` picks the arm of a split label.
pub fn resolve(
    library: &PromptLibrary,
    mut req: ChatRequest,
    sticky: &str,
) -> Result<(ChatRequest, String), GatewayError> {
    let Some(reference) = req.prompt.take() else {
        return Err(GatewayError::Internal("no prompt to resolve".into()));
    };
    let Some(raw) = req.raw.take() else {
        return Err(GatewayError::Internal(
            "a prompt reference without its body".into(),
        ));
    };
    let version = match reference.version {
        Some(version) => version,
        None => {
            let label = reference.label.as_deref().unwrap_or(DEFAULT_LABEL);
            library.choose(&reference.name, label, sticky)?.version
        }
    };
    let variables = Value::Object(reference.variables);
    let rendered = library.render(&reference.name, version, &variables)?;

    let mut object = raw.object;
    object.remove("prompt");
    let client = match object.remove("messages") {
        Some(Value::Array(messages)) => messages,
        // The parser accepted the body, so anything else is an absent (null) list.
        _ => Vec::new(),
    };
    let mut messages = rendered.messages();
    messages.extend(client);
    object.insert("messages".into(), Value::Array(messages));
    let given = |object: &serde_json::Map<String, Value>, name: &str| {
        object.get(name).is_some_and(|v| !v.is_null())
    };
    // The two names of the output limit are one parameter: a client's either wins.
    let client_limit = given(&object, "max_tokens") || given(&object, "max_completion_tokens");
    for (name, value) in rendered.params {
        let limit = name == "max_tokens" || name == "max_completion_tokens";
        let set = if limit {
            client_limit
        } else {
            given(&object, &name)
        };
        if PARAMS.contains(&name.as_str()) && !set {
            object.insert(name, value);
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(object))
        .map_err(|e| GatewayError::Internal(format!("prompt request: {e}")))?;
    let req = switchboard_protocols::openai::parse_chat_request(&bytes)
        .map_err(GatewayError::BadRequest)?;
    Ok((req, format!("{}@{version}", reference.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use switchboard_types::{ContentPart, Role};

    const YAML: &str = r#"
providers: { demo: { type: mock } }
models: { demo: { targets: [ { provider: demo, model: echo } ] } }
prompts:
  support:
    variables:
      type: object
      properties: { product: { type: string } }
      required: [product]
    versions:
      - { version: 1, system: "Support for {{ product }}.", params: { temperature: 0.1, max_tokens: 300 } }
      - { version: 2, system: "Help with {{ product }}.", user: "Hello about {{ product }}.", params: { temperature: 0.7 } }
    labels: { production: 1, staging: 2 }
"#;

    fn library() -> PromptLibrary {
        let config = load_str("t.yaml", YAML, &|_| None).expect("valid");
        PromptLibrary::build(&config.prompts)
    }

    fn parse(body: serde_json::Value) -> ChatRequest {
        switchboard_protocols::openai::parse_chat_request(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn renders_before_the_clients_messages_with_the_versions_params() {
        let req = parse(serde_json::json!({
            "model": "demo",
            "prompt": {"id": "support", "variables": {"product": "Widget"}},
            "messages": [{"role": "user", "content": "It broke."}],
            "max_completion_tokens": 50,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        }));
        let (req, reference) = resolve(&library(), req, "k").unwrap();
        assert_eq!(reference, "support@1");
        assert_eq!(req.system, vec![ContentPart::text("Support for Widget.")]);
        assert_eq!(req.messages.len(), 1);
        assert_eq!(req.messages[0].role, Role::User);
        assert_eq!(req.temperature, Some(0.1), "the version's parameter");
        assert_eq!(req.max_tokens, Some(50), "the client's limit wins");
        assert_eq!(req.tools.len(), 1, "the client's other fields stay");
        assert!(req.prompt.is_none());
        let raw = req.raw.expect("the rendered body is forwardable");
        assert!(!raw.object.contains_key("prompt"));
    }

    #[test]
    fn a_version_or_a_label_picks_what_is_rendered() {
        let body = |prompt: serde_json::Value| {
            parse(serde_json::json!({"model": "demo", "prompt": prompt, "temperature": 1.5}))
        };
        let vars = serde_json::json!({"product": "W"});
        let (req, reference) = resolve(
            &library(),
            body(serde_json::json!({"name": "support", "label": "staging", "variables": vars})),
            "k",
        )
        .unwrap();
        assert_eq!(reference, "support@2");
        assert_eq!(
            req.messages[0].content,
            vec![ContentPart::text("Hello about W.")]
        );
        assert_eq!(req.temperature, Some(1.5), "the client's temperature wins");
        let (_, reference) = resolve(
            &library(),
            body(serde_json::json!({"id": "support", "version": "2", "label": "production", "variables": vars})),
            "k",
        )
        .unwrap();
        assert_eq!(reference, "support@2", "a version wins over a label");
    }

    #[test]
    fn unknown_prompts_versions_labels_and_bad_variables_are_refused() {
        let lib = library();
        let run = |prompt: serde_json::Value| {
            let req = parse(serde_json::json!({"model": "demo", "prompt": prompt}));
            resolve(&lib, req, "k").unwrap_err()
        };
        let vars = serde_json::json!({"product": "W"});
        for prompt in [
            serde_json::json!({"id": "nope", "variables": vars}),
            serde_json::json!({"id": "support", "version": 9, "variables": vars}),
            serde_json::json!({"id": "support", "label": "canary", "variables": vars}),
        ] {
            let err = run(prompt.clone());
            assert_eq!(err.code(), "prompt_not_found", "{prompt}: {err:?}");
        }
        let err = run(serde_json::json!({"id": "support", "variables": {"product": 3}}));
        assert!(
            matches!(&err, GatewayError::InvalidVariables { variable, .. } if variable == "product"),
            "{err:?}"
        );
        let err = run(serde_json::json!({"id": "support"}));
        assert!(
            matches!(&err, GatewayError::InvalidVariables { variable, .. } if variable == "product"),
            "{err:?}"
        );
    }
}
