//! Bounded, decompressing iterator over the records of one batch.
//!
//! CONTRACT (signatures are fixed; the bodies are being written):
//! `records(batch, max_uncompressed_bytes)` yields each record with its absolute offset and
//! timestamp. Decompression output is capped at `max_uncompressed_bytes` (a bomb is an error).

use bytes::Bytes;

use crate::batch::{BatchError, RecordBatch};

/// One record, with offsets and timestamps made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// A record header: the key is a string on the wire, the value may be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Why the records of a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("decompressed records exceed {max_bytes} bytes")]
    TooLarge { max_bytes: usize },
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Iterator over the records of one batch; see [`records`].
pub struct Records {
    _private: (),
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}

/// Decompresses (bounded by `max_uncompressed_bytes`) and iterates the records of `batch`.
pub fn records(batch: &RecordBatch, max_uncompressed_bytes: usize) -> Result<Records, RecordError> {
    let _ = (batch, max_uncompressed_bytes);
    Ok(Records { _private: () })
}
