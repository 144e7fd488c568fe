//! W3C Trace Context `traceparent` header (<https://www.w3.org/TR/trace-context/>).
//!
//! The producer stamps each flow record with a `traceparent` so that a
//! verdict can be tied back to the trace that produced the flow; the alert
//! document carries the trace id (`trace.id`). The format is small and fixed,
//! so it is parsed here by hand rather than pulling an OpenTelemetry
//! propagator into the wire-contract crate:
//!
//! ```text
//! 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//! ^^ version  ^^ trace id (32 hex)    ^^ parent id (16)  ^^ flags
//! ```
//!
//! Parsing follows the specification: lowercase hex only, all-zero trace or
//! span ids are invalid, version `ff` is invalid, version `00` must be exactly
//! 55 characters, and a higher (future) version may carry more data after a
//! `-`, which is ignored. Anything else yields `None`, and the caller starts a
//! new trace instead of propagating a broken one.

use std::fmt;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

const HEX: &[u8; 16] = b"0123456789abcdef";

impl TraceParent {
    /// Builds a trace parent; `None` when either id is all zeros (the
    /// specification's "invalid" value).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<TraceParent> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Parses a header value. See the module documentation for the rules.
    pub fn parse(value: &str) -> Option<TraceParent> {
        Self::parse_bytes(value.as_bytes())
    }

    /// Parses a header value given as bytes (Kafka header values are bytes).
    pub fn parse_bytes(v: &[u8]) -> Option<TraceParent> {
        if v.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(v[0], v[1])?;
        match version {
            0xff => return None,
            0x00 if v.len() != TRACEPARENT_LEN => return None,
            // Future versions: the first 55 characters keep this layout, and
            // anything after them must start with a dash.
            _ if v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' => return None,
            _ => {}
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(v[3 + 2 * i], v[4 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(v[36 + 2 * i], v[37 + 2 * i])?;
        }
        let flags = hex_byte(v[53], v[54])?;
        TraceParent::new(trace_id, span_id, flags)
    }

    /// The header value, always version `00`.
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(TRACEPARENT_LEN);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push('-');
        push_hex(&mut out, &[self.flags]);
        out
    }

    /// The trace id as 32 lowercase hex digits (ECS `trace.id`).
    pub fn trace_id_hex(&self) -> String {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, &self.trace_id);
        out
    }

    /// Writes the trace id as 32 lowercase hex digits into `buf` and returns
    /// it as a `&str`: the allocation-free form of [`Self::trace_id_hex`].
    pub fn trace_id_hex_into<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
        for (i, b) in self.trace_id.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        let buf: &'b [u8] = buf;
        // Only ASCII hex digits were written, so this cannot fail.
        std::str::from_utf8(buf).unwrap_or_default()
    }

    /// Whether the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// One byte from two lowercase hex digits (the specification forbids uppercase).
fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some((nibble(hi)? << 4) | nibble(lo)?)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specification_example() {
        let tp = TraceParent::parse(EXAMPLE).expect("valid");
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        assert_eq!(tp.to_header_value(), EXAMPLE);
        assert_eq!(tp.to_string(), EXAMPLE);
        let mut buf = [0u8; 32];
        assert_eq!(
            tp.trace_id_hex_into(&mut buf),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .expect("valid");
        assert!(!unsampled.sampled());
    }

    #[test]
    fn rejects_invalid_values() {
        let bad = [
            "",
            "00",
            // all-zero trace id / span id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // short / long ids
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            // version 00 with trailing data
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            // wrong separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert_eq!(TraceParent::parse(b), None, "{b:?}");
        }
        assert_eq!(TraceParent::new([0; 16], [1; 8], 0), None);
        assert_eq!(TraceParent::new([1; 16], [0; 8], 0), None);
    }

    #[test]
    fn future_versions_keep_the_known_prefix() {
        let v = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        let tp = TraceParent::parse(v).expect("future version with extra data");
        assert_eq!(tp.to_header_value(), EXAMPLE);
        assert_eq!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
    }

    proptest! {
        #[test]
        fn round_trips(trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), flags in any::<u8>()) {
            if let Some(tp) = TraceParent::new(trace, span, flags) {
                let s = tp.to_header_value();
                prop_assert_eq!(s.len(), TRACEPARENT_LEN);
                prop_assert_eq!(TraceParent::parse(&s), Some(tp));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TraceParent::parse(&s);
            let _ = TraceParent::parse_bytes(&b);
        }
    }
}
