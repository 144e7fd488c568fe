//! An in-process OTLP trace receiver for the observability tests.
//!
//! The binaries under test export spans with the real `opentelemetry-otlp`
//! exporters; a test points `OTEL_EXPORTER_OTLP_ENDPOINT` at this receiver and
//! inspects what arrived. It is built on the official `opentelemetry-proto`
//! types, so what it accepts is exactly what a collector (or Jaeger) accepts:
//!
//! * gRPC: the generated `TraceService` served by tonic, on
//!   [`OtlpReceiver::grpc_endpoint`] (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`);
//! * HTTP/protobuf: `POST /v1/traces` on [`OtlpReceiver::http_endpoint`]
//!   (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`). The exporter appends
//!   `/v1/traces` to the endpoint itself.
//!
//! Both listen on 127.0.0.1 on free ports and write into one [`SpanStore`].
//! The servers stop when the receiver is dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// Largest export request accepted (the SDK's default batch is 512 spans,
/// far below this; a generous limit keeps a big batch from failing a test).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// An attribute value, flattened from OTLP's `AnyValue`.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Arrays, key-value lists and bytes, in debug form (not used by our spans).
    Other(String),
}

impl AttrValue {
    fn from_any(v: Option<&AnyValue>) -> AttrValue {
        match v.and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(Value::IntValue(i)) => AttrValue::Int(*i),
            Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(other) => AttrValue::Other(format!("{other:?}")),
            None => AttrValue::Other(String::new()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer: an int attribute, or a string holding one
    /// (semantic conventions make some ids strings, e.g. the partition id).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            AttrValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Other(s) => f.write_str(s),
        }
    }
}

/// Attributes as a sorted map (the last value wins on a repeated key).
pub fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), AttrValue::from_any(kv.value.as_ref())))
        .collect()
}

/// Lower-case hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One span link, with hex ids.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLink {
    pub trace_id: String,
    pub span_id: String,
    pub flags: u32,
    pub attributes: BTreeMap<String, AttrValue>,
}

/// One received span with the resource and scope it was exported under.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// Resource attribute `service.name` (empty if missing).
    pub service: String,
    /// Instrumentation scope name.
    pub scope: String,
    /// Which endpoint it came through: `"grpc"` or `"http"`.
    pub transport: &'static str,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Parent span id in hex, `None` for a root span.
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex(&self.span.parent_span_id))
    }

    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    pub fn attributes(&self) -> BTreeMap<String, AttrValue> {
        attributes(&self.span.attributes)
    }

    pub fn attr(&self, key: &str) -> Option<AttrValue> {
        self.span
            .attributes
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .map(|kv| AttrValue::from_any(kv.value.as_ref()))
    }

    pub fn links(&self) -> Vec<ReceivedLink> {
        self.span
            .links
            .iter()
            .map(|l| ReceivedLink {
                trace_id: hex(&l.trace_id),
                span_id: hex(&l.span_id),
                flags: l.flags,
                attributes: attributes(&l.attributes),
            })
            .collect()
    }

    /// Whether this span links to the span context (`trace_id`, `span_id`), hex.
    pub fn links_to(&self, trace_id: &str, span_id: &str) -> bool {
        self.span
            .links
            .iter()
            .any(|l| hex(&l.trace_id) == trace_id && hex(&l.span_id) == span_id)
    }

    /// Duration in seconds (0 if the timestamps are inconsistent).
    pub fn duration_secs(&self) -> f64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano) as f64
            / 1e9
    }
}

/// Everything received so far, shared by the servers and the test.
#[derive(Clone, Default)]
pub struct SpanStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Default)]
struct StoreInner {
    requests: usize,
    spans: Vec<ReceivedSpan>,
    last_change: Option<Instant>,
}

impl SpanStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flattens one export request into the store.
    pub fn record(&self, req: ExportTraceServiceRequest, transport: &'static str) {
        let mut flat = Vec::new();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| attributes(&r.attributes).remove("service.name"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            for ss in rs.scope_spans {
                let scope = ss
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for span in ss.spans {
                    flat.push(ReceivedSpan {
                        service: service.clone(),
                        scope: scope.clone(),
                        transport,
                        span,
                    });
                }
            }
        }
        let mut g = self.lock();
        g.requests += 1;
        g.spans.extend(flat);
        g.last_change = Some(Instant::now());
    }

    /// Number of export requests received (empty ones included).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Number of spans received.
    pub fn len(&self) -> usize {
        self.lock().spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every span received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.lock()
            .spans
            .iter()
            .filter(|s| s.span.name == name)
            .cloned()
            .collect()
    }

    /// Spans of service `service` (resource `service.name`).
    pub fn spans_of(&self, service: &str) -> Vec<ReceivedSpan> {
        self.lock()
            .spans
            .iter()
            .filter(|s| s.service == service)
            .cloned()
            .collect()
    }

    /// The span with this (hex) span id.
    pub fn find(&self, trace_id: &str, span_id: &str) -> Option<ReceivedSpan> {
        self.lock()
            .spans
            .iter()
            .find(|s| s.trace_id() == trace_id && s.span_id() == span_id)
            .cloned()
    }

    /// Distinct `service.name`s seen.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .spans
            .iter()
            .map(|s| s.service.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Span count per (service, name), for failure messages.
    pub fn summary(&self) -> BTreeMap<(String, String), usize> {
        let mut m = BTreeMap::new();
        for s in &self.lock().spans {
            *m.entry((s.service.clone(), s.span.name.clone()))
                .or_insert(0) += 1;
        }
        m
    }

    /// Waits until `done(&spans)` holds or `timeout` passes; returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lock().spans) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nothing new arrived for `idle` (or `timeout` passes).
    pub async fn wait_idle(&self, idle: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let quiet = match self.lock().last_change {
                Some(t) => t.elapsed() >= idle,
                None => true,
            };
            if quiet {
                tokio::time::sleep(idle).await;
                let still = self.lock().last_change.is_none_or(|t| t.elapsed() >= idle);
                if still {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The gRPC trace service: stores every request, answers full success.
struct GrpcService {
    store: SpanStore,
}

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store.record(request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// `POST /v1/traces` with an `application/x-protobuf` body.
async fn http_export(
    axum::extract::State(store): axum::extract::State<SpanStore>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse as _;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this test receiver accepts application/x-protobuf only",
        )
            .into_response();
    }
    if headers.contains_key(header::CONTENT_ENCODING) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this test receiver does not decompress",
        )
            .into_response();
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            store.record(req, "http");
            let resp = ExportTraceServiceResponse {
                partial_success: None,
            };
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                resp.encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")).into_response(),
    }
}

/// The running receiver. Servers stop on drop.
pub struct OtlpReceiver {
    store: SpanStore,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts both endpoints on free loopback ports. Call inside a tokio runtime.
    pub async fn start() -> anyhow::Result<OtlpReceiver> {
        let store = SpanStore::default();
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the OTLP gRPC port")?;
        let grpc_addr = grpc_listener.local_addr()?;
        let svc = TraceServiceServer::new(GrpcService {
            store: store.clone(),
        })
        .max_decoding_message_size(MAX_REQUEST_BYTES);
        let incoming = tonic::transport::server::TcpIncoming::from(grpc_listener);
        let grpc = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stopped(rx.clone()));
        let grpc_task = tokio::spawn(async move {
            if let Err(e) = grpc.await {
                eprintln!("OTLP gRPC test receiver stopped: {e}");
            }
        });

        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the OTLP HTTP port")?;
        let http_addr = http_listener.local_addr()?;
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(store.clone());
        let http = axum::serve(http_listener, app).with_graceful_shutdown(stopped(rx));
        let http_task = tokio::spawn(async move {
            if let Err(e) = http.await {
                eprintln!("OTLP HTTP test receiver stopped: {e}");
            }
        });

        Ok(OtlpReceiver {
            store,
            grpc_addr,
            http_addr,
            shutdown,
            tasks: vec![grpc_task, http_task],
        })
    }

    /// `http://127.0.0.1:<port>` of the gRPC endpoint.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<port>` of the HTTP/protobuf endpoint (without `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `OTEL_*` variables that point an exporter at this receiver.
    /// `protocol` is `"grpc"` or `"http/protobuf"`.
    pub fn otel_env(&self, protocol: &str) -> Vec<(String, String)> {
        let endpoint = if protocol == "grpc" {
            self.grpc_endpoint()
        } else {
            self.http_endpoint()
        };
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), protocol.into()),
            // Export promptly; the default 5 s delay only slows the test down.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ]
    }

    pub fn store(&self) -> &SpanStore {
        &self.store
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn request(service: &str, name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: name.into(),
                        kind: SpanKind::Consumer as i32,
                        attributes: vec![
                            kv("messaging.system", Value::StringValue("kafka".into())),
                            kv("messaging.batch.message_count", Value::IntValue(3)),
                        ],
                        links: vec![span::Link {
                            trace_id: vec![3; 16],
                            span_id: vec![4; 8],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn grpc_and_http_exports_land_in_the_store() {
        let rx = OtlpReceiver::start().await.unwrap();
        let mut client = TraceServiceClient::connect(rx.grpc_endpoint())
            .await
            .unwrap();
        client.export(request("svc-a", "op a")).await.unwrap();

        // A raw HTTP/1.1 POST, as the HTTP exporter sends it.
        let body = request("svc-b", "op b").encode_to_vec();
        let addr = rx.http_addr;
        let status = tokio::task::spawn_blocking(move || {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            s.write_all(&body).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");

        let store = rx.store();
        assert_eq!(store.requests(), 2);
        assert_eq!(store.services(), vec!["svc-a", "svc-b"]);
        let a = &store.spans_named("op a")[0];
        assert_eq!(a.transport, "grpc");
        assert_eq!(a.kind(), SpanKind::Consumer);
        assert_eq!(a.trace_id(), "01".repeat(16));
        assert_eq!(a.parent_span_id(), None);
        assert_eq!(
            a.attr("messaging.system")
                .and_then(|v| v.as_str().map(String::from)),
            Some("kafka".into())
        );
        assert_eq!(
            a.attributes()["messaging.batch.message_count"].as_i64(),
            Some(3)
        );
        assert!(a.links_to(&"03".repeat(16), &"04".repeat(8)));
        assert_eq!(store.spans_named("op b")[0].transport, "http");
    }
}
