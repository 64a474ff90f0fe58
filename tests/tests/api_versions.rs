//! ApiVersions: the advertised table, every version, and the too-new fallback.

#![allow(clippy::unwrap_used)]

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use runnel_protocol::versions::SUPPORTED_APIS;
use runnel_tests::TestBroker;

fn request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("runnel-tests"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
}

#[tokio::test]
async fn every_version_lists_the_supported_table() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 0..=3 {
        let response = client.send(request(), version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len(), "v{version}");
        for (entry, supported) in response.api_keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(entry.api_key, supported.api_key as i16);
            assert_eq!(entry.min_version, supported.min_version);
            assert_eq!(entry.max_version, supported.max_version);
        }
    }
}

#[tokio::test]
async fn a_too_new_version_gets_unsupported_version_in_a_v0_body_and_the_connection_stays() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 4);
    frame.put_i16(18); // ApiVersions
    frame.put_i16(99);
    frame.put_i32(4242);
    frame.put_i16(4);
    frame.put_slice(b"test");
    client.send_raw(&frame).await;
    let mut reply = client.read_frame().await.expect("an answer");
    assert_eq!(
        ResponseHeader::decode(&mut reply, 0)
            .unwrap()
            .correlation_id,
        4242
    );
    let body = ApiVersionsResponse::decode(&mut reply, 0).unwrap();
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    assert_eq!(body.api_keys.len(), SUPPORTED_APIS.len());
    // The client retries with a version we listed, on the same connection.
    let response = client.send(request(), 3).await;
    assert_eq!(response.error_code, 0);
}
