//! Smoke test of the harness and the producer binary against a real broker:
//! `ids-producer` publishes a small NSL-KDD file (written here) to Tansu, and
//! every row arrives once, decodable, with its `<file>#<line>` flow id.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use ids_e2e::{create_topic, producer_summary, read_topic, spawn_producer, Tansu};
use ids_schemas::{FlowCodec, SourceDataset};
use rdkafka::Message as _;

const ROWS: usize = 300;

/// A valid NSL-KDD row; `i` varies the byte counts so rows differ.
/// A dataset file of one NSL-KDD row in `dir`; its path.
fn one_row_dataset(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("one.txt");
    std::fs::write(&path, format!("{}\n", nsl_kdd_row(1)))?;
    Ok(path.to_string_lossy().into_owned())
}

/// Waits up to 60 s for the producer to exit.
async fn finished(producer: &mut ids_e2e::Proc) -> anyhow::Result<std::process::ExitStatus> {
    producer
        .wait_timeout_async(Duration::from_secs(60))
        .await
        .ok_or_else(|| anyhow::anyhow!("producer did not finish; log:\n{}", producer.log()))
}

fn nsl_kdd_row(i: usize) -> String {
    let (label, flag) = if i.is_multiple_of(3) {
        ("neptune", "S0")
    } else {
        ("normal", "SF")
    };
    format!(
        "0,tcp,http,{flag},{},{},0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,{},{},0.00,0.00,0.00,0.00,1.00,0.00,0.00,255,255,1.00,0.00,0.01,0.00,0.00,0.00,0.00,0.00,{label},21",
        200 + i,
        1000 + 7 * i,
        1 + i % 50,
        1 + i % 40,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_publishes_every_row_decodable() -> anyhow::Result<()> {
    let broker = Tansu::start_memory()?;
    let brokers = broker.brokers();
    create_topic(&brokers, "flows", 3).await?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mini-kdd.txt");
    let mut f = std::fs::File::create(&path)?;
    for i in 0..ROWS {
        writeln!(f, "{}", nsl_kdd_row(i))?;
    }
    drop(f);

    let path_str = path.to_string_lossy().into_owned();
    let mut producer = spawn_producer(
        &brokers,
        &[
            "--dataset",
            &path_str,
            "--flows-topic",
            "flows",
            "--key",
            "flow_id",
            "--summary-json",
        ],
        &[],
    )?;
    let status = producer
        .wait_timeout_async(Duration::from_secs(120))
        .await
        .ok_or_else(|| anyhow::anyhow!("producer did not finish; log:\n{}", producer.log()))?;
    assert!(
        status.success(),
        "producer failed ({status}); log:\n{}",
        producer.log()
    );
    let summary = producer_summary(&producer)?;
    assert_eq!(summary["sent"], ROWS as u64, "{summary}");
    assert_eq!(summary["acknowledged"], ROWS as u64, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["unconfirmed"], 0, "{summary}");

    let messages = read_topic(&brokers, "flows", usize::MAX, Duration::from_secs(10)).await?;
    assert_eq!(messages.len(), ROWS, "every row exactly once");

    let codec = FlowCodec::new();
    let mut by_id = BTreeMap::new();
    for m in &messages {
        let payload = m.payload().expect("value");
        let rec = codec.decode(payload).expect("decodable FlowRecord");
        assert_eq!(rec.source, SourceDataset::NslKdd);
        let id = rec.flow_id.clone().expect("flow id assigned");
        assert_eq!(m.key(), Some(id.as_bytes()), "key = flow id");
        assert!(
            m.timestamp().to_millis().is_some_and(|t| t > 0),
            "produce timestamp set"
        );
        by_id.insert(id, rec);
    }
    assert_eq!(by_id.len(), ROWS, "flow ids are unique");
    for line in 1..=ROWS {
        let id = format!("mini-kdd.txt#{line}");
        let rec = by_id.get(&id).unwrap_or_else(|| panic!("row {id} missing"));
        let feats = rec.nsl_kdd.as_ref().expect("NSL-KDD features");
        // line n holds row i = n - 1
        assert_eq!(feats.src_bytes, 200 + (line as i64 - 1), "{id}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_exits_non_zero_when_deliveries_fail() -> anyhow::Result<()> {
    // Nothing listens on this port: every delivery times out.
    let port = ids_e2e::free_port()?;
    let brokers = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir()?;
    let path_str = one_row_dataset(dir.path())?;
    let mut producer = spawn_producer(
        &brokers,
        &[
            "--dataset",
            &path_str,
            "--summary-json",
            "--kafka",
            "message.timeout.ms=2000",
        ],
        &[],
    )?;
    let status = finished(&mut producer).await?;
    assert_eq!(status.code(), Some(1), "log:\n{}", producer.log());
    let summary = producer_summary(&producer)?;
    assert_eq!(summary["sent"], 1);
    assert_eq!(summary["failed"], 1);
    Ok(())
}

#[test]
fn producer_rejects_bad_config_with_exit_code_2() -> anyhow::Result<()> {
    let mut p = ids_e2e::spawn(
        "ids-producer",
        &["--dataset", "x"],
        &[("IDS_MODE", "shuffled")],
    )?;
    let status = p.wait_timeout(Duration::from_secs(30)).expect("exits");
    assert_eq!(status.code(), Some(2), "log:\n{}", p.log());
    assert!(
        p.log().contains("mode"),
        "error names the key:\n{}",
        p.log()
    );

    let mut p = ids_e2e::spawn(
        "ids-producer",
        &["--dataset", "x", "--print-config"],
        &[("IDS_KAFKA__SASL_PASSWORD", "hunter2")],
    )?;
    let status = p.wait_timeout(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "log:\n{}", p.log());
    let log = p.log();
    assert!(!log.contains("hunter2"), "secret printed:\n{log}");
    assert!(log.contains("sasl.password"), "{log}");
    Ok(())
}

/// Runs the producer on a small file with `env` and returns the flows' traceparent headers.
async fn traceparents(env: &[(&str, &str)]) -> anyhow::Result<Vec<Option<String>>> {
    let broker = Tansu::start_memory()?;
    let brokers = broker.brokers();
    create_topic(&brokers, "flows", 1).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("t.txt");
    let rows: String = (0..20).map(|i| nsl_kdd_row(i) + "\n").collect();
    std::fs::write(&path, rows)?;
    let path_str = path.to_string_lossy().into_owned();
    let mut producer = spawn_producer(&brokers, &["--dataset", &path_str], env)?;
    let status = finished(&mut producer).await?;
    assert!(status.success(), "log:\n{}", producer.log());
    let messages = read_topic(&brokers, "flows", 20, Duration::from_secs(10)).await?;
    assert_eq!(messages.len(), 20);
    Ok(messages
        .iter()
        .map(|m| ids_e2e::header_str(m, ids_schemas::headers::TRACEPARENT).map(str::to_string))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_headers_only_when_tracing_and_sampled() -> anyhow::Result<()> {
    // Tracing on (the collector is down: export fails with a warning only).
    let dead = format!("http://127.0.0.1:{}", ids_e2e::free_port()?);
    let on = traceparents(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &dead),
        ("OTEL_TRACES_SAMPLER_ARG", "1"),
    ])
    .await?;
    let mut trace_ids = std::collections::HashSet::new();
    for tp in &on {
        let tp = tp.as_deref().expect("traceparent on every sampled record");
        let parsed = ids_schemas::TraceParent::parse(tp).expect("valid W3C traceparent");
        assert!(parsed.sampled());
        trace_ids.insert(parsed.trace_id_hex());
    }
    assert_eq!(trace_ids.len(), on.len(), "one trace per flow");

    // Ratio 0: spans are not sampled, nothing is injected.
    let zero = traceparents(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &dead),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ])
    .await?;
    assert!(zero.iter().all(Option::is_none));

    // No endpoint: tracing is off.
    let off = traceparents(&[]).await?;
    assert!(off.iter().all(Option::is_none));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_names_a_missing_topic_at_start_up() -> anyhow::Result<()> {
    let broker = Tansu::start_memory()?;
    let dir = tempfile::tempdir()?;
    let path_str = one_row_dataset(dir.path())?;
    let mut producer = spawn_producer(
        &broker.brokers(),
        &["--dataset", &path_str, "--flows-topic", "no-such-topic"],
        &[],
    )?;
    let status = finished(&mut producer).await?;
    assert_eq!(status.code(), Some(1), "log:\n{}", producer.log());
    let log = producer.log();
    assert!(
        log.contains("\"no-such-topic\"") && log.contains("create it first"),
        "the error names the topic and what to do; log:\n{log}"
    );
    // Refused before the first record, not after message.timeout.ms of
    // failed deliveries (which would print a sent/failed summary).
    assert!(
        !log.contains("ids-producer: sent"),
        "no record was sent; log:
{log}"
    );
    Ok(())
}
