//! Loopback TCP connections without pacing: the broker calls [`unpace_loopback`] on every
//! accepted connection and the client on every connection it opens.
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

use std::net::SocketAddr;
use std::os::fd::AsFd;

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
const UNPACED_CONGESTION: &[u8] = b"reno";

/// Whether a congestion control (its Linux name) paces its sends.
fn paces(name: &[u8]) -> bool {
    name.starts_with(b"bbr")
}

/// Switches `socket`, a connected TCP socket from `local` to `peer`, to Reno if the
/// connection is within the machine (both ends loopback addresses, IPv4-mapped IPv6 ones
/// included, or the same address) and its congestion control paces.
/// An error leaves the socket as it was; it is still usable.
pub fn unpace_loopback(
    socket: &impl AsFd,
    local: SocketAddr,
    peer: SocketAddr,
) -> std::io::Result<Pacing> {
    let (local, peer) = (local.ip().to_canonical(), peer.ip().to_canonical());
    let within = (local.is_loopback() && peer.is_loopback()) || local == peer;
    if !cfg!(target_os = "linux") || !within {
        return Ok(Pacing::NotLoopback);
    }
    if !paces(&congestion(socket)?) {
        return Ok(Pacing::Unpaced);
    }
    set_congestion(socket, UNPACED_CONGESTION)?;
    Ok(Pacing::SwitchedToReno)
}

/// The socket's congestion control (`TCP_CONGESTION`), e.g. `b"bbr"`.
#[cfg(target_os = "linux")]
pub fn congestion(socket: &impl AsFd) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    // The kernel's TCP_CA_NAME_MAX: names are at most 15 bytes and a NUL.
    let mut name = [0u8; 16];
    let mut len = name.len() as libc::socklen_t;
    // SAFETY: `name` is writable for `len` bytes and the kernel writes at most `len`; the
    // descriptor is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let written = &name[..(len as usize).min(name.len())];
    let end = written
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(written.len());
    Ok(written[..end].to_vec())
}

#[cfg(target_os = "linux")]
fn set_congestion(socket: &impl AsFd, name: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel reads `name.len()` bytes from `name`; the descriptor is borrowed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn congestion(_socket: &impl AsFd) -> std::io::Result<Vec<u8>> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
fn set_congestion(_socket: &impl AsFd, _name: &[u8]) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
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

    fn unpace(stream: &TcpStream) -> Pacing {
        let (local, peer) = (stream.local_addr().unwrap(), stream.peer_addr().unwrap());
        unpace_loopback(stream, local, peer).unwrap()
    }

    /// A loopback socket on BBR moves to Reno; one on a congestion control that does not
    /// pace is left alone. (BBR and Reno are the ones this test can choose without
    /// privileges: BBR only where the system allows it, so that half may not run.)
    #[test]
    fn a_pacing_loopback_socket_moves_to_reno_and_others_stay() {
        let (client, accepted) = pair();
        set_congestion(&client, b"reno").unwrap();
        assert_eq!(unpace(&client), Pacing::Unpaced);
        assert_eq!(congestion(&client).unwrap(), b"reno");
        if set_congestion(&accepted, b"bbr").is_ok() {
            assert_eq!(congestion(&accepted).unwrap(), b"bbr");
            assert_eq!(unpace(&accepted), Pacing::SwitchedToReno);
            assert_eq!(congestion(&accepted).unwrap(), b"reno");
        }
    }

    /// Only connections within the machine are touched: both ends on loopback, or on the
    /// same address.
    #[test]
    fn other_addresses_keep_the_systems_choice() {
        let (client, _accepted) = pair();
        let before = congestion(&client).unwrap();
        let loopback: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9092".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:9092".parse().unwrap();
        for (local, peer) in [(loopback, remote), (remote, loopback)] {
            assert_eq!(
                unpace_loopback(&client, local, peer).unwrap(),
                Pacing::NotLoopback
            );
        }
        assert_eq!(congestion(&client).unwrap(), before);
        assert_ne!(
            unpace_loopback(&client, mapped, loopback).unwrap(),
            Pacing::NotLoopback
        );
        let own: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        assert_ne!(
            unpace_loopback(&client, own, remote).unwrap(),
            Pacing::NotLoopback
        );
        let other_host: SocketAddr = "192.0.2.8:9092".parse().unwrap();
        assert_eq!(
            unpace_loopback(&client, own, other_host).unwrap(),
            Pacing::NotLoopback
        );
    }

    #[test]
    fn only_bbr_paces() {
        assert!(paces(b"bbr") && paces(b"bbr2") && paces(b"bbr3"));
        assert!(!paces(b"cubic") && !paces(b"reno") && !paces(b"dctcp") && !paces(b""));
    }
}
