//! Requests built and responses read byte by byte, for checking a wire format against the
//! protocol guide instead of against the codec that also encodes it (and for bad input).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size prefix, then a v1 request header (api key, version, correlation id 1, null client
/// id), then `body`.
pub fn frame(api_key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    let size = i32::try_from(10 + body.len()).expect("frame fits i32");
    frame.put_i32(size);
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_slice(body);
    frame.freeze()
}

/// A non-flexible STRING: i16 length, then the bytes.
pub fn put_str(buf: &mut BytesMut, text: &str) {
    buf.put_i16(i16::try_from(text.len()).expect("short string"));
    buf.put_slice(text.as_bytes());
}

/// A non-flexible NULLABLE_STRING (`None` for length -1).
pub fn get_nullable_str(buf: &mut Bytes) -> Option<String> {
    let len = usize::try_from(buf.get_i16()).ok()?;
    Some(String::from_utf8(buf.split_to(len).to_vec()).expect("UTF-8"))
}

/// A non-flexible STRING.
pub fn get_str(buf: &mut Bytes) -> String {
    get_nullable_str(buf).expect("a string, not null")
}
