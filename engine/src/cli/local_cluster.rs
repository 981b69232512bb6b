//! `weir local-cluster`: a replicated cluster of N brokers on this machine, one command.
//!
//! Each node is this same binary run as `weir broker` with its own node id, client and
//! controller ports and data directory under `--dir`; together they form one combined-
//! mode cluster (every node a broker and a controller quorum voter). Ctrl-C (or SIGTERM)
//! stops every node with a clean, controlled shutdown; a node that dies is reported
//! and the others keep running. Running it again with the same `--dir` restarts the
//! same cluster with its data.
//!
//! ```text
//!  weir local-cluster --nodes 3 --base-port 9092
//!    node 0: clients 127.0.0.1:9092  controller 127.0.0.1:9192  data <dir>/node0  log <dir>/node0.log
//!    node 1: clients 127.0.0.1:9093  controller 127.0.0.1:9193  ...
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Offset from a node's client port to its controller port.
const CONTROLLER_PORT_OFFSET: u16 = 100;
/// How long start-up may take before the command gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of brokers (each also a controller quorum voter).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Client port of node 0; node i listens on base-port + i, its controller on
    /// base-port + 100 + i.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Where the nodes keep their data and logs.
    #[arg(long, default_value = "weir-cluster")]
    pub dir: PathBuf,
    /// Shards per broker (default: 1, since the nodes share this machine's cores).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Extra broker config for every node, as `weir broker --override` (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Cores for node `id`'s shards: cores of its own while every shard of every node gets
/// one, else `none` (unpinned: the kernel spreads the nodes, rather than every node
/// pinning its shard 0 to the first core).
fn shard_cores(id: u16, nodes: u16, shards: usize, usable: &[usize]) -> String {
    let shards = shards.max(1);
    if usable.is_empty() || nodes as usize * shards > usable.len() {
        return "none".to_string();
    }
    let first = id as usize * shards;
    usable[first..first + shards]
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

struct Node {
    id: u16,
    child: Child,
    log: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    if args.nodes == 0 {
        eprintln!("weir local-cluster: --nodes must be at least 1");
        return ExitCode::from(2);
    }
    let Some(last_port) = args
        .base_port
        .checked_add(CONTROLLER_PORT_OFFSET + args.nodes - 1)
    else {
        eprintln!(
            "weir local-cluster: --base-port is too high for {} nodes",
            args.nodes
        );
        return ExitCode::from(2);
    };
    let _ = last_port;
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(error) => {
            eprintln!("weir local-cluster: cannot find the weir binary: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(&args.dir) {
        eprintln!(
            "weir local-cluster: cannot create {}: {error}",
            args.dir.display()
        );
        return ExitCode::FAILURE;
    }
    let usable = weir_tuning::usable_cores().unwrap_or_default();
    let client_port = |id: u16| args.base_port + id;
    let controller_port = |id: u16| args.base_port + CONTROLLER_PORT_OFFSET + id;
    let voters: Vec<String> = (0..args.nodes)
        .map(|id| format!("{id}@127.0.0.1:{}", controller_port(id)))
        .collect();
    let voters = voters.join(",");
    super::stop_signal::install();
    let mut nodes = Vec::new();
    for id in 0..args.nodes {
        let data = args.dir.join(format!("node{id}"));
        let log = args.dir.join(format!("node{id}.log"));
        let output = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            Ok(file) => file,
            Err(error) => {
                eprintln!("weir local-cluster: cannot open {}: {error}", log.display());
                stop_all(&mut nodes);
                return ExitCode::FAILURE;
            }
        };
        let errors = match output.try_clone() {
            Ok(file) => file,
            Err(error) => {
                eprintln!("weir local-cluster: {error}");
                stop_all(&mut nodes);
                return ExitCode::FAILURE;
            }
        };
        let mut command = Command::new(&binary);
        command
            .arg("broker")
            .arg("--shards")
            .arg(args.shards.to_string())
            .arg("--override")
            .arg(format!("node.id={id}"))
            .arg("--override")
            .arg(format!("log.dirs={}", data.display()))
            .arg("--override")
            .arg(format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                client_port(id),
                controller_port(id)
            ))
            .arg("--override")
            .arg(format!("controller.quorum.voters={voters}"))
            .arg("--override")
            .arg(format!(
                "weir.shard.cores={}",
                shard_cores(id, args.nodes, args.shards, &usable)
            ));
        for extra in &args.overrides {
            command.arg("--override").arg(extra);
        }
        match command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
        {
            Ok(child) => nodes.push(Node { id, child, log }),
            Err(error) => {
                eprintln!("weir local-cluster: cannot start node {id}: {error}");
                stop_all(&mut nodes);
                return ExitCode::FAILURE;
            }
        }
    }
    // Ready when every node printed its ready line.
    let started = Instant::now();
    let mut ready = vec![false; nodes.len()];
    while !ready.iter().all(|r| *r) {
        for (index, node) in nodes.iter_mut().enumerate() {
            if let Ok(Some(status)) = node.child.try_wait() {
                eprintln!(
                    "weir local-cluster: node {} exited during start-up ({status}); see {}",
                    node.id,
                    node.log.display()
                );
                stop_all(&mut nodes);
                return ExitCode::FAILURE;
            }
            ready[index] = std::fs::read_to_string(&node.log)
                .is_ok_and(|text| text.contains(&format!("node {}, started", node.id)));
        }
        if started.elapsed() > READY_TIMEOUT || super::stop_signal::requested() {
            eprintln!("weir local-cluster: the cluster did not become ready; see the node logs");
            stop_all(&mut nodes);
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bootstrap: Vec<String> = (0..args.nodes)
        .map(|id| format!("127.0.0.1:{}", client_port(id)))
        .collect();
    println!(
        "weir local-cluster ready: {} nodes, bootstrap servers {}",
        args.nodes,
        bootstrap.join(",")
    );
    for node in &nodes {
        println!(
            "  node {}: clients 127.0.0.1:{}  controller 127.0.0.1:{}  data {}  log {}",
            node.id,
            client_port(node.id),
            controller_port(node.id),
            args.dir.join(format!("node{}", node.id)).display(),
            node.log.display()
        );
    }
    println!("Ctrl-C stops every node.");
    let mut reported = vec![false; nodes.len()];
    while !super::stop_signal::requested() {
        for (index, node) in nodes.iter_mut().enumerate() {
            if !reported[index]
                && let Ok(Some(status)) = node.child.try_wait()
            {
                eprintln!(
                    "weir local-cluster: node {} exited ({status}); see {}",
                    node.id,
                    node.log.display()
                );
                reported[index] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop_all(&mut nodes);
    ExitCode::SUCCESS
}

/// SIGTERM to every node (a clean, controlled shutdown), then waits for all of them.
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        // SAFETY: signalling a child process we started and have not yet reaped.
        unsafe {
            libc::kill(node.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for node in nodes.iter_mut() {
        let _ = node.child.wait();
    }
    println!("weir local-cluster stopped");
}

#[cfg(test)]
mod tests {
    use super::shard_cores;

    #[test]
    fn nodes_get_cores_of_their_own_or_none_are_pinned() {
        let usable = [0, 1, 2, 3, 4, 5];
        assert_eq!(shard_cores(0, 3, 1, &usable), "0");
        assert_eq!(shard_cores(2, 3, 2, &usable), "4,5");
        // More shards than cores: the kernel places them.
        assert_eq!(shard_cores(0, 3, 1, &[0, 1]), "none");
        assert_eq!(shard_cores(1, 3, 3, &usable), "none");
    }
}
