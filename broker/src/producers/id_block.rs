//! [`ProducerIdBlock`]: hands out producer ids that stay unique across restarts.
//!
//! File `producer-id-block` in the data directory, two text lines:
//! `runnel-producer-id-block 1` (magic and version) and the first id *not* yet reserved.
//! Ids are reserved [`PRODUCER_ID_BLOCK_SIZE`] at a time: the new end is made durable
//! (tmp file, fsync, rename, fsync of the directory) before any id of the block is issued,
//! so a restart — clean or not — starts past every id an earlier run could have issued.
//! Ids of a block left unused at shutdown are skipped; `i64` has room for that.
//!
//! Thread-safety: one mutex orders allocation and the (rare) block reservation, which does
//! blocking file I/O once per block.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Ids reserved per write of the block file.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

const FILE_NAME: &str = "producer-id-block";
const TMP_FILE_NAME: &str = "producer-id-block.tmp";
const MAGIC_LINE: &str = "runnel-producer-id-block 1";
/// The file is two short lines; anything longer is not ours.
const FILE_BYTES_MAX: u64 = 256;

/// Why producer ids cannot be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("producer id block file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("producer id block file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("producer ids exhausted")]
    Exhausted,
}

/// The block being handed out: ids in `next..end` are reserved and not yet issued.
#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// The persisted producer-id allocator of one data directory.
#[derive(Debug)]
pub struct ProducerIdBlock {
    dir: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIdBlock {
    /// Reads the block file (absent on a new data directory) and reserves a fresh block.
    pub fn open(data_dir: &Path) -> Result<ProducerIdBlock, ProducerIdError> {
        let dir = data_dir.to_path_buf();
        let start = read_reserved_end(&dir)?;
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or(ProducerIdError::Exhausted)?;
        write_reserved_end(&dir, end)?;
        Ok(ProducerIdBlock {
            dir,
            block: Mutex::new(Block { next: start, end }),
        })
    }

    /// A producer id never issued before by this data directory.
    pub fn allocate(&self) -> Result<i64, ProducerIdError> {
        let mut block = self.block.lock();
        if block.next >= block.end {
            let end = block
                .end
                .checked_add(PRODUCER_ID_BLOCK_SIZE)
                .ok_or(ProducerIdError::Exhausted)?;
            write_reserved_end(&self.dir, end)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        debug_assert!(id >= 0 && id < block.end);
        Ok(id)
    }

    /// True when `producer_id` may have been issued by this data directory (now or by an
    /// earlier run): every such id lies below the next one to issue.
    pub fn may_have_issued(&self, producer_id: i64) -> bool {
        producer_id >= 0 && producer_id < self.block.lock().next
    }
}

fn read_reserved_end(dir: &Path) -> Result<i64, ProducerIdError> {
    let path = dir.join(FILE_NAME);
    let io_error = |source| ProducerIdError::Io {
        path: path.clone(),
        source,
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(e)),
    };
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, FILE_BYTES_MAX), &mut text)
        .map_err(io_error)?;
    parse(&text).map_err(|detail| ProducerIdError::Corrupt { path, detail })
}

fn parse(text: &str) -> Result<i64, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC_LINE) {
        return Err(format!("first line is not {MAGIC_LINE:?}"));
    }
    let end_line = lines.next().ok_or("no reserved-end line")?;
    let end: i64 = end_line
        .trim()
        .parse()
        .map_err(|e| format!("reserved end {end_line:?}: {e}"))?;
    if end < 0 || lines.next().is_some() {
        return Err(format!("reserved end {end} negative or trailing lines"));
    }
    Ok(end)
}

/// Makes `end` the durable reserved end: tmp file, fsync, rename, directory fsync.
fn write_reserved_end(dir: &Path, end: i64) -> Result<(), ProducerIdError> {
    debug_assert!(end >= 0);
    let path = dir.join(FILE_NAME);
    let write = || -> io::Result<()> {
        let tmp = dir.join(TMP_FILE_NAME);
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{MAGIC_LINE}\n{end}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| ProducerIdError::Io { path, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_blocks_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _reopen in 0..3 {
            let ids = ProducerIdBlock::open(dir.path()).unwrap();
            for _ in 0..(PRODUCER_ID_BLOCK_SIZE + 5) {
                let id = ids.allocate().unwrap();
                assert!(seen.insert(id), "id {id} issued twice");
                assert!(ids.may_have_issued(id));
            }
            assert!(!ids.may_have_issued(i64::MAX));
            assert!(!ids.may_have_issued(-1));
        }
        // Reopening without allocating still skips a whole block.
        let reserved = read_reserved_end(dir.path()).unwrap();
        let ids = ProducerIdBlock::open(dir.path()).unwrap();
        assert_eq!(ids.allocate().unwrap(), reserved);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "",
            "runnel-producer-id-block 1\n",
            "other 1\n5\n",
            "runnel-producer-id-block 1\n-3\n",
        ] {
            fs::write(dir.path().join(FILE_NAME), text).unwrap();
            assert!(
                matches!(
                    ProducerIdBlock::open(dir.path()),
                    Err(ProducerIdError::Corrupt { .. })
                ),
                "{text:?}"
            );
        }
        fs::write(
            dir.path().join(FILE_NAME),
            format!("{MAGIC_LINE}\n{}\n", i64::MAX),
        )
        .unwrap();
        assert!(matches!(
            ProducerIdBlock::open(dir.path()),
            Err(ProducerIdError::Exhausted)
        ));
    }
}
