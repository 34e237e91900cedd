//! Workflow APIs: steps run as a DAG (a step starts as soon as every step it `needs` is done,
//! so independent steps run concurrently), each a prompt call through the same path as a
//! prompt API or an HTTP call. The first failure stops the run: steps in flight are dropped
//! (their calls are recorded as cancelled) and later steps never start.
//!
//! Records: each step's model call is its own usage record (`<run id>.<step id>`, tags `api`,
//! `step`, `workflow=<run id>`, `prompt`); the run is one more record of kind `workflow` with
//! zero tokens and cost (the steps carry those, so sums are not counted twice), the run's
//! outcome, status and latency. When tracing is on, the run's span is the parent of the steps'.

use super::{add_usage, usage_json, ApiAnswer, CallFacts, Resolved};
use crate::config::prompts::{HttpStep, Step, StepKind, Workflow};
use crate::error::GatewayError;
use crate::gateway::Snapshot;
use crate::limits::Admission;
use crate::pipeline::RequestContext;
use crate::routing::RouteFailure;
use crate::trace::{CallTrace, RequestFacts};
use crate::usage::{CallKind, Meter, MeterStart};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use serde_json::{json, Map, Value};
use switchboard_providers::{ProviderError, TimeoutKind};
use switchboard_types::Usage;
use tokio::time::Instant;

/// Longest HTTP step answer read (a step's output is context for later prompts, not a payload).
const MAX_HTTP_BODY: usize = 1 << 20;

/// One finished step, as the answer's `steps` shows it.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub id: String,
    pub output: Value,
    pub usage: Usage,
    pub latency_ms: u64,
    /// `prompt@n` of a prompt step.
    pub version: Option<String>,
}

impl StepReport {
    pub fn json(&self) -> Value {
        let mut out = json!({
            "id": self.id,
            "status": "ok",
            "output": self.output,
            "usage": usage_json(&self.usage),
            "latency_ms": self.latency_ms,
        });
        if let (Some(version), Some(map)) = (&self.version, out.as_object_mut()) {
            map.insert("version".into(), Value::String(version.clone()));
        }
        out
    }
}

struct StepDone {
    report: StepReport,
    call: Option<CallFacts>,
}

impl Snapshot {
    pub(super) async fn run_workflow(
        &self,
        ctx: &mut RequestContext,
        api: Resolved<'_>,
        flow: &Workflow,
        input: &Value,
        sticky: &str,
    ) -> Result<ApiAnswer, RouteFailure> {
        let run_id = ctx.request_id.clone();
        ctx.tags.push(("workflow".to_owned(), run_id.clone()));
        let mut meter = self.run_meter(ctx, &api);
        let steps = self.run_steps(ctx, flow, input, sticky, api.version.output_schema.as_ref());
        // The version's timeout bounds the whole run.
        let result = super::within(api.version.timeout, steps).await;
        match result {
            Ok((reports, call)) => {
                meter.finish();
                let mut usage = Usage::default();
                for report in &reports {
                    add_usage(&mut usage, &report.usage);
                }
                let output = reports
                    .get(flow.output)
                    .map(|r| r.output.clone())
                    .unwrap_or(Value::Null);
                Ok(ApiAnswer {
                    output,
                    usage,
                    version: api.reference(),
                    api_version: api.version.version.clone(),
                    call: call.unwrap_or_default(),
                    steps: Some(reports),
                })
            }
            Err(error) => {
                meter.fail(&error, 0, None, error.status());
                Err(error.into())
            }
        }
    }

    /// The run's own record (and span), with no admission: the steps' calls are admitted and
    /// limited one by one. Its `alias` is the API reference, `name@version`.
    fn run_meter(&self, ctx: &mut RequestContext, api: &Resolved<'_>) -> Meter {
        let slot = self.usage.as_ref().and_then(|queue| {
            let slot = queue.reserve();
            if slot.is_none() {
                crate::metrics::Counter::UsageShed.increment();
            }
            slot
        });
        let start = MeterStart {
            request_id: ctx.request_id.clone(),
            caller: crate::pipeline::caller(ctx.principal.as_ref()),
            kind: CallKind::Workflow,
            alias: api.reference(),
            stream: false,
            tags: ctx.tags.clone(),
            input_bytes: 0,
            client: self.call_log_client(ctx),
        };
        let mut meter = Meter::start(slot, start, Admission::none());
        if let Some(telemetry) = &self.telemetry {
            let facts = RequestFacts {
                operation: "workflow",
                ..RequestFacts::default()
            };
            let trace = CallTrace::start(telemetry.clone(), ctx.traceparent.as_deref(), facts);
            let ids = trace.ids();
            // The steps' spans are children of the run's.
            ctx.traceparent = Some(ids.traceparent(ids.span_id));
            meter.trace(trace);
        }
        meter
    }

    /// Runs every step, each once all its `needs` are done; the reports in config order and
    /// the output step's routing facts.
    async fn run_steps(
        &self,
        ctx: &RequestContext,
        flow: &Workflow,
        input: &Value,
        sticky: &str,
        schema: Option<&Value>,
    ) -> Result<(Vec<StepReport>, Option<CallFacts>), GatewayError> {
        let count = flow.steps.len();
        let mut done: Vec<Option<StepDone>> = (0..count).map(|_| None).collect();
        let mut started = vec![false; count];
        let mut running = FuturesUnordered::new();
        loop {
            for (index, step) in flow.steps.iter().enumerate() {
                let ready = step
                    .needs
                    .iter()
                    .all(|&n| done.get(n).is_some_and(Option::is_some));
                if started[index] || !ready {
                    continue;
                }
                started[index] = true;
                let context = run_context(input, flow, &done);
                let step_ctx = step_context(ctx, step);
                // The API's output schema applies to the step whose output is the API's.
                let step_schema = (index == flow.output).then_some(schema).flatten();
                let run = self.run_step(step, step_ctx, context, sticky, step_schema);
                running.push(run.map(move |result| (index, result)));
            }
            let Some((index, result)) = running.next().await else {
                break;
            };
            let step = &flow.steps[index];
            match result {
                Ok(finished) => done[index] = Some(finished),
                // Returning drops the steps in flight; later steps never start.
                Err(source) => {
                    return Err(GatewayError::StepFailed {
                        step: step.id.clone(),
                        source: Box::new(source),
                    })
                }
            }
        }
        let call = done
            .get_mut(flow.output)
            .and_then(|d| d.as_mut())
            .and_then(|d| d.call.take());
        let reports = done
            .into_iter()
            .flatten()
            .map(|d| d.report)
            .collect::<Vec<_>>();
        if reports.len() != count {
            // Validation only lets `needs` name earlier steps, so every step runs.
            return Err(GatewayError::Internal(
                "a workflow step never became ready".into(),
            ));
        }
        Ok((reports, call))
    }

    /// One step, within its own timeout.
    async fn run_step(
        &self,
        step: &Step,
        mut ctx: RequestContext,
        context: Value,
        sticky: &str,
        schema: Option<&Value>,
    ) -> Result<StepDone, GatewayError> {
        let started = Instant::now();
        let variables = step_variables(step, context)?;
        let work = async {
            match &step.kind {
                StepKind::Prompt(call) => {
                    let done = self
                        .prompt_call(&mut ctx, call, schema, &variables, sticky)
                        .await
                        .map_err(|failure| failure.error)?;
                    Ok((done.output, done.usage, Some(done.version), Some(done.call)))
                }
                StepKind::Http(http) => {
                    let mut output = self.http_step(http, &variables).await?;
                    // An HTTP output step is checked against the API's output schema too (a
                    // service cannot be asked for a repair).
                    if let Some(schema) = schema {
                        output = super::output::check_value(schema, output)
                            .map_err(GatewayError::InvalidOutput)?;
                    }
                    Ok((output, Usage::default(), None, None))
                }
            }
        };
        let (output, usage, version, call) =
            super::within::<_, GatewayError>(step.timeout, work).await?;
        Ok(StepDone {
            report: StepReport {
                id: step.id.clone(),
                output,
                usage,
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                version,
            },
            call,
        })
    }

    /// An HTTP step: the variables as a JSON body (`GET`: as the query string), the answer's
    /// JSON (or its text when it is not JSON) as the output; a non-2xx status is a failure.
    async fn http_step(&self, step: &HttpStep, variables: &Value) -> Result<Value, GatewayError> {
        let mut req = self.http.request(step.method.clone(), &step.url);
        for (name, value) in &step.headers {
            req = req.header(name.as_str(), value.expose());
        }
        req = if step.method == http::Method::GET {
            req.query(&query_pairs(variables))
        } else {
            req.json(variables)
        };
        let failed = |last: ProviderError| GatewayError::AllTargetsFailed { attempts: 1, last };
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                GatewayError::UpstreamTimeout(TimeoutKind::Total)
            } else {
                failed(ProviderError::Connect(summary(e)))
            }
        })?;
        let status = resp.status();
        let body = read_limited(resp).await.map_err(failed)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(failed(ProviderError::Status {
                status: status.as_u16(),
                message: text.chars().take(200).collect(),
                retry_after: None,
            }));
        }
        Ok(serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
    }
}

/// The error of a failed HTTP step without the URL's query (it may hold credentials).
fn summary(err: reqwest::Error) -> String {
    let mut text = err.without_url().to_string();
    text.truncate(200);
    text
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ProviderError::Closed(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_HTTP_BODY {
            return Err(ProviderError::Decode(format!(
                "the step's answer is over {MAX_HTTP_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn query_pairs(variables: &Value) -> Vec<(String, String)> {
    let Some(map) = variables.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), s.clone()),
            other => (k.clone(), other.to_string()),
        })
        .collect()
}

/// A step's own context: request id `<run id>.<step id>` and the tags `step` and (from the
/// run) `api` and `workflow`.
fn step_context(run: &RequestContext, step: &Step) -> RequestContext {
    let mut ctx = run.clone();
    ctx.request_id = format!("{}.{}", run.request_id, step.id);
    ctx.tags.push(("step".to_owned(), step.id.clone()));
    ctx
}

/// What step templates see: the input variables, and each finished step's output under its id.
fn run_context(input: &Value, flow: &Workflow, done: &[Option<StepDone>]) -> Value {
    let mut context = input.as_object().cloned().unwrap_or_default();
    for (step, finished) in flow.steps.iter().zip(done) {
        if let Some(finished) = finished {
            context.insert(step.id.clone(), finished.report.output.clone());
        }
    }
    Value::Object(context)
}

/// The step's variables: its templates rendered over the context (strings anywhere inside
/// them), or the whole context when it declares none.
fn step_variables(step: &Step, context: Value) -> Result<Value, GatewayError> {
    let Some(templates) = &step.variables else {
        return Ok(context);
    };
    let mut out = Map::new();
    for (name, template) in templates {
        let value =
            render_value(template, &context).map_err(|message| GatewayError::InvalidVariables {
                variable: name.clone(),
                message,
            })?;
        out.insert(name.clone(), value);
    }
    Ok(Value::Object(out))
}

fn render_value(template: &Value, context: &Value) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => Value::String(crate::prompts::render_str(text, context)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_value(item, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
