//! `runnel-protocol`: the sans-io Kafka wire codec. Bytes in, values out; no tokio, no files.
//!
//! Layout:
//! - [`frame`]: the 4-byte size prefix (checked against a limit before any allocation),
//!   request header decoding by API key and version, response encoding.
//! - [`versions`]: the one supported-versions table read by ApiVersions and the dispatcher.
//! - [`crc`]: CRC-32C, the batches' checksum (SIMD, chosen at run time).
//! - [`batch`]: a zero-copy view of a magic-2 record batch, CRC-32C check, offset patching.
//! - [`records`]: a bounded, decompressing iterator over the records inside a batch.
//! - [`builder`]: builds complete batches (any codec, CRC-32C) for clients, tests, compaction.
//! - [`chunked`]: encodes a frame as chunks that reference its record batches (no copy).
//! - [`memory`]: the allocator setting the programs that move large frames start with.
//!
//! Message structs come from the `kafka-protocol` crate, re-exported as [`kafka`].

pub mod batch;
pub mod builder;
pub mod chunked;
pub mod crc;
pub mod frame;
pub mod loopback;
pub mod memory;
pub mod records;
pub mod versions;

pub use kafka_protocol as kafka;
