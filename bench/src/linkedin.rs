//! `weir perf linkedin`: LinkedIn's 2014 "2 million writes per second" matrix, scaled
//! to this machine, against a `weir broker` this command starts (its own data dir and
//! port), printed beside LinkedIn's published numbers, with results.json and SVG plots.
//!
//! Every scenario records the broker's CPU-seconds (utime + stime of the broker
//! process from /proc, io_uring workers included) per GB of payload. Floors measured
//! in the same run put that in proportion: the CPU this machine spends on the same
//! bytes with plain syscalls in 1 MiB chunks — `write` into the page cache; `recv` from
//! a loopback socket and `write` (ingest: the least any broker that stores through the
//! page cache can spend); `sendfile` from the page cache to a loopback socket (fetch).
//! Replicated scenarios (2–4) run against a local 3-node cluster this command starts
//! (`weir local-cluster`, one shard per node) with a topic of replication factor 3;
//! they report the nodes' CPU-seconds per GB together and the ratio to scenario 1
//! measured in the same run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};
use weir_net::client::{Connection, KafkaClient};

use crate::perf::consume::{ConsumerPerfConfig, list_offsets, list_offsets_as, run_consumer};
use crate::perf::e2e::{E2eConfig, run_e2e};
use crate::perf::produce::{ProducerPerfConfig, random_payload, run_producer};
use crate::perf::props::Props;
use crate::perf::{PerfError, REQUEST_TIMEOUT};

mod broker_logs;
mod cores;
mod floors;
mod plots;
use broker_logs::{Waits, cluster_log, keep_cluster_logs};
use cores::{CoreSplit, allowed_cores, run_on};
use floors::{Floors, acks_all_ceiling};
use plots::{bar_chart, single_bars};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory for results.json, the SVG plots and the broker's data (removed after).
    #[arg(long, default_value = "bench/results/linkedin")]
    pub out: PathBuf,
    /// Records of 100 B per producer scenario (LinkedIn: 50,000,000).
    #[arg(long, default_value_t = 5_000_000)]
    pub records: u64,
    /// Records for the one-at-a-time end-to-end latency test.
    #[arg(long, default_value_t = 5_000)]
    pub latency_records: u64,
    /// The weir binary to start (default: this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Shards for the single broker of scenarios 1 and 5–10 (default: one per core but
    /// one, at least one; the load generators run on the cores left, see `cores`).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Before each producer scenario, write back and drop the page cache (needs root).
    /// On a VM that returns freed memory to its host, page-cache pages taken from memory
    /// idle for a while cost several times more CPU (bench/RESULTS.md, "Session 9"), so
    /// later scenarios would measure that more than the broker.
    #[arg(long)]
    pub drop_caches: bool,
}

/// LinkedIn's published numbers (shared/REFERENCE.md): records/s and MiB/s.
const LINKEDIN: &[(&str, &str, Option<f64>, Option<f64>)] = &[
    (
        "1",
        "1 producer thread, no replication",
        Some(821_557.0),
        Some(78.3),
    ),
    (
        "2",
        "1 producer, 3x async replication",
        Some(786_980.0),
        Some(75.1),
    ),
    (
        "3",
        "1 producer, 3x sync replication",
        Some(421_823.0),
        Some(40.2),
    ),
    (
        "4",
        "3 producers, 3x async replication",
        Some(2_024_032.0),
        Some(193.0),
    ),
    ("5", "throughput vs stored data", None, None),
    ("6", "1 consumer", Some(940_521.0), Some(89.7)),
    ("7", "3 consumers", Some(2_615_968.0), Some(249.5)),
    (
        "8",
        "1 producer + 1 consumer at once",
        Some(795_064.0),
        Some(75.8),
    ),
    ("9", "end-to-end latency (p50/p99/p99.9 ms)", None, None),
    ("10", "message size 10 B ... 100 KB", None, None),
];

struct Broker {
    child: Child,
    address: String,
    data: PathBuf,
}

impl Broker {
    /// Starts the broker with its data in `data` and its log in `log`.
    fn start(bin: &Path, data: &Path, log: &Path, split: &CoreSplit) -> Result<Broker, PerfError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|source| PerfError::Io {
                address: "127.0.0.1:0".into(),
                source,
            })?
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(bin);
        command
            .arg("broker")
            .args(["--override", &format!("log.dirs={}", data.display())])
            .args(["--override", &format!("listeners=PLAINTEXT://{address}")])
            .args(["--override", "log.segment.bytes=536870912"])
            .args(["--override", "num.partitions=6"])
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .args(["--shards", &split.broker.len().to_string()])
            .args([
                "--override",
                &format!("weir.shard.cores={}", split.shard_cores_setting()),
            ]);
        let mut child = command.spawn().map_err(|source| PerfError::Io {
            address: bin.display().to_string(),
            source,
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("weir broker ready") => break,
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    return Err(PerfError::Broker(
                        "the broker exited before it was ready".into(),
                    ));
                }
            }
        }
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Broker {
            child,
            address,
            data: data.to_path_buf(),
        })
    }

    /// utime + stime of the broker process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<String> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        process_cpu_seconds(&fields)
    }
}

/// A local 3-node cluster (`weir local-cluster`), stopped on drop.
struct Cluster {
    child: Child,
    bootstrap: String,
    /// Each node's client address.
    nodes: Vec<String>,
    dir: PathBuf,
    /// Where the nodes' logs go when the cluster stops (`keep_cluster_logs`).
    logs_to: PathBuf,
}

/// How far followers were behind when the producers finished, and how long they took
/// to catch up.
struct ReplicaLag {
    /// The largest (leader log end − follower log end) over the partitions, in records.
    records_at_end: i64,
    caught_up_ms: f64,
}

impl Cluster {
    /// Starts the cluster in `dir`; its nodes' logs are moved to `logs_to` when it stops.
    fn start(bin: &Path, dir: &Path, logs_to: &Path) -> Result<Cluster, PerfError> {
        let base = free_base_port()?;
        let mut child = Command::new(bin)
            .args([
                "local-cluster",
                "--nodes",
                "3",
                "--base-port",
                &base.to_string(),
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--override", "log.segment.bytes=536870912"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| PerfError::Io {
                address: bin.display().to_string(),
                source,
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let bootstrap = loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("weir local-cluster ready") => {
                    break line.rsplit(' ').next().unwrap_or_default().to_string();
                }
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    return Err(PerfError::Broker(
                        "the local cluster exited before it was ready".into(),
                    ));
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Cluster {
            child,
            bootstrap,
            nodes: (0..3)
                .map(|node| format!("127.0.0.1:{}", base + node))
                .collect(),
            dir: dir.to_path_buf(),
            logs_to: logs_to.to_path_buf(),
        })
    }

    /// Replica lag of `topic` (on every node): each replica's log end offset, asked as
    /// a debugging client (ListOffsets with replica_id -2), until all replicas of every
    /// partition agree (or 60 s pass).
    fn replica_lag(&self, topic: &str, partitions: i32) -> Result<ReplicaLag, PerfError> {
        let started = Instant::now();
        let ids: Vec<i32> = (0..partitions).collect();
        let mut connections = self
            .nodes
            .iter()
            .map(|address| Connection::connect(address, "weir-perf-replica-lag", REQUEST_TIMEOUT))
            .collect::<Result<Vec<_>, _>>()?;
        let mut records_at_end = None;
        loop {
            let mut ends: Vec<BTreeMap<i32, i64>> = Vec::with_capacity(connections.len());
            for connection in &mut connections {
                ends.push(list_offsets_as(connection, -2, topic, &ids, -1)?);
            }
            let lag = ids
                .iter()
                .map(|partition| {
                    let offsets = ends.iter().filter_map(|node| node.get(partition));
                    let (low, high) = offsets.fold((i64::MAX, i64::MIN), |(low, high), &end| {
                        (low.min(end), high.max(end))
                    });
                    high - low
                })
                .max()
                .unwrap_or(0);
            let first = *records_at_end.get_or_insert(lag);
            if lag == 0 || started.elapsed() > Duration::from_secs(60) {
                return Ok(ReplicaLag {
                    records_at_end: first,
                    caught_up_ms: started.elapsed().as_secs_f64() * 1000.0,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// utime + stime of the cluster's broker processes (the children of local-cluster).
    fn cpu_seconds(&self) -> f64 {
        let parent = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let fields: Vec<String> = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                // The parent pid is the second field after the command name.
                (fields.get(1)? == &parent).then(|| process_cpu_seconds(&fields))
            })
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: signalling the child we started; local-cluster stops its nodes.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        keep_cluster_logs(&self.dir, &self.logs_to, self.nodes.len());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new file at `path` for a child's stderr.
fn log_file(path: &Path) -> Result<std::fs::File, PerfError> {
    std::fs::File::create(path).map_err(|source| PerfError::Io {
        address: path.display().to_string(),
        source,
    })
}

/// User + system CPU of this process (the runner, whose threads are the clients), in
/// seconds, to the microsecond.
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// utime + stime from /proc/<pid>/stat's fields after the command name (14 and 15).
fn process_cpu_seconds(fields: &[String]) -> f64 {
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A port p with p..p+2 and p+100..p+102 free (local-cluster's layout).
fn free_base_port() -> Result<u16, PerfError> {
    for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| PerfError::Io {
            address: "127.0.0.1:0".into(),
            source,
        })?;
        let base = probe.local_addr().map(|a| a.port()).unwrap_or(0);
        drop(probe);
        if base == 0 || base > u16::MAX - 110 {
            continue;
        }
        let ports = [base, base + 1, base + 2, base + 100, base + 101, base + 102];
        let held: Vec<_> = ports
            .iter()
            .filter_map(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).ok())
            .collect();
        if held.len() == ports.len() {
            return Ok(base);
        }
    }
    Err(PerfError::Broker(
        "no free port range for the local cluster".into(),
    ))
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn create_topic(address: &str, topic: &str, partitions: i32) -> Result<(), PerfError> {
    create_replicated_topic(address, topic, partitions, 1)
}

fn create_replicated_topic(
    address: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<(), PerfError> {
    let mut client = KafkaClient::connect(address, "weir-perf-linkedin", REQUEST_TIMEOUT)?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor),
        ]);
    let (_, response) = client.any().call(&request)?;
    for created in &response.topics {
        if created.error_code != 0 {
            return Err(PerfError::Broker(format!(
                "CreateTopics {topic} failed: error {}",
                created.error_code
            )));
        }
    }
    Ok(())
}

/// Waits until every broker of `bootstrap` knows `topic` with a leader for each of its
/// `partitions` (CreateTopics answers once the controller applied it; the others follow
/// within a round trip, and this producer does not retry NOT_LEADER_OR_FOLLOWER).
fn wait_for_topic(bootstrap: &str, topic: &str, partitions: usize) -> Result<(), PerfError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for address in bootstrap.split(',') {
        let mut client = KafkaClient::connect(address, "weir-perf-linkedin", REQUEST_TIMEOUT)?;
        loop {
            let response = client.metadata(Some(&[topic.to_string()]))?;
            let ready = weir_net::client::metadata_topic(&response, topic).is_some_and(|found| {
                found.error_code == 0
                    && found.partitions.len() == partitions
                    && found.partitions.iter().all(|p| p.leader_id.0 >= 0)
            });
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(PerfError::Broker(format!(
                    "{address} does not know {topic} with {partitions} led partitions after 30 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn producer_props(address: &str, acks: &str) -> Props {
    let mut props = Props::default();
    props.set("bootstrap.servers", address);
    props.set("acks", acks);
    props.set("batch.size", "262144");
    props.set("linger.ms", "5");
    props
}

fn produce(
    address: &str,
    topic: &str,
    records: u64,
    size: usize,
    throughput: f64,
) -> Result<crate::perf::produce::ProducerPerfResult, PerfError> {
    produce_with_acks(address, topic, records, size, throughput, "1")
}

fn produce_with_acks(
    address: &str,
    topic: &str,
    records: u64,
    size: usize,
    throughput: f64,
    acks: &str,
) -> Result<crate::perf::produce::ProducerPerfResult, PerfError> {
    run_producer(
        &ProducerPerfConfig {
            topic: topic.to_string(),
            num_records: records,
            payloads: vec![random_payload(size)],
            throughput,
            props: producer_props(address, acks),
            stamp_send_time: None,
        },
        &mut std::io::sink(),
    )
}

fn consume(
    address: &str,
    topic: &str,
    records: u64,
    partitions: Option<Vec<i32>>,
) -> Result<crate::perf::consume::ConsumerPerfResult, PerfError> {
    let mut props = Props::default();
    props.set("bootstrap.servers", address);
    run_consumer(
        &ConsumerPerfConfig {
            topic: topic.to_string(),
            num_records: records,
            timeout: Duration::from_secs(10),
            from_latest: false,
            partitions,
            props,
            reporting_interval: None,
        },
        &mut std::io::sink(),
    )
}

/// CPU-seconds per GB (10^9 bytes) of payload.
fn per_gb(cpu_seconds: f64, bytes: u64) -> f64 {
    cpu_seconds / (bytes as f64 / 1e9).max(1e-12)
}

/// `sync`, then drops the page cache, when `enabled` (`--drop-caches`).
fn drop_page_cache(enabled: bool) -> Result<(), PerfError> {
    if !enabled {
        return Ok(());
    }
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let path = "/proc/sys/vm/drop_caches";
    std::fs::write(path, "1").map_err(|source| PerfError::Io {
        address: format!("{path} (--drop-caches needs root)"),
        source,
    })
}

struct Row {
    id: &'static str,
    test: String,
    linkedin: String,
    weir: String,
    ratio: String,
    cpu_per_gb: String,
}

/// Runs the matrix; prints the table and writes `results.json` and plots to `out`.
pub fn run(args: Args) -> Result<(), PerfError> {
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().map_err(|source| PerfError::Io {
            address: "current executable".into(),
            source,
        })?,
    };
    std::fs::create_dir_all(&args.out).map_err(|source| PerfError::Io {
        address: args.out.display().to_string(),
        source,
    })?;
    // First, so that a missing permission shows before anything starts.
    drop_page_cache(args.drop_caches)?;
    let data = args.out.join(format!("data-{}", std::process::id()));
    let split = CoreSplit::new(allowed_cores(), args.shards);
    println!(
        "broker: {} shard(s) on cores {:?}; load generators on cores {:?}",
        split.broker.len(),
        split.broker,
        split.clients
    );
    let broker_log = args.out.join("broker.log");
    let broker = Broker::start(&bin, &data, &broker_log, &split)?;
    let address = broker.address.clone();
    let records = args.records.max(6);
    let mut results = serde_json::Map::new();
    let mut rows = Vec::new();
    let linkedin = |id: &str| {
        LINKEDIN
            .iter()
            .find(|row| row.0 == id)
            .expect("known scenario")
    };
    let mut push = |id: &'static str, weir: String, ratio: String, cpu: String, json: Value| {
        let (_, test, records_per_s, mib) = linkedin(id);
        rows.push(Row {
            id,
            test: test.to_string(),
            linkedin: match (records_per_s, mib) {
                (Some(records), Some(mib)) => format!("{records:.0} rec/s ({mib} MiB/s)"),
                _ => match id {
                    "9" => "2 / 3 / 14".to_string(),
                    "5" => "flat to ~1 TB".to_string(),
                    _ => "MiB/s rises to the NIC limit".to_string(),
                },
            },
            weir,
            ratio,
            cpu_per_gb: cpu,
        });
        results.insert(format!("{id}: {test}"), json);
    };

    let floors = Floors::measure(&args.out, 512 << 20)?;
    eprintln!(
        "floors (CPU-s/GB): page-cache write {:.3}, socket to page cache {:.3}, page cache to socket {:.3}",
        floors.page_cache_write, floors.socket_to_page_cache, floors.page_cache_to_socket
    );
    run_on(&split.clients);

    // 1: one producer, no replication.
    create_topic(&address, "linkedin-1", 6)?;
    drop_page_cache(args.drop_caches)?;
    let cpu = broker.cpu_seconds();
    let client_cpu = own_cpu_seconds();
    let one = produce(&address, "linkedin-1", records, 100, -1.0)?;
    let client_cpu_gb = per_gb(own_cpu_seconds() - client_cpu, one.payload_bytes);
    let cpu = broker.cpu_seconds() - cpu;
    let cpu_gb = per_gb(cpu, one.payload_bytes);
    let cores = split.all.len() as f64;
    let ceiling = acks_all_ceiling(
        cores,
        one.payload_bytes as f64 / one.elapsed_s.max(1e-9) / 1e9,
        client_cpu_gb,
        cpu_gb,
        &floors,
    );
    eprintln!("1: {}", one.summary_line());
    push(
        "1",
        format!(
            "{:.0} rec/s ({:.1} MiB/s)",
            one.records_per_s, one.mib_per_s
        ),
        format!("{:.2}x", one.records_per_s / 821_557.0),
        format!(
            "{cpu_gb:.2} (floors: write {:.2}, socket + write {:.2}); producer {client_cpu_gb:.2}",
            floors.page_cache_write, floors.socket_to_page_cache
        ),
        json!({"result": one, "broker_cpu_s": cpu, "broker_cpu_s_per_gb": cpu_gb,
               "client_cpu_s_per_gb": client_cpu_gb,
               "page_cache_write_cpu_s_per_gb": floors.page_cache_write,
               "socket_to_page_cache_cpu_s_per_gb": floors.socket_to_page_cache,
               "producer_props": {"acks": "1", "batch.size": 262144, "linger.ms": 5}, "partitions": 6}),
    );
    // 6 and 7: consumers, from the start of the log of test 1 (right after it, while it
    // is in the page cache).
    let cpu = broker.cpu_seconds();
    let single = consume(&address, "linkedin-1", one.records, None)?;
    let cpu = broker.cpu_seconds() - cpu;
    let single_cpu_gb = per_gb(cpu, single.bytes);
    eprintln!("6: {}", single.values_line());
    let mut connection = Connection::connect(&address, "weir-perf-linkedin", REQUEST_TIMEOUT)?;
    let ends = list_offsets(&mut connection, "linkedin-1", &[0, 1, 2, 3, 4, 5], -1)?;
    let cpu_before = broker.cpu_seconds();
    let started = Instant::now();
    let threads: Vec<_> = [[0, 1], [2, 3], [4, 5]]
        .into_iter()
        .map(|pair| {
            let address = address.clone();
            let wanted: u64 = pair.iter().map(|partition| ends[partition] as u64).sum();
            std::thread::spawn(move || consume(&address, "linkedin-1", wanted, Some(pair.to_vec())))
        })
        .collect();
    let mut three = (0u64, 0u64);
    for thread in threads {
        let result = thread
            .join()
            .map_err(|_| PerfError::Broker("a consumer thread panicked".into()))??;
        three.0 += result.records;
        three.1 += result.bytes;
    }
    let three_seconds = started.elapsed().as_secs_f64();
    let three_cpu_gb = per_gb(broker.cpu_seconds() - cpu_before, three.1);

    // 2–4: replication factor 3 on a local 3-node cluster (one shard per node; on one
    // machine the nodes share its cores with the producers).
    run_on(&split.all);
    {
        let cluster = Cluster::start(
            &bin,
            &args.out.join(format!("cluster-{}", std::process::id())),
            &args.out,
        )?;
        let bootstrap = cluster.bootstrap.clone();
        let mut replicated = |id: &'static str, topic: &str, producers: u64, acks: &'static str| {
            create_replicated_topic(&bootstrap, topic, 6, 3)?;
            wait_for_topic(&bootstrap, topic, 6)?;
            drop_page_cache(args.drop_caches)?;
            let cpu = cluster.cpu_seconds();
            let started = Instant::now();
            let threads: Vec<_> = (0..producers)
                .map(|_| {
                    let (bootstrap, topic) = (bootstrap.clone(), topic.to_string());
                    std::thread::spawn(move || {
                        produce_with_acks(&bootstrap, &topic, records / producers, 100, -1.0, acks)
                    })
                })
                .collect();
            let (mut sent, mut bytes) = (0u64, 0u64);
            for thread in threads {
                let result = thread
                    .join()
                    .map_err(|_| PerfError::Broker("a producer thread panicked".into()))??;
                sent += result.records;
                bytes += result.payload_bytes;
            }
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            let cpu = cluster.cpu_seconds() - cpu;
            // Followers finish before the next scenario starts (its rate would
            // otherwise pay for this one's replication).
            let lag = cluster.replica_lag(topic, 6)?;
            let rate = sent as f64 / seconds;
            let mib = bytes as f64 / seconds / (1 << 20) as f64;
            let cpu_gb = per_gb(cpu, bytes);
            let (_, _, linkedin_rate, _) = linkedin(id);
            eprintln!(
                "{id}: {sent} records, {rate:.0} records/sec ({mib:.1} MiB/sec), acks={acks}, {producers} producer(s); replica lag at the end {} records, caught up after {:.1} ms",
                lag.records_at_end, lag.caught_up_ms
            );
            push(
                id,
                format!("{rate:.0} rec/s ({mib:.1} MiB/s)"),
                format!(
                    "{:.2}x; {:.0}% of 1",
                    rate / linkedin_rate.unwrap_or(1.0),
                    100.0 * rate / one.records_per_s.max(1.0)
                ),
                format!(
                    "{cpu_gb:.2} (3 nodes); replica lag {} records, caught up in {:.0} ms{}",
                    lag.records_at_end,
                    lag.caught_up_ms,
                    if acks == "all" {
                        format!(
                            "; at the floors, at most {:.0}% of 1 on {cores} cores",
                            100.0 * ceiling
                        )
                    } else {
                        String::new()
                    }
                ),
                json!({"records": sent, "records_per_s": rate, "mib_per_s": mib, "seconds": seconds,
                       "cluster_cpu_s": cpu, "cluster_cpu_s_per_gb": cpu_gb,
                       "ratio_to_no_replication": rate / one.records_per_s.max(1.0),
                       "replica_lag_records_at_end": lag.records_at_end,
                       "replica_caught_up_ms": lag.caught_up_ms,
                       "ratio_ceiling_at_the_floors": (acks == "all").then_some(ceiling),
                       "producers": producers, "replication_factor": 3, "partitions": 6,
                       "producer_props": {"acks": acks, "batch.size": 262144, "linger.ms": 5},
                       "nodes": 3, "shards_per_node": 1}),
            );
            Ok::<(), PerfError>(())
        };
        replicated("2", "linkedin-2", 1, "1")?;
        replicated("3", "linkedin-3", 1, "all")?;
        replicated("4", "linkedin-4", 3, "1")?;
    }
    run_on(&split.clients);

    // 5: throughput vs stored data, in five steps on a growing log.
    create_topic(&address, "linkedin-5", 6)?;
    drop_page_cache(args.drop_caches)?;
    let mut steps = Vec::new();
    for step in 0..5 {
        let result = produce(&address, "linkedin-5", records / 5, 100, -1.0)?;
        steps.push(json!({"stored_records_before": step * (records / 5), "records_per_s": result.records_per_s}));
    }
    let rates: Vec<f64> = steps
        .iter()
        .map(|step| step["records_per_s"].as_f64().unwrap_or(0.0))
        .collect();
    push(
        "5",
        rates
            .iter()
            .map(|rate| format!("{:.0}", rate / 1000.0))
            .collect::<Vec<_>>()
            .join(" / ")
            + " k rec/s",
        format!("last/first {:.2}", rates[4] / rates[0].max(1.0)),
        "-".into(),
        json!({"steps": steps}),
    );
    push(
        "6",
        format!(
            "{:.0} rec/s ({:.1} MiB/s)",
            single.records_per_s, single.mib_per_s
        ),
        format!("{:.2}x", single.records_per_s / 940_521.0),
        format!(
            "{single_cpu_gb:.2} (sendfile floor {:.2})",
            floors.page_cache_to_socket
        ),
        json!({"result": single, "broker_cpu_s_per_gb": single_cpu_gb,
               "page_cache_to_socket_cpu_s_per_gb": floors.page_cache_to_socket}),
    );
    let three_rate = three.0 as f64 / three_seconds;
    push(
        "7",
        format!(
            "{three_rate:.0} rec/s ({:.1} MiB/s)",
            three.1 as f64 / crate::perf::MIB / three_seconds
        ),
        format!("{:.2}x", three_rate / 2_615_968.0),
        format!(
            "{three_cpu_gb:.2} (sendfile floor {:.2})",
            floors.page_cache_to_socket
        ),
        json!({"records": three.0, "bytes": three.1, "elapsed_s": three_seconds, "broker_cpu_s_per_gb": three_cpu_gb,
               "page_cache_to_socket_cpu_s_per_gb": floors.page_cache_to_socket}),
    );

    // 8: a producer and a consumer at once.
    create_topic(&address, "linkedin-8", 6)?;
    drop_page_cache(args.drop_caches)?;
    let consumer = {
        let address = address.clone();
        std::thread::spawn(move || consume(&address, "linkedin-8", records, None))
    };
    let both = produce(&address, "linkedin-8", records, 100, -1.0)?;
    let consumed = consumer
        .join()
        .map_err(|_| PerfError::Broker("the consumer thread panicked".into()))??;
    push(
        "8",
        format!(
            "{:.0} rec/s produced, {} consumed",
            both.records_per_s, consumed.records
        ),
        format!("{:.2}x", both.records_per_s / 795_064.0),
        "-".into(),
        json!({"producer": both, "consumer": consumed}),
    );

    // 9: end-to-end latency, one at a time (LinkedIn's test) and under load: at half of
    // the peak of the same test, a producer flat out with a consumer reading beside it
    // (the peak of test 1, a producer alone, is more than a producer and a consumer
    // together reach here, so half of it was an overload on this machine; bench/RESULTS.md
    // "Session 13"). Under load with test 1's batch size and linger.ms=0: a batch leaves
    // as soon as an in-flight slot is free.
    let e2e = |label: &str, throughput: Option<f64>, count: u64| {
        let mut props = Props::default();
        props.set("bootstrap.servers", &address);
        let consumer_props = props.clone();
        if throughput.is_some() {
            props.set("batch.size", "262144");
            props.set("linger.ms", "0");
        }
        run_e2e(
            &E2eConfig {
                topic: format!("linkedin-9-{label}"),
                num_records: count,
                record_size: 100,
                producer_acks: "1".into(),
                throughput,
                producer_props: props,
                consumer_props,
            },
            &mut std::io::sink(),
        )
    };
    drop_page_cache(args.drop_caches)?;
    let alone = e2e("one-at-a-time", None, args.latency_records)?;
    let flat_out = e2e("flat-out", Some(-1.0), records)?;
    let half = flat_out.records_per_s / 2.0;
    let loaded = e2e("half-peak", Some(half), (half * 5.0) as u64)?;
    push(
        "9",
        format!(
            "{:.3} / {:.3} / {:.3} (flat out {:.0} rec/s; at half of it, {:.0} of {:.0} asked: {:.3} / {:.3} / {:.3})",
            alone.latency.p50_ms,
            alone.latency.p99_ms,
            alone.latency.p999_ms,
            flat_out.records_per_s,
            loaded.records_per_s,
            half,
            loaded.latency.p50_ms,
            loaded.latency.p99_ms,
            loaded.latency.p999_ms
        ),
        format!("p50 {:.0}x lower", 2.0 / alone.latency.p50_ms.max(1e-3)),
        "-".into(),
        json!({"one_at_a_time": alone, "flat_out": flat_out, "at_half_peak": loaded}),
    );

    // 10: message sizes, the same payload volume each.
    let volume = records * 100;
    let mut sizes = Vec::new();
    for size in [10usize, 100, 1000, 10_000, 100_000] {
        let topic = format!("linkedin-10-{size}");
        create_topic(&address, &topic, 6)?;
        drop_page_cache(args.drop_caches)?;
        let count = (volume / size as u64).clamp(1000, records * 2);
        let result = produce(&address, &topic, count, size, -1.0)?;
        sizes.push(json!({"record_bytes": size, "records_per_s": result.records_per_s, "mib_per_s": result.mib_per_s}));
    }
    push(
        "10",
        sizes
            .iter()
            .map(|size| {
                format!(
                    "{} B: {:.0} MiB/s",
                    size["record_bytes"],
                    size["mib_per_s"].as_f64().unwrap_or(0.0)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        "-".into(),
        "-".into(),
        json!({"sizes": sizes}),
    );
    drop(broker);

    rows.sort_by_key(|row| row.id.parse::<u32>().unwrap_or(0));
    println!(
        "| # | test | LinkedIn 2014 (3 brokers, 6 cores each, 1 GbE) | weir (this machine) | weir / LinkedIn | broker CPU-s per GB |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.id, row.test, row.linkedin, row.weir, row.ratio, row.cpu_per_gb
        );
    }
    // Whether a shard was held up anywhere in the run, to read latency spikes by.
    let logs: Vec<PathBuf> = std::iter::once(broker_log)
        .chain((0..3).map(|node| cluster_log(&args.out, node)))
        .filter(|log| log.exists())
        .collect();
    let waits = Waits::in_files(&logs);
    println!(
        "broker logs: {} slow segment appends (50 ms or more), {} shard stalls (2 s or more); in {}",
        waits.slow_appends,
        waits.shard_stalls,
        args.out.display()
    );
    let document = json!({
        "records_per_producer_scenario": records,
        "record_bytes": 100,
        "partitions": 6,
        "cores": split.all.len(),
        "broker_shards": split.broker.len(),
        "broker_cores": split.broker,
        "load_generator_cores": split.clients,
        "page_cache_dropped_before_each_producer_scenario": args.drop_caches,
        "scenarios": Value::Object(results),
        "broker_logs": waits.to_json(&logs),
    });
    let write = |name: &str, text: String| {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|source| PerfError::Io {
            address: path.display().to_string(),
            source,
        })
    };
    write(
        "results.json",
        serde_json::to_string_pretty(&document).expect("json"),
    )?;
    let bars = [
        ("1 producer", 821_557.0, one.records_per_s),
        ("1 consumer", 940_521.0, single.records_per_s),
        ("3 consumers", 2_615_968.0, three_rate),
        ("producer+consumer", 795_064.0, both.records_per_s),
    ];
    write(
        "throughput.svg",
        bar_chart("records/s: LinkedIn 2014 (grey) vs weir (blue)", &bars),
    )?;
    let size_bars: Vec<(String, f64)> = sizes
        .iter()
        .map(|size| {
            (
                format!("{} B", size["record_bytes"]),
                size["mib_per_s"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    write(
        "message-size.svg",
        single_bars("MiB/s by record size", &size_bars),
    )?;
    let step_bars: Vec<(String, f64)> = rates
        .iter()
        .enumerate()
        .map(|(step, rate)| {
            (
                format!("{} M stored", step as u64 * (records / 5) / 1_000_000),
                *rate,
            )
        })
        .collect();
    write(
        "stored-data.svg",
        single_bars("records/s as stored data grows", &step_bars),
    )?;
    eprintln!("wrote {}/results.json and 3 SVG plots", args.out.display());
    Ok(())
}
