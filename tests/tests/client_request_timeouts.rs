//! runnel-client request deadlines against a broker behind a proxy that can stall its
//! connections (as a SIGSTOPped broker would): the whole request — write included — is
//! bounded, and a connection whose request timed out or whose write was left half done is
//! closed, so the next attempt goes out on a new connection rather than the stalled one.

use std::sync::Arc;
use std::time::Duration;

use runnel_client::kafka::messages::metadata_request::MetadataRequestTopic;
use runnel_client::kafka::messages::{MetadataRequest, TopicName};
use runnel_client::kafka::protocol::StrBytes;
use runnel_client::{ClientConfig, Cluster, Error};
use runnel_tests::proxy::StallingProxy;
use runnel_tests::TestBroker;

/// The client's request timeout in these tests.
const REQUEST_TIMEOUT_MS: u64 = 1_000;
/// Longest any step here may take before the test counts it as hung.
const HANG: Duration = Duration::from_secs(10);

/// A broker, a proxy before it, and a cluster view bootstrapped through the proxy.
async fn behind_proxy(request_timeout_ms: u64) -> (TestBroker, StallingProxy, Arc<Cluster>) {
    let broker = TestBroker::start().await;
    let proxy = StallingProxy::start(broker.addr).await;
    let mut config = ClientConfig::new(&proxy.addr.to_string());
    config.connection.request_timeout_ms = request_timeout_ms;
    let cluster = Cluster::connect(config).await.expect("cluster");
    (broker, proxy, cluster)
}

fn brokers_only() -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(Vec::new()))
}

/// A Metadata request of about 35 MB: more than the socket buffers between the client and
/// a proxy that does not read hold, so its write cannot finish.
fn huge_request() -> MetadataRequest {
    let topics = (0..600_000)
        .map(|i| {
            let name = format!("a-topic-name-long-enough-to-fill-{i:08}");
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name))))
        })
        .collect();
    MetadataRequest::default().with_topics(Some(topics))
}

#[tokio::test]
async fn a_timed_out_request_closes_its_connection_and_the_next_goes_on_a_new_one() {
    let (_broker, proxy, cluster) = behind_proxy(REQUEST_TIMEOUT_MS).await;
    let addr = proxy.addr.to_string();
    let stalled = cluster.connection_to(&addr).await.expect("connection");
    assert_eq!(proxy.accepted(), 1);
    stalled.send(&brokers_only()).await.expect("metadata");

    proxy.stall_all(true);
    let later = stalled.clone();
    let second = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later.send(&brokers_only()).await
    });
    let first = tokio::time::timeout(HANG, stalled.send(&brokers_only())).await;
    assert!(matches!(first, Ok(Err(Error::Timeout { .. }))), "{first:?}");
    assert!(
        stalled.is_dead(),
        "a connection whose request timed out is closed"
    );
    // The request behind it fails with the connection, not at its own deadline.
    let second = tokio::time::timeout(HANG, second).await.expect("ends");
    let second = second.expect("joined");
    assert!(
        matches!(second, Err(Error::Disconnected { .. })),
        "{second:?}"
    );

    let fresh = cluster.connection_to(&addr).await.expect("connection");
    assert!(!Arc::ptr_eq(&fresh, &stalled), "a new connection");
    assert_eq!(proxy.accepted(), 2);
    fresh
        .send(&brokers_only())
        .await
        .expect("metadata on the new connection");
}

#[tokio::test]
async fn a_write_the_broker_does_not_read_is_bounded_by_the_request_timeout() {
    let (_broker, proxy, cluster) = behind_proxy(REQUEST_TIMEOUT_MS).await;
    let addr = proxy.addr.to_string();
    let stalled = cluster.connection_to(&addr).await.expect("connection");
    proxy.stall_all(true);
    let request = huge_request();
    let sent = tokio::time::timeout(HANG, stalled.send(&request)).await;
    assert!(
        matches!(sent, Ok(Err(Error::Timeout { .. }))),
        "the write is under the deadline: {:?}",
        sent.map(|r| r.map(|_| ()))
    );
    assert!(stalled.is_dead());
    let fresh = cluster.connection_to(&addr).await.expect("connection");
    assert!(!Arc::ptr_eq(&fresh, &stalled), "a new connection");
}

#[tokio::test]
async fn a_write_cancelled_mid_frame_closes_the_connection() {
    // The caller gives up long before the client's own deadline.
    let (_broker, proxy, cluster) = behind_proxy(30_000).await;
    let addr = proxy.addr.to_string();
    let conn = cluster.connection_to(&addr).await.expect("connection");
    proxy.stall_all(true);
    let request = huge_request();
    let cancelled = tokio::time::timeout(Duration::from_millis(500), conn.send(&request)).await;
    assert!(cancelled.is_err(), "the write could not finish");
    assert!(
        conn.is_dead(),
        "the next frame would follow half of this one"
    );
    proxy.stall_all(false);
    let fresh = cluster.connection_to(&addr).await.expect("connection");
    fresh
        .send(&brokers_only())
        .await
        .expect("metadata on a new connection");
}

#[tokio::test]
async fn a_hanging_connect_holds_up_only_its_own_lane() {
    // Long enough that waiting behind the hanging connect would show.
    let (_broker, proxy, cluster) = behind_proxy(30_000).await;
    let addr = proxy.addr.to_string();
    cluster
        .connection_to(&addr)
        .await
        .expect("shared connection")
        .send(&brokers_only())
        .await
        .expect("metadata");

    proxy.stall_new(true);
    let connecting = cluster.clone();
    let coordinator_addr = addr.clone();
    let hanging =
        tokio::spawn(async move { connecting.coordinator_connection(&coordinator_addr).await });
    while proxy.accepted() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The coordinator lane's connect now waits for its ApiVersions answer; the shared
    // connection still serves requests.
    let shared = tokio::time::timeout(HANG, async {
        cluster
            .connection_to(&addr)
            .await?
            .send(&brokers_only())
            .await
    })
    .await;
    assert!(
        matches!(shared, Ok(Ok(_))),
        "a request on the shared connection waited for another lane's connect: {shared:?}"
    );
    assert!(
        !hanging.is_finished(),
        "the stalled connect is still waiting"
    );
    hanging.abort();
}
