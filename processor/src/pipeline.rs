//! The poll → decode → classify → emit → acknowledge → commit loop.
//!
//! It runs on one dedicated thread (not on the async reactor) because almost
//! every librdkafka call it makes blocks: polling, waiting for delivery
//! acknowledgements, synchronous commits and the transaction calls. Rebalance
//! callbacks run on this same thread, inside `poll`, so they only ever see the
//! pipeline *between* batches: a batch is fully acknowledged and committed
//! before the next poll, and messages of partitions revoked while a batch was
//! being filled are dropped from it unprocessed.
//!
//! Failure rule: if any alert or dead letter of a batch is not acknowledged,
//! nothing of the batch is committed; the consumer is rewound to the batch's
//! first offsets and the batch is processed again (alerts are deterministic,
//! so a repeat is byte-identical). If the rewind itself is impossible the
//! consumer is recreated and resumes from the committed offsets. Nothing is
//! ever skipped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ids_models::inference::{Classifier, Verdict};
use ids_schemas::alert::{event_id, AlertEncoder, AlertFormat};
use ids_schemas::codec::FlowCodec;
use ids_schemas::headers;
use ids_schemas::trace_context::TraceParent;
use ids_schemas::FlowRecord;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::alert::{alert_fields, SourceRecord};
use crate::config::{AlertFormatOption, Delivery, ProcessorConfig};
use crate::kafka::{consumer_config, create_producer, ConsumerCtx, ProducerCtx, Shared};
use crate::otel;
use crate::ProcessorError;

type Consumer_ = BaseConsumer<ConsumerCtx>;
type Producer_ = BaseProducer<ProducerCtx>;

/// Longest single wait inside `poll`, so that shutdown is noticed quickly.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// Timeout of the blocking transaction calls.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the pipeline thread needs.
pub(crate) struct PipelineDeps {
    pub cfg: ProcessorConfig,
    pub classifier: Arc<Classifier>,
    pub shared: Arc<Shared>,
    pub shutdown: CancellationToken,
}

/// First and last offset of one partition within a batch.
#[derive(Debug, Clone, Copy)]
struct PartRange {
    partition: i32,
    first: i64,
    last: i64,
}

/// Displays a batch's offsets as `partition:first-last` pairs, for the
/// debug log line of each committed batch.
struct PartRanges<'a>(&'a [PartRange]);

impl std::fmt::Display for PartRanges<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}-{}", p.partition, p.first, p.last)?;
        }
        Ok(())
    }
}

/// Why the batch loop stopped.
enum LoopEnd {
    /// Shutdown requested; the last batch is committed.
    Shutdown,
    /// The consumer must be recreated (a rewind was impossible).
    RecreateConsumer,
}

/// Why a batch was not committed.
#[derive(Debug)]
enum BatchFailure {
    Kafka(String),
}

/// Runs the pipeline until `shutdown` is cancelled. Blocking: call it on a
/// dedicated thread.
pub(crate) fn run_blocking(deps: PipelineDeps) -> Result<(), ProcessorError> {
    let mut producer = create_producer(&deps.cfg)?;
    let mut state = BatchState::new(&deps);
    loop {
        let ctx = ConsumerCtx::new(
            deps.shared.clone(),
            deps.cfg.flows_topic.clone(),
            Duration::from_millis(deps.cfg.partition_handover_grace_ms),
            deps.cfg.fetch_start_rewind > 0,
        );
        let consumer: Consumer_ = consumer_config(&deps.cfg)?
            .create_with_context(ctx)
            .map_err(ProcessorError::Kafka)?;
        *lock(&consumer.context().txn.producer) = Some(producer.clone());
        consumer
            .subscribe(&[deps.cfg.flows_topic.as_str()])
            .map_err(ProcessorError::Kafka)?;
        info!(
            topic = %deps.cfg.flows_topic,
            group = %deps.cfg.group_id,
            delivery = deps.cfg.delivery.as_str(),
            "subscribed"
        );
        state.expected.clear();
        state.floors.clear();
        state.gap_rereads.clear();
        let end = batch_loop(&deps, &consumer, &mut producer, &mut state);
        close_consumer(&consumer, &deps.shared);
        match end {
            Ok(LoopEnd::Shutdown) => break,
            Ok(LoopEnd::RecreateConsumer) => {
                warn!("recreating the consumer to resume from the committed offsets");
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    // Everything is acknowledged already; this only drains internal queues.
    let _ = producer.flush(Duration::from_secs(10));
    info!("pipeline stopped");
    Ok(())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Leaves the group cleanly: the revoke callback commits anything pending,
/// then librdkafka sends LeaveGroup.
fn close_consumer(consumer: &Consumer_, shared: &Shared) {
    shared.stopping.store(true, Ordering::Release);
    if let Err(e) = consumer.close_queue() {
        warn!(error = %e, "closing the consumer failed");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !consumer.closed() && Instant::now() < deadline {
        let _ = consumer.poll(POLL_SLICE);
    }
    shared.metrics.assigned_partitions.set(0);
    shared.joined.store(false, Ordering::Release);
    info!("left the consumer group");
}

/// Reusable per-batch buffers: the steady state allocates nothing per record
/// beyond what librdkafka's API requires (headers, event id).
struct BatchState {
    codec: FlowCodec,
    encoder: AlertEncoder,
    records: Vec<FlowRecord>,
    verdicts: Vec<Result<Verdict, ids_models::features::FeatureError>>,
    /// Batch index of each decoded record.
    decoded: Vec<usize>,
    buf: Vec<u8>,
    parts: Vec<PartRange>,
    dlq_kinds: Vec<(&'static str, u64)>,
    verdict_counts: Vec<u64>,
    alerts: u64,
    revoked: Vec<i32>,
    revoked_scratch: Vec<i32>,
    /// Kafka timestamps (ms) of the batch's records, for the latency histogram.
    timestamps: Vec<i64>,
    backoff: Duration,
    last_poll_warning: Option<Instant>,
    /// Next offset expected per partition, to notice offsets the broker
    /// skipped. Cleared whenever fetch positions may have moved (rebalance,
    /// seek, new consumer).
    expected: Vec<(i32, i64)>,
    /// Gaps being re-read: (partition, expected offset, re-reads so far).
    gap_rereads: Vec<(i32, i64, u32)>,
    /// Per newly started partition, its committed offset when it was started
    /// `fetch_start_rewind` records before it: records below are skipped.
    floors: Vec<(i32, i64)>,
    last_gap_warning: Option<Instant>,
}

impl BatchState {
    fn new(deps: &PipelineDeps) -> Self {
        let n = deps.cfg.batch_size;
        BatchState {
            codec: FlowCodec::new(),
            encoder: AlertEncoder::new(match deps.cfg.alert_format {
                AlertFormatOption::Json => AlertFormat::Json,
                AlertFormatOption::Avro => AlertFormat::Avro,
            }),
            records: Vec::with_capacity(n),
            verdicts: Vec::with_capacity(n),
            decoded: Vec::with_capacity(n),
            buf: Vec::with_capacity(2048),
            parts: Vec::new(),
            floors: Vec::new(),
            dlq_kinds: Vec::new(),
            verdict_counts: vec![0; deps.classifier.class_names().len()],
            alerts: 0,
            revoked: Vec::new(),
            revoked_scratch: Vec::new(),
            timestamps: Vec::with_capacity(n),
            backoff: Duration::ZERO,
            last_poll_warning: None,
            expected: Vec::new(),
            gap_rereads: Vec::new(),
            last_gap_warning: None,
        }
    }

    fn reset(&mut self) {
        self.decoded.clear();
        self.parts.clear();
        self.dlq_kinds.clear();
        self.verdict_counts.iter_mut().for_each(|c| *c = 0);
        self.alerts = 0;
        self.timestamps.clear();
    }

    /// Forgets what is known about the partitions in `revoked` (their next
    /// expected offset, floor, gap re-reads): another member may move them.
    fn forget_partitions_revoked(&mut self) {
        let revoked = &self.revoked;
        self.expected.retain(|(p, _)| !revoked.contains(p));
        self.floors.retain(|(p, _)| !revoked.contains(p));
        self.gap_rereads.retain(|(p, _, _)| !revoked.contains(p));
    }

    fn track_offset(&mut self, partition: i32, offset: i64) {
        match self.parts.iter_mut().find(|p| p.partition == partition) {
            Some(p) => {
                p.first = p.first.min(offset);
                p.last = p.last.max(offset);
            }
            None => self.parts.push(PartRange {
                partition,
                first: offset,
                last: offset,
            }),
        }
    }

    fn count_dlq(&mut self, kind: &'static str) {
        match self.dlq_kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some(e) => e.1 += 1,
            None => self.dlq_kinds.push((kind, 1)),
        }
    }
}

fn batch_loop<'c>(
    deps: &PipelineDeps,
    consumer: &'c Consumer_,
    producer: &mut Arc<Producer_>,
    st: &mut BatchState,
) -> Result<LoopEnd, ProcessorError> {
    let cfg = &deps.cfg;
    let batch_timeout = Duration::from_millis(cfg.batch_timeout_ms);
    let mut batch: Vec<BorrowedMessage<'c>> = Vec::with_capacity(cfg.batch_size);
    loop {
        batch.clear();
        if deps.shutdown.is_cancelled() {
            return Ok(LoopEnd::Shutdown);
        }
        consumer.context().take_revoked(&mut st.revoked);
        st.forget_partitions_revoked();
        if !start_due_partitions(consumer, &cfg.flows_topic, cfg.fetch_start_rewind, st) {
            return Ok(LoopEnd::RecreateConsumer);
        }
        // Wait for the first record, then fill up to batch_size or batch_timeout.
        let Some(first) = poll_one(consumer, POLL_SLICE, st) else {
            continue;
        };
        let started = Instant::now();
        batch.push(first);
        let deadline = started + batch_timeout;
        // Past the deadline, records already fetched into the local queue are
        // still taken (a non-blocking poll) up to batch_size: a bigger batch
        // at no extra wait. batch_timeout_ms = 0 thus means "whatever has
        // arrived".
        while batch.len() < cfg.batch_size {
            let wait = whole_millis(deadline.saturating_duration_since(Instant::now()));
            match poll_one(consumer, wait.min(POLL_SLICE), st) {
                Some(m) => batch.push(m),
                None => {
                    if wait.is_zero() || deps.shutdown.is_cancelled() {
                        break;
                    }
                }
            }
        }
        consumer.context().take_revoked(&mut st.revoked);
        if !st.revoked.is_empty() {
            // Records of partitions revoked while the batch filled are not
            // ours to process: the new owner reads them from the committed
            // offset. If such a partition came straight back to us, our fetch
            // position is already past them: seek back so they are not skipped.
            st.parts.clear();
            for m in batch.iter() {
                if st.revoked.contains(&m.partition()) {
                    st.track_offset(m.partition(), m.offset());
                }
            }
            let before = batch.len();
            batch.retain(|m| !st.revoked.contains(&m.partition()));
            debug!(
                dropped = before - batch.len(),
                "dropped polled records of revoked partitions"
            );
            let dropped = st.parts.clone();
            st.forget_partitions_revoked();
            if !dropped.is_empty() && !rewind(consumer, &cfg.flows_topic, &dropped) {
                batch.clear();
                return Ok(LoopEnd::RecreateConsumer);
            }
            if batch.is_empty() {
                continue;
            }
        }

        if !check_offset_gaps(
            consumer,
            &cfg.flows_topic,
            cfg.offset_gap_rereads,
            cfg.fetch_start_rewind,
            st,
            &mut batch,
            &deps.shared.metrics,
        ) {
            batch.clear();
            return Ok(LoopEnd::RecreateConsumer);
        }
        if batch.is_empty() {
            continue;
        }
        match process_batch(deps, consumer, producer, st, &batch, started) {
            Ok(()) => {
                st.backoff = Duration::ZERO;
            }
            Err(BatchFailure::Kafka(reason)) => {
                deps.shared.metrics.delivery_failures.inc();
                st.backoff =
                    (st.backoff * 2).clamp(Duration::from_millis(250), Duration::from_secs(10));
                warn!(
                    %reason,
                    records = batch.len(),
                    retry_in_ms = st.backoff.as_millis() as u64,
                    "batch not acknowledged; rewinding to reprocess it"
                );
                if let Some((code, msg)) = producer.client().fatal_error() {
                    warn!(?code, %msg, "producer hit a fatal error; recreating it");
                    *producer = create_producer(cfg)?;
                    *lock(&consumer.context().txn.producer) = Some(producer.clone());
                }
                let parts = st.parts.clone();
                batch.clear();
                st.expected.clear();
                if !rewind(consumer, &cfg.flows_topic, &parts) {
                    return Ok(LoopEnd::RecreateConsumer);
                }
                sleep_unless_cancelled(st.backoff, &deps.shutdown);
            }
        }
    }
}

/// Checks the batch for offsets skipped between consecutive records of a
/// partition. Gaps are legitimate after compaction or around transaction
/// markers; anywhere else they are records the broker did not return, which
/// at-least-once processing could not see otherwise.
///
/// With `rereads` > 0, a gap is first re-read: the partition's records from
/// the gap on are dropped from the batch and the partition is sought back to
/// the missing offset (`rewind` records before it, skipping up to it, when
/// `fetch_start_rewind` is set), up to `rereads` times for the same gap. A broker that
/// answers a read before an earlier write of the partition is stored (Tansu
/// 0.6.0, whose in-memory engine raises the high watermark before it stores
/// the batch) returns the missing records on a later read. A gap that is
/// still there after that is real: it is counted and reported (rate-limited)
/// and processing goes on. False when a seek failed (the caller recreates the
/// consumer). No allocation once every partition has been seen.
fn check_offset_gaps(
    consumer: &Consumer_,
    topic: &str,
    rereads: u32,
    rewind: u32,
    st: &mut BatchState,
    batch: &mut Vec<BorrowedMessage<'_>>,
    metrics: &crate::metrics::Metrics,
) -> bool {
    // Partitions to re-read, and the offset from which their records are dropped.
    let mut cut: Vec<(i32, i64)> = Vec::new();
    for m in batch.iter() {
        let (partition, offset) = (m.partition(), m.offset());
        if cut.iter().any(|(p, _)| *p == partition) {
            continue;
        }
        let Some(i) = st.expected.iter().position(|(p, _)| *p == partition) else {
            st.expected.push((partition, offset + 1));
            continue;
        };
        let next = st.expected[i].1;
        if offset > next {
            let tries = st
                .gap_rereads
                .iter()
                .find(|(p, o, _)| *p == partition && *o == next)
                .map_or(0, |(_, _, n)| *n);
            if tries < rereads {
                st.gap_rereads.retain(|(p, _, _)| *p != partition);
                st.gap_rereads.push((partition, next, tries + 1));
                cut.push((partition, offset));
                metrics.offset_gap_rereads.inc();
                debug!(partition, expected = next, got = offset, reread = tries + 1, "offset gap in the flows topic: re-reading the partition from the expected offset");
                continue;
            }
            metrics.offset_gaps.inc_by((offset - next) as u64);
            let now = Instant::now();
            if st
                .last_gap_warning
                .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
            {
                st.last_gap_warning = Some(now);
                warn!(
                    partition,
                    expected = next,
                    got = offset,
                    "offset gap in the flows topic: records between were not returned by the broker (expected after compaction or transaction markers; repeats are suppressed for 10 s)"
                );
            }
        }
        st.expected[i].1 = offset + 1;
        st.gap_rereads.retain(|(p, _, _)| *p != partition);
    }
    if cut.is_empty() {
        return true;
    }
    batch.retain(|m| {
        !cut.iter()
            .any(|(p, from)| *p == m.partition() && m.offset() >= *from)
    });
    for (partition, _) in &cut {
        let Some(&(_, next)) = st.expected.iter().find(|(p, _)| p == partition) else {
            continue;
        };
        // The missing offset may sit inside a stored batch: start before it
        // (fetch_start_rewind) and skip up to it, as for a new partition.
        let from = match rewound_start(consumer, topic, *partition, next, rewind) {
            Ok(o) => o,
            Err(e) => {
                warn!(partition, error = %e, "reading the log start to re-read an offset gap failed");
                return false;
            }
        };
        st.floors.retain(|(p, _)| p != partition);
        if from < next {
            st.floors.push((*partition, next));
        }
        if let Err(e) = consumer.seek(
            topic,
            *partition,
            Offset::Offset(from),
            Duration::from_secs(10),
        ) {
            warn!(partition, offset = from, error = %e, "seek to re-read an offset gap failed");
            return false;
        }
    }
    true
}

fn sleep_unless_cancelled(d: Duration, token: &CancellationToken) {
    let end = Instant::now() + d;
    while Instant::now() < end && !token.is_cancelled() {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// `d` rounded up to whole milliseconds. rust-rdkafka 0.39 passes poll
/// timeouts to librdkafka in whole milliseconds and busy-loops through any
/// sub-millisecond rest; a whole-millisecond timeout blocks instead.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64)
}

/// One poll; errors are logged (rate-limited) and yield `None`.
fn poll_one<'c>(
    consumer: &'c Consumer_,
    timeout: Duration,
    st: &mut BatchState,
) -> Option<BorrowedMessage<'c>> {
    match consumer.poll(timeout) {
        None => None,
        Some(Ok(m)) => {
            // Below a rewound partition's committed offset: already processed.
            if let Some(i) = st.floors.iter().position(|(p, _)| *p == m.partition()) {
                if m.offset() < st.floors[i].1 {
                    return None;
                }
                st.floors.swap_remove(i);
            }
            Some(m)
        }
        Some(Err(e)) => {
            let now = Instant::now();
            if st
                .last_poll_warning
                .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
            {
                st.last_poll_warning = Some(now);
                warn!(error = %e, "consumer error (repeats are suppressed for 10 s)");
            }
            None
        }
    }
}

/// Starts the new partitions whose handover grace period is over: seeks each
/// to the group's committed offset as it is *now* (the previous owner may
/// have committed after the assignment) and resumes it. False when that
/// fails (the caller recreates the consumer).
fn start_due_partitions(
    consumer: &Consumer_,
    topic: &str,
    rewind: u32,
    st: &mut BatchState,
) -> bool {
    let mut due = std::mem::take(&mut st.revoked_scratch);
    consumer.context().take_due(Instant::now(), &mut due);
    if due.is_empty() {
        st.revoked_scratch = due;
        return true;
    }
    let Ok(assignment) = consumer.assignment() else {
        return false;
    };
    let mut tpl = TopicPartitionList::with_capacity(due.len());
    for p in &due {
        if assignment.find_partition(topic, *p).is_some() {
            tpl.add_partition(topic, *p);
        }
    }
    st.revoked_scratch = due;
    if tpl.count() == 0 {
        return true;
    }
    let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "reading committed offsets of new partitions failed");
            return false;
        }
    };
    for e in committed.elements() {
        if let Offset::Offset(committed) = e.offset() {
            st.floors.retain(|(p, _)| *p != e.partition());
            let o = match rewound_start(consumer, topic, e.partition(), committed, rewind) {
                Ok(o) => o,
                Err(err) => {
                    warn!(partition = e.partition(), error = %err, "reading the log start of a new partition failed");
                    return false;
                }
            };
            if o < committed {
                st.floors.push((e.partition(), committed));
            }
            if let Err(err) = consumer.seek(
                topic,
                e.partition(),
                Offset::Offset(o),
                Duration::from_secs(10),
            ) {
                warn!(partition = e.partition(), offset = o, error = %err, "seek of a new partition failed");
                return false;
            }
        }
    }
    if let Err(e) = consumer.resume(&tpl) {
        warn!(error = %e, "resuming new partitions failed");
        return false;
    }
    let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    st.expected.retain(|(p, _)| !parts.contains(p));
    st.gap_rereads.retain(|(p, _, _)| !parts.contains(p));
    // The first record is expected at the committed offset, so that a gap
    // right at the start is noticed (and re-read) like any other.
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            if parts.contains(&e.partition()) {
                st.expected.push((e.partition(), o));
            }
        }
    }
    info!(
        partitions = ?parts,
        rewound = ?st.floors,
        "new partitions started from the committed offsets (rewound: partition and the committed offset to skip to)"
    );
    true
}

/// Where to start reading `partition` to get the record at `offset` from a
/// broker that returns nothing of a stored batch when a fetch starts inside
/// it: `rewind` records earlier, never below the log start (a reset there
/// could jump to the end with auto.offset.reset=latest). `offset` itself when
/// `rewind` is 0.
fn rewound_start(
    consumer: &Consumer_,
    topic: &str,
    partition: i32,
    offset: i64,
    rewind: u32,
) -> Result<i64, KafkaError> {
    if rewind == 0 || offset <= 0 {
        return Ok(offset);
    }
    let (low, _) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    Ok((offset - i64::from(rewind)).max(low).min(offset))
}

/// Seeks every partition of the failed batch back to its first offset.
/// Returns false when a partition that is still assigned could not be
/// rewound (the caller then recreates the consumer).
fn rewind(consumer: &Consumer_, topic: &str, parts: &[PartRange]) -> bool {
    let Ok(assignment) = consumer.assignment() else {
        return false;
    };
    for p in parts {
        // A partition we no longer own is resumed by its new owner from the
        // committed offset; only ours need rewinding.
        if assignment.find_partition(topic, p.partition).is_none() {
            continue;
        }
        if let Err(e) = consumer.seek(
            topic,
            p.partition,
            Offset::Offset(p.first),
            Duration::from_secs(10),
        ) {
            warn!(partition = p.partition, offset = p.first, error = %e, "seek failed");
            return false;
        }
    }
    true
}

/// Decodes, classifies and emits one batch, waits for every acknowledgement
/// and commits it (or commits the transaction).
fn process_batch(
    deps: &PipelineDeps,
    consumer: &Consumer_,
    producer: &Arc<Producer_>,
    st: &mut BatchState,
    batch: &[BorrowedMessage<'_>],
    started: Instant,
) -> Result<(), BatchFailure> {
    let cfg = &deps.cfg;
    let classifier = &*deps.classifier;
    let metrics = &deps.shared.metrics;
    st.reset();
    producer.context().reset();
    let eos = cfg.delivery == Delivery::ExactlyOnce;

    let batch_span = info_span!(
        "process flows",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.name = "process",
        messaging.operation.type = "process",
        messaging.destination.name = %cfg.flows_topic,
        messaging.consumer.group.name = %cfg.group_id,
        messaging.batch.message_count = batch.len(),
        ids.model.id = %classifier.model_id(),
        error.type = tracing::field::Empty,
    );
    let _entered = batch_span.enter();
    let tracing_on = otel::otel_active(&batch_span);

    if eos {
        if let Err(e) = producer.begin_transaction() {
            return Err(BatchFailure::Kafka(format!("begin_transaction: {e}")));
        }
        consumer.context().txn.open.store(true, Ordering::Release);
    }

    // Decode.
    while st.records.len() < batch.len() {
        st.records.push(FlowRecord::default());
    }
    let mut send_error: Option<KafkaError> = None;
    for (i, m) in batch.iter().enumerate() {
        st.track_offset(m.partition(), m.offset());
        if let Some(ts) = m.timestamp().to_millis() {
            st.timestamps.push(ts);
        }
        if tracing_on {
            if let Some(tp) = incoming_traceparent(m) {
                if tp.sampled() {
                    otel::link_message(&batch_span, &tp, m);
                }
            }
        }
        let k = st.decoded.len();
        let res = match m.payload() {
            Some(bytes) => st.codec.decode_into(bytes, &mut st.records[k]),
            None => Err(ids_schemas::codec::DecodeError::NotAvro { first: None }),
        };
        match res {
            Ok(()) => st.decoded.push(i),
            Err(e) => {
                let kind = e.kind();
                st.count_dlq(kind);
                if let Err(e) = send_dlq(producer, &cfg.dlq_topic, m, kind, &e.to_string()) {
                    send_error.get_or_insert(e);
                }
            }
        }
    }

    // Classify.
    let n = st.decoded.len();
    {
        let _s =
            info_span!("classify", ids.model.id = %classifier.model_id(), records = n).entered();
        classifier.classify_batch(&st.records[..n], &mut st.verdicts);
    }

    // Emit.
    {
        let _s = info_span!("emit", messaging.destination.name = %cfg.alerts_topic).entered();
        for j in 0..n {
            if send_error.is_some() {
                break;
            }
            let m = &batch[st.decoded[j]];
            let verdict = match &st.verdicts[j] {
                Ok(v) => *v,
                Err(e) => {
                    let kind = e.kind();
                    let msg = e.to_string();
                    st.count_dlq(kind);
                    if let Err(e) = send_dlq(producer, &cfg.dlq_topic, m, kind, &msg) {
                        send_error.get_or_insert(e);
                    }
                    continue;
                }
            };
            if let Some(c) = st.verdict_counts.get_mut(usize::from(verdict.class)) {
                *c += 1;
            }
            let attack = classifier.is_attack(verdict.class);
            if !attack && !cfg.emit_benign {
                continue;
            }
            let res = emit_alert(
                deps,
                producer,
                &mut st.buf,
                &st.encoder,
                m,
                &st.records[j],
                &verdict,
                tracing_on.then_some(&batch_span),
            );
            match res {
                Ok(true) => st.alerts += 1,
                Ok(false) => st.count_dlq("alert_encoding"),
                Err(e) => {
                    send_error.get_or_insert(e);
                }
            }
        }
    }

    // Acknowledge and commit.
    let processed_at = Instant::now();
    let outcome = if eos {
        let tpl = commit_list(&cfg.flows_topic, &st.parts);
        finish_transaction(consumer, producer, send_error, &tpl)
    } else {
        finish_at_least_once(consumer, producer, send_error, &st.parts, metrics)
    };
    consumer.context().txn.open.store(false, Ordering::Release);
    if let Err(f) = outcome {
        batch_span.record(
            "error.type",
            if eos {
                "transaction_aborted"
            } else {
                "delivery_failed"
            },
        );
        if eos {
            metrics.transaction_aborts.inc();
        }
        return Err(f);
    }
    if eos {
        metrics.transaction_commits.inc();
    }

    // Metrics, once per batch.
    metrics.consumed.inc_by(batch.len() as u64);
    metrics.alerts.inc_by(st.alerts);
    for (class, c) in st.verdict_counts.iter().enumerate() {
        if *c > 0 {
            metrics.verdict_counter(class).inc_by(*c);
        }
    }
    for (kind, c) in &st.dlq_kinds {
        metrics.dlq_counter(kind).inc_by(*c);
    }
    metrics.batch_size.observe(batch.len() as f64);
    metrics
        .batch_duration
        .observe(started.elapsed().as_secs_f64());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for ts in &st.timestamps {
        metrics
            .end_to_end_latency
            .observe(((now_ms - ts).max(0) as f64) / 1000.0);
    }
    debug!(
        records = batch.len(),
        alerts = st.alerts,
        dead_letters = st.dlq_kinds.iter().map(|(_, c)| c).sum::<u64>(),
        offsets = %PartRanges(&st.parts),
        // Fill + decode + classify + send, then acknowledgements + commit.
        process_us = processed_at.duration_since(started).as_micros() as u64,
        commit_us = processed_at.elapsed().as_micros() as u64,
        "batch committed"
    );
    Ok(())
}

/// Offsets to commit: last processed + 1 for each partition of the batch.
fn commit_list(topic: &str, parts: &[PartRange]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(parts.len());
    for p in parts {
        let _ = tpl.add_partition_offset(topic, p.partition, Offset::Offset(p.last + 1));
    }
    tpl
}

/// at_least_once: wait for every acknowledgement, then commit synchronously.
fn finish_at_least_once(
    consumer: &Consumer_,
    producer: &Producer_,
    send_error: Option<KafkaError>,
    parts: &[PartRange],
    metrics: &crate::metrics::Metrics,
) -> Result<(), BatchFailure> {
    // Wait for all acknowledgements (also after a send error: whatever was
    // queued must be resolved before the rewind, or it could be lost track of).
    // librdkafka fails each message at the latest after message.timeout.ms.
    ids_runtime::acks::await_acknowledgements(producer);
    if let Some(e) = send_error {
        return Err(BatchFailure::Kafka(format!("send: {e}")));
    }
    let pctx = producer.context();
    let failed = pctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(BatchFailure::Kafka(format!(
            "{failed} record(s) not acknowledged, first error: {}",
            pctx.first_error().unwrap_or_default()
        )));
    }
    let ctx = consumer.context();
    for p in parts {
        ctx.add_pending(p.partition, p.last + 1);
    }
    if let Some(pending) = ctx.pending_tpl() {
        match consumer.commit(&pending, CommitMode::Sync) {
            Ok(()) => ctx.clear_pending(&pending),
            Err(e) => {
                // The alerts are delivered; the offsets stay pending and are
                // retried with the next commit (or on revoke). A crash before
                // that redelivers identical alerts.
                metrics.commit_failures.inc();
                warn!(error = %e, "offset commit failed; will retry with the next batch");
            }
        }
    }
    Ok(())
}

/// exactly_once: offsets into the transaction, then commit it (or abort).
fn finish_transaction(
    consumer: &Consumer_,
    producer: &Producer_,
    send_error: Option<KafkaError>,
    tpl: &TopicPartitionList,
) -> Result<(), BatchFailure> {
    let result = (|| {
        if let Some(e) = send_error {
            return Err(format!("send: {e}"));
        }
        let cgm = consumer
            .group_metadata()
            .ok_or_else(|| "no consumer group metadata".to_string())?;
        producer
            .send_offsets_to_transaction(tpl, &cgm, TXN_TIMEOUT)
            .map_err(|e| format!("send_offsets_to_transaction: {e}"))?;
        producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(|e| format!("commit_transaction: {e}"))
    })();
    if let Err(reason) = result {
        if let Err(e) = producer.abort_transaction(TXN_TIMEOUT) {
            warn!(error = %e, "abort_transaction failed");
        }
        return Err(BatchFailure::Kafka(reason));
    }
    Ok(())
}

/// The flow's `traceparent` header, parsed.
fn incoming_traceparent(m: &BorrowedMessage<'_>) -> Option<TraceParent> {
    let hs = m.headers()?;
    for h in hs.iter() {
        if h.key == headers::TRACEPARENT {
            return TraceParent::parse_bytes(h.value?);
        }
    }
    None
}

/// Sends `rec`, waiting (and serving delivery reports) while the local queue is full.
fn send_record(
    producer: &Producer_,
    mut rec: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                producer.poll(Duration::from_millis(20));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Sends the original record to the dead-letter topic with error headers.
fn send_dlq(
    producer: &Producer_,
    dlq_topic: &str,
    m: &BorrowedMessage<'_>,
    kind: &'static str,
    message: &str,
) -> Result<(), KafkaError> {
    let orig = m.headers();
    let mut hs = OwnedHeaders::new_with_capacity(orig.map(|h| h.count()).unwrap_or(0) + 5);
    if let Some(orig) = orig {
        for h in orig.iter() {
            if h.key.starts_with("ids.error.") || h.key.starts_with("ids.source.") {
                continue;
            }
            hs = hs.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    hs = hs
        .insert(Header {
            key: headers::ERROR_KIND,
            value: Some(kind),
        })
        .insert(Header {
            key: headers::ERROR_MESSAGE,
            value: Some(message),
        })
        .insert(Header {
            key: headers::SOURCE_TOPIC,
            value: Some(m.topic()),
        })
        .insert(Header {
            key: headers::SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: headers::SOURCE_OFFSET,
            value: Some(&offset),
        });
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(dlq_topic).headers(hs);
    if let Some(k) = m.key() {
        rec = rec.key(k);
    }
    if let Some(p) = m.payload() {
        rec = rec.payload(p);
    }
    send_record(producer, rec)
}

/// Encodes and sends one alert. `Ok(false)` when the alert could not be
/// encoded (the caller dead-letters nothing: the record itself was fine; it
/// is counted as an `alert_encoding` error and logged).
#[allow(clippy::too_many_arguments)]
fn emit_alert(
    deps: &PipelineDeps,
    producer: &Producer_,
    buf: &mut Vec<u8>,
    encoder: &AlertEncoder,
    m: &BorrowedMessage<'_>,
    rec: &FlowRecord,
    verdict: &Verdict,
    batch_span: Option<&tracing::Span>,
) -> Result<bool, KafkaError> {
    let cfg = &deps.cfg;
    let classifier = &*deps.classifier;
    let topic = m.topic();
    let id = event_id(topic, m.partition(), m.offset(), classifier.model_id());
    let incoming = incoming_traceparent(m);
    let mut hex = [0u8; 32];
    let trace_id_hex = incoming
        .as_ref()
        .map(|tp| tp.trace_id_hex_into(&mut hex) as &str);
    let key = m.key().or(rec.flow_id.as_deref().map(str::as_bytes));
    let key_text = m.key().map(String::from_utf8_lossy);
    let source = SourceRecord {
        topic,
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: key_text.as_deref(),
    };
    let fields = alert_fields(rec, verdict, classifier, source, &id, trace_id_hex);
    buf.clear();
    if let Err(e) = encoder.encode(&fields, buf) {
        warn!(error = %e, partition = m.partition(), offset = m.offset(), "alert could not be encoded");
        return Ok(false);
    }

    // Trace context for the alert: a `send alerts` PRODUCER span, child of the
    // flow's producer span and linked to the batch span, when tracing is on
    // and the flow was sampled; otherwise the flow's own context is passed on,
    // so the alert header and `trace.id` always name the same trace.
    let mut out_tp = incoming;
    let mut _send_span = None;
    if let (Some(batch_span), Some(tp)) = (batch_span, incoming.as_ref()) {
        if tp.sampled() {
            let span = info_span!(
                parent: None,
                "send alerts",
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.operation.name = "send",
                messaging.operation.type = "send",
                messaging.destination.name = %cfg.alerts_topic,
                messaging.kafka.message.key = key.map(String::from_utf8_lossy).as_deref().unwrap_or(""),
                ids.source.topic = %topic,
                ids.source.partition = m.partition(),
                ids.source.offset = m.offset(),
                ids.model.id = %classifier.model_id(),
                ids.verdict.class = %classifier.class_name(verdict.class),
            );
            let _ = span.set_parent(otel::remote_parent(tp));
            span.add_link(batch_span.context().span().span_context().clone());
            if let Some(tp2) = otel::traceparent_of(&span) {
                out_tp = Some(tp2);
            }
            _send_span = Some(span);
        }
    }
    let tp_value = out_tp.map(|tp| tp.to_header_value());
    let mut hs = OwnedHeaders::new_with_capacity(2).insert(Header {
        key: headers::CONTENT_TYPE,
        value: Some(match cfg.alert_format {
            AlertFormatOption::Json => headers::CONTENT_TYPE_JSON,
            AlertFormatOption::Avro => headers::CONTENT_TYPE_AVRO,
        }),
    });
    if let Some(v) = &tp_value {
        hs = hs.insert(Header {
            key: headers::TRACEPARENT,
            value: Some(v.as_str()),
        });
    }
    let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&cfg.alerts_topic)
        .payload(buf.as_slice())
        .headers(hs);
    if let Some(k) = key {
        out = out.key(k);
    }
    send_record(producer, out)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_millis_rounds_up_and_keeps_zero() {
        assert_eq!(whole_millis(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            whole_millis(Duration::from_nanos(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            whole_millis(Duration::from_micros(4_300)),
            Duration::from_millis(5)
        );
        assert_eq!(
            whole_millis(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn part_ranges_read_partition_first_last() {
        let parts = [
            PartRange {
                partition: 3,
                first: 10,
                last: 20,
            },
            PartRange {
                partition: 5,
                first: 7,
                last: 7,
            },
        ];
        assert_eq!(PartRanges(&parts).to_string(), "3:10-20,5:7-7");
        assert_eq!(PartRanges(&[]).to_string(), "");
    }
}
