//! Topic deletion: directories renamed under the metadata lock, removed in the background.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::basic::{batch, open, test_dir};

/// The `*-delete` directories in `dir`.
fn doomed_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with("-delete"))
        .collect()
}

/// Waits (up to 10 s) for the background removal to leave no `*-delete` directory.
fn removed_within_10_s(dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if doomed_dirs(dir).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn create_with_data(manager: &crate::log::LogManager, topic: &str, partitions: i32) {
    manager
        .create_topic(topic, partitions, BTreeMap::new(), false)
        .unwrap();
    for p in 0..partitions {
        let log = manager.partition(topic, p).unwrap();
        log.append(&[batch(3, 10, 1)]).unwrap();
    }
}

#[test]
fn a_topic_recreated_at_once_never_meets_the_deleted_ones_files() {
    let dir = test_dir();
    let manager = open(dir.path());
    create_with_data(&manager, "t", 4);
    manager.pause_dir_removal(true);
    manager.delete_topic("t").unwrap();
    // Answered before the files went: renamed, waiting for the background removal.
    let doomed = doomed_dirs(dir.path());
    assert_eq!(doomed.len(), 4, "{doomed:?}");
    assert!(doomed
        .iter()
        .all(|d| d.join("00000000000000000000.log").exists()));
    assert!(!dir.path().join("t-0").exists());

    manager
        .create_topic("t", 4, BTreeMap::new(), false)
        .unwrap();
    for p in 0..4 {
        let log = manager.partition("t", p).unwrap();
        assert_eq!(log.log_end_offset(), 0);
        assert!(log.read(0, 1024).unwrap().records.is_empty());
        assert_eq!(log.append(&[batch(1, 10, 2)]).unwrap().base_offset, 0);
    }
    manager.pause_dir_removal(false);
    assert!(removed_within_10_s(dir.path()));
    for p in 0..4 {
        let log = manager.partition("t", p).unwrap();
        assert_eq!(log.log_end_offset(), 1);
    }
}

#[test]
fn directories_left_by_a_crash_after_the_rename_go_at_the_next_open_unloaded() {
    let dir = test_dir();
    let manager = open(dir.path());
    create_with_data(&manager, "gone", 3);
    create_with_data(&manager, "kept", 1);
    manager.pause_dir_removal(true);
    manager.delete_topic("gone").unwrap();
    assert_eq!(doomed_dirs(dir.path()).len(), 3);
    // A crash: no shutdown, so the next open recovers every partition it knows.
    drop(manager);
    assert_eq!(doomed_dirs(dir.path()).len(), 3);

    let manager = open(dir.path());
    let names: Vec<String> = manager.topics().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(manager.partition("kept", 0).unwrap().log_end_offset(), 3);
    assert!(manager.partition("gone", 0).is_err());
    assert!(removed_within_10_s(dir.path()));
    manager
        .create_topic("gone", 3, BTreeMap::new(), false)
        .unwrap();
    assert_eq!(manager.partition("gone", 2).unwrap().log_end_offset(), 0);
}

#[test]
fn shutdown_does_not_wait_for_the_removal_and_the_next_open_finishes_it() {
    let dir = test_dir();
    let manager = open(dir.path());
    create_with_data(&manager, "big", 20);
    manager.pause_dir_removal(true);
    manager.delete_topic("big").unwrap();
    // Returns although 20 directories wait (paused, the removal would never finish).
    manager.shutdown().unwrap();
    drop(manager);
    assert_eq!(doomed_dirs(dir.path()).len(), 20);

    let manager = open(dir.path());
    assert!(removed_within_10_s(dir.path()));
    assert!(manager.topics().is_empty());
}

#[test]
fn a_segment_file_opened_during_a_delete_is_not_handed_to_a_topic_recreated_under_its_name() {
    let dir = test_dir();
    let manager = open(dir.path());
    create_with_data(&manager, "t", 1);
    let segment = dir.path().join("t-0").join("00000000000000000000.log");
    // A read or flush that took its segment before the delete opens the file meanwhile.
    let opened = segment.clone();
    manager.set_before_delete_renames(Some(Box::new(move |ctx| {
        let _ = ctx.files.get(&opened);
    })));
    manager.delete_topic("t").unwrap();
    manager.set_before_delete_renames(None);

    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    let log = manager.partition("t", 0).unwrap();
    let appended = batch(1, 10, 2);
    log.append(std::slice::from_ref(&appended)).unwrap();
    // The new records are in the new file, and read back from it (not the deleted one's).
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        appended.size_bytes() as u64
    );
    let read = log.read(0, 1 << 20).unwrap();
    let batches = super::basic::batches_of(read.records);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].record_count(), 1);
}

/// A cleaner pass that outlived its topic: the topic deleted and created again under its
/// name, the old pass's `.cleaned` output (written at the old path, now in the new topic's
/// directory) is removed when its swap finds the old log gone.
#[test]
fn a_swap_into_a_deleted_topic_removes_its_cleaned_output() {
    let dir = test_dir();
    let manager = open(dir.path());
    create_with_data(&manager, "t", 1);
    let old_log = manager.partition("t", 0).unwrap();
    let old_segments: Vec<_> = {
        let state = old_log.state.lock();
        state.as_ref().unwrap().segments.values().cloned().collect()
    };
    manager.delete_topic("t").unwrap();
    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    let cleaned = dir
        .path()
        .join("t-0")
        .join("00000000000000000000.log.cleaned");
    std::fs::write(&cleaned, b"output of the old topic's pass").unwrap();
    assert!(old_log.swap_in(&old_segments, &cleaned, 30).is_err());
    assert!(
        !cleaned.exists(),
        "the new topic's directory keeps a stray .cleaned file"
    );
    assert!(manager.partition("t", 0).is_ok());
}
