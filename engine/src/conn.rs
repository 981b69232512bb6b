//! One client connection, on the shard that accepted it, or on the shard it moved to:
//! after [`MOVE_AFTER_REQUESTS`] Produce or Fetch requests in a row that name only
//! partitions of one other shard, a connection owing no answer continues there (see
//! `move_to`), so each of its requests stops crossing shards twice.
//!
//! Requests are read through a buffered frame reader (so pipelined requests arrive in
//! one syscall) and handled one at a time in arrival order; answers are written in that
//! order, as Kafka does. A produce (acks=1 or all) answers [`Response::Later`] once its
//! appends have their places in line (see `api/produce.rs`): the connection owes that
//! answer and meanwhile reads and handles the requests behind it (their records are
//! appended behind the earlier ones), so a producer's in-flight requests are written,
//! and wait for their replicas, together instead of one after another. At most
//! [`ANSWERS_OWED_MAX`] answers are owed before reading pauses. acks=0
//! produce requests get no answer. A broken frame, an unknown API key or an unsupported
//! version closes this connection only, with a log line.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use futures::future::{Either, LocalBoxFuture, select};
use futures::io::AsyncWriteExt;
use futures::stream::{FuturesOrdered, StreamExt};
use glommio::net::TcpStream;
use tracing::{debug, info};
use weir_net::{FrameError, FrameReader};

use crate::api::{self, PartitionShards, Response};
use crate::send_file;
use crate::shard::Shard;
use crate::socket_read::SocketSource;

/// Answers a connection may owe (requests read ahead of their answers) before it stops
/// reading; Kafka clients keep at most 5 requests in flight per connection by default.
pub const ANSWERS_OWED_MAX: usize = 32;

type Owed = LocalBoxFuture<'static, Result<Response, FrameError>>;

enum Event {
    Frame(Result<Option<bytes::Bytes>, FrameError>),
    Answer(Result<Response, FrameError>),
    Shutdown,
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    if let Err(error) = send_file::prepare_socket(&stream) {
        info!(shard = shard.id, %peer, %error, "closing connection: cannot make the socket non-blocking");
        return;
    }
    let reader = FrameReader::new(shard.config.socket_request_max_bytes);
    debug!(shard = shard.id, %peer, "connection opened");
    serve_from(shard, stream, peer, reader, 0).await;
}

/// Serves a connection from where `reader` stands; `moves`: how often it moved already.
async fn serve_from(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut reader: FrameReader,
    mut moves: u32,
) {
    let mut owed: FuturesOrdered<Owed> = FuturesOrdered::new();
    let mut streak = Streak::default();
    loop {
        if shard.is_shutting_down() {
            break;
        }
        if let Some(target) = streak.due()
            && owed.is_empty()
            && moves < MOVES_MAX
        {
            // Nothing is owed and everything read ahead is in `reader`: the
            // connection can continue on `target` (glommio reads with `recv` once
            // its poll says the socket is readable, so no read is in flight).
            // SAFETY: the stream owns this open descriptor while it is borrowed here.
            let descriptor = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
            match descriptor.try_clone_to_owned() {
                Ok(socket) => {
                    drop(stream);
                    move_to(&shard, target, socket, peer, reader, moves + 1).await;
                    return;
                }
                Err(error) => {
                    debug!(shard = shard.id, %peer, %error, "connection stays: cannot duplicate its socket");
                    moves = MOVES_MAX;
                }
            }
        }
        let event = {
            // The oldest owed answer first, then the next request (unless too many
            // answers are owed), or shutdown.
            let read_more = owed.len() < ANSWERS_OWED_MAX;
            let answer = async {
                match owed.next().await {
                    Some(answer) => Event::Answer(answer),
                    None => futures::future::pending().await,
                }
            };
            let next = async {
                if read_more {
                    Event::Frame(reader.next_frame(&mut SocketSource::new(&mut stream)).await)
                } else {
                    futures::future::pending().await
                }
            };
            let shutdown = async {
                shard.shutdown.listen().await;
                Event::Shutdown
            };
            futures::pin_mut!(answer, next, shutdown);
            match select(select(answer, next), shutdown).await {
                Either::Left((Either::Left((event, _)), _))
                | Either::Left((Either::Right((event, _)), _))
                | Either::Right((event, _)) => event,
            }
        };
        let response = match event {
            Event::Shutdown => break,
            Event::Answer(Ok(response)) => response,
            Event::Answer(Err(error)) => {
                info!(shard = shard.id, %peer, %error, "closing connection");
                break;
            }
            Event::Frame(Ok(None)) => {
                // The client closed its side: it still gets what it is owed.
                while let Some(answer) = owed.next().await {
                    let Ok(response) = answer else { break };
                    if write(&mut stream, &response).await.is_err() {
                        break;
                    }
                }
                break;
            }
            Event::Frame(Err(error)) => {
                info!(shard = shard.id, %peer, %error, "closing connection: bad request frame");
                break;
            }
            Event::Frame(Ok(Some(frame))) => {
                let mut named = PartitionShards::None;
                let handled = api::dispatch(&shard, frame, peer, &mut named).await;
                streak.note(shard.id, named);
                match handled {
                    Ok(Some(Response::Later(answer))) => {
                        owed.push_back(answer);
                        continue;
                    }
                    Ok(Some(response)) if !owed.is_empty() => {
                        owed.push_back(Box::pin(futures::future::ready(Ok(response))));
                        continue;
                    }
                    Ok(Some(response)) => response,
                    Ok(None) => continue,
                    Err(error) => {
                        info!(shard = shard.id, %peer, %error, "closing connection");
                        break;
                    }
                }
            }
        };
        if let Err(error) = write(&mut stream, &response).await {
            debug!(shard = shard.id, %peer, %error, "connection lost while answering");
            break;
        }
    }
    let _ = stream.close().await;
    debug!(shard = shard.id, %peer, "connection closed");
}

/// Consecutive Produce and Fetch requests naming partitions of one other shard only
/// after which a connection moves to that shard (requests naming none do not count).
pub const MOVE_AFTER_REQUESTS: u32 = 16;
/// Moves one connection makes at most, so one that alternates between shards settles.
const MOVES_MAX: u32 = 4;

/// The run of Produce/Fetch requests whose partitions all live on one other shard.
#[derive(Default)]
struct Streak {
    owner: usize,
    requests: u32,
}

impl Streak {
    fn note(&mut self, here: usize, named: PartitionShards) {
        match named {
            PartitionShards::None => {}
            PartitionShards::One(owner) if owner != here => {
                if self.requests > 0 && self.owner == owner {
                    self.requests += 1;
                } else {
                    *self = Streak { owner, requests: 1 };
                }
            }
            PartitionShards::One(_) | PartitionShards::Several => self.requests = 0,
        }
    }

    fn due(&self) -> Option<usize> {
        (self.requests >= MOVE_AFTER_REQUESTS).then_some(self.owner)
    }
}

/// Hands a connection to shard `target`, which serves it from then on: its socket (a
/// duplicate descriptor; the one glommio's stream held is closed) and what was read
/// ahead. A client that names only one partition (or only partitions of one shard)
/// then skips two cross-shard hops per request.
async fn move_to(
    shard: &Rc<Shard>,
    target: usize,
    socket: OwnedFd,
    peer: SocketAddr,
    reader: FrameReader,
    moves: u32,
) {
    let from = shard.id;
    let moved = shard
        .invoke_on(target, move |target| async move {
            // SAFETY: the descriptor is an open TCP socket whose ownership passes to
            // the stream.
            let stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
            let serving = serve_from(target.clone(), stream, peer, reader, moves);
            target
                .connections
                .spawn(serving)
                .map(|task| task.detach())
                .is_ok()
        })
        .await;
    if matches!(moved, Ok(true)) {
        debug!(from, to = target, %peer, "connection moved to the shard of its partitions");
    } else {
        debug!(from, to = target, %peer, "connection closed: the shard it moved to is stopping");
    }
}

async fn write(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    match response {
        Response::Frame(bytes) => stream.write_all(bytes).await,
        Response::Parts(parts) => send_file::write_parts(stream, parts).await,
        Response::Later(_) => {
            unreachable!("an owed answer is a frame or parts, not another promise")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: only an unbroken run of requests naming partitions of one other shard
    /// makes a connection due to move; requests naming none leave the run alone.
    #[test]
    fn a_streak_counts_requests_for_one_other_shard_in_a_row() {
        let here = 0;
        let mut streak = Streak::default();
        for _ in 0..MOVE_AFTER_REQUESTS - 1 {
            streak.note(here, PartitionShards::One(1));
            streak.note(here, PartitionShards::None);
        }
        assert_eq!(streak.due(), None);
        streak.note(here, PartitionShards::One(1));
        assert_eq!(streak.due(), Some(1));
        // Another shard, this shard, or several shards start over.
        for breaker in [
            PartitionShards::One(2),
            PartitionShards::One(here),
            PartitionShards::Several,
        ] {
            let mut streak = Streak::default();
            for _ in 0..MOVE_AFTER_REQUESTS - 1 {
                streak.note(here, PartitionShards::One(1));
            }
            streak.note(here, breaker);
            streak.note(here, PartitionShards::One(1));
            assert_eq!(streak.due(), None, "{breaker:?}");
        }
    }
}
