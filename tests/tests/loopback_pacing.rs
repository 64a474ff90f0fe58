//! Loopback connections are not paced (`runnel_protocol::loopback`): the broker's accepted
//! socket and the client's socket of a connection on 127.0.0.1 leave a pacing congestion
//! control (BBR) for Reno, and keep any other. Read with `ss`, as an operator would.

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

#[tokio::test]
async fn both_ends_of_a_loopback_connection_leave_a_pacing_congestion_control() {
    let Ok(default) = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control") else {
        eprintln!("skipped: no /proc/sys/net/ipv4/tcp_congestion_control (not Linux)");
        return;
    };
    if Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no `ss` (iproute2) to read the sockets with");
        return;
    }
    let default = default.trim();
    let expected = if default.starts_with("bbr") {
        "reno"
    } else {
        default
    };
    let broker = TestBroker::start().await;
    // Connecting negotiates API versions: a round trip, so the broker serves the socket.
    let _connection = Connection::connect(&broker.addr.to_string(), &ConnectionConfig::default())
        .await
        .unwrap();
    let port = broker.addr.port();
    assert_eq!(
        congestion_of(&format!("( sport = :{port} )")),
        [expected],
        "the broker's end (system default {default})"
    );
    assert_eq!(
        congestion_of(&format!("( dport = :{port} )")),
        [expected],
        "the client's end (system default {default})"
    );
}
