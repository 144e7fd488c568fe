//! Helpers for the processor's end-to-end tests (`tests/processor_e2e.rs`):
//! the model artifact the processors and the offline check share, generated
//! NSL-KDD input, processor environments, an alert collector and the
//! verdict bookkeeping (exactly one verdict per flow record, duplicates
//! identical).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ids_models::datasets::{self, DatasetFormat};
use ids_schemas::{FlowRecord, NslKddFeatures, SourceDataset};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

use crate::{free_port, fresh_group, topic_partitions, workspace_root};

/// Kept alive for the whole test process: the trained fallback model.
static MODEL_DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

/// The model artifact the tests run the processors with: the committed
/// `models/artifacts/nsl-kdd.json` when present, else a small model trained
/// here on generated NSL-KDD-shaped records (so the tests run anywhere).
pub fn model_path() -> anyhow::Result<PathBuf> {
    let committed = workspace_root().join("models/artifacts/nsl-kdd.json");
    if committed.is_file() {
        return Ok(committed);
    }
    if let Some(d) = MODEL_DIR.get() {
        return Ok(d.path().join("model.json"));
    }
    let dir = tempfile::Builder::new().prefix("ids-e2e-model").tempdir()?;
    let path = dir.path().join("model.json");
    let records: Vec<FlowRecord> = (0..600).map(synthetic_flow).collect();
    let params = ids_models::train::TrainParams {
        validation_split: 0.0,
        ..Default::default()
    };
    let meta = ids_models::train::TrainMeta {
        name: "e2e-fallback".into(),
        version: "1".into(),
        ..Default::default()
    };
    let out = ids_models::train::train(&records, None, &params, &meta)
        .map_err(|e| anyhow::anyhow!("training the fallback model: {e}"))?;
    out.artifact.save(&path)?;
    let _ = MODEL_DIR.set(dir);
    Ok(MODEL_DIR
        .get()
        .map(|d| d.path().join("model.json"))
        .unwrap_or(path))
}

/// Row `i` of the generated traffic as a record (normal, neptune, satan
/// mixed); [`nsl_kdd_line`] is the same row as a dataset line.
pub fn synthetic_flow(i: usize) -> FlowRecord {
    let (label, service, flag, count, serror, rerror) = match i % 3 {
        0 => ("neptune", "private", "S0", 150 + i % 100, 1.0, 0.0),
        1 => ("normal", "http", "SF", 1 + i % 20, 0.0, 0.0),
        _ => ("satan", "other", "REJ", 2 + i % 10, 0.0, 1.0),
    };
    FlowRecord {
        source: SourceDataset::NslKdd,
        label: Some(label.into()),
        nsl_kdd: Some(NslKddFeatures {
            protocol_type: "tcp".into(),
            service: service.into(),
            flag: flag.into(),
            src_bytes: if label == "normal" {
                200 + (i % 300) as i64
            } else {
                0
            },
            dst_bytes: if label == "normal" {
                1000 + (i % 700) as i64
            } else {
                0
            },
            logged_in: label == "normal",
            count: count as i32,
            srv_count: 1 + (i % 30) as i32,
            serror_rate: serror,
            srv_serror_rate: serror,
            rerror_rate: rerror,
            srv_rerror_rate: rerror,
            same_srv_rate: if label == "normal" { 1.0 } else { 0.05 },
            diff_srv_rate: if label == "normal" { 0.0 } else { 0.07 },
            dst_host_count: 255,
            dst_host_srv_count: (1 + i % 255) as i32,
            dst_host_same_srv_rate: if label == "normal" { 1.0 } else { 0.04 },
            dst_host_serror_rate: serror,
            dst_host_srv_serror_rate: serror,
            dst_host_rerror_rate: rerror,
            dst_host_srv_rerror_rate: rerror,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// [`synthetic_flow`] `i` as an NSL-KDD dataset line (43 fields).
pub fn nsl_kdd_line(i: usize) -> String {
    let r = synthetic_flow(i);
    let f = r.nsl_kdd.clone().unwrap_or_default();
    let b = |v: bool| if v { "1" } else { "0" };
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{}",
        f.duration, f.protocol_type, f.service, f.flag, f.src_bytes, f.dst_bytes, b(f.land),
        f.wrong_fragment, f.urgent, f.hot, f.num_failed_logins, b(f.logged_in), f.num_compromised,
        f.root_shell, f.su_attempted, f.num_root, f.num_file_creations, f.num_shells,
        f.num_access_files, f.num_outbound_cmds, b(f.is_host_login), b(f.is_guest_login),
        f.count, f.srv_count, f.serror_rate, f.srv_serror_rate, f.rerror_rate, f.srv_rerror_rate,
        f.same_srv_rate, f.diff_srv_rate, f.srv_diff_host_rate, f.dst_host_count,
        f.dst_host_srv_count, f.dst_host_same_srv_rate, f.dst_host_diff_srv_rate,
        f.dst_host_same_src_port_rate, f.dst_host_srv_diff_host_rate, f.dst_host_serror_rate,
        f.dst_host_srv_serror_rate, f.dst_host_rerror_rate, f.dst_host_srv_rerror_rate,
        r.label.as_deref().unwrap_or("normal"), 21,
    )
}

/// Writes `rows` generated NSL-KDD lines to `dir/name`.
pub fn write_generated_dataset(dir: &Path, name: &str, rows: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..rows {
        writeln!(f, "{}", nsl_kdd_line(i))?;
    }
    f.flush()?;
    Ok(path)
}

/// Offline predictions for the first `limit` rows of a dataset, keyed by the
/// flow id the producer gives a row without one (`<file name>#<line>`, the
/// same rule as `ids-producer`). Rows the model cannot classify map to
/// `Err(kind)`.
pub fn offline_predictions(
    model: &Path,
    dataset: &Path,
    limit: usize,
) -> anyhow::Result<HashMap<String, Result<String, String>>> {
    let artifact = ids_models::ModelArtifact::load(model)?;
    let clf = ids_models::Classifier::new(&artifact);
    let mut reader = datasets::open(dataset)?;
    let mut out = HashMap::with_capacity(limit);
    while out.len() < limit {
        let Some(item) = reader.next() else { break };
        let Ok(mut rec) = item else { continue };
        if rec.flow_id.is_none() {
            let Some(file) = reader.report().files.last() else {
                bail!("reader has no file report")
            };
            let header = u64::from(file.format != DatasetFormat::NslKdd);
            let name = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            rec.flow_id = Some(format!("{name}#{}", file.rows_read + header));
        }
        let v = clf
            .classify(&rec)
            .map(|v| clf.class_name(v.class).to_string())
            .map_err(|e| e.kind().to_string());
        out.insert(rec.flow_id.clone().unwrap_or_default(), v);
    }
    Ok(out)
}

/// `IDS_*` environment for one processor instance of a test.
pub struct ProcessorEnv {
    pub vars: Vec<(String, String)>,
    pub http_addr: String,
}

impl ProcessorEnv {
    /// Settings shared by the e2e tests: small batches (the duplicate bound of
    /// the kill test is one batch), a short session timeout so a killed member
    /// is evicted quickly, benign verdicts on (every flow gets one), and the
    /// fetch-start rewind Tansu needs.
    pub fn new(group: &str, model: &Path, batch_size: usize) -> anyhow::Result<ProcessorEnv> {
        let http_addr = format!("127.0.0.1:{}", free_port()?);
        let vars = vec![
            ("IDS_GROUP_ID".into(), group.to_string()),
            ("IDS_MODEL_PATH".into(), model.display().to_string()),
            ("IDS_EMIT_BENIGN".into(), "true".into()),
            ("IDS_BATCH_SIZE".into(), batch_size.to_string()),
            ("IDS_BATCH_TIMEOUT_MS".into(), "50".into()),
            ("IDS_HTTP_ADDR".into(), http_addr.clone()),
            ("IDS_KAFKA__SESSION_TIMEOUT_MS".into(), "6000".into()),
            ("IDS_KAFKA__HEARTBEAT_INTERVAL_MS".into(), "500".into()),
            ("IDS_KAFKA__STATISTICS_INTERVAL_MS".into(), "1000".into()),
            // Tansu 0.6.0 returns nothing of a stored record batch when a
            // fetch starts inside it (see tansu_harness.rs): a partition
            // handed over at a committed offset inside a batch would skip the
            // rest of it. Start new partitions up to a librdkafka batch
            // (batch.num.messages) earlier and skip to the committed offset.
            ("IDS_FETCH_START_REWIND".into(), "10000".into()),
            // Tansu 0.6.0 can also answer a fetch before an earlier write of
            // the partition is stored (it raises the high watermark first):
            // the reader skips that batch. Re-read a gap before accepting it.
            ("IDS_OFFSET_GAP_REREADS".into(), "5".into()),
        ];
        Ok(ProcessorEnv { vars, http_addr })
    }

    /// Adds or replaces a variable.
    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.retain(|(n, _)| n != k);
        self.vars.push((k.to_string(), v.to_string()));
        self
    }

    /// As the `env` argument of `spawn_processor`.
    pub fn as_env(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Minimal blocking HTTP/1.1 GET: (status, body). `None` if nothing listens.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Waits until `GET /readyz` answers 200.
pub async fn wait_ready(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = addr.to_string();
        let r = tokio::task::spawn_blocking(move || http_get(&a, "/readyz")).await?;
        if matches!(r, Some((200, _))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processor at {addr} not ready within {timeout:?}: {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One alert as read back from Kafka.
#[derive(Debug, Clone)]
pub struct Alert {
    pub payload: Vec<u8>,
    pub event_id: String,
    pub flow_id: Option<String>,
    pub class: String,
    /// Provenance: the source record.
    pub partition: i32,
    pub offset: i64,
}

impl Alert {
    pub fn parse(m: &OwnedMessage) -> anyhow::Result<Alert> {
        let payload = m.payload().unwrap_or_default().to_vec();
        let j: serde_json::Value = serde_json::from_slice(&payload)
            .with_context(|| format!("alert is not JSON: {}", String::from_utf8_lossy(&payload)))?;
        Ok(Alert {
            event_id: j["event"]["id"].as_str().unwrap_or_default().to_string(),
            flow_id: j["ids"]["flow"]["id"].as_str().map(str::to_string),
            class: j["ids"]["verdict"]["class"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            partition: j["ids"]["kafka"]["partition"].as_i64().unwrap_or(-1) as i32,
            offset: j["ids"]["kafka"]["offset"].as_i64().unwrap_or(-1),
            payload,
        })
    }
}

/// Reads a topic continuously from the beginning of every partition.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub messages: Vec<OwnedMessage>,
}

impl TopicReader {
    pub async fn new(brokers: &str, topic: &str) -> anyhow::Result<TopicReader> {
        // Retried: right after a broker restart, metadata may fail for a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        let partitions = loop {
            let (b, t) = (brokers.to_string(), topic.to_string());
            match tokio::task::spawn_blocking(move || topic_partitions(&b, &t)).await? {
                Ok(p) if !p.is_empty() => break p,
                Ok(_) if Instant::now() < deadline => {}
                Err(_) if Instant::now() < deadline => {}
                Ok(_) => bail!("topic {topic} has no partitions"),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", fresh_group("ids-e2e-collector"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        Ok(TopicReader {
            consumer,
            messages: Vec::new(),
        })
    }

    /// Reads until `done(&messages)` holds or `timeout` passes; returns
    /// whether done. `done` is evaluated about once a second.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[OwnedMessage]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.messages) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let check = Instant::now() + Duration::from_secs(1);
            loop {
                let now = Instant::now();
                if now >= check {
                    break;
                }
                match tokio::time::timeout(check - now, self.consumer.recv()).await {
                    Ok(Ok(m)) => self.messages.push(m.detach()),
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => break,
                }
            }
        }
    }

    /// Keeps reading until nothing arrives for `idle`.
    pub async fn drain(&mut self, idle: Duration) {
        while let Ok(Ok(m)) = tokio::time::timeout(idle, self.consumer.recv()).await {
            self.messages.push(m.detach());
        }
    }
}

/// Every record in the flows topic, as (partition, offset), found by reading
/// the topic (at least `min_records`, then until idle). Watermarks are not
/// used: Tansu 0.6.0 was seen to report a high watermark a few records short
/// right after a burst of produce requests.
pub async fn flow_positions(
    brokers: &str,
    topic: &str,
    min_records: usize,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let mut r = TopicReader::new(brokers, topic).await?;
    r.read_until(Duration::from_secs(60), |m| m.len() >= min_records)
        .await;
    r.drain(Duration::from_secs(2)).await;
    Ok(r.messages
        .iter()
        .map(|m| (m.partition(), m.offset()))
        .collect())
}

/// Verdict bookkeeping keyed by source record (partition, offset).
#[derive(Debug, Default)]
pub struct VerdictReport {
    /// Source records with no verdict.
    pub missing: Vec<(i32, i64)>,
    /// Source records with more than one verdict: (position, copies).
    pub duplicates: Vec<((i32, i64), usize)>,
    /// Duplicates whose copies differ in bytes or event.id (must be empty).
    pub differing_duplicates: Vec<(i32, i64)>,
    /// Verdicts whose provenance is not a record of the flows topic.
    pub unknown: usize,
    /// Their source positions (first few).
    pub unknown_positions: Vec<(i32, i64)>,
    pub alerts: usize,
}

impl VerdictReport {
    pub fn build(positions: &[(i32, i64)], alerts: &[Alert]) -> VerdictReport {
        let mut by_pos: BTreeMap<(i32, i64), Vec<&Alert>> = BTreeMap::new();
        for a in alerts {
            by_pos.entry((a.partition, a.offset)).or_default().push(a);
        }
        let mut r = VerdictReport {
            alerts: alerts.len(),
            ..Default::default()
        };
        for p in positions {
            match by_pos.remove(p) {
                None => r.missing.push(*p),
                Some(v) if v.len() > 1 => {
                    r.duplicates.push((*p, v.len()));
                    if v.iter()
                        .any(|a| a.payload != v[0].payload || a.event_id != v[0].event_id)
                    {
                        r.differing_duplicates.push(*p);
                    }
                }
                Some(_) => {}
            }
        }
        r.unknown = by_pos.values().map(Vec::len).sum();
        r.unknown_positions = by_pos.keys().take(10).copied().collect();
        r
    }

    /// Extra copies beyond the first.
    pub fn extra_copies(&self) -> usize {
        self.duplicates.iter().map(|(_, n)| n - 1).sum()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} alerts; {} records without a verdict (first: {:?}); {} records with duplicates ({} extra copies, {} differing); {} alerts of unknown records {:?}",
            self.alerts,
            self.missing.len(),
            self.missing.iter().take(5).collect::<Vec<_>>(),
            self.duplicates.len(),
            self.extra_copies(),
            self.differing_duplicates.len(),
            self.unknown,
            self.unknown_positions
        )
    }
}

/// Parses every message as an alert.
pub fn parse_alerts(msgs: &[OwnedMessage]) -> anyhow::Result<Vec<Alert>> {
    msgs.iter().map(Alert::parse).collect()
}

/// Number of distinct source positions among alert messages (cheap progress check).
pub fn distinct_positions(msgs: &[OwnedMessage]) -> usize {
    let mut seen = std::collections::HashSet::with_capacity(msgs.len());
    for m in msgs {
        if let Ok(a) = Alert::parse(m) {
            seen.insert((a.partition, a.offset));
        }
    }
    seen.len()
}
