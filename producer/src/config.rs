//! The producer's configuration (see `ids-producer --help` and the README).

use std::path::PathBuf;

use ids_runtime::kafka::{default_brokers, KafkaProperties, KafkaSettings};
use ids_runtime::telemetry::{LogFormat, TelemetrySettings};
use ids_runtime::ConfigError;
use ids_schemas::Framing;
use serde::{Deserialize, Serialize};

/// The value of `dataset` that selects synthetic traffic.
pub const SYNTHETIC: &str = "synthetic";

/// Order in which dataset rows are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Mode {
    /// File order (files of a folder in name order).
    #[default]
    Sequential,
    /// A seeded shuffle of all rows (every row once per pass). Loads the dataset into memory.
    Random,
}

/// What the Kafka record key is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum KeyMode {
    /// The flow id.
    FlowId,
    /// A hash of the 5-tuple (direction-independent), so one conversation stays
    /// on one partition; falls back to the flow id when the record has no 5-tuple.
    #[default]
    FiveTuple,
    /// No key (librdkafka's partitioner spreads records).
    None,
}

/// Avro framing of the record values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FramingKind {
    /// Avro single-object encoding (`C3 01` + schema fingerprint).
    #[default]
    SingleObject,
    /// Confluent Schema Registry framing (magic 0 + `schema_id`).
    Confluent,
}

/// Effective producer configuration. Keys and defaults are the contract that
/// the deploy files rely on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProducerConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic the flows are written to.
    pub flows_topic: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// librdkafka passthrough properties.
    pub kafka: KafkaProperties,
    /// Address for a Prometheus `/metrics` endpoint; off when unset.
    pub http_addr: Option<String>,
    /// Dataset file or folder, or `synthetic`.
    pub dataset: Option<String>,
    /// Model artifact whose per-class statistics drive `synthetic` traffic.
    pub model_path: PathBuf,
    /// Target rate in flows/s; 0 = as fast as possible.
    pub rate: f64,
    pub mode: Mode,
    /// Seed for `random` mode and synthetic traffic.
    pub seed: u64,
    /// Start over at the end of the dataset.
    #[serde(rename = "loop")]
    pub r#loop: bool,
    /// Stop after this many flows.
    pub limit: Option<u64>,
    pub key: KeyMode,
    pub framing: FramingKind,
    /// Schema-registry id written with `framing = "confluent"`.
    pub schema_id: u32,
    /// Show a progress bar (only ever drawn on a terminal).
    pub progress: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            brokers: default_brokers(),
            flows_topic: "flows".into(),
            log_format: LogFormat::Text,
            kafka: KafkaProperties::default(),
            http_addr: None,
            dataset: None,
            model_path: PathBuf::from("models/artifacts/nsl-kdd.json"),
            rate: 0.0,
            mode: Mode::Sequential,
            seed: 42,
            r#loop: false,
            limit: None,
            key: KeyMode::FiveTuple,
            framing: FramingKind::SingleObject,
            schema_id: 1,
            progress: true,
        }
    }
}

impl ProducerConfig {
    pub fn kafka_settings(&self) -> KafkaSettings {
        KafkaSettings::new(self.brokers.clone(), self.kafka.clone())
    }

    pub fn telemetry_settings(&self) -> TelemetrySettings {
        TelemetrySettings::with_log_format(self.log_format)
    }

    pub fn framing(&self) -> Framing {
        match self.framing {
            FramingKind::SingleObject => Framing::SingleObject,
            FramingKind::Confluent => Framing::Confluent {
                schema_id: self.schema_id,
            },
        }
    }

    /// Checks what serde cannot: presence and ranges. Errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        match self.dataset.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(invalid(
                    "dataset",
                    "required: a dataset file or folder, or `synthetic`",
                ))
            }
            _ => {}
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(invalid(
                "rate",
                "must be a number >= 0 (0 = as fast as possible)",
            ));
        }
        if self.flows_topic.trim().is_empty() {
            return Err(invalid("flows_topic", "must not be empty"));
        }
        Ok(())
    }

    /// Whether `dataset` selects synthetic traffic.
    pub fn is_synthetic(&self) -> bool {
        self.dataset
            .as_deref()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case(SYNTHETIC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids_runtime::config::{load_with_env, ConfigValue};
    use std::collections::HashMap;

    #[test]
    fn keys_and_env_names_follow_the_contract() {
        let env: HashMap<String, String> = [
            ("IDS_BROKERS", "b:1"),
            ("IDS_FLOWS_TOPIC", "f"),
            ("IDS_DATASET", "synthetic"),
            ("IDS_RATE", "250.5"),
            ("IDS_MODE", "random"),
            ("IDS_LOOP", "true"),
            ("IDS_LIMIT", "7"),
            ("IDS_KEY", "none"),
            ("IDS_FRAMING", "confluent"),
            ("IDS_LOG_FORMAT", "json"),
            ("IDS_KAFKA__SECURITY_PROTOCOL", "SSL"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c: ProducerConfig =
            load_with_env(None, Some(env), &[("seed", ConfigValue::from(9u64))]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.brokers, "b:1");
        assert_eq!(c.flows_topic, "f");
        assert!(c.is_synthetic());
        assert_eq!(c.rate, 250.5);
        assert_eq!(c.mode, Mode::Random);
        assert!(c.r#loop);
        assert_eq!(c.limit, Some(7));
        assert_eq!(c.key, KeyMode::None);
        assert_eq!(c.framing(), Framing::Confluent { schema_id: 1 });
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.seed, 9);
        assert_eq!(c.kafka.get("security.protocol"), Some("SSL"));
    }

    #[test]
    fn example_file_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ids-producer.example.toml");
        let c: ProducerConfig = load_with_env(Some(&path), Some(HashMap::new()), &[]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rate, 1000.0);
        assert_eq!(c.kafka.get("linger.ms"), Some("10"));
    }

    #[test]
    fn validation_names_the_key() {
        let c = ProducerConfig::default();
        assert_eq!(c.validate().unwrap_err().key(), Some("dataset"));
        let c = ProducerConfig {
            dataset: Some("x".into()),
            rate: -1.0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), Some("rate"));
        let env = HashMap::from([("IDS_MODE".to_string(), "shuffled".to_string())]);
        let err = load_with_env::<ProducerConfig>(None, Some(env), &[]).unwrap_err();
        assert_eq!(err.key(), Some("mode"), "{err}");
    }
}
