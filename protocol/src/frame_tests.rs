// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use proptest::prelude::*;

use super::*;

fn request_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

#[test]
fn frame_size_checks_sign_limit_and_minimum() {
    assert_eq!(frame_size(100i32.to_be_bytes(), 1_000), Ok(100));
    assert_eq!(
        frame_size((-1i32).to_be_bytes(), 1_000),
        Err(FrameError::Negative(-1))
    );
    assert_eq!(
        frame_size(i32::MAX.to_be_bytes(), 1_000),
        Err(FrameError::TooLarge {
            size_bytes: i32::MAX as usize,
            max_request_bytes: 1_000
        })
    );
    assert_eq!(
        frame_size(7i32.to_be_bytes(), 1_000),
        Err(FrameError::TooShort { size_bytes: 7 })
    );
}

#[test]
fn decodes_a_metadata_request_at_every_supported_version() {
    for version in 0..=12 {
        let body = RequestKind::Metadata(MetadataRequest::default());
        let frame = request_frame(ApiKey::Metadata, version, 42, &body);
        let decoded = decode_request(frame).unwrap();
        assert_eq!(decoded.api_key, ApiKey::Metadata);
        assert_eq!(decoded.header.correlation_id, 42);
        assert_eq!(decoded.header.request_api_version, version);
        assert!(matches!(decoded.body, RequestKind::Metadata(_)));
    }
}

#[test]
fn unknown_keys_and_versions_close_the_connection() {
    let mut frame = BytesMut::new();
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(7);
    let err = decode_request(frame.freeze()).unwrap_err();
    assert_eq!(
        err,
        RequestError::UnknownApiKey {
            api_key: 999,
            correlation_id: 7
        }
    );
    assert_eq!(err.action(), ErrorAction::Close);

    // ConsumerGroupHeartbeat (KIP-848) exists in Kafka but is not implemented here yet.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::ConsumerGroupHeartbeat as i16);
    frame.put_i16(0);
    frame.put_i32(8);
    assert!(matches!(
        decode_request(frame.freeze()),
        Err(RequestError::UnknownApiKey { .. })
    ));

    let body = RequestKind::Metadata(MetadataRequest::default());
    let frame = request_frame(ApiKey::Metadata, 12, 9, &body);
    let mut raw = frame.to_vec();
    raw[2..4].copy_from_slice(&13i16.to_be_bytes());
    let err = decode_request(Bytes::from(raw)).unwrap_err();
    assert!(matches!(
        err,
        RequestError::UnsupportedVersion { version: 13, .. }
    ));
    assert_eq!(err.action(), ErrorAction::Close);
}

#[test]
fn too_new_api_versions_gets_a_v0_answer() {
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(1234);
    let err = decode_request(frame.freeze()).unwrap_err();
    let ErrorAction::Reply(reply) = err.action() else {
        panic!("expected a reply")
    };
    let mut reply = reply.slice(SIZE_PREFIX_BYTES..);
    let header = ResponseHeader::decode(&mut reply, 0).unwrap();
    assert_eq!(header.correlation_id, 1234);
    let body = ApiVersionsResponse::decode(&mut reply, 0).unwrap();
    assert_eq!(body.error_code, UNSUPPORTED_VERSION_CODE);
    assert_eq!(body.api_keys.len(), versions::SUPPORTED_APIS.len());
}

#[test]
fn api_versions_v3_round_trips_with_a_v0_response_header() {
    let request = RequestKind::ApiVersions(
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    let decoded = decode_request(request_frame(ApiKey::ApiVersions, 3, 5, &request)).unwrap();
    assert_eq!(decoded.header.correlation_id, 5);
    let body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
    let frame = encode_response(ApiKey::ApiVersions, 3, 5, &body).unwrap();
    let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
    assert_eq!(size as usize, frame.len() - 4);
    assert_eq!(ApiVersionsResponse::header_version(3), 0);
    let mut rest = frame.slice(4..);
    assert_eq!(
        ResponseHeader::decode(&mut rest, 0).unwrap().correlation_id,
        5
    );
    ApiVersionsResponse::decode(&mut rest, 3).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn flexible_responses_carry_a_v1_header() {
    let body = ResponseKind::Metadata(MetadataResponse::default());
    let frame = encode_response(ApiKey::Metadata, 12, 77, &body).unwrap();
    let mut rest = frame.slice(4..);
    assert_eq!(
        ResponseHeader::decode(&mut rest, 1).unwrap().correlation_id,
        77
    );
    MetadataResponse::decode(&mut rest, 12).unwrap();
    assert!(rest.is_empty());
}

/// A default body of every supported API, so mutations start from a valid frame.
fn default_body(api_key: ApiKey) -> Option<RequestKind> {
    use kafka_protocol::messages::*;
    Some(match api_key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::AlterReplicaLogDirs => {
            RequestKind::AlterReplicaLogDirs(AlterReplicaLogDirsRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default())
        }
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default())
        }
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default())
        }
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(DescribeTransactionsRequest::default())
        }
        ApiKey::DescribeTopicPartitions => {
            RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default())
        }
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        _ => return None,
    })
}

#[test]
fn default_requests_of_every_supported_api_and_version_decode() {
    for api in versions::SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            let body = default_body(api.api_key).unwrap();
            let frame = request_frame(api.api_key, version, 11, &body);
            let decoded = decode_request(frame).unwrap();
            assert_eq!(decoded.api_key, api.api_key);
            assert_eq!(decoded.body, body, "{:?} v{version}", api.api_key);
        }
    }
}

/// ListOffsets v10 adds `timeout_ms` (KIP-1075); below v10 the field is not on the wire, so
/// it decodes as its default.
#[test]
fn list_offsets_timeout_is_carried_from_v10() {
    use kafka_protocol::messages::ListOffsetsRequest;
    let asked = ListOffsetsRequest::default().with_timeout_ms(1_234);
    for (version, expected_ms) in [(9, 0), (10, 1_234)] {
        let body = RequestKind::ListOffsets(asked.clone());
        let frame = request_frame(ApiKey::ListOffsets, version, 5, &body);
        let decoded = decode_request(frame).unwrap();
        let RequestKind::ListOffsets(request) = decoded.body else {
            panic!("v{version} decoded as another API");
        };
        assert_eq!(request.timeout_ms, expected_ms, "v{version}");
    }
}

fn supported_key_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    proptest::sample::select(versions::SUPPORTED_APIS)
        .prop_flat_map(|s| (Just(s.api_key), s.min_version..=s.max_version))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bodies_for_supported_apis_never_panic(
        (api_key, version) in supported_key_and_version(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut frame = BytesMut::new();
        frame.put_i16(api_key as i16);
        frame.put_i16(version);
        frame.put_i32(1);
        frame.put_slice(&body);
        let _ = decode_request(frame.freeze());
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        (api_key, version) in supported_key_and_version(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in 0usize..16,
    ) {
        let body = default_body(api_key).unwrap();
        let mut raw = request_frame(api_key, version, 1, &body).to_vec();
        for (at, byte) in flips {
            let at = REQUEST_HEADER_MIN_BYTES.min(raw.len()) + at % raw.len().max(1);
            if let Some(slot) = raw.get_mut(at) {
                *slot = byte;
            }
        }
        raw.truncate(raw.len().saturating_sub(cut));
        let _ = decode_request(Bytes::from(raw));
    }

    #[test]
    fn truncated_valid_frames_are_errors_not_panics(cut in 0usize..64, version in 0i16..=12) {
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        let frame = request_frame(ApiKey::Metadata, version, 3, &body);
        let cut = cut.min(frame.len());
        let _ = decode_request(frame.slice(..frame.len() - cut));
    }

    #[test]
    fn any_prefix_gives_a_size_or_an_error(prefix in any::<[u8; 4]>(), max in 0usize..1 << 20) {
        if let Ok(size) = frame_size(prefix, max) {
            prop_assert!(size <= max && size >= REQUEST_HEADER_MIN_BYTES);
        }
    }
}

/// A Fetch response encoded as chunks is byte-for-byte the plain encoding, at every
/// version, and its record batches are referenced rather than copied.
#[test]
fn fetch_response_chunks_equal_the_plain_encoding() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, HeartbeatResponse, TopicName};
    use kafka_protocol::protocol::Message;
    let batch = crate::batch::build_raw_batch(&crate::batch::RawBatchFields {
        last_offset_delta: 0,
        record_count: 1,
        records: &[5u8; 3000],
        ..crate::batch::RawBatchFields::default()
    });
    let mut response = FetchResponse::default();
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str("t"));
    for index in 0..3 {
        let mut partition = PartitionData::default();
        partition.partition_index = index;
        // a large batch (shared), an empty set, a small one (copied)
        partition.records = Some(match index {
            0 => batch.clone(),
            1 => Bytes::new(),
            _ => batch.slice(..100),
        });
        topic.partitions.push(partition);
    }
    response.responses.push(topic);
    let body = ResponseKind::Fetch(response);
    for version in 4..=FetchResponse::VERSIONS.max {
        let plain = encode_response(ApiKey::Fetch, version, 9, &body).unwrap();
        let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &body).unwrap();
        assert_eq!(chunks.concat(), plain.to_vec(), "v{version}");
        assert!(
            chunks.iter().any(|c| c.as_ptr() == batch.as_ptr()),
            "v{version}"
        );
    }
    let other = ResponseKind::Heartbeat(HeartbeatResponse::default());
    let chunks = encode_response_chunks(ApiKey::Heartbeat, 3, 1, &other).unwrap();
    assert_eq!(
        chunks.concat(),
        encode_response(ApiKey::Heartbeat, 3, 1, &other)
            .unwrap()
            .to_vec()
    );
}

/// A Metadata v4 frame naming `topics` empty topics (two wire bytes each).
fn metadata_v4_of_empty_topics(topics: i32) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(4);
    frame.put_i32(7);
    frame.put_i16(-1); // no client id
    frame.put_i32(topics);
    frame.put_bytes(0, 2 * topics as usize);
    frame.put_u8(1); // allow auto-creation
    frame.freeze()
}

#[test]
fn arrays_decode_within_the_collections_budget() {
    // 100 000 topics (7.2 MB of structs) is an ordinary large request.
    let Ok(request) = decode_request(metadata_v4_of_empty_topics(100_000)) else {
        panic!("a 100 000-topic request decodes");
    };
    let RequestKind::Metadata(metadata) = request.body else {
        panic!("a metadata request");
    };
    assert_eq!(metadata.topics.map(|t| t.len()), Some(100_000));
    // 20 MB of wire for 10 million topics would be 720 MB of structs: refused, and the
    // connection closes.
    let error = decode_request(metadata_v4_of_empty_topics(10_000_000)).unwrap_err();
    assert!(matches!(error, RequestError::Malformed(_)), "{error:?}");
    assert_eq!(error.action(), ErrorAction::Close);
    // A count far beyond the frame fails before anything is allocated.
    let mut claims = metadata_v4_of_empty_topics(1).to_vec();
    claims[10..14].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(decode_request(Bytes::from(claims)).is_err());
}

#[test]
fn unknown_tagged_fields_decode_within_the_collections_budget() {
    // ApiVersions v3 (flexible): client software name and version, then tagged fields, each
    // a distinct tag with an empty value (2–4 wire bytes for a map entry of ~40 bytes).
    let frame = |tags: u32| {
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(3);
        frame.put_i32(7);
        frame.put_i16(-1); // no client id
        frame.put_u8(0); // no header tagged fields
        frame.put_u8(1); // empty software name
        frame.put_u8(1); // empty software version
        put_unsigned_varint(&mut frame, tags);
        for tag in 0..tags {
            put_unsigned_varint(&mut frame, tag);
            frame.put_u8(0);
        }
        frame.freeze()
    };
    assert!(decode_request(frame(1_000)).is_ok());
    let error = decode_request(frame(2_000_000)).unwrap_err();
    assert!(matches!(error, RequestError::Malformed(_)), "{error:?}");
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}
