//! ids-producer: dataset (or synthetic traffic) -> Avro `FlowRecord` -> Kafka.
//!
//! [`run`] is the whole program minus argument parsing, so the binary, the demo
//! and the tests all drive the same code.
//!
//! Delivery: an idempotent librdkafka producer (`enable.idempotence=true`:
//! no duplicates or reordering from internal retries). Every delivery report is
//! counted; [`ProducerSummary::is_success`] is false if any record failed or was
//! still unconfirmed when the producer stopped, and the binary then exits
//! non-zero.
//!
//! Tracing: when OpenTelemetry export is on, each record gets a `send flows`
//! span (kind PRODUCER, messaging semantic-convention attributes) and, if that
//! span is sampled, W3C `traceparent`/`tracestate` headers. When it is off, no
//! span is created and no header is allocated.

pub mod config;
pub mod metrics;
mod source;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ids_runtime::ConfigError;
use ids_schemas::{FlowCodec, FlowRecord, Framing};
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::KeyValue;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

pub use config::{FramingKind, KeyMode, Mode, ProducerConfig};
use source::Source;

/// Why the producer could not run (per-record delivery failures are not errors
/// here: they are counted in [`ProducerSummary`]).
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("model artifact: {0}")]
    Model(String),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {topic:?}: {message}")]
    Topic { topic: String, message: String },
    #[error("encoding a flow record: {0}")]
    Encode(String),
    #[error("producer task failed: {0}")]
    Task(String),
}

impl ProducerError {
    /// Process exit code: 2 for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProducerError::Config(_) => ConfigError::EXIT_CODE,
            _ => 1,
        }
    }
}

/// Live counters, shared with the delivery callback (and the demo's display).
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records handed to librdkafka.
    pub sent: AtomicU64,
    /// Records the broker acknowledged.
    pub acknowledged: AtomicU64,
    /// Records whose delivery failed.
    pub failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ProducerStats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The first delivery error seen, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|g| g.clone())
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProducerSummary {
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// Sent but neither acknowledged nor failed when the producer stopped
    /// (only after an interrupted flush).
    pub unconfirmed: u64,
    /// Dataset rows that could not be parsed (skipped, logged, counted).
    pub rejected_rows: u64,
    pub elapsed_secs: f64,
    /// Acknowledged records per second over the run.
    pub throughput: f64,
    pub first_error: Option<String>,
}

impl ProducerSummary {
    /// True when every sent record was acknowledged.
    pub fn is_success(&self) -> bool {
        self.failed == 0 && self.unconfirmed == 0
    }
}

impl std::fmt::Display for ProducerSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} / acknowledged {} / failed {}",
            self.sent, self.acknowledged, self.failed
        )?;
        if self.unconfirmed > 0 {
            write!(f, " / unconfirmed {}", self.unconfirmed)?;
        }
        if self.rejected_rows > 0 {
            write!(f, " / rejected rows {}", self.rejected_rows)?;
        }
        write!(
            f,
            " in {:.1} s ({:.0} flows/s)",
            self.elapsed_secs, self.throughput
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "; first error: {e}")?;
        }
        Ok(())
    }
}

struct DeliveryCounter {
    stats: Arc<ProducerStats>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.stats.first_error.lock() {
                    if first.is_none() {
                        tracing::error!(error = %e, "flow delivery failed");
                        *first = Some(e.to_string());
                    }
                }
            }
        }
    }
}

/// Paces sends to a target rate. Each record is due `1/rate` after the
/// previous one's due time (not after it was actually sent), so short stalls
/// are caught up and the long-run rate holds; after a stall longer than one
/// second the schedule restarts instead of bursting.
struct Pacer {
    interval: Option<Duration>,
    next_due: Instant,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        Pacer {
            interval,
            next_due: Instant::now(),
        }
    }

    /// Waits until the next record is due (cancellable).
    fn wait(&mut self, cancel: &CancellationToken) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if now > self.next_due + Duration::from_secs(1) {
            self.next_due = now;
        }
        // Sleeping per record is too coarse at high rates: only sleep when
        // ahead by more than a millisecond.
        while self.next_due > Instant::now() + Duration::from_millis(1) {
            if cancel.is_cancelled() {
                return;
            }
            let ahead = self.next_due.saturating_duration_since(Instant::now());
            std::thread::sleep(ahead.min(Duration::from_millis(100)));
        }
        self.next_due += interval;
    }
}

/// Kafka record key of a flow under `mode`, written into `buf` when it is
/// the 5-tuple hash. Public so that a benchmark can key the same records the
/// same way without running the producer.
pub fn record_key<'a>(
    mode: KeyMode,
    rec: &'a FlowRecord,
    buf: &'a mut [u8; 16],
) -> Option<&'a [u8]> {
    match mode {
        KeyMode::None => None,
        KeyMode::FlowId => rec.flow_id.as_deref().map(str::as_bytes),
        KeyMode::FiveTuple => match five_tuple_hash(rec) {
            Some(h) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
                }
                Some(&buf[..])
            }
            None => rec.flow_id.as_deref().map(str::as_bytes),
        },
    }
}

/// FNV-1a 64 of the 5-tuple with the two endpoints in canonical order, so both
/// directions of a conversation get the same key (and partition). `None` when
/// the record has no addresses (NSL-KDD).
fn five_tuple_hash(rec: &FlowRecord) -> Option<u64> {
    let (src_ip, dst_ip) = (rec.src_ip.as_deref()?, rec.dst_ip.as_deref()?);
    let a = (src_ip, rec.src_port.unwrap_or(0));
    let b = (dst_ip, rec.dst_port.unwrap_or(0));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff; // field separator
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(lo.0.as_bytes());
    eat(&lo.1.to_le_bytes());
    eat(hi.0.as_bytes());
    eat(&hi.1.to_le_bytes());
    eat(rec.transport.as_deref().unwrap_or("").as_bytes());
    Some(h)
}

/// Writes W3C trace-context fields into Kafka headers.
struct HeaderInjector(Option<OwnedHeaders>);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            // An empty `tracestate` carries nothing; skip the header.
            return;
        }
        let headers = self
            .0
            .take()
            .unwrap_or_else(|| OwnedHeaders::new_with_capacity(2));
        self.0 = Some(headers.insert(Header {
            key,
            value: Some(value.as_str()),
        }));
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn open_source(cfg: &ProducerConfig) -> Result<Source, ProducerError> {
    if cfg.is_synthetic() {
        return Ok(Source::Synthetic(Box::new(source::SyntheticSource::new(
            &cfg.model_path,
            cfg.seed,
        )?)));
    }
    let path = std::path::PathBuf::from(cfg.dataset.as_deref().unwrap_or_default().trim());
    Ok(match cfg.mode {
        Mode::Sequential => {
            Source::Stream(Box::new(source::StreamSource::open(&path, cfg.r#loop)?))
        }
        Mode::Random => Source::Memory(Box::new(source::MemorySource::load(
            &path, cfg.r#loop, cfg.seed,
        )?)),
    })
}

/// Runs the producer until the dataset (or `limit`) is exhausted or `shutdown`
/// is cancelled, then flushes and returns the delivery accounting.
pub async fn run(
    cfg: ProducerConfig,
    shutdown: CancellationToken,
) -> Result<ProducerSummary, ProducerError> {
    run_with_stats(cfg, shutdown, ProducerStats::new()).await
}

/// As [`run`], with caller-owned live counters (the demo displays them).
pub async fn run_with_stats(
    cfg: ProducerConfig,
    shutdown: CancellationToken,
    stats: Arc<ProducerStats>,
) -> Result<ProducerSummary, ProducerError> {
    cfg.validate()?;
    let stop_http = CancellationToken::new();
    let http = match cfg.http_addr.as_deref().map(str::trim) {
        Some(addr) if !addr.is_empty() => Some(
            metrics::serve(
                addr,
                stats.clone(),
                cfg.flows_topic.clone(),
                stop_http.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    // The send loop is CPU-bound and paces itself with blocking sleeps: keep it
    // off the async reactor.
    let result = tokio::task::spawn_blocking(move || run_blocking(&cfg, &shutdown, stats))
        .await
        .map_err(|e| ProducerError::Task(e.to_string()));
    stop_http.cancel();
    if let Some(h) = http {
        let _ = h.await;
    }
    result?
}

fn run_blocking(
    cfg: &ProducerConfig,
    shutdown: &CancellationToken,
    stats: Arc<ProducerStats>,
) -> Result<ProducerSummary, ProducerError> {
    let client_config = cfg
        .kafka_settings()
        .client_config(&[("enable.idempotence", "true".to_string())])?;
    // A BaseProducer polled from this thread, not a ThreadedProducer: with
    // the latter, librdkafka's idempotent producer-id request often waited
    // for its 500 ms retry timer after the broker connection was up (a
    // 0.5 s stall at start-up in most runs); polled from the send loop it
    // went out as soon as the connection was up.
    let producer: BaseProducer<DeliveryCounter> =
        client_config.create_with_context(DeliveryCounter {
            stats: stats.clone(),
        })?;

    check_topic(&producer, &cfg.flows_topic)?;
    let source = open_source(cfg)?;
    tracing::info!(
        source = %source.describe(),
        topic = %cfg.flows_topic,
        rate = cfg.rate,
        limit = ?cfg.limit,
        "producing flows"
    );

    let codec = FlowCodec::new();
    let framing: Framing = cfg.framing();
    let topic = cfg.flows_topic.as_str();
    let tracing_on = ids_runtime::telemetry::tracing_enabled();
    let tracer = opentelemetry::global::tracer("ids-producer");

    let progress = progress_bar(cfg, &source);
    let mut pacer = Pacer::new(cfg.rate);
    let paced = cfg.rate > 0.0;
    let mut value: Vec<u8> = Vec::with_capacity(1024);
    let mut key_buf = [0u8; 16];
    let limit = cfg.limit.unwrap_or(u64::MAX);
    let mut source = source::ReadAhead::spawn(source, limit)?;
    let started = Instant::now();
    let mut sent: u64 = 0;

    'records: while sent < limit && !shutdown.is_cancelled() {
        let Some(rec) = source.next()? else {
            break;
        };
        // Serves delivery reports (the counters) and librdkafka's events.
        if paced || sent.is_multiple_of(64) {
            producer.poll(Duration::ZERO);
        }
        pacer.wait(shutdown);
        value.clear();
        codec
            .encode_framed(rec, framing, &mut value)
            .map_err(|e| ProducerError::Encode(e.to_string()))?;
        let key = record_key(cfg.key, rec, &mut key_buf);

        let mut span = None;
        let mut headers = None;
        if tracing_on {
            let mut attrs = Vec::with_capacity(7);
            attrs.push(KeyValue::new("messaging.system", "kafka"));
            attrs.push(KeyValue::new("messaging.operation.name", "send"));
            attrs.push(KeyValue::new("messaging.operation.type", "send"));
            attrs.push(KeyValue::new(
                "messaging.destination.name",
                topic.to_string(),
            ));
            attrs.push(KeyValue::new(
                "messaging.message.body.size",
                value.len() as i64,
            ));
            if let Some(id) = &rec.flow_id {
                // Lets Jaeger users search a flow's trace by its id.
                attrs.push(KeyValue::new("ids.flow.id", id.clone()));
            }
            if let Some(k) = key {
                attrs.push(KeyValue::new(
                    "messaging.kafka.message.key",
                    String::from_utf8_lossy(k).into_owned(),
                ));
            }
            let s = tracer
                .span_builder(format!("send {topic}"))
                .with_kind(SpanKind::Producer)
                .with_attributes(attrs)
                .start(&tracer);
            if s.span_context().is_sampled() {
                let cx = opentelemetry::Context::current()
                    .with_remote_span_context(s.span_context().clone());
                let mut inj = HeaderInjector(None);
                // The global propagator is W3C TraceContextPropagator (set by telemetry::init).
                opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut inj));
                headers = inj.0;
            }
            span = Some(s);
        }

        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .payload(value.as_slice())
            .timestamp(now_millis());
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // librdkafka's queue is full: wait for deliveries to drain it.
                    record = r;
                    if shutdown.is_cancelled() {
                        if let Some(mut s) = span {
                            s.set_status(opentelemetry::trace::Status::error("cancelled"));
                            s.end();
                        }
                        break 'records;
                    }
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    if let Some(mut s) = span.take() {
                        s.set_attribute(KeyValue::new("error.type", e.to_string()));
                        s.set_status(opentelemetry::trace::Status::error(e.to_string()));
                        s.end();
                    }
                    return Err(ProducerError::Kafka(e));
                }
            }
        }
        if let Some(mut s) = span {
            s.end();
        }
        sent += 1;
        stats.sent.fetch_add(1, Ordering::Relaxed);
        if sent.is_multiple_of(256) {
            if let Some(pb) = &progress {
                pb.set_position(sent);
            }
        }
    }

    // Wait for the outstanding deliveries. On a normal end we wait as long as
    // librdkafka does (message.timeout.ms); once shutdown is requested we give
    // it a short grace period and report what is still unconfirmed.
    // Not `flush(timeout)` in the loop: rust-rdkafka's flush waits in slices of
    // up to 100 ms, which added up to 100 ms to every run. Nor a timed `poll`,
    // which busy-loops through its last sub-millisecond in rust-rdkafka 0.39.
    // `send_lingering` sends what waits out linger.ms now (a zero-timeout
    // flush usually does not; see its docs); then delivery reports are served
    // without blocking, with a 1 ms sleep in between.
    ids_runtime::acks::send_lingering(&producer);
    let mut grace_deadline: Option<Instant> = None;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            break;
        }
        if shutdown.is_cancelled() {
            let deadline =
                *grace_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
            if Instant::now() >= deadline {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
        if let Some(pb) = &progress {
            pb.set_position(sent);
        }
    }
    if let Some(pb) = progress {
        pb.set_position(sent);
        pb.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acknowledged = stats.acknowledged.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    let summary = ProducerSummary {
        sent,
        acknowledged,
        failed,
        unconfirmed: sent.saturating_sub(acknowledged + failed),
        rejected_rows: source.finish(),
        elapsed_secs: elapsed,
        throughput: if elapsed > 0.0 {
            acknowledged as f64 / elapsed
        } else {
            0.0
        },
        first_error: stats.first_error(),
    };
    drop(producer);
    Ok(summary)
}

/// How long [`check_topic`] waits for the cluster's answer.
const TOPIC_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the cluster for the topic's metadata before the first record.
///
/// A missing topic is then one clear error at start-up instead of every
/// record failing with UnknownTopicOrPartition after `message.timeout.ms`
/// (the processor's deployments create topics; this producer does not).
/// It also brings the connection up before the clock starts.
fn check_topic(producer: &BaseProducer<DeliveryCounter>, topic: &str) -> Result<(), ProducerError> {
    let err = |message: String| ProducerError::Topic {
        topic: topic.to_string(),
        message,
    };
    let md = match producer
        .client()
        .fetch_metadata(Some(topic), TOPIC_CHECK_TIMEOUT)
    {
        Ok(md) => md,
        Err(e) => {
            // Unreachable for now: not fatal, librdkafka keeps trying and
            // fails each record after message.timeout.ms, which is counted.
            tracing::warn!(topic, error = %e, "could not read the topic's metadata; producing anyway");
            return Ok(());
        }
    };
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(err("not in the metadata response".into()));
    };
    match t.error().map(rdkafka::error::RDKafkaErrorCode::from) {
        None => {}
        Some(code @ rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition) => {
            return Err(err(format!("{code} (create it first; see the README)")));
        }
        // Transient (e.g. a leader election, or a topic the broker is
        // auto-creating): librdkafka retries on its own.
        Some(code) => tracing::warn!(topic, error = %code, "topic metadata not ready yet"),
    }
    Ok(())
}

fn progress_bar(cfg: &ProducerConfig, source: &Source) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if !cfg.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let len = match (cfg.limit, source.pass_len(), cfg.r#loop) {
        (Some(l), Some(p), false) => Some(l.min(p)),
        (Some(l), _, _) => Some(l),
        (None, Some(p), false) => Some(p),
        _ => None,
    };
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} flows ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {pos} flows ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: &str, sp: i32, dst: &str, dp: i32) -> FlowRecord {
        FlowRecord {
            flow_id: Some("f#1".into()),
            src_ip: Some(src.into()),
            src_port: Some(sp),
            dst_ip: Some(dst.into()),
            dst_port: Some(dp),
            transport: Some("tcp".into()),
            ..Default::default()
        }
    }

    #[test]
    fn five_tuple_key_is_direction_independent_and_distinct() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let fwd = rec("10.0.0.1", 1234, "10.0.0.2", 80);
        let rev = rec("10.0.0.2", 80, "10.0.0.1", 1234);
        let ka = record_key(KeyMode::FiveTuple, &fwd, &mut a)
            .unwrap()
            .to_vec();
        let kb = record_key(KeyMode::FiveTuple, &rev, &mut b)
            .unwrap()
            .to_vec();
        assert_eq!(ka, kb);
        assert_eq!(ka.len(), 16);
        let other = rec("10.0.0.1", 1235, "10.0.0.2", 80);
        assert_ne!(
            record_key(KeyMode::FiveTuple, &other, &mut a).unwrap(),
            &kb[..]
        );
    }

    #[test]
    fn key_modes_fall_back_and_can_be_off() {
        let mut buf = [0u8; 16];
        let nsl = FlowRecord {
            flow_id: Some("KDDTest+.txt#7".into()),
            ..Default::default()
        };
        assert_eq!(
            record_key(KeyMode::FiveTuple, &nsl, &mut buf),
            Some(&b"KDDTest+.txt#7"[..])
        );
        assert_eq!(
            record_key(KeyMode::FlowId, &nsl, &mut buf),
            Some(&b"KDDTest+.txt#7"[..])
        );
        assert_eq!(record_key(KeyMode::None, &nsl, &mut buf), None);
    }

    #[test]
    fn pacer_holds_the_rate() {
        let cancel = CancellationToken::new();
        let mut p = Pacer::new(2000.0);
        let t = Instant::now();
        for _ in 0..400 {
            p.wait(&cancel);
        }
        let secs = t.elapsed().as_secs_f64();
        // 400 records at 2000/s = 0.2 s (the first is due immediately).
        assert!((0.18..0.6).contains(&secs), "{secs}");
        let mut unlimited = Pacer::new(0.0);
        let t = Instant::now();
        for _ in 0..100_000 {
            unlimited.wait(&cancel);
        }
        assert!(t.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn summary_success_and_display() {
        let s = ProducerSummary {
            sent: 3,
            acknowledged: 3,
            failed: 0,
            unconfirmed: 0,
            rejected_rows: 0,
            elapsed_secs: 1.0,
            throughput: 3.0,
            first_error: None,
        };
        assert!(s.is_success());
        assert!(s
            .to_string()
            .starts_with("sent 3 / acknowledged 3 / failed 0"));
        let f = ProducerSummary { failed: 1, ..s };
        assert!(!f.is_success());
    }
}
