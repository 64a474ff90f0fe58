//! Fuzz target `segment_recovery` (feature `broker`): any bytes as the only segment of a
//! partition after an unclean stop, through the broker's real recovery (`LogManager::open` on
//! real files). Must never panic or fail to open; what the log then serves must be whole,
//! CRC-valid batches that are exactly a prefix of the segment with increasing offsets, the
//! file must be truncated to that prefix, and an append must land at the recovered end.
//!
//! Input layout: byte 0 bit 0 set asks for every whole batch's CRC to be recomputed before
//! the segment is written, so mutations get past the checksum to the magic, length and
//! offset checks behind it (otherwise almost every mutation stops at the first CRC); the
//! rest is the segment.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use runnel_broker::log::{LogManager, LogManagerConfig};
use runnel_protocol::batch::{
    build_raw_batch, peek_batch_size, BatchSplitter, RawBatchFields, RecordBatch,
};

const TOPIC: &str = "f";
const SEGMENT: &str = "f-0/00000000000000000000.log";
/// Read size when walking the recovered log; the input is at most 64 KiB (run.sh).
const READ_BYTES_MAX: usize = 1 << 20;

/// A data directory holding topic `f` (one partition, empty), stopped cleanly: its
/// directories (parents first) and files, all small, captured once in memory so that no
/// directory outlives the process (libFuzzer exits without running destructors).
#[derive(Default)]
struct Template {
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>)>,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = scratch_dir();
        let manager = LogManager::open(LogManagerConfig::new(dir.path())).expect("open");
        manager
            .create_topic(TOPIC, 1, Default::default(), false)
            .expect("create topic");
        manager.shutdown().expect("shutdown");
        let mut template = Template::default();
        capture(dir.path(), Path::new(""), &mut template);
        template
    })
}

fn capture(root: &Path, relative: &Path, template: &mut Template) {
    for entry in fs::read_dir(root.join(relative)).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = relative.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            template.dirs.push(path.clone());
            capture(root, &path, template);
        } else {
            let bytes = fs::read(entry.path()).expect("read template file");
            template.files.push((path, bytes));
        }
    }
}

fn lay_out(template: &Template, root: &Path) {
    for dir in &template.dirs {
        fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    for (path, bytes) in &template.files {
        fs::write(root.join(path), bytes).expect("write template file");
    }
}

/// In memory where possible: recovery fsyncs, and a disk would make each run slow.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("runnel-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

/// Byte range of the CRC-32C inside a batch.
const CRC_BYTES: std::ops::Range<usize> = 17..21;

/// Recomputes the CRC of each whole batch from the start of `segment`, up to the first
/// thing that is not one.
fn fix_crcs(segment: &mut [u8]) {
    let mut position = 0;
    // Each step advances by a whole batch (≥ 61 bytes) inside the segment: bounded.
    while let Some(end) = batch_end(segment, position) {
        let Ok(batch) = RecordBatch::parse(Bytes::copy_from_slice(&segment[position..end])) else {
            break;
        };
        let crc = batch.compute_crc().to_be_bytes();
        segment[position + CRC_BYTES.start..position + CRC_BYTES.end].copy_from_slice(&crc);
        position = end;
    }
}

/// Where the batch starting at `position` ends, if all of it is in `segment`.
fn batch_end(segment: &[u8], position: usize) -> Option<usize> {
    let size = peek_batch_size(segment.get(position..)?).ok()??;
    let end = position.checked_add(size)?;
    (end <= segment.len()).then_some(end)
}

pub fn run(input: &[u8]) {
    let Some((&mode, segment)) = input.split_first() else {
        return;
    };
    let mut data = segment.to_vec();
    if mode & 1 != 0 {
        fix_crcs(&mut data);
    }
    let dir = scratch_dir();
    lay_out(template(), dir.path());
    fs::write(dir.path().join(SEGMENT), &data).expect("write segment");
    // An unclean stop with nothing checkpointed: recovery must scan the whole segment.
    let _ = fs::remove_file(dir.path().join(".runnel_clean_shutdown"));
    let _ = fs::remove_file(dir.path().join("recovery-point-offset-checkpoint"));

    let manager = LogManager::open(LogManagerConfig::new(dir.path())).expect("recovery failed");
    let log = manager.partition(TOPIC, 0).expect("partition");
    let mut served = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, READ_BYTES_MAX).expect("read").records;
        let before = offset;
        for batch in BatchSplitter::new(records) {
            let batch = batch.expect("recovery kept a malformed batch");
            batch
                .verify_crc()
                .expect("recovery kept a batch with a bad CRC");
            assert!(batch.next_offset() > offset, "offsets go backwards");
            offset = batch.next_offset();
            served.extend_from_slice(batch.as_bytes());
        }
        assert!(offset > before, "nothing served at {before}");
    }
    assert_eq!(offset, log.log_end_offset(), "served past the log end");
    assert!(
        data.starts_with(&served),
        "served bytes are not a prefix of the segment"
    );
    let on_disk = fs::metadata(dir.path().join(SEGMENT)).expect("stat").len();
    assert_eq!(
        on_disk,
        served.len() as u64,
        "not truncated to whole batches"
    );

    let next = RecordBatch::parse(build_raw_batch(&RawBatchFields {
        records: b"abcdefg",
        ..RawBatchFields::default()
    }))
    .expect("a valid batch");
    let info = log.append(&[next]).expect("append after recovery");
    assert_eq!(info.base_offset, offset, "append not at the recovered end");
    drop(log);
    manager.shutdown().expect("shutdown");
}
