//! `ids-processor`: parses configuration and runs [`ids_processor::run`].
//!
//! Configuration layers, lowest first: built-in defaults, the TOML file given
//! by `--config` / `IDS_CONFIG`, `IDS_*` environment variables
//! (`IDS_BATCH_SIZE=200`, `IDS_KAFKA__SECURITY_PROTOCOL=SASL_SSL`), then the
//! flags below. Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 on an
//! invalid configuration (the message names the key), 1 on any other error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use ids_processor::ProcessorConfig;
use ids_runtime::config::{self, ConfigError, ConfigValue};
use ids_runtime::telemetry::{self, TelemetrySettings};
use tokio_util::sync::CancellationToken;

/// Kafka consumer-group member that classifies network flows with a trained
/// model and writes SIEM-ready alerts (ECS JSON) to Kafka.
///
/// Every option can also be set in the TOML config file (same name with `_`
/// instead of `-`) or as an `IDS_<NAME>` environment variable.
#[derive(Debug, Parser)]
#[command(name = "ids-processor", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "IDS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as JSON (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,

    /// Kafka bootstrap servers, comma-separated host:port [default: localhost:9092].
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// Topic the flow records are read from [default: flows].
    #[arg(long, value_name = "TOPIC")]
    flows_topic: Option<String>,
    /// Topic the alerts are written to [default: alerts].
    #[arg(long, value_name = "TOPIC")]
    alerts_topic: Option<String>,
    /// Dead-letter topic for records that cannot be decoded or classified [default: flows.dlq].
    #[arg(long, value_name = "TOPIC")]
    dlq_topic: Option<String>,
    /// Consumer group id [default: ids-processor].
    #[arg(long, value_name = "ID")]
    group_id: Option<String>,
    /// Static group membership id (group.instance.id); keep it stable per replica.
    #[arg(long, value_name = "ID")]
    group_instance_id: Option<String>,
    /// Partition assignment strategy: cooperative-sticky, range or roundrobin [default: cooperative-sticky].
    #[arg(long, value_name = "STRATEGY")]
    assignment_strategy: Option<String>,
    /// Model artifact (JSON) [default: models/artifacts/nsl-kdd.json].
    #[arg(long, value_name = "PATH")]
    model_path: Option<PathBuf>,
    /// Delivery guarantee: at_least_once or exactly_once (needs Kafka transactions) [default: at_least_once].
    #[arg(long, value_name = "MODE")]
    delivery: Option<String>,
    /// Alert encoding: json or avro [default: json].
    #[arg(long, value_name = "FORMAT")]
    alert_format: Option<String>,
    /// Also emit verdicts for benign flows [default: false]; `--emit-benign=false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    emit_benign: Option<bool>,
    /// Maximum records per batch [default: 500].
    #[arg(long, value_name = "N")]
    batch_size: Option<u64>,
    /// Maximum wait for a batch to fill, in milliseconds, from its first
    /// record; already-fetched records are taken even past it, so 0 means
    /// "whatever has arrived" [default: 100].
    #[arg(long, value_name = "MS")]
    batch_timeout_ms: Option<u64>,
    /// Pause a newly assigned partition this long, then start it from the
    /// committed offset (0 = off) [default: 0]. Only for brokers whose group
    /// coordinator can hand a partition over before its old owner committed.
    #[arg(long, value_name = "MS")]
    partition_handover_grace_ms: Option<u64>,
    /// Start a newly assigned partition this many records before its
    /// committed offset and skip those below it (0 = off) [default: 0]. Only
    /// for brokers that return nothing of a record batch when a fetch starts
    /// inside it (Tansu 0.6.0).
    #[arg(long, value_name = "RECORDS")]
    fetch_start_rewind: Option<u32>,
    /// Re-read a partition up to this many times when its offsets skip,
    /// before accepting the gap (0 = off) [default: 0]. Only for brokers that
    /// can answer a read before an earlier write is stored (Tansu 0.6.0).
    #[arg(long, value_name = "N")]
    offset_gap_rereads: Option<u32>,
    /// Prefix of the transactional.id (exactly_once) [default: ids-processor].
    #[arg(long, value_name = "PREFIX")]
    transactional_id_prefix: Option<String>,
    /// HTTP listen address for /healthz, /readyz, /metrics and /predict [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// Log format: text or json [default: text]. Filter with RUST_LOG.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Any librdkafka property, e.g. `--kafka security.protocol=SASL_SSL` (repeatable).
    /// A property also set by a typed option is an error.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

impl Cli {
    /// CLI flags as config overrides (the highest layer).
    fn overrides(&self) -> Result<Vec<(String, ConfigValue)>, ConfigError> {
        let mut o: Vec<(String, ConfigValue)> = Vec::new();
        let mut s = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.push((k.to_string(), ConfigValue::from(v.clone())));
            }
        };
        s("brokers", &self.brokers);
        s("flows_topic", &self.flows_topic);
        s("alerts_topic", &self.alerts_topic);
        s("dlq_topic", &self.dlq_topic);
        s("group_id", &self.group_id);
        s("group_instance_id", &self.group_instance_id);
        s("assignment_strategy", &self.assignment_strategy);
        s("delivery", &self.delivery);
        s("alert_format", &self.alert_format);
        s("transactional_id_prefix", &self.transactional_id_prefix);
        s("http_addr", &self.http_addr);
        s("log_format", &self.log_format);
        s(
            "model_path",
            &self.model_path.as_ref().map(|p| p.display().to_string()),
        );
        if let Some(b) = self.emit_benign {
            o.push(("emit_benign".into(), ConfigValue::from(b)));
        }
        if let Some(n) = self.batch_size {
            o.push(("batch_size".into(), ConfigValue::from(n)));
        }
        if let Some(n) = self.batch_timeout_ms {
            o.push(("batch_timeout_ms".into(), ConfigValue::from(n)));
        }
        if let Some(n) = self.offset_gap_rereads {
            o.push(("offset_gap_rereads".into(), ConfigValue::from(n)));
        }
        if let Some(n) = self.fetch_start_rewind {
            o.push(("fetch_start_rewind".into(), ConfigValue::from(n)));
        }
        if let Some(n) = self.partition_handover_grace_ms {
            o.push(("partition_handover_grace_ms".into(), ConfigValue::from(n)));
        }
        for kv in &self.kafka {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(ConfigError::Invalid {
                    key: "kafka".into(),
                    message: format!("`--kafka {kv}` is not KEY=VALUE"),
                });
            };
            o.push((
                format!("kafka.{}", k.trim()),
                ConfigValue::from(v.to_string()),
            ));
        }
        Ok(o)
    }
}

fn load_config(cli: &Cli) -> Result<ProcessorConfig, String> {
    let overrides = cli.overrides().map_err(|e| e.to_string())?;
    let refs: Vec<(&str, ConfigValue)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let cfg: ProcessorConfig =
        config::load(cli.config.as_deref(), &refs).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("ids-processor: {msg}");
            return ExitCode::from(ConfigError::EXIT_CODE as u8);
        }
    };
    if cli.print_config {
        match config::to_redacted_json(&cfg) {
            Ok(json) => {
                println!("{json}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("ids-processor: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let _telemetry = match telemetry::init(
        "ids-processor",
        &TelemetrySettings {
            // The `process flows` span links to every sampled record of a batch.
            max_links_per_span: u32::try_from(cfg.batch_size).unwrap_or(u32::MAX).max(128),
            ..TelemetrySettings::with_log_format(cfg.log_format)
        },
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ids-processor: {e}");
            return ExitCode::from(ConfigError::EXIT_CODE as u8);
        }
    };

    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            ids_runtime::shutdown::signal().await;
            tracing::info!("shutdown requested; finishing the batch in flight");
            token.cancel();
            // A second signal means "now".
            ids_runtime::shutdown::signal().await;
            tracing::warn!("second signal: exiting without a clean shutdown");
            std::process::exit(130);
        }
    });

    match ids_processor::run(cfg, token).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "processor failed");
            eprintln!("ids-processor: {e}");
            if e.is_config() {
                ExitCode::from(ConfigError::EXIT_CODE as u8)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_config_key_has_a_flag() {
        let json = serde_json::to_value(ProcessorConfig::default()).unwrap();
        let cmd = Cli::command();
        let flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        for key in json.as_object().unwrap().keys() {
            let flag = key.replace('_', "-");
            assert!(
                flags.contains(&flag),
                "no --{flag} flag for config key {key}"
            );
        }
    }

    #[test]
    fn kafka_flag_needs_key_value() {
        let cli = Cli::parse_from(["ids-processor", "--kafka", "nope"]);
        assert_eq!(cli.overrides().unwrap_err().key(), Some("kafka"));
        let cli = Cli::parse_from([
            "ids-processor",
            "--kafka",
            "session.timeout.ms=6000",
            "--emit-benign",
            "--batch-size",
            "7",
        ]);
        let o = cli.overrides().unwrap();
        assert!(o.iter().any(|(k, _)| k == "kafka.session.timeout.ms"));
        assert!(o.iter().any(|(k, _)| k == "emit_benign"));
    }
}
