//! `ids-producer`: publishes flow records to Kafka. Thin wrapper over
//! [`ids_producer::run`]; see `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ids_producer::{FramingKind, KeyMode, Mode, ProducerConfig};
use ids_runtime::{ConfigError, ConfigValue};
use tokio_util::sync::CancellationToken;

/// Publish network flows (a dataset file or folder, or synthetic traffic) as
/// Avro FlowRecords to Kafka.
///
/// Every option can also be set in a TOML file (--config) or as an environment
/// variable IDS_<KEY> (e.g. IDS_FLOWS_TOPIC, IDS_RATE). Precedence: flags >
/// environment > file > defaults. librdkafka properties go in the file's [kafka]
/// table or as IDS_KAFKA__<PROPERTY> with `_` for `.` (IDS_KAFKA__SECURITY_PROTOCOL=SASL_SSL).
/// OpenTelemetry tracing is configured with the standard OTEL_* variables.
#[derive(Debug, Parser)]
#[command(name = "ids-producer", version, about, long_about)]
struct Cli {
    /// TOML config file.
    #[arg(long, env = "IDS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as JSON (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,

    /// [brokers] Kafka bootstrap servers, host:port[,host:port...]. Default localhost:9092.
    #[arg(long, value_name = "LIST")]
    brokers: Option<String>,
    /// [flows_topic] Topic to publish flows to. Default "flows".
    #[arg(long, value_name = "TOPIC")]
    flows_topic: Option<String>,
    /// [dataset] Dataset file or folder (NSL-KDD, CIC-IDS2017 original / TrafficLabelling / improved CSV), or "synthetic".
    #[arg(long, value_name = "PATH|synthetic")]
    dataset: Option<String>,
    /// [model_path] Model artifact whose per-class statistics drive synthetic traffic. Default models/artifacts/nsl-kdd.json.
    #[arg(long, value_name = "FILE")]
    model_path: Option<PathBuf>,
    /// [rate] Target rate in flows per second; 0 = as fast as possible (default).
    #[arg(long, value_name = "FLOWS_PER_SEC")]
    rate: Option<f64>,
    /// [mode] Row order: sequential (file order, default) or random (seeded shuffle, loads the dataset into memory).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// [seed] Seed for random mode and synthetic traffic. Default 42.
    #[arg(long)]
    seed: Option<u64>,
    /// [loop] Start over at the end of the dataset (run until --limit or Ctrl-C).
    #[arg(long = "loop")]
    looping: bool,
    /// [limit] Stop after this many flows.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// [key] Record key: five_tuple (hash of src/dst ip+port and transport, default; falls back to flow_id), flow_id, or none.
    #[arg(long, value_enum)]
    key: Option<KeyMode>,
    /// [framing] Avro framing: single_object (default) or confluent (schema-registry framing with --schema-id).
    #[arg(long, value_enum)]
    framing: Option<FramingKind>,
    /// [schema_id] Schema-registry id for confluent framing. Default 1.
    #[arg(long, value_name = "ID")]
    schema_id: Option<u32>,
    /// [log_format] Log output: text (default) or json. Log level: RUST_LOG (default info).
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
    /// [http_addr] Serve Prometheus /metrics (and /healthz) on this address, e.g. 0.0.0.0:9100. Default: off.
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// [progress] Do not draw the progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Also print the final summary as one JSON line on stdout: {"summary": {...}}.
    #[arg(long)]
    summary_json: bool,
    /// [kafka] librdkafka property, repeatable: --kafka security.protocol=SSL.
    #[arg(long = "kafka", value_name = "PROPERTY=VALUE")]
    kafka: Vec<String>,
}

impl Cli {
    fn overrides(&self) -> Result<Vec<(String, ConfigValue)>, ConfigError> {
        let mut o: Vec<(String, ConfigValue)> = Vec::new();
        let mut put = |k: &str, v: ConfigValue| o.push((k.to_string(), v));
        if let Some(v) = &self.brokers {
            put("brokers", v.as_str().into());
        }
        if let Some(v) = &self.flows_topic {
            put("flows_topic", v.as_str().into());
        }
        if let Some(v) = &self.dataset {
            put("dataset", v.as_str().into());
        }
        if let Some(v) = &self.model_path {
            put("model_path", v.to_string_lossy().as_ref().into());
        }
        if let Some(v) = self.rate {
            put("rate", v.into());
        }
        if let Some(v) = self.mode {
            put("mode", enum_name(&v).into());
        }
        if let Some(v) = self.seed {
            put("seed", v.into());
        }
        if self.looping {
            put("loop", true.into());
        }
        if let Some(v) = self.limit {
            put("limit", v.into());
        }
        if let Some(v) = self.key {
            put("key", enum_name(&v).into());
        }
        if let Some(v) = self.framing {
            put("framing", enum_name(&v).into());
        }
        if let Some(v) = self.schema_id {
            put("schema_id", u64::from(v).into());
        }
        if let Some(v) = &self.log_format {
            put("log_format", v.as_str().into());
        }
        if let Some(v) = &self.http_addr {
            put("http_addr", v.as_str().into());
        }
        if self.no_progress {
            put("progress", false.into());
        }
        for kv in &self.kafka {
            let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::Invalid {
                key: "kafka".into(),
                message: format!(
                    "--kafka expects PROPERTY=VALUE, got `{}`",
                    kv.split('=').next().unwrap_or("")
                ),
            })?;
            put(&format!("kafka.{}", k.trim()), v.into());
        }
        Ok(o)
    }
}

/// The serde name of a config enum value (`five_tuple`, `random`, ...).
fn enum_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn load_config(cli: &Cli) -> Result<ProducerConfig, ConfigError> {
    let owned = cli.overrides()?;
    let overrides: Vec<(&str, ConfigValue)> =
        owned.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let cfg: ProducerConfig = ids_runtime::config::load(cli.config.as_deref(), &overrides)?;
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ids-producer: {e}");
            return ExitCode::from(ConfigError::EXIT_CODE as u8);
        }
    };
    if cli.print_config {
        return match ids_runtime::config::to_redacted_json(&cfg) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ids-producer: {e}");
                ExitCode::from(ConfigError::EXIT_CODE as u8)
            }
        };
    }
    if let Err(e) = cfg.validate() {
        eprintln!("ids-producer: {e}");
        return ExitCode::from(ConfigError::EXIT_CODE as u8);
    }

    let telemetry = match ids_runtime::telemetry::init("ids-producer", &cfg.telemetry_settings()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ids-producer: {e}");
            return ExitCode::from(1);
        }
    };

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        ids_runtime::shutdown::signal().await;
        tracing::info!("shutdown requested; flushing");
        on_signal.cancel();
    });

    let result = ids_producer::run(cfg, shutdown).await;
    drop(telemetry);
    match result {
        Ok(summary) => {
            eprintln!("ids-producer: {summary}");
            if cli.summary_json {
                println!("{}", serde_json::json!({ "summary": summary }));
            }
            if summary.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ids-producer: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
