//! Loopback connections are not paced (`runnel_protocol::loopback`): the broker's accepted
//! socket and the client's socket of a connection on 127.0.0.1 leave a pacing congestion
//! control (BBR) for Reno, and keep any other; `--loopback-unpaced false` (broker) and
//! `ConnectionConfig::loopback_unpaced = false` (client) keep that end on the system's
//! choice. Read with `ss`, as an operator would.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use runnel_client::conn::{Connection, ConnectionConfig};
use runnel_tests::TestBroker;

/// The congestion control of each established TCP socket matching an `ss` filter.
fn congestion_of(filter: &str) -> Vec<String> {
    let output = Command::new("ss")
        .args(["-tniH", "state", "established", filter])
        .output()
        .unwrap();
    assert!(output.status.success(), "ss {filter}: {output:?}");
    // Each socket is a line of addresses, then an indented line of details whose first
    // word is the congestion control.
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with(char::is_whitespace))
        .filter_map(|details| details.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The system's default congestion control, if this machine shows it and has `ss`.
fn system_default() -> Option<String> {
    let Ok(default) = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control") else {
        eprintln!("skipped: no /proc/sys/net/ipv4/tcp_congestion_control (not Linux)");
        return None;
    };
    if Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no `ss` (iproute2) to read the sockets with");
        return None;
    }
    Some(default.trim().to_owned())
}

/// What a connection within the machine runs on: Reno instead of a pacing default.
fn unpaced(default: &str) -> &str {
    if default.starts_with("bbr") {
        "reno"
    } else {
        default
    }
}

/// The (broker's end, client's end) congestion controls of one client connection.
async fn ends(broker: &TestBroker, config: &ConnectionConfig) -> (Vec<String>, Vec<String>) {
    // Connecting negotiates API versions: a round trip, so the broker serves the socket.
    let _connection = Connection::connect(&broker.addr.to_string(), config)
        .await
        .unwrap();
    let port = broker.addr.port();
    (
        congestion_of(&format!("( sport = :{port} )")),
        congestion_of(&format!("( dport = :{port} )")),
    )
}

#[tokio::test]
async fn both_ends_of_a_loopback_connection_leave_a_pacing_congestion_control() {
    let Some(default) = system_default() else {
        return;
    };
    let broker = TestBroker::start().await;
    let (broker_end, client_end) = ends(&broker, &ConnectionConfig::default()).await;
    assert_eq!(broker_end, [unpaced(&default)], "system default {default}");
    assert_eq!(client_end, [unpaced(&default)], "system default {default}");
}

/// Each end is its own side's business: `--loopback-unpaced false` on the broker, then
/// `ConnectionConfig::loopback_unpaced = false` on the client, keeps that end's default.
#[tokio::test]
async fn each_end_keeps_the_systems_choice_when_told() {
    let Some(default) = system_default() else {
        return;
    };
    let broker = TestBroker::start_with(|config| config.loopback_unpaced = false).await;
    let (broker_end, client_end) = ends(&broker, &ConnectionConfig::default()).await;
    assert_eq!(broker_end, [default.as_str()]);
    assert_eq!(client_end, [unpaced(&default)]);
    let broker = TestBroker::start().await;
    let told = ConnectionConfig {
        loopback_unpaced: false,
        ..ConnectionConfig::default()
    };
    let (broker_end, client_end) = ends(&broker, &told).await;
    assert_eq!(broker_end, [unpaced(&default)]);
    assert_eq!(client_end, [default.as_str()]);
}
