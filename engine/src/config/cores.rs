//! `weir.shard.cores`: which cores the shards are pinned to.

use super::ConfigError;
use super::broker::invalid;

/// `weir.shard.cores`: where shards run. Shard i is pinned to the i-th listed core
/// (round robin), and without `--shards` there is one shard per listed core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardCores {
    /// `all` (default): every core this process may use (sched_getaffinity, so
    /// `taskset` and cgroup cpusets count).
    All,
    /// `0,2,3`: these cores, each of which the process must be allowed to use.
    Listed(Vec<usize>),
    /// `none`: shards are not pinned and the kernel places them (several brokers
    /// sharing a few cores, as `weir local-cluster` on a small machine).
    Unpinned,
}

pub(super) fn parse_shard_cores(value: &str) -> Result<ShardCores, ConfigError> {
    let key = "weir.shard.cores";
    match value.trim() {
        "all" => Ok(ShardCores::All),
        "none" => Ok(ShardCores::Unpinned),
        list => {
            let cores = list
                .split(',')
                .map(|core| core.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    invalid(
                        key,
                        value,
                        "must be all, none or a list of core ids like 0,1",
                    )
                })?;
            if cores.is_empty() {
                return Err(invalid(key, value, "lists no core"));
            }
            Ok(ShardCores::Listed(cores))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::broker::tests::load;

    #[test]
    fn shard_cores_are_all_a_list_or_none() {
        assert_eq!(load(&[]).unwrap().shard_cores, ShardCores::All);
        assert_eq!(
            load(&["weir.shard.cores=1, 3"]).unwrap().shard_cores,
            ShardCores::Listed(vec![1, 3])
        );
        assert_eq!(
            load(&["weir.shard.cores=none"]).unwrap().shard_cores,
            ShardCores::Unpinned
        );
        for bad in [
            "weir.shard.cores=",
            "weir.shard.cores=1,x",
            "weir.shard.cores=-1",
        ] {
            let error = load(&[bad]).unwrap_err().to_string();
            assert!(error.contains("weir.shard.cores"), "{bad}: {error}");
        }
    }
}
