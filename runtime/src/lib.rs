//! Service plumbing shared by the IDS Stream binaries: layered configuration
//! ([`config`]), librdkafka client settings with a passthrough table ([`kafka`]),
//! waiting for a producer's acknowledgements ([`acks`]),
//! logging and OpenTelemetry trace export ([`telemetry`]) and the shutdown
//! signal ([`shutdown`]). Nothing here knows about flows or models.

pub mod acks;
pub mod config;
pub mod kafka;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, ConfigValue};
pub use kafka::{KafkaProperties, KafkaSettings};
pub use telemetry::{LogFormat, TelemetryGuard, TelemetrySettings};
