//! The producer: [`Producer::send`] appends a record to its partition's open batch
//! (`accumulator`) and returns a [`DeliveryFuture`]; a background task (`sender`) sends
//! batches that are full, have lingered `linger_ms`, or are being flushed, one Produce
//! request per leader broker, and completes each record with its partition and offset.
//!
//! Bounds: `buffer_memory_bytes` of records not yet acknowledged (`send` waits up to
//! `max_block_ms` for room: back-pressure, and for a topic's metadata),
//! `in_flight_per_partition_max` batches in flight per partition (by default 5 when
//! idempotent, else 1: order kept across retries either way) and `in_flight_per_broker_max`
//! requests per broker.

mod accumulator;
mod delivery;
mod idempotence;
mod sender;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use runnel_protocol::batch::Compression;

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{Error, Result};
use accumulator::Accumulator;
pub use delivery::{DeliveryFuture, RecordMetadata};
use idempotence::Idempotence;
pub use idempotence::IN_FLIGHT_PER_PARTITION_IDEMPOTENT_MAX;

/// How many acknowledgements the leader waits for before answering.
///
/// ```
/// assert_eq!(runnel_client::Acks::All.wire(), -1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No response at all: fastest, delivery unknown (offsets reported as -1).
    None,
    /// The leader appended the batch.
    Leader,
    /// Every in-sync replica has it (on Runnel: fsynced).
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings. Defaults follow Kafka's Java client (acks=all, idempotent with acks=all,
/// linger 5 ms, 32 MiB buffer, 1 MiB requests, 5 in flight per broker, and per partition 5
/// when idempotent) except `batch_size_bytes` (64 KiB rather than 16 KiB) and, without
/// idempotence, `in_flight_per_partition_max` (1, where Java's 5 can reorder on retry).
///
/// ```
/// use runnel_client::{Acks, Compression, ProducerConfig};
/// let mut config = ProducerConfig::new("127.0.0.1:9092");
/// config.acks = Acks::All;
/// config.compression = Compression::Zstd;
/// config.linger_ms = 10;
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    pub acks: Acks,
    pub compression: Compression,
    /// How long a batch that is not full waits for more records.
    pub linger_ms: u64,
    /// A batch is sent once its (uncompressed) records reach this size, or the next record
    /// would take it past this size (that record starts a new batch, as in Java).
    pub batch_size_bytes: usize,
    /// Largest batch (a record larger than `batch_size_bytes` gets a batch of its own) and
    /// largest Produce request: the batches ready for one broker go in as many requests of
    /// at most this size as they need.
    pub max_request_bytes: usize,
    /// Bytes of records accepted but not yet acknowledged.
    pub buffer_memory_bytes: usize,
    /// How long `send` may block (Java's `max.block.ms`): waiting for buffer room (then
    /// `BufferFull`) and for the topic's metadata — a topic not created yet, or without a
    /// leader yet — in all (then `TopicMetadataTimeout`).
    pub max_block_ms: u64,
    pub in_flight_per_broker_max: usize,
    /// Batches of one partition sent and not yet answered. `None` (the default): 5 when the
    /// producer is idempotent (the broker's sequence checks keep them in order across
    /// retries), else 1 (order kept by waiting for each answer, one batch per round trip
    /// per partition). More than 1 is much faster with one partition or small batches;
    /// without idempotence, as with Java's `max.in.flight.requests.per.connection` above 1
    /// without idempotence (and librdkafka's default), a batch retried after a retriable
    /// error can then land after batches sent later. At most 5 when idempotent.
    pub in_flight_per_partition_max: Option<usize>,
    /// Java's `enable.idempotence`: the producer takes a producer id (InitProducerId) and
    /// numbers each partition's batches, so a batch retried after a lost answer is stored
    /// once, and several batches of a partition can be in flight without reordering.
    /// `None` (the default): on with `acks = All`, off otherwise, as Java does when
    /// idempotence is not set; `Some(true)` requires `acks = All`.
    pub idempotence: Option<bool>,
    /// How long a record may take from `send` returning to its outcome (Java's
    /// `delivery.timeout.ms`): lingering, waiting for a leader, in flight and retries all
    /// count. A retriable failure is retried until then; a batch still undelivered at its
    /// deadline fails with [`Error::DeliveryTimeout`] — also when its request is still in
    /// flight (KIP-91; the late answer is ignored for it). Must be at least
    /// `linger_ms + request_timeout_ms` and at most `i32::MAX`, as Java requires.
    pub delivery_timeout_ms: u64,
    /// Attempts after the first for a batch that failed with a retriable error: an extra
    /// cap beside `delivery_timeout_ms`, which is the bound that matters. The default,
    /// `i32::MAX` as in Java, leaves retries bounded by time alone.
    pub retries_max: u32,
    /// Pause before the first retry of a batch (doubling for each further retry of it, up
    /// to `retry_backoff_max_ms`), and the first pause between Metadata requests while
    /// `send` waits for a topic (those double likewise).
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// The broker-side bound on waiting for acks (the Produce `timeout_ms`).
    pub ack_timeout_ms: i32,
}

impl ProducerConfig {
    pub fn new(bootstrap: &str) -> ProducerConfig {
        ProducerConfig {
            client: ClientConfig::new(bootstrap),
            acks: Acks::All,
            compression: Compression::None,
            linger_ms: 5,
            batch_size_bytes: 64 * 1024,
            max_request_bytes: 1024 * 1024,
            buffer_memory_bytes: 32 * 1024 * 1024,
            max_block_ms: 60_000,
            in_flight_per_broker_max: 5,
            in_flight_per_partition_max: None,
            idempotence: None,
            delivery_timeout_ms: 120_000,
            retries_max: i32::MAX as u32,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            ack_timeout_ms: 30_000,
        }
    }

    /// Whether the producer is idempotent (see [`idempotence`](Self::idempotence)).
    pub fn idempotent(&self) -> bool {
        self.idempotence.unwrap_or(self.acks == Acks::All)
    }

    /// Batches of one partition in flight at most (see
    /// [`in_flight_per_partition_max`](Self::in_flight_per_partition_max)).
    pub fn in_flight_per_partition(&self) -> usize {
        let default = if self.idempotent() {
            IN_FLIGHT_PER_PARTITION_IDEMPOTENT_MAX
        } else {
            1
        };
        self.in_flight_per_partition_max.unwrap_or(default)
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size_bytes == 0 || self.max_request_bytes < self.batch_size_bytes {
            return Err(Error::Config(
                "batch_size_bytes must be > 0 and <= max_request_bytes".to_owned(),
            ));
        }
        if self.buffer_memory_bytes < self.max_request_bytes {
            return Err(Error::Config(
                "buffer_memory_bytes must be >= max_request_bytes".to_owned(),
            ));
        }
        if self.in_flight_per_partition() == 0 {
            return Err(Error::Config(
                "in_flight_per_partition_max must be > 0".to_owned(),
            ));
        }
        if self.idempotence == Some(true) && self.acks != Acks::All {
            // Java's rule: with acks=1 a leader change can lose what it acknowledged.
            return Err(Error::Config("idempotence requires acks = All".to_owned()));
        }
        if self.idempotent()
            && self.in_flight_per_partition() > IN_FLIGHT_PER_PARTITION_IDEMPOTENT_MAX
        {
            // The broker recognises a retry among the last 5 batches of a producer only.
            return Err(Error::Config(format!(
                "in_flight_per_partition_max must be <= {IN_FLIGHT_PER_PARTITION_IDEMPOTENT_MAX} \
                 with idempotence"
            )));
        }
        if self.in_flight_per_broker_max == 0 {
            return Err(Error::Config(
                "in_flight_per_broker_max must be > 0".to_owned(),
            ));
        }
        let floor_ms = self
            .linger_ms
            .saturating_add(self.client.connection.request_timeout_ms);
        if self.delivery_timeout_ms > i32::MAX as u64 {
            // Java's bound (an int); keeps every batch deadline a representable instant.
            return Err(Error::Config(
                "delivery_timeout_ms must be <= i32::MAX".to_owned(),
            ));
        }
        if self.delivery_timeout_ms < floor_ms {
            // A batch must be able to linger and wait out one request before it expires.
            return Err(Error::Config(format!(
                "delivery_timeout_ms ({}) must be >= linger_ms + request_timeout_ms ({floor_ms})",
                self.delivery_timeout_ms
            )));
        }
        Ok(())
    }
}

/// One record to send. `partition: None` lets the partitioner choose (by key, or sticky).
///
/// ```
/// use runnel_client::ProducerRecord;
/// let record = ProducerRecord::new("orders", "hello")
///     .with_key("customer-7")
///     .with_header("source", "web")
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(record.partition, None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Shared, so a producer sending many records to one topic clones a pointer, not the
    /// name (`ProducerRecord::new` takes a `&str`, a `String` or an `Arc<str>`).
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None`: now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    pub fn with_partition(mut self, partition: i32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    pub fn with_header(
        mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> ProducerRecord {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    pub fn with_timestamp(mut self, timestamp_ms: i64) -> ProducerRecord {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Bytes this record holds in the buffer (payload plus a fixed per-record overhead).
    fn size_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 8)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 32
    }
}

/// An async Kafka producer; clone it to share (all clones feed the same batches). Call
/// [`flush`](Producer::flush) before dropping the last clone: dropping stops the sender task,
/// and records still queued then complete with [`Error::Closed`].
///
/// ```no_run
/// use runnel_client::{Producer, ProducerConfig, ProducerRecord};
/// # async fn example() -> runnel_client::Result<()> {
/// let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092")).await?;
/// let metadata = producer
///     .send(ProducerRecord::new("events", "hello").with_key("k"))
///     .await?
///     .await?;
/// producer.flush().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    accumulator: Arc<Accumulator>,
    _sender: Arc<sender::SenderHandle>,
}

impl Producer {
    /// Connects to the bootstrap brokers, takes a producer id when idempotent and starts the
    /// sender task. Idempotence by default (not asked for) is dropped, with a warning, when
    /// the broker has no InitProducerId or answers it with an error.
    pub async fn new(mut config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let cluster = Cluster::connect(config.client.clone()).await?;
        let idempotence = match config.idempotent() {
            true => match Idempotence::init(
                &cluster,
                config.max_block_ms,
                config.retry_backoff_ms,
                config.retry_backoff_max_ms,
            )
            .await
            {
                Ok(idempotence) => Some(idempotence),
                // Idempotence by default only: a broker without InitProducerId, or one that
                // refuses it (Java 3.2+ likewise falls back when idempotence was not set).
                Err(e @ (Error::UnsupportedVersion { .. } | Error::Broker { .. }))
                    if config.idempotence.is_none() =>
                {
                    tracing::warn!(error = %e, "no producer id from the broker: not idempotent");
                    config.idempotence = Some(false);
                    None
                }
                Err(e) => return Err(e),
            },
            false => None,
        };
        let accumulator = Arc::new(Accumulator::new(cluster, config, idempotence));
        let handle = sender::spawn(accumulator.clone());
        Ok(Producer {
            accumulator,
            _sender: Arc::new(handle),
        })
    }

    /// Queues `record`; waits (at most `max_block_ms` in all) while the buffer is full and
    /// while the topic has no metadata yet. The returned future resolves on acknowledgement.
    pub async fn send(&self, mut record: ProducerRecord) -> Result<DeliveryFuture> {
        if record.timestamp_ms.is_none() {
            record.timestamp_ms = Some(now_ms());
        }
        self.accumulator.append(record).await
    }

    /// Sends everything queued now and waits until it is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        self.accumulator.flush().await
    }

    /// Whether this producer numbers its batches: asked for or by default with acks=all,
    /// unless the broker had no producer id to give (then it fell back, with a warning).
    pub fn idempotent(&self) -> bool {
        self.accumulator.idempotence().is_some()
    }

    /// The cluster view this producer uses (metadata, connections).
    pub fn cluster(&self) -> &Arc<Cluster> {
        self.accumulator.cluster()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}
