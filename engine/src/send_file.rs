//! Sends a response frame made of bytes and file regions (zero-copy Fetch).
//!
//! The connection's socket is non-blocking (`prepare_socket`); glommio itself only
//! sends with MSG_DONTWAIT and waits through io_uring polls, so that changes nothing
//! for it, and lets this module call `sendfile` and `send` directly without ever
//! blocking the shard:
//!
//! - bytes go out with `send(MSG_DONTWAIT | MSG_MORE)` (MSG_MORE while more of the frame
//!   follows, so the small encoded pieces share packets with the records);
//! - a region goes out with `sendfile` from its segment descriptor: page cache to
//!   socket, no userspace copy;
//! - when the socket buffer is full (EAGAIN), the next chunk (at most
//!   `FALLBACK_CHUNK_BYTES`) is handed to glommio's `write_all`, which waits for room
//!   through io_uring; for a region that chunk is read with `pread` first. Then
//!   `sendfile` resumes. Copies therefore happen only at a full socket buffer (a slow
//!   consumer); per-shard counters tell the two apart.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use futures::io::AsyncWriteExt;
use glommio::net::TcpStream;
use weir_net::zero_copy::FramePart;
use weir_storage::LogSlice;

use crate::api::FetchRegion;

/// Bytes copied through userspace per wait for socket room.
const FALLBACK_CHUNK_BYTES: usize = 64 << 10;

/// Largest count handed to one `sendfile` call (Linux moves at most ~2 GiB per call).
const SENDFILE_CALL_BYTES_MAX: usize = 1 << 30;

thread_local! {
    static ZERO_COPY_BYTES: Cell<u64> = const { Cell::new(0) };
    static COPIED_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// (bytes sent with `sendfile`, region bytes copied because the socket was full) by
/// this thread's shard since it started.
pub fn region_bytes_sent() -> (u64, u64) {
    (
        ZERO_COPY_BYTES.with(Cell::get),
        COPIED_BYTES.with(Cell::get),
    )
}

/// Makes the accepted socket non-blocking, so `sendfile` returns EAGAIN instead of
/// blocking the shard when the peer is slow.
pub fn prepare_socket(stream: &TcpStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    // SAFETY: fcntl on a descriptor the stream owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes the frame's parts in order.
pub async fn write_parts(
    stream: &mut TcpStream,
    parts: &[FramePart<FetchRegion>],
) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    for (index, part) in parts.iter().enumerate() {
        let more = index + 1 < parts.len();
        match part {
            FramePart::Bytes(bytes) => send_bytes(stream, fd, bytes, more).await?,
            FramePart::Region(FetchRegion(slice)) => send_region(stream, fd, slice).await?,
        }
    }
    Ok(())
}

async fn send_bytes(stream: &mut TcpStream, fd: RawFd, bytes: &[u8], more: bool) -> io::Result<()> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    let mut sent = 0usize;
    while sent < bytes.len() {
        // SAFETY: the pointer and length describe the live, unsent rest of `bytes`.
        let result =
            unsafe { libc::send(fd, bytes[sent..].as_ptr().cast(), bytes.len() - sent, flags) };
        if result >= 0 {
            sent += result as usize;
            continue;
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            // Socket full: glommio waits for room and sends the rest.
            io::ErrorKind::WouldBlock => return stream.write_all(&bytes[sent..]).await,
            _ => return Err(error),
        }
    }
    Ok(())
}

async fn send_region(stream: &mut TcpStream, fd: RawFd, slice: &LogSlice) -> io::Result<()> {
    let (file, position) = (slice.file.as_raw_fd(), slice.position);
    let end = position + slice.length as u64;
    let mut offset = position as libc::off_t;
    while (offset as u64) < end {
        let count = ((end - offset as u64) as usize).min(SENDFILE_CALL_BYTES_MAX);
        // SAFETY: both descriptors are open (the region holds its own dup); the kernel
        // advances `offset`.
        let result = unsafe { libc::sendfile(fd, file, &mut offset, count) };
        if result > 0 {
            ZERO_COPY_BYTES.with(|sent| sent.set(sent.get() + result as u64));
            continue;
        }
        if result == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("segment file ends at byte {offset}, inside a fetch region"),
            ));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                let chunk = ((end - offset as u64) as usize).min(FALLBACK_CHUNK_BYTES);
                let bytes = slice.read_range((offset as u64 - position) as usize, chunk)?;
                stream.write_all(&bytes).await?;
                COPIED_BYTES.with(|copied| copied.set(copied.get() + chunk as u64));
                offset += chunk as libc::off_t;
            }
            _ => return Err(error),
        }
    }
    Ok(())
}
