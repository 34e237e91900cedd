//! Rewrites a JSON Schema (as clients write tool parameters) into the OpenAPI 3.0 subset that
//! Gemini's `FunctionDeclaration.parameters` accepts. Gemini answers 400 to any key outside that
//! subset, so the rewrite is schema-aware: it walks only schema positions (`properties` values,
//! `items`, `anyOf` members) and never touches property *names*, so a property called `strict`
//! or `additionalProperties` survives.
//!
//! What happens to each construct:
//! - Removed: `$schema`, `$id`, `$anchor`, `$comment`, `$defs`, `definitions`,
//!   `additionalProperties`, `unevaluatedProperties`, `patternProperties`, `propertyNames`,
//!   `dependentRequired`, `dependentSchemas`, `strict`, `examples`, `const` (after conversion),
//!   `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `contains`, `minContains`,
//!   `maxContains`, `uniqueItems`, `prefixItems`, `if`, `then`, `else`, `not`, `allOf`,
//!   `readOnly`, `writeOnly`, `deprecated`, `contentEncoding`, `contentMediaType`, and every
//!   other key not in Gemini's `Schema` message.
//! - `$ref` to `#/$defs/X` or `#/definitions/X` is inlined (depth-limited, so recursive schemas
//!   end in an untyped schema instead of looping); other refs are dropped.
//! - `oneOf` becomes `anyOf` (Gemini has only `anyOf`; "exactly one" is weakened to "any").
//! - `type: [T, "null"]` becomes `type: T, nullable: true`.
//! - `const: v` becomes `enum: [v]` when `enum` is absent.
//! - `format` is kept only where Gemini accepts it (`enum`, `date-time` on strings; `int32`,
//!   `int64`, `float`, `double` on numbers).

use serde_json::{Map, Value};

/// Keys of Gemini's `Schema` message that are kept (after their values are rewritten).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// How deep `$ref`s are inlined before giving up (recursive schemas).
const MAX_REF_DEPTH: u32 = 8;

/// Rewrites `schema` into Gemini's subset. `root` is the document `$ref`s resolve against.
pub(crate) fn to_gemini_schema(schema: &Value) -> Value {
    rewrite(schema, schema, 0)
}

fn rewrite(schema: &Value, root: &Value, depth: u32) -> Value {
    let Value::Object(obj) = schema else {
        // `true`/`false` schemas and garbage: an unconstrained schema is the closest match.
        return Value::Object(Map::new());
    };
    if let Some(Value::String(reference)) = obj.get("$ref") {
        if depth >= MAX_REF_DEPTH {
            return Value::Object(Map::new());
        }
        let target = resolve_ref(reference, root).cloned().unwrap_or(Value::Null);
        let mut out = rewrite(&target, root, depth + 1);
        // Sibling keywords of `$ref` (typically `description`) refine the target.
        if let Value::Object(out_obj) = &mut out {
            let rest = rewrite_object(obj, root, depth);
            for (key, value) in rest {
                out_obj.insert(key, value);
            }
        }
        return out;
    }
    Value::Object(rewrite_object(obj, root, depth))
}

fn rewrite_object(obj: &Map<String, Value>, root: &Value, depth: u32) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in obj {
        let key = if key == "oneOf" {
            "anyOf"
        } else {
            key.as_str()
        };
        if !KEPT.contains(&key) {
            continue;
        }
        let rewritten = match key {
            "properties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), rewrite(s, root, depth)))
                        .collect(),
                ),
                _ => continue,
            },
            "items" => match value {
                // Tuple form (draft 4-7): Gemini has one item schema, use the first.
                Value::Array(list) => match list.first() {
                    Some(first) => rewrite(first, root, depth),
                    None => continue,
                },
                other => rewrite(other, root, depth),
            },
            "anyOf" => match value {
                Value::Array(list) => {
                    Value::Array(list.iter().map(|s| rewrite(s, root, depth)).collect())
                }
                _ => continue,
            },
            _ => value.clone(),
        };
        out.insert(key.to_owned(), rewritten);
    }
    fix_type(&mut out);
    if !out.contains_key("enum") {
        if let Some(value) = obj.get("const") {
            out.insert("enum".into(), Value::Array(vec![value.clone()]));
        }
    }
    fix_format(&mut out);
    out
}

/// `type: ["string", "null"]` -> `type: "string", nullable: true`. Several non-null types have
/// no Gemini form: they become `anyOf` of single-typed schemas.
fn fix_type(out: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = out.get("type") else {
        return;
    };
    let nullable = types.iter().any(|t| t == "null");
    let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    out.remove("type");
    match others.as_slice() {
        [] => {}
        [single] => {
            out.insert("type".into(), single.clone());
        }
        many => {
            if !out.contains_key("anyOf") {
                let alternatives = many
                    .iter()
                    .map(|t| {
                        let mut m = Map::new();
                        m.insert("type".into(), t.clone());
                        Value::Object(m)
                    })
                    .collect();
                out.insert("anyOf".into(), Value::Array(alternatives));
            }
        }
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
}

fn fix_format(out: &mut Map<String, Value>) {
    let Some(Value::String(format)) = out.get("format") else {
        return;
    };
    let allowed = match out.get("type").and_then(Value::as_str) {
        Some("string") => matches!(format.as_str(), "enum" | "date-time"),
        Some("integer") | Some("number") => {
            matches!(format.as_str(), "int32" | "int64" | "float" | "double")
        }
        _ => false,
    };
    if !allowed {
        out.remove("format");
    }
}

fn resolve_ref<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let path = reference.strip_prefix("#/")?;
    let mut node = root;
    for segment in path.split('/') {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = node.get(segment.as_str())?;
    }
    Some(node)
}
