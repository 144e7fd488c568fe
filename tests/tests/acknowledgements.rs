//! The processor's acknowledgement wait against Tansu: records handed to a
//! producer with a long `linger.ms` are sent at once, so a batch never waits
//! out the linger before its alerts are acknowledged and its offsets
//! committed.
//!
//! With rust-rdkafka's `flush(Duration::ZERO)`, which the processor used
//! before, librdkafka's broker thread usually missed the short-lived
//! "flushing" flag and every batch waited the whole `linger.ms`; with the
//! 30 s linger below this test would then take 30 s and fail.

use std::time::{Duration, Instant};

use ids_e2e::{create_topic, Tansu};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const LINGER_MS: u64 = 30_000;

fn send(p: &BaseProducer, topic: &str, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        let v = format!("v{i}");
        p.send(BaseRecord::<[u8], [u8]>::to(topic).payload(v.as_bytes()))
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_wait_does_not_wait_out_linger() -> anyhow::Result<()> {
    let broker = Tansu::start_memory()?;
    let brokers = broker.brokers();
    create_topic(&brokers, "acks", 2).await?;
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", LINGER_MS.to_string())
        .create()?;
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        // The first batch also waits for the connection and the producer id.
        send(&p, "acks", 10)?;
        ids_runtime::acks::await_acknowledgements(&p);
        for round in 0..3 {
            send(&p, "acks", 50)?;
            let t0 = Instant::now();
            ids_runtime::acks::await_acknowledgements(&p);
            let took = t0.elapsed();
            assert_eq!(p.in_flight_count(), 0);
            assert!(
                took < Duration::from_millis(LINGER_MS / 3),
                "round {round}: acknowledged after {took:?}, linger.ms is {LINGER_MS}"
            );
        }
        Ok(())
    })?;
    // Acknowledged means written: all 160 records are there.
    let read = ids_e2e::read_topic(&brokers, "acks", 160, Duration::from_secs(30)).await?;
    assert_eq!(read.len(), 160);
    Ok(())
}
