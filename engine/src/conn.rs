//! One client connection, on the shard that accepted it.
//!
//! Requests are read through a buffered frame reader (so pipelined requests arrive in
//! one syscall), handled one at a time in arrival order, and answered in that order,
//! as Kafka does; acks=0 produce requests get no answer. A broken frame, an unknown
//! API key or an unsupported version closes this connection only, with a log line.

use std::net::SocketAddr;
use std::rc::Rc;

use futures::future::{Either, select};
use futures::io::AsyncWriteExt;
use glommio::net::TcpStream;
use tracing::{debug, info};
use weir_net::FrameReader;

use crate::api::{self, Response};
use crate::send_file;
use crate::shard::Shard;

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    if let Err(error) = send_file::prepare_socket(&stream) {
        info!(shard = shard.id, %peer, %error, "closing connection: cannot make the socket non-blocking");
        return;
    }
    let mut reader = FrameReader::new(shard.config.socket_request_max_bytes);
    debug!(shard = shard.id, %peer, "connection opened");
    loop {
        if shard.is_shutting_down() {
            break;
        }
        let frame = {
            let next = reader.next_frame(&mut stream);
            let shutdown = shard.shutdown.listen();
            futures::pin_mut!(next, shutdown);
            match select(next, shutdown).await {
                Either::Left((frame, _)) => frame,
                Either::Right(_) => break,
            }
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                info!(shard = shard.id, %peer, %error, "closing connection: bad request frame");
                break;
            }
        };
        match api::dispatch(&shard, frame, peer).await {
            Ok(Some(response)) => {
                let written = match &response {
                    Response::Frame(bytes) => stream.write_all(bytes).await,
                    Response::Parts(parts) => send_file::write_parts(&mut stream, parts).await,
                };
                if let Err(error) = written {
                    debug!(shard = shard.id, %peer, %error, "connection lost while answering");
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => {
                info!(shard = shard.id, %peer, %error, "closing connection");
                break;
            }
        }
    }
    let _ = stream.close().await;
    debug!(shard = shard.id, %peer, "connection closed");
}
