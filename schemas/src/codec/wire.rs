//! Hand-written Avro binary primitives for the hot path.
//!
//! apache-avro decodes into a generic `Value` tree (one heap node per field,
//! a `String` per field name lookup during `from_value`), which costs several
//! microseconds for a 77-field CIC record. The flow schema is fixed and known
//! at compile time, so the codec reads and writes it with these primitives
//! instead: straight-line code, no intermediate tree, strings copied once into
//! reusable buffers.
//!
//! Every read is bounded by the remaining input. A length prefix is checked
//! against [`MAX_FIELD_BYTES`](super::MAX_FIELD_BYTES) and against the bytes
//! left *before* anything is allocated, so hostile input can never make the
//! decoder allocate more than the message itself.

use super::{DecodeError, InvalidReason, MAX_FIELD_BYTES};

/// Why a primitive read failed. Kept small so the hot path's `Result`s stay
/// cheap; [`Reader::error`] turns it into a [`DecodeError`] with the field
/// name and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Truncated,
    Invalid(InvalidReason),
}

/// A cursor over one Avro datum. `Copy` so that hot loops can work on a
/// local copy that the optimiser keeps in registers (see `avro_read`).
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Offset of the first byte of the datum in the whole message, so that
    /// errors report positions the way a hex dump of the message shows them.
    end: usize,
}

impl<'a> Reader<'a> {
    /// `base` is the offset of `buf` inside the framed message (header length).
    #[inline]
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader {
            buf,
            end: base + buf.len(),
        }
    }

    /// Byte offset of the read position inside the whole message.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.end - self.buf.len()
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Turns a primitive failure into the public error, naming the field.
    /// Inlined and reading the cursor by value, so that calling it on an
    /// error path does not force the cursor out of registers on the hot path.
    #[inline(always)]
    pub(crate) fn error(&self, fail: Fail, field: &'static str) -> DecodeError {
        make_error(fail, self.end, self.buf.len(), field)
    }

    /// Raw unsigned varint (at most 10 bytes, as for a 64-bit long).
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Fail> {
        let buf = self.buf;
        if let Some((&b, rest)) = buf.split_first() {
            if b < 0x80 {
                self.buf = rest;
                return Ok(u64::from(b));
            }
        }
        let (v, n) = varint_multi(buf)?;
        self.buf = &buf[n..];
        Ok(v)
    }

    /// Avro `long`: zigzag varint.
    #[inline(always)]
    pub(crate) fn long(&mut self) -> Result<i64, Fail> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// Avro `int`: zigzag varint that must fit in 32 bits.
    #[inline(always)]
    pub(crate) fn int(&mut self) -> Result<i32, Fail> {
        let start = self.buf;
        let v = self.long()?;
        match i32::try_from(v) {
            Ok(v) => Ok(v),
            Err(_) => {
                // Point the error offset at the start of the offending value.
                self.buf = start;
                Err(Fail::Invalid(InvalidReason::IntOutOfRange(v)))
            }
        }
    }

    /// Avro `double`: 8 bytes little-endian IEEE 754.
    #[inline(always)]
    pub(crate) fn double(&mut self) -> Result<f64, Fail> {
        match self.buf.split_first_chunk::<8>() {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(f64::from_le_bytes(*head))
            }
            None => Err(Fail::Truncated),
        }
    }

    /// Avro `boolean`: one byte, 0 or 1.
    #[inline(always)]
    pub(crate) fn boolean(&mut self) -> Result<bool, Fail> {
        match self.buf.split_first() {
            Some((&b, rest)) if b <= 1 => {
                self.buf = rest;
                Ok(b == 1)
            }
            Some((&b, _)) => Err(Fail::Invalid(InvalidReason::Boolean(b))),
            None => Err(Fail::Truncated),
        }
    }

    /// Avro `string`: long length + UTF-8 bytes. The length is checked against
    /// the field limit and the remaining input before anything is touched.
    #[inline(always)]
    pub(crate) fn str(&mut self) -> Result<&'a str, Fail> {
        let start = self.buf;
        let len = self.long()?;
        if len < 0 {
            self.buf = start;
            return Err(Fail::Invalid(InvalidReason::NegativeLength(len)));
        }
        if len as u64 > MAX_FIELD_BYTES as u64 {
            self.buf = start;
            return Err(Fail::Invalid(InvalidReason::LengthTooLarge(len)));
        }
        let len = len as usize;
        if len > self.buf.len() {
            return Err(Fail::Truncated);
        }
        let (bytes, rest) = self.buf.split_at(len);
        let Ok(s) = std::str::from_utf8(bytes) else {
            self.buf = start;
            return Err(Fail::Invalid(InvalidReason::Utf8));
        };
        self.buf = rest;
        Ok(s)
    }

    /// Union branch index (a long) that must be below `branches`.
    #[inline(always)]
    pub(crate) fn union_index(&mut self, branches: u32) -> Result<u32, Fail> {
        let start = self.buf;
        let i = self.long()?;
        if (0..i64::from(branches)).contains(&i) {
            Ok(i as u32)
        } else {
            self.buf = start;
            Err(Fail::Invalid(InvalidReason::UnionIndex(i)))
        }
    }

    /// Enum symbol index (an int) that must be below `symbols`.
    #[inline(always)]
    pub(crate) fn enum_index(&mut self, symbols: usize) -> Result<usize, Fail> {
        let start = self.buf;
        let i = self.int()?;
        if i >= 0 && (i as usize) < symbols {
            Ok(i as usize)
        } else {
            self.buf = start;
            Err(Fail::Invalid(InvalidReason::EnumIndex(i64::from(i))))
        }
    }
}

/// Multi-byte varint: value and bytes consumed. Called when the input is
/// empty or its first byte has the continuation bit set. A free function
/// over the slice (not `&mut Reader`) so the cursor never has its address
/// taken and stays in registers.
#[inline(always)]
fn varint_multi(buf: &[u8]) -> Result<(u64, usize), Fail> {
    // Common case: at least 8 bytes left and the varint ends within them
    // (values below 2^56). Decode the word without a per-byte loop: find the
    // first byte without the continuation bit, mask off what follows, then
    // squeeze the 7-bit groups together.
    if let Some(b) = buf.first_chunk::<8>() {
        let w = u64::from_le_bytes(*b);
        // Two to four bytes (values below 2^28: most counters) get their
        // own predictable branches, so the cursor advance does not wait on
        // the bit arithmetic below.
        if w & 0x8000 == 0 {
            return Ok(((w & 0x7f) | ((w >> 1) & 0x3f80), 2));
        }
        if w & 0x80_0000 == 0 {
            return Ok(((w & 0x7f) | ((w >> 1) & 0x3f80) | ((w >> 2) & 0x1f_c000), 3));
        }
        if w & 0x8000_0000 == 0 {
            let v = (w & 0x7f)
                | ((w >> 1) & 0x3f80)
                | ((w >> 2) & 0x1f_c000)
                | ((w >> 3) & 0x0fe0_0000);
            return Ok((v, 4));
        }
        let stop = !w & 0x8080_8080_8080_8080;
        if stop != 0 {
            let len = (stop.trailing_zeros() as usize + 1) / 8;
            let keep = if len == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * len)) - 1
            };
            let x = w & keep & 0x7f7f_7f7f_7f7f_7f7f;
            let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
            let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
            let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
            return Ok((x, len));
        }
    }
    varint_slow(buf)
}

/// Byte-by-byte varint: near the end of the input, or 9-10 byte values
/// (beyond 2^56, e.g. negative longs). Out of line to keep the hot path small.
#[cold]
#[inline(never)]
fn varint_slow(buf: &[u8]) -> Result<(u64, usize), Fail> {
    let mut v = 0u64;
    for i in 0..10 {
        let Some(&b) = buf.get(i) else {
            return Err(Fail::Truncated);
        };
        if i == 9 && b > 1 {
            return Err(Fail::Invalid(InvalidReason::VarintOverflow));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((v, i + 1));
        }
    }
    Err(Fail::Invalid(InvalidReason::VarintOverflow))
}

#[cold]
#[inline(never)]
fn make_error(fail: Fail, end: usize, remaining: usize, field: &'static str) -> DecodeError {
    match fail {
        Fail::Truncated => DecodeError::Truncated { offset: end, field },
        Fail::Invalid(reason) => DecodeError::Invalid {
            offset: end - remaining,
            field,
            reason,
        },
    }
}

/// Appends an Avro `long` (zigzag varint).
#[inline(always)]
pub(crate) fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    if z < 0x80 {
        out.push(z as u8);
        return;
    }
    let mut buf = [0u8; 10];
    let mut n = 0;
    while z >= 0x80 {
        buf[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    buf[n] = z as u8;
    out.extend_from_slice(&buf[..=n]);
}

/// Appends an Avro `int`; its zigzag varint is the same as the long's.
#[inline(always)]
pub(crate) fn put_int(out: &mut Vec<u8>, v: i32) {
    put_long(out, i64::from(v));
}

/// Appends an Avro `float`: 4 bytes little-endian IEEE 754.
#[inline(always)]
pub(crate) fn put_float(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline(always)]
pub(crate) fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

#[inline(always)]
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Writes `["null", string]`.
#[inline(always)]
pub(crate) fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(2);
            put_str(out, s);
        }
    }
}

/// Writes `["null", int]`.
#[inline(always)]
pub(crate) fn put_opt_int(out: &mut Vec<u8>, v: Option<i32>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(2);
            put_int(out, v);
        }
    }
}

/// Writes into a pre-sized slice. Feature groups size the slice with
/// [`AvroField::max_len`] first, then write every field with plain stores:
/// cheaper than a capacity check and a length update per `Vec::push`.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    #[inline(always)]
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.buf[self.pos] = (z as u8) | 0x80;
            self.pos += 1;
            z >>= 7;
        }
        self.buf[self.pos] = z as u8;
        self.pos += 1;
    }

    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

/// A feature-struct field with a fixed Avro primitive type. Implemented for
/// the Rust types the feature tables use, so the `feature_group!` macro can
/// generate straight-line read/write code for each struct.
pub(crate) trait AvroField {
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail>;
    /// Upper bound of the encoded size.
    fn max_len(&self) -> usize;
    /// Writes the value; `w` has at least [`Self::max_len`] bytes left.
    fn write(&self, w: &mut SliceWriter<'_>);
}

impl AvroField for i32 {
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        *self = r.int()?;
        Ok(())
    }
    #[inline(always)]
    fn max_len(&self) -> usize {
        5
    }
    #[inline(always)]
    fn write(&self, w: &mut SliceWriter<'_>) {
        w.long(i64::from(*self));
    }
}

impl AvroField for i64 {
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        *self = r.long()?;
        Ok(())
    }
    #[inline(always)]
    fn max_len(&self) -> usize {
        10
    }
    #[inline(always)]
    fn write(&self, w: &mut SliceWriter<'_>) {
        w.long(*self);
    }
}

impl AvroField for f64 {
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        *self = r.double()?;
        Ok(())
    }
    #[inline(always)]
    fn max_len(&self) -> usize {
        8
    }
    #[inline(always)]
    fn write(&self, w: &mut SliceWriter<'_>) {
        w.bytes(&self.to_le_bytes());
    }
}

impl AvroField for bool {
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        *self = r.boolean()?;
        Ok(())
    }
    #[inline(always)]
    fn max_len(&self) -> usize {
        1
    }
    #[inline(always)]
    fn write(&self, w: &mut SliceWriter<'_>) {
        w.bytes(&[u8::from(*self)]);
    }
}

impl AvroField for String {
    /// Reuses the existing buffer: decoding into a recycled record does not
    /// allocate once the buffers have grown to the usual sizes.
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        let s = r.str()?;
        self.clear();
        self.push_str(s);
        Ok(())
    }
    #[inline(always)]
    fn max_len(&self) -> usize {
        10 + self.len()
    }
    #[inline(always)]
    fn write(&self, w: &mut SliceWriter<'_>) {
        w.long(self.len() as i64);
        w.bytes(self.as_bytes());
    }
}

/// `["null", string]` read into a reusable `Option<String>`.
#[inline(always)]
pub(crate) fn read_opt_string(r: &mut Reader<'_>, slot: &mut Option<String>) -> Result<(), Fail> {
    if r.union_index(2)? == 0 {
        *slot = None;
    } else {
        let s = r.str()?;
        match slot {
            Some(buf) => {
                buf.clear();
                buf.push_str(s);
            }
            None => *slot = Some(s.to_owned()),
        }
    }
    Ok(())
}

/// `["null", int]`.
#[inline(always)]
pub(crate) fn read_opt_int(r: &mut Reader<'_>) -> Result<Option<i32>, Fail> {
    if r.union_index(2)? == 0 {
        Ok(None)
    } else {
        r.int().map(Some)
    }
}

/// `["null", long]`.
#[inline(always)]
pub(crate) fn read_opt_long(r: &mut Reader<'_>) -> Result<Option<i64>, Fail> {
    if r.union_index(2)? == 0 {
        Ok(None)
    } else {
        r.long().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_round_trips_at_the_edges() {
        for v in [
            0i64,
            -1,
            1,
            63,
            -64,
            64,
            -65,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_long(&mut out, v);
            let mut r = Reader::new(&out, 0);
            assert_eq!(r.long(), Ok(v));
            assert_eq!(r.remaining(), 0);
            // Followed by padding: exercises the unchecked 10-byte path.
            out.extend_from_slice(&[0x7f; 10]);
            let mut r = Reader::new(&out, 0);
            assert_eq!(r.long(), Ok(v));
            assert_eq!(r.remaining(), 10);
        }
    }

    proptest::proptest! {
        #[test]
        fn long_round_trips_any_magnitude(v in proptest::prelude::any::<i64>(), shift in 0u32..64, pad in 0usize..12) {
            let v = v >> shift;
            let mut out = Vec::new();
            put_long(&mut out, v);
            let len = out.len();
            out.extend(std::iter::repeat_n(0x80u8, pad));
            let mut r = Reader::new(&out, 0);
            proptest::prop_assert_eq!(r.long(), Ok(v));
            proptest::prop_assert_eq!(r.remaining(), out.len() - len);
            // Every strict prefix is truncated.
            for cut in 0..len {
                let mut r = Reader::new(&out[..cut], 0);
                proptest::prop_assert_eq!(r.long(), Err(Fail::Truncated));
            }
        }
    }

    #[test]
    fn varint_overflow_and_truncation_are_distinguished() {
        let mut r = Reader::new(&[0x80, 0x80], 0);
        assert_eq!(r.long(), Err(Fail::Truncated));
        let eleven = [0xffu8; 11];
        let mut r = Reader::new(&eleven, 0);
        assert_eq!(r.long(), Err(Fail::Invalid(InvalidReason::VarintOverflow)));
        // 10th byte with more than the 64th bit set.
        let mut bytes = [0xffu8; 10];
        bytes[9] = 0x02;
        let mut r = Reader::new(&bytes, 0);
        assert_eq!(r.long(), Err(Fail::Invalid(InvalidReason::VarintOverflow)));
    }

    #[test]
    fn int_rejects_values_beyond_32_bits() {
        let mut out = Vec::new();
        put_long(&mut out, i64::from(i32::MAX) + 1);
        let mut r = Reader::new(&out, 0);
        assert!(matches!(
            r.int(),
            Err(Fail::Invalid(InvalidReason::IntOutOfRange(_)))
        ));
    }

    #[test]
    fn string_length_checks_happen_before_allocation() {
        let mut out = Vec::new();
        put_long(&mut out, 1 << 62);
        let mut r = Reader::new(&out, 0);
        assert!(matches!(
            r.str(),
            Err(Fail::Invalid(InvalidReason::LengthTooLarge(_)))
        ));
        let mut out = Vec::new();
        put_long(&mut out, -3);
        let mut r = Reader::new(&out, 0);
        assert!(matches!(
            r.str(),
            Err(Fail::Invalid(InvalidReason::NegativeLength(-3)))
        ));
        let mut out = Vec::new();
        put_long(&mut out, 10);
        out.extend_from_slice(b"abc");
        let mut r = Reader::new(&out, 0);
        assert_eq!(r.str(), Err(Fail::Truncated));
        let mut out = Vec::new();
        put_long(&mut out, 2);
        out.extend_from_slice(&[0xff, 0xfe]);
        let mut r = Reader::new(&out, 0);
        assert_eq!(r.str(), Err(Fail::Invalid(InvalidReason::Utf8)));
    }

    #[test]
    fn booleans_unions_and_enums_are_range_checked() {
        let mut r = Reader::new(&[2], 0);
        assert_eq!(r.boolean(), Err(Fail::Invalid(InvalidReason::Boolean(2))));
        let mut r = Reader::new(&[4], 0);
        assert_eq!(
            r.union_index(2),
            Err(Fail::Invalid(InvalidReason::UnionIndex(2)))
        );
        let mut r = Reader::new(&[1], 0);
        assert_eq!(
            r.union_index(2),
            Err(Fail::Invalid(InvalidReason::UnionIndex(-1)))
        );
        let mut r = Reader::new(&[12], 0);
        assert_eq!(
            r.enum_index(6),
            Err(Fail::Invalid(InvalidReason::EnumIndex(6)))
        );
    }
}
