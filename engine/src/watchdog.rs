//! A watchdog for shards that stop running.
//!
//! A shard is one thread running one executor: if a task never yields, a system call
//! blocks (a `pwrite` the kernel throttles, a stuck file system) or the executor sleeps
//! through its wake-ups, every partition and connection of that shard stops at once,
//! and clients see only timeouts. Each shard beats every `HEARTBEAT_INTERVAL_MS` from a
//! task of its own; the main thread, which otherwise only waits for a stop signal,
//! checks the beats. A shard silent for `STALL_REPORT_MS` is reported with what its
//! thread is doing according to the kernel (state, system call, wait channel and kernel
//! stack from `/proc`), again each time the silence quadruples, and once more when it
//! runs again, with how long it was gone. The report names the cause an operator needs:
//! `D` in a file system wait, `R` with the silence spent running (a task that does not
//! yield) or waiting for a CPU (other processes took the cores), `S` in `io_uring_enter`
//! with beats overdue (the runtime did not wake up for its own timer). When the main
//! thread's own check comes late, the whole process did not run (SIGSTOP, a starved
//! machine, a paused VM), and that is what is reported instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How often a shard beats: half as often as every shard already wakes to look for a
/// stop (`STOP_POLL_INTERVAL_MS` in server.rs, 50 ms).
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;

/// Silence after which a shard is reported: 20 beats missed. Well above what a loaded
/// shard misses (a task queue's turn is bounded by the runtime's preemption timer, far
/// below this), well below the client timeouts (10 s and more) a stall ends in.
pub const STALL_REPORT_MS: u64 = 2_000;

/// The beats of every shard of the process, and each shard's thread id for the report.
#[derive(Debug)]
pub struct ShardBeats {
    started: Instant,
    /// Milliseconds since `started` of each shard's last beat.
    beats_ms: Vec<AtomicU64>,
    /// Each shard's kernel thread id, 0 until the shard registered.
    thread_ids: Vec<AtomicI32>,
}

impl ShardBeats {
    pub fn new(shard_count: usize) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            beats_ms: (0..shard_count).map(|_| AtomicU64::new(0)).collect(),
            thread_ids: (0..shard_count).map(|_| AtomicI32::new(0)).collect(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Called on the shard's own thread when it starts; the first beat.
    pub fn register(&self, shard: usize) {
        // SAFETY: gettid has no preconditions.
        let thread_id = unsafe { libc::gettid() };
        self.thread_ids[shard].store(thread_id, Ordering::Relaxed);
        self.beat(shard);
    }

    pub fn beat(&self, shard: usize) {
        self.beats_ms[shard].store(self.now_ms(), Ordering::Relaxed);
    }
}

/// A shard's beats, from a task of its own on the shard, until the broker stops.
pub async fn heartbeat_loop(shard: usize, beats: Arc<ShardBeats>, stop: Arc<AtomicBool>) {
    beats.register(shard);
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS)).await;
        beats.beat(shard);
    }
}

/// The checking side, owned by the main thread.
#[derive(Debug)]
pub struct Watchdog {
    beats: Arc<ShardBeats>,
    report_after_ms: u64,
    /// Per shard, while it is reported as stalled: the beat it went silent after, and
    /// the silence at which it is reported next.
    stalled: Vec<Option<(u64, u64)>>,
    /// Per shard: the last beat seen, and the thread's CPU account when it was first
    /// seen, so a report can say how much of the silence the thread ran and how much it
    /// waited for a CPU.
    seen: Vec<(u64, Option<CpuAccount>)>,
    /// When this watchdog last checked: a check that comes late means the whole
    /// process got no CPU (an overloaded machine, a paused VM), not that a shard hung.
    last_check_ms: Option<u64>,
    /// When a late check last found the process starved; silence counts from here.
    process_resumed_ms: u64,
}

/// A thread's CPU account from `/proc/self/task/TID/schedstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuAccount {
    pub ran_ns: u64,
    pub waited_for_cpu_ns: u64,
}

impl CpuAccount {
    pub fn of_thread(thread_id: i32) -> Option<Self> {
        let line =
            std::fs::read_to_string(format!("/proc/self/task/{thread_id}/schedstat")).ok()?;
        let mut fields = line
            .split_whitespace()
            .map(|field| field.parse::<u64>().ok());
        Some(Self {
            ran_ns: fields.next()??,
            waited_for_cpu_ns: fields.next()??,
        })
    }

    /// "ran X ms, waited Y ms for a CPU" since `earlier`.
    fn since(self, earlier: Option<Self>) -> String {
        match earlier {
            Some(earlier) => format!(
                "ran {} ms, waited {} ms for a CPU",
                self.ran_ns.saturating_sub(earlier.ran_ns) / 1_000_000,
                self.waited_for_cpu_ns
                    .saturating_sub(earlier.waited_for_cpu_ns)
                    / 1_000_000
            ),
            None => "CPU use unknown".to_string(),
        }
    }
}

impl Watchdog {
    pub fn new(beats: Arc<ShardBeats>, report_after_ms: u64) -> Self {
        let stalled = vec![None; beats.beats_ms.len()];
        let seen = vec![(0, None); beats.beats_ms.len()];
        Self {
            last_check_ms: Some(beats.now_ms()),
            beats,
            report_after_ms,
            stalled,
            seen,
            process_resumed_ms: 0,
        }
    }

    /// Looks at every shard's last beat; logs the shards that went silent or came back.
    /// Returns the shards reported as stalled by this call.
    pub fn check(&mut self) -> Vec<usize> {
        let now_ms = self.beats.now_ms();
        let check_late_ms = self
            .last_check_ms
            .replace(now_ms)
            .map_or(0, |last_check_ms| now_ms.saturating_sub(last_check_ms));
        if check_late_ms >= self.report_after_ms {
            // The main thread, which does nothing but wait and check, did not run
            // either: the shards' silence is the process's, not theirs.
            self.process_resumed_ms = now_ms;
            warn!(
                silent_ms = check_late_ms,
                "the whole broker process did not run (stopped with SIGSTOP, an overloaded machine, a paused VM): every shard was silent"
            );
        }
        let mut reported = Vec::new();
        for shard in 0..self.stalled.len() {
            let thread_id = self.beats.thread_ids[shard].load(Ordering::Relaxed);
            if thread_id == 0 {
                continue;
            }
            let last_beat_ms = self.beats.beats_ms[shard].load(Ordering::Relaxed);
            let account = CpuAccount::of_thread(thread_id);
            if self.seen[shard].0 != last_beat_ms || self.seen[shard].1.is_none() {
                self.seen[shard] = (last_beat_ms, account);
            }
            let cpu = account.map_or_else(String::new, |account| account.since(self.seen[shard].1));
            // Silence counts from the last beat or from when the process ran again.
            let silent_ms = now_ms.saturating_sub(last_beat_ms.max(self.process_resumed_ms));
            match self.stalled[shard] {
                Some((stalled_beat_ms, _)) if last_beat_ms != stalled_beat_ms => {
                    info!(
                        shard,
                        stalled_ms = last_beat_ms.saturating_sub(stalled_beat_ms),
                        "shard runs again"
                    );
                    self.stalled[shard] = None;
                }
                Some((stalled_beat_ms, next_report_ms)) if silent_ms >= next_report_ms => {
                    warn!(shard, silent_ms, thread = %describe_thread(thread_id), %cpu, "shard still stalled");
                    self.stalled[shard] = Some((stalled_beat_ms, next_report_ms * 4));
                    reported.push(shard);
                }
                Some(_) => {}
                None if silent_ms >= self.report_after_ms => {
                    warn!(
                        shard,
                        silent_ms,
                        thread = %describe_thread(thread_id),
                        %cpu,
                        "shard stalled: its partitions and connections get no service"
                    );
                    self.stalled[shard] = Some((last_beat_ms, silent_ms * 4));
                    reported.push(shard);
                }
                None => {}
            }
        }
        reported
    }
}

/// What the kernel says a thread of this process is doing, in one line: its state
/// (`R` running or waiting for a CPU, `S` sleeping, `D` uninterruptible, usually disk), the system call it
/// is in, its wait channel and the top of its kernel stack (readable by root only).
pub fn describe_thread(thread_id: i32) -> String {
    let task = format!("/proc/self/task/{thread_id}");
    let read = |name: &str| std::fs::read_to_string(format!("{task}/{name}")).ok();
    let state = read("stat")
        .and_then(|stat| {
            // The state is the first field after the command name, which is in
            // parentheses and may itself hold spaces or parentheses.
            let after_name = &stat[stat.rfind(')')? + 1..];
            after_name.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_else(|| "?".to_string());
    let syscall = read("syscall")
        .and_then(|line| line.split_whitespace().next().map(str::to_string))
        .map(|number| match number.parse::<i64>() {
            Ok(number) => syscall_name(number)
                .map(str::to_string)
                .unwrap_or_else(|| format!("#{number}")),
            Err(_) => number,
        })
        .unwrap_or_else(|| "?".to_string());
    let wchan = read("wchan")
        .filter(|wchan| !wchan.is_empty() && wchan != "0")
        .unwrap_or_else(|| "-".to_string());
    let stack = read("stack")
        .map(|stack| {
            stack
                .lines()
                .take(8)
                .filter_map(|line| line.split_whitespace().nth(1))
                .collect::<Vec<_>>()
                .join(" < ")
        })
        .filter(|stack| !stack.is_empty())
        .unwrap_or_else(|| "unreadable".to_string());
    format!("tid {thread_id} state {state} syscall {syscall} wchan {wchan} stack {stack}")
}

/// Names of the x86-64 system calls a shard blocks in; others are shown by number.
fn syscall_name(number: i64) -> Option<&'static str> {
    Some(match number {
        0 => "read",
        1 => "write",
        7 => "poll",
        17 => "pread64",
        18 => "pwrite64",
        20 => "writev",
        35 => "nanosleep",
        40 => "sendfile",
        44 => "sendto",
        45 => "recvfrom",
        74 => "fsync",
        75 => "fdatasync",
        202 => "futex",
        230 => "clock_nanosleep",
        257 => "openat",
        275 => "splice",
        296 => "pwritev",
        324 => "membarrier",
        328 => "pwritev2",
        426 => "io_uring_enter",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Checks every 50 ms, beating for shard 0, until something is reported.
    fn check_until_reported(watchdog: &mut Watchdog, beats: &ShardBeats) -> Vec<usize> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            beats.beat(0);
            let reported = watchdog.check();
            if !reported.is_empty() {
                return reported;
            }
        }
        Vec::new()
    }

    #[test]
    fn a_shard_that_stops_beating_is_reported_with_its_thread_and_again_when_it_runs() {
        let beats = ShardBeats::new(2);
        let (registered, wait_registered) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        let beating = beats.clone();
        // Shard 0 beats as it should; shard 1's thread blocks in a system call.
        let blocked = std::thread::spawn(move || {
            beating.register(1);
            registered.send(()).unwrap();
            wait_release.recv().unwrap();
            beating.beat(1);
        });
        beats.register(0);
        wait_registered.recv().unwrap();
        let started = Instant::now();
        let mut watchdog = Watchdog::new(beats.clone(), 1000);
        assert!(watchdog.check().is_empty(), "nothing is silent yet");
        assert_eq!(
            check_until_reported(&mut watchdog, &beats),
            vec![1],
            "only the silent shard is reported"
        );
        assert!(started.elapsed() >= Duration::from_millis(1000));
        assert!(
            watchdog.check().is_empty(),
            "reported once until the silence quadruples"
        );
        release.send(()).unwrap();
        blocked.join().unwrap();
        assert!(watchdog.check().is_empty());
        assert_eq!(watchdog.stalled, vec![None, None], "shard 1 runs again");
    }

    #[test]
    fn a_late_check_blames_the_process_not_its_shards() {
        let beats = ShardBeats::new(1);
        beats.register(0);
        let mut watchdog = Watchdog::new(beats.clone(), 1000);
        assert!(watchdog.check().is_empty());
        // Neither the shard nor the checker ran for longer than the report threshold.
        std::thread::sleep(Duration::from_millis(1200));
        assert!(
            watchdog.check().is_empty(),
            "a starved process is not a stalled shard"
        );
        // The shard's silence counts again from the late check: checked every 100 ms,
        // it is reported once 1000 ms have passed since then.
        let resumed = Instant::now();
        let mut reported = Vec::new();
        while reported.is_empty() && resumed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            reported = watchdog.check();
        }
        assert_eq!(reported, vec![0], "then its own silence is reported");
        assert!(
            resumed.elapsed() >= Duration::from_millis(900),
            "{:?}",
            resumed.elapsed()
        );
    }

    #[test]
    fn a_threads_cpu_account_grows_as_it_runs() {
        // SAFETY: gettid has no preconditions.
        let thread_id = unsafe { libc::gettid() };
        let before = CpuAccount::of_thread(thread_id).expect("schedstat is readable");
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::spin_loop();
        }
        let after = CpuAccount::of_thread(thread_id).expect("schedstat is readable");
        assert!(
            after.ran_ns >= before.ran_ns + 10_000_000,
            "{before:?} {after:?}"
        );
        assert!(after.since(Some(before)).starts_with("ran "));
    }

    #[test]
    fn a_thread_blocked_in_a_system_call_is_described_by_its_state_and_call() {
        let (started, wait_started) = mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            started.send(unsafe { libc::gettid() }).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let thread_id = wait_started.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let description = describe_thread(thread_id);
        sleeper.join().unwrap();
        assert!(
            description.starts_with(&format!("tid {thread_id} state S syscall ")),
            "{description}"
        );
        assert!(description.contains("nanosleep"), "{description}");
    }
}
