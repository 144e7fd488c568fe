//! `ids-demo`: the whole IDS Stream pipeline in one process, on a machine with
//! nothing but Rust installed.
//!
//! It starts librdkafka's mock cluster (an in-process Kafka-protocol broker
//! listening on loopback TCP), creates the topics, runs the producer and a
//! group of processors (the same library code as the real binaries), and
//! prints live progress: flows/s, verdicts by class and sample alerts read back
//! from the alerts topic.
//!
//! Without `--dataset` it sends traffic synthesised from the model artifact's
//! per-class feature statistics, and says so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use ids_processor::config::ProcessorConfig;
use ids_producer::{KeyMode, Mode, ProducerConfig, ProducerStats};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message as _};
use tokio_util::sync::CancellationToken;

/// Run the IDS Stream pipeline end to end on an embedded Kafka-protocol broker
/// (librdkafka's mock cluster): producer -> flows topic -> a group of processors
/// -> alerts topic, with live statistics. Stop with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "ids-demo", version, about)]
struct Cli {
    /// Dataset file or folder to replay (e.g. ../shared/datasets/nsl-kdd/KDDTest+.txt).
    /// Without it: synthetic traffic drawn from the model artifact (labelled SYNTHETIC).
    #[arg(long, env = "IDS_DEMO_DATASET", value_name = "PATH")]
    dataset: Option<PathBuf>,
    /// Model artifact used by the processors (and for synthetic traffic).
    #[arg(
        long,
        default_value = "models/artifacts/nsl-kdd.json",
        value_name = "FILE"
    )]
    model: PathBuf,
    /// Flows per second sent by the producer (0 = as fast as possible).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Number of processors in the consumer group.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=6))]
    processors: u16,
    /// Partitions of the flows topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Stop after this many flows.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Seconds between sample alerts printed.
    #[arg(long, default_value_t = 5)]
    sample_every: u64,
}

const FLOWS: &str = "flows";
const ALERTS: &str = "alerts";
const DLQ: &str = "flows.dlq";

/// What the alerts reader has seen.
#[derive(Default)]
struct AlertView {
    total: u64,
    by_class: BTreeMap<String, u64>,
    attacks: u64,
    latest_attack: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = ids_runtime::telemetry::init(
        "ids-demo",
        &ids_runtime::TelemetrySettings {
            // The demo's own output is the progress display; keep library logs to warnings.
            default_log_filter: "warn,ids_demo=info".into(),
            ..Default::default()
        },
    )?;

    let mut cli = cli;
    if !cli.model.is_file() && cli.model.is_relative() {
        // `cargo run -p ids-demo` from another directory: resolve against the repository.
        let in_repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(&cli.model);
        if in_repo.is_file() {
            cli.model = in_repo;
        }
    }
    if !cli.model.is_file() {
        anyhow::bail!(
            "model artifact {} not found (run from the repository root, or pass --model)",
            cli.model.display()
        );
    }
    if let Some(d) = &cli.dataset {
        if !d.exists() {
            anyhow::bail!("dataset {} not found", d.display());
        }
    }

    // The mock cluster lives as long as this value; its brokers listen on loopback.
    let cluster = MockCluster::new(1).context("starting the embedded broker")?;
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic(FLOWS, cli.partitions, 1)?;
    cluster.create_topic(ALERTS, cli.partitions, 1)?;
    cluster.create_topic(DLQ, 1, 1)?;

    let traffic = match &cli.dataset {
        Some(d) => format!("dataset {}", d.display()),
        None => format!(
            "SYNTHETIC traffic (drawn from the per-class statistics of {}; not real flows)",
            cli.model.display()
        ),
    };
    println!("IDS Stream demo");
    println!("  broker      librdkafka mock cluster at {brokers} (in-process)");
    println!(
        "  topics      {FLOWS} ({} partitions), {ALERTS}, {DLQ}",
        cli.partitions
    );
    println!("  traffic     {traffic}");
    println!("  rate        {} flows/s", fmt_rate(cli.rate));
    println!(
        "  processors  {} in consumer group ids-demo, model {}",
        cli.processors,
        cli.model.display()
    );
    println!(
        "  stop        Ctrl-C{}",
        match cli.duration {
            Some(s) => format!(" or after {s} s"),
            None => String::new(),
        }
    );
    println!();

    let shutdown = CancellationToken::new();

    // Processors first, so the group is forming while the first flows arrive.
    let mut processors = Vec::new();
    for i in 0..cli.processors {
        let cfg = ProcessorConfig {
            brokers: brokers.clone(),
            flows_topic: FLOWS.into(),
            alerts_topic: ALERTS.into(),
            dlq_topic: DLQ.into(),
            group_id: "ids-demo".into(),
            model_path: cli.model.clone(),
            // Benign verdicts too, so "verdicts by class" shows the whole picture.
            emit_benign: true,
            http_addr: "127.0.0.1:0".into(),
            ..ProcessorConfig::default()
        };
        let token = shutdown.child_token();
        processors.push(tokio::spawn(async move {
            let r = ids_processor::run(cfg, token).await;
            if let Err(e) = &r {
                eprintln!("processor {i} failed: {e}");
            }
            r
        }));
    }

    let producer_cfg = ProducerConfig {
        brokers: brokers.clone(),
        flows_topic: FLOWS.into(),
        dataset: Some(match &cli.dataset {
            Some(d) => d.to_string_lossy().into_owned(),
            None => ids_producer::config::SYNTHETIC.into(),
        }),
        model_path: cli.model.clone(),
        rate: cli.rate,
        mode: Mode::Sequential,
        r#loop: true,
        limit: cli.limit,
        key: KeyMode::FiveTuple,
        progress: false,
        ..ProducerConfig::default()
    };
    let stats = ProducerStats::new();
    let producer = {
        let (stats, token) = (stats.clone(), shutdown.child_token());
        tokio::spawn(async move { ids_producer::run_with_stats(producer_cfg, token, stats).await })
    };

    let view = Arc::new(Mutex::new(AlertView::default()));
    let reader = tokio::spawn(read_alerts(
        brokers.clone(),
        view.clone(),
        shutdown.child_token(),
    ));

    // Ctrl-C / SIGTERM / --duration
    {
        let token = shutdown.clone();
        let duration = cli.duration.map(Duration::from_secs);
        tokio::spawn(async move {
            match duration {
                Some(d) => {
                    tokio::select! {
                        _ = ids_runtime::shutdown::signal() => {}
                        _ = tokio::time::sleep(d) => {}
                    }
                }
                None => ids_runtime::shutdown::signal().await,
            }
            token.cancel();
        });
    }

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_sent = 0u64;
    let mut last_verdicts = 0u64;
    let mut last_sample = Instant::now();
    let mut first_alert_at: Option<Duration> = None;
    let mut producer = Some(producer);
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let sent = stats.acknowledged.load(Ordering::Relaxed);
        let (total, line, sample) = {
            let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
            let classes = v
                .by_class
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sample = if last_sample.elapsed() >= Duration::from_secs(cli.sample_every) {
                v.latest_attack.take()
            } else {
                None
            };
            (
                v.total,
                format!("attacks {} | {classes}", v.attacks),
                sample,
            )
        };
        if first_alert_at.is_none() && total > 0 {
            first_alert_at = Some(started.elapsed());
        }
        println!(
            "[{:>4}s] flows {sent} ({} /s) | verdicts {total} ({} /s) | {line}",
            started.elapsed().as_secs(),
            sent.saturating_sub(last_sent),
            total.saturating_sub(last_verdicts),
        );
        last_sent = sent;
        last_verdicts = total;
        if let Some(alert) = sample {
            println!("         sample alert: {alert}");
            last_sample = Instant::now();
        }
        // With --limit the producer ends on its own; keep showing verdicts
        // until the processors have caught up.
        if let Some(p) = producer.as_ref() {
            if p.is_finished() && total >= sent && total > 0 {
                println!("all {sent} flows sent and classified");
                break;
            }
        }
        if processors.iter().all(|p| p.is_finished()) {
            eprintln!("every processor stopped; ending the demo");
            break;
        }
    }
    shutdown.cancel();

    let summary = match producer.take() {
        Some(p) => p.await.context("producer task")?,
        None => unreachable!(),
    };
    let mut failed_processors = 0;
    for p in processors {
        if !matches!(p.await, Ok(Ok(()))) {
            failed_processors += 1;
        }
    }
    let _ = reader.await;
    let producer_ok = match &summary {
        Ok(s) => {
            println!("producer: {s}");
            true
        }
        Err(e) => {
            println!("producer failed: {e}");
            false
        }
    };
    let v = view.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "verdicts: {} ({} attacks){}",
        v.total,
        v.attacks,
        match first_alert_at {
            Some(t) => format!("; first verdict after {:.1} s", t.as_secs_f64()),
            None => String::new(),
        }
    );
    if !producer_ok || failed_processors > 0 {
        anyhow::bail!("the demo did not run cleanly ({failed_processors} processor(s) failed)");
    }
    Ok(())
}

fn fmt_rate(rate: f64) -> String {
    if rate <= 0.0 {
        "as fast as possible".into()
    } else {
        format!("{rate}")
    }
}

/// Reads the alerts topic (its own consumer group) and keeps counts by class
/// and the latest attack alert.
async fn read_alerts(brokers: String, view: Arc<Mutex<AlertView>>, shutdown: CancellationToken) {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "ids-demo-alert-viewer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alerts reader: {e}");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[ALERTS]) {
        eprintln!("alerts reader: {e}");
        return;
    }
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        let Ok(msg) = msg else { continue };
        let Some(payload) = msg.payload() else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(payload) else {
            continue;
        };
        let class = doc["rule"]["name"].as_str().unwrap_or("?").to_string();
        let attack = doc["ids"]["verdict"]["attack"].as_bool().unwrap_or(false);
        let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
        v.total += 1;
        *v.by_class.entry(class).or_insert(0) += 1;
        if attack {
            v.attacks += 1;
            v.latest_attack = Some(summarise_alert(&doc));
        }
    }
}

/// One line per alert: class, confidence, severity, flow, provenance.
fn summarise_alert(doc: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!(
        "{} (confidence {}, severity {}) flow {} label {} from {}/{}@{} event.id {}",
        s(&doc["rule"]["name"]),
        s(&doc["ids"]["verdict"]["confidence"]),
        s(&doc["event"]["severity"]),
        s(&doc["ids"]["flow"]["id"]),
        s(&doc["ids"]["flow"]["label"]),
        s(&doc["ids"]["kafka"]["topic"]),
        s(&doc["ids"]["kafka"]["partition"]),
        s(&doc["ids"]["kafka"]["offset"]),
        s(&doc["event"]["id"]),
    )
}
