//! The processor against librdkafka's in-process mock cluster.
//!
//! What these tests can show (and all they claim): the at-least-once path
//! (alerts, dead letters, committed offsets, a clean shutdown) and the
//! exactly_once commit path (alerts visible to a read_committed reader,
//! offsets committed through the transaction) including a rebalance when a
//! second member joins. The mock cluster cannot prove crash semantics: it was
//! seen to hand a read_committed reader the records of a transaction whose
//! producer was killed. Crash and broker-restart behaviour is tested against
//! Tansu in `tests/` (at-least-once only: Tansu 0.6.0 has no EndTxn).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ids_models::train::{train, TrainMeta, TrainParams};
use ids_processor::{Delivery, ProcessorConfig};
use ids_schemas::codec::FlowCodec;
use ids_schemas::{FlowRecord, NslKddFeatures, SourceDataset};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;

fn flow(attack: bool, i: usize) -> FlowRecord {
    let f = if attack {
        NslKddFeatures {
            protocol_type: "tcp".into(),
            service: "private".into(),
            flag: "S0".into(),
            count: 200 + (i % 50) as i32,
            srv_count: 10,
            serror_rate: 1.0,
            srv_serror_rate: 1.0,
            dst_host_count: 255,
            dst_host_serror_rate: 1.0,
            ..Default::default()
        }
    } else {
        NslKddFeatures {
            protocol_type: "tcp".into(),
            service: "http".into(),
            flag: "SF".into(),
            src_bytes: 200 + (i % 50) as i64,
            dst_bytes: 3000,
            logged_in: true,
            count: 2,
            srv_count: 2,
            same_srv_rate: 1.0,
            dst_host_count: 10,
            dst_host_same_srv_rate: 1.0,
            ..Default::default()
        }
    };
    FlowRecord {
        flow_id: Some(format!("test#{i}")),
        source: SourceDataset::NslKdd,
        label: Some(if attack { "neptune" } else { "normal" }.into()),
        nsl_kdd: Some(f),
        ..Default::default()
    }
}

/// Trains a two-class model on synthetic NSL-KDD-shaped records.
fn tiny_model(dir: &Path) -> PathBuf {
    let recs: Vec<FlowRecord> = (0..400).map(|i| flow(i % 2 == 0, i)).collect();
    let params = TrainParams {
        validation_split: 0.0,
        ..Default::default()
    };
    let meta = TrainMeta {
        name: "mock-test".into(),
        version: "1".into(),
        ..Default::default()
    };
    let out = train(&recs, None, &params, &meta).expect("train");
    let path = dir.join("model.json");
    out.artifact.save(&path).expect("save");
    path
}

struct Setup {
    _dir: tempfile::TempDir,
    model: PathBuf,
}

fn setup() -> Setup {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    Setup { _dir: dir, model }
}

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

/// Publishes `n` flows (even = attack) plus the given raw malformed payloads.
fn publish(bootstrap: &str, range: std::ops::Range<usize>, malformed: &[&[u8]]) {
    let p = producer(bootstrap);
    let codec = FlowCodec::new();
    let mut buf = Vec::new();
    for i in range {
        buf.clear();
        codec.encode(&flow(i % 2 == 0, i), &mut buf).unwrap();
        let key = format!("k{i}");
        p.send(
            BaseRecord::to("flows")
                .key(key.as_bytes())
                .payload(&buf[..]),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        p.poll(Duration::ZERO);
    }
    for (j, m) in malformed.iter().enumerate() {
        let key = format!("bad{j}");
        p.send(BaseRecord::to("flows").key(key.as_bytes()).payload(*m))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn config(bootstrap: &str, model: &Path, delivery: Delivery) -> ProcessorConfig {
    let mut cfg = ProcessorConfig {
        brokers: bootstrap.to_string(),
        model_path: model.to_path_buf(),
        delivery,
        http_addr: "127.0.0.1:0".into(),
        batch_size: 50,
        batch_timeout_ms: 50,
        ..Default::default()
    };
    cfg.kafka.insert("session.timeout.ms", "6000");
    cfg.kafka.insert("heartbeat.interval.ms", "500");
    cfg
}

/// Reads a whole topic with a read_committed reader until `expect` records
/// arrived (or the timeout), returning (key, value, headers) triples.
type Rec = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);
fn read_topic(bootstrap: &str, topic: &str, expect: usize, timeout: Duration) -> Vec<Rec> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let hs = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
                hs,
            ));
        }
    }
    out
}

fn committed(bootstrap: &str, group: &str) -> HashMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("flows", p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mc = MockCluster::new(3).unwrap();
    mc.create_topic("flows", PARTITIONS, 1).unwrap();
    mc.create_topic("alerts", 2, 1).unwrap();
    mc.create_topic("flows.dlq", 1, 1).unwrap();
    mc
}

fn alert_offsets(alerts: &[Rec]) -> Vec<(i64, i64)> {
    alerts
        .iter()
        .map(|(_, v, _)| {
            let j: serde_json::Value = serde_json::from_slice(v).expect("alert is JSON");
            (
                j["ids"]["kafka"]["partition"].as_i64().unwrap(),
                j["ids"]["kafka"]["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn wait_for_committed(bootstrap: &str, group: &str, total: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = bootstrap.to_string();
        let g = group.to_string();
        let c = tokio::task::spawn_blocking(move || committed(&b, &g))
            .await
            .unwrap();
        let sum: i64 = c.values().filter(|o| **o > 0).sum();
        if sum >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offsets not committed in time: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_alerts_dead_letters_and_commits() {
    let s = setup();
    let mc = cluster();
    let bs = mc.bootstrap_servers();
    let mut truncated = Vec::new();
    FlowCodec::new()
        .encode(&flow(true, 1), &mut truncated)
        .unwrap();
    truncated.truncate(truncated.len() / 2);
    let malformed: Vec<&[u8]> = vec![b"not avro at all", &truncated];
    publish(&bs, 0..200, &malformed);

    let token = CancellationToken::new();
    let mut cfg = config(&bs, &s.model, Delivery::AtLeastOnce);
    cfg.http_addr = free_addr();
    let http = cfg.http_addr.clone();
    let run = tokio::spawn(ids_processor::run(cfg, token.clone()));

    // 100 attacks (even i) -> 100 alerts; benign flows are not emitted.
    let bs2 = bs.clone();
    let alerts = tokio::task::spawn_blocking(move || {
        read_topic(&bs2, "alerts", 100, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(alerts.len(), 100);
    let offs = alert_offsets(&alerts);
    let uniq: HashSet<_> = offs.iter().collect();
    assert_eq!(uniq.len(), 100, "one alert per attack flow");
    for (k, _, hs) in &alerts {
        assert!(
            k.as_deref().unwrap().starts_with(b"k"),
            "alert keeps the flow key"
        );
        assert!(hs
            .iter()
            .any(|(h, v)| h == "content-type" && v == b"application/json"));
    }
    let bs2 = bs.clone();
    let dlq = tokio::task::spawn_blocking(move || {
        read_topic(&bs2, "flows.dlq", 2, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(dlq.len(), 2);
    let kinds: HashSet<String> = dlq
        .iter()
        .map(|(_, _, hs)| {
            let v = &hs.iter().find(|(h, _)| h == "ids.error.kind").unwrap().1;
            String::from_utf8(v.clone()).unwrap()
        })
        .collect();
    assert!(kinds.contains("not_avro"), "{kinds:?}");
    assert!(kinds.contains("truncated"), "{kinds:?}");
    for (k, v, hs) in &dlq {
        assert!(k.as_deref().unwrap().starts_with(b"bad"));
        assert!(v == b"not avro at all" || *v == truncated);
        for h in [
            "ids.error.message",
            "ids.source.topic",
            "ids.source.partition",
            "ids.source.offset",
        ] {
            assert!(hs.iter().any(|(n, _)| n == h), "missing {h}");
        }
    }
    wait_for_committed(&bs, "ids-processor", 202).await;

    // HTTP: health, readiness, metrics that match what Kafka holds, predict.
    let good = serde_json::to_string(&flow(true, 7)).unwrap();
    let (health, ready, metrics, predicted, rejected, garbage) =
        tokio::task::spawn_blocking(move || {
            (
                http_get(&http, "/healthz"),
                http_get(&http, "/readyz"),
                http_get(&http, "/metrics").1,
                http_req(&http, "POST", "/predict", &good),
                http_req(&http, "POST", "/predict", r#"{"source":"NSL_KDD"}"#),
                http_req(&http, "POST", "/predict", "{nope"),
            )
        })
        .await
        .unwrap();
    assert_eq!(health.0, 200);
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(
        metric(&metrics, "ids_processor_records_consumed_total"),
        202.0
    );
    assert_eq!(
        metric(&metrics, "ids_processor_alerts_produced_total"),
        100.0
    );
    assert!(
        metrics.contains("ids_processor_dlq_records_total{kind=\"not_avro\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ids_processor_dlq_records_total{kind=\"truncated\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ids_processor_model_info{"), "{metrics}");
    assert!(
        metrics.contains("ids_processor_batch_duration_seconds_bucket"),
        "{metrics}"
    );
    assert_eq!(predicted.0, 200, "{}", predicted.1);
    let v: serde_json::Value = serde_json::from_str(&predicted.1).unwrap();
    assert_eq!(v["attack"], true, "{v}");
    assert_eq!(rejected.0, 400, "{}", rejected.1);
    assert!(
        rejected.1.contains("feature_set_mismatch"),
        "{}",
        rejected.1
    );
    assert_eq!(garbage.0, 400);
    assert!(garbage.1.contains("invalid_json"), "{}", garbage.1);

    token.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("clean shutdown in time")
        .unwrap()
        .expect("run returns Ok");
    drop(mc);
}

/// A free loopback port for a processor's HTTP server.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Minimal HTTP/1.1 GET (the tests need no HTTP client dependency).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_req(addr, "GET", path, "")
}

fn http_req(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Value of an unlabelled metric sample in OpenMetrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("metric {name} missing in\n{text}"))
}

/// exactly_once on the mock cluster: transactions commit, their alerts are
/// visible to a read_committed reader, and a second member joining mid-stream
/// (a cooperative rebalance) leaves both members committing transactions with
/// no abort and no flow without an alert.
///
/// Not asserted: "no duplicates across the rebalance". librdkafka's mock
/// TxnOffsetCommit handler acknowledges offsets without storing them
/// (rdkafka_mock_handlers.c), so a partition's new owner starts from
/// `auto.offset.reset` and re-emits. On a real broker the offsets sent to the
/// transaction are what the new owner resumes from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_commit_path_and_rebalance() {
    let s = setup();
    let mc = cluster();
    let bs = mc.bootstrap_servers();
    publish(&bs, 0..400, &[]);

    let t1 = CancellationToken::new();
    let mut cfg1 = config(&bs, &s.model, Delivery::ExactlyOnce);
    cfg1.group_instance_id = Some("eos-1".into());
    cfg1.http_addr = free_addr();
    let http1 = cfg1.http_addr.clone();
    let run1 = tokio::spawn(ids_processor::run(cfg1, t1.clone()));

    // The first member takes every partition and commits transactions.
    let bs2 = bs.clone();
    let first = tokio::task::spawn_blocking(move || {
        read_topic(&bs2, "alerts", 200, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        first.len(),
        200,
        "committed transactions are visible to read_committed"
    );
    let uniq: HashSet<_> = alert_offsets(&first).into_iter().collect();
    assert_eq!(
        uniq.len(),
        200,
        "one alert per attack flow before any rebalance"
    );
    let h = http1.clone();
    let m1 = tokio::task::spawn_blocking(move || http_get(&h, "/metrics").1)
        .await
        .unwrap();
    assert!(metric(&m1, "ids_processor_transaction_commits_total") >= 1.0);
    assert_eq!(metric(&m1, "ids_processor_transaction_aborts_total"), 0.0);

    // A second member joins while more flows arrive: the group rebalances.
    let t2 = CancellationToken::new();
    let mut cfg2 = config(&bs, &s.model, Delivery::ExactlyOnce);
    cfg2.group_instance_id = Some("eos-2".into());
    cfg2.http_addr = free_addr();
    let http2 = cfg2.http_addr.clone();
    let run2 = tokio::spawn(ids_processor::run(cfg2, t2.clone()));
    publish(&bs, 400..800, &[]);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (h1, h2) = (http1.clone(), http2.clone());
        let (m1, m2) = tokio::task::spawn_blocking(move || {
            (http_get(&h1, "/metrics").1, http_get(&h2, "/metrics").1)
        })
        .await
        .unwrap();
        let bs2 = bs.clone();
        let alerts = tokio::task::spawn_blocking(move || {
            read_topic(&bs2, "alerts", usize::MAX, Duration::from_secs(3))
        })
        .await
        .unwrap();
        let seen: HashSet<String> = alerts
            .iter()
            .map(|(_, v, _)| {
                let j: serde_json::Value = serde_json::from_slice(v).unwrap();
                j["ids"]["flow"]["id"].as_str().unwrap().to_string()
            })
            .collect();
        let missing = (0..800)
            .filter(|i| i % 2 == 0 && !seen.contains(&format!("test#{i}")))
            .count();
        let c2 = metric(&m2, "ids_processor_transaction_commits_total");
        if missing == 0 && c2 >= 1.0 {
            assert_eq!(metric(&m1, "ids_processor_transaction_aborts_total"), 0.0);
            assert_eq!(metric(&m2, "ids_processor_transaction_aborts_total"), 0.0);
            assert!(metric(&m2, "ids_processor_assigned_partitions") >= 1.0);
            assert!(metric(&m1, "ids_processor_assigned_partitions") >= 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the rebalance: {missing} attack flows without an alert, member 2 committed {c2} transactions"
        );
    }

    t1.cancel();
    t2.cancel();
    for r in [run1, run2] {
        tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("clean shutdown in time")
            .unwrap()
            .expect("run returns Ok");
    }
    drop(mc);
}

/// `alert_format = "avro"`: alerts are single-object Avro with the Avro
/// content type, one per attack flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_alerts() {
    let s = setup();
    let mc = cluster();
    let bs = mc.bootstrap_servers();
    publish(&bs, 0..40, &[]);
    let token = CancellationToken::new();
    let mut cfg = config(&bs, &s.model, Delivery::AtLeastOnce);
    cfg.alert_format = ids_processor::AlertFormatOption::Avro;
    cfg.http_addr = free_addr();
    let run = tokio::spawn(ids_processor::run(cfg, token.clone()));
    let bs2 = bs.clone();
    let alerts = tokio::task::spawn_blocking(move || {
        read_topic(&bs2, "alerts", 20, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(alerts.len(), 20);
    for (_, v, hs) in &alerts {
        assert_eq!(&v[..2], &[0xC3, 0x01], "single-object Avro framing");
        assert!(hs
            .iter()
            .any(|(h, v)| h == "content-type" && v == b"application/avro"));
    }
    token.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("clean shutdown in time")
        .unwrap()
        .expect("run returns Ok");
    drop(mc);
}
