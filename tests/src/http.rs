//! A minimal HTTP/1.1 client for tests: one request per connection (`Connection: close`),
//! bounded by [`crate::IO_TIMEOUT`]. Enough for `/metrics` and the JSON admin API without
//! pulling an HTTP client crate into the test build.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response body accepted.
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// `GET path` → (status code, body). Panics on I/O errors or a malformed answer.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _head, body) = request(addr, "GET", path).await;
    (status, body)
}

/// `method path` without a body → (status code, status line and headers, body). Panics on
/// I/O errors or a malformed answer.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        stream
            .take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut raw)
            .await
            .expect("read response");
        raw
    };
    let raw = tokio::time::timeout(crate::IO_TIMEOUT, exchange)
        .await
        .expect("HTTP response within the timeout");
    parse(&raw)
}

fn parse(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
