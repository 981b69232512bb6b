//! A broker's own Kafka client for other brokers (replica fetches, requests forwarded
//! to the active controller): one glommio TCP connection, one request at a time,
//! kafka-protocol encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::socket_read::SocketSource;

/// Largest response a broker accepts from another.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// A connection to another broker's client listener.
pub struct BrokerConnection {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl BrokerConnection {
    pub async fn connect(address: &str, client_id: String) -> anyhow::Result<BrokerConnection> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| anyhow::anyhow!("cannot connect to {address}: {error}"))?;
        stream
            .set_nodelay(true)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(BrokerConnection {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// Sends `request` at `version` and reads its response.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).await?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            anyhow::bail!("response frame size {size}");
        }
        let body = SocketSource::new(&mut self.stream)
            .read_exact_vec(size as usize)
            .await?;
        let mut body = Bytes::from(body);
        let response_header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if response_header.correlation_id != self.correlation_id {
            anyhow::bail!(
                "correlation id {} answers request {}",
                response_header.correlation_id,
                self.correlation_id
            );
        }
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            anyhow::bail!("{} bytes after the response", body.remaining());
        }
        Ok(response)
    }
}
