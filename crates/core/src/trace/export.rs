//! The OTLP/HTTP exporter of one `telemetry:` config: the SDK's batch span processor (its own
//! thread, a bounded queue, export by size or interval) in front of the OTLP exporter
//! (protobuf), which posts through the gateway's reqwest client on the Tokio runtime. A
//! request only hands its finished spans to the processor's queue ([`Telemetry::emit`]); when
//! the queue is full spans are dropped, never the request slowed.

use crate::config::TelemetryConfig;
use opentelemetry::InstrumentationScope;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::time::Duration;

/// A configured trace pipeline. Built with a config snapshot; kept by the next one when its
/// `telemetry:` section did not change.
#[derive(Debug)]
pub struct Telemetry {
    config: TelemetryConfig,
    processor: BatchSpanProcessor,
    pub(super) scope: InstrumentationScope,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry needs a Tokio runtime to export from")]
    NoRuntime,
    #[error("cannot build the OTLP HTTP client: {0}")]
    Client(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

impl Telemetry {
    /// Starts the exporter thread. Call it inside a Tokio runtime: exports run on it.
    pub fn build(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TelemetryError::Client(e.to_string()))?;
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.0.clone()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient { http, runtime })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.traces_url.clone())
            .with_timeout(config.timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(config.batch_delay)
            .with_max_queue_size(config.queue_size)
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build();
        processor.set_resource(&resource);
        let scope = InstrumentationScope::builder("switchboard")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Telemetry {
            config: config.clone(),
            processor,
            scope,
        })
    }

    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// Queues finished spans for export. Never blocks.
    pub(super) fn emit(&self, span: SpanData) {
        self.processor.on_end(span);
    }

    /// Exports what is queued and stops the exporter thread, waiting at most `timeout`.
    /// Blocking: call it from a blocking context (shutdown, or a thread of its own).
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(err) = self.processor.shutdown_with_timeout(timeout) {
            tracing::warn!(%err, "Trace exporter did not shut down cleanly.");
        }
    }

    /// Exports what is queued now (tests, shutdown). Blocking, like [`Telemetry::shutdown`].
    pub fn flush(&self) {
        if let Err(err) = self.processor.force_flush() {
            tracing::warn!(%err, "Trace export failed.");
        }
    }
}

/// The exporter's HTTP client: the SDK calls it from its own thread (not a Tokio one), so each
/// export is run as a task on the gateway's runtime and awaited from there.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        // One task per batch, not per request; it ends with the export.
        let answer = self
            .runtime
            .spawn(async move {
                let response = http.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
