//! Prompt APIs at run time (SPEC section 6): which API version `POST /apis/{name}[@version]`
//! serves to a caller, the prompt call behind it (choose the prompt version, render, build the
//! chat request, run the pipeline without the model grant: the API is the grant), the output
//! schema with its one repair, and workflows (`workflow.rs`). The HTTP edge is
//! `switchboard::http::apis`; the OpenAPI documents are built in `openapi.rs`.

pub mod lifecycle;
pub mod openapi;
mod output;
mod workflow;

pub use workflow::StepReport;

use crate::auth::Principal;
use crate::config::prompts::{
    split_api_ref, ApiBody, ApiConfig, ApiStatus, ApiVersion, PromptCall,
};
use crate::error::GatewayError;
use crate::gateway::Snapshot;
use crate::limits::RateHeaders;
use crate::pipeline::{RequestContext, Served};
use crate::routing::RouteFailure;
use crate::usage::RESERVED_TAGS;
use serde_json::{json, Map, Value};
use switchboard_providers::{ChatEventStream, TimeoutKind};
use switchboard_types::{ChatRequest, ChatResponse, ResponseFormat, TargetId, Usage};

/// The API version a request resolved to.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    pub api: &'a ApiConfig,
    pub version: &'a ApiVersion,
}

impl Resolved<'_> {
    /// `name@version`, as the `api` tag and the answer's `api_version` context show it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.api.name, self.version.version)
    }

    /// Whether `stream: true` forwards the model's events as they come: a prompt API without an
    /// output schema. Others (a schema's output is checked whole, a workflow's comes from its
    /// last step) answer a stream request with the same events once the output is ready.
    pub fn streams_live(&self) -> bool {
        matches!(self.version.body, ApiBody::Prompt(_)) && self.version.output_schema.is_none()
    }

    /// The model alias a prompt API calls; a workflow has none of its own.
    pub fn alias(&self) -> Option<&str> {
        match &self.version.body {
            ApiBody::Prompt(call) => Some(&call.model),
            ApiBody::Workflow(_) => None,
        }
    }
}

/// How the last model call of an answer was routed, for the response headers.
#[derive(Clone, Debug, Default)]
pub struct CallFacts {
    pub alias: String,
    pub target: Option<TargetId>,
    pub attempts: u32,
    pub rate: RateHeaders,
}

/// A whole API answer.
#[derive(Debug)]
pub struct ApiAnswer {
    /// Text, or the parsed JSON value when the API has an output schema (a workflow: the
    /// output step's output).
    pub output: Value,
    /// Every model call's usage, summed (a repair and every step included).
    pub usage: Usage,
    /// `prompt@n` served (a workflow: `api@version`).
    pub version: String,
    /// The API version's name, `v1`...
    pub api_version: String,
    pub call: CallFacts,
    /// A workflow's steps, in config order.
    pub steps: Option<Vec<StepReport>>,
}

/// A streamed prompt API call: the served stream and the prompt version behind it.
pub struct ApiStream {
    pub served: Served<ChatEventStream>,
    pub version: String,
}

/// One finished prompt call.
#[derive(Debug)]
struct PromptDone {
    output: Value,
    usage: Usage,
    version: String,
    call: CallFacts,
}

/// Which caller a split assigns: the `x-switchboard-ab-key` header when sent, else the key id,
/// else the request id (a caller without a stable id gets a fresh draw per request).
pub fn sticky_key(ab_key: Option<&str>, ctx: &RequestContext) -> String {
    if let Some(key) = ab_key.filter(|k| !k.is_empty()) {
        return key.to_owned();
    }
    match &ctx.principal {
        Some(Principal::Key(grant)) => grant.key_id.clone(),
        Some(Principal::User(user)) => user.subject.clone(),
        Some(Principal::Admin) | None => ctx.request_id.clone(),
    }
}

impl Snapshot {
    /// The API version `reference` (`name` or `name@version`) names, if `who` may call it:
    /// `name` serves [`ApiConfig::current`]; a draft is served to the admin only (404 to
    /// anyone else, as if it did not exist); access is checked before the lifecycle, so a
    /// caller who may not call an API learns nothing more of it; a retired version is 410.
    pub fn resolve_api(
        &self,
        reference: &str,
        who: &Principal,
    ) -> Result<Resolved<'_>, GatewayError> {
        let unknown = || GatewayError::UnknownApi(reference.to_owned());
        let (name, version) = split_api_ref(reference);
        let api = self.config.apis.get(name).ok_or_else(unknown)?;
        let version = match version {
            Some(v) => api.versions.get(v),
            None => api.current(),
        }
        .ok_or_else(unknown)?;
        if version.status == ApiStatus::Draft && !matches!(who, Principal::Admin) {
            return Err(unknown());
        }
        self.auth.check_api(who, name, api.requires_approval)?;
        if version.status == ApiStatus::Retired {
            return Err(GatewayError::ApiRetired {
                api: format!("{name}@{}", version.version),
                successor: version.successor.clone(),
            });
        }
        Ok(Resolved { api, version })
    }

    /// The APIs whose documents `who` may read: those its allow-list names (a gated API's
    /// docs are readable before a subscription is approved: that is how an app decides to ask
    /// for one). Which versions are shown is [`openapi::served_versions`].
    pub fn visible_apis<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = &'a ApiConfig> {
        self.config
            .apis
            .values()
            .filter(move |api| self.auth.check_api(who, &api.name, false).is_ok())
    }

    /// A whole (non-streamed) API call: `variables` are the request body without `stream`.
    /// The version's `timeout` bounds everything (a repair and every workflow step), 504.
    pub async fn call_api(
        &self,
        ctx: &mut RequestContext,
        api: Resolved<'_>,
        variables: Value,
        sticky: &str,
    ) -> Result<ApiAnswer, RouteFailure> {
        start(ctx, &api);
        let call = match &api.version.body {
            ApiBody::Prompt(call) => call,
            // A workflow applies the timeout itself, so that its run record sees it.
            ApiBody::Workflow(flow) => {
                return self.run_workflow(ctx, api, flow, &variables, sticky).await;
            }
        };
        let schema = api.version.output_schema.as_ref();
        let done = within(
            api.version.timeout,
            self.prompt_call(ctx, call, schema, &variables, sticky),
        )
        .await?;
        Ok(ApiAnswer {
            output: done.output,
            usage: done.usage,
            version: done.version,
            api_version: api.version.version.clone(),
            call: done.call,
            steps: None,
        })
    }

    /// A streamed prompt API call, resolved once the first event is in hand (as a chat
    /// stream). Only for [`Resolved::streams_live`] APIs: workflows and APIs with an output schema
    /// are refused here (the HTTP edge answers them whole, as events): their output can only be
    /// checked (and repaired) whole.
    pub async fn stream_api(
        &self,
        ctx: &mut RequestContext,
        api: Resolved<'_>,
        variables: Value,
        sticky: &str,
    ) -> Result<ApiStream, RouteFailure> {
        let refuse = |why: &str| -> RouteFailure {
            GatewayError::BadRequest(switchboard_protocols::ConvertError::invalid(
                Some("stream".to_owned()),
                why.to_owned(),
            ))
            .into()
        };
        let call = match &api.version.body {
            ApiBody::Prompt(call) => call,
            ApiBody::Workflow(_) => {
                return Err(refuse(
                    "A workflow API cannot stream; send the request without \"stream\": true.",
                ))
            }
        };
        if api.version.output_schema.is_some() {
            return Err(refuse("This API has an output schema: its output is checked whole and cannot stream. Send the request without \"stream\": true."));
        }
        start(ctx, &api);
        let chosen = self.prompts.choose(&call.prompt, &call.label, sticky)?;
        let rendered = self
            .prompts
            .render(&call.prompt, chosen.version, &variables)?;
        let version = rendered.reference();
        ctx.tags.push(("prompt".to_owned(), version.clone()));
        let req = api_request(call, &rendered, None, Vec::new(), true)?;
        // For a stream the version's timeout bounds the wait for the first event; once events
        // flow, the model's own idle timeouts apply.
        let served = within(api.version.timeout, self.chat_stream_granted(ctx, &req)).await?;
        Ok(ApiStream { served, version })
    }

    /// One prompt call: the version `call.label` serves to `sticky`, rendered with
    /// `variables`, sent to `call.model` through the pipeline (every limit and budget applies),
    /// its text checked against `schema` when there is one, with exactly one repair: the
    /// previous answer and what was wrong go back as a follow-up turn. The repair is a call of
    /// its own, recorded as `<request id>.repair`.
    async fn prompt_call(
        &self,
        ctx: &mut RequestContext,
        call: &PromptCall,
        schema: Option<&Value>,
        variables: &Value,
        sticky: &str,
    ) -> Result<PromptDone, RouteFailure> {
        let chosen = self.prompts.choose(&call.prompt, &call.label, sticky)?;
        let rendered = self
            .prompts
            .render(&call.prompt, chosen.version, variables)?;
        let version = rendered.reference();
        ctx.tags.push(("prompt".to_owned(), version.clone()));
        let req = api_request(call, &rendered, schema, Vec::new(), false)?;
        let first = self.chat_granted(ctx, &req).await?;
        let (text, mut usage, facts) = finish(first, &call.model);
        let Some(schema) = schema else {
            return Ok(PromptDone {
                output: Value::String(text),
                usage,
                version,
                call: facts,
            });
        };
        let problem = match output::check(schema, &text) {
            Ok(output) => {
                return Ok(PromptDone {
                    output,
                    usage,
                    version,
                    call: facts,
                })
            }
            Err(problem) => problem,
        };
        tracing::debug!(request_id = %ctx.request_id, %problem, "API output invalid; one repair.");
        let extra = vec![
            json!({"role": "assistant", "content": text}),
            json!({"role": "user", "content": output::repair_prompt(schema, &problem)}),
        ];
        let req = api_request(call, &rendered, Some(schema), extra, false)?;
        let mut repair = ctx.clone();
        repair.request_id = format!("{}.repair", ctx.request_id);
        let Served { routed, mut meter } = self.chat_granted(&mut repair, &req).await?;
        let text = response_text(&routed.value);
        add_usage(&mut usage, &routed.value.usage.unwrap_or_default());
        match output::check(schema, &text) {
            Ok(output) => {
                meter.finish();
                let facts = CallFacts {
                    alias: call.model.clone(),
                    target: Some(routed.target),
                    attempts: routed.attempts,
                    rate: meter.admission().headers(),
                };
                Ok(PromptDone {
                    output,
                    usage,
                    version,
                    call: facts,
                })
            }
            Err(problem) => {
                let error = GatewayError::InvalidOutput(problem);
                meter.fail(&error, routed.attempts, Some(&routed.target), 502);
                Err(RouteFailure {
                    error,
                    attempts: routed.attempts,
                    last_target: Some(routed.target),
                    log: Vec::new(),
                })
            }
        }
    }
}

/// Runs `work` within `limit` when there is one: over it, 504 `upstream_timeout` (the work is
/// dropped, which records its calls in flight as cancelled).
pub(crate) async fn within<T, E: From<GatewayError>>(
    limit: Option<std::time::Duration>,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match limit {
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(GatewayError::UpstreamTimeout(TimeoutKind::Total).into()),
        },
        None => work.await,
    }
}

/// What every API call sets on its context: the version's context-window policy and the `api`
/// tag.
fn start(ctx: &mut RequestContext, api: &Resolved<'_>) {
    ctx.context_policy = api.version.context_policy;
    ctx.tags
        .retain(|(key, _)| !RESERVED_TAGS.contains(&key.as_str()));
    ctx.tags.push(("api".to_owned(), api.reference()));
}

/// Marks a served whole answer delivered and takes its text, usage and routing facts.
fn finish(served: Served<ChatResponse>, alias: &str) -> (String, Usage, CallFacts) {
    let Served { routed, mut meter } = served;
    meter.finish();
    let facts = CallFacts {
        alias: alias.to_owned(),
        target: Some(routed.target),
        attempts: routed.attempts,
        rate: meter.admission().headers(),
    };
    let text = response_text(&routed.value);
    (text, routed.value.usage.unwrap_or_default(), facts)
}

/// The first choice's text (API requests are built without `raw`, so the answer is decoded).
fn response_text(resp: &ChatResponse) -> String {
    resp.choices
        .first()
        .map(|c| c.message.text())
        .unwrap_or_default()
}

pub(crate) fn add_usage(sum: &mut Usage, more: &Usage) {
    sum.input_tokens += more.input_tokens;
    sum.output_tokens += more.output_tokens;
    sum.cached_input_tokens += more.cached_input_tokens;
    sum.cache_write_tokens += more.cache_write_tokens;
    sum.reasoning_tokens += more.reasoning_tokens;
}

/// The chat request of an API's prompt call. With an output schema and no `response_format`
/// of the prompt or the API, the schema is sent as `response_format: json_schema` (each
/// protocol translates it for its targets: OpenAI as is, Anthropic as a forced tool, Gemini as
/// `responseJsonSchema`); the answer is validated by the gateway either way.
fn api_request(
    call: &PromptCall,
    rendered: &crate::prompts::Rendered,
    schema: Option<&Value>,
    extra: Vec<Value>,
    stream: bool,
) -> Result<ChatRequest, GatewayError> {
    let mut req =
        crate::prompts::chat_request(&call.model, rendered, &[&call.params], extra, stream)?;
    if let Some(schema) = schema {
        if req.response_format.is_none() {
            req.response_format = Some(ResponseFormat::JsonSchema {
                name: "output".to_owned(),
                schema: schema.clone(),
                strict: None,
                description: None,
            });
        }
    }
    Ok(req)
}

/// The `usage` object of an answer: the token counts and their total.
pub fn usage_json(usage: &Usage) -> Value {
    let mut out = Map::new();
    out.insert("input_tokens".into(), usage.input_tokens.into());
    out.insert("output_tokens".into(), usage.output_tokens.into());
    out.insert("total_tokens".into(), usage.total_tokens().into());
    if usage.cached_input_tokens > 0 {
        out.insert(
            "cached_input_tokens".into(),
            usage.cached_input_tokens.into(),
        );
    }
    if usage.reasoning_tokens > 0 {
        out.insert("reasoning_tokens".into(), usage.reasoning_tokens.into());
    }
    Value::Object(out)
}

impl ApiAnswer {
    /// The response body: `{output, usage, version, api_version}` and a workflow's `steps`.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "output": self.output,
            "usage": usage_json(&self.usage),
            "version": self.version,
            "api_version": self.api_version,
        });
        if let (Some(steps), Some(map)) = (&self.steps, body.as_object_mut()) {
            let steps: Vec<Value> = steps.iter().map(StepReport::json).collect();
            map.insert("steps".into(), Value::Array(steps));
        }
        body
    }
}
