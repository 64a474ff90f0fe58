//! Shared by the process-level tests: the real `runnel-broker` binary as a child process
//! (start, SIGKILL, SIGTERM) and a tiny raw-TCP Kafka client whose every failure is an
//! `io::Error`, so a task talking to a broker that was just killed ends instead of panicking.
//!
//! These tests live in the broker crate because only the crate that owns a binary gets
//! `CARGO_BIN_EXE_<name>`, which makes cargo build the binary before the test runs.

#![allow(clippy::unwrap_used, dead_code)]

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, MetadataRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single read from the broker may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a broker may take to start listening (recovery included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The broker binary cargo built for this test.
pub fn broker_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runnel-broker"))
}

/// A port nobody listens on right now (the broker binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `runnel-broker` child process.
pub struct BrokerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
}

impl BrokerProcess {
    /// Starts the binary on `data_dir` with `extra` flags; stderr/stdout go to `log_path`
    /// (appended, so one file tells a whole crash loop's story).
    pub fn spawn(data_dir: &Path, log_path: &Path, extra: &[&str]) -> BrokerProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let child = Command::new(broker_exe())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        BrokerProcess {
            child: Some(child),
            addr,
            log_path: log_path.to_owned(),
        }
    }

    /// Waits (bounded by [`START_TIMEOUT`]) until the broker answers ApiVersions.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "broker exited during start: {status}; see {:?}",
                    self.log_path
                );
            }
            if let Ok(mut client) = Client::connect(self.addr).await {
                if client.send(&ApiVersionsRequest::default(), 0).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "broker not ready after {START_TIMEOUT:?}; see {:?}",
            self.log_path
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; true when it exited successfully.
    pub fn sigterm_and_wait(&mut self, bound: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One TCP connection; requests are answered in order.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Sends `request` at `version`; the decoded response or why there is none.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> io::Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = encode_request(request, version, correlation_id);
        self.stream.write_all(&frame).await?;
        let mut frame = tokio::time::timeout(IO_TIMEOUT, self.read_frame())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(io::Error::other)?;
        if header.correlation_id != correlation_id {
            return Err(io::Error::other("correlation id mismatch"));
        }
        R::Response::decode(&mut frame, version).map_err(io::Error::other)
    }

    async fn read_frame(&mut self) -> io::Result<Bytes> {
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| io::Error::other("bad response size"))?;
        let mut frame = vec![0u8; size];
        self.stream.read_exact(&mut frame).await?;
        Ok(Bytes::from(frame))
    }
}

/// Size prefix, request header at the API's header version, body.
pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> Bytes {
    let api_key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("runnel-crash-tests")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let size = i32::try_from(buf.len() - 4).unwrap();
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Metadata for `topics`, auto-creating them.
pub fn metadata(topics: &[&str]) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let topics = topics
        .iter()
        .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
        .collect();
    MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(true)
}

/// One uncompressed magic-2 batch of unkeyed `values`.
pub fn batch(values: &[String]) -> Bytes {
    batch_from(values, None)
}

/// An idempotent producer's identity and a batch's first sequence number.
#[derive(Debug, Clone, Copy)]
pub struct Sequenced {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_sequence: i32,
}

/// One uncompressed v2 batch of `values`: plain, or from an idempotent producer (then
/// stamped now: a producer idle for `producer.id.expiration.ms` by its batches' timestamps
/// is not read back after a restart).
pub fn batch_from(values: &[String], producer: Option<Sequenced>) -> Bytes {
    let (producer_id, producer_epoch, first_sequence, base_timestamp) = match producer {
        Some(p) => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            (p.producer_id, p.producer_epoch, p.first_sequence, now_ms)
        }
        None => (-1, -1, -1, 1_000),
    };
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // A plain batch's base sequence is -1 (the encoder takes the first record's).
            sequence: first_sequence + i as i32,
            timestamp: base_timestamp + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

/// Produce `records` to `topic`-0 (Produce v9).
pub fn produce(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    let data = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![data]);
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic])
}

/// Every `(offset, value)` of `topic`-0, read with Fetch v12 from offset 0 to the high
/// watermark (a bounded number of round trips).
pub async fn read_all(client: &mut Client, topic: &str) -> Vec<(i64, String)> {
    const FETCHES_MAX: usize = 100_000;
    let mut out = Vec::new();
    let mut next = 0i64;
    for _ in 0..FETCHES_MAX {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(next)
            .with_partition_max_bytes(1024 * 1024);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(4 * 1024 * 1024)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![partition])]);
        let response = client.send(&request, 12).await.unwrap();
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch {topic} at {next}");
        let records = partition.records.clone().unwrap_or_default();
        for record in decode_whole_batches(&records) {
            out.push((
                record.offset,
                String::from_utf8_lossy(&record.value.unwrap_or_default()).into_owned(),
            ));
        }
        next = out.last().map_or(0, |(o, _)| o + 1);
        if next >= partition.high_watermark {
            return out;
        }
    }
    panic!("{topic}: still reading after {FETCHES_MAX} fetches");
}

/// Every record of the whole batches in `records` (a cut last batch is ignored).
pub fn decode_whole_batches(records: &Bytes) -> Vec<Record> {
    let mut end = 0usize;
    while let Ok(Some(size)) = runnel_protocol::batch::peek_batch_size(&records[end..]) {
        if end + size > records.len() {
            break;
        }
        end += size;
    }
    let mut whole = records.slice(..end);
    RecordBatchDecoder::decode_all(&mut whole)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// A tiny deterministic generator, so a failing seed replays exactly.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}
