//! Reading a glommio socket into uninitialized memory (`weir_net::frame::FrameSource`).
//!
//! glommio's reads take `&mut [u8]`, so each fresh request buffer had to be zeroed
//! before a read into it: one more pass over every byte received (2–3 % of a broker's
//! CPU under produce load). Here `recv(MSG_DONTWAIT)` writes straight into the spare
//! capacity. When the socket has nothing, glommio's own read of one byte waits (through
//! its io_uring poll, which it keeps across reads) and the rest follows with `recv`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

use futures::io::AsyncReadExt;
use glommio::net::TcpStream;
use weir_net::FrameSource;

/// A socket as a `FrameSource`, for one or more reads in a row.
pub struct SocketSource<'a> {
    stream: &'a mut TcpStream,
    /// The last read left the socket empty: the next one most likely has to wait, so it
    /// goes to glommio first instead of trying `recv` in vain.
    drained: bool,
}

impl<'a> SocketSource<'a> {
    pub fn new(stream: &'a mut TcpStream) -> Self {
        SocketSource {
            stream,
            drained: true,
        }
    }

    /// `recv(MSG_DONTWAIT)` into `spare`: `Some(n)` bytes read (0 at the end of the
    /// stream), `None` when nothing is there now.
    fn try_recv(&mut self, spare: &mut [MaybeUninit<u8>]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: recv writes at most `spare.len()` bytes into memory borrowed
            // mutably for the call; a negative answer wrote nothing.
            let read = unsafe {
                libc::recv(
                    self.stream.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if read >= 0 {
                let read = read as usize;
                self.drained = read < spare.len();
                return Ok(Some(read));
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok(None);
                }
                io::ErrorKind::Interrupted => {}
                _ => return Err(error),
            }
        }
    }

    /// Reads exactly `count` bytes into a new vector; the end of the stream before
    /// that is an error.
    pub async fn read_exact_vec(&mut self, count: usize) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(count);
        while bytes.len() < count {
            let at = bytes.len();
            let read = self
                .read_uninit(&mut bytes.spare_capacity_mut()[..count - at])
                .await?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // SAFETY: `read_uninit` initialized `read` bytes past the length.
            unsafe { bytes.set_len(at + read) };
        }
        Ok(bytes)
    }
}

// SAFETY: every answer counts only bytes `recv` wrote into `spare` or the one byte
// written into `spare[0]` below, and never more than `spare.len()`.
unsafe impl FrameSource for SocketSource<'_> {
    async fn read_uninit(&mut self, spare: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        if spare.is_empty() {
            return Ok(0);
        }
        if !self.drained
            && let Some(read) = self.try_recv(spare)?
        {
            return Ok(read);
        }
        // Wait through glommio. No await follows the byte it hands over, so a future
        // dropped while waiting has consumed nothing.
        let mut first = [0u8; 1];
        if self.stream.read(&mut first).await? == 0 {
            return Ok(0);
        }
        spare[0].write(first[0]);
        let rest = self.try_recv(&mut spare[1..])?.unwrap_or(0);
        Ok(1 + rest)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use glommio::net::TcpListener;
    use weir_net::{FrameError, FrameReader};

    use super::*;

    fn run(test: impl std::future::Future<Output = ()>) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .make()
            .expect("a glommio executor")
            .run(test);
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// A peer that writes `stream` in pieces, pausing so the reader finds the socket
    /// empty and has to wait, then closes.
    fn trickle(address: std::net::SocketAddr, stream: Vec<u8>, pieces: &[usize]) {
        let mut peer = std::net::TcpStream::connect(address).expect("connect");
        let mut rest = &stream[..];
        for &piece in pieces {
            let piece = piece.min(rest.len());
            peer.write_all(&rest[..piece]).expect("write");
            rest = &rest[piece..];
            std::thread::sleep(Duration::from_millis(5));
        }
        peer.write_all(rest).expect("write");
    }

    #[test]
    fn frames_arrive_whole_across_waits_and_short_reads_and_a_cut_stream_is_reported() {
        let bodies: Vec<Vec<u8>> = [300_000usize, 0, 5, 70_000, 1, 2_000_000]
            .iter()
            .enumerate()
            .map(|(index, &length)| (0..length).map(|at| (at * 7 + index) as u8).collect())
            .collect();
        let mut stream: Vec<u8> = bodies.iter().flat_map(|body| framed(body)).collect();
        // Then a frame that never ends.
        stream.extend_from_slice(&framed(b"0123456789")[..9]);
        let pieces = [1, 2, 1, 70_000, 3, 300_000, 64, 100_000];
        run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("address");
            let writer = std::thread::spawn(move || trickle(address, stream, &pieces));
            let mut socket = listener.accept().await.expect("accept");
            let mut reader = FrameReader::new(4 << 20);
            for body in &bodies {
                let frame = reader
                    .next_frame(&mut SocketSource::new(&mut socket))
                    .await
                    .expect("a frame")
                    .expect("not the end");
                assert_eq!(frame.len(), body.len());
                assert!(frame[..] == body[..], "frame of {} bytes", body.len());
            }
            let error = reader
                .next_frame(&mut SocketSource::new(&mut socket))
                .await
                .expect_err("cut frame");
            assert!(
                matches!(error, FrameError::Truncated { have: 9, .. }),
                "{error}"
            );
            writer.join().expect("writer");
        });
    }

    #[test]
    fn read_exact_vec_reads_exactly_and_fails_at_an_early_end() {
        run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("address");
            let bytes: Vec<u8> = (0..200_000).map(|at| (at % 251) as u8).collect();
            let sent = bytes.clone();
            let writer = std::thread::spawn(move || trickle(address, sent, &[1, 1000, 50_000]));
            let mut socket = listener.accept().await.expect("accept");
            let mut source = SocketSource::new(&mut socket);
            assert_eq!(
                source.read_exact_vec(150_000).await.expect("read"),
                bytes[..150_000]
            );
            let error = source.read_exact_vec(50_001).await.expect_err("early end");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            writer.join().expect("writer");
        });
    }
}
