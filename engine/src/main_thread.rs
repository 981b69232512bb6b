//! What the broker's main thread does around its shards: before they start, it claims
//! the log dirs (Kafka's `.lock` files) and makes sure no live listener holds the port;
//! while they run, it waits for SIGINT or SIGTERM and checks the shards' beats
//! (`watchdog.rs`) between waits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tracing::info;

use crate::watchdog::Watchdog;

/// File Kafka locks in every log dir so two brokers never share one.
const LOG_DIR_LOCK_FILE: &str = ".lock";

/// Takes an exclusive lock on `<dir>/.lock` in every log dir, as Kafka does.
pub(crate) fn lock_log_dirs(log_dirs: &[PathBuf]) -> anyhow::Result<Vec<std::fs::File>> {
    let mut locks = Vec::with_capacity(log_dirs.len());
    for dir in log_dirs {
        let path = dir.join(LOG_DIR_LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } != 0
        {
            bail!(
                "log dir {} is in use by another broker process (its {} is locked); stop that broker or choose other log.dirs",
                dir.display(),
                LOG_DIR_LOCK_FILE
            );
        }
        locks.push(file);
    }
    Ok(locks)
}

/// The shards bind with SO_REUSEPORT, which would let a second broker share a port
/// silently, so a live listener on the address is an error. A listener can also
/// outlive its process for a moment: after `kill -9` the kernel tears a broker's
/// io_uring rings down asynchronously, and the listening socket an in-flight accept
/// holds stays open until then. Binding next to it would send some new connections
/// into a dead backlog, so start-up waits (bounded) for such a listener to go away.
pub(crate) fn ensure_port_is_free(address: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut target = address;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let deadline = Instant::now() + Duration::from_millis(PORT_RELEASE_WAIT_MS_MAX);
    let mut waited = false;
    while std::net::TcpStream::connect_timeout(
        &target,
        Duration::from_millis(PORT_PROBE_TIMEOUT_MS),
    )
    .is_ok()
    {
        if Instant::now() >= deadline {
            bail!(
                "cannot listen on {address}: another process is already listening there (is another broker running? set listeners=PLAINTEXT://host:port)"
            );
        }
        if !waited {
            info!(%address, "waiting for a previous listener on the port to close");
            waited = true;
        }
        std::thread::sleep(Duration::from_millis(PORT_PROBE_INTERVAL_MS));
    }
    Ok(())
}

/// How long one port check waits for a connect.
const PORT_PROBE_TIMEOUT_MS: u64 = 500;
/// Pause between port checks while a previous listener closes.
const PORT_PROBE_INTERVAL_MS: u64 = 50;
/// Longest start-up waits for a previous listener to close before giving up.
const PORT_RELEASE_WAIT_MS_MAX: u64 = 3_000;

/// Blocks SIGINT/SIGTERM in this thread and every thread it starts afterwards, so
/// only `wait_for_stop_signal` receives them.
pub(crate) fn block_stop_signals() {
    // SAFETY: plain signal-mask manipulation on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits for SIGINT or SIGTERM (or a shard that stopped), checking the shards' beats
/// between waits.
pub(crate) fn wait_for_stop_signal(
    stop: &AtomicBool,
    running: &AtomicUsize,
    watchdog: &mut Watchdog,
) {
    let total = running.load(Ordering::SeqCst);
    // SAFETY: sigtimedwait on a set of blocked signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        loop {
            let signal = libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout);
            if signal == libc::SIGINT || signal == libc::SIGTERM {
                info!(signal, "stop signal received");
                break;
            }
            if stop.load(Ordering::SeqCst) || running.load(Ordering::SeqCst) < total {
                break;
            }
            watchdog.check();
        }
    }
    stop.store(true, Ordering::SeqCst);
}
