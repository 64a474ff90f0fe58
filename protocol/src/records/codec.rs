//! The four Kafka compression codecs for a batch's records section, in both directions.
//!
//! Decompression never trusts a size the input declares: every decoder is read through a
//! `take(max_bytes + 1)` limit (snappy, whose blocks declare their size, is checked against
//! the running total before its buffer grows), so a bomb costs at most `max_bytes` of memory
//! and gives [`RecordError::TooLarge`]. Formats are the ones Kafka clients write:
//! gzip (RFC 1952, concatenated members allowed), snappy in xerial framing (Java client) or
//! raw (librdkafka may send it), LZ4 *frame* format with independent 64 KiB blocks, zstd.
//! Stateless; safe to use from any thread.

use std::io::{Read, Write};

use bytes::Bytes;

use super::RecordError;
use crate::batch::Compression;

/// xerial snappy-java stream magic; a records section without it is raw snappy.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
/// Magic + version (i32) + minimum compatible version (i32).
const XERIAL_HEADER_BYTES: usize = 16;
/// The version pair snappy-java writes and Kafka's readers accept.
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block, as snappy-java's default.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// lz4 frame: magic, FLG, BD and header checksum before the blocks, end mark after.
const LZ4_FRAME_OVERHEAD_BYTES: usize = 7 + 4;
const LZ4_BLOCK_BYTES: usize = 64 * 1024;
/// gzip's 10-byte header and 8-byte trailer, the final deflate block, and margin.
const GZIP_OVERHEAD_BYTES_MAX: usize = 64;
/// zstd's own default level (3), which Kafka's producer also uses by default.
const ZSTD_LEVEL: i32 = 0;

/// Smallest window log the zstd decoder accepts whatever the bound: 8 MiB covers every
/// level up to 19 (Kafka's default is 3), so real producers' frames are never refused.
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
/// zstd's own default limit (128 MiB windows).
const ZSTD_WINDOW_LOG_CEILING: u32 = 27;

/// The largest zstd window the decoder may allocate for an output bound of `max_bytes`: a
/// frame can declare a window far larger than its content, and the decoder allocates it
/// before producing a byte, so a tiny frame could otherwise cost 128 MiB.
fn zstd_window_log_max(max_bytes: usize) -> u32 {
    let needed = usize::BITS - max_bytes.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEILING)
}

/// Decompresses a records section, failing with `TooLarge` as soon as the output would
/// exceed `max_bytes`. `Compression::None` returns the input without copying. The buffer
/// decompressed into never has more than `max_bytes` of capacity (the bound a caller charges
/// to its budget), and the one returned has none to spare.
pub fn decompress(
    compression: Compression,
    input: &Bytes,
    max_bytes: usize,
) -> Result<Bytes, RecordError> {
    let output = match compression {
        Compression::None => return Ok(input.clone()),
        Compression::Gzip => read_bounded(
            flate2::read::MultiGzDecoder::new(&input[..]),
            max_bytes,
            None,
        )?,
        Compression::Snappy => snappy_decompress(input, max_bytes)?,
        Compression::Lz4 => read_bounded(
            lz4_flex::frame::FrameDecoder::new(&input[..]),
            max_bytes,
            lz4_content_bytes(input),
        )?,
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(&input[..]).map_err(decompress_error)?;
            decoder
                .window_log_max(zstd_window_log_max(max_bytes))
                .map_err(decompress_error)?;
            let content_bytes = zstd::zstd_safe::get_frame_content_size(input)
                .ok()
                .flatten();
            read_bounded(decoder, max_bytes, content_bytes)?
        }
    };
    debug_assert!(output.len() <= max_bytes);
    debug_assert_eq!(output.len(), output.capacity());
    Ok(Bytes::from(output))
}

/// Compresses an encoded records section with `compression` (`None` copies it).
pub fn compress(compression: Compression, input: &[u8]) -> std::io::Result<Vec<u8>> {
    compress_at_level(compression, None, input)
}

/// [`compress`] at a codec level (KIP-390's `compression.<codec>.level`): gzip 1–9, zstd
/// its own range; `None` is the codec's default. lz4 and snappy have one level here (the
/// lz4 encoder has no levels), so theirs is ignored.
pub fn compress_at_level(
    compression: Compression,
    level: Option<i32>,
    input: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut output = Vec::new();
    compress_into(compression, level, input, &mut output)?;
    output.shrink_to_fit();
    Ok(output)
}

/// The most bytes [`compress_into`] appends for `input_bytes` of input: each codec's worst
/// case, on incompressible input.
pub fn compressed_bytes_max(compression: Compression, input_bytes: usize) -> usize {
    let blocks = |block_bytes: usize| input_bytes.div_ceil(block_bytes);
    match compression {
        Compression::None => input_bytes,
        // Stored deflate blocks cost 5 bytes each (zlib's deflateBound is tighter than
        // this), plus the gzip header and trailer and the final block.
        Compression::Gzip => input_bytes
            .saturating_add(input_bytes / 4096)
            .saturating_add(input_bytes / 16384)
            .saturating_add(GZIP_OVERHEAD_BYTES_MAX),
        Compression::Snappy => {
            let full_blocks = input_bytes / XERIAL_BLOCK_BYTES;
            let last_block_bytes = input_bytes % XERIAL_BLOCK_BYTES;
            let block_max = |bytes: usize| 4 + snap::raw::max_compress_len(bytes);
            let last = if last_block_bytes == 0 {
                0
            } else {
                block_max(last_block_bytes)
            };
            full_blocks
                .saturating_mul(block_max(XERIAL_BLOCK_BYTES))
                .saturating_add(last)
                .saturating_add(XERIAL_HEADER_BYTES)
        }
        // An incompressible block is stored as is, behind its 4-byte length.
        Compression::Lz4 => input_bytes
            .saturating_add(blocks(LZ4_BLOCK_BYTES).saturating_mul(4))
            .saturating_add(LZ4_FRAME_OVERHEAD_BYTES),
        Compression::Zstd => zstd::zstd_safe::compress_bound(input_bytes),
    }
}

/// Appends `input` compressed with `compression` at `level` to `output`. Room for the
/// codec's worst case is reserved exactly up front, so the buffer never grows by doubling
/// (its capacity stays within what a caller charged); the caller shrinks it when done. A
/// batch builder passes a buffer already holding the header's room, so the compressed
/// records land where the batch needs them.
pub fn compress_into(
    compression: Compression,
    level: Option<i32>,
    input: &[u8],
    output: &mut Vec<u8>,
) -> std::io::Result<()> {
    output.try_reserve_exact(compressed_bytes_max(compression, input.len()))?;
    let start = output.len();
    match compression {
        Compression::None => output.extend_from_slice(input),
        Compression::Gzip => {
            let gzip_level = level
                .and_then(|level| u32::try_from(level).ok())
                .filter(|level| (1..=9).contains(level))
                .map_or_else(flate2::Compression::default, flate2::Compression::new);
            let mut encoder = flate2::write::GzEncoder::new(&mut *output, gzip_level);
            encoder.write_all(input)?;
            encoder.finish()?;
        }
        Compression::Snappy => xerial_compress_into(input, output)?,
        Compression::Lz4 => {
            // Independent 64 KiB blocks and no content size: what Kafka's Java LZ4 stream
            // writes and the only shape its reader is sure to accept.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, &mut *output);
            encoder.write_all(input)?;
            encoder.finish().map_err(std::io::Error::other)?;
        }
        Compression::Zstd => {
            zstd::stream::copy_encode(input, &mut *output, level.unwrap_or(ZSTD_LEVEL))?;
        }
    }
    debug_assert!(output.len() - start <= compressed_bytes_max(compression, input.len()));
    Ok(())
}

/// The first step a decompression buffer grows by when the output's size is not declared.
const READ_STEP_BYTES_MIN: usize = 64 * 1024;

/// Reads `reader` to its end, or fails once it yields more than `max_bytes`.
///
/// The buffer grows by exact steps (doubling, up to the declared `content_bytes` while the
/// output has not passed it, never past `max_bytes`), so its capacity stays within the bound
/// the caller charged; a frame declaring more than it holds costs only what it yields.
fn read_bounded(
    mut reader: impl Read,
    max_bytes: usize,
    content_bytes: Option<u64>,
) -> Result<Vec<u8>, RecordError> {
    let content_bytes = content_bytes.map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
    if content_bytes.is_some_and(|bytes| bytes > max_bytes) {
        return Err(RecordError::TooLarge { max_bytes });
    }
    let mut output = Vec::new();
    let mut filled = 0;
    // Each pass reads at least one byte or ends, and at most `max_bytes + 1` are read.
    loop {
        if filled == output.len() {
            let grown = next_capacity_bytes(filled, max_bytes, content_bytes);
            if grown == filled {
                // Full at the bound: one more byte means the output is too large.
                let mut probe = [0u8; 1];
                match reader.read(&mut probe).map_err(decompress_error)? {
                    0 => break,
                    _ => return Err(RecordError::TooLarge { max_bytes }),
                }
            }
            output
                .try_reserve_exact(grown - filled)
                .map_err(decompress_error)?;
            output.resize(grown, 0);
        }
        match reader
            .read(&mut output[filled..])
            .map_err(decompress_error)?
        {
            0 => break,
            read => filled += read,
        }
    }
    output.truncate(filled);
    output.shrink_to_fit();
    debug_assert!(output.capacity() <= max_bytes);
    Ok(output)
}

/// The capacity a full buffer of `len` bytes grows to (`len` itself at `max_bytes`).
fn next_capacity_bytes(len: usize, max_bytes: usize, content_bytes: Option<usize>) -> usize {
    let doubled = len.saturating_mul(2).max(READ_STEP_BYTES_MIN);
    let grown = match content_bytes {
        Some(content_bytes) if content_bytes > len => doubled.min(content_bytes),
        _ => doubled,
    };
    grown.min(max_bytes)
}

/// The content size an LZ4 frame header declares, if any (FLG bit 3, then 8 bytes LE after
/// the BD byte); only a hint, since the decoder checks it.
fn lz4_content_bytes(input: &[u8]) -> Option<u64> {
    const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    const CONTENT_SIZE_FLAG: u8 = 0x08;
    let (magic, rest) = input.split_first_chunk::<4>()?;
    let (&[flags, _block_descriptor], rest) = rest.split_first_chunk::<2>()?;
    if *magic != LZ4_MAGIC || flags & CONTENT_SIZE_FLAG == 0 {
        return None;
    }
    let (size, _) = rest.split_first_chunk::<8>()?;
    Some(u64::from_le_bytes(*size))
}

fn decompress_error(error: impl std::fmt::Display) -> RecordError {
    RecordError::Decompress(error.to_string())
}

fn snappy_decompress(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, RecordError> {
    // Like snappy-java, only a full xerial header selects the framed format.
    let xerial = match input.get(..XERIAL_HEADER_BYTES) {
        Some(header) if header.starts_with(XERIAL_MAGIC) => Some(&input[XERIAL_HEADER_BYTES..]),
        _ => None,
    };
    let for_each_block = |visit: &mut dyn FnMut(&[u8]) -> Result<(), RecordError>| match xerial {
        Some(blocks) => for_each_xerial_block(blocks, visit),
        None => visit(input),
    };
    // Every block declares its size: sum them first, so the buffer is allocated once, exact.
    let mut output_bytes: usize = 0;
    for_each_block(&mut |block| {
        let block_bytes = snap::raw::decompress_len(block).map_err(decompress_error)?;
        output_bytes = output_bytes
            .checked_add(block_bytes)
            .filter(|&bytes| bytes <= max_bytes)
            .ok_or(RecordError::TooLarge { max_bytes })?;
        Ok(())
    })?;
    let mut output = Vec::new();
    output
        .try_reserve_exact(output_bytes)
        .map_err(decompress_error)?;
    for_each_block(&mut |block| snappy_block_into(block, &mut output))?;
    debug_assert_eq!(output.len(), output_bytes);
    debug_assert_eq!(output.capacity(), output_bytes);
    Ok(output)
}

/// Calls `visit` on each xerial block (`[i32 length][raw snappy]`…) after the header,
/// without collecting them (a stream of tiny blocks would otherwise cost memory).
fn for_each_xerial_block(
    mut blocks: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    // Each pass consumes at least the 4-byte length, so this ends within input.len()/4 passes.
    while !blocks.is_empty() {
        let Some((length_bytes, rest)) = blocks.split_first_chunk::<4>() else {
            return Err(RecordError::Decompress(
                "snappy block length truncated".into(),
            ));
        };
        let block_length = usize::try_from(i32::from_be_bytes(*length_bytes))
            .map_err(|_| RecordError::Decompress("negative snappy block length".into()))?;
        let Some((block, rest)) = rest.split_at_checked(block_length) else {
            return Err(RecordError::Decompress(
                "snappy block longer than the records".into(),
            ));
        };
        visit(block)?;
        blocks = rest;
    }
    Ok(())
}

/// Appends one raw snappy block to `output`, whose capacity already holds its declared size.
fn snappy_block_into(block: &[u8], output: &mut Vec<u8>) -> Result<(), RecordError> {
    let block_bytes = snap::raw::decompress_len(block).map_err(decompress_error)?;
    let start = output.len();
    debug_assert!(output.capacity() - start >= block_bytes);
    output.resize(start + block_bytes, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut output[start..])
        .map_err(decompress_error)?;
    if written != block_bytes {
        return Err(RecordError::Decompress(
            "snappy block shorter than declared".into(),
        ));
    }
    Ok(())
}

/// Appends the xerial header and blocks, each block compressed straight into `output`.
fn xerial_compress_into(input: &[u8], output: &mut Vec<u8>) -> std::io::Result<()> {
    output.extend_from_slice(XERIAL_MAGIC);
    output.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    output.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let length_at = output.len();
        let block_at = length_at + 4;
        output.resize(block_at + snap::raw::max_compress_len(chunk.len()), 0);
        let block_bytes = encoder
            .compress(chunk, &mut output[block_at..])
            .map_err(std::io::Error::other)?;
        output.truncate(block_at + block_bytes);
        // A block of at most 32 KiB compresses to well under i32::MAX bytes.
        let block_length = i32::try_from(block_bytes).map_err(std::io::Error::other)?;
        output[length_at..block_at].copy_from_slice(&block_length.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample_text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"runnel records "[i % 15]).collect()
    }

    #[test]
    fn each_codec_roundtrips_small_empty_and_multi_block_input() {
        for codec in CODECS {
            for len in [0, 1, 100, 100_000] {
                let input = sample_text(len);
                let packed = compress(codec, &input).unwrap();
                let unpacked = decompress(codec, &Bytes::from(packed), 1 << 20).unwrap();
                assert_eq!(unpacked.as_ref(), input.as_slice(), "{codec:?} len {len}");
            }
        }
    }

    /// Frames that declare their decompressed size, as other producers may write them.
    fn sized_frames(input: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        let lz4_info = lz4_flex::frame::FrameInfo::new().content_size(Some(input.len() as u64));
        let mut lz4 = lz4_flex::frame::FrameEncoder::with_frame_info(lz4_info, Vec::new());
        lz4.write_all(input).unwrap();
        vec![
            (Compression::Zstd, zstd::bulk::compress(input, 3).unwrap()),
            (Compression::Lz4, lz4.finish().unwrap()),
            (
                Compression::Snappy,
                snap::raw::Encoder::new().compress_vec(input).unwrap(),
            ),
        ]
    }

    /// The caller charges `max_bytes` to its budget: the buffer decompressed into must never
    /// hold more than that, and what is returned holds no spare capacity.
    #[test]
    fn decompressed_capacity_never_exceeds_the_bound() {
        let limit = 1 << 20;
        for len in [600_000, limit - 1_000, limit] {
            let input = sample_text(len);
            let mut packed: Vec<_> = CODECS
                .iter()
                .map(|&codec| (codec, compress(codec, &input).unwrap()))
                .collect();
            packed.extend(sized_frames(&input));
            // Two concatenated zstd frames: the first one's declared size is not the total.
            let half = zstd::bulk::compress(&input[..len / 2], 3).unwrap();
            let mut two = half.clone();
            two.extend(zstd::bulk::compress(&input[len / 2..], 3).unwrap());
            packed.push((Compression::Zstd, two));
            for (codec, frame) in packed {
                let output = decompress(codec, &Bytes::from(frame), limit).unwrap();
                assert_eq!(output.as_ref(), input.as_slice(), "{codec:?} len {len}");
                let output = Vec::from(output);
                assert!(output.capacity() <= limit, "{codec:?} len {len}");
                assert_eq!(output.capacity(), len, "{codec:?} len {len}");
            }
        }
    }

    #[test]
    fn declared_sizes_above_the_bound_are_too_large() {
        let input = sample_text(100_000);
        for (codec, frame) in sized_frames(&input) {
            let result = decompress(codec, &Bytes::from(frame), 99_999);
            assert_eq!(
                result,
                Err(RecordError::TooLarge { max_bytes: 99_999 }),
                "{codec:?}"
            );
        }
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    }

    /// The compressed output is reserved once, at the codec's worst case, behind what the
    /// buffer already holds: incompressible input must never make it grow past that.
    #[test]
    fn compressed_output_stays_within_its_worst_case_reservation() {
        let header_bytes = 61;
        for codec in CODECS {
            for len in [0, 1, 1_000, 32 * 1024, 64 * 1024 + 1, 300_000, 1 << 20] {
                for input in [noise(len), sample_text(len)] {
                    let mut output = vec![7u8; header_bytes];
                    compress_into(codec, None, &input, &mut output).unwrap();
                    let bound_bytes = header_bytes + compressed_bytes_max(codec, len);
                    assert_eq!(output.capacity(), bound_bytes, "{codec:?} len {len}");
                    assert!(output[..header_bytes].iter().all(|&b| b == 7));
                    let packed = Bytes::copy_from_slice(&output[header_bytes..]);
                    assert_eq!(decompress(codec, &packed, 1 << 20).unwrap(), input);
                    let alone = compress(codec, &input).unwrap();
                    assert_eq!(alone, output[header_bytes..], "{codec:?} len {len}");
                    assert_eq!(alone.capacity(), alone.len());
                }
            }
        }
    }

    #[test]
    fn levels_change_gzip_and_zstd_output_and_still_roundtrip() {
        let input = sample_text(200_000);
        for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, -5, 19)] {
            let fast = compress_at_level(codec, Some(low), &input).unwrap();
            let best = compress_at_level(codec, Some(high), &input).unwrap();
            assert_ne!(fast, best, "{codec:?}: the level is applied");
            for packed in [fast, best] {
                let unpacked = decompress(codec, &Bytes::from(packed), 1 << 20).unwrap();
                assert_eq!(unpacked.as_ref(), input.as_slice());
            }
        }
    }

    #[test]
    fn each_codec_stops_at_the_output_bound() {
        let input = vec![0u8; 1 << 20];
        for codec in CODECS {
            let packed = Bytes::from(compress(codec, &input).unwrap());
            assert!(packed.len() < 64 * 1024, "{codec:?} should compress zeros");
            let result = decompress(codec, &packed, 64 * 1024);
            assert_eq!(
                result,
                Err(RecordError::TooLarge {
                    max_bytes: 64 * 1024
                }),
                "{codec:?}"
            );
            // Exactly at the bound is allowed.
            assert_eq!(
                decompress(codec, &packed, 1 << 20).map(|b| b.len()),
                Ok(1 << 20)
            );
        }
    }

    #[test]
    fn zstd_frames_declaring_huge_windows_are_refused() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.write_all(&sample_text(1_000)).unwrap();
        let frame = Bytes::from(encoder.finish().unwrap());
        assert!(matches!(
            decompress(Compression::Zstd, &frame, 64 * 1024),
            Err(RecordError::Decompress(_))
        ));
        // A bound that needs such a window lets it through.
        assert!(decompress(Compression::Zstd, &frame, 100 << 20).is_ok());
        assert_eq!(zstd_window_log_max(1 << 20), ZSTD_WINDOW_LOG_FLOOR);
        assert_eq!(zstd_window_log_max((64 << 20) + 1), 27);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_WINDOW_LOG_CEILING);
    }

    #[test]
    fn lz4_frame_header_matches_what_kafka_writes() {
        let packed = compress(Compression::Lz4, &sample_text(1_000)).unwrap();
        assert_eq!(&packed[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        // FLG: version 01, independent blocks, no block/content checksum, no content size.
        // BD: 64 KiB maximum block size.
        assert_eq!(&packed[4..6], &[0x60, 0x40]);
    }

    #[test]
    fn raw_snappy_is_accepted_like_librdkafka_sends_it() {
        let input = sample_text(5_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let unpacked = decompress(Compression::Snappy, &Bytes::from(raw), 1 << 20).unwrap();
        assert_eq!(unpacked.as_ref(), input.as_slice());
    }

    #[test]
    fn xerial_framing_matches_snappy_java_layout() {
        let packed = compress(Compression::Snappy, &sample_text(70_000)).unwrap();
        assert_eq!(&packed[..16], b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
        // 70 000 bytes are three 32 KiB blocks; walk their length prefixes to the end.
        let mut at = 16;
        let mut blocks = 0;
        while at < packed.len() {
            let length = i32::from_be_bytes(packed[at..at + 4].try_into().unwrap()) as usize;
            at += 4 + length;
            blocks += 1;
        }
        assert_eq!((at, blocks), (packed.len(), 3));
    }

    #[test]
    fn garbage_is_an_error_for_each_codec() {
        let garbage =
            Bytes::from_static(b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\x7f\xff\xff\xffnot compressed");
        for codec in CODECS {
            assert!(decompress(codec, &garbage, 1 << 20).is_err(), "{codec:?}");
        }
    }
}
