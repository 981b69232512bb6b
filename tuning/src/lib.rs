//! Start-up environment checks and CPU placement for weir's shards.
//!
//! ```text
//!   weir broker start
//!        │
//!        ├─ usable_cores()        sched_getaffinity: cgroup/taskset aware core list
//!        ├─ check_io_uring()      kernel.io_uring_disabled + a real io_uring_setup probe
//!        └─ plan_io_memory(n)     RLIMIT_MEMLOCK: raise soft→hard (→ more if root),
//!                                 then size each shard's registered io memory to fit
//! ```
//!
//! Invariants: every failure here is an *environment* error and its message names the
//! exact setting to change (`ulimit -l`, `kernel.io_uring_disabled`, the container's
//! seccomp profile). Nothing here panics on a hostile environment.

pub mod check;
pub mod profile;

use std::io;

use thiserror::Error;

/// Registered io memory a shard gets when the memlock limit allows it. glommio's own
/// default is 10 MiB; 4 MiB is plenty for weir's buffered-file writes and keeps a
/// 2-shard broker inside a stock 8 MiB `ulimit -l` after raising nothing.
pub const IO_MEMORY_PER_SHARD_BYTES_DEFAULT: usize = 4 << 20;
/// Below this a shard's io_uring buffers would be too small to be useful.
pub const IO_MEMORY_PER_SHARD_BYTES_MIN: usize = 256 << 10;
/// Locked memory kept back per shard for the io_uring rings themselves.
pub const RING_MEMORY_PER_SHARD_BYTES: usize = 512 << 10;
/// What we ask for when we are allowed to raise the hard limit (root).
pub const MEMLOCK_BYTES_WANTED_PER_SHARD: usize =
    IO_MEMORY_PER_SHARD_BYTES_DEFAULT + RING_MEMORY_PER_SHARD_BYTES;

const _: () = assert!(IO_MEMORY_PER_SHARD_BYTES_MIN <= IO_MEMORY_PER_SHARD_BYTES_DEFAULT);

/// Environment errors, each with the setting an operator has to change.
#[derive(Debug, Error)]
pub enum TuningError {
    #[error(
        "io_uring is disabled by the kernel (kernel.io_uring_disabled = {value}); \
         weir needs it: run `sysctl -w kernel.io_uring_disabled=0` (or 1 with the \
         broker in the io_uring group)"
    )]
    IoUringDisabled { value: u32 },
    #[error(
        "io_uring_setup failed ({source}); the kernel lacks io_uring (need Linux >= 5.8) or a \
         container seccomp profile blocks it: allow io_uring_setup/io_uring_enter/\
         io_uring_register (e.g. docker --security-opt seccomp=unconfined)"
    )]
    IoUringUnavailable {
        #[source]
        source: io::Error,
    },
    #[error(
        "locked-memory limit is {soft_bytes} bytes (hard {hard_bytes}), but {shards} shard(s) need at \
         least {needed_bytes}: raise it with `ulimit -l {needed_kib}` (or LimitMEMLOCK= in the \
         systemd unit, or --ulimit memlock=-1 for docker), or run fewer shards with --shards"
    )]
    MemlockTooLow {
        soft_bytes: u64,
        hard_bytes: u64,
        shards: usize,
        needed_bytes: u64,
        needed_kib: u64,
    },
    #[error("could not read the CPU affinity of the broker process: {source}")]
    Affinity {
        #[source]
        source: io::Error,
    },
}

/// The cores this process may run on (taskset/cgroup cpuset aware), in ascending order.
pub fn usable_cores() -> Result<Vec<usize>, TuningError> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(TuningError::Affinity {
            source: io::Error::last_os_error(),
        });
    }
    let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|core| unsafe { libc::CPU_ISSET(*core, &set) })
        .collect();
    Ok(cores)
}

/// Pins the calling thread to one core.
pub fn pin_current_thread(core: usize) -> Result<(), TuningError> {
    affinity::set_thread_affinity([core]).map_err(|error| TuningError::Affinity {
        source: io::Error::other(error.to_string()),
    })
}

/// Checks that io_uring can be used: the sysctl first (for a precise message), then a
/// real `io_uring_setup` so seccomp filters and old kernels are caught too.
pub fn check_io_uring() -> Result<(), TuningError> {
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        let value: u32 = text.trim().parse().unwrap_or(0);
        let is_root = unsafe { libc::geteuid() } == 0;
        if value == 2 || (value == 1 && !is_root) {
            return Err(TuningError::IoUringDisabled { value });
        }
    }
    // io_uring_params is 120 bytes on every kernel that has io_uring.
    let mut params = [0u8; 120];
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(TuningError::IoUringUnavailable {
            source: io::Error::last_os_error(),
        });
    }
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// The outcome of sizing locked memory for `shards` shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoMemoryPlan {
    /// Registered io memory to give each shard's executor.
    pub io_memory_per_shard_bytes: usize,
    /// The soft RLIMIT_MEMLOCK in force after any raise.
    pub memlock_soft_bytes: u64,
    /// Whether this call raised the limit.
    pub raised: bool,
}

/// Raises RLIMIT_MEMLOCK as far as allowed (soft to hard; hard too when privileged) and
/// sizes each shard's io memory to fit inside it, or explains which limit to raise.
pub fn plan_io_memory(shards: usize) -> Result<IoMemoryPlan, TuningError> {
    assert!(shards > 0, "a broker has at least one shard");
    let wanted = (MEMLOCK_BYTES_WANTED_PER_SHARD * shards) as u64;
    let (mut soft, mut hard) = get_memlock();
    let mut raised = false;
    if soft != libc::RLIM_INFINITY && soft < wanted {
        // Privileged processes may raise the hard limit too; others stop at hard.
        let target_hard = if hard == libc::RLIM_INFINITY {
            hard
        } else {
            hard.max(wanted)
        };
        if set_memlock(wanted.min(target_hard), target_hard).is_ok()
            || set_memlock(wanted.min(hard), hard).is_ok()
        {
            raised = true;
            (soft, hard) = get_memlock();
        }
    }
    let budget = if soft == libc::RLIM_INFINITY {
        wanted
    } else {
        soft
    };
    let per_shard = (budget as usize / shards).saturating_sub(RING_MEMORY_PER_SHARD_BYTES);
    let io_memory = per_shard.min(IO_MEMORY_PER_SHARD_BYTES_DEFAULT);
    if io_memory < IO_MEMORY_PER_SHARD_BYTES_MIN {
        let needed =
            ((IO_MEMORY_PER_SHARD_BYTES_MIN + RING_MEMORY_PER_SHARD_BYTES) * shards) as u64;
        return Err(TuningError::MemlockTooLow {
            soft_bytes: soft,
            hard_bytes: hard,
            shards,
            needed_bytes: needed,
            needed_kib: needed.div_ceil(1024),
        });
    }
    Ok(IoMemoryPlan {
        io_memory_per_shard_bytes: io_memory,
        memlock_soft_bytes: soft,
        raised,
    })
}

fn get_memlock() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    (limit.rlim_cur, limit.rlim_max)
}

fn set_memlock(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_cores_lists_at_least_the_current_core() {
        let cores = usable_cores().expect("affinity readable");
        assert!(!cores.is_empty());
        assert!(cores.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn io_memory_plan_fits_inside_the_memlock_limit() {
        let plan = plan_io_memory(2).expect("2 shards fit on this machine");
        assert!(plan.io_memory_per_shard_bytes >= IO_MEMORY_PER_SHARD_BYTES_MIN);
        if plan.memlock_soft_bytes != libc::RLIM_INFINITY {
            let used = 2 * (plan.io_memory_per_shard_bytes + RING_MEMORY_PER_SHARD_BYTES) as u64;
            assert!(used <= plan.memlock_soft_bytes, "{plan:?}");
        }
    }

    #[test]
    fn memlock_error_names_the_ulimit_to_change() {
        let error = TuningError::MemlockTooLow {
            soft_bytes: 65536,
            hard_bytes: 65536,
            shards: 2,
            needed_bytes: 1 << 21,
            needed_kib: 2048,
        };
        assert!(error.to_string().contains("ulimit -l 2048"));
    }

    #[test]
    fn io_uring_is_usable_here() {
        check_io_uring().expect("io_uring works on the development machine");
    }
}
