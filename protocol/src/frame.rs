//! Framing: the 4-byte size prefix, request header + body decoding, response encoding.
//!
//! A request on the wire is `size: i32` followed by `size` bytes: the request header
//! (api key, api version, correlation id, client id, tagged fields from header v2) and the
//! body. Everything here is total: any byte string decodes to a value or an error. The size
//! is checked against the caller's limit before the caller allocates anything, and the
//! header's fixed fields are read by hand so the `kafka-protocol` header decoder (which
//! slices its first four bytes unchecked) never sees a short buffer.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{decode_budget, Decodable, Encodable};

use crate::versions;

/// Bytes of the size prefix in front of every request and response.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// Smallest request: api key (2) + api version (2) + correlation id (4).
pub const REQUEST_HEADER_MIN_BYTES: usize = 8;
/// Kafka's `UNSUPPORTED_VERSION` error code.
const UNSUPPORTED_VERSION_CODE: i16 = 35;
/// Memory one request's decode may spend on its arrays and unknown tagged fields (element
/// structs; strings and byte fields share the frame's buffer). Wire elements can be one or
/// two bytes that decode to a 70–110-byte struct, so without this a 100 MiB frame of empty
/// topics would decode to GiBs. 32 MiB is ~400 000 fetch partitions or metadata topics.
pub const DECODED_COLLECTIONS_BYTES_MAX: usize = 32 << 20;

/// Why a size prefix is not acceptable. The connection closes on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("frame of {size_bytes} bytes exceeds the {max_request_bytes}-byte limit")]
    TooLarge {
        size_bytes: usize,
        max_request_bytes: usize,
    },
    #[error("frame of {size_bytes} bytes cannot hold a request header")]
    TooShort { size_bytes: usize },
}

/// Reads a request's size prefix and checks it against `max_request_bytes`.
pub fn frame_size(prefix: [u8; 4], max_request_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    let size_bytes = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
    if size_bytes > max_request_bytes {
        return Err(FrameError::TooLarge {
            size_bytes,
            max_request_bytes,
        });
    }
    if size_bytes < REQUEST_HEADER_MIN_BYTES {
        return Err(FrameError::TooShort { size_bytes });
    }
    Ok(size_bytes)
}

/// A decoded request: its header, its API key, and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Why a frame is not a request we serve; [`RequestError::action`] says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown or unsupported API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("API key {api_key} version {version} is not supported")]
    UnsupportedVersion {
        api_key: i16,
        version: i16,
        correlation_id: i32,
    },
    /// A client asked for an ApiVersions version newer than ours. Kafka answers with
    /// UNSUPPORTED_VERSION in a v0 body listing its versions so the client can retry.
    #[error("ApiVersions version {version} is newer than supported")]
    ApiVersionsTooNew { version: i16, correlation_id: i32 },
}

/// What the connection does about a [`RequestError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// Close the connection; nothing sensible can be answered.
    Close,
    /// Write this complete response frame and keep the connection open.
    Reply(Bytes),
}

impl RequestError {
    pub fn action(&self) -> ErrorAction {
        match self {
            RequestError::ApiVersionsTooNew { correlation_id, .. } => {
                ErrorAction::Reply(api_versions_fallback(*correlation_id))
            }
            _ => ErrorAction::Close,
        }
    }
}

/// Decodes one request frame (the bytes after the size prefix).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    let Some(fixed) = frame.get(..REQUEST_HEADER_MIN_BYTES) else {
        return Err(RequestError::Malformed(format!(
            "{} bytes is too short",
            frame.len()
        )));
    };
    let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let api_key = ApiKey::try_from(raw_key)
        .ok()
        .filter(|key| versions::supported(*key).is_some())
        .ok_or(RequestError::UnknownApiKey {
            api_key: raw_key,
            correlation_id,
        })?;
    if !versions::is_supported(api_key, version) {
        let too_new = versions::supported(api_key).is_some_and(|s| version > s.max_version);
        if api_key == ApiKey::ApiVersions && too_new {
            return Err(RequestError::ApiVersionsTooNew {
                version,
                correlation_id,
            });
        }
        return Err(RequestError::UnsupportedVersion {
            api_key: raw_key,
            version,
            correlation_id,
        });
    }
    let mut rest = frame;
    let header_version = api_key.request_header_version(version);
    let (header, body) = decode_budget::with_limit(DECODED_COLLECTIONS_BYTES_MAX, || {
        let header = RequestHeader::decode(&mut rest, header_version)
            .map_err(|e| RequestError::Malformed(format!("request header: {e}")))?;
        let body = RequestKind::decode(api_key, &mut rest, version)
            .map_err(|e| RequestError::Malformed(format!("{api_key:?} v{version} body: {e}")))?;
        Ok((header, body))
    })?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}

/// Why a response could not be encoded (a broker bug, never client input).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("encoding {api_key:?} v{version}: {detail}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        detail: String,
    },
    #[error("response of {size_bytes} bytes does not fit the i32 size prefix")]
    TooLarge { size_bytes: usize },
}

/// Encodes a whole response frame: size prefix, response header (the version the API
/// prescribes; always v0 for ApiVersions) and body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let encode_error = |e| EncodeError::Encode {
        api_key,
        version,
        detail: format!("{e}"),
    };
    let mut buf = BytesMut::new();
    buf.put_i32(0); // patched below, once the size is known
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(encode_error)?;
    body.encode(&mut buf, version).map_err(encode_error)?;
    let size_bytes = buf.len() - SIZE_PREFIX_BYTES;
    let size = i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;
    buf[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// [`encode_response`] as chunks for one vectored write: a Fetch response references its
/// record batches (see [`crate::chunked`]) instead of copying them into the frame; every
/// other response is a single chunk.
pub fn encode_response_chunks(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Vec<Bytes>, EncodeError> {
    if let ResponseKind::Fetch(fetch) = body {
        let shares = fetch
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter_map(|partition| partition.records.clone())
            .collect();
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let header_version = api_key.response_header_version(version);
        match crate::chunked::encode_frame(&header, header_version, fetch, version, shares) {
            Ok(Some(chunks)) => return Ok(chunks),
            Ok(None) => {} // cannot happen for Fetch; the plain encoding below is exact
            Err(e) => {
                return Err(EncodeError::Encode {
                    api_key,
                    version,
                    detail: e.to_string(),
                })
            }
        }
    }
    Ok(vec![encode_response(
        api_key,
        version,
        correlation_id,
        body,
    )?])
}

/// The v0 ApiVersions answer to a too-new ApiVersions request: UNSUPPORTED_VERSION plus
/// our table, so the client can pick a version and retry.
pub fn api_versions_fallback(correlation_id: i32) -> Bytes {
    let mut body = ApiVersionsResponse::default();
    body.error_code = UNSUPPORTED_VERSION_CODE;
    body.api_keys = versions::api_version_entries();
    let kind = ResponseKind::ApiVersions(body);
    match encode_response(ApiKey::ApiVersions, 0, correlation_id, &kind) {
        Ok(frame) => frame,
        // A v0 ApiVersions body has only fixed-size fields and a short array: encoding it
        // cannot fail, and a test proves it; fall back to a bare header just in case.
        Err(_) => {
            let mut buf = BytesMut::with_capacity(8);
            buf.put_i32(4);
            buf.put_i32(correlation_id);
            buf.freeze()
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
