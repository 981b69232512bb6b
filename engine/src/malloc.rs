//! glibc malloc settings for the `weir` process.
//!
//! By default glibc serves allocations above a moving threshold (128 KiB to 32 MiB)
//! with an `mmap` of their own, and gives the free tail of a heap back to the kernel
//! past 2× that threshold. The produce path allocates request-sized buffers (up to
//! several MiB) at a high rate, so freed memory went back to the kernel and came back
//! as fresh pages: 50–180 page faults per MB produced, each page zeroed by the kernel
//! (and on a VM that reports free pages to its host, faulted in by the host as well).
//! Keeping that memory in malloc's heaps brought it to 0–3 per MB (bench/RESULTS.md,
//! "Session 9").
//!
//! The settings are left alone when the user chose their own, through
//! `GLIBC_TUNABLES=glibc.malloc.…` or the `MALLOC_*_THRESHOLD_` variables.

/// Allocations up to this size come from malloc's heaps: the ceiling of glibc's own
/// moving threshold on 64-bit.
pub const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Free memory at the top of a heap that malloc keeps instead of returning it.
pub const TRIM_THRESHOLD_BYTES: i32 = 256 << 20;

/// What `keep_freed_memory` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The environment sets malloc's thresholds itself.
    LeftToEnvironment,
    /// Not glibc, or glibc refused a value.
    Unavailable,
}

/// Applies the thresholds above unless `environment` (the process's variables) sets
/// them. Call before starting threads.
pub fn keep_freed_memory(environment: impl IntoIterator<Item = (String, String)>) -> Outcome {
    let user_chose = environment.into_iter().any(|(name, value)| {
        name == "MALLOC_MMAP_THRESHOLD_"
            || name == "MALLOC_TRIM_THRESHOLD_"
            || (name == "GLIBC_TUNABLES"
                && (value.contains("glibc.malloc.mmap_threshold")
                    || value.contains("glibc.malloc.trim_threshold")))
    });
    if user_chose {
        return Outcome::LeftToEnvironment;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> Outcome {
    // SAFETY: mallopt only changes malloc's parameters; it returns 1 on success.
    let applied = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    };
    if applied {
        Outcome::Applied
    } else {
        Outcome::Unavailable
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> Outcome {
    Outcome::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Page faults of this thread.
    fn minor_faults() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        // SAFETY: zero-initialized and filled above.
        unsafe { usage.assume_init() }.ru_minflt
    }

    /// Page faults per round of eight 1 MiB buffers alive at once and then freed, the
    /// way pipelined produce requests come and go.
    fn faults_per_round() -> i64 {
        let round = || {
            let buffers: Vec<Vec<u8>> = (0..8).map(|_| vec![1u8; 1 << 20]).collect();
            std::hint::black_box(&buffers);
        };
        round();
        round();
        let before = minor_faults();
        for _ in 0..5 {
            round();
        }
        (minor_faults() - before) / 5
    }

    /// One test, as the settings are process-wide and cannot be undone: first glibc's
    /// defaults, then the user's own settings, then ours. glibc's moving threshold is
    /// process-wide too, so the first assertion expects a process of the test's own
    /// (nextest, which `tests/run` uses, runs each test in one).
    #[test]
    fn freed_buffers_are_reused_without_page_faults_unless_the_user_chose_otherwise() {
        let default = faults_per_round();
        assert!(
            default >= 1000,
            "glibc's defaults return the 8 MiB each round: {default} faults"
        );
        for pairs in [
            [("MALLOC_TRIM_THRESHOLD_", "0")],
            [("MALLOC_MMAP_THRESHOLD_", "131072")],
            [("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")],
        ] {
            assert_eq!(
                keep_freed_memory(env(&pairs)),
                Outcome::LeftToEnvironment,
                "{pairs:?}"
            );
        }
        assert!(faults_per_round() >= 1000, "nothing was applied");
        assert_eq!(
            keep_freed_memory(env(&[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")])),
            Outcome::Applied
        );
        let kept = faults_per_round();
        assert!(kept <= 50, "{kept} faults per round with the memory kept");
    }
}
