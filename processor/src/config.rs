//! The processor's configuration: every key, its default, and the checks that
//! run before anything connects to Kafka.
//!
//! Key names are part of the deployment contract (docker-compose and the k8s
//! manifests set them through `IDS_*` variables), so they are spelled exactly as
//! in the team's contract and must not be renamed casually.

use std::net::SocketAddr;
use std::path::PathBuf;

use ids_runtime::kafka::KafkaProperties;
pub use ids_runtime::telemetry::LogFormat;
use serde::{Deserialize, Serialize};

/// Where a verdict must be acknowledged before the source offset is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Commit offsets only after the broker acknowledged every alert and dead
    /// letter of the batch. Redeliveries produce byte-identical alerts with
    /// the same `event.id`, so a SIEM can deduplicate them.
    #[default]
    AtLeastOnce,
    /// Read-process-write inside Kafka transactions (needs a broker with a
    /// transaction coordinator, Apache Kafka >= 2.5).
    ExactlyOnce,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at_least_once",
            Delivery::ExactlyOnce => "exactly_once",
        }
    }
}

/// Encoding of the alert documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormatOption {
    /// ECS-shaped JSON (what SIEM ingestion paths expect).
    #[default]
    Json,
    /// The Avro mirror of the JSON document (`schemas/avro/alert.avsc`).
    Avro,
}

/// librdkafka's `partition.assignment.strategy`, as a typed option so that a
/// broker that cannot run the cooperative protocol can be handled without
/// touching the passthrough table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentStrategy {
    /// Incremental cooperative rebalancing (KIP-429): a scale-up or scale-down
    /// moves only the partitions that must move, the others keep flowing.
    #[default]
    CooperativeSticky,
    /// Eager range assignment (Kafka's historical default).
    Range,
    /// Eager round-robin assignment.
    Roundrobin,
}

impl AssignmentStrategy {
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::Roundrobin => "roundrobin",
        }
    }
}

/// All processor settings. Layered by `ids_runtime::config::load`: serde
/// defaults, then a TOML file, then `IDS_*` environment variables, then CLI
/// flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Kafka bootstrap servers (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Topic the flows are read from.
    pub flows_topic: String,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// librdkafka passthrough: any property not modelled by a typed key. A
    /// property set both here and by a typed key is a configuration error.
    pub kafka: KafkaProperties,
    /// Listen address of the HTTP server (health, readiness, metrics, predict).
    pub http_addr: String,
    /// Consumer group id.
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a restarted member with
    /// the same id gets its partitions back without a rebalance.
    pub group_instance_id: Option<String>,
    /// Topic the verdicts are written to.
    pub alerts_topic: String,
    /// Dead-letter topic for records that cannot be decoded or classified.
    pub dlq_topic: String,
    /// Path of the model artifact (JSON) used for classification.
    pub model_path: PathBuf,
    /// `at_least_once` (default) or `exactly_once`.
    pub delivery: Delivery,
    /// `json` (default) or `avro`.
    pub alert_format: AlertFormatOption,
    /// Also emit verdicts for benign flows (default: attacks only).
    pub emit_benign: bool,
    /// Maximum records per batch.
    pub batch_size: usize,
    /// Maximum time to wait for a batch to fill, in milliseconds, counted
    /// from its first record. Records already fetched are taken even past it
    /// (up to `batch_size`), so 0 means "whatever has arrived, no waiting".
    pub batch_timeout_ms: u64,
    /// Prefix of the producer's `transactional.id` (exactly_once only); the
    /// suffix is `group_instance_id` when set, else a random one.
    pub transactional_id_prefix: String,
    /// `partition.assignment.strategy`.
    pub assignment_strategy: AssignmentStrategy,
    /// Milliseconds a newly assigned partition stays paused before this
    /// member starts it from the then-committed offset (0 = start at once).
    /// Guards against a group coordinator that completes a rebalance before
    /// the previous owner has rejoined and committed (seen with Tansu 0.6.0,
    /// whose leader completes a join with the followers' stale metadata):
    /// without it both members process the partition for a moment and the
    /// overlap is redelivered. Apache Kafka does not need it.
    pub partition_handover_grace_ms: u64,
    /// Records to start *before* the committed offset when a partition is
    /// newly assigned; those below the committed offset are skipped, not
    /// processed (0 = start at the committed offset). Guards against a broker
    /// that returns nothing of a stored record batch when a fetch starts
    /// inside it (Tansu 0.6.0 returns the next batch, silently skipping the
    /// rest of that one). Apache Kafka does not need it.
    pub fetch_start_rewind: u32,
    /// When the flows topic skips offsets within a partition, re-read the
    /// partition from the missing offset up to this many times before
    /// accepting the gap (0 = accept at once; gaps are legitimate after
    /// compaction and around transaction markers). Guards against a broker
    /// that can answer a read before an earlier write is stored (Tansu
    /// 0.6.0). Apache Kafka does not need it.
    pub offset_gap_rereads: u32,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            brokers: "localhost:9092".into(),
            flows_topic: "flows".into(),
            log_format: LogFormat::Text,
            kafka: KafkaProperties::new(),
            http_addr: "0.0.0.0:8080".into(),
            group_id: "ids-processor".into(),
            group_instance_id: None,
            alerts_topic: "alerts".into(),
            dlq_topic: "flows.dlq".into(),
            model_path: PathBuf::from("models/artifacts/nsl-kdd.json"),
            delivery: Delivery::AtLeastOnce,
            alert_format: AlertFormatOption::Json,
            emit_benign: false,
            batch_size: 500,
            batch_timeout_ms: 100,
            transactional_id_prefix: "ids-processor".into(),
            assignment_strategy: AssignmentStrategy::CooperativeSticky,
            partition_handover_grace_ms: 0,
            fetch_start_rewind: 0,
            offset_gap_rereads: 0,
        }
    }
}

/// A configuration value that cannot work; names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration key `{key}`: {message}")]
pub struct InvalidConfig {
    pub key: String,
    pub message: String,
}

impl InvalidConfig {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidConfig {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// librdkafka's defaults for the two timeouts whose order matters in
/// exactly_once mode.
const LIBRDKAFKA_TRANSACTION_TIMEOUT_MS: u64 = 60_000;

/// Timeouts the processor sets for exactly_once when the passthrough table does
/// not: librdkafka's default `message.timeout.ms` (300 s) is above its default
/// `transaction.timeout.ms` (60 s), and a message that may outlive its
/// transaction breaks the transaction's atomicity.
pub(crate) const EOS_MESSAGE_TIMEOUT_MS: u64 = 50_000;

impl ProcessorConfig {
    /// Checks everything that can be checked without a broker.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        fn non_empty(key: &str, v: &str) -> Result<(), InvalidConfig> {
            if v.trim().is_empty() {
                return Err(InvalidConfig::new(key, "must not be empty"));
            }
            Ok(())
        }
        non_empty("brokers", &self.brokers)?;
        non_empty("flows_topic", &self.flows_topic)?;
        non_empty("alerts_topic", &self.alerts_topic)?;
        non_empty("dlq_topic", &self.dlq_topic)?;
        non_empty("group_id", &self.group_id)?;
        if let Some(id) = &self.group_instance_id {
            non_empty("group_instance_id", id)?;
        }
        for (key, topic) in [
            ("alerts_topic", &self.alerts_topic),
            ("dlq_topic", &self.dlq_topic),
        ] {
            if *topic == self.flows_topic {
                return Err(InvalidConfig::new(
                    key,
                    format!("must differ from flows_topic (`{topic}`): the processor would read its own output"),
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(InvalidConfig::new("batch_size", "must be at least 1"));
        }
        if self.batch_size > 100_000 {
            return Err(InvalidConfig::new("batch_size", "must be at most 100000"));
        }
        if self.partition_handover_grace_ms > 600_000 {
            return Err(InvalidConfig::new(
                "partition_handover_grace_ms",
                "must be at most 600000",
            ));
        }
        if self.offset_gap_rereads > 100 {
            return Err(InvalidConfig::new(
                "offset_gap_rereads",
                "must be at most 100",
            ));
        }
        if self.fetch_start_rewind > 1_000_000 {
            return Err(InvalidConfig::new(
                "fetch_start_rewind",
                "must be at most 1000000",
            ));
        }
        if self.batch_timeout_ms > 600_000 {
            return Err(InvalidConfig::new(
                "batch_timeout_ms",
                "must be at most 600000",
            ));
        }
        self.http_socket_addr()?;
        if self.model_path.as_os_str().is_empty() {
            return Err(InvalidConfig::new("model_path", "must not be empty"));
        }
        if self.delivery == Delivery::ExactlyOnce {
            non_empty("transactional_id_prefix", &self.transactional_id_prefix)?;
            let (msg, txn) = self.eos_timeouts()?;
            if msg >= txn {
                return Err(InvalidConfig::new(
                    "kafka.message.timeout.ms",
                    format!(
                        "must be below kafka.transaction.timeout.ms ({msg} >= {txn}) with delivery = exactly_once"
                    ),
                ));
            }
        }
        for (key, _) in self.kafka.iter() {
            if let Some(typed) = typed_key_for(key) {
                return Err(InvalidConfig::new(
                    format!("kafka.{key}"),
                    format!("is set by the typed option `{typed}`; set it there instead"),
                ));
            }
        }
        Ok(())
    }

    /// The parsed `http_addr`.
    pub fn http_socket_addr(&self) -> Result<SocketAddr, InvalidConfig> {
        self.http_addr.parse().map_err(|e| {
            InvalidConfig::new(
                "http_addr",
                format!("`{}` is not a socket address: {e}", self.http_addr),
            )
        })
    }

    /// Effective (`message.timeout.ms`, `transaction.timeout.ms`) for exactly_once.
    pub(crate) fn eos_timeouts(&self) -> Result<(u64, u64), InvalidConfig> {
        let parse = |key: &str, default: u64| -> Result<u64, InvalidConfig> {
            match self.kafka.get(key) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().map_err(|_| {
                    InvalidConfig::new(
                        format!("kafka.{key}"),
                        format!("`{v}` is not a number of milliseconds"),
                    )
                }),
            }
        };
        let txn = parse("transaction.timeout.ms", LIBRDKAFKA_TRANSACTION_TIMEOUT_MS)?;
        let msg = parse(
            "message.timeout.ms",
            EOS_MESSAGE_TIMEOUT_MS.min(txn.saturating_sub(1)),
        )?;
        Ok((msg, txn))
    }
}

/// librdkafka properties owned by a typed processor option; setting them in the
/// passthrough table is an error rather than a silent override.
pub(crate) fn typed_key_for(librdkafka_key: &str) -> Option<&'static str> {
    Some(match librdkafka_key {
        "bootstrap.servers" | "metadata.broker.list" => "brokers",
        "group.id" => "group_id",
        "group.instance.id" => "group_instance_id",
        "transactional.id" => "transactional_id_prefix",
        "partition.assignment.strategy" => "assignment_strategy",
        "enable.auto.commit" | "enable.auto.offset.store" | "isolation.level" => "delivery",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let c = ProcessorConfig::default();
        c.validate().unwrap();
        assert_eq!(c.group_id, "ids-processor");
        assert_eq!(c.alerts_topic, "alerts");
        assert_eq!(c.dlq_topic, "flows.dlq");
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.batch_timeout_ms, 100);
        assert_eq!(c.fetch_start_rewind, 0, "off unless the broker needs it");
        assert_eq!(c.http_addr, "0.0.0.0:8080");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["delivery"], "at_least_once");
        assert_eq!(json["alert_format"], "json");
        assert_eq!(json["assignment_strategy"], "cooperative-sticky");
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = ProcessorConfig {
            batch_size: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "batch_size");
        let c = ProcessorConfig {
            http_addr: "nope".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "http_addr");
        let mut c = ProcessorConfig::default();
        c.kafka.insert("group.id", "x");
        assert_eq!(c.validate().unwrap_err().key, "kafka.group.id");
        let c = ProcessorConfig {
            alerts_topic: "flows".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "alerts_topic");
        let c = ProcessorConfig {
            fetch_start_rewind: 1_000_001,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "fetch_start_rewind");
        let c = ProcessorConfig {
            batch_timeout_ms: 600_001,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "batch_timeout_ms");
        // 0 is valid: "whatever has arrived".
        ProcessorConfig {
            batch_timeout_ms: 0,
            ..Default::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn exactly_once_needs_message_timeout_below_transaction_timeout() {
        let mut c = ProcessorConfig {
            delivery: Delivery::ExactlyOnce,
            ..Default::default()
        };
        c.validate().unwrap();
        assert_eq!(c.eos_timeouts().unwrap(), (50_000, 60_000));
        c.kafka.insert("message.timeout.ms", "60000");
        assert_eq!(c.validate().unwrap_err().key, "kafka.message.timeout.ms");
        c.kafka.insert("transaction.timeout.ms", "90000");
        c.validate().unwrap();
        c.kafka = KafkaProperties::new();
        c.kafka.insert("transaction.timeout.ms", "10000");
        assert_eq!(c.eos_timeouts().unwrap(), (9_999, 10_000));
        c.kafka.insert("transaction.timeout.ms", "ten");
        assert_eq!(
            c.validate().unwrap_err().key,
            "kafka.transaction.timeout.ms"
        );
    }
}
