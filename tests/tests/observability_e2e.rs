//! Observability end-to-end tests (issue 4): the real `ids-producer` and
//! `ids-processor` binaries against Tansu, exporting traces to the in-process
//! OTLP receiver of `ids_e2e::otlp`, and the processor's `/metrics` checked
//! against what is actually in Kafka.
//!
//! The producer exports over gRPC and the processor over HTTP/protobuf, so one
//! run covers both OTLP transports. Each trace test collects all its checks
//! and fails once with the full list, so a failure shows every missing span,
//! link or attribute at once.
//!
//! Span contract checked here (see the README's "Tracing" section):
//! * `send flows` (ids-producer, PRODUCER), one per sampled flow; its context
//!   is in the flow record's `traceparent` header;
//! * `process flows` (ids-processor, CONSUMER), one per batch, linking to every
//!   sampled `send flows` span of the batch, with `classify` and `emit` children;
//! * `send alerts` (ids-processor, PRODUCER), child of the flow's `send flows`
//!   span; its context is in the alert's `traceparent` header, and the alert
//!   JSON's `trace.id` names the same trace.
//!
//! Tests: `traces_follow_a_flow_from_producer_to_alert` (checks a–d of the
//! issue), `large_batch_links_every_sampled_flow` (links survive the SDK's
//! per-span link limit), `ratio_sampler_zero_exports_nothing` (check e) and
//! `metrics_match_records_in_kafka` (`/metrics` against the topics).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ids_e2e::otlp::{hex, AttrValue, OtlpReceiver, ReceivedSpan};
use ids_e2e::pipeline::{http_get, model_path, wait_ready, write_generated_dataset, ProcessorEnv};
use ids_e2e::{
    create_topic, fresh_group, header_str, read_topic, spawn_processor, spawn_producer, Proc, Tansu,
};
use ids_schemas::trace_context::TraceParent;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{ClientConfig, Message as _};

/// One test at a time: each starts a broker and two binaries on a 2-core box.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FLOWS: &str = "flows";
const ALERTS: &str = "alerts";
const DLQ: &str = "flows.dlq";
const FLOW_PARTITIONS: i32 = 2;

const SEND_FLOWS: &str = "send flows";
const PROCESS_FLOWS: &str = "process flows";
const SEND_ALERTS: &str = "send alerts";

/// Collects named checks; fails once, listing every failed one.
#[derive(Default)]
struct Checks {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, label: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed.push(label.to_string());
        } else {
            self.failed.push(format!("{label}: {}", detail()));
        }
    }

    fn finish(self, context: impl FnOnce() -> String) {
        for p in &self.passed {
            eprintln!("PASS {p}");
        }
        for f in &self.failed {
            eprintln!("FAIL {f}");
        }
        assert!(
            self.failed.is_empty(),
            "{} of {} checks failed:\n  - {}\n{}",
            self.failed.len(),
            self.failed.len() + self.passed.len(),
            self.failed.join("\n  - "),
            context()
        );
    }
}

async fn topics(brokers: &str) -> anyhow::Result<()> {
    create_topic(brokers, FLOWS, FLOW_PARTITIONS).await?;
    create_topic(brokers, ALERTS, 1).await?;
    create_topic(brokers, DLQ, 1).await?;
    Ok(())
}

fn owned(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Starts a processor with `extra` environment and waits until it is ready.
async fn start_processor(
    brokers: &str,
    group: &str,
    extra: &[(String, String)],
) -> anyhow::Result<(Proc, ProcessorEnv)> {
    let model = model_path()?;
    let mut env = ProcessorEnv::new(group, &model, 500)?;
    for (k, v) in extra {
        env.set(k, v);
    }
    let mut p = spawn_processor(brokers, &[], &env.as_env())?;
    if let Err(e) = wait_ready(&env.http_addr, Duration::from_secs(90)).await {
        let _ = p.status();
        anyhow::bail!("{e}; processor log:\n{}", p.log());
    }
    Ok((p, env))
}

/// Runs the producer over `dataset` to completion (exit 0 required).
async fn run_producer(brokers: &str, dataset: &Path, env: &[(String, String)]) -> Proc {
    let data = dataset.display().to_string();
    let mut p = spawn_producer(
        brokers,
        &["--dataset", &data, "--summary-json"],
        &owned(env),
    )
    .expect("starting ids-producer");
    let st = p.wait_timeout_async(Duration::from_secs(120)).await;
    assert!(
        st.is_some_and(|s| s.success()),
        "ids-producer did not exit 0 ({st:?}); log:\n{}",
        p.log()
    );
    p
}

/// Reads at least `expected` records of `topic` (until idle).
async fn read_all(brokers: &str, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msgs = read_topic(brokers, topic, usize::MAX, Duration::from_secs(3))
            .await
            .unwrap_or_default();
        if msgs.len() >= expected || Instant::now() > deadline {
            return msgs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn terminate_ok(p: &mut Proc) {
    let st = p.terminate(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "{} did not shut down cleanly on SIGTERM ({st:?}); log:\n{}",
        p.name(),
        p.log()
    );
}

/// The parsed parts of an alert the trace checks need.
#[derive(Debug)]
struct AlertInfo {
    header: Option<TraceParent>,
    trace_id: Option<String>,
    class: String,
    model_id: String,
    source: (i32, i64),
    has_key: bool,
}

fn alert_info(m: &OwnedMessage) -> AlertInfo {
    let j: serde_json::Value =
        serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
    AlertInfo {
        header: header_str(m, "traceparent").and_then(TraceParent::parse),
        trace_id: j["trace"]["id"].as_str().map(str::to_string),
        class: j["ids"]["verdict"]["class"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        model_id: j["ids"]["model"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        source: (
            j["ids"]["kafka"]["partition"].as_i64().unwrap_or(-1) as i32,
            j["ids"]["kafka"]["offset"].as_i64().unwrap_or(-1),
        ),
        has_key: m.key().is_some_and(|k| !k.is_empty()),
    }
}

fn str_attr(s: &ReceivedSpan, key: &str) -> Option<String> {
    s.attr(key).map(|v| v.to_string())
}

/// `key` of `s` equals `want`, else a description of what is there.
fn attr_is(s: &ReceivedSpan, key: &str, want: &str) -> Result<(), String> {
    match s.attr(key) {
        Some(AttrValue::Str(v)) if v == want => Ok(()),
        other => Err(format!(
            "`{}` span {}: {key} = {other:?}, want {want:?}",
            s.name(),
            s.span_id()
        )),
    }
}

/// The first error of `f` over `spans`.
fn all_spans(
    spans: &[ReceivedSpan],
    f: impl Fn(&ReceivedSpan) -> Result<(), String>,
) -> Result<(), String> {
    if spans.is_empty() {
        return Err("no such spans".into());
    }
    spans.iter().try_for_each(f)
}

fn as_check(r: Result<(), String>) -> (bool, String) {
    match r {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    }
}

/// Issue 4, traces: spans arrive from both services; batch spans link to the
/// producer spans of sampled flows; the alert's `traceparent` and `trace.id`
/// name the flow's trace; the messaging semantic-convention attributes are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_a_flow_from_producer_to_alert() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const N: usize = 40;
    let tansu = Tansu::start_memory()?;
    let brokers = tansu.brokers();
    topics(&brokers).await?;
    let receiver = OtlpReceiver::start().await?;
    let dir = tempfile::tempdir()?;
    let dataset = write_generated_dataset(dir.path(), "flows.txt", N)?;
    let group = fresh_group("ids-obs");

    // Processor: every batch traced (always_on), exported over HTTP/protobuf.
    let mut proc_env = receiver.otel_env("http/protobuf");
    proc_env.push(("OTEL_TRACES_SAMPLER".into(), "always_on".into()));
    let (mut processor, _env) = start_processor(&brokers, &group, &proc_env).await?;

    // Producer: the default parent-based ratio sampler at 0.5, over gRPC, so
    // some flows are sampled and some are not.
    let mut prod_env = receiver.otel_env("grpc");
    prod_env.push((
        "OTEL_TRACES_SAMPLER".into(),
        "parentbased_traceidratio".into(),
    ));
    prod_env.push(("OTEL_TRACES_SAMPLER_ARG".into(), "0.5".into()));
    let producer = run_producer(&brokers, &dataset, &prod_env).await;

    let alerts = read_all(&brokers, ALERTS, N).await;
    let flows = read_all(&brokers, FLOWS, N).await;
    // SIGTERM flushes the processor's span exporter.
    terminate_ok(&mut processor);
    let store = receiver.store();
    store
        .wait_idle(Duration::from_secs(2), Duration::from_secs(20))
        .await;

    let mut c = Checks::default();
    c.check("all flows produced", flows.len() == N, || {
        format!("{} records in {FLOWS}, want {N}", flows.len())
    });
    c.check("every flow has an alert", alerts.len() == N, || {
        format!("{} alerts, want {N}", alerts.len())
    });

    // The flows' trace context, by source position.
    let flow_tp: HashMap<(i32, i64), TraceParent> = flows
        .iter()
        .filter_map(|m| {
            let tp = TraceParent::parse(header_str(m, "traceparent")?)?;
            Some(((m.partition(), m.offset()), tp))
        })
        .collect();
    let sampled: Vec<&TraceParent> = flow_tp.values().filter(|tp| tp.sampled()).collect();
    let sampled_ctx: HashSet<(String, String)> = sampled
        .iter()
        .map(|tp| (hex(&tp.trace_id), hex(&tp.span_id)))
        .collect();
    c.check(
        "ratio 0.5: some but not all flows sampled (traceparent header only on sampled flows)",
        !sampled.is_empty() && sampled.len() < N && sampled.len() == flow_tp.len(),
        || {
            format!(
                "{} of {N} flows have a traceparent, {} sampled",
                flow_tp.len(),
                sampled.len()
            )
        },
    );

    // (a) spans arrive from both services, over both transports.
    let services = store.services();
    for svc in ["ids-producer", "ids-processor"] {
        c.check(
            &format!("(a) spans arrive from {svc}"),
            services.iter().any(|s| s == svc),
            || format!("services seen: {services:?}"),
        );
    }
    let producer_spans = store.spans_of("ids-producer");
    let processor_spans = store.spans_of("ids-processor");
    c.check(
        "(a) producer spans came over OTLP/gRPC, processor spans over OTLP/HTTP",
        producer_spans.iter().all(|s| s.transport == "grpc")
            && processor_spans.iter().all(|s| s.transport == "http"),
        || "transport mismatch".into(),
    );

    let send_flows = store.spans_named(SEND_FLOWS);
    let process_flows = store.spans_named(PROCESS_FLOWS);
    let send_alerts = store.spans_named(SEND_ALERTS);
    c.check(
        "(a) one `send flows` PRODUCER span of ids-producer per sampled flow",
        send_flows.len() == sampled.len()
            && send_flows
                .iter()
                .all(|s| s.service == "ids-producer" && s.kind() == SpanKind::Producer),
        || {
            format!(
                "{} `send flows` spans for {} sampled flows; kinds/services {:?}",
                send_flows.len(),
                sampled.len(),
                send_flows
                    .iter()
                    .map(|s| (s.service.clone(), s.kind()))
                    .collect::<HashSet<_>>()
            )
        },
    );
    let send_ctx: HashSet<(String, String)> = send_flows
        .iter()
        .map(|s| (s.trace_id(), s.span_id()))
        .collect();
    let missing_send: Vec<_> = sampled_ctx.difference(&send_ctx).collect();
    c.check(
        "(a) each flow's traceparent names an exported `send flows` span",
        missing_send.is_empty(),
        || format!("no span for {missing_send:?}"),
    );
    c.check(
        "(a) `process flows` spans are CONSUMER spans of ids-processor",
        !process_flows.is_empty()
            && process_flows
                .iter()
                .all(|s| s.service == "ids-processor" && s.kind() == SpanKind::Consumer),
        || {
            format!(
                "{} spans: {:?}",
                process_flows.len(),
                process_flows
                    .iter()
                    .map(|s| (s.service.clone(), s.kind()))
                    .collect::<Vec<_>>()
            )
        },
    );

    // (b) batch spans link to the producer spans of sampled flows.
    let links: Vec<(String, String)> = process_flows
        .iter()
        .flat_map(|s| s.links())
        .map(|l| (l.trace_id, l.span_id))
        .collect();
    let linked: HashSet<&(String, String)> = links.iter().collect();
    let unlinked: Vec<_> = sampled_ctx.iter().filter(|c| !linked.contains(c)).collect();
    c.check(
        "(b) every sampled flow's `send flows` context is linked from a `process flows` span",
        !sampled_ctx.is_empty() && unlinked.is_empty(),
        || {
            format!(
                "{} of {} sampled flows unlinked (first {:?}); {} links in {} batch spans",
                unlinked.len(),
                sampled_ctx.len(),
                unlinked.first(),
                links.len(),
                process_flows.len()
            )
        },
    );
    let stray: Vec<_> = links.iter().filter(|l| !sampled_ctx.contains(l)).collect();
    c.check(
        "(b) `process flows` links only to sampled producer spans",
        stray.is_empty(),
        || {
            format!(
                "{} links to unknown contexts: {:?}",
                stray.len(),
                stray.first()
            )
        },
    );
    let dropped: u32 = process_flows
        .iter()
        .map(|s| s.span.dropped_links_count)
        .sum();
    c.check("(b) no span links dropped", dropped == 0, || {
        format!("{dropped} links dropped (SDK link limit)")
    });
    let children_ok = process_flows.iter().all(|b| {
        let kids: HashSet<String> = processor_spans
            .iter()
            .filter(|s| {
                s.trace_id() == b.trace_id() && s.parent_span_id().as_deref() == Some(&b.span_id())
            })
            .map(|s| s.name().to_string())
            .collect();
        kids.contains("classify") && kids.contains("emit")
    });
    c.check(
        "(b) each `process flows` span has `classify` and `emit` children",
        !process_flows.is_empty() && children_ok,
        || format!("spans seen: {:?}", store.summary()),
    );

    // (c) the alert's traceparent header and trace.id name the same trace.
    let infos: Vec<AlertInfo> = alerts.iter().map(alert_info).collect();
    let bad_same: Vec<&AlertInfo> = infos
        .iter()
        .filter(|a| match (&a.header, &a.trace_id) {
            (Some(h), Some(t)) => hex(&h.trace_id) != *t,
            (None, None) => false,
            _ => true,
        })
        .collect();
    c.check(
        "(c) alert `traceparent` header and JSON `trace.id` name the same trace",
        bad_same.is_empty() && infos.iter().any(|a| a.trace_id.is_some()),
        || {
            format!(
                "{} alerts disagree, first {:?}",
                bad_same.len(),
                bad_same.first()
            )
        },
    );
    let bad_flow: Vec<&AlertInfo> = infos
        .iter()
        .filter(|a| match flow_tp.get(&a.source) {
            Some(tp) => a.trace_id.as_deref() != Some(hex(&tp.trace_id).as_str()),
            None => false,
        })
        .collect();
    c.check(
        "(c) a traced flow's alert carries the flow's trace id",
        bad_flow.is_empty(),
        || {
            format!(
                "{} alerts lack it, first {:?}",
                bad_flow.len(),
                bad_flow.first()
            )
        },
    );
    let send_alert_by_id: HashMap<(String, String), &ReceivedSpan> = send_alerts
        .iter()
        .map(|s| ((s.trace_id(), s.span_id()), s))
        .collect();
    let batch_ctx: HashSet<(String, String)> = process_flows
        .iter()
        .map(|s| (s.trace_id(), s.span_id()))
        .collect();
    let mut sa_problems = Vec::new();
    for a in &infos {
        let Some(flow) = flow_tp.get(&a.source) else {
            continue;
        };
        let Some(h) = &a.header else {
            sa_problems.push(format!("alert of {:?} has no traceparent", a.source));
            continue;
        };
        let key = (hex(&h.trace_id), hex(&h.span_id));
        let Some(s) = send_alert_by_id.get(&key) else {
            sa_problems.push(format!(
                "alert header {key:?} names no exported `send alerts` span"
            ));
            continue;
        };
        if s.kind() != SpanKind::Producer || s.service != "ids-processor" {
            sa_problems.push(format!("`send alerts` is {:?} of {}", s.kind(), s.service));
        }
        if s.parent_span_id() != Some(hex(&flow.span_id)) {
            sa_problems.push(format!(
                "`send alerts` {} parent {:?}, want the flow's `send flows` span {}",
                s.span_id(),
                s.parent_span_id(),
                hex(&flow.span_id)
            ));
        }
        if !s
            .links()
            .iter()
            .any(|l| batch_ctx.contains(&(l.trace_id.clone(), l.span_id.clone())))
        {
            sa_problems.push(format!(
                "`send alerts` {} does not link to its `process flows` span",
                s.span_id()
            ));
        }
    }
    c.check(
        "(c) a traced alert's header names its `send alerts` PRODUCER span (child of `send flows`, linked to the batch)",
        sa_problems.is_empty() && !send_alerts.is_empty(),
        || format!("{} problems, first: {:?}", sa_problems.len(), sa_problems.first()),
    );

    // (d) semantic-convention attributes.
    let (ok, e) = as_check(all_spans(&send_flows, |s| {
        attr_is(s, "messaging.system", "kafka")?;
        attr_is(s, "messaging.operation.name", "send")?;
        attr_is(s, "messaging.destination.name", FLOWS)?;
        match str_attr(s, "messaging.kafka.message.key") {
            Some(k) if !k.is_empty() => Ok(()),
            other => Err(format!("messaging.kafka.message.key = {other:?}")),
        }
    }));
    c.check(
        "(d) `send flows`: messaging.system, operation.name=send, destination.name, kafka.message.key",
        ok,
        || e,
    );

    let (ok, e) = as_check(all_spans(&process_flows, |s| {
        attr_is(s, "messaging.system", "kafka")?;
        attr_is(s, "messaging.destination.name", FLOWS)?;
        attr_is(s, "messaging.consumer.group.name", &group)?;
        match str_attr(s, "messaging.operation.name") {
            Some(op) if op == "process" || op == "receive" => Ok(()),
            other => Err(format!("messaging.operation.name = {other:?}")),
        }
    }));
    c.check(
        "(d) `process flows`: messaging.system, operation.name, destination.name, consumer.group.name",
        ok,
        || e,
    );
    let counts: Vec<Option<i64>> = process_flows
        .iter()
        .map(|s| {
            s.attr("messaging.batch.message_count")
                .and_then(|v| v.as_i64())
        })
        .collect();
    let total: i64 = counts.iter().flatten().sum();
    c.check(
        "(d) `process flows`: messaging.batch.message_count on every batch span, summing to the records consumed",
        !counts.is_empty() && counts.iter().all(|c| c.is_some_and(|n| n > 0)) && total == N as i64,
        || format!("counts {counts:?} (sum {total}, want {N})"),
    );
    let model_id = infos
        .first()
        .map(|a| a.model_id.clone())
        .unwrap_or_default();
    let (ok, e) = as_check(all_spans(&process_flows, |s| {
        attr_is(s, "ids.model.id", &model_id)
    }));
    c.check("(d) `process flows`: ids.model.id", ok, || e);

    // Partition and offset: on the batch span when it holds one partition's
    // records, else on each link (one link per message).
    let pos_by_ctx: HashMap<(String, String), (i32, i64)> = flow_tp
        .iter()
        .map(|(pos, tp)| ((hex(&tp.trace_id), hex(&tp.span_id)), *pos))
        .collect();
    let mut pos_problems = Vec::new();
    for s in &process_flows {
        let span_part = s
            .attr("messaging.destination.partition.id")
            .and_then(|v| v.as_i64());
        let span_off = s.attr("messaging.kafka.offset").and_then(|v| v.as_i64());
        for l in s.links() {
            let part = l
                .attributes
                .get("messaging.destination.partition.id")
                .and_then(AttrValue::as_i64)
                .or(span_part);
            let off = l
                .attributes
                .get("messaging.kafka.offset")
                .and_then(AttrValue::as_i64)
                .or(span_off);
            let want = pos_by_ctx.get(&(l.trace_id.clone(), l.span_id.clone()));
            match (part, off, want) {
                (Some(p), Some(o), Some(&(wp, wo))) => {
                    // A span-level offset is the batch's first or last; only
                    // a link-level one must match exactly.
                    let exact = l.attributes.contains_key("messaging.kafka.offset");
                    if p != i64::from(wp) || (exact && o != wo) {
                        pos_problems.push(format!(
                            "link {} says {p}/{o}, flow is at {wp}/{wo}",
                            l.span_id
                        ));
                    }
                }
                (p, o, _) => pos_problems.push(format!(
                    "`process flows` {}: link {} has partition.id {p:?}, kafka.offset {o:?} (neither on link nor span)",
                    s.span_id(),
                    l.span_id
                )),
            }
        }
    }
    c.check(
        "(d) `process flows`: messaging.destination.partition.id and messaging.kafka.offset per linked message (link or span attributes)",
        pos_problems.is_empty() && !links.is_empty(),
        || format!("{} problems, first: {:?}", pos_problems.len(), pos_problems.first()),
    );

    let (ok, e) = as_check(all_spans(&send_alerts, |s| {
        attr_is(s, "messaging.system", "kafka")?;
        attr_is(s, "messaging.operation.name", "send")?;
        attr_is(s, "messaging.destination.name", ALERTS)?;
        attr_is(s, "ids.model.id", &model_id)?;
        // The alert this span sent, found through the header of its record.
        let alert = infos.iter().find(|a| {
            a.header
                .as_ref()
                .is_some_and(|h| hex(&h.span_id) == s.span_id())
        });
        let class = str_attr(s, "ids.verdict.class");
        match alert {
            Some(a) if class.as_deref() != Some(a.class.as_str()) => {
                return Err(format!(
                    "ids.verdict.class = {class:?}, alert says {:?}",
                    a.class
                ))
            }
            None if class.is_none() => return Err("ids.verdict.class missing".into()),
            _ => {}
        }
        if alert.is_some_and(|a| a.has_key) {
            match str_attr(s, "messaging.kafka.message.key") {
                Some(k) if !k.is_empty() => {}
                other => return Err(format!("messaging.kafka.message.key = {other:?}")),
            }
        }
        Ok(())
    }));
    c.check(
        "(d) `send alerts`: messaging.system, operation.name=send, destination.name=alerts, kafka.message.key, ids.model.id, ids.verdict.class",
        ok,
        || e,
    );

    let summary = store.summary();
    let (plog, prlog) = (producer.log(), processor.log());
    c.finish(|| {
        format!(
            "spans by (service, name): {summary:?}\n----- producer log -----\n{plog}\n----- processor log (tail) -----\n{}",
            tail(&prlog, 60)
        )
    });
    drop(tansu);
    Ok(())
}

/// Issue 4: "a span link to every sampled producer span in the batch", also
/// for a batch larger than the OpenTelemetry SDK's default of 128 links per
/// span (the processor's default `batch_size` is 500). The flows are produced
/// first, so the processor's first polls return full batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batch_links_every_sampled_flow() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const N: usize = 300;
    let tansu = Tansu::start_memory()?;
    let brokers = tansu.brokers();
    topics(&brokers).await?;
    let receiver = OtlpReceiver::start().await?;
    let dir = tempfile::tempdir()?;
    let dataset = write_generated_dataset(dir.path(), "flows.txt", N)?;

    let mut prod_env = receiver.otel_env("grpc");
    prod_env.push(("OTEL_TRACES_SAMPLER".into(), "always_on".into()));
    let producer = run_producer(&brokers, &dataset, &prod_env).await;
    let flows = read_all(&brokers, FLOWS, N).await;

    let mut proc_env = receiver.otel_env("grpc");
    proc_env.push(("OTEL_TRACES_SAMPLER".into(), "always_on".into()));
    // Default batch size; a long timeout so the batches fill up.
    proc_env.push(("IDS_BATCH_SIZE".into(), "500".into()));
    proc_env.push(("IDS_BATCH_TIMEOUT_MS".into(), "1000".into()));
    let (mut processor, _env) =
        start_processor(&brokers, &fresh_group("ids-obsl"), &proc_env).await?;
    let alerts = read_all(&brokers, ALERTS, N).await;
    terminate_ok(&mut processor);
    let store = receiver.store();
    store
        .wait_idle(Duration::from_secs(2), Duration::from_secs(20))
        .await;

    let mut c = Checks::default();
    c.check(
        "every flow produced and processed",
        flows.len() == N && alerts.len() == N,
        || format!("{} flows, {} alerts, want {N}", flows.len(), alerts.len()),
    );
    let batches = store.spans_named(PROCESS_FLOWS);
    let sizes: Vec<i64> = batches
        .iter()
        .filter_map(|s| {
            s.attr("messaging.batch.message_count")
                .and_then(|v| v.as_i64())
        })
        .collect();
    c.check(
        "precondition: a batch larger than the SDK's default link limit (128)",
        sizes.iter().any(|&n| n > 128),
        || format!("batch sizes {sizes:?}"),
    );
    let links: usize = batches.iter().map(|s| s.span.links.len()).sum();
    let dropped: u32 = batches.iter().map(|s| s.span.dropped_links_count).sum();
    c.check(
        "(b) every sampled flow linked: no link dropped by the span link limit",
        links == N && dropped == 0,
        || {
            format!(
                "{links} links kept, {dropped} dropped, for {N} sampled flows in batches of {sizes:?}; \
                 raise the SDK limit (OTEL_SPAN_LINK_COUNT_LIMIT / SpanLimits::max_links_per_span) to at least batch_size"
            )
        },
    );
    let log = producer.log();
    c.finish(|| tail(&log, 10));
    drop(tansu);
    Ok(())
}

/// Issue 4: a trace-id ratio sampler of 0 exports nothing, from either binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_sampler_zero_exports_nothing() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const N: usize = 20;
    let tansu = Tansu::start_memory()?;
    let brokers = tansu.brokers();
    topics(&brokers).await?;
    let receiver = OtlpReceiver::start().await?;
    let dir = tempfile::tempdir()?;
    let dataset = write_generated_dataset(dir.path(), "flows.txt", N)?;
    let mut env = receiver.otel_env("grpc");
    env.push(("OTEL_TRACES_SAMPLER".into(), "traceidratio".into()));
    env.push(("OTEL_TRACES_SAMPLER_ARG".into(), "0".into()));

    let (mut processor, _penv) = start_processor(&brokers, &fresh_group("ids-obs0"), &env).await?;
    let producer = run_producer(&brokers, &dataset, &env).await;
    let alerts = read_all(&brokers, ALERTS, N).await;
    let flows = read_all(&brokers, FLOWS, N).await;
    terminate_ok(&mut processor);
    let store = receiver.store();
    store
        .wait_idle(Duration::from_secs(2), Duration::from_secs(10))
        .await;

    let mut c = Checks::default();
    // Tracing must really have been on, or "nothing exported" proves nothing.
    for (name, log) in [
        ("ids-producer", producer.log()),
        ("ids-processor", processor.log()),
    ] {
        c.check(
            &format!("(e) {name} had trace export enabled"),
            log.contains("OpenTelemetry trace export enabled"),
            || tail(&log, 20),
        );
    }
    c.check("(e) every flow processed", alerts.len() == N, || {
        format!("{} alerts, want {N}", alerts.len())
    });
    c.check(
        "(e) ratio 0: no span exported by either binary",
        store.is_empty(),
        || format!("{} spans: {:?}", store.len(), store.summary()),
    );
    let with_header = flows
        .iter()
        .filter(|m| header_str(m, "traceparent").is_some())
        .count();
    c.check(
        "(e) ratio 0: no flow record carries a traceparent",
        with_header == 0,
        || format!("{with_header} flows have one"),
    );
    let with_trace = alerts
        .iter()
        .filter(|m| alert_info(m).trace_id.is_some())
        .count();
    c.check(
        "(e) ratio 0: no alert carries trace.id",
        with_trace == 0,
        || format!("{with_trace} alerts have one"),
    );
    c.finish(String::new);
    drop(tansu);
    Ok(())
}

/// Prometheus text parsed into (name, labels, value).
type Sample = (String, BTreeMap<String, String>, f64);

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let mut labels = BTreeMap::new();
                for pair in rest.trim_end_matches('}').split("\",") {
                    if let Some((k, v)) = pair.split_once('=') {
                        labels.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
                    }
                }
                (n.to_string(), labels)
            }
            None => (head.to_string(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

fn metric_sum(samples: &[Sample], name: &str) -> Option<f64> {
    let v: Vec<f64> = samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| *v)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn metric_by_label(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, u64> {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .filter_map(|(_, l, v)| Some((l.get(label)?.clone(), *v as u64)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Writes malformed records straight into the flows topic: random bytes
/// (`not_avro`) and a truncated single-object Avro record (`truncated`).
async fn inject_bad_records(brokers: &str) -> anyhow::Result<usize> {
    let b = brokers.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let codec = ids_schemas::codec::FlowCodec::new();
        let mut good = Vec::new();
        codec.encode(&ids_e2e::pipeline::synthetic_flow(1), &mut good)?;
        let truncated = good[..good.len() / 2].to_vec();
        let bad: Vec<Vec<u8>> = vec![
            b"not avro at all".to_vec(),
            vec![0xff; 32],
            truncated.clone(),
            truncated,
        ];
        let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", &b).create()?;
        for (i, payload) in bad.iter().enumerate() {
            let key = format!("bad-{i}");
            p.send(BaseRecord::to(FLOWS).key(key.as_bytes()).payload(payload))
                .map_err(|(e, _)| e)?;
        }
        p.flush(Duration::from_secs(30))?;
        Ok(bad.len())
    })
    .await?
}

/// Issue 4, metrics: after a run, the processor's `/metrics` counters equal
/// what is in Kafka: consumed = records in `flows`, verdicts by class = alerts
/// by class (`emit_benign=true`), DLQ by kind = dead letters by error header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_records_in_kafka() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    const N: usize = 60;
    let tansu = Tansu::start_memory()?;
    let brokers = tansu.brokers();
    topics(&brokers).await?;
    let dir = tempfile::tempdir()?;
    let dataset = write_generated_dataset(dir.path(), "flows.txt", N)?;

    let (mut processor, env) = start_processor(&brokers, &fresh_group("ids-obsm"), &[]).await?;
    let bad = inject_bad_records(&brokers).await?;
    let _producer = run_producer(&brokers, &dataset, &[]).await;

    let flows = read_all(&brokers, FLOWS, N + bad).await;
    let dlq = read_all(&brokers, DLQ, bad).await;
    let alerts = read_all(&brokers, ALERTS, N).await;

    // Counters are updated once per batch, after its commit; poll until the
    // consumed counter has caught up with the topic (or give up and report).
    let addr = env.http_addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, text) = loop {
        let a = addr.clone();
        let r = tokio::task::spawn_blocking(move || http_get(&a, "/metrics")).await?;
        let caught_up = r.as_ref().is_some_and(|(s, body)| {
            *s == 200
                && metric_sum(&parse_metrics(body), "ids_processor_records_consumed_total")
                    == Some(flows.len() as f64)
        });
        if caught_up || Instant::now() > deadline {
            break r.unwrap_or((0, String::new()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let samples = parse_metrics(&text);

    let mut alert_classes: BTreeMap<String, u64> = BTreeMap::new();
    for m in &alerts {
        *alert_classes.entry(alert_info(m).class).or_insert(0) += 1;
    }
    let mut dlq_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for m in &dlq {
        let kind = header_str(m, "ids.error.kind").unwrap_or("<none>");
        *dlq_kinds.entry(kind.to_string()).or_insert(0) += 1;
    }

    let mut c = Checks::default();
    c.check("GET /metrics answers 200", status == 200, || {
        format!("status {status}")
    });
    c.check(
        "every flow (good and bad) reached Kafka",
        flows.len() == N + bad && alerts.len() == N && dlq.len() == bad,
        || {
            format!(
                "{} flows (want {}), {} alerts (want {N}), {} dead letters (want {bad})",
                flows.len(),
                N + bad,
                alerts.len(),
                dlq.len()
            )
        },
    );
    let consumed = metric_sum(&samples, "ids_processor_records_consumed_total");
    c.check(
        "ids_processor_records_consumed_total = records in flows",
        consumed == Some(flows.len() as f64),
        || format!("{consumed:?}, flows topic has {}", flows.len()),
    );
    let verdicts = metric_by_label(&samples, "ids_processor_verdicts_total", "class");
    c.check(
        "ids_processor_verdicts_total{class} = alerts by class (emit_benign=true)",
        verdicts == alert_classes,
        || format!("metrics {verdicts:?}, alerts {alert_classes:?}"),
    );
    let verdict_sum: u64 = verdicts.values().sum();
    c.check(
        "sum of ids_processor_verdicts_total = records in alerts",
        verdict_sum == alerts.len() as u64,
        || format!("{verdict_sum} vs {}", alerts.len()),
    );
    let produced = metric_sum(&samples, "ids_processor_alerts_produced_total");
    c.check(
        "ids_processor_alerts_produced_total = records in alerts",
        produced == Some(alerts.len() as f64),
        || format!("{produced:?} vs {}", alerts.len()),
    );
    let dlq_metric = metric_by_label(&samples, "ids_processor_dlq_records_total", "kind");
    c.check(
        "ids_processor_dlq_records_total{kind} = dead letters by ids.error.kind",
        dlq_metric == dlq_kinds && !dlq_kinds.is_empty(),
        || format!("metrics {dlq_metric:?}, DLQ topic {dlq_kinds:?}"),
    );
    let batch_sum = metric_sum(&samples, "ids_processor_batch_records_sum");
    c.check(
        "ids_processor_batch_records histogram: sum = records consumed",
        batch_sum == Some(flows.len() as f64),
        || format!("{batch_sum:?}"),
    );
    for name in [
        "ids_processor_batch_duration_seconds_count",
        "ids_processor_end_to_end_latency_seconds_count",
    ] {
        let v = metric_sum(&samples, name);
        c.check(&format!("{name} > 0"), v.is_some_and(|v| v > 0.0), || {
            format!("{v:?}")
        });
    }
    let lag_partitions =
        metric_by_label_all(&samples, "ids_processor_consumer_lag_records", "partition");
    c.check(
        "ids_processor_consumer_lag_records per partition of flows",
        lag_partitions.len() == FLOW_PARTITIONS as usize,
        || format!("partitions with a lag series: {lag_partitions:?}"),
    );
    let model = samples
        .iter()
        .find(|(n, _, _)| n == "ids_processor_model_info");
    c.check(
        "ids_processor_model_info{model_id,model_version,feature_set} = 1",
        model.is_some_and(|(_, l, v)| {
            *v == 1.0
                && ["model_id", "model_version", "feature_set"]
                    .iter()
                    .all(|k| l.get(*k).is_some_and(|s| !s.is_empty()))
        }),
        || format!("{model:?}"),
    );
    let _ = processor.status();
    let log = processor.log();
    c.finish(|| {
        format!(
            "----- /metrics -----\n{text}\n----- processor log (tail) -----\n{}",
            tail(&log, 40)
        )
    });
    terminate_ok(&mut processor);
    drop(tansu);
    Ok(())
}

/// Label values of every series of `name` (zero values included).
fn metric_by_label_all(samples: &[Sample], name: &str, label: &str) -> Vec<String> {
    let mut v: Vec<String> = samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .filter_map(|(_, l, _)| l.get(label).cloned())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
