//! Fuzz target `request_decode`: any bytes as a request frame (what follows the size
//! prefix) through `decode_request`, which dispatches to the header decoder and the body
//! decoder of every API and version the broker supports; and the first four bytes through
//! `frame_size`. Must never panic, and a decoded header must carry the key and version it
//! was read from.

use bytes::Bytes;
use runnel_protocol::frame::{decode_request, frame_size};

/// The broker's default `max_request_bytes`.
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

pub fn run(data: &[u8]) {
    if let Some(prefix) = data.get(..4) {
        let prefix = [prefix[0], prefix[1], prefix[2], prefix[3]];
        if let Ok(size) = frame_size(prefix, MAX_REQUEST_BYTES) {
            assert!(size <= MAX_REQUEST_BYTES);
        }
    }
    if let Ok(decoded) = decode_request(Bytes::copy_from_slice(data)) {
        assert_eq!(decoded.header.request_api_key, decoded.api_key as i16);
    }
}
