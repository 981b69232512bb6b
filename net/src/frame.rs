//! Length-prefixed framing of Kafka requests.
//!
//! A frame is `size: i32 (big endian) | size bytes`. The reader keeps one growable
//! buffer per connection, reads in large chunks and hands out frames as cheap `Bytes`
//! slices of it (no copy per frame).
//!
//! Reads go straight into the buffer's uninitialized spare capacity (`FrameSource`):
//! a reader over `&mut [u8]` needs initialized memory, and zeroing each fresh buffer
//! before reading into it was one more pass over every byte received.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Bytes of the size prefix in front of every Kafka request and response.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;
/// How much the reader asks the socket for at a time: large enough to pull many small
/// pipelined requests in one syscall.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Why a connection's byte stream could not be framed or decoded.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("request frame of {size} bytes exceeds socket.request.max.bytes ({max} bytes)")]
    TooLarge { size: i64, max: usize },
    #[error("request frame has a negative size ({size})")]
    NegativeSize { size: i32 },
    #[error("connection closed in the middle of a frame ({have} of {need} bytes received)")]
    Truncated { need: usize, have: usize },
    #[error("request is too short at byte {offset}: need {need} bytes, have {have}")]
    Short {
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("could not decode {what} v{version}: {reason}")]
    Decode {
        what: &'static str,
        version: i16,
        reason: String,
    },
    #[error("could not encode {what} v{version}: {reason}")]
    Encode {
        what: &'static str,
        version: i16,
        reason: String,
    },
    #[error("socket read failed: {source}")]
    Io {
        #[source]
        source: std::io::Error,
    },
}

/// A byte stream that reads into memory that may be uninitialized.
///
/// # Safety
/// `read_uninit` must have initialized the first `n` bytes of `spare` when it answers
/// `Ok(n)`, with `n ≤ spare.len()`.
#[allow(async_fn_in_trait)] // used with concrete sources only
pub unsafe trait FrameSource {
    /// Reads at least one byte into `spare`, waiting until some are available, and
    /// answers how many; 0 means the end of the stream. Cancel-safe: dropped before it
    /// answers, it has consumed nothing.
    async fn read_uninit(&mut self, spare: &mut [MaybeUninit<u8>]) -> std::io::Result<usize>;
}

// SAFETY: copies `count ≤ spare.len()` bytes into the first `count` slots.
unsafe impl FrameSource for &[u8] {
    async fn read_uninit(&mut self, spare: &mut [MaybeUninit<u8>]) -> std::io::Result<usize> {
        let count = spare.len().min(self.len());
        for (slot, byte) in spare.iter_mut().zip(&self[..count]) {
            slot.write(*byte);
        }
        *self = &self[count..];
        Ok(count)
    }
}

/// Splits a byte stream into request frames.
pub struct FrameReader {
    buffer: BytesMut,
    frame_bytes_max: usize,
}

impl FrameReader {
    /// A reader that refuses frames larger than `frame_bytes_max` (socket.request.max.bytes).
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameReader {
            buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            frame_bytes_max,
        }
    }

    /// Returns a complete frame already buffered, without reading.
    pub fn try_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buffer.len() < FRAME_SIZE_PREFIX_BYTES {
            return Ok(None);
        }
        let size = i32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes checked above"));
        if size < 0 {
            return Err(FrameError::NegativeSize { size });
        }
        let size = size as usize;
        if size > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size: size as i64,
                max: self.frame_bytes_max,
            });
        }
        if self.buffer.len() < FRAME_SIZE_PREFIX_BYTES + size {
            // Make room for the rest of this frame in one reservation.
            self.buffer
                .reserve(FRAME_SIZE_PREFIX_BYTES + size - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(FRAME_SIZE_PREFIX_BYTES);
        Ok(Some(self.buffer.split_to(size).freeze()))
    }

    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames.
    pub async fn next_frame<S: FrameSource>(
        &mut self,
        source: &mut S,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(Some(frame));
            }
            let start = self.buffer.len();
            let want = READ_CHUNK_BYTES.max(self.buffer.capacity() - start);
            self.buffer.reserve(want);
            // The length grows only once the read returns, so dropping this future
            // mid-read (the connection selects reads against other events) leaves the
            // buffer whole.
            let read = source
                .read_uninit(&mut self.buffer.spare_capacity_mut()[..want])
                .await
                .map_err(|source| FrameError::Io { source })?;
            assert!(read <= want, "a source answered more than it was given");
            // SAFETY: the source initialized the first `read` spare bytes (FrameSource).
            unsafe { self.buffer.set_len(start + read) };
            if read == 0 {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let need = if self.buffer.len() >= FRAME_SIZE_PREFIX_BYTES {
                    FRAME_SIZE_PREFIX_BYTES
                        + i32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes")) as usize
                } else {
                    FRAME_SIZE_PREFIX_BYTES
                };
                return Err(FrameError::Truncated {
                    need,
                    have: self.buffer.len(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reader_splits_pipelined_frames_in_order() {
        let mut stream = framed(b"first");
        stream.extend(framed(b"second"));
        stream.extend(framed(b""));
        let mut reader = FrameReader::new(1024);
        let mut input = &stream[..];
        block_on(async {
            assert_eq!(
                &reader.next_frame(&mut input).await.unwrap().unwrap()[..],
                b"first"
            );
            assert_eq!(
                &reader.next_frame(&mut input).await.unwrap().unwrap()[..],
                b"second"
            );
            assert_eq!(
                &reader.next_frame(&mut input).await.unwrap().unwrap()[..],
                b""
            );
            assert!(reader.next_frame(&mut input).await.unwrap().is_none());
        });
    }

    /// Hands out at most `step` bytes per read, as a socket does under load.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    // SAFETY: as for `&[u8]`, which it calls with at most `step` slots.
    unsafe impl FrameSource for Trickle<'_> {
        async fn read_uninit(&mut self, spare: &mut [MaybeUninit<u8>]) -> std::io::Result<usize> {
            let count = self.step.min(spare.len());
            self.bytes.read_uninit(&mut spare[..count]).await
        }
    }

    #[test]
    fn reader_reassembles_frames_from_short_reads_of_any_size() {
        let bodies: Vec<Vec<u8>> = (0..40usize)
            .map(|index| {
                let length = if index % 7 == 3 {
                    300_000 + index
                } else {
                    index * 13
                };
                (0..length).map(|at| (at * 31 + index) as u8).collect()
            })
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|body| framed(body)).collect();
        for step in [7usize, 4096, 65_536, 1 << 20] {
            let mut reader = FrameReader::new(1 << 20);
            let mut input = Trickle {
                bytes: &stream,
                step,
            };
            block_on(async {
                for body in &bodies {
                    let frame = reader.next_frame(&mut input).await.unwrap().unwrap();
                    assert_eq!(&frame[..], &body[..], "step {step}");
                }
                assert!(reader.next_frame(&mut input).await.unwrap().is_none());
            });
        }
    }

    #[test]
    fn reader_refuses_a_two_gib_size_prefix_without_allocating_it() {
        let stream = 0x7fff_ffffi32.to_be_bytes();
        let mut reader = FrameReader::new(100 << 20);
        let error = block_on(reader.next_frame(&mut &stream[..])).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }), "{error}");
        assert!(reader.buffer.capacity() < 1 << 20);
    }

    #[test]
    fn reader_reports_truncation_at_every_byte() {
        let stream = framed(b"0123456789");
        for cut in 1..stream.len() {
            let mut reader = FrameReader::new(1024);
            let error = block_on(reader.next_frame(&mut &stream[..cut])).unwrap_err();
            assert!(
                matches!(error, FrameError::Truncated { have, .. } if have == cut),
                "cut {cut}: {error}"
            );
        }
    }

    #[test]
    fn reader_rejects_negative_sizes() {
        let stream = (-5i32).to_be_bytes();
        let error = block_on(FrameReader::new(1024).next_frame(&mut &stream[..])).unwrap_err();
        assert!(matches!(error, FrameError::NegativeSize { size: -5 }));
    }
}
