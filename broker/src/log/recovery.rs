//! Loading a partition directory: stray-file resolution, segment listing, index loading, and
//! — after an unclean stop — the recovery scan that truncates the log at the first bad byte.
//!
//! Kept out of the append path on purpose (Kafka's LogLoader): it runs once per partition,
//! before the partition serves anything, so it needs no locking of its own.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use runnel_protocol::batch::BATCH_HEADER_BYTES;

use super::offset_index::OffsetIndex;
use super::segment::{parse_stem, read_header, BatchHeader, Segment, SegmentState};
use super::time_index::TimeIndex;
use super::{LogError, TopicConfig};

/// Read-ahead of the recovery scan; batches larger than this are streamed through it.
const SCAN_BUFFER_BYTES: usize = 1 << 20;
/// Chunk used to stream a batch body through the CRC.
const CRC_CHUNK_BYTES: usize = 64 << 10;

/// What a scan of one `.log` found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of whole, valid batches from the start of the file.
    pub valid_bytes: u64,
    /// Offset after the last valid batch (`None`: no valid batch).
    pub next_offset: Option<i64>,
    /// Why the scan stopped before the end of the file.
    pub damage: Option<String>,
}

/// A partition's segments as loaded from disk.
pub(crate) struct Loaded {
    pub segments: BTreeMap<i64, Arc<Segment>>,
    pub next_offset: i64,
    pub log_start_offset: i64,
}

fn corruption(path: &Path, detail: impl Into<String>) -> LogError {
    LogError::Corruption {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Finishes or undoes an interrupted compaction swap, and finishes interrupted deletions.
///
/// The cleaner's swap (see `swap.rs`) goes: write `X.log.cleaned` (fsynced) → rename every
/// old segment file to `*.deleted` → rename `X.log.cleaned` to `X.log.swap` → rename that to
/// `X.log` → remove the `*.deleted` files, fsyncing the directory after each step. So:
/// - a `.swap` file means every old file is already `.deleted`: roll forward (drop the
///   `.deleted` files, rename the `.swap` into place);
/// - else a `.cleaned` file means the swap stopped before its commit point: roll back
///   (rename `.deleted` files back, drop the `.cleaned`);
/// - else `.deleted` files are the tail of a finished swap or of a retention delete: remove.
///
/// Either way the directory holds the old segments or the new ones, never a mix.
pub(crate) fn resolve_stray_files(dir: &Path) -> io::Result<()> {
    let mut deleted = Vec::new();
    let mut cleaned = Vec::new();
    let mut swapped = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".deleted") {
            deleted.push(path);
        } else if name.ends_with(".cleaned") {
            cleaned.push(path);
        } else if name.ends_with(".swap") {
            swapped.push(path);
        }
    }
    if deleted.is_empty() && cleaned.is_empty() && swapped.is_empty() {
        return Ok(());
    }
    let roll_back = swapped.is_empty() && !cleaned.is_empty();
    for path in &deleted {
        match (roll_back, strip_suffix(path, ".deleted")) {
            (true, Some(original)) => fs::rename(path, original)?,
            _ => remove_if_exists(path)?,
        }
    }
    for path in &cleaned {
        remove_if_exists(path)?;
    }
    for path in &swapped {
        if let Some(target) = strip_suffix(path, ".swap") {
            fs::rename(path, target)?;
        }
    }
    super::checkpoint::sync_dir(dir)
}

/// `path` without `suffix` at the end of its file name.
fn strip_suffix(path: &Path, suffix: &str) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(name.strip_suffix(suffix)?))
}

/// Base offsets of the `.log` files in `dir`, ascending, with their sizes.
fn list_segments(dir: &Path) -> io::Result<Vec<(i64, u64)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| parse_stem(n, "log")) else {
            continue;
        };
        found.push((base, entry.metadata()?.len()));
    }
    found.sort_unstable();
    Ok(found)
}

/// Scans a `.log` batch by batch from position 0: framing, magic, offsets (monotonic, each
/// base ≥ the previous next offset, starting at ≥ `min_base_offset`) and, when `verify_crc`,
/// the CRC-32C. Indexes in `state` (fresh, empty) are rebuilt along the way, complete: they
/// grow past their capacity when the log needs it.
pub(crate) fn scan_log(
    file: &File,
    len_bytes: u64,
    segment: &Segment,
    state: &mut SegmentState,
    index_interval_bytes: u32,
    verify_crc: bool,
) -> io::Result<ScanOutcome> {
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut outcome = ScanOutcome {
        valid_bytes: 0,
        next_offset: None,
        damage: None,
    };
    let mut expected_base = segment.base_offset;
    let mut header_bytes = [0u8; BATCH_HEADER_BYTES];
    // Each iteration consumes ≥ 61 bytes of a file of len_bytes: the loop is bounded.
    while outcome.valid_bytes < len_bytes {
        let position = outcome.valid_bytes;
        if len_bytes - position < BATCH_HEADER_BYTES as u64 {
            outcome.damage = Some(format!("torn header at {position}"));
            break;
        }
        reader.read_exact(&mut header_bytes)?;
        let header = match BatchHeader::parse(&header_bytes) {
            Ok(header) => header,
            Err(e) => {
                outcome.damage = Some(format!("at {position}: {e}"));
                break;
            }
        };
        if let Some(why) = check_header(
            &header,
            position,
            len_bytes,
            expected_base,
            segment.base_offset,
        ) {
            outcome.damage = Some(why);
            break;
        }
        let body_bytes = header.size_bytes - BATCH_HEADER_BYTES as u64;
        if verify_crc {
            let crc = stream_crc(&mut reader, &header_bytes, body_bytes)?;
            if crc != header.stored_crc {
                outcome.damage = Some(format!("CRC mismatch at {position}"));
                break;
            }
        } else {
            reader.seek_relative(body_bytes as i64)?;
        }
        let relative = segment.relative(header.base_offset);
        assert!(
            state.index_room_entries() > 0,
            "a rebuild grows its indexes before they fill"
        );
        let fits = state.track_batch(
            relative,
            position as u32,
            header.size_bytes,
            header.max_timestamp,
            index_interval_bytes,
        );
        if !fits {
            // The log decides how many entries its indexes hold, not today's
            // `segment.index.bytes` (which may have been lowered since it was written):
            // a dropped time-index entry would make the segment look older than it is to
            // retention and ListOffsets once the index is reloaded.
            state.grow_indexes()?;
        }
        outcome.valid_bytes += header.size_bytes;
        outcome.next_offset = Some(header.last_offset + 1);
        expected_base = header.last_offset + 1;
    }
    state.size_bytes = outcome.valid_bytes;
    Ok(outcome)
}

/// Why a parsed header cannot be a batch of this segment, if it cannot.
fn check_header(
    header: &BatchHeader,
    position: u64,
    len_bytes: u64,
    expected_base: i64,
    segment_base: i64,
) -> Option<String> {
    if !header.is_plausible() {
        return Some(format!("bad magic or offset delta at {position}"));
    }
    if header.size_bytes > len_bytes - position {
        return Some(format!("torn batch at {position}"));
    }
    if position + header.size_bytes > u64::from(u32::MAX) {
        return Some(format!("batch at {position} ends beyond u32 positions"));
    }
    if header.base_offset < expected_base {
        return Some(format!(
            "offset {} goes backwards at {position}",
            header.base_offset
        ));
    }
    if header.last_offset - segment_base > i64::from(u32::MAX) {
        return Some(format!(
            "offset {} too far from the segment base",
            header.last_offset
        ));
    }
    None
}

/// CRC-32C of bytes 21..end of a batch whose header was already read.
fn stream_crc(reader: &mut impl Read, header: &[u8], body_bytes: u64) -> io::Result<u32> {
    let mut crc = runnel_protocol::crc::Crc32c::new();
    crc.update(&header[21..]);
    let mut chunk = vec![0u8; CRC_CHUNK_BYTES];
    let mut left_bytes = body_bytes;
    while left_bytes > 0 {
        let take = left_bytes.min(CRC_CHUNK_BYTES as u64) as usize;
        reader.read_exact(&mut chunk[..take])?;
        crc.update(&chunk[..take]);
        left_bytes -= take as u64;
    }
    Ok(crc.value())
}

/// Rebuilds a segment's indexes from its log; truncates the log at the first damage when
/// `verify_crc` (recovery). `capacity_bytes` preallocates for an active segment.
pub(crate) fn rebuild_segment(
    segment: &Segment,
    state: &mut SegmentState,
    config: &TopicConfig,
    capacity_bytes: Option<u64>,
    verify_crc: bool,
) -> Result<ScanOutcome, LogError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment.log_path)?;
    let len_bytes = file.metadata()?.len();
    let capacity = u64::from(config.segment_index_bytes);
    state.indexes = Some((
        OffsetIndex::create(&segment.index_path(), capacity)?,
        TimeIndex::create(&segment.time_index_path(), capacity)?,
    ));
    state.max_timestamp = -1;
    state.bytes_since_index_entry = 0;
    let outcome = scan_log(
        &file,
        len_bytes,
        segment,
        state,
        config.index_interval_bytes,
        verify_crc,
    )?;
    if outcome.valid_bytes < len_bytes {
        if !verify_crc {
            return Err(corruption(
                &segment.log_path,
                outcome.damage.unwrap_or_default(),
            ));
        }
        tracing::warn!(path = %segment.log_path.display(), damage = ?outcome.damage, "truncating log");
        file.set_len(outcome.valid_bytes)?;
    }
    if verify_crc {
        // After a process crash the scanned bytes may sit only in the page cache; they count
        // as durable from here on, so make them so.
        file.sync_all()?;
    }
    if capacity_bytes.is_none() {
        state.seal()?;
    }
    Ok(outcome)
}

/// Loads indexes of a segment, rebuilding them from the log when missing or not sane.
/// `end_offset` is where the segment's offsets stop (the next segment's base or log end).
pub(crate) fn ensure_indexes(
    segment: &Segment,
    state: &mut SegmentState,
    config: &TopicConfig,
    capacity_bytes: Option<u64>,
    end_offset: i64,
) -> Result<(), LogError> {
    if state.indexes.is_some() {
        return Ok(());
    }
    let relative_end = u64::try_from(end_offset - segment.base_offset).unwrap_or(0);
    // A missing file must not be mistaken for an empty index.
    let present = segment.index_path().exists() && segment.time_index_path().exists();
    let opened = OffsetIndex::open(&segment.index_path(), capacity_bytes).and_then(|o| {
        Ok((
            o,
            TimeIndex::open(&segment.time_index_path(), capacity_bytes)?,
        ))
    });
    if let (true, Ok((offset_index, time_index))) = (present, opened) {
        // A non-empty log with an empty time index is suspect (only timestamp-less batches
        // produce one legitimately); rebuilding it is cheap and always right.
        let time_index_plausible = time_index.len() > 0 || state.size_bytes == 0;
        if offset_index.is_sane(state.size_bytes)
            && time_index.is_sane(relative_end)
            && time_index_plausible
            && time_index_reaches_tail(segment, state.size_bytes, &offset_index, &time_index)
        {
            state.max_timestamp = time_index.max_timestamp().unwrap_or(-1);
            let last_position = offset_index
                .len()
                .checked_sub(1)
                .map_or(0, |i| offset_index.entry(i).1);
            state.bytes_since_index_entry =
                state.size_bytes.saturating_sub(u64::from(last_position));
            state.indexes = Some((offset_index, time_index));
            return Ok(());
        }
    }
    if present {
        tracing::info!(path = %segment.log_path.display(), "rebuilding indexes");
    } else {
        // The usual case: a segment the cleaner swapped in travels without indexes (swap.rs),
        // so every pass over a compacted topic lands here once per cleaned segment.
        tracing::debug!(path = %segment.log_path.display(), "building missing indexes");
    }
    rebuild_segment(segment, state, config, capacity_bytes, false)?;
    Ok(())
}

/// Whether no batch after the time index's last entry has a newer timestamp: a time index
/// cut short (as rebuilds at a lowered `segment.index.bytes` once left them) is sane in
/// every other way, but its last entry would give the segment a max timestamp older than
/// its newest record, and retention would delete records that have not expired. Reads the
/// headers from that entry's batch on, usually the last few. Only a readable newer
/// timestamp says "no": damage is left to the readers that report it today.
fn time_index_reaches_tail(
    segment: &Segment,
    size_bytes: u64,
    offset_index: &OffsetIndex,
    time_index: &TimeIndex,
) -> bool {
    let Some((indexed_max_ms, relative)) =
        time_index.len().checked_sub(1).map(|i| time_index.entry(i))
    else {
        return true;
    };
    let Ok(file) = File::open(&segment.log_path) else {
        return true;
    };
    let mut position = u64::from(offset_index.lookup(relative).1);
    // Each step advances by a whole batch (≥ 61 bytes) within size_bytes.
    loop {
        match read_header(&file, position, size_bytes) {
            Ok(Some(header)) if header.max_timestamp <= indexed_max_ms => {
                position += header.size_bytes;
            }
            Ok(Some(_)) => return false,
            Ok(None) | Err(_) => return true,
        }
    }
}

/// Offset after the last batch of the active segment, scanning headers from its last index
/// entry to the end of the file.
fn find_end_offset(segment: &Segment, state: &SegmentState) -> Result<i64, LogError> {
    if state.size_bytes == 0 {
        return Ok(segment.base_offset);
    }
    let file = File::open(&segment.log_path)?;
    let mut position = state.lookup_position(u32::MAX);
    let mut next_offset = segment.base_offset;
    // Each step advances by a whole batch (≥ 61 bytes) within size_bytes.
    while let Some(header) = read_header(&file, position, state.size_bytes)
        .map_err(|e| corruption(&segment.log_path, e.to_string()))?
    {
        next_offset = header.last_offset + 1;
        position += header.size_bytes;
    }
    if position != state.size_bytes {
        return Err(corruption(
            &segment.log_path,
            format!("torn tail at {position}"),
        ));
    }
    Ok(next_offset)
}

/// Loads (and when `clean` is false, recovers) the partition in `dir`; `recovery_point`
/// as in [`recover_segments`].
pub(crate) fn load_partition(
    dir: &Path,
    config: &TopicConfig,
    log_start_checkpoint: i64,
    recovery_point: Option<i64>,
    clean: bool,
) -> Result<Loaded, LogError> {
    fs::create_dir_all(dir)?;
    resolve_stray_files(dir)?;
    let listed = list_segments(dir)?;
    let capacity = Some(u64::from(config.segment_index_bytes));
    let mut segments = BTreeMap::new();
    if listed.is_empty() {
        let base = log_start_checkpoint.max(0);
        let segment = Segment::create(dir, base, u64::from(config.segment_index_bytes))?;
        segments.insert(base, Arc::new(segment));
        return Ok(Loaded {
            segments,
            next_offset: base,
            log_start_offset: base,
        });
    }
    for &(base, len_bytes) in &listed {
        segments.insert(base, Arc::new(Segment::new(dir, base, len_bytes)));
    }
    if !clean {
        recover_segments(&mut segments, config, recovery_point)?;
    }
    let Some((_, active)) = segments.last_key_value() else {
        unreachable!("recovery keeps at least one segment");
    };
    let active = active.clone();
    let mut state = active.lock();
    if state.indexes.is_none() {
        // Unknown end yet: bound the sanity check by the largest relative offset possible.
        ensure_indexes(
            &active,
            &mut state,
            config,
            capacity,
            active.base_offset + i64::from(u32::MAX),
        )?;
    } else if let Some((offset_index, time_index)) = state.indexes.as_mut() {
        offset_index
            .file()
            .grow(u64::from(config.segment_index_bytes))?;
        time_index
            .file()
            .grow(u64::from(config.segment_index_bytes))?;
    }
    let next_offset = find_end_offset(&active, &state)?;
    if state.size_bytes > 0 {
        state.first_append_ms = Some(first_append_ms(&active, state.size_bytes));
    }
    drop(state);
    let first_base = segments.first_key_value().map_or(0, |(base, _)| *base);
    let log_start_offset = log_start_checkpoint.max(first_base).min(next_offset);
    Ok(Loaded {
        segments,
        next_offset,
        log_start_offset,
    })
}

/// When the active segment's first batch was appended, as far as a reload can tell: the
/// later of the segment file's creation (the first append came after it; a segment is
/// created by the roll of the append that opens it) and that batch's max timestamp (Kafka's
/// `rollingBasedTimestamp`: about the append time with honest clocks, the append time
/// itself with LogAppendTime), never later than now; now when neither is known.
/// `segment.ms` counts from here. It used to count from the load, so a broker restarted
/// more often than `segment.ms` never rolled a quiet partition by time, and retention,
/// which never deletes the active segment, never deleted its records. (The file's creation
/// time keeps records stamped long ago, a replay of old data, from rolling the segment at
/// every start.)
fn first_append_ms(segment: &Segment, size_bytes: u64) -> i64 {
    let now = super::now_ms();
    let Ok(file) = File::open(&segment.log_path) else {
        return now;
    };
    let created_ms = file
        .metadata()
        .and_then(|metadata| metadata.created())
        .ok()
        .and_then(|created| created.duration_since(UNIX_EPOCH).ok())
        .map(|since_epoch| i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX));
    let stamped_ms = match read_header(&file, 0, size_bytes) {
        Ok(Some(header)) if header.max_timestamp >= 0 => Some(header.max_timestamp),
        _ => None,
    };
    created_ms.max(stamped_ms).map_or(now, |ms| ms.min(now))
}

/// The recovery scan: every segment from the one holding `recovery_point` on is verified;
/// the first damaged one is truncated and every later one removed, and so is every segment
/// after an offset gap. With the recovery point unknown (`None`, see
/// `PartitionLog::recovery_point_to_load`) every segment is verified, and segments after a
/// gap are kept (with a warning): the gap may be the cleaner's.
fn recover_segments(
    segments: &mut BTreeMap<i64, Arc<Segment>>,
    config: &TopicConfig,
    recovery_point: Option<i64>,
) -> Result<(), LogError> {
    let start = recovery_point
        .and_then(|point| segments.range(..=point).next_back())
        .map_or(i64::MIN, |(base, _)| *base);
    let bases: Vec<i64> = segments.range(start..).map(|(base, _)| *base).collect();
    let last_base = bases.last().copied();
    let mut previous_end: Option<i64> = None;
    let mut damaged_from: Option<usize> = None;
    for (i, base) in bases.iter().enumerate() {
        let Some(segment) = segments.get(base).cloned() else {
            continue;
        };
        // Overlap is always damage, and so is a gap past a known recovery point: a roll
        // starts the next segment at the log end, so a gap means the tail of the previous
        // segment was lost in a power cut while later, unsynced segment data reached the
        // disk. (The gaps the cleaner leaves all lie below the recovery point: it records
        // them durable before it makes them.) With no recovery point a gap may be the
        // cleaner's, and dropping what follows could delete acknowledged records.
        if let Some(end) = previous_end.filter(|end| end != base) {
            if recovery_point.is_some() || *base < end {
                damaged_from = Some(i);
                break;
            }
            tracing::warn!(
                path = %segment.log_path.display(),
                gap_from = end,
                "offset gap before a segment with no recovery point to tell a lost tail from \
                 the cleaner's gap: keeping the segment"
            );
        }
        let capacity = (Some(*base) == last_base).then_some(u64::from(config.segment_index_bytes));
        let mut state = segment.lock();
        let outcome = rebuild_segment(&segment, &mut state, config, capacity, true)?;
        previous_end = Some(outcome.next_offset.unwrap_or(*base));
        if outcome.damage.is_some() {
            damaged_from = Some(if state.size_bytes == 0 && i > 0 {
                i
            } else {
                i + 1
            });
            break;
        }
    }
    if let Some(first_doomed) = damaged_from {
        for base in &bases[first_doomed..] {
            if let Some(segment) = segments.remove(base) {
                for path in segment.paths() {
                    remove_if_exists(&path)?;
                }
            }
        }
        reopen_last_as_active(segments, config)?;
    }
    Ok(())
}

/// After removing segments, the new last one must have writable, preallocated indexes.
fn reopen_last_as_active(
    segments: &BTreeMap<i64, Arc<Segment>>,
    config: &TopicConfig,
) -> Result<(), LogError> {
    let Some((_, last)) = segments.last_key_value() else {
        return Ok(());
    };
    let mut state = last.lock();
    if let Some((offset_index, time_index)) = state.indexes.as_mut() {
        offset_index
            .file()
            .grow(u64::from(config.segment_index_bytes))?;
        time_index
            .file()
            .grow(u64::from(config.segment_index_bytes))?;
    }
    Ok(())
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
