//! Blocks reserved ahead of an appending segment: how far, and that a sealed segment gives
//! them back while readers and recovery only ever see whole batches up to the file's size.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::basic::{batch, open, overrides, read_all};
use crate::log::segment::{
    Segment, PREALLOCATE_AHEAD_BYTES_MAX as AHEAD_MAX, PREALLOCATE_FROM_SEGMENT_BYTES as FROM,
};

const MIB: u64 = 1 << 20;

/// What `reserve_ahead` asks for with `size` written, `allocated` reserved and `append`
/// bytes coming, in a segment limited to `limit`; checks that it counts the range as
/// reserved, so the same append asks for nothing more.
fn reserve(size: u64, allocated: u64, append: u64, limit: u64) -> Option<(u64, u64)> {
    // `Segment::new` touches no file.
    let segment = Segment::new(Path::new("unused"), 0, size);
    let mut state = segment.lock();
    state.allocated_bytes = allocated;
    let range = state.reserve_ahead(append, limit);
    if let Some((from, len)) = range {
        assert_eq!(state.allocated_bytes, from + len);
    }
    assert_eq!(state.reserve_ahead(append, limit), None, "asked twice");
    range
}

#[test]
fn reservations_start_at_a_mebibyte_grow_with_the_segment_and_stop_at_its_limit() {
    let gib = 1 << 30;
    // Small segments take no more disk than their data.
    assert_eq!(reserve(0, 0, 1000, gib), None);
    assert_eq!(reserve(FROM - 200, 0, 100, gib), None);
    // From a mebibyte on: as much again as the segment will hold...
    let end = FROM + 90;
    assert_eq!(
        reserve(FROM - 10, 0, 100, gib),
        Some((FROM - 10, 2 * end - (FROM - 10)))
    );
    // ...nothing while the append fits what is reserved...
    assert_eq!(reserve(2 * MIB, 3 * MIB, MIB / 2, gib), None);
    assert_eq!(reserve(2 * MIB, 3 * MIB, MIB, gib), None);
    // ...at most AHEAD_MAX past the append, from where the reservation ended...
    assert_eq!(
        reserve(20 * MIB, 20 * MIB + 1, MIB, gib),
        Some((20 * MIB + 1, 21 * MIB + AHEAD_MAX - (20 * MIB + 1)))
    );
    // ...never past segment.bytes...
    assert_eq!(
        reserve(1020 * MIB, 0, MIB, gib),
        Some((1020 * MIB, 4 * MIB))
    );
    // ...unless the append itself goes there (one batch larger than the rest).
    assert_eq!(
        reserve(1023 * MIB, 0, 4 * MIB, gib),
        Some((1023 * MIB, 4 * MIB))
    );
    // No overflow at the very end of the range.
    assert_eq!(
        reserve(u64::MAX - 1, 0, 10, u64::MAX),
        Some((u64::MAX - 1, 1))
    );
}

/// Bytes of disk blocks behind `path`.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Whether `dir` is on tmpfs (whose truncate to the same size keeps reserved pages).
fn on_tmpfs(dir: &Path) -> bool {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs buffer we own, both live for the call.
    assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut stat) }, 0);
    stat.f_type == libc::TMPFS_MAGIC
}

#[test]
fn the_active_segment_reserves_blocks_ahead_and_gives_them_back_when_sealed() {
    // A real disk: this one is about its blocks.
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path());
    let segment_bytes = (6 * MIB).to_string();
    manager
        .create_topic(
            "p",
            1,
            overrides(&[("segment.bytes", &segment_bytes)]),
            false,
        )
        .unwrap();
    let log = manager.partition("p", 0).unwrap();
    let mut appended = 0;
    // 3 MiB in 128 KiB batches: reserved ahead from the first mebibyte on.
    for _ in 0..24 {
        log.append(&[batch(8, 128 * 1024, 1)]).unwrap();
        appended += 1;
    }
    let first = dir.path().join("p-0").join(format!("{:020}.log", 0));
    let size = std::fs::metadata(&first).unwrap().len();
    assert!(size > 3 * MIB && size < 4 * MIB, "{size}");
    let check_blocks = !on_tmpfs(dir.path());
    if check_blocks {
        assert!(
            allocated(&first) >= size + MIB,
            "{} reserved for {size}",
            allocated(&first)
        );
    }
    // Past segment.bytes: the first segment is sealed and holds only its data's blocks.
    for _ in 0..40 {
        log.append(&[batch(8, 128 * 1024, 1)]).unwrap();
        appended += 1;
    }
    assert!(log.segment_count() >= 2);
    let sealed = std::fs::metadata(&first).unwrap().len();
    if check_blocks {
        assert!(
            allocated(&first) <= sealed.next_multiple_of(4096),
            "{} for {sealed}",
            allocated(&first)
        );
    }
    // Readers see every batch and nothing of the reserved space, now and after a restart.
    assert_eq!(read_all(&log).len(), appended);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    let log = manager.partition("p", 0).unwrap();
    assert_eq!(read_all(&log).len(), appended);
}

#[test]
fn a_reservation_the_file_system_refuses_is_an_error_not_a_panic_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only.log");
    std::fs::write(&path, b"12345").unwrap();
    // Open for reading only: fallocate fails (EBADF), as on a file system without it.
    let file = std::fs::File::open(&path).unwrap();
    assert!(crate::log::segment::reserve_blocks(&file, 0, 8 * MIB).is_err());
    assert!(crate::log::segment::reserve_blocks(&file, u64::MAX, 1).is_err());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 5);
}
