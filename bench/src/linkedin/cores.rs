//! Which cores the single broker's shards get, and which the load generators run on.
//!
//! LinkedIn ran its producers and consumers on machines of their own. Here they share
//! one machine with the broker, so the runner splits its cores: the broker gets one
//! shard per core but one (at least one), pinned to the first cores, and the runner's
//! own threads (producers, consumers, the end-to-end test's pair) run on the rest.
//! Sharing every core instead costs the broker CPU and the tests latency
//! (bench/RESULTS.md, "Session 13"): with a shard on each of this machine's two cores,
//! shards and clients took turns on both (1.07 CPU-s per GB ingested against 0.83 for
//! one shard); with one shard and the clients free to run on its core, the
//! end-to-end test's p99 at 4.4 M records/s was 20–66 ms, against 2.6–27 ms with the
//! clients kept on the other core.
//!
//! The replicated scenarios' 3-node cluster is not pinned (three nodes on fewer than
//! three cores), so the runner's threads may use every core while it runs.

/// The cores this thread may run on, in increasing order.
pub(super) fn allowed_cores() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the set it is given, which lives for the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let answered =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if answered != 0 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        return (0..cores).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `core` is below CPU_SETSIZE.
        .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
        .collect()
}

/// Moves the calling thread (and so every thread it starts afterwards) onto `cores`.
/// Failure leaves it where it was: the split is an aid to the measurement, not a
/// condition of it.
pub(super) fn run_on(cores: &[usize]) {
    // SAFETY: CPU_SET on a zeroed set with indices below CPU_SETSIZE, then
    // sched_setaffinity reading the set for the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores
            .iter()
            .filter(|&&core| core < libc::CPU_SETSIZE as usize)
        {
            libc::CPU_SET(core, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The split of the allowed cores between the broker's shards and the load generators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CoreSplit {
    pub(super) all: Vec<usize>,
    /// One per shard, the first allowed cores.
    pub(super) broker: Vec<usize>,
    /// The rest; all of them when the broker needs every core (`--shards` as many as
    /// there are cores, or a one-core machine).
    pub(super) clients: Vec<usize>,
}

impl CoreSplit {
    /// `shards` asked for (`None`: one per allowed core but one, at least one).
    pub(super) fn new(all: Vec<usize>, shards: Option<usize>) -> CoreSplit {
        assert!(!all.is_empty(), "a thread runs on at least one core");
        let shards = shards.unwrap_or(all.len().saturating_sub(1)).max(1);
        let broker: Vec<usize> = all.iter().copied().cycle().take(shards).collect();
        let clients = if shards < all.len() {
            all[shards..].to_vec()
        } else {
            all.clone()
        };
        CoreSplit {
            all,
            broker,
            clients,
        }
    }

    /// `weir.shard.cores` for the broker: its cores as a list, or `none` (unpinned)
    /// when it has more shards than there are cores.
    pub(super) fn shard_cores_setting(&self) -> String {
        if self.broker.len() > self.all.len() {
            return "none".into();
        }
        self.broker
            .iter()
            .map(|core| core.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_gets_every_core_but_one_and_the_clients_the_rest() {
        let two = CoreSplit::new(vec![0, 1], None);
        assert_eq!((two.broker, two.clients), (vec![0], vec![1]));
        let four = CoreSplit::new(vec![2, 3, 6, 7], None);
        assert_eq!(
            (four.broker.clone(), four.clients.clone()),
            (vec![2, 3, 6], vec![7])
        );
        assert_eq!(four.shard_cores_setting(), "2,3,6");
    }

    #[test]
    fn a_broker_on_every_core_leaves_the_clients_free_to_run_anywhere() {
        let one = CoreSplit::new(vec![5], None);
        assert_eq!((one.broker, one.clients), (vec![5], vec![5]));
        let asked = CoreSplit::new(vec![0, 1], Some(2));
        assert_eq!(
            (asked.broker.clone(), asked.clients.clone()),
            (vec![0, 1], vec![0, 1])
        );
        assert_eq!(asked.shard_cores_setting(), "0,1");
        let more = CoreSplit::new(vec![0, 1], Some(3));
        assert_eq!(more.shard_cores_setting(), "none");
    }

    #[test]
    fn the_calling_thread_moves_to_the_cores_named() {
        let all = allowed_cores();
        assert!(!all.is_empty());
        std::thread::spawn(move || {
            run_on(&all[..1]);
            assert_eq!(allowed_cores(), all[..1]);
            // A thread started now inherits the narrowed set.
            let inherited = std::thread::spawn(allowed_cores).join().expect("thread");
            assert_eq!(inherited, all[..1]);
            run_on(&all);
            assert_eq!(allowed_cores(), all);
        })
        .join()
        .expect("thread");
    }
}
