//! One client connection, on the shard that accepted it.
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
use std::rc::Rc;

use futures::future::{Either, LocalBoxFuture, select};
use futures::io::AsyncWriteExt;
use futures::stream::{FuturesOrdered, StreamExt};
use glommio::net::TcpStream;
use tracing::{debug, info};
use weir_net::{FrameError, FrameReader};

use crate::api::{self, Response};
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

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    if let Err(error) = send_file::prepare_socket(&stream) {
        info!(shard = shard.id, %peer, %error, "closing connection: cannot make the socket non-blocking");
        return;
    }
    let mut reader = FrameReader::new(shard.config.socket_request_max_bytes);
    let mut owed: FuturesOrdered<Owed> = FuturesOrdered::new();
    debug!(shard = shard.id, %peer, "connection opened");
    loop {
        if shard.is_shutting_down() {
            break;
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
            Event::Frame(Ok(Some(frame))) => match api::dispatch(&shard, frame, peer).await {
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
            },
        };
        if let Err(error) = write(&mut stream, &response).await {
            debug!(shard = shard.id, %peer, %error, "connection lost while answering");
            break;
        }
    }
    let _ = stream.close().await;
    debug!(shard = shard.id, %peer, "connection closed");
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
