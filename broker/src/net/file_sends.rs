//! Fetch records sent from the segment file (`sendfile`) instead of copied through memory.
//!
//! A Fetch response is encoded by the protocol crate from `Bytes`. Records left in a segment
//! file ([`FileSlice`]) go into the response as a *placeholder*: a `Bytes` of the right
//! length over a static, never-read region of zeros, one distinct range per slice. The
//! chunked encoder keeps a `Bytes` it writes whole as a chunk of its own, uncopied, so the
//! encoded response comes out as: the encoder's bytes, placeholder, the encoder's bytes, ...
//! The writer ([`pieces`]) swaps each placeholder chunk for its slice and sends that with
//! `sendfile`: the kernel copies page-cache pages straight into the socket, one copy instead
//! of the read's two (page cache → buffer → socket).
//!
//! The zeros are never sent: every placeholder must come out as exactly one whole chunk,
//! else [`pieces`] fails and the connection closes before a byte of the response is written.

use std::cell::UnsafeCell;
use std::io;

use bytes::Bytes;
use runnel_protocol::chunked::SHARE_BYTES_MIN;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::log::FileSlice;

/// The placeholders' address space: the records of one Fetch response left in files, all
/// together, fit in it (55 MiB, Kafka's `fetch.max.bytes`, plus one batch beyond the limit
/// for the first partition); what does not fit is read instead.
const PLACEHOLDER_REGION_BYTES: usize = 128 << 20;

/// Zeros in `.bss`: address space, no memory (nothing reads them) and no bytes in the
/// binary. The cell keeps the compiler from placing them in `.rodata` (which is stored in
/// the file) as it does with immutable zero statics; nothing ever writes through it.
struct Region(UnsafeCell<[u8; PLACEHOLDER_REGION_BYTES]>);

// SAFETY: the bytes are never written (no code takes a `&mut` or writes through the cell's
// pointer), so sharing `&` references between threads is sound.
unsafe impl Sync for Region {}

static PLACEHOLDER_REGION: Region = Region(UnsafeCell::new([0; PLACEHOLDER_REGION_BYTES]));

/// The region as bytes.
fn region() -> &'static [u8] {
    // SAFETY: never written (see `Region`), so a shared reference for the program's life
    // never aliases a write.
    unsafe { &*PLACEHOLDER_REGION.0.get() }
}

/// The file slices of one response and their placeholders, in the order they were made.
#[derive(Debug, Default)]
pub struct FileSends {
    slices: Vec<(Bytes, FileSlice)>,
    /// Start of the next placeholder in the region.
    cursor: usize,
}

impl FileSends {
    /// The placeholder that stands for `slice` in the response, or the slice back when it
    /// cannot have one (shorter than the encoder keeps whole, [`SHARE_BYTES_MIN`], or the region
    /// is used up): read it then.
    pub fn placeholder(&mut self, slice: FileSlice) -> Result<Bytes, FileSlice> {
        let end = self.cursor.saturating_add(slice.len_bytes);
        if slice.len_bytes < SHARE_BYTES_MIN || end > PLACEHOLDER_REGION_BYTES {
            return Err(slice);
        }
        let placeholder = Bytes::from_static(&region()[self.cursor..end]);
        self.cursor = end;
        self.slices.push((placeholder.clone(), slice));
        Ok(placeholder)
    }
}

/// A piece of an encoded response: bytes to write, or a file slice to send.
#[derive(Debug)]
pub enum Piece {
    Bytes(Bytes),
    File(FileSlice),
}

/// A placeholder was not kept whole by the encoder: its zeros would be sent as records.
#[derive(Debug, thiserror::Error)]
#[error("records to send from a file were not kept whole by the encoder ({total} in the response)")]
pub struct PlaceholderError {
    total: usize,
}

/// The encoded `chunks` with every placeholder chunk replaced by its file slice; an error
/// when any placeholder is not exactly one chunk, in the order the placeholders were made
/// (the response's partition order), so that nothing of the response is written then.
pub fn pieces(chunks: Vec<Bytes>, sends: FileSends) -> Result<Vec<Piece>, PlaceholderError> {
    let total = sends.slices.len();
    let mut slices = sends.slices.into_iter();
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        if !in_region(&chunk) {
            out.push(Piece::Bytes(chunk));
            continue;
        }
        match slices.next() {
            Some((placeholder, slice))
                if placeholder.as_ptr() == chunk.as_ptr() && placeholder.len() == chunk.len() =>
            {
                out.push(Piece::File(slice));
            }
            _ => return Err(PlaceholderError { total }),
        }
    }
    match slices.len() {
        0 => Ok(out),
        _ => Err(PlaceholderError { total }),
    }
}

/// Whether `chunk` lies in the placeholder region (by address; never read).
fn in_region(chunk: &Bytes) -> bool {
    let start = region().as_ptr() as usize;
    let at = chunk.as_ptr() as usize;
    (start..start + PLACEHOLDER_REGION_BYTES).contains(&at)
}

/// Sends all of `slice` to `stream` from the page cache. A file shorter than the slice
/// (it cannot be: see [`FileSlice`]) is an error, as the frame's length was already sent.
/// `on_progress` runs whenever bytes went out (the connection's idle clock).
#[cfg(target_os = "linux")]
pub async fn send_file(
    stream: &TcpStream,
    slice: &FileSlice,
    on_progress: impl Fn(),
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut position = libc::off_t::try_from(slice.position).map_err(io::Error::other)?;
    let mut left = slice.len_bytes;
    // Each pass sends ≥ 1 byte, waits for the socket, or fails: bounded by `len_bytes`.
    while left > 0 {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (borrowed from `stream` and the
            // slice's file); the kernel writes only `position`, a live local.
            let sent = unsafe {
                libc::sendfile(
                    stream.as_raw_fd(),
                    slice.file.as_raw_fd(),
                    &mut position,
                    left,
                )
            };
            match sent {
                -1 => Err(io::Error::last_os_error()),
                sent => Ok(sent as usize),
            }
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the records being sent",
                ))
            }
            Ok(sent) => {
                left -= sent.min(left);
                on_progress();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Elsewhere the slice is read and written.
#[cfg(not(target_os = "linux"))]
pub async fn send_file(
    stream: &TcpStream,
    slice: &FileSlice,
    on_progress: impl Fn(),
) -> io::Result<()> {
    let bytes = slice.read_bytes()?;
    let mut written = 0usize;
    while written < bytes.len() {
        stream.writable().await?;
        match stream.try_write(&bytes[written..]) {
            Ok(n) => {
                written += n;
                on_progress();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "file_sends_tests.rs"]
mod tests;
