//! The floors beside the broker's CPU per GB in `weir perf linkedin`: what this
//! machine spends on the same bytes with plain syscalls, measured in the same run.

use std::io::Write;
use std::path::Path;

use super::per_gb;
use crate::perf::PerfError;

/// This thread's CPU time (user + system), in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    // SAFETY: zero-initialized and filled above.
    let usage = unsafe { usage.assume_init() };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A new file at `path` with `bytes` of blocks reserved past its (zero) size, before any
/// clock starts: on ext4 the broker reserves its segments' blocks ahead of its appends
/// (`storage/src/preallocation.rs`), so a floor that paid for ext4's delayed allocation
/// of each page would not be one. Where `fallocate` is refused the file is just empty.
fn file_with_blocks_reserved(path: &Path, bytes: u64) -> Result<std::fs::File, PerfError> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let _ = weir_storage::reserve_blocks(file.as_raw_fd(), 0, bytes);
    Ok(file)
}

/// CPU-seconds per GB this machine spends writing `bytes` into the page cache with
/// 1 MiB `write`s to a file in `dir`: the page-cache part of a broker's ingest.
fn page_cache_write_baseline(dir: &Path, bytes: u64) -> Result<f64, PerfError> {
    let path = dir.join("page-cache-baseline");
    let mut file = file_with_blocks_reserved(&path, bytes)?;
    let before = thread_cpu_seconds();
    let written = write_chunks(&mut file, bytes).map_err(io_error(&path))?;
    let cpu = thread_cpu_seconds() - before;
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(per_gb(cpu, written))
}

/// The least CPU this machine spends on each path a broker's bytes take: CPU-seconds
/// per GB of a thread doing the broker's part with plain syscalls in 1 MiB chunks, over
/// loopback TCP as the benchmark's clients use it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Floors {
    /// `write` into the page cache alone.
    pub(super) page_cache_write: f64,
    /// `recv` from a producer's socket, then `write` into the page cache: ingest.
    pub(super) socket_to_page_cache: f64,
    /// `sendfile` from a file in the page cache to a consumer's socket: fetch. On
    /// loopback the sender's thread also runs the receiving socket's TCP processing,
    /// as the broker's shards do for the consumers of these benchmarks.
    pub(super) page_cache_to_socket: f64,
}

impl Floors {
    /// Each floor measured in `ROUNDS` rounds of `bytes`, taking turns so that each
    /// meets the machine's passing states alike, and the median kept: on this VM one
    /// pass alone moves several-fold (bench/RESULTS.md, "Session 9").
    pub(super) fn measure(dir: &Path, bytes: u64) -> Result<Floors, PerfError> {
        const ROUNDS: usize = 3;
        let mut rounds = [[0f64; ROUNDS]; 3];
        for round in 0..ROUNDS {
            let [write, socket, sendfile] = &mut rounds;
            write[round] = page_cache_write_baseline(dir, bytes)?;
            socket[round] = socket_to_page_cache_baseline(dir, bytes)?;
            sendfile[round] = page_cache_to_socket_baseline(dir, bytes)?;
        }
        let [write, socket, sendfile] = rounds.map(|mut passes| {
            passes.sort_by(f64::total_cmp);
            passes[ROUNDS / 2]
        });
        Ok(Floors {
            page_cache_write: write,
            socket_to_page_cache: socket,
            page_cache_to_socket: sendfile,
        })
    }
}

const CHUNK_BYTES: usize = 1 << 20;

/// Writes 1 MiB chunks to `out` (a file or a socket) until `bytes` are written;
/// answers how many.
fn write_chunks(out: &mut impl Write, bytes: u64) -> std::io::Result<u64> {
    let chunk = vec![b'x'; CHUNK_BYTES];
    let mut written = 0u64;
    while written < bytes {
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> PerfError + '_ {
    move |source| PerfError::Io {
        address: path.display().to_string(),
        source,
    }
}

/// A connected loopback pair: (the accepted side, the connecting side).
fn loopback_pair() -> Result<(std::net::TcpStream, std::net::TcpStream), PerfError> {
    let io = |source| PerfError::Io {
        address: "127.0.0.1 (loopback floor)".into(),
        source,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let connecting =
        std::net::TcpStream::connect(listener.local_addr().map_err(io)?).map_err(io)?;
    let (accepted, _) = listener.accept().map_err(io)?;
    Ok((accepted, connecting))
}

/// `recv` of `bytes` sent by another thread over loopback, each chunk written to a file
/// in `dir`: the receiving thread's CPU-seconds per GB.
fn socket_to_page_cache_baseline(dir: &Path, bytes: u64) -> Result<f64, PerfError> {
    use std::io::Read;
    let (mut receiving, mut sending) = loopback_pair()?;
    let sender = std::thread::spawn(move || write_chunks(&mut sending, bytes));
    let path = dir.join("socket-baseline");
    let mut file = file_with_blocks_reserved(&path, bytes)?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let before = thread_cpu_seconds();
    let mut received = 0u64;
    loop {
        let read = receiving.read(&mut chunk).map_err(io_error(&path))?;
        if read == 0 {
            break;
        }
        file.write_all(&chunk[..read]).map_err(io_error(&path))?;
        received += read as u64;
    }
    let cpu = thread_cpu_seconds() - before;
    drop(file);
    let _ = std::fs::remove_file(&path);
    sender
        .join()
        .map_err(|_| PerfError::Broker("the loopback floor's sender panicked".into()))?
        .map_err(io_error(&path))?;
    Ok(per_gb(cpu, received))
}

/// `sendfile` of a `bytes` file in the page cache to a loopback socket that another
/// thread reads and drops: the sending thread's CPU-seconds per GB.
fn page_cache_to_socket_baseline(dir: &Path, bytes: u64) -> Result<f64, PerfError> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let path = dir.join("sendfile-baseline");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let written = write_chunks(&mut file, bytes).map_err(io_error(&path))?;
    // Written back first, so that the write-back does not run during the measure.
    file.sync_all().map_err(io_error(&path))?;
    let (sending, mut receiving) = loopback_pair()?;
    let reader = std::thread::spawn(move || {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        while receiving.read(&mut chunk)? > 0 {}
        Ok::<_, std::io::Error>(())
    });
    let before = thread_cpu_seconds();
    let mut offset: libc::off_t = 0;
    while (offset as u64) < written {
        let count = CHUNK_BYTES.min((written - offset as u64) as usize);
        // SAFETY: both descriptors are open for the call; the kernel advances `offset`.
        let sent =
            unsafe { libc::sendfile(sending.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
        if sent <= 0 {
            let error = if sent == 0 {
                std::io::ErrorKind::WriteZero.into()
            } else {
                std::io::Error::last_os_error()
            };
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_error(&path)(error));
        }
    }
    let cpu = thread_cpu_seconds() - before;
    drop(sending);
    reader
        .join()
        .map_err(|_| PerfError::Broker("the loopback floor's reader panicked".into()))?
        .map_err(io_error(&path))?;
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(per_gb(cpu, written))
}

/// The most acks=all replication to 2 followers can reach, as a share of scenario 1's
/// rate, when everything runs on this machine's `cores`: each GB still costs what it
/// cost in scenario 1 (producer and leader), plus for each follower at least the
/// ingest floor (socket to page cache) and the leader's fetch floor (page cache to
/// socket). Scenario 1's measured rate is the base, so a scenario 1 that was not
/// CPU-bound raises the ceiling rather than hiding it.
pub(super) fn acks_all_ceiling(
    cores: f64,
    scenario_one_gb_per_s: f64,
    client_cpu_s_per_gb: f64,
    broker_cpu_s_per_gb: f64,
    floors: &Floors,
) -> f64 {
    let follower_floor = floors.socket_to_page_cache + floors.page_cache_to_socket;
    let cost = client_cpu_s_per_gb + broker_cpu_s_per_gb + 2.0 * follower_floor;
    (cores / cost) / scenario_one_gb_per_s.max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOORS: Floors = Floors {
        page_cache_write: 0.25,
        socket_to_page_cache: 0.45,
        page_cache_to_socket: 0.40,
    };

    #[test]
    fn the_acks_all_ceiling_adds_two_followers_at_the_floors_to_scenario_ones_cost() {
        // Scenario 1 used both cores: 0.8 GB/s at 1.25 + 1.25 CPU-s/GB. With two
        // followers at 0.45 + 0.40 each, a GB costs 4.2 CPU-s: 2 / 4.2 GB/s.
        let ceiling = acks_all_ceiling(2.0, 0.8, 1.25, 1.25, &FLOORS);
        assert!((ceiling - (2.0 / 4.2) / 0.8).abs() < 1e-9, "{ceiling}");
        assert!(ceiling < 0.6);
    }

    #[test]
    fn a_scenario_one_short_of_the_cores_raises_the_ceiling() {
        let saturated = acks_all_ceiling(2.0, 0.8, 1.25, 1.25, &FLOORS);
        let half_busy = acks_all_ceiling(2.0, 0.4, 1.25, 1.25, &FLOORS);
        assert!((half_busy - 2.0 * saturated).abs() < 1e-9);
    }
}
