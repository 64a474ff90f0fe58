//! DescribeCluster over TCP at the lowest and highest versions we advertise.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest};
use runnel_tests::requests::metadata;
use runnel_tests::TestBroker;

#[tokio::test]
async fn this_broker_is_the_whole_cluster() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let from_metadata = client.send(metadata(Some(&[])), 12).await;
    for version in [0, 1] {
        let response = client
            .send(DescribeClusterRequest::default(), version)
            .await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.endpoint_type, 1, "v{version}");
        assert_eq!(
            Some(&response.cluster_id),
            from_metadata.cluster_id.as_ref()
        );
        assert_eq!(response.controller_id, from_metadata.controller_id);
        assert_eq!(response.brokers.len(), 1);
        let this = &response.brokers[0];
        assert_eq!(this.broker_id, BrokerId(broker.context().node_id));
        assert_eq!(this.host.as_str(), "127.0.0.1");
        assert_eq!(this.port, i32::from(broker.addr.port()));
        assert_eq!(response.cluster_authorized_operations, i32::MIN);
    }
}

#[tokio::test]
async fn authorized_operations_and_controller_endpoints() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let asked = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let response = client.send(asked, 1).await;
    assert_eq!(response.error_code, 0);
    assert_ne!(response.cluster_authorized_operations, i32::MIN);
    // Kafka's AuthHelper.computeDescribeClusterResponse on a broker listener: controllers (2)
    // are a known type asked of the wrong listener, 3 is no type at all.
    for (endpoint_type, error) in [
        (2, ResponseError::MismatchedEndpointType),
        (3, ResponseError::UnsupportedEndpointType),
    ] {
        let request = DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
        let response = client.send(request, 1).await;
        assert_eq!(response.error_code, error.code(), "type {endpoint_type}");
        assert!(response.brokers.is_empty());
    }
}

/// DescribeLogDirs: the data directory with each partition's size, at every version we
/// advertise (v4 adds the file system's total and usable bytes).
#[tokio::test]
async fn describe_log_dirs_lists_the_data_directory_and_partition_sizes() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::DescribeLogDirsRequest;
    use runnel_tests::records::values;
    use runnel_tests::requests::{produce, topic_name};

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["dirs"])), 12).await;
    let response = client
        .send(produce("dirs", 0, values(&["a", "b", "c"]), 1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let data_dir = broker.data_dir().canonicalize().unwrap();
    for version in 1..=4 {
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name("dirs"))
                .with_partitions(vec![0, 99]),
        ]));
        let response = client.send(request, version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.results.len(), 1);
        let dir = &response.results[0];
        assert_eq!(dir.error_code, 0);
        assert_eq!(dir.log_dir.as_str(), data_dir.to_str().unwrap());
        assert_eq!(dir.topics.len(), 1);
        let sizes: Vec<(i32, i64)> = dir.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        // Partition 99 does not exist: left out, as Kafka lists only the logs it has.
        assert_eq!(sizes.len(), 1, "v{version}: {sizes:?}");
        assert!(sizes[0].0 == 0 && sizes[0].1 > 0, "v{version}: {sizes:?}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        } else {
            assert_eq!(dir.total_bytes, -1);
        }
    }
}

/// AlterReplicaLogDirs: the directory DescribeLogDirs reports is where every partition
/// already is (NONE); any other path is LOG_DIR_NOT_FOUND; a partition the broker does not
/// have is REPLICA_NOT_AVAILABLE — at every version we advertise.
#[tokio::test]
async fn alter_replica_log_dirs_accepts_only_the_data_directory() {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::messages::AlterReplicaLogDirsRequest;
    use kafka_protocol::protocol::StrBytes;
    use runnel_tests::requests::topic_name;

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["moves"])), 12).await;
    let data_dir = broker.data_dir().canonicalize().unwrap();
    let dir = |path: &str, partitions: Vec<i32>| {
        AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(path.to_owned()))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(topic_name("moves"))
                .with_partitions(partitions)])
    };
    for version in 1..=2 {
        let request = AlterReplicaLogDirsRequest::default().with_dirs(vec![
            dir(data_dir.to_str().unwrap(), vec![0, 999]),
            dir("/elsewhere", vec![1]),
        ]);
        let response = client.send(request, version).await;
        assert_eq!(response.results.len(), 1, "v{version}");
        let codes: Vec<(i32, i16)> = response.results[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (0, 0),
                (1, ResponseError::LogDirNotFound.code()),
                (999, ResponseError::ReplicaNotAvailable.code()),
            ],
            "v{version}"
        );
    }
}
