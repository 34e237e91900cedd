//! The output of an API with an `output_schema`: the model's text parsed as JSON and checked
//! against the schema, and the follow-up turn that asks for a repair when it is not.

use serde_json::Value;

/// The JSON value the text holds, when it satisfies `schema`; else what is wrong, in words the
/// model (and the caller, in a 502) can act on.
pub fn check(schema: &Value, text: &str) -> Result<Value, String> {
    check_value(schema, parse(text)?)
}

/// `value` when it satisfies `schema`, else the first few problems with their places.
pub fn check_value(schema: &Value, value: Value) -> Result<Value, String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the API's output schema cannot be compiled: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| match e.instance_path().as_str() {
            "" => e.to_string(),
            at => format!("at {at}: {e}"),
        })
        .collect();
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems.join("; "))
    }
}

/// Parses the answer, tolerating a Markdown code fence around it (models add one even when
/// asked for bare JSON).
fn parse(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced.trim()).map_err(|e| format!("the answer is not JSON ({e})"))
}

/// The user turn of the one repair attempt: what was wrong and the schema to satisfy.
pub fn repair_prompt(schema: &Value, problem: &str) -> String {
    format!(
        "Your previous answer is not valid: {problem}. Answer again with only a JSON value \
         that satisfies this JSON Schema, without any other text:\n{schema}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_json_is_parsed_and_problems_are_named() {
        let schema = json!({"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]});
        assert_eq!(
            check(&schema, "```json\n{\"label\": \"x\"}\n```").unwrap(),
            json!({"label": "x"})
        );
        assert!(check(&schema, "echo: hi").unwrap_err().contains("not JSON"));
        let err = check(&schema, "{\"label\": 3}").unwrap_err();
        assert!(err.contains("/label"), "{err}");
        assert!(check(&schema, "{}").unwrap_err().contains("label"));
    }
}
