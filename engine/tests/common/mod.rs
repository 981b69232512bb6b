//! Shared harness for engine integration tests: the real `weir` binary on a free port
//! with a temporary data dir, and a minimal raw Kafka protocol client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// How long a broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub data: tempfile::TempDir,
    overrides: Vec<String>,
    pub stderr_path: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Broker {
    pub fn start(overrides: &[&str]) -> Broker {
        let data = tempfile::tempdir().expect("temp dir");
        let stderr_path = data.path().join("broker.stderr");
        let mut broker = Broker {
            child: None,
            port: free_port(),
            data,
            overrides: overrides.iter().map(|item| item.to_string()).collect(),
            stderr_path,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let log_dir = self.data.path().join("logs");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .arg("broker")
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port));
        for item in &self.overrides {
            command.arg("--override").arg(item);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start weir");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("weir broker ready") {
                    let _ = sender.send(());
                }
            }
        });
        if receiver.recv_timeout(READY_TIMEOUT).is_err() {
            let _ = child.kill();
            panic!("broker did not become ready: {}", self.stderr());
        }
        self.child = Some(child);
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data.path().join("logs")
    }

    /// SIGTERM and wait: a clean shutdown must exit 0.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    assert!(
                        status.success(),
                        "clean shutdown exits 0, got {status}: {}",
                        self.stderr()
                    );
                    return;
                }
                assert!(Instant::now() < deadline, "broker did not stop within 20 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.launch();
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            eprintln!("--- broker stderr (last 40 lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill9();
    }
}

/// A blocking raw-protocol client.
pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends one request at `version` and decodes its response.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let key = ApiKey::try_from(R::KEY).expect("known key");
        let correlation_id = self.send(key, version, request);
        let mut body = self.receive().expect("a response");
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .expect("response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses come in request order"
        );
        let response = R::Response::decode(&mut body, version)
            .unwrap_or_else(|error| panic!("{key:?} v{version} response does not decode: {error}"));
        assert_eq!(
            body.remaining(),
            0,
            "{key:?} v{version}: trailing bytes in response"
        );
        response
    }

    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, request: &R) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("weir-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .expect("encode header");
        request
            .encode(&mut body, version)
            .unwrap_or_else(|error| panic!("encode {key:?} v{version} request: {error}"));
        self.send_raw_frame(&body);
        self.correlation_id
    }

    pub fn send_raw_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(body);
        self.stream.write_all(&frame).expect("send frame");
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn receive(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker closed this connection (read returns EOF).
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

/// Runs a command that is expected to exit by itself, killing it after `limit` so a
/// regression shows up as a failure rather than a hung test.
pub fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "command did not exit within {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The versions of `key` the broker advertises in ApiVersions.
pub fn advertised_versions(client: &mut Client, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let response = client.call(3, &ApiVersionsRequest::default());
    let api = response
        .api_keys
        .iter()
        .find(|api| api.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} advertised"));
    api.min_version..=api.max_version
}

/// Creates `topic` with `partitions` partitions (CreateTopics v5, replication factor 1)
/// and asserts that the broker created it.
pub fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    create_topic_with_configs(client, topic, partitions, &[]);
}

/// `create_topic` with topic configs (`("retention.ms", "1000")`).
pub fn create_topic_with_configs(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let created = client.call(
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(configs),
            ])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0, "create topic {topic}");
}
