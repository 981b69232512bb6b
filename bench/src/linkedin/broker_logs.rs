//! What the brokers of a run logged about waiting: the runner keeps each broker's log
//! beside results.json and counts the lines that say a shard was held up, so a latency
//! spike in the results can be matched with its cause.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A segment append that held its shard in the file system (storage's `SLOW_APPEND`).
const SLOW_APPEND: &str = "slow segment append";
/// The field of a slow-append line counting the slow appends it stands for besides
/// itself (the broker logs at most one a second).
const UNLOGGED: &str = "unlogged_since_last=";
/// The shard watchdog's report of a shard silent for 2 s or more.
const STALL: &str = "shard stalled";

/// Slow appends and shard stalls found in some broker logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Waits {
    /// At least this many: a shard's slow appends in the second after its last line
    /// are in no line.
    pub slow_appends: u64,
    pub shard_stalls: u64,
}

impl Waits {
    /// Counts them in `logs` (files that do not exist count nothing).
    pub fn in_files(logs: &[PathBuf]) -> Waits {
        let mut waits = Waits::default();
        for log in logs {
            if let Ok(text) = std::fs::read_to_string(log) {
                waits.add_text(&text);
            }
        }
        waits
    }

    fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            if line.contains(SLOW_APPEND) {
                let unlogged = line
                    .split_once(UNLOGGED)
                    .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0);
                self.slow_appends += 1 + unlogged;
            } else if line.contains(STALL) {
                self.shard_stalls += 1;
            }
        }
    }

    pub fn to_json(&self, logs: &[PathBuf]) -> Value {
        json!({
            "slow_segment_appends": self.slow_appends,
            "shard_stalls": self.shard_stalls,
            "logs": logs.iter().map(|log| log.display().to_string()).collect::<Vec<_>>(),
        })
    }
}

/// Where `keep_cluster_logs` keeps node `node`'s log.
pub fn cluster_log(out: &Path, node: usize) -> PathBuf {
    out.join(format!("cluster-node{node}.log"))
}

/// Moves the node logs a local cluster wrote in `dir` to `out` (`cluster_log`) before
/// the cluster's directory is removed.
pub fn keep_cluster_logs(dir: &Path, out: &Path, nodes: usize) {
    for node in 0..nodes {
        let _ = std::fs::rename(dir.join(format!("node{node}.log")), cluster_log(out, node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_appends_count_the_ones_each_line_stands_for_and_stalls_count_once() {
        let log = "\
2026-12-08T00:00:00Z  WARN weir_storage::segment: slow segment append: the shard waited in the file system path=/d/t-0/0.log bytes=1048508 reserve_ms=102 write_ms=0 unlogged_since_last=4
2026-12-08T00:00:01Z  WARN weir_storage::segment: slow segment append: the shard waited in the file system path=/d/t-0/0.log bytes=262187 reserve_ms=0 write_ms=61 unlogged_since_last=0
2026-12-08T00:00:02Z  WARN weir_engine::watchdog: shard stalled: its partitions and connections get no service shard=0
2026-12-08T00:00:03Z  INFO weir_engine::watchdog: shard runs again shard=0 stalled_ms=2300
";
        let mut waits = Waits::default();
        waits.add_text(log);
        assert_eq!(
            waits,
            Waits {
                slow_appends: 6,
                shard_stalls: 1
            }
        );
    }
}
