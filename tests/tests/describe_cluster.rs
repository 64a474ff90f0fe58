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
    let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
    let response = client.send(controllers, 1).await;
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedEndpointType.code()
    );
    assert!(response.brokers.is_empty());
}
