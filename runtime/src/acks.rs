//! Waiting for a producer's acknowledgements without lingering, blocking in
//! 100 ms slices, or spinning: the at-least-once step of the processor
//! (acknowledge, then commit), the end of an `ids-producer` run, and the
//! benchmark's passthrough all wait this way.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// How long [`send_lingering`] holds librdkafka's "flushing" flag.
const FLUSH_HOLD_MS: i32 = 1;
/// How long [`await_acknowledgements`] sleeps between looks at the
/// delivery reports.
const ACK_POLL_INTERVAL: Duration = Duration::from_micros(200);
/// How often [`await_acknowledgements`] repeats [`send_lingering`] while
/// records are outstanding: a broker thread not scheduled within the first
/// millisecond would otherwise linger the whole `linger.ms`.
const REKICK_INTERVAL: Duration = Duration::from_millis(5);

/// Makes librdkafka send the records that wait out `linger.ms` now, and
/// returns after about a millisecond, with their delivery reports (if any
/// came) still queued for `poll`.
///
/// Why not `Producer::flush(Duration::ZERO)`: rust-rdkafka 0.39 calls
/// `rd_kafka_flush(rk, 0)`, which raises librdkafka's "flushing" flag (under
/// which `linger.ms` counts as elapsed) and wakes the broker threads, but
/// lowers the flag again before returning; a broker thread that wakes up
/// after that finds the flag down and lingers anyway (librdkafka's own
/// comment in `rd_kafka_flush` says so). With it, every processor batch
/// waited out `linger.ms` (librdkafka's default 5 ms) before its alerts were
/// sent: on Tansu the processor and the passthrough ran at ~70k flows/s;
/// holding the flag for 1 ms, at ~145k (the processor's README benchmarks).
///
/// rust-rdkafka runs librdkafka with delivery reports as events; in that
/// mode `rd_kafka_flush` only waits for the outstanding count to reach zero
/// and never serves the report queue, and the count cannot reach zero before
/// the reports are served. So this call neither takes reports away from
/// `poll` nor returns early: it costs its whole millisecond.
pub fn send_lingering<C: ProducerContext>(producer: &BaseProducer<C>) {
    // SAFETY: `native_ptr` is the live librdkafka handle owned by `producer`,
    // which outlives this call, and `rd_kafka_flush` may be called from any
    // thread.
    unsafe {
        rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), FLUSH_HOLD_MS);
    }
}

/// Waits until every record handed to `producer` is acknowledged or failed
/// (the outcome is in the producer context's delivery accounting).
///
/// Not `Producer::flush`: rust-rdkafka's flush polls in slices of up to
/// 100 ms and only returns at the end of a slice, which put a floor of 100 ms
/// under every batch (the processor then ran at ~0.09x a raw passthrough).
/// Nor `poll` with a short timeout: rust-rdkafka 0.39 hands librdkafka the
/// remaining time in whole milliseconds, so the last sub-millisecond of every
/// timed poll is a busy loop, and a 1 ms poll is nothing but that loop (it
/// took half a core at 5,000 flows/s and slowed the broker beside it).
/// Instead: make librdkafka send what lingers ([`send_lingering`], again
/// every 5 ms while records are outstanding), serve delivery reports without
/// blocking, and sleep 0.2 ms in between. It returns within ~0.2 ms of the
/// last acknowledgement (1 ms at the earliest), and always terminates:
/// librdkafka fails a record at the latest after `message.timeout.ms`.
pub fn await_acknowledgements<C: ProducerContext>(producer: &BaseProducer<C>) {
    if producer.in_flight_count() == 0 {
        return;
    }
    send_lingering(producer);
    let mut kicked = Instant::now();
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return;
        }
        if kicked.elapsed() >= REKICK_INTERVAL {
            send_lingering(producer);
            kicked = Instant::now();
        } else {
            std::thread::sleep(ACK_POLL_INTERVAL);
        }
    }
}
