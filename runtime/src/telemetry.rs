//! Logging and OpenTelemetry trace export for the IDS Stream binaries.
//!
//! * Logs: `tracing-subscriber` with a `RUST_LOG`-style filter (default `info`),
//!   as text or one JSON object per line (`log_format`). A log line emitted inside
//!   an OpenTelemetry-backed span carries `trace_id` and `span_id`, so a log
//!   shipper can join logs to traces.
//! * Traces: OTLP export configured by the standard `OTEL_*` variables
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//!   `OTEL_EXPORTER_OTLP_PROTOCOL` = `grpc` | `http/protobuf`, `OTEL_SERVICE_NAME`,
//!   `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`).
//!   Tracing is off unless an endpoint is configured, so a plain run pays nothing.
//!   Spans are exported by a batch processor on the tokio runtime: `on_end` only
//!   enqueues, a full queue drops spans, and a collector that is down costs a
//!   warning, never throughput.
//!
//! The default sampler is parent-based with a trace-id ratio
//! ([`TelemetrySettings::trace_sample_ratio`], or `OTEL_TRACES_SAMPLER_ARG`);
//! `OTEL_TRACES_SAMPLER` replaces it with any standard sampler.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Set once [`init`] installed an OTLP pipeline; read on hot paths to skip span
/// creation entirely when tracing is off.
static TRACING_ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] enabled OpenTelemetry trace export in this process.
pub fn tracing_enabled() -> bool {
    TRACING_ENABLED.load(Ordering::Relaxed)
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}` (expected text or json)"
            )),
        }
    }
}

/// Telemetry settings that are not covered by standard environment variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// Filter used when `RUST_LOG` is unset.
    pub default_log_filter: String,
    /// Ratio of new traces sampled by the default parent-based sampler when
    /// neither `OTEL_TRACES_SAMPLER` nor `OTEL_TRACES_SAMPLER_ARG` is set.
    /// Spans are enqueued without blocking, so 1.0 is safe for throughput; lower it
    /// to reduce collector load on busy streams.
    pub trace_sample_ratio: f64,
    /// Span links kept per span when `OTEL_SPAN_LINK_COUNT_LIMIT` is unset. The
    /// SDK's default (128) is below a consumer's batch size, and a batch span
    /// links to every sampled record of the batch, so consumers raise it to
    /// their batch size.
    pub max_links_per_span: u32,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_format: LogFormat::Text,
            default_log_filter: "info".to_string(),
            trace_sample_ratio: 1.0,
            max_links_per_span: 128,
        }
    }
}

impl TelemetrySettings {
    pub fn with_log_format(log_format: LogFormat) -> Self {
        TelemetrySettings {
            log_format,
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInitialised(String),
    #[error("invalid log filter: {0}")]
    Filter(String),
}

/// Keeps the trace pipeline alive; flushes and shuts it down on drop.
#[must_use = "dropping the guard shuts the trace exporter down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("tracing_enabled", &self.tracing_enabled())
            .finish()
    }
}

impl TelemetryGuard {
    /// A guard with tracing disabled (for tests and embedded use).
    pub fn disabled() -> Self {
        TelemetryGuard { provider: None }
    }

    /// Whether spans are exported. When false, callers skip span creation and
    /// header injection entirely, so the hot path pays nothing.
    pub fn tracing_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports everything buffered so far (blocking; call off the hot path).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let p = p.clone();
            run_blocking(move || {
                if let Err(e) = p.force_flush() {
                    tracing::warn!(error = %e, "flushing traces failed");
                }
            });
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            TRACING_ENABLED.store(false, Ordering::Relaxed);
            run_blocking(move || {
                if let Err(e) = p.shutdown() {
                    tracing::warn!(error = %e, "shutting the trace exporter down failed");
                }
            });
        }
    }
}

/// The SDK's flush/shutdown block on a reply from the export task, which runs on
/// the tokio runtime. On a multi-threaded runtime we step out of the worker so
/// the task can run; on a current-thread runtime blocking would deadlock, so we
/// skip it (spans still buffered there are lost, which is logged).
fn run_blocking(f: impl FnOnce()) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => match h.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
            _ => tracing::warn!("trace flush skipped: current-thread runtime"),
        },
        Err(_) => f(),
    }
}

/// Is tracing switched on by the environment? Returns the OTLP protocol to use.
fn otlp_protocol_from_env() -> Option<Protocol> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none")) {
        return None;
    }
    let endpoint =
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    Some(match protocol.as_deref().map(str::trim) {
        Some("grpc") => Protocol::Grpc,
        Some(_) => Protocol::HttpBinary,
        // Unset: the spec's default is http/protobuf, but an endpoint on the
        // well-known gRPC port is unambiguous, and Jaeger users write :4317.
        None if endpoint.trim_end_matches('/').ends_with(":4317") => Protocol::Grpc,
        None => Protocol::HttpBinary,
    })
}

fn build_provider(
    service_name: &str,
    settings: &TelemetrySettings,
    protocol: Protocol,
) -> Result<SdkTracerProvider, String> {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

    if tokio::runtime::Handle::try_current().is_err() {
        return Err("no tokio runtime to run the batch exporter".into());
    }
    let exporter = match protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        _ => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build(),
    }
    .map_err(|e| e.to_string())?;

    let processor = BatchSpanProcessor::builder(
        WarnOnFailure::new(exporter),
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();

    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_string());
    }
    let mut builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build());
    if std::env::var_os("OTEL_SPAN_LINK_COUNT_LIMIT").is_none() {
        builder = builder.with_max_links_per_span(settings.max_links_per_span);
    }
    if std::env::var_os("OTEL_TRACES_SAMPLER").is_none() {
        // The SDK reads OTEL_TRACES_SAMPLER itself; without it, ours is the default.
        let ratio = std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(settings.trace_sample_ratio)
            .clamp(0.0, 1.0);
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))));
    }
    Ok(builder.build())
}

/// Wraps the OTLP exporter so that an unreachable collector costs a rate-limited
/// warning (the first failure, then at most one a minute) instead of an error
/// line per batch. The failed batch is dropped either way; the hot path never
/// waits for the exporter.
#[derive(Debug)]
struct WarnOnFailure<E> {
    inner: E,
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
    failed_batches: std::sync::atomic::AtomicU64,
}

impl<E> WarnOnFailure<E> {
    fn new(inner: E) -> Self {
        WarnOnFailure {
            inner,
            last_warning: std::sync::Mutex::new(None),
            failed_batches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn note_failure(&self, error: &opentelemetry_sdk::error::OTelSdkError, spans: usize) {
        let failed = self.failed_batches.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60));
        if due {
            *last = Some(std::time::Instant::now());
            tracing::warn!(
                error = %error,
                dropped_spans = spans,
                failed_batches_total = failed,
                "trace export failed (is the OTLP collector up?); spans are dropped, processing continues"
            );
        }
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for WarnOnFailure<E>
{
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let spans = batch.len();
        if let Err(e) = self.inner.export(batch).await {
            self.note_failure(&e, spans);
        }
        Ok(())
    }

    fn shutdown_with_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Installs the global `tracing` subscriber and, when configured, the OTLP
/// trace pipeline and the W3C trace-context propagator. Call once, early in
/// `main`, from inside the tokio runtime.
pub fn init(
    service_name: &str,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v).map_err(|e| TelemetryError::Filter(e.to_string()))?,
        _ => EnvFilter::try_new(format!(
            "{},h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn",
            settings.default_log_filter
        ))
        .map_err(|e| TelemetryError::Filter(e.to_string()))?,
    };

    let mut startup_warning = None;
    let provider = match otlp_protocol_from_env() {
        None => None,
        Some(protocol) => match build_provider(service_name, settings, protocol) {
            Ok(p) => Some(p),
            Err(e) => {
                startup_warning = Some(e);
                None
            }
        },
    };

    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.to_string())));
    let fmt_layer = fmt_layer(settings.log_format, std::io::stderr);

    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(fmt_layer)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;

    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACING_ENABLED.store(true, Ordering::Relaxed);
        tracing::info!(service = service_name, "OpenTelemetry trace export enabled");
    }
    if let Some(e) = startup_warning {
        tracing::warn!(error = %e, "OpenTelemetry trace export disabled");
    }
    Ok(TelemetryGuard { provider })
}

/// The log-line layer for `format`, writing to `writer`. JSON needs JSON span
/// field storage as well as the JSON event format.
fn fmt_layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => layer.event_format(TraceIdFormat::new(format)).boxed(),
        LogFormat::Json => layer
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(TraceIdFormat::new(format))
            .boxed(),
    }
}

/// Wraps tracing-subscriber's text or JSON formatter and adds the OpenTelemetry
/// `trace_id`/`span_id` of the current span to the line.
struct TraceIdFormat {
    json: bool,
    text: tracing_subscriber::fmt::format::Format,
    json_fmt: tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
}

impl TraceIdFormat {
    fn new(format: LogFormat) -> Self {
        TraceIdFormat {
            json: format == LogFormat::Json,
            text: tracing_subscriber::fmt::format().with_ansi(false),
            json_fmt: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for TraceIdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx.lookup_current().and_then(|span| {
            let ext = span.extensions();
            let data = ext.get::<tracing_opentelemetry::OtelData>()?;
            let trace_id = data.trace_id()?;
            let span_id = data.span_id()?;
            (trace_id != opentelemetry::trace::TraceId::INVALID).then_some((trace_id, span_id))
        });
        let Some((trace_id, span_id)) = ids else {
            return if self.json {
                self.json_fmt.format_event(ctx, writer, event)
            } else {
                self.text.format_event(ctx, writer, event)
            };
        };
        // Format into a buffer, then add the ids (log lines are not per record, so
        // the extra allocation is irrelevant).
        let mut buf = String::new();
        if self.json {
            self.json_fmt
                .format_event(ctx, Writer::new(&mut buf), event)?;
            let body = buf.trim_end();
            match body.strip_suffix('}') {
                Some(head) => writeln!(
                    writer,
                    "{head},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                ),
                None => writeln!(writer, "{body}"),
            }
        } else {
            self.text.format_event(ctx, Writer::new(&mut buf), event)?;
            writeln!(
                writer,
                "{} trace_id={trace_id} span_id={span_id}",
                buf.trim_end()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
        let s: TelemetrySettings = serde_json::from_str(r#"{"log_format":"json"}"#).unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.default_log_filter, "info");
    }

    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture_logs(format: LogFormat) -> String {
        let provider = SdkTracerProvider::builder().build();
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(fmt_layer(format, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("work", batch = 1);
            let _entered = span.enter();
            tracing::info!(records = 3, "inside a span");
        });
        let out = capture.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn log_lines_inside_spans_carry_trace_ids() {
        let text = capture_logs(LogFormat::Text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].contains("trace_id="), "{text}");
        assert!(lines[1].contains("inside a span"), "{text}");
        assert!(lines[1].contains("trace_id="), "{text}");
        assert!(lines[1].contains("span_id="), "{text}");

        let json = capture_logs(LogFormat::Json);
        let docs: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(docs.len(), 2, "{json}");
        assert!(docs[0].get("trace_id").is_none());
        let trace_id = docs[1]["trace_id"].as_str().expect("trace_id");
        assert_eq!(trace_id.len(), 32);
        assert_eq!(docs[1]["span_id"].as_str().map(str::len), Some(16));
        assert_eq!(docs[1]["records"], 3);
    }

    #[test]
    fn disabled_guard_reports_tracing_off() {
        let g = TelemetryGuard::disabled();
        assert!(!g.tracing_enabled());
        g.flush();
    }
}
