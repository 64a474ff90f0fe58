#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
use runnel_protocol::frame::encode_response_chunks;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A temp file holding `len` bytes (byte i = i mod 251) and a slice of all of it.
fn file_of(len: usize) -> (tempfile::NamedTempFile, FileSlice) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    file.write_all(&bytes).unwrap();
    let slice = FileSlice {
        file: Arc::new(file.reopen().unwrap()),
        position: 0,
        len_bytes: len,
        record_count: 3,
    };
    (file, slice)
}

fn sub_slice(slice: &FileSlice, position: u64, len_bytes: usize) -> FileSlice {
    FileSlice {
        position,
        len_bytes,
        ..slice.clone()
    }
}

/// A Fetch response with one topic whose partitions carry `records`.
fn fetch_response(records: Vec<Bytes>) -> ResponseKind {
    let mut topic = FetchableTopicResponse::default();
    for (index, records) in records.into_iter().enumerate() {
        let mut partition = PartitionData::default();
        partition.partition_index = index as i32;
        partition.records = Some(records);
        topic.partitions.push(partition);
    }
    let mut response = FetchResponse::default();
    response.responses.push(topic);
    ResponseKind::Fetch(response)
}

#[test]
fn every_fetch_version_keeps_each_placeholder_as_one_whole_piece() {
    let (_file, slice) = file_of(64 * 1024);
    for version in 4..=12 {
        let mut sends = FileSends::default();
        let first = sends.placeholder(sub_slice(&slice, 0, 20_000)).unwrap();
        let second = sends
            .placeholder(sub_slice(&slice, 20_000, 30_000))
            .unwrap();
        let copied = Bytes::from(vec![7u8; 5000]);
        let body = fetch_response(vec![first, copied, second]);
        let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &body).unwrap();
        let pieces = pieces(chunks, sends).unwrap();
        let files: Vec<(u64, usize)> = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::File(slice) => Some((slice.position, slice.len_bytes)),
                Piece::Bytes(_) => None,
            })
            .collect();
        assert_eq!(files, vec![(0, 20_000), (20_000, 30_000)], "v{version}");
        let total: usize = pieces
            .iter()
            .map(|piece| match piece {
                Piece::File(slice) => slice.len_bytes,
                Piece::Bytes(bytes) => bytes.len(),
            })
            .sum();
        let Some(Piece::Bytes(head)) = pieces.first() else {
            panic!("v{version}: a frame starts with its size");
        };
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        assert_eq!(
            size + 4,
            total,
            "v{version}: the size prefix covers the file pieces"
        );
    }
}

#[test]
fn a_placeholder_copied_split_or_out_of_order_is_refused_so_its_zeros_are_never_sent() {
    let (_file, slice) = file_of(16 * 1024);
    // Copied into the encoder's own bytes: no chunk is the placeholder.
    let mut sends = FileSends::default();
    let placeholder = sends.placeholder(slice.clone()).unwrap();
    let copied = Bytes::copy_from_slice(&placeholder);
    assert!(pieces(vec![copied], sends).is_err());
    // Split in two chunks.
    let mut sends = FileSends::default();
    let placeholder = sends.placeholder(slice.clone()).unwrap();
    let halves = vec![placeholder.slice(..100), placeholder.slice(100..)];
    assert!(pieces(halves, sends).is_err());
    // Out of the order they were made in.
    let mut sends = FileSends::default();
    let first = sends.placeholder(sub_slice(&slice, 0, 8 * 1024)).unwrap();
    let second = sends
        .placeholder(sub_slice(&slice, 8 * 1024, 8 * 1024))
        .unwrap();
    assert!(pieces(vec![second, first], sends).is_err());
}

#[test]
fn small_slices_and_slices_beyond_the_region_get_no_placeholder() {
    let (_file, slice) = file_of(SHARE_BYTES_MIN);
    let mut sends = FileSends::default();
    assert!(sends
        .placeholder(sub_slice(&slice, 0, SHARE_BYTES_MIN - 1))
        .is_err());
    let huge = FileSlice {
        len_bytes: PLACEHOLDER_REGION_BYTES,
        ..slice.clone()
    };
    assert!(
        sends.placeholder(huge.clone()).is_ok(),
        "the whole region once"
    );
    assert!(sends.placeholder(slice).is_err(), "then nothing more");
    assert!(sends.placeholder(huge).is_err());
}

/// A connected loopback pair: (the side that sends, the side that reads).
async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

#[tokio::test]
async fn a_slice_arrives_byte_for_byte_even_when_larger_than_the_socket_buffer() {
    let (_file, slice) = file_of(8 << 20);
    let part = sub_slice(&slice, 12_345, (8 << 20) - 20_000);
    let expected = part.read_bytes().unwrap();
    let (sender, mut receiver) = socket_pair().await;
    let reading = tokio::spawn(async move {
        let mut received = vec![0u8; (8 << 20) - 20_000];
        receiver.read_exact(&mut received).await.unwrap();
        received
    });
    send_file(&sender, &part, || {}).await.unwrap();
    assert_eq!(reading.await.unwrap(), expected.to_vec());
}

#[tokio::test]
async fn a_file_shorter_than_its_slice_is_an_error_not_a_hang() {
    let (file, slice) = file_of(64 * 1024);
    file.as_file().set_len(1000).unwrap();
    let (sender, _receiver) = socket_pair().await;
    let error = send_file(&sender, &slice, || {}).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_send_is_an_error_not_a_hang() {
    let (_file, slice) = file_of(32 << 20);
    let (sender, receiver) = socket_pair().await;
    drop(receiver);
    let sent =
        tokio::time::timeout(Duration::from_secs(30), send_file(&sender, &slice, || {})).await;
    assert!(sent.expect("no hang").is_err());
}
