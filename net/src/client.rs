//! A small blocking Kafka client for weir's operator tools (`weir topics`, `weir consume`,
//! ...). It speaks the plain Kafka protocol, so the tools work against any Kafka cluster.
//!
//! ```text
//!  KafkaClient ── bootstrap ──► Connection (ApiVersions negotiated once per connection)
//!      │ metadata(): brokers by node id, partition leaders
//!      ├─ broker(node id)      ─► Connection to that broker (opened on first use, kept)
//!      └─ coordinator(group)   ─► FindCoordinator, then broker(node id)
//!  Connection::call(request) ─► highest version both sides know ─► response (typed)
//! ```
//!
//! One request in flight per connection; responses are matched by correlation id.
//! Responses are bounded by [`RESPONSE_BYTES_MAX`]. Not for the data path of a
//! broker: it blocks the calling thread. Metadata and FindCoordinator reopen a broken
//! bootstrap connection once (a restarted broker); callers drop a broken broker
//! connection with `disconnect(node id)` so that `broker()` reopens it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    metadata_request::MetadataRequestTopic, metadata_response::MetadataResponseTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response accepted (a fetch of many partitions stays far below).
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;
/// Default time to connect and to wait for one response.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// What went wrong talking to a broker; `Display` says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to {address}: {source} (is a broker running there? check --bootstrap-server)"
    )]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {address} failed: {source}")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} sent a response that does not decode ({what}): {reason}")]
    Protocol {
        address: String,
        what: String,
        reason: String,
    },
    #[error("the broker at {address} does not support {api:?} in any version this tool speaks")]
    Unsupported { address: String, api: ApiKey },
    #[error("{context}: {}{}", error_name(*code), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker {
        context: String,
        code: i16,
        message: Option<String>,
    },
}

/// The entry for topic `name` in a Metadata response, if the broker listed it.
pub fn metadata_topic<'a>(
    response: &'a MetadataResponse,
    name: &str,
) -> Option<&'a MetadataResponseTopic> {
    response.topics.iter().find(|topic| {
        topic
            .name
            .as_ref()
            .is_some_and(|topic| topic.0.as_str() == name)
    })
}

/// Kafka's name for an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the number.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code).filter(|error| error.code() == code && code > 0) {
        Some(error) if !format!("{error:?}").contains('(') => {
            let camel = format!("{error:?}");
            let mut name = String::with_capacity(camel.len() + 8);
            for (index, character) in camel.chars().enumerate() {
                if character.is_uppercase() && index > 0 {
                    name.push('_');
                }
                name.push(character.to_ascii_uppercase());
            }
            name
        }
        _ => format!("error code {code}"),
    }
}

impl ClientError {
    /// A Kafka error code returned by the broker, if that is what this is.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection itself failed (refused, broken, out of step), so that
    /// reconnecting and trying again may help.
    pub fn is_connection_problem(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Io { .. } | ClientError::Protocol { .. }
        )
    }

    /// Turns a non-zero error code into an error.
    pub fn check(
        code: i16,
        message: Option<&StrBytes>,
        context: impl Into<String>,
    ) -> Result<(), ClientError> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Broker {
            context: context.into(),
            code,
            message: message.map(|message| message.to_string()),
        })
    }
}

/// One connection to one broker.
pub struct Connection {
    address: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    /// api key → (min, max) the broker supports.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and negotiates versions with ApiVersions (v3, falling back to v0 as
    /// KIP-511 describes).
    pub fn connect(
        address: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let connect_error = |source| ClientError::Connect {
            address: address.to_string(),
            source,
        };
        let resolved = address
            .to_socket_addrs()
            .map_err(connect_error)?
            .next()
            .ok_or_else(|| {
                connect_error(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no address",
                ))
            })?;
        let stream = TcpStream::connect_timeout(&resolved, timeout).map_err(connect_error)?;
        let io = |source| ClientError::Io {
            address: address.to_string(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut connection = Connection {
            address: address.to_string(),
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-tools"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = connection.call_at(3, &request)?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            response = connection.call_at(0, &ApiVersionsRequest::default())?;
        }
        ClientError::check(
            response.error_code,
            None,
            format!("ApiVersions to {address}"),
        )?;
        connection.versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `R` both this client and the broker handle.
    pub fn version_of<R: Request>(&self) -> Result<i16, ClientError> {
        let key = ApiKey::try_from(R::KEY).expect("kafka-protocol requests have known keys");
        let unsupported = || ClientError::Unsupported {
            address: self.address.clone(),
            api: key,
        };
        let &(broker_min, broker_max) = self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let version = broker_max.min(R::VERSIONS.max);
        if version < broker_min.max(R::VERSIONS.min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` at the highest common version and returns (version, response).
    pub fn call<R: Request>(&mut self, request: &R) -> Result<(i16, R::Response), ClientError> {
        let version = self.version_of::<R>()?;
        Ok((version, self.call_at(version, request)?))
    }

    /// Changes how long this connection waits to send a request or for its response
    /// (a JoinGroup may legitimately wait for a whole rebalance).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let io = |source| ClientError::Io {
            address: self.address.clone(),
            source,
        };
        self.stream.set_read_timeout(Some(timeout)).map_err(io)?;
        self.stream.set_write_timeout(Some(timeout)).map_err(io)
    }

    /// Sends `request` at `version` without waiting for a response: for requests the
    /// broker never answers (Produce with acks=0).
    pub fn send_at<R: Request>(&mut self, version: i16, request: &R) -> Result<(), ClientError> {
        self.write_request(version, request).map(|_| ())
    }

    /// Encodes and writes one request; returns its correlation id.
    fn write_request<R: Request>(&mut self, version: i16, request: &R) -> Result<i32, ClientError> {
        let key = ApiKey::try_from(R::KEY).expect("kafka-protocol requests have known keys");
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let protocol = |what: &str, reason: String| ClientError::Protocol {
            address: self.address.clone(),
            what: format!("{key:?} v{version} {what}"),
            reason,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0); // size, filled in below
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|error| protocol("request header", error.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|error| protocol("request", error.to_string()))?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .map_err(|source| ClientError::Io {
                address: self.address.clone(),
                source,
            })?;
        Ok(correlation_id)
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn call_at<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let key = ApiKey::try_from(R::KEY).expect("kafka-protocol requests have known keys");
        let correlation_id = self.write_request(version, request)?;
        let protocol = |what: &str, reason: String| ClientError::Protocol {
            address: self.address.clone(),
            what: format!("{key:?} v{version} {what}"),
            reason,
        };
        let io = |source| ClientError::Io {
            address: self.address.clone(),
            source,
        };

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            return Err(protocol("response", format!("frame size {size}")));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).map_err(io)?;
        let mut body = Bytes::from(body);
        let response_header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version))
                .map_err(|error| protocol("response header", error.to_string()))?;
        if response_header.correlation_id != correlation_id {
            return Err(protocol(
                "response header",
                format!(
                    "correlation id {} answers request {correlation_id}",
                    response_header.correlation_id
                ),
            ));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|error| protocol("response", error.to_string()))?;
        if body.has_remaining() {
            return Err(protocol(
                "response",
                format!("{} trailing bytes", body.remaining()),
            ));
        }
        Ok(response)
    }
}

/// A broker as metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A client of one cluster: connections by node id, opened on demand.
pub struct KafkaClient {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    bootstrap_connection: Option<Connection>,
    brokers: HashMap<i32, BrokerAddress>,
    connections: HashMap<i32, Connection>,
}

impl KafkaClient {
    /// `bootstrap` is Kafka's `host:port[,host:port...]`. Connects to the first that answers.
    pub fn connect(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<KafkaClient, ClientError> {
        let mut client = KafkaClient {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(str::to_string)
                .collect(),
            client_id: client_id.to_string(),
            timeout,
            bootstrap_connection: None,
            brokers: HashMap::new(),
            connections: HashMap::new(),
        };
        let mut last_error = None;
        for address in client.bootstrap.clone() {
            match Connection::connect(&address, client_id, timeout) {
                Ok(connection) => {
                    client.bootstrap_connection = Some(connection);
                    return Ok(client);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Connect {
            address: bootstrap.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no bootstrap server given",
            ),
        }))
    }

    /// Replaces the bootstrap connection by a new one to the first bootstrap address that
    /// answers (after the old one failed).
    pub fn reconnect(&mut self) -> Result<(), ClientError> {
        let mut last_error = None;
        for address in &self.bootstrap {
            match Connection::connect(address, &self.client_id, self.timeout) {
                Ok(connection) => {
                    self.bootstrap_connection = Some(connection);
                    return Ok(());
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("connect() accepted at least one bootstrap address"))
    }

    /// Runs `call` on the bootstrap connection; if that connection broke (the broker
    /// restarted), reconnects once and runs it again.
    fn call_any<T>(
        &mut self,
        call: impl Fn(&mut Connection) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        match call(self.any()) {
            Err(ClientError::Io { .. } | ClientError::Protocol { .. }) => {
                self.reconnect()?;
                call(self.any())
            }
            outcome => outcome,
        }
    }

    /// The connection used for cluster-wide requests (metadata, admin).
    pub fn any(&mut self) -> &mut Connection {
        self.bootstrap_connection
            .as_mut()
            .expect("connect() leaves a bootstrap connection")
    }

    /// Metadata for `topics` (None: all topics); remembers the brokers it lists.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default().with_name(Some(
                            kafka_protocol::messages::TopicName(StrBytes::from_string(
                                name.clone(),
                            )),
                        ))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        self.metadata_request(&request)
    }

    /// Sends a Metadata request built by the caller (e.g. one that allows auto topic
    /// creation, as producers send it); remembers the brokers it lists.
    pub fn metadata_request(
        &mut self,
        request: &MetadataRequest,
    ) -> Result<MetadataResponse, ClientError> {
        let (_, response) = self.call_any(|connection| connection.call(request))?;
        for broker in &response.brokers {
            self.brokers.insert(
                broker.node_id.0,
                BrokerAddress {
                    node_id: broker.node_id.0,
                    host: broker.host.to_string(),
                    port: broker.port,
                },
            );
        }
        Ok(response)
    }

    /// Closes the connection to broker `node_id` (after an I/O error, so that the next
    /// `broker()` reconnects).
    pub fn disconnect(&mut self, node_id: i32) {
        self.connections.remove(&node_id);
    }

    /// The connection to broker `node_id` (metadata must have listed it).
    pub fn broker(&mut self, node_id: i32) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(&node_id) {
            if !self.brokers.contains_key(&node_id) {
                self.metadata(Some(&[]))?;
            }
            let broker = self
                .brokers
                .get(&node_id)
                .ok_or_else(|| ClientError::Broker {
                    context: format!("broker {node_id}"),
                    code: ResponseError::BrokerNotAvailable.code(),
                    message: Some("not in the cluster metadata".to_string()),
                })?;
            let address = format!("{}:{}", broker.host, broker.port);
            let connection = Connection::connect(&address, &self.client_id, self.timeout)?;
            self.connections.insert(node_id, connection);
        }
        Ok(self.connections.get_mut(&node_id).expect("inserted above"))
    }

    /// The connection to the coordinator of consumer group `group`.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Connection, ClientError> {
        let node_id = self.find_coordinator(group)?.node_id;
        self.broker(node_id)
    }

    /// Asks FindCoordinator which broker coordinates consumer group `group` (tools print
    /// it, as `kafka-consumer-groups.sh --describe --state` does); remembers its address
    /// for `broker()`, dropping a cached connection if the address changed.
    pub fn find_coordinator(&mut self, group: &str) -> Result<BrokerAddress, ClientError> {
        let key = StrBytes::from_string(group.to_string());
        let (version, response) = self.call_any(|connection| {
            let version = connection.version_of::<FindCoordinatorRequest>()?;
            let request = if version >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![key.clone()])
            } else {
                FindCoordinatorRequest::default().with_key(key.clone())
            };
            let response: FindCoordinatorResponse = connection.call_at(version, &request)?;
            Ok((version, response))
        })?;
        let connection = self.any();
        let context = format!("FindCoordinator for group '{group}'");
        let (node_id, host, port) = if version >= 4 {
            let coordinator =
                response
                    .coordinators
                    .first()
                    .ok_or_else(|| ClientError::Protocol {
                        address: connection.address().to_string(),
                        what: "FindCoordinator response".to_string(),
                        reason: "no coordinator listed".to_string(),
                    })?;
            ClientError::check(
                coordinator.error_code,
                coordinator.error_message.as_ref(),
                context,
            )?;
            (
                coordinator.node_id.0,
                coordinator.host.to_string(),
                coordinator.port,
            )
        } else {
            ClientError::check(
                response.error_code,
                response.error_message.as_ref(),
                context,
            )?;
            (response.node_id.0, response.host.to_string(), response.port)
        };
        let address = BrokerAddress {
            node_id,
            host,
            port,
        };
        if self.brokers.get(&node_id) != Some(&address) {
            self.connections.remove(&node_id);
            self.brokers.insert(node_id, address.clone());
        }
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_read_as_kafkas_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-2), "error code -2");
        let error = ClientError::check(
            3,
            Some(&StrBytes::from_static_str("no such topic")),
            "describe t",
        )
        .expect_err("non-zero code");
        assert_eq!(
            error.to_string(),
            "describe t: UNKNOWN_TOPIC_OR_PARTITION (no such topic)"
        );
    }

    #[test]
    fn connecting_to_a_closed_port_says_what_to_check() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let error = KafkaClient::connect(&address, "test", Duration::from_secs(2))
            .err()
            .expect("nothing listens");
        let text = error.to_string();
        assert!(
            text.contains(&address) && text.contains("--bootstrap-server"),
            "{text}"
        );
    }
}
