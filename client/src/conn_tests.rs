//! Tests of the connection: chunked writes (whole and in order; to a closed peer) and the
//! bound on what a response may decode to.

#![allow(clippy::unwrap_used)]

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncReadExt;

use super::*;

/// A peer that takes 7 bytes at a time forces partial vectored writes at every chunk
/// boundary and inside chunks; the bytes must arrive whole and in order.
#[tokio::test]
async fn chunks_arrive_whole_and_in_order_through_partial_writes() {
    let chunks: Vec<Bytes> = vec![
        Bytes::from_static(b"head"),
        Bytes::new(),
        Bytes::from(vec![1u8; 100]),
        Bytes::from_static(b"x"),
        Bytes::from(vec![2u8; 33]),
    ];
    let (mut writer, mut reader) = tokio::io::duplex(7);
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        received
    });
    write_chunks(&mut writer, &chunks).await.unwrap();
    drop(writer);
    assert_eq!(reading.await.unwrap(), chunks.concat());
}

/// A response of 3 million empty topics (24 MB on the wire, within the frame bound)
/// would decode to hundreds of MB of structs: refused as a protocol error instead.
#[test]
fn responses_decode_within_the_collections_budget() {
    use kafka_protocol::messages::MetadataResponse;
    let frame = |topics: i32| {
        let mut frame = BytesMut::new();
        frame.put_i32(7); // correlation id (response header v0)
        frame.put_i32(0); // no brokers
        frame.put_i32(topics);
        for _ in 0..topics {
            frame.put_i16(0); // error code
            frame.put_i16(0); // empty name
            frame.put_i32(0); // no partitions
        }
        frame.freeze()
    };
    let small = decode_response::<MetadataResponse>(frame(1_000), 0);
    assert_eq!(small.map(|m| m.topics.len()).ok(), Some(1_000));
    let huge = decode_response::<MetadataResponse>(frame(3_000_000), 0);
    assert!(matches!(huge, Err(Error::Protocol(_))), "{huge:?}");
}

/// A peer that goes away mid-request is an error, not a hang or a panic.
#[tokio::test]
async fn a_closed_peer_fails_the_write() {
    let (mut writer, reader) = tokio::io::duplex(7);
    drop(reader);
    let chunks = vec![Bytes::from(vec![0u8; 100])];
    assert!(write_chunks(&mut writer, &chunks).await.is_err());
}
