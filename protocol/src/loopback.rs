//! Loopback TCP connections without pacing: the broker calls [`unpace_loopback`] on every
//! accepted connection, the client on every connection it opens, the bench's loopback probe
//! on its socket.
//!
//! Linux's BBR congestion control paces each send, and where the interface's queueing
//! discipline does not pace (loopback's `noqueue`, and any qdisc but `fq`) TCP paces
//! itself: a high-resolution timer per burst ("internal pacing"). On loopback there is no
//! link to pace for; each timer costs a wake-up, and on a virtual machine a timer
//! reprogramming traps to the hypervisor. Measured on the bench machine, where BBR is the
//! system default: a catch-up read over one fetch connection ran at 1.21 GB/s with the
//! broker's `sendfile` at 0.60 CPU-s per GB (most of it under `tcp_write_xmit`), against
//! 2.50 GB/s and 0.09 CPU-s per GB with the sockets on Reno; produce at 1.25 against 1.47
//! GB/s (BENCHMARKS.md, session 25).
//!
//! So on a connection within the machine — both ends loopback addresses, or both the same
//! address (Linux routes a machine's own addresses through the loopback interface: a client
//! that connects to the host's own IP) — a congestion control that paces (BBR in any
//! version: a name starting with `bbr`) is replaced by Reno, which never paces and which
//! Linux lets every process choose (it is always in
//! `net.ipv4.tcp_allowed_congestion_control`). Other connections (a container's over a
//! bridge included), and those within the machine on a system whose default does not pace
//! (CUBIC, most distributions' default), keep the system's choice. Elsewhere than Linux
//! this does nothing.

#[cfg(target_os = "linux")]
use std::net::IpAddr;
use std::os::fd::AsFd;

#[cfg(target_os = "linux")]
use socket2::SockRef;

/// What [`unpace_loopback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Not a connection within the machine (over the loopback interface), or not Linux:
    /// the system's congestion control is kept.
    NotLoopback,
    /// A loopback connection whose congestion control does not pace: kept.
    Unpaced,
    /// A loopback connection switched from a pacing congestion control to Reno.
    SwitchedToReno,
}

/// The congestion control put on loopback connections: Reno never paces and is open to
/// every process.
#[cfg(target_os = "linux")]
const UNPACED_CONGESTION: &[u8] = b"reno";

/// Whether a congestion control (its Linux name) paces its sends.
#[cfg(target_os = "linux")]
fn paces(name: &[u8]) -> bool {
    name.starts_with(b"bbr")
}

/// Whether a connection from `local` to `peer` stays within the machine: both ends loopback
/// addresses (IPv4-mapped IPv6 ones included), or the same address.
#[cfg(target_os = "linux")]
fn within_machine(local: IpAddr, peer: IpAddr) -> bool {
    let (local, peer) = (local.to_canonical(), peer.to_canonical());
    (local.is_loopback() && peer.is_loopback()) || local == peer
}

/// Switches `socket`, a connected TCP socket, to Reno if its connection is within the
/// machine (both ends loopback addresses, or the same address: read from the socket) and
/// its congestion control paces. An error (a socket that is not a connected TCP one) leaves
/// the socket as it was.
#[cfg(target_os = "linux")]
pub fn unpace_loopback(socket: &impl AsFd) -> std::io::Result<Pacing> {
    let socket = SockRef::from(socket);
    let (local, peer) = (socket.local_addr()?, socket.peer_addr()?);
    let within = local
        .as_socket()
        .zip(peer.as_socket())
        .is_some_and(|(local, peer)| within_machine(local.ip(), peer.ip()));
    if !within {
        return Ok(Pacing::NotLoopback);
    }
    if !paces(&congestion(&socket)?) {
        return Ok(Pacing::Unpaced);
    }
    socket.set_tcp_congestion(UNPACED_CONGESTION)?;
    Ok(Pacing::SwitchedToReno)
}

/// Elsewhere than Linux: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn unpace_loopback(_socket: &impl AsFd) -> std::io::Result<Pacing> {
    Ok(Pacing::NotLoopback)
}

/// The socket's congestion control (`TCP_CONGESTION`) without the kernel's NUL padding,
/// e.g. `b"bbr"`.
#[cfg(target_os = "linux")]
fn congestion(socket: &SockRef<'_>) -> std::io::Result<Vec<u8>> {
    let mut name = socket.tcp_congestion()?;
    name.truncate(name.iter().position(|&b| b == 0).unwrap_or(name.len()));
    Ok(name)
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (client, accepted)
    }

    fn congestion_of(socket: &impl AsFd) -> Vec<u8> {
        congestion(&SockRef::from(socket)).unwrap()
    }

    /// A loopback socket on BBR moves to Reno; one on a congestion control that does not
    /// pace is left alone. (BBR and Reno are the ones this test can choose without
    /// privileges: BBR only where the system allows it, so that half may not run.)
    #[test]
    fn a_pacing_loopback_socket_moves_to_reno_and_others_stay() {
        let (client, accepted) = pair();
        SockRef::from(&client).set_tcp_congestion(b"reno").unwrap();
        assert_eq!(unpace_loopback(&client).unwrap(), Pacing::Unpaced);
        assert_eq!(congestion_of(&client), b"reno");
        if SockRef::from(&accepted).set_tcp_congestion(b"bbr").is_ok() {
            assert_eq!(congestion_of(&accepted), b"bbr");
            assert_eq!(unpace_loopback(&accepted).unwrap(), Pacing::SwitchedToReno);
            assert_eq!(congestion_of(&accepted), b"reno");
        }
    }

    /// A socket that is not connected (a listener) is an error, and keeps its congestion
    /// control.
    #[test]
    fn a_socket_without_a_peer_is_an_error_and_left_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let before = congestion_of(&listener);
        assert!(unpace_loopback(&listener).is_err());
        assert_eq!(congestion_of(&listener), before);
    }

    /// Within the machine: both ends on loopback (IPv4, IPv6, IPv4-mapped), or on the same
    /// address; not one end on loopback, nor two hosts.
    #[test]
    fn only_connections_within_the_machine_count() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let within = [
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1", "127.0.0.53"),
            ("::1", "::1"),
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
        ];
        for (local, peer) in within {
            assert!(within_machine(ip(local), ip(peer)), "{local} {peer}");
        }
        let apart = [
            ("127.0.0.1", "192.0.2.7"),
            ("192.0.2.7", "127.0.0.1"),
            ("192.0.2.7", "192.0.2.8"),
        ];
        for (local, peer) in apart {
            assert!(!within_machine(ip(local), ip(peer)), "{local} {peer}");
        }
    }

    #[test]
    fn only_bbr_paces() {
        assert!(paces(b"bbr") && paces(b"bbr2") && paces(b"bbr3"));
        assert!(!paces(b"cubic") && !paces(b"reno") && !paces(b"dctcp") && !paces(b""));
    }
}
