//! Bad-input catalogue, request decoding: every request cut short at every byte, array
//! counts of `i32::MAX` with a few bytes left for every API that has a leading array (no
//! allocation sized by them: peak memory stays bounded), string and bytes lengths beyond the
//! frame. Each must close the connection; other connections and stored data are unaffected.

#![allow(clippy::unwrap_used)]

use crate::bad_input_common::{
    closes_then_still_serves, end_offset, frame, proc_status_kib, produce_error, reset_peak_rss,
    still_serves, PEAK_RSS_MEASUREMENT,
};
use bytes::{BufMut, BytesMut};
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::{encode_request, TestBroker};

/// Stores two records in `topic` and returns them, so a test can check they are unharmed.
async fn seed(broker: &TestBroker, topic: &str) -> Vec<String> {
    let mut client = broker.client().await;
    client.send(metadata(Some(&[topic])), 12).await;
    assert_eq!(
        produce_error(&mut client, topic, values(&["kept-1", "kept-2"])).await,
        0
    );
    vec!["kept-1".to_owned(), "kept-2".to_owned()]
}

async fn assert_unharmed(broker: &TestBroker, topic: &str, expected: &[String]) {
    let mut client = broker.client().await;
    assert_eq!(end_offset(&mut client, topic).await, expected.len() as i64);
    let response = client.send(fetch(topic, 0, 0, 0, 0), 12).await;
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(decode_values(&records), expected);
}

/// Re-frames the first `cut` bytes of `whole`'s header+body with a matching size prefix.
fn cut_frame(whole: &[u8], cut: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + cut);
    out.extend_from_slice(&(cut as i32).to_be_bytes());
    out.extend_from_slice(&whole[4..4 + cut]);
    out
}

#[tokio::test]
async fn requests_cut_at_every_byte_close_the_connection() {
    let broker = TestBroker::start().await;
    let kept = seed(&broker, "cut").await;
    // A non-flexible Produce (v3), a flexible one (v9) and a flexible Metadata (v12, header
    // v2 with tagged fields): every proper prefix of header+body is a decode error.
    let requests = [
        encode_request(&produce("cut", 0, values(&["never"]), 1), 3, 7),
        encode_request(&produce("cut", 0, values(&["never"]), 1), 9, 7),
        encode_request(&metadata(Some(&["cut", "other"])), 12, 7),
    ];
    let mut tried = 0;
    for whole in &requests {
        for cut in 0..whole.len() - 4 {
            closes_then_still_serves(&broker, &cut_frame(whole, cut)).await;
            tried += 1;
        }
    }
    eprintln!("{tried} cut requests tried");
    assert!(tried > 200, "{tried} cuts");
    // Nothing half-decoded was applied: no produce, no auto-created topic.
    assert_unharmed(&broker, "cut", &kept).await;
    let mut client = broker.client().await;
    let all = client.send(metadata(None), 12).await;
    assert_eq!(all.topics.len(), 1, "a cut Metadata created a topic");
}

/// The fields before the first (or a nested) array of each API, at one version, then
/// `i32::MAX` as its count and a few bytes.
fn huge_count_bodies() -> Vec<(&'static str, i16, i16, Vec<u8>)> {
    let mut out = Vec::new();
    let huge = i32::MAX.to_be_bytes();
    let tail = [0u8, 1, b'a', 0, 0, 0, 0];
    let mut with = |name, key, version, prefix: &[u8]| {
        let mut body = prefix.to_vec();
        body.extend_from_slice(&huge);
        body.extend_from_slice(&tail);
        out.push((name, key, version, body));
    };
    // Produce v3: transactional id (null), acks, timeout, topic array.
    with(
        "produce topics",
        0,
        3,
        &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30],
    );
    // Produce v3, one topic "t", then its partition array.
    with(
        "produce partitions",
        0,
        3,
        &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 1, b't'],
    );
    // Fetch v4: replica id, max wait, min bytes, max bytes, isolation, topic array.
    let mut fetch = Vec::new();
    fetch.extend_from_slice(&(-1i32).to_be_bytes());
    fetch.extend_from_slice(&[0; 12]);
    fetch.push(0);
    with("fetch topics", 1, 4, &fetch);
    // ListOffsets v1: replica id, topic array.
    with("list offsets topics", 2, 1, &(-1i32).to_be_bytes());
    // OffsetCommit v2: group "g", generation, member "", retention, topic array.
    let mut commit = vec![0, 1, b'g'];
    commit.extend_from_slice(&(-1i32).to_be_bytes());
    commit.extend_from_slice(&[0, 0]);
    commit.extend_from_slice(&(-1i64).to_be_bytes());
    with("offset commit topics", 8, 2, &commit);
    // OffsetFetch v1: group "g", topic array.
    with("offset fetch topics", 9, 1, &[0, 1, b'g']);
    // JoinGroup v0: group, session timeout, member id, protocol type, protocol array.
    with(
        "join group protocols",
        11,
        0,
        &[0, 1, b'g', 0, 0, 0x75, 0x30, 0, 0, 0, 1, b'c'],
    );
    // SyncGroup v0: group, generation, member id, assignment array.
    with(
        "sync group assignments",
        14,
        0,
        &[0, 1, b'g', 0, 0, 0, 1, 0, 1, b'm'],
    );
    // Arrays first: DescribeGroups v0, CreateTopics v2, DeleteTopics v1, DeleteRecords v0,
    // DescribeConfigs v1, AlterConfigs v0, CreatePartitions v0, DeleteGroups v0.
    for (name, key, version) in [
        ("describe groups", 15, 0),
        ("create topics", 19, 2),
        ("delete topics", 20, 1),
        ("delete records", 21, 0),
        ("describe configs", 32, 1),
        ("alter configs", 33, 0),
        ("create partitions", 37, 0),
        ("delete groups", 42, 0),
    ] {
        with(name, key, version, &[]);
    }
    out
}

#[tokio::test]
async fn huge_array_counts_close_without_large_allocations() {
    let broker = TestBroker::start().await;
    let kept = seed(&broker, "counts").await;
    let _measuring = PEAK_RSS_MEASUREMENT.lock().await;
    // Warm up every code path once so the baseline includes their steady-state memory.
    still_serves(&broker).await;
    reset_peak_rss();
    let peak_rss_before = proc_status_kib("VmHWM");
    let peak_virtual_before = proc_status_kib("VmPeak");
    for (name, key, version, body) in huge_count_bodies() {
        let bytes = frame(key, version, &body);
        eprintln!("{name}: {} bytes", bytes.len());
        closes_then_still_serves(&broker, &bytes).await;
    }
    // Flexible versions: a compact array count (unsigned varint) near u32::MAX. Metadata
    // v12: header v2 (client id, tagged fields), then the topic array.
    let mut body = BytesMut::new();
    body.put_u8(0); // header tagged fields
    body.put_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    body.put_slice(&[2, b'a', 0]);
    closes_then_still_serves(&broker, &frame(3, 12, &body)).await;
    let rss_growth_kib = proc_status_kib("VmHWM").saturating_sub(peak_rss_before);
    let virtual_growth_kib = proc_status_kib("VmPeak").saturating_sub(peak_virtual_before);
    eprintln!("peak RSS grew {rss_growth_kib} KiB, peak virtual size {virtual_growth_kib} KiB");
    // One i32::MAX-element Vec of even 1-byte elements would be 2 GiB of address space.
    assert!(
        rss_growth_kib < 64 * 1024,
        "peak RSS grew {rss_growth_kib} KiB"
    );
    assert!(
        virtual_growth_kib < 1024 * 1024,
        "peak virtual size grew {virtual_growth_kib} KiB"
    );
    assert_unharmed(&broker, "counts", &kept).await;
}

#[tokio::test]
async fn requests_that_would_decode_to_many_times_their_size_close_the_connection() {
    let broker = TestBroker::start().await;
    let kept = seed(&broker, "amplified").await;
    let _measuring = PEAK_RSS_MEASUREMENT.lock().await;
    still_serves(&broker).await;
    reset_peak_rss();
    let peak_rss_before = proc_status_kib("VmHWM");
    // Metadata v4: 10 million empty topic names, two bytes each on the wire (a 20 MB frame,
    // within the request size limit) but a 72-byte struct each decoded: 720 MB.
    let topics: i32 = 10_000_000;
    let mut body = BytesMut::new();
    body.put_i32(topics);
    body.put_bytes(0, 2 * topics as usize);
    body.put_u8(1); // allow auto-creation
    closes_then_still_serves(&broker, &frame(3, 4, &body)).await;
    let rss_growth_kib = proc_status_kib("VmHWM").saturating_sub(peak_rss_before);
    eprintln!("peak RSS grew {rss_growth_kib} KiB");
    // The frame itself (20 MB) plus at most the 32 MiB collections budget, with room for
    // the frame's copies on the way in.
    assert!(
        rss_growth_kib < 160 * 1024,
        "peak RSS grew {rss_growth_kib} KiB"
    );
    assert_unharmed(&broker, "amplified", &kept).await;
}

#[tokio::test]
async fn string_and_bytes_lengths_beyond_the_frame_close_the_connection() {
    let broker = TestBroker::start().await;
    let kept = seed(&broker, "lengths").await;
    // Metadata v1: one topic whose name claims 30 000 bytes; 3 follow.
    closes_then_still_serves(
        &broker,
        &frame(3, 1, &[0, 0, 0, 1, 0x75, 0x30, b'a', b'b', b'c']),
    )
    .await;
    // Metadata v1: a topic name of length -2 (only -1, null, is special).
    closes_then_still_serves(&broker, &frame(3, 1, &[0, 0, 0, 1, 0xff, 0xfe])).await;
    // Produce v3 to "lengths"-0 whose records claim i32::MAX bytes; 4 follow.
    let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 1];
    body.extend_from_slice(&[0, 7]);
    body.extend_from_slice(b"lengths");
    body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    body.extend_from_slice(&[1, 2, 3, 4]);
    closes_then_still_serves(&broker, &frame(0, 3, &body)).await;
    // Produce v9 (flexible): records as compact bytes with a varint length near u32::MAX.
    let mut body = vec![0, 0, 1, 0, 0, 0x75, 0x30, 2, 8];
    body.extend_from_slice(b"lengths");
    body.extend_from_slice(&[2, 0, 0, 0, 0]);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
    let mut flexible = vec![0u8]; // header tagged fields
    flexible.extend_from_slice(&body);
    closes_then_still_serves(&broker, &frame(0, 9, &flexible)).await;
    // A varint that never ends (more than 5 continuation bytes).
    closes_then_still_serves(
        &broker,
        &frame(3, 12, &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    )
    .await;
    assert_unharmed(&broker, "lengths", &kept).await;
}
