//! Zig-zag varints as Kafka's record format (magic 2) writes them: `varint` for i32 fields
//! (at most 5 bytes) and `varlong` for i64 fields (at most 10 bytes), low 7 bits first.
//!
//! Decoding is total: a truncated, over-long or overflowing encoding gives `None`, and the
//! caller names the field in its error. Stateless; safe to use from any thread.

/// Longest encoding of a 32-bit varint.
pub(crate) const VARINT_MAX_BYTES: usize = 5;
/// Longest encoding of a 64-bit varlong.
pub(crate) const VARLONG_MAX_BYTES: usize = 10;

/// Reads a zig-zag varint from the start of `buf`: `(value, bytes used)`.
pub(crate) fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (raw, used) = read_unsigned(buf, VARINT_MAX_BYTES)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Reads a zig-zag varlong from the start of `buf`: `(value, bytes used)`.
pub(crate) fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let (raw, used) = read_unsigned(buf, VARLONG_MAX_BYTES)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

/// Base-128 decoding with an explicit byte bound; rejects bits beyond 64 and encodings
/// longer than `max_bytes` instead of silently dropping them.
fn read_unsigned(buf: &[u8], max_bytes: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in buf.iter().take(max_bytes).enumerate() {
        let shift = 7 * index as u32;
        let payload = u64::from(byte & 0x7f);
        // The last allowed byte may only carry the bits that still fit in 64 bits.
        if shift == 63 && payload > 1 {
            return None;
        }
        value |= payload << shift;
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// Appends `value` as a zig-zag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    let zigzag = ((value << 1) ^ (value >> 31)) as u32;
    put_unsigned(out, u64::from(zigzag));
}

/// Appends `value` as a zig-zag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    put_unsigned(out, zigzag);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encoded size of `value` as a zig-zag varint.
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Encoded size of `value` as a zig-zag varlong.
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_len(value: u64) -> usize {
    let significant_bits = (64 - value.leading_zeros()).max(1) as usize;
    significant_bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn zigzag_matches_kafka_examples() {
        // Values from the Kafka protocol guide's zig-zag table.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(-2), [0x03]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn varint_roundtrip_at_edges() {
        for value in [0, 1, -1, 63, -64, 64, 8191, -8192, i32::MAX, i32::MIN] {
            let bytes = varint_bytes(value);
            assert_eq!(bytes.len(), varint_len(value));
            assert_eq!(read_varint(&bytes), Some((value, bytes.len())));
        }
    }

    #[test]
    fn varlong_roundtrip_at_edges() {
        for value in [0, 1, -1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let mut bytes = Vec::new();
            put_varlong(&mut bytes, value);
            assert_eq!(bytes.len(), varlong_len(value));
            assert!(bytes.len() <= VARLONG_MAX_BYTES);
            assert_eq!(read_varlong(&bytes), Some((value, bytes.len())));
        }
    }

    #[test]
    fn rejects_truncated_overlong_and_overflowing() {
        assert_eq!(read_varint(&[]), None);
        assert_eq!(read_varint(&[0x80]), None);
        assert_eq!(read_varint(&[0x80; 6]), None);
        // Five bytes whose value needs more than 32 bits.
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), None);
        assert_eq!(read_varlong(&[0xff; 9]), None);
        // Ten bytes whose last carries more than the one remaining bit.
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(read_varlong(&too_big), None);
    }
}
