//! librdkafka clients: configuration, the consumer context (rebalances,
//! statistics) and the producer context (delivery accounting).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ids_runtime::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::{Delivery, ProcessorConfig, EOS_MESSAGE_TIMEOUT_MS};
use crate::metrics::Metrics;
use crate::ProcessorError;

/// Default librdkafka statistics interval: feeds the consumer-lag gauge.
const STATISTICS_INTERVAL_MS: &str = "5000";

/// State shared by the pipeline thread, the librdkafka callbacks and the HTTP
/// handlers.
pub(crate) struct Shared {
    pub metrics: Arc<Metrics>,
    /// Set on the first assignment: the member has joined the group.
    pub joined: AtomicBool,
    /// Set once the model artifact is loaded.
    pub model_loaded: AtomicBool,
    /// Set when the pipeline has stopped (readiness goes away first).
    pub stopping: AtomicBool,
}

impl Shared {
    pub fn ready(&self) -> bool {
        self.joined.load(Ordering::Acquire)
            && self.model_loaded.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The transaction a batch is running, as seen by the rebalance callback.
pub(crate) struct TxnState {
    pub open: AtomicBool,
    pub producer: Mutex<Option<Arc<BaseProducer<ProducerCtx>>>>,
}

/// Consumer callbacks. librdkafka runs them on the thread that polls, i.e.
/// the pipeline thread, between batches.
pub(crate) struct ConsumerCtx {
    shared: Arc<Shared>,
    topic: String,
    /// Partitions revoked since the pipeline last looked: messages of theirs
    /// already polled into the batch being filled are dropped (the new owner
    /// reads them from the committed offset).
    revoked: Mutex<Vec<i32>>,
    /// Offsets (next to read) whose alerts are acknowledged but whose commit
    /// has not succeeded yet, by partition.
    pending_commit: Mutex<Vec<(i32, i64)>>,
    pub txn: TxnState,
    /// `partition_handover_grace_ms`.
    grace: Duration,
    /// Whether new partitions are held back for the pipeline to start (a
    /// grace period or a `fetch_start_rewind` is configured).
    hold_new: bool,
    /// Newly assigned partitions kept paused until the instant given.
    fresh: Mutex<Vec<(i32, Instant)>>,
}

impl ConsumerCtx {
    /// `grace`: `partition_handover_grace_ms`; `hold_new`: also hold new
    /// partitions back with no grace (for `fetch_start_rewind`).
    pub fn new(shared: Arc<Shared>, topic: String, grace: Duration, hold_new: bool) -> Self {
        ConsumerCtx {
            shared,
            topic,
            grace,
            hold_new: hold_new || !grace.is_zero(),
            fresh: Mutex::new(Vec::new()),
            revoked: Mutex::new(Vec::new()),
            pending_commit: Mutex::new(Vec::new()),
            txn: TxnState {
                open: AtomicBool::new(false),
                producer: Mutex::new(None),
            },
        }
    }

    /// Paused new partitions whose grace period is over (removed from the list).
    pub fn take_due(&self, now: Instant, out: &mut Vec<i32>) {
        out.clear();
        let mut f = lock(&self.fresh);
        f.retain(|(p, at)| {
            if *at <= now {
                out.push(*p);
                false
            } else {
                true
            }
        });
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self, out: &mut Vec<i32>) {
        out.clear();
        out.append(&mut lock(&self.revoked));
    }

    /// Records acknowledged offsets to commit (merging with earlier ones).
    pub fn add_pending(&self, partition: i32, next_offset: i64) {
        let mut p = lock(&self.pending_commit);
        match p.iter_mut().find(|(q, _)| *q == partition) {
            Some(e) => e.1 = e.1.max(next_offset),
            None => p.push((partition, next_offset)),
        }
    }

    /// The pending offsets as a commit list (None when nothing is pending).
    pub fn pending_tpl(&self) -> Option<TopicPartitionList> {
        let p = lock(&self.pending_commit);
        if p.is_empty() {
            return None;
        }
        let mut tpl = TopicPartitionList::with_capacity(p.len());
        for (part, off) in p.iter() {
            // Adding a partition to a fresh list cannot fail for a valid offset.
            let _ = tpl.add_partition_offset(&self.topic, *part, Offset::Offset(*off));
        }
        Some(tpl)
    }

    /// Forgets pending offsets that `tpl` committed.
    pub fn clear_pending(&self, tpl: &TopicPartitionList) {
        let mut p = lock(&self.pending_commit);
        p.retain(|(part, off)| {
            !tpl.elements().iter().any(|e| {
                e.partition() == *part && matches!(e.offset(), Offset::Offset(o) if o >= *off)
            })
        });
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        self.shared
            .metrics
            .rebalance(if lost { "lost" } else { "revoke" });
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        info!(partitions = ?parts, lost, "partitions revoked");

        // exactly_once: a transaction open across a rebalance is committed when
        // the partitions are revoked (we still own the work) and aborted when
        // they are lost (another member may already own them). The pipeline
        // never polls with a transaction open, so this is a safety net.
        if self.txn.open.swap(false, Ordering::AcqRel) {
            if let Some(p) = lock(&self.txn.producer).clone() {
                let res = if lost {
                    self.shared.metrics.transaction_aborts.inc();
                    p.abort_transaction(Duration::from_secs(30))
                } else {
                    self.shared.metrics.transaction_commits.inc();
                    p.commit_transaction(Duration::from_secs(30))
                };
                if let Err(e) = res {
                    warn!(error = %e, lost, "finishing the open transaction on revoke failed");
                }
            }
        }

        // at_least_once: commit acknowledged offsets of the revoked partitions
        // synchronously, so the next owner starts right after them.
        let to_commit = {
            let mut pending = lock(&self.pending_commit);
            let mut tpl_out = TopicPartitionList::new();
            pending.retain(|(part, off)| {
                if parts.contains(part) {
                    let _ = tpl_out.add_partition_offset(&self.topic, *part, Offset::Offset(*off));
                    false
                } else {
                    true
                }
            });
            tpl_out
        };
        if to_commit.count() > 0 && !lost {
            if let Err(e) = consumer.commit(&to_commit, CommitMode::Sync) {
                self.shared.metrics.commit_failures.inc();
                warn!(error = %e, "commit on revoke failed; the next owner will redeliver identical alerts");
            }
        }
        lock(&self.revoked).extend_from_slice(&parts);
        lock(&self.fresh).retain(|(p, _)| !parts.contains(p));
        for p in &parts {
            self.shared.metrics.consumer_lag.remove(&vec![
                ("topic", self.topic.clone()),
                ("partition", p.to_string()),
            ]);
        }
    }
}

impl ClientContext for ConsumerCtx {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (part, p) in &t.partitions {
                // librdkafka reports partition -1 (internal UA partition) and
                // -1 lags for partitions it does not consume.
                if *part < 0 || p.consumer_lag < 0 || p.fetch_state == "none" {
                    continue;
                }
                self.shared
                    .metrics
                    .consumer_lag
                    .get_or_create(&vec![
                        ("topic", topic.clone()),
                        ("partition", part.to_string()),
                    ])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.shared.metrics.rebalance("assign");
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?parts, "partitions assigned");
            }
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Error(e) => {
                self.shared.metrics.rebalance("error");
                warn!(error = %e, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared.joined.store(true, Ordering::Release);
            if self.hold_new && tpl.count() > 0 {
                // Hold new partitions back; the pipeline starts them from the
                // committed offset (or before it, for fetch_start_rewind)
                // once the grace period, if any, is over.
                match consumer.pause(tpl) {
                    Ok(()) => {
                        let at = Instant::now() + self.grace;
                        lock(&self.fresh)
                            .extend(tpl.elements().iter().map(|e| (e.partition(), at)));
                    }
                    Err(e) => warn!(error = %e, "pausing new partitions failed"),
                }
            }
        }
        if let Ok(a) = consumer.assignment() {
            self.shared
                .metrics
                .assigned_partitions
                .set(i64::try_from(a.count()).unwrap_or(i64::MAX));
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            debug!(error = %e, "offset commit callback reported an error");
        }
    }
}

/// Delivery accounting for one batch: the pipeline resets it, produces, waits
/// for every acknowledgement, then reads it. No per-message allocation.
#[derive(Default)]
pub(crate) struct ProducerCtx {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl ProducerCtx {
    pub fn reset(&self) {
        self.delivered.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        *lock(&self.first_error) = None;
    }

    pub fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }
}

impl ClientContext for ProducerCtx {
    /// The passthrough table is shared with the consumer, so a
    /// `statistics.interval.ms` meant for consumer lag also reaches the
    /// producer; its statistics are not used (and not parsed).
    fn stats_raw(&self, _statistics: &[u8]) {}
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    *lock(&self.first_error) = Some(e.to_string());
                }
            }
        }
    }
}

fn settings(cfg: &ProcessorConfig) -> KafkaSettings {
    KafkaSettings::new(cfg.brokers.clone(), cfg.kafka.clone())
}

/// Adds `(key, value)` to `typed` unless the passthrough table sets `key`
/// (for defaults the user may override, unlike the owned keys).
fn default_unless_set(
    cfg: &ProcessorConfig,
    typed: &mut Vec<(&'static str, String)>,
    key: &'static str,
    value: &str,
) {
    if cfg.kafka.get(key).is_none() {
        typed.push((key, value.to_string()));
    }
}

fn config_error(e: ids_runtime::config::ConfigError) -> ProcessorError {
    ProcessorError::KafkaConfig(e)
}

/// The consumer's librdkafka configuration.
pub(crate) fn consumer_config(cfg: &ProcessorConfig) -> Result<ClientConfig, ProcessorError> {
    let mut typed: Vec<(&'static str, String)> = vec![
        ("group.id", cfg.group_id.clone()),
        // Offsets are committed by the pipeline after the batch's alerts are
        // acknowledged (or inside the transaction), never automatically.
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        (
            "partition.assignment.strategy",
            cfg.assignment_strategy.librdkafka_name().into(),
        ),
    ];
    if let Some(id) = &cfg.group_instance_id {
        typed.push(("group.instance.id", id.clone()));
    }
    if cfg.delivery == Delivery::ExactlyOnce {
        typed.push(("isolation.level", "read_committed".into()));
    }
    // A new group starts from the beginning of the log: nothing is skipped.
    default_unless_set(cfg, &mut typed, "auto.offset.reset", "earliest");
    default_unless_set(
        cfg,
        &mut typed,
        "statistics.interval.ms",
        STATISTICS_INTERVAL_MS,
    );
    settings(cfg).client_config(&typed).map_err(config_error)
}

/// The producer's librdkafka configuration (alerts and dead letters).
pub(crate) fn producer_config(cfg: &ProcessorConfig) -> Result<ClientConfig, ProcessorError> {
    let mut typed: Vec<(&'static str, String)> = Vec::new();
    match cfg.delivery {
        Delivery::AtLeastOnce => {
            // Idempotence keeps producer retries from writing an alert twice;
            // redeliveries after a crash are still possible (and identical).
            default_unless_set(cfg, &mut typed, "enable.idempotence", "true");
        }
        Delivery::ExactlyOnce => {
            typed.push(("transactional.id", transactional_id(cfg)));
            let (msg, txn) = cfg.eos_timeouts().map_err(ProcessorError::Config)?;
            default_unless_set(cfg, &mut typed, "transaction.timeout.ms", &txn.to_string());
            default_unless_set(
                cfg,
                &mut typed,
                "message.timeout.ms",
                &msg.min(EOS_MESSAGE_TIMEOUT_MS).to_string(),
            );
        }
    }
    // The passthrough table is shared by both clients; consumer-only keys in it
    // only make librdkafka log a warning on the producer.
    settings(cfg).client_config(&typed).map_err(config_error)
}

/// `<transactional_id_prefix>-<group_instance_id or a random suffix>`.
///
/// With static membership the id is stable across restarts, which lets the
/// broker fence a zombie instance; without it a random suffix keeps two
/// members of the same group from fencing each other.
pub(crate) fn transactional_id(cfg: &ProcessorConfig) -> String {
    match &cfg.group_instance_id {
        Some(id) => format!("{}-{}", cfg.transactional_id_prefix, id),
        None => {
            let mut h = RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            format!("{}-{:016x}", cfg.transactional_id_prefix, h.finish())
        }
    }
}

/// Creates the producer; in exactly_once mode also runs `init_transactions`.
pub(crate) fn create_producer(
    cfg: &ProcessorConfig,
) -> Result<Arc<BaseProducer<ProducerCtx>>, ProcessorError> {
    let cc = producer_config(cfg)?;
    let producer: BaseProducer<ProducerCtx> = cc
        .create_with_context(ProducerCtx::default())
        .map_err(ProcessorError::Kafka)?;
    if cfg.delivery == Delivery::ExactlyOnce {
        init_transactions(&producer)?;
    }
    Ok(Arc::new(producer))
}

fn init_transactions(producer: &BaseProducer<ProducerCtx>) -> Result<(), ProcessorError> {
    // init_transactions fences older producers with the same transactional.id;
    // retry while the coordinator is not reachable yet.
    let mut last: Option<KafkaError> = None;
    for attempt in 0..10 {
        match producer.init_transactions(Duration::from_secs(30)) {
            Ok(()) => return Ok(()),
            Err(e) => {
                warn!(error = %e, attempt, "init_transactions failed; retrying");
                last = Some(e);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    Err(ProcessorError::Kafka(last.unwrap_or(KafkaError::Canceled)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AssignmentStrategy;

    #[test]
    fn consumer_config_owns_commit_and_assignment() {
        let mut cfg = ProcessorConfig {
            group_instance_id: Some("p-1".into()),
            ..Default::default()
        };
        let cc = consumer_config(&cfg).unwrap();
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert_eq!(
            cc.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(cc.get("group.instance.id"), Some("p-1"));
        assert_eq!(cc.get("auto.offset.reset"), Some("earliest"));
        cfg.assignment_strategy = AssignmentStrategy::Range;
        cfg.kafka.insert("auto.offset.reset", "latest");
        let cc = consumer_config(&cfg).unwrap();
        assert_eq!(cc.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(cc.get("auto.offset.reset"), Some("latest"));
    }

    #[test]
    fn producer_config_per_delivery_mode() {
        let cfg = ProcessorConfig::default();
        let cc = producer_config(&cfg).unwrap();
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(cc.get("transactional.id"), None);
        let cfg = ProcessorConfig {
            delivery: Delivery::ExactlyOnce,
            group_instance_id: Some("a".into()),
            ..Default::default()
        };
        let cc = producer_config(&cfg).unwrap();
        assert_eq!(cc.get("transactional.id"), Some("ids-processor-a"));
        assert_eq!(cc.get("transaction.timeout.ms"), Some("60000"));
        assert_eq!(cc.get("message.timeout.ms"), Some("50000"));
        let cfg = ProcessorConfig {
            delivery: Delivery::ExactlyOnce,
            ..Default::default()
        };
        assert_ne!(transactional_id(&cfg), transactional_id(&cfg));
    }
}
