//! OpenAPI 3.1 documents of prompt APIs, for the portal and for client generators: one per API
//! (`GET /apis/{name}/openapi.json`) and one of every API a caller may see
//! (`GET /apis/openapi.json`). Built as plain JSON: the request schema is the prompt's variables
//! schema (OpenAPI 3.1 schemas are JSON Schema), the answer's `output` is the output schema or
//! a string.

use super::Resolved;
use crate::config::prompts::{ApiBody, ApiConfig, ApiStatus, ApiVersion};
use crate::prompts::PromptLibrary;
use serde_json::{json, Map, Value};

/// The versions of `api` a caller is served: published and deprecated ones, and drafts when
/// `drafts` (the admin). Retired versions only answer 410 and are left out.
pub fn served_versions(api: &ApiConfig, drafts: bool) -> Vec<&ApiVersion> {
    let mut versions: Vec<&ApiVersion> = api
        .versions
        .values()
        .filter(|v| match v.status {
            ApiStatus::Published | ApiStatus::Deprecated => true,
            ApiStatus::Draft => drafts,
            ApiStatus::Retired => false,
        })
        .collect();
    versions.sort_by(|a, b| crate::config::prompts::version_order(&a.version, &b.version));
    versions
}

/// The document of `apis`, each with the versions to describe.
pub fn document(apis: &[(&ApiConfig, Vec<&ApiVersion>)], prompts: &PromptLibrary) -> Value {
    let mut paths = Map::new();
    let mut schemas = common_schemas();
    for (api, versions) in apis {
        let current = api.current().map(|v| v.version.as_str());
        for version in versions {
            let resolved = Resolved { api, version };
            let id = format!("{}_{}", api.name, version.version).replace('-', "_");
            schemas.insert(format!("{id}_request"), request_schema(&resolved, prompts));
            schemas.insert(format!("{id}_response"), response_schema(version));
            let operation = operation(&resolved, &id);
            let item = json!({ "post": operation });
            paths.insert(
                format!("/apis/{}@{}", api.name, version.version),
                item.clone(),
            );
            if current == Some(version.version.as_str()) {
                let mut item = item;
                item["post"]["operationId"] =
                    Value::String(format!("call_{}", api.name.replace('-', "_")));
                paths.insert(format!("/apis/{}", api.name), item);
            }
        }
    }
    let title = match apis {
        [(api, _)] => format!("Switchboard API `{}`", api.name),
        _ => "Switchboard prompt APIs".to_owned(),
    };
    let description = match apis {
        [(api, _)] => api.description.clone().unwrap_or_default(),
        _ => "Prompt APIs served by this gateway.".to_owned(),
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": "1", "description": description },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "description": "A virtual key (sk-sb-...)." },
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" }
            }
        },
        "security": [ { "bearerAuth": [] }, { "apiKey": [] } ]
    })
}

fn operation(api: &Resolved<'_>, id: &str) -> Value {
    let version = api.version;
    let mut ok = Map::new();
    ok.insert(
        "application/json".into(),
        json!({ "schema": { "$ref": format!("#/components/schemas/{id}_response") } }),
    );
    let when = if api.streams_live() {
        "as the model writes them"
    } else {
        "once the output is checked whole (one delta)"
    };
    ok.insert(
        "text/event-stream".into(),
        json!({
            "schema": { "type": "string" },
            "description": format!("With \"stream\": true: `data: {{\"delta\": \"...\"}}` events {when}, then one `data: {{\"output\", \"usage\", \"version\", \"api_version\"}}` event and `data: [DONE]`.")
        }),
    );
    let error = |what: &str| {
        json!({
            "description": what,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
        })
    };
    let mut summary = api
        .api
        .description
        .clone()
        .unwrap_or_else(|| format!("Call {}", api.api.name));
    if version.status == ApiStatus::Deprecated {
        summary.push_str(" (deprecated)");
    }
    json!({
        "operationId": format!("call_{id}"),
        "summary": summary,
        "deprecated": version.status == ApiStatus::Deprecated,
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{id}_request") } } }
        },
        "responses": {
            "200": {
                "description": "The output, the tokens used and the versions served.",
                "headers": {
                    "x-request-id": { "schema": { "type": "string" } },
                    "x-switchboard-prompt-version": { "schema": { "type": "string" } },
                    "Deprecation": { "schema": { "type": "string" }, "description": "RFC 9745, on deprecated versions." },
                    "Sunset": { "schema": { "type": "string" }, "description": "RFC 8594 HTTP-date." }
                },
                "content": ok
            },
            "400": error("Invalid variables (`error.param` names the variable), or malformed JSON."),
            "401": error("Missing, unknown, expired or revoked key."),
            "403": error("The key may not call this API, or the subscription is not approved."),
            "404": error("Unknown API or version."),
            "410": error("The version is retired; the message names its successor."),
            "429": error("A rate limit or budget was reached."),
            "502": error("The model failed, or its output did not match the output schema after one repair, or a workflow step failed."),
            "504": error("Upstream or workflow step timeout.")
        }
    })
}

/// The request body: the variables schema, with `stream`.
fn request_schema(api: &Resolved<'_>, prompts: &PromptLibrary) -> Value {
    let mut schema = match &api.version.body {
        ApiBody::Prompt(call) => prompts
            .get(&call.prompt)
            .map_or_else(|| json!({"type": "object"}), |p| p.variables.clone()),
        // A workflow's input is the context of its steps: any object.
        ApiBody::Workflow(_) => json!({"type": "object"}),
    };
    if let Some(map) = schema.as_object_mut() {
        let properties = map
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "stream".into(),
                json!({"type": "boolean", "description": "Answer with server-sent events."}),
            );
        }
    }
    schema
}

fn response_schema(version: &ApiVersion) -> Value {
    let output = version
        .output_schema
        .clone()
        .unwrap_or_else(|| json!({"type": "string"}));
    let output = match version.body {
        // A workflow's output is whatever its output step produced.
        ApiBody::Workflow(_) if version.output_schema.is_none() => json!({}),
        _ => output,
    };
    let mut properties = json!({
        "output": output,
        "usage": { "$ref": "#/components/schemas/Usage" },
        "version": { "type": "string", "description": "The prompt version served, `prompt@n` (a workflow: `api@version`)." },
        "api_version": { "type": "string" }
    });
    if matches!(version.body, ApiBody::Workflow(_)) {
        properties["steps"] =
            json!({ "type": "array", "items": { "$ref": "#/components/schemas/Step" } });
    }
    json!({
        "type": "object",
        "required": ["output", "usage", "version", "api_version"],
        "properties": properties
    })
}

fn common_schemas() -> Map<String, Value> {
    let schemas = json!({
        "Usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens", "total_tokens"],
            "properties": {
                "input_tokens": { "type": "integer" },
                "output_tokens": { "type": "integer" },
                "total_tokens": { "type": "integer" },
                "cached_input_tokens": { "type": "integer" },
                "reasoning_tokens": { "type": "integer" }
            }
        },
        "Step": {
            "type": "object",
            "required": ["id", "status", "usage", "latency_ms"],
            "properties": {
                "id": { "type": "string" },
                "status": { "type": "string" },
                "output": {},
                "usage": { "$ref": "#/components/schemas/Usage" },
                "latency_ms": { "type": "integer" },
                "version": { "type": "string" }
            }
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": {
                        "message": { "type": "string" },
                        "type": { "type": "string" },
                        "code": { "type": "string" },
                        "param": { "type": ["string", "null"] }
                    }
                }
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
