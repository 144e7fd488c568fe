//! Prometheus metrics served on `GET /metrics`.
//!
//! Names follow Prometheus conventions: counters end in `_total` (added by the
//! encoder), durations are in seconds and end in `_seconds`. Per-class and
//! per-kind counters are created up front (or once per label value) and kept as
//! cheap `Arc` clones, so the hot path never builds a label set.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Label set with static keys.
pub type Labels = Vec<(&'static str, String)>;

/// Every metric the processor exports.
pub struct Metrics {
    registry: Registry,
    /// Records read from the flows topic (each redelivery counts again).
    pub consumed: Counter,
    /// Verdicts by predicted class, indexed by the model's class id.
    pub verdicts: Vec<Counter>,
    verdicts_family: Family<Labels, Counter>,
    /// Alerts written to the alerts topic (acknowledged by the broker).
    pub alerts: Counter,
    /// Dead letters by error kind.
    pub dlq: Family<Labels, Counter>,
    /// Records per batch.
    pub batch_size: Histogram,
    /// Wall time from the first poll of a batch to its commit.
    pub batch_duration: Histogram,
    /// From the source record's Kafka timestamp to the commit of its verdict.
    pub end_to_end_latency: Histogram,
    /// Consumer lag in records, per partition (from librdkafka statistics).
    pub consumer_lag: Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// Rebalance callbacks by kind (assign, revoke, lost, error).
    pub rebalances: Family<Labels, Counter>,
    pub transaction_commits: Counter,
    pub transaction_aborts: Counter,
    /// Batches whose alerts could not all be delivered (they are reprocessed).
    pub delivery_failures: Counter,
    /// Offset commits that failed (the batch will be redelivered).
    pub commit_failures: Counter,
    /// Offsets skipped between consecutive records of a partition.
    pub offset_gaps: Counter,
    /// Re-reads of a partition after an offset gap (`offset_gap_rereads`).
    pub offset_gap_rereads: Counter,
    /// Number of partitions currently assigned to this member.
    pub assigned_partitions: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// `POST /predict` requests by outcome.
    pub predict_requests: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers all metrics. `class_names` is the model's class list (class id
    /// order); `model` labels the info metric.
    pub fn new(
        class_names: &[String],
        model_id: &str,
        model_version: &str,
        feature_set: &str,
    ) -> Self {
        let mut registry = Registry::default();
        let consumed = Counter::<u64, AtomicU64>::default();
        registry.register(
            "ids_processor_records_consumed",
            "Flow records read from the flows topic (redeliveries count again)",
            consumed.clone(),
        );
        let verdicts_family = Family::<Labels, Counter>::default();
        registry.register(
            "ids_processor_verdicts",
            "Verdicts by predicted class (all verdicts, emitted or not)",
            verdicts_family.clone(),
        );
        let verdicts = class_names
            .iter()
            .map(|c| {
                verdicts_family
                    .get_or_create(&vec![("class", c.clone())])
                    .clone()
            })
            .collect();
        let alerts = Counter::default();
        registry.register(
            "ids_processor_alerts_produced",
            "Alert records acknowledged by the broker on the alerts topic",
            alerts.clone(),
        );
        let dlq = Family::<Labels, Counter>::default();
        registry.register(
            "ids_processor_dlq_records",
            "Records sent to the dead-letter topic, by error kind",
            dlq.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        registry.register(
            "ids_processor_batch_records",
            "Records per processed batch",
            batch_size.clone(),
        );
        let batch_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        registry.register(
            "ids_processor_batch_duration_seconds",
            "Batch processing time: first record polled to offsets committed",
            batch_duration.clone(),
        );
        let end_to_end_latency = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "ids_processor_end_to_end_latency_seconds",
            "From the flow record's Kafka timestamp to the commit of its verdict",
            end_to_end_latency.clone(),
        );
        let consumer_lag = Family::<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>::default();
        registry.register(
            "ids_processor_consumer_lag_records",
            "Consumer lag per assigned partition, in records (librdkafka statistics)",
            consumer_lag.clone(),
        );
        let rebalances = Family::<Labels, Counter>::default();
        registry.register(
            "ids_processor_rebalances",
            "Consumer-group rebalance callbacks, by kind (assign, revoke, lost, error)",
            rebalances.clone(),
        );
        let transaction_commits = Counter::default();
        registry.register(
            "ids_processor_transaction_commits",
            "Kafka transactions committed (exactly_once)",
            transaction_commits.clone(),
        );
        let transaction_aborts = Counter::default();
        registry.register(
            "ids_processor_transaction_aborts",
            "Kafka transactions aborted (exactly_once)",
            transaction_aborts.clone(),
        );
        let delivery_failures = Counter::default();
        registry.register(
            "ids_processor_delivery_failures",
            "Batches with at least one undelivered alert or dead letter (reprocessed, never skipped)",
            delivery_failures.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "ids_processor_commit_failures",
            "Offset commits that failed (the batch is redelivered with identical alerts)",
            commit_failures.clone(),
        );
        let offset_gaps = Counter::default();
        registry.register(
            "ids_processor_offset_gaps",
            "Offsets skipped between consecutive records of a partition (legitimate after compaction or transaction markers; otherwise records the broker did not return)",
            offset_gaps.clone(),
        );
        let offset_gap_rereads = Counter::default();
        registry.register(
            "ids_processor_offset_gap_rereads",
            "Re-reads of a partition from a missing offset before an offset gap is accepted (offset_gap_rereads)",
            offset_gap_rereads.clone(),
        );
        let assigned_partitions = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register(
            "ids_processor_assigned_partitions",
            "Partitions currently assigned to this group member",
            assigned_partitions.clone(),
        );
        let predict_requests = Family::<Labels, Counter>::default();
        registry.register(
            "ids_processor_predict_requests",
            "POST /predict requests, by outcome (ok, bad_request)",
            predict_requests.clone(),
        );
        registry.register(
            "ids_processor_model",
            "The loaded model artifact",
            Info::new(vec![
                ("model_id", model_id.to_string()),
                ("model_version", model_version.to_string()),
                ("feature_set", feature_set.to_string()),
            ]),
        );
        Metrics {
            registry,
            consumed,
            verdicts,
            verdicts_family,
            alerts,
            dlq,
            batch_size,
            batch_duration,
            end_to_end_latency,
            consumer_lag,
            rebalances,
            transaction_commits,
            transaction_aborts,
            delivery_failures,
            commit_failures,
            offset_gaps,
            offset_gap_rereads,
            assigned_partitions,
            predict_requests,
        }
    }

    /// Counter for verdicts of `class`, creating the series for a class id the
    /// model did not list (defensive: never panics on a bad index).
    pub fn verdict_counter(&self, class: usize) -> Counter {
        match self.verdicts.get(class) {
            Some(c) => c.clone(),
            None => self
                .verdicts_family
                .get_or_create(&vec![("class", format!("class_{class}"))])
                .clone(),
        }
    }

    /// Counter of dead letters of `kind`.
    pub fn dlq_counter(&self, kind: &str) -> Counter {
        self.dlq
            .get_or_create(&vec![("kind", kind.to_string())])
            .clone()
    }

    /// Counts one rebalance callback of `kind`.
    pub fn rebalance(&self, kind: &'static str) {
        self.rebalances
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new(&["normal".into(), "DoS".into()], "m1", "1", "nsl_kdd");
        m.consumed.inc_by(3);
        m.verdict_counter(1).inc();
        m.verdict_counter(7).inc();
        m.dlq_counter("truncated").inc();
        m.rebalance("assign");
        m.batch_duration.observe(0.01);
        let text = m.encode();
        for needle in [
            "ids_processor_records_consumed_total 3",
            "ids_processor_verdicts_total{class=\"DoS\"} 1",
            "ids_processor_verdicts_total{class=\"normal\"} 0",
            "ids_processor_verdicts_total{class=\"class_7\"} 1",
            "ids_processor_dlq_records_total{kind=\"truncated\"} 1",
            "ids_processor_rebalances_total{kind=\"assign\"} 1",
            "ids_processor_batch_duration_seconds_count 1",
            "ids_processor_model_info{model_id=\"m1\",model_version=\"1\",feature_set=\"nsl_kdd\"} 1",
            "ids_processor_transaction_commits_total 0",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in\n{text}");
        }
    }
}
