//! `ids-bench`: end-to-end benchmarks against a Kafka-protocol broker on
//! loopback (issue 6).
//!
//! * default (throughput): pre-loads N flows into a topic, then per run and
//!   each on a fresh consumer group and a fresh output topic measures
//!   1. `passthrough`: a consumer-group member with the processor's client
//!      settings that copies each record's bytes to another topic, batching,
//!      flushing (acks) and committing exactly like the processor's
//!      at-least-once loop: the ceiling on this machine;
//!   2. `bare`: `ids_processor::run` in this process, no tracing subscriber;
//!   3. `off`: the `ids-processor` binary, tracing off (no OTLP endpoint);
//!   4. `on`: the binary exporting spans over OTLP/gRPC at the default
//!      sampling ratio to an in-process receiver.
//!
//!   Every processor runs with `emit_benign=true`, so every flow yields one
//!   output record, like the passthrough. The rate is measured over the steady
//!   window: from the first output record seen to the N-th (group join and
//!   model load excluded; polled every 20 ms).
//! * `--latency`: a fixed produce rate (flows keyed by flow id, as
//!   ids-producer keys them) through the raw passthrough and through the
//!   processor binary (scenarios `passthrough` and `off`), each run on a fresh
//!   broker when the bench starts its own; end-to-end latency from the moment
//!   each flow is handed to the producer (its produce timestamp) to the
//!   moment its output record is read, split at the output record's
//!   timestamp into the two hops. `--kafka` applies to every client on the
//!   path, the bench's own producer and reader included.
//! * `--producer`: `ids_producer::run` (dataset file → acknowledged records)
//!   against a raw produce of the same pre-encoded bytes with the same keys,
//!   both timed from the creation of their client.
//!
//! `IDS_BENCH_DEBUG=1` prints the passthrough's per-batch phase timings
//! (fill / send / ack wait / commit).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use ids_models::artifact::ModelArtifact;
use ids_schemas::{FlowCodec, FlowRecord};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// End-to-end benchmarks of IDS Stream on a local Kafka-protocol broker.
///
/// Without --brokers it starts Tansu in memory on loopback (TANSU_BIN, else
/// ~/.cache/ids-stream/tansu-0.6.0/bin/tansu). Build the processor binary
/// first: `cargo build --release -p ids-processor -p ids-bench`.
#[derive(Debug, Parser)]
#[command(name = "ids-bench", version, about)]
struct Cli {
    /// Use this broker instead of starting Tansu.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// Number of flows pre-loaded (throughput) or produced (producer mode).
    #[arg(long, default_value_t = 100_000)]
    flows: usize,
    /// Dataset file to read flows from; else $IDS_DATASETS/nsl-kdd/KDDTrain+.txt
    /// when IDS_DATASETS is set; else flows synthesised from the model.
    #[arg(long, value_name = "PATH")]
    dataset: Option<PathBuf>,
    /// Model artifact [default: <workspace>/models/artifacts/nsl-kdd.json].
    #[arg(long, value_name = "PATH")]
    model_path: Option<PathBuf>,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Partitions of every topic created.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Processor (and passthrough) batch size.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Processor (and passthrough) batch timeout in milliseconds.
    #[arg(long, default_value_t = 100)]
    batch_timeout_ms: u64,
    /// The ids-processor binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    processor_bin: Option<PathBuf>,
    /// Scenarios of the throughput mode, comma-separated.
    #[arg(long, default_value = "passthrough,bare,off,on", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Make the passthrough wait for acknowledgements with rdkafka's
    /// `Producer::flush` (as the processor does) instead of polling in 1 ms
    /// slices; shows the cost of rdkafka 0.39's 100 ms flush granularity.
    #[arg(long)]
    passthrough_rdkafka_flush: bool,
    /// Producer mode: run ids-producer with `mode=random`, which parses the
    /// whole dataset into memory before its clock starts ("own figure").
    #[arg(long)]
    producer_random: bool,
    /// Extra librdkafka property for the processor (`--kafka` of
    /// ids-processor), the passthrough's clients and, in latency mode, the
    /// bench's paced producer and alerts reader, e.g.
    /// `--kafka fetch.wait.max.ms=10` (repeatable).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// Extra librdkafka property for the stage under test only (the
    /// processor and the passthrough), applied after `--kafka`, e.g.
    /// `--stage-kafka linger.ms=0` (repeatable).
    #[arg(long = "stage-kafka", value_name = "KEY=VALUE")]
    stage_kafka: Vec<String>,
    /// Give up on one measurement after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Latency mode: fixed produce rate, end-to-end percentiles.
    #[arg(long)]
    latency: bool,
    /// Produce rate of the latency mode, flows/s.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Duration of the latency mode, seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Producer mode: ids_producer::run against a raw produce.
    #[arg(long)]
    producer: bool,
}

impl Cli {
    /// `--kafka` then `--stage-kafka`: the properties of the stage under test.
    fn stage_kafka(&self) -> impl Iterator<Item = &String> {
        self.kafka.iter().chain(&self.stage_kafka)
    }

    /// The same as `KEY=VALUE` pairs.
    fn stage_kafka_pairs(&self) -> Result<Vec<(String, String)>> {
        kafka_pairs(&self.stage_kafka().cloned().collect::<Vec<_>>())
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let model_path = cli
        .model_path
        .clone()
        .unwrap_or_else(|| workspace_root().join("models/artifacts/nsl-kdd.json"));
    let dataset = dataset_path(&cli)?;
    // Keep the broker alive for the whole run.
    let (_tansu, brokers) = match &cli.brokers {
        Some(b) => (None, b.clone()),
        None => {
            let t = ids_e2e::Tansu::start_memory().context("starting tansu")?;
            let b = t.brokers();
            (Some(t), b)
        }
    };
    println!("# ids-bench");
    println!("broker: {brokers}");
    println!(
        "flows: {} from {}",
        cli.flows,
        dataset
            .as_ref()
            .map_or("synthetic (model statistics)".to_string(), |p| p
                .display()
                .to_string())
    );
    println!("model: {}", model_path.display());
    let tag = format!("{}-{}", std::process::id(), unix_ms().rem_euclid(1_000_000));
    if cli.producer {
        producer_mode(&cli, &brokers, dataset.as_deref(), &model_path, &tag).await
    } else if cli.latency {
        // Its own broker per run when the bench owns the broker: Tansu's
        // in-memory engine slows down as it fills (p99 rose from ~35 to ~65 ms
        // over three runs on one broker), which would rank later runs worse.
        let fresh_broker = cli.brokers.is_none();
        drop(_tansu);
        latency_mode(
            &cli,
            (!fresh_broker).then_some(brokers.as_str()),
            dataset.as_deref(),
            &model_path,
            &tag,
        )
        .await
    } else {
        throughput_mode(&cli, &brokers, dataset.as_deref(), &model_path, &tag).await
    }
}

fn dataset_path(cli: &Cli) -> Result<Option<PathBuf>> {
    if let Some(p) = &cli.dataset {
        if !p.exists() {
            bail!("--dataset {} does not exist", p.display());
        }
        return Ok(Some(p.clone()));
    }
    if let Some(root) = std::env::var_os("IDS_DATASETS") {
        let p = PathBuf::from(root).join("nsl-kdd/KDDTrain+.txt");
        if !p.exists() {
            bail!("IDS_DATASETS is set but {} is missing", p.display());
        }
        return Ok(Some(p));
    }
    Ok(None)
}

/// `n` flow records: the dataset's rows in order (cycled when it has fewer),
/// or synthesised from the model artifact.
fn load_records(dataset: Option<&Path>, model_path: &Path, n: usize) -> Result<Vec<FlowRecord>> {
    let mut out = Vec::with_capacity(n);
    match dataset {
        Some(path) => {
            while out.len() < n {
                let before = out.len();
                let reader = ids_models::datasets::open(path)
                    .map_err(|e| anyhow!("opening {}: {e}", path.display()))?;
                for r in reader.flatten() {
                    out.push(r);
                    if out.len() == n {
                        break;
                    }
                }
                if out.len() == before {
                    bail!("{} yields no flow", path.display());
                }
            }
        }
        None => {
            use rand::SeedableRng;
            let artifact = ModelArtifact::load(model_path)
                .map_err(|e| anyhow!("loading {}: {e}", model_path.display()))?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            for _ in 0..n {
                out.push(ids_models::synth::synthesize(&artifact, &mut rng));
            }
        }
    }
    Ok(out)
}

fn encode_all(records: &[FlowRecord]) -> Result<Vec<Vec<u8>>> {
    let codec = FlowCodec::new();
    records
        .iter()
        .map(|r| {
            let mut v = Vec::new();
            codec
                .encode(r, &mut v)
                .map_err(|e| anyhow!("encode: {e}"))?;
            Ok(v)
        })
        .collect()
}

/// Counts failed deliveries: `flush` succeeding only means nothing is queued.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut f = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            f.get_or_insert_with(|| e.to_string());
        }
    }
}

type Prod = BaseProducer<Deliveries>;

fn create_producer(brokers: &str) -> Result<Prod> {
    Ok(producer_config(brokers).create_with_context(Deliveries::default())?)
}

/// The producer settings the processor and ids-producer use (idempotent,
/// librdkafka defaults otherwise).
fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true");
    c
}

/// The processor's consumer settings (processor/src/kafka.rs `consumer_config`).
fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    c
}

/// Sends one record, waiting while librdkafka's queue is full.
fn send_retry(p: &Prod, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
    loop {
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => bail!("send to {topic}: {e}"),
        }
    }
}

/// Waits until every queued record is acknowledged (or failed).
///
/// Not `Producer::flush`: in rdkafka 0.39 it calls `BaseProducer::poll` in
/// 100 ms slices and that `poll` always sleeps its whole timeout, so a flush
/// with anything in flight costs at least 100 ms. This waits as the
/// processor does (`ids_runtime::acks::await_acknowledgements`: no linger, no
/// busy loop). `--passthrough-rdkafka-flush` uses `Producer::flush` instead.
fn flush_with(p: &Prod, rdkafka_flush: bool) -> Result<()> {
    if rdkafka_flush {
        loop {
            match p.flush(Duration::from_secs(1)) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => continue,
                Err(e) => bail!("flush: {e}"),
            }
        }
    } else {
        ids_runtime::acks::await_acknowledgements(p);
    }
    let ctx = p.context();
    let failed = ctx.failed.swap(0, Ordering::Relaxed);
    if failed > 0 {
        let first = ctx
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        bail!(
            "{failed} deliveries failed, first: {}",
            first.unwrap_or_default()
        );
    }
    Ok(())
}

fn flush(p: &Prod) -> Result<()> {
    flush_with(p, false)
}

/// Produces `values` (acknowledged) to `topic`, each with its key when
/// `keys` is given; returns the elapsed time. The clock starts before the
/// producer is created, as it does around `ids_producer::run`, so both sides
/// of the producer comparison pay the same client start-up: an idempotent
/// librdkafka producer waits up to 1 s for its producer id (its PID timer
/// ticks every 500 ms and is not woken when the broker connection comes up).
fn produce_all(
    brokers: &str,
    topic: &str,
    values: &[Vec<u8>],
    keys: Option<&[Option<Vec<u8>>]>,
) -> Result<Duration> {
    let t0 = Instant::now();
    let p = create_producer(brokers)?;
    for (i, v) in values.iter().enumerate() {
        let key = keys.and_then(|k| k[i].as_deref());
        // ids-producer's send discipline, so the comparison isolates what it
        // does besides sending: serve delivery reports every 64 records and,
        // when librdkafka's queue is full, serve them and sleep 5 ms.
        if i % 64 == 0 {
            p.poll(Duration::ZERO);
        }
        loop {
            let mut rec = BaseRecord::<[u8], [u8]>::to(topic)
                .payload(v.as_slice())
                .timestamp(unix_ms());
            if let Some(k) = key {
                rec = rec.key(k);
            }
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::ZERO);
                    thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("send to {topic}: {e}"),
            }
        }
    }
    flush(&p)?;
    Ok(t0.elapsed())
}

/// Record count of topics, by reading them: Tansu 0.6.0's ListOffsets
/// reports high watermarks well short of what a consumer can fetch (seen:
/// 8,500 of 10,000 acknowledged records), so watermarks cannot be trusted.
struct Counter {
    brokers: String,
    readers: HashMap<String, (BaseConsumer, i64)>,
}

impl Counter {
    fn new(brokers: &str) -> Result<Counter> {
        Ok(Counter {
            brokers: brokers.to_string(),
            readers: HashMap::new(),
        })
    }

    /// Records read from `topic` so far (drains what is fetchable now).
    fn count(&mut self, topic: &str) -> Result<i64> {
        if !self.readers.contains_key(topic) {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("group.id", format!("ids-bench-counter-{topic}"))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()?;
            let mut tpl = TopicPartitionList::new();
            for p in ids_e2e::topic_partitions(&self.brokers, topic)? {
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            }
            c.assign(&tpl)?;
            self.readers.insert(topic.to_string(), (c, 0));
        }
        let Some((c, n)) = self.readers.get_mut(topic) else {
            bail!("no reader for {topic}");
        };
        let mut wait = Duration::from_millis(5);
        while let Some(m) = c.poll(wait) {
            if m.is_ok() {
                *n += 1;
            }
            wait = Duration::ZERO;
        }
        Ok(*n)
    }
}

/// Throughput of one scenario.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Flows/s over the steady window (first output record to the N-th).
    steady: f64,
    /// Flows/s from the start of the scenario (join and model load included).
    total: f64,
    /// Peak RSS in MiB (None when in-process).
    rss_mib: Option<f64>,
}

/// Polls the output topic until it holds `n` records.
fn wait_output(
    counter: &mut Counter,
    topic: &str,
    n: i64,
    started: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let c = counter.count(topic)?;
        let now = Instant::now();
        if c > 0 && first.is_none() {
            first = Some((now, c));
        }
        if c >= n {
            let (t1, c1) = first.unwrap_or((started, 0));
            let steady_secs = now.duration_since(t1).as_secs_f64();
            let steady = if steady_secs > 0.0 {
                (n - c1) as f64 / steady_secs
            } else {
                f64::INFINITY
            };
            let total = n as f64 / now.duration_since(started).as_secs_f64();
            return Ok((steady, total));
        }
        if now.duration_since(started) > timeout {
            bail!("{topic}: {c} of {n} records after {timeout:?}");
        }
        alive()?;
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts [`passthrough_loop`] on its own thread with the stage settings of
/// `cli`; it runs until the returned flag is set.
fn spawn_passthrough(
    cli: &Cli,
    brokers: &str,
    group: &str,
    input: &str,
    output: &str,
) -> Result<(Arc<AtomicBool>, thread::JoinHandle<Result<()>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (b, g, i, o, st) = (
        brokers.to_string(),
        group.to_string(),
        input.to_string(),
        output.to_string(),
        stop.clone(),
    );
    let (bs, bt) = (cli.batch_size, Duration::from_millis(cli.batch_timeout_ms));
    let (rf, extra) = (cli.passthrough_rdkafka_flush, cli.stage_kafka_pairs()?);
    let handle = thread::spawn(move || passthrough_loop(&b, &g, &i, &o, bs, bt, rf, &extra, &st));
    Ok((stop, handle))
}

/// The passthrough member: the processor's batch loop with the model and
/// codec taken out.
#[allow(clippy::too_many_arguments)]
fn passthrough_loop(
    brokers: &str,
    group: &str,
    input: &str,
    output: &str,
    batch_size: usize,
    batch_timeout: Duration,
    rdkafka_flush: bool,
    extra: &[(String, String)],
    stop: &AtomicBool,
) -> Result<()> {
    let mut cc = consumer_config(brokers, group);
    let mut pc = producer_config(brokers);
    for (k, v) in extra {
        cc.set(k, v);
        pc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create()?;
    consumer.subscribe(&[input])?;
    let producer: Prod = pc.create_with_context(Deliveries::default())?;
    let slice = Duration::from_millis(100);
    let mut last: HashMap<i32, i64> = HashMap::new();
    let debug = std::env::var_os("IDS_BENCH_DEBUG").is_some();
    while !stop.load(Ordering::Relaxed) {
        let first = match consumer.poll(slice) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                eprintln!("passthrough poll: {e}");
                continue;
            }
            None => continue,
        };
        let deadline = Instant::now() + batch_timeout;
        let mut batch = vec![first];
        // As in the processor: whole-millisecond waits (rdkafka 0.39
        // busy-loops through a sub-millisecond rest of a poll timeout), and
        // records already fetched are taken past the deadline too.
        while batch.len() < batch_size {
            let rest = deadline.saturating_duration_since(Instant::now());
            let wait = Duration::from_millis(rest.as_nanos().div_ceil(1_000_000) as u64);
            match consumer.poll(wait.min(slice)) {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => eprintln!("passthrough poll: {e}"),
                None if wait.is_zero() => break,
                None => {}
            }
        }
        let t_fill = Instant::now();
        last.clear();
        for m in &batch {
            send_retry(&producer, output, m.key(), m.payload().unwrap_or_default())?;
            producer.poll(Duration::ZERO);
            let e = last.entry(m.partition()).or_insert(m.offset());
            *e = (*e).max(m.offset());
        }
        let t_sent = Instant::now();
        flush_with(&producer, rdkafka_flush)?;
        let t_flushed = Instant::now();
        let mut tpl = TopicPartitionList::with_capacity(last.len());
        for (p, o) in &last {
            tpl.add_partition_offset(input, *p, Offset::Offset(o + 1))?;
        }
        drop(batch);
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            eprintln!("passthrough commit: {e}");
        }
        if debug {
            let n = t_fill.duration_since(deadline - batch_timeout);
            eprintln!(
                "partitions {} fill {:?} send {:?} flush {:?} commit {:?}",
                last.len(),
                n,
                t_sent - t_fill,
                t_flushed - t_sent,
                t_flushed.elapsed()
            );
        }
    }
    consumer.unsubscribe();
    Ok(())
}

fn kafka_pairs(kv: &[String]) -> Result<Vec<(String, String)>> {
    kv.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--kafka {s} is not KEY=VALUE"))
        })
        .collect()
}

/// Peak resident set (VmHWM) of a process, in MiB.
fn vm_hwm_mib(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn processor_bin(cli: &Cli) -> Result<PathBuf> {
    let p = match &cli.processor_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("ids-processor"))
            .ok_or_else(|| anyhow!("cannot locate the ids-processor binary"))?,
    };
    if !p.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p ids-processor` or pass --processor-bin",
            p.display()
        );
    }
    Ok(p)
}

/// A spawned ids-processor, SIGTERMed (then killed) on drop.
struct ProcessorChild {
    child: Child,
    log: PathBuf,
}

impl ProcessorChild {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        cli: &Cli,
        brokers: &str,
        model: &Path,
        input: &str,
        output: &str,
        group: &str,
        otel: &[(String, String)],
        log_name: &str,
    ) -> Result<ProcessorChild> {
        let bin = processor_bin(cli)?;
        let port = ids_e2e::free_port()?;
        let log = std::env::temp_dir().join(format!("ids-bench-{log_name}.log"));
        let out = File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--brokers",
            brokers,
            "--flows-topic",
            input,
            "--alerts-topic",
            output,
            "--dlq-topic",
            &format!("{input}.dlq"),
            "--group-id",
            group,
            "--emit-benign=true",
            "--batch-size",
            &cli.batch_size.to_string(),
            "--batch-timeout-ms",
            &cli.batch_timeout_ms.to_string(),
            "--http-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--model-path")
        .arg(model)
        .args(cli.stage_kafka().flat_map(|kv| ["--kafka", kv.as_str()]))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
        for k in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in otel {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("spawning ids-processor")?;
        Ok(ProcessorChild { child, log })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("ids-processor exited early ({st}); log:\n{log}");
        }
        Ok(())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid()]).status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProcessorChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn throughput_mode(
    cli: &Cli,
    brokers: &str,
    dataset: Option<&Path>,
    model: &Path,
    tag: &str,
) -> Result<()> {
    let n = cli.flows;
    let records = load_records(dataset, model, n)?;
    let values = encode_all(&records)?;
    drop(records);
    let bytes: usize = values.iter().map(Vec::len).sum();
    let input = format!("bench-flows-{tag}");
    ids_e2e::create_topic(brokers, &input, cli.partitions).await?;
    let took = produce_all(brokers, &input, &values, None)?;
    drop(values);
    println!(
        "pre-loaded {n} flows ({:.0} B avg) into {input} ({} partitions) in {:.2} s",
        bytes as f64 / n as f64,
        cli.partitions,
        took.as_secs_f64()
    );
    let receiver = if cli.scenarios.iter().any(|s| s == "on") {
        Some(ids_e2e::otlp::OtlpReceiver::start().await?)
    } else {
        None
    };
    let timeout = Duration::from_secs(cli.timeout_secs);
    let mut counter = Counter::new(brokers)?;
    let mut results: HashMap<String, Vec<Sample>> = HashMap::new();
    for run in 0..cli.runs {
        for scenario in &cli.scenarios {
            let output = format!("bench-out-{scenario}-{run}-{tag}");
            let group = format!("bench-{scenario}-{run}-{tag}");
            ids_e2e::create_topic(brokers, &output, cli.partitions).await?;
            let started = Instant::now();
            let sample = match scenario.as_str() {
                "passthrough" => {
                    let (stop, h) = spawn_passthrough(cli, brokers, &group, &input, &output)?;
                    let r = tokio::task::block_in_place(|| {
                        wait_output(&mut counter, &output, n as i64, started, timeout, || {
                            if h.is_finished() {
                                bail!("passthrough stopped early");
                            }
                            Ok(())
                        })
                    });
                    stop.store(true, Ordering::Relaxed);
                    let joined = h.join().map_err(|_| anyhow!("passthrough panicked"))?;
                    let (steady, total) = r?;
                    joined?;
                    Sample {
                        steady,
                        total,
                        rss_mib: None,
                    }
                }
                "bare" => {
                    let cfg = ids_processor::ProcessorConfig {
                        brokers: brokers.to_string(),
                        flows_topic: input.clone(),
                        alerts_topic: output.clone(),
                        dlq_topic: format!("{input}.dlq"),
                        group_id: group.clone(),
                        model_path: model.to_path_buf(),
                        emit_benign: true,
                        batch_size: cli.batch_size,
                        batch_timeout_ms: cli.batch_timeout_ms,
                        http_addr: format!("127.0.0.1:{}", ids_e2e::free_port()?),
                        ..Default::default()
                    };
                    let token = CancellationToken::new();
                    let task = tokio::spawn(ids_processor::run(cfg, token.clone()));
                    let r = tokio::task::block_in_place(|| {
                        wait_output(&mut counter, &output, n as i64, started, timeout, || {
                            if task.is_finished() {
                                bail!("in-process processor stopped early");
                            }
                            Ok(())
                        })
                    });
                    token.cancel();
                    let end = task.await?;
                    let (steady, total) = r?;
                    end.map_err(|e| anyhow!("processor: {e}"))?;
                    Sample {
                        steady,
                        total,
                        rss_mib: None,
                    }
                }
                "off" | "on" => {
                    let otel = match (&receiver, scenario.as_str()) {
                        (Some(r), "on") => vec![
                            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), r.grpc_endpoint()),
                            (
                                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                                "grpc".to_string(),
                            ),
                        ],
                        _ => Vec::new(),
                    };
                    let mut child = ProcessorChild::spawn(
                        cli,
                        brokers,
                        model,
                        &input,
                        &output,
                        &group,
                        &otel,
                        &format!("{scenario}-{run}"),
                    )?;
                    let r = tokio::task::block_in_place(|| {
                        wait_output(&mut counter, &output, n as i64, started, timeout, || {
                            child.check_alive()
                        })
                    });
                    let rss = vm_hwm_mib(&child.pid());
                    child.stop();
                    let (steady, total) = r?;
                    Sample {
                        steady,
                        total,
                        rss_mib: rss,
                    }
                }
                other => bail!("unknown scenario {other}"),
            };
            println!(
                "run {run} {scenario:<11} steady {:>9.0} flows/s  total {:>9.0} flows/s  peak RSS {}",
                sample.steady,
                sample.total,
                sample
                    .rss_mib
                    .map_or("n/a (in-process)".to_string(), |m| format!("{m:.1} MiB"))
            );
            results.entry(scenario.clone()).or_default().push(sample);
        }
    }
    if let Some(r) = &receiver {
        println!(
            "otlp receiver: {} spans in {} requests",
            r.store().len(),
            r.store().requests()
        );
    }
    // Per-run ratios to that run's passthrough, then medians.
    let base: Vec<f64> = results
        .get("passthrough")
        .map(|v| v.iter().map(|s| s.steady).collect())
        .unwrap_or_default();
    let bare: Vec<f64> = results
        .get("bare")
        .map(|v| v.iter().map(|s| s.steady).collect())
        .unwrap_or_default();
    println!();
    println!(
        "| scenario | median flows/s (steady) | median flows/s (incl. join) | ratio to passthrough | ratio to bare | peak RSS (max) |"
    );
    println!("|---|---|---|---|---|---|");
    for scenario in &cli.scenarios {
        let Some(v) = results.get(scenario) else {
            continue;
        };
        let mut steady: Vec<f64> = v.iter().map(|s| s.steady).collect();
        let mut total: Vec<f64> = v.iter().map(|s| s.total).collect();
        let mut ratio: Vec<f64> = v.iter().zip(&base).map(|(s, b)| s.steady / b).collect();
        let mut ratio_bare: Vec<f64> = v.iter().zip(&bare).map(|(s, b)| s.steady / b).collect();
        let rss = v
            .iter()
            .filter_map(|s| s.rss_mib)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
        println!(
            "| {scenario} | {:.0} | {:.0} | {:.3} | {:.3} | {} |",
            median(&mut steady),
            median(&mut total),
            median(&mut ratio),
            median(&mut ratio_bare),
            rss.map_or("n/a".to_string(), |m| format!("{m:.1} MiB"))
        );
    }
    Ok(())
}

/// Wall-clock milliseconds since the Unix epoch (Kafka's timestamp unit).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One stage under the latency mode: the raw passthrough (a thread of this
/// process) or the `ids-processor` binary.
enum LatencyStage {
    Passthrough {
        stop: Arc<AtomicBool>,
        handle: thread::JoinHandle<Result<()>>,
    },
    Processor(ProcessorChild),
}

impl LatencyStage {
    fn check_alive(&mut self) -> Result<()> {
        match self {
            LatencyStage::Passthrough { handle, .. } => {
                if handle.is_finished() {
                    bail!("passthrough stopped early");
                }
                Ok(())
            }
            LatencyStage::Processor(child) => child.check_alive(),
        }
    }

    /// Stops the stage; the processor's peak RSS in MiB when it has one.
    fn stop(self) -> Result<Option<f64>> {
        match self {
            LatencyStage::Passthrough { stop, handle } => {
                stop.store(true, Ordering::Relaxed);
                handle
                    .join()
                    .map_err(|_| anyhow!("passthrough panicked"))??;
                Ok(None)
            }
            LatencyStage::Processor(mut child) => {
                let rss = vm_hwm_mib(&child.pid());
                child.stop();
                Ok(rss)
            }
        }
    }
}

/// Percentiles of one latency run, in milliseconds.
struct LatencySample {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    /// p99 of flow produced -> output produced (the output record's CreateTime).
    first_hop_p99: f64,
    /// p99 of output produced -> output read.
    second_hop_p99: f64,
    rss_mib: Option<f64>,
}

/// Latency mode: for each scenario (`passthrough` and `off`, the processor
/// binary without tracing) and run, a fresh input and output topic, a fixed
/// produce rate, and the time from handing each flow to the producer to
/// reading its output record.
async fn latency_mode(
    cli: &Cli,
    brokers: Option<&str>,
    dataset: Option<&Path>,
    model: &Path,
    tag: &str,
) -> Result<()> {
    let total = (cli.rate * cli.duration as f64).round() as usize;
    let pool = load_records(dataset, model, total.clamp(1, 20_000))?;
    let scenarios: Vec<&str> = cli
        .scenarios
        .iter()
        .map(String::as_str)
        .filter(|s| matches!(*s, "passthrough" | "off"))
        .collect();
    if scenarios.is_empty() {
        bail!("the latency mode runs the scenarios passthrough and off; none of them is in --scenarios");
    }
    println!(
        "latency: {} flows/s for {} s per run, {} run(s), scenarios {}, {}",
        cli.rate,
        cli.duration,
        cli.runs,
        scenarios.join(","),
        brokers.map_or("a fresh Tansu (memory) per run".to_string(), |b| format!(
            "broker {b}"
        ))
    );
    println!(
        "| run | scenario | p50 ms | p99 ms | p999 ms | max ms | p99 flow -> output produced | p99 output produced -> read | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut results: Vec<(&str, Vec<LatencySample>)> =
        scenarios.iter().map(|s| (*s, Vec::new())).collect();
    for run in 0..cli.runs {
        for (scenario, samples) in results.iter_mut() {
            let fresh = match brokers {
                Some(_) => None,
                None => Some(ids_e2e::Tansu::start_memory().context("starting tansu")?),
            };
            let b = fresh
                .as_ref()
                .map_or_else(|| brokers.unwrap_or_default().to_string(), |t| t.brokers());
            let s = latency_run(
                cli,
                &b,
                &pool,
                model,
                &format!("{scenario}-{run}-{tag}"),
                scenario,
            )
            .await
            .with_context(|| format!("latency run {run}, scenario {scenario}"))?;
            drop(fresh);
            println!(
                "| {run} | {scenario} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
                s.p50,
                s.p99,
                s.p999,
                s.max,
                s.first_hop_p99,
                s.second_hop_p99,
                s.rss_mib
                    .map_or("n/a".to_string(), |m| format!("{m:.1} MiB"))
            );
            samples.push(s);
        }
    }
    println!();
    println!(
        "medians of {} run(s); rate {} flows/s, batch_size {}, batch_timeout_ms {}, --kafka {:?}, --stage-kafka {:?}",
        cli.runs, cli.rate, cli.batch_size, cli.batch_timeout_ms, cli.kafka, cli.stage_kafka
    );
    println!("| scenario | p50 ms | p99 ms | p999 ms | p99 ratio to passthrough |");
    println!("|---|---|---|---|---|");
    let mut base_p99: Option<f64> = None;
    for (scenario, samples) in &results {
        let mut p50: Vec<f64> = samples.iter().map(|s| s.p50).collect();
        let mut p99: Vec<f64> = samples.iter().map(|s| s.p99).collect();
        let mut p999: Vec<f64> = samples.iter().map(|s| s.p999).collect();
        let m99 = median(&mut p99);
        if *scenario == "passthrough" {
            base_p99 = Some(m99);
        }
        println!(
            "| {scenario} | {:.1} | {:.1} | {:.1} | {} |",
            median(&mut p50),
            m99,
            median(&mut p999),
            base_p99.map_or("n/a".to_string(), |b| format!("{:.2}", m99 / b))
        );
    }
    Ok(())
}

/// One latency measurement of one scenario.
async fn latency_run(
    cli: &Cli,
    brokers: &str,
    pool: &[FlowRecord],
    model: &Path,
    tag: &str,
    scenario: &str,
) -> Result<LatencySample> {
    let total = (cli.rate * cli.duration as f64).round() as usize;
    let input = format!("bench-lat-flows-{tag}");
    let output = format!("bench-lat-out-{tag}");
    ids_e2e::create_topic(brokers, &input, cli.partitions).await?;
    ids_e2e::create_topic(brokers, &output, cli.partitions).await?;
    let group = format!("bench-lat-{tag}");
    // The bench's own producer and reader take the same `--kafka` overrides
    // as the stage under test, so one flag sets e.g. linger.ms or
    // fetch.wait.max.ms for every client on the path being timed.
    let extra = kafka_pairs(&cli.kafka)?;
    let mut stage = match scenario {
        "passthrough" => {
            let (stop, handle) = spawn_passthrough(cli, brokers, &group, &input, &output)?;
            LatencyStage::Passthrough { stop, handle }
        }
        _ => LatencyStage::Processor(ProcessorChild::spawn(
            cli,
            brokers,
            model,
            &input,
            &output,
            &group,
            &[],
            &format!("latency-{tag}"),
        )?),
    };
    let result = latency_measure(
        cli, brokers, pool, &input, &output, &extra, total, &mut stage,
    )
    .await;
    let rss = stage.stop()?;
    let mut sample = result?;
    sample.rss_mib = rss;
    Ok(sample)
}

/// Warm-up, paced produce and collection for one latency run.
#[allow(clippy::too_many_arguments)]
async fn latency_measure(
    cli: &Cli,
    brokers: &str,
    pool: &[FlowRecord],
    input: &str,
    output: &str,
    extra: &[(String, String)],
    total: usize,
    stage: &mut LatencyStage,
) -> Result<LatencySample> {
    // Warm-up: one flow through, so the group is joined before timing.
    let codec = FlowCodec::new();
    let producer: Prod = {
        let mut pc = producer_config(brokers);
        for (k, v) in extra {
            pc.set(k, v);
        }
        pc.create_with_context(Deliveries::default())?
    };
    let mut buf = Vec::new();
    codec
        .encode(&pool[0], &mut buf)
        .map_err(|e| anyhow!("encode: {e}"))?;
    send_retry(&producer, input, None, &buf)?;
    flush(&producer)?;
    let mut counter = Counter::new(brokers)?;
    tokio::task::block_in_place(|| {
        wait_output(
            &mut counter,
            output,
            1,
            Instant::now(),
            Duration::from_secs(60),
            || stage.check_alive(),
        )
    })?;

    // The reader: assigned (no group join) to every output partition. It
    // reports ready once it has read the warm-up record, so that its own
    // start-up (metadata, first fetches) is not counted as latency. It finds
    // the flow's sequence number in the alert's `ids.flow.id` or, for the
    // passthrough, in the copied Avro record's flow id.
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let (b, o, stop) = (brokers.to_string(), output.to_string(), stop.clone());
        let parts = ids_e2e::topic_partitions(brokers, output)?;
        let extra = extra.to_vec();
        thread::spawn(move || -> Result<Vec<(usize, Instant, i64, i64)>> {
            let mut cc = ClientConfig::new();
            cc.set("bootstrap.servers", &b)
                .set("group.id", "ids-bench-latency-reader")
                .set("enable.auto.commit", "false");
            for (k, v) in &extra {
                cc.set(k, v);
            }
            let c: BaseConsumer = cc.create()?;
            let mut tpl = TopicPartitionList::new();
            for p in parts {
                tpl.add_partition_offset(&o, p, Offset::Beginning)?;
            }
            c.assign(&tpl)?;
            let codec = FlowCodec::new();
            let mut seen = Vec::new();
            let mut ready = Some(ready_tx);
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = c.poll(Duration::from_millis(20)) else {
                    continue;
                };
                let at = Instant::now();
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                let Some(payload) = m.payload() else { continue };
                let flow_id = match serde_json::from_slice::<serde_json::Value>(payload) {
                    Ok(doc) => doc["ids"]["flow"]["id"].as_str().map(str::to_string),
                    Err(_) => codec.decode(payload).ok().and_then(|r| r.flow_id),
                };
                if let Some(seq) = flow_id
                    .as_deref()
                    .and_then(|s| s.strip_prefix("lat-"))
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    let created = m.timestamp().to_millis().unwrap_or(0);
                    seen.push((seq, at, created, unix_ms()));
                }
            }
            Ok(seen)
        })
    };
    let ready = ready_rx.recv_timeout(Duration::from_secs(60));
    if ready.is_err() {
        stop.store(true, Ordering::Relaxed);
        let _ = reader.join();
        bail!("the latency reader read nothing from {output} within 60 s");
    }

    // The paced producer (same client settings as ids-producer).
    let period = Duration::from_secs_f64(1.0 / cli.rate);
    let mut sent: Vec<Instant> = Vec::with_capacity(total);
    let mut sent_unix_ms: Vec<i64> = Vec::with_capacity(total);
    let t0 = Instant::now();
    let produced = tokio::task::block_in_place(|| -> Result<()> {
        let mut rec = FlowRecord::default();
        for seq in 0..total {
            // Sleep, never spin, until the flow is due: a spinning pacer
            // takes a whole core of this 2-core machine from the broker and
            // the stage under test. A late wake-up only delays the send, and
            // the clock starts at the send.
            let due = t0 + period.mul_f64(seq as f64);
            let now = Instant::now();
            if now < due {
                thread::sleep(due - now);
            }
            rec.clone_from(&pool[seq % pool.len()]);
            let flow_id = format!("lat-{seq}");
            buf.clear();
            rec.flow_id = Some(flow_id);
            codec
                .encode(&rec, &mut buf)
                .map_err(|e| anyhow!("encode: {e}"))?;
            // Keyed by flow id, as ids-producer does by default: both stages
            // then key their output the same way (the passthrough copies the
            // key, the processor keeps the flow's key on its alert).
            let key = rec.flow_id.as_deref().map(str::as_bytes);
            sent.push(Instant::now());
            sent_unix_ms.push(unix_ms());
            send_retry(&producer, input, key, &buf)?;
            producer.poll(Duration::ZERO);
        }
        flush(&producer)
    });
    let produce_secs = t0.elapsed().as_secs_f64();
    // Let the tail arrive.
    let tail = produced.and_then(|()| {
        tokio::task::block_in_place(|| {
            wait_output(
                &mut counter,
                output,
                total as i64 + 1,
                Instant::now(),
                Duration::from_secs(60),
                || stage.check_alive(),
            )
        })
    });
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let seen = reader
        .join()
        .map_err(|_| anyhow!("latency reader panicked"))??;
    tail?;
    // Besides the whole latency, split it at the output record's Kafka
    // timestamp (CreateTime, set by the stage when it produces; wall clock,
    // so millisecond resolution): flow produced -> output produced (the flows
    // hop plus the stage) and output produced -> output read.
    let mut lat: Vec<f64> = Vec::with_capacity(seen.len());
    let mut first_hop: Vec<f64> = Vec::with_capacity(seen.len());
    let mut second_hop: Vec<f64> = Vec::with_capacity(seen.len());
    let mut got = vec![false; total];
    for (seq, at, created, read) in seen {
        if seq < total && !got[seq] {
            got[seq] = true;
            lat.push(at.duration_since(sent[seq]).as_secs_f64() * 1e3);
            first_hop.push((created - sent_unix_ms[seq]) as f64);
            second_hop.push((read - created) as f64);
        }
    }
    if lat.len() < total {
        bail!(
            "{} of {total} flows without a matched output record (produced at {:.0} flows/s)",
            total - lat.len(),
            total as f64 / produce_secs
        );
    }
    for v in [&mut lat, &mut first_hop, &mut second_hop] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    Ok(LatencySample {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        p999: percentile(&lat, 0.999),
        max: lat.last().copied().unwrap_or(f64::NAN),
        first_hop_p99: percentile(&first_hop, 0.99),
        second_hop_p99: percentile(&second_hop, 0.99),
        rss_mib: None,
    })
}

async fn producer_mode(
    cli: &Cli,
    brokers: &str,
    dataset: Option<&Path>,
    model: &Path,
    tag: &str,
) -> Result<()> {
    let n = cli.flows;
    let t0 = Instant::now();
    let mut records = load_records(dataset, model, n)?;
    let t_load = t0.elapsed().as_secs_f64();
    // The raw produce sends what ids-producer sends: the same records with
    // the flow ids it assigns (`<file>#<line>`, exact for NSL-KDD's
    // header-less files; `synthetic#<n>` without a dataset) and the keys of its
    // default key mode, so both spread over the partitions alike.
    let name = dataset
        .and_then(Path::file_name)
        .map_or("synthetic".to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
    for (i, r) in records.iter_mut().enumerate() {
        r.flow_id = Some(format!("{name}#{}", i + 1));
    }
    let key_mode = ids_producer::ProducerConfig::default().key;
    let keys: Vec<Option<Vec<u8>>> = records
        .iter()
        .map(|r| {
            let mut buf = [0u8; 16];
            ids_producer::record_key(key_mode, r, &mut buf).map(<[u8]>::to_vec)
        })
        .collect();
    let t_enc0 = Instant::now();
    let values = encode_all(&records)?;
    let t_enc = t_enc0.elapsed().as_secs_f64();
    drop(records);
    println!(
        "reading + parsing {n} flows: {:.2} s ({:.1} µs/flow); Avro encoding: {:.3} s ({:.2} µs/flow); one thread",
        t_load,
        t_load * 1e6 / n as f64,
        t_enc,
        t_enc * 1e6 / n as f64
    );
    let mut prod = Vec::new();
    let mut raw = Vec::new();
    let mut ratio = Vec::new();
    for run in 0..cli.runs {
        let t_prod = format!("bench-prod-{run}-{tag}");
        let t_raw = format!("bench-raw-{run}-{tag}");
        ids_e2e::create_topic(brokers, &t_prod, cli.partitions).await?;
        ids_e2e::create_topic(brokers, &t_raw, cli.partitions).await?;
        let cfg = ids_producer::ProducerConfig {
            brokers: brokers.to_string(),
            flows_topic: t_prod.clone(),
            dataset: Some(dataset.map_or("synthetic".to_string(), |p| p.display().to_string())),
            model_path: model.to_path_buf(),
            limit: Some(n as u64),
            // Cycle the file when N exceeds its rows, as load_records does.
            r#loop: true,
            progress: false,
            mode: if cli.producer_random {
                ids_producer::Mode::Random
            } else {
                ids_producer::Mode::Sequential
            },
            ..Default::default()
        };
        // Alternate which side goes first: the broker holds more data for
        // the second one, and Tansu's in-memory engine is not indifferent
        // to that.
        let raw_first = run % 2 == 1;
        let raw_produce = || {
            tokio::task::block_in_place(|| produce_all(brokers, &t_raw, &values, Some(&keys)))
                .map(|d| d.as_secs_f64())
        };
        let r_first = if raw_first {
            Some(raw_produce()?)
        } else {
            None
        };
        let t0 = Instant::now();
        let summary = ids_producer::run(cfg, CancellationToken::new())
            .await
            .map_err(|e| anyhow!("producer: {e}"))?;
        let p_secs = t0.elapsed().as_secs_f64();
        if summary.acknowledged != n as u64 {
            bail!("producer acknowledged {} of {n}", summary.acknowledged);
        }
        let r_secs = match r_first {
            Some(r) => r,
            None => raw_produce()?,
        };
        let (p, r) = (n as f64 / p_secs, n as f64 / r_secs);
        println!(
            "run {run} ids-producer {p:>9.0} flows/s (own figure {:.0})  raw {r:>9.0} flows/s  ratio {:.3}  ({} first)",
            summary.throughput,
            p / r,
            if raw_first { "raw" } else { "ids-producer" }
        );
        prod.push(p);
        raw.push(r);
        ratio.push(p / r);
    }
    println!();
    println!("medians of {} run(s), {n} flows each", cli.runs);
    println!("| producer median flows/s | raw produce median flows/s | median ratio |");
    println!("|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.3} |",
        median(&mut prod),
        median(&mut raw),
        median(&mut ratio)
    );
    Ok(())
}
