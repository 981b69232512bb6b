//! `weir tune check`: what this machine's settings mean for a broker, each with the exact
//! command that fixes it.
//!
//! ```text
//!  Probe { proc_root, sys_root }  ──read──►  /proc/sys/net/core/somaxconn, /proc/interrupts,
//!                                            /sys/kernel/mm/transparent_hugepage/enabled, ...
//!  getrlimit (this process: what a broker started from this shell inherits)
//!  io_uring_setup probe
//!      └──► Vec<Finding { name, status: ok|warn|info, value, recommended, fix }>
//! ```
//!
//! Reading goes through `Probe` roots so tests run every check against a fake tree. The
//! recommendations are those of Kafka's and Redpanda's production guides: a broker wants
//! deep accept queues, large socket buffers, no swapping, no transparent-hugepage
//! stalls, a performance CPU governor and room for many files and locked memory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{MEMLOCK_BYTES_WANTED_PER_SHARD, check_io_uring, usable_cores};

/// Socket buffer maximum the guides recommend for a broker (16 MiB).
pub const SOCKET_BUFFER_BYTES_MIN: u64 = 16 << 20;
/// The broker's listen backlog; `net.core.somaxconn` below it truncates the queue.
pub const SOMAXCONN_MIN: u64 = 1024;
/// Open files a broker needs: one per segment file and index, plus connections.
pub const OPEN_FILES_MIN: u64 = 100_000;

/// How a setting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Worth changing; `fix` says how.
    Warn,
    /// Reported for the operator's judgement (no single right value, or not applicable).
    Info,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: &'static str,
    pub status: Status,
    pub value: String,
    pub recommended: String,
    /// The exact command that brings the setting to `recommended` (warn findings).
    pub fix: Option<String>,
}

/// Where to read the machine's state from: `/proc` and `/sys`, or a fake tree in tests.
#[derive(Debug, Clone)]
pub struct Probe {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
        }
    }
}

impl Probe {
    fn read(&self, root: &Path, relative: &str) -> Option<String> {
        fs::read_to_string(root.join(relative))
            .ok()
            .map(|text| text.trim().to_string())
    }

    fn sysctl(&self, name: &str) -> Option<String> {
        self.read(&self.proc_root, &format!("sys/{}", name.replace('.', "/")))
    }

    fn sysctl_number(&self, name: &str) -> Option<u64> {
        self.sysctl(name)?.parse().ok()
    }
}

/// Limits of the current process (soft, hard), as a broker started from here gets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memlock: (u64, u64),
    pub open_files: (u64, u64),
}

impl Limits {
    pub fn of_this_process() -> Limits {
        Limits {
            memlock: rlimit(libc::RLIMIT_MEMLOCK),
            open_files: rlimit(libc::RLIMIT_NOFILE),
        }
    }
}

fn rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer for getrlimit.
    unsafe { libc::getrlimit(resource, &mut limit) };
    (limit.rlim_cur, limit.rlim_max)
}

fn show_limit(value: u64) -> String {
    if value == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        value.to_string()
    }
}

fn finding(
    name: &'static str,
    status: Status,
    value: impl Into<String>,
    recommended: impl Into<String>,
    fix: Option<String>,
) -> Finding {
    Finding {
        name,
        status,
        value: value.into(),
        recommended: recommended.into(),
        fix: fix.filter(|_| status == Status::Warn),
    }
}

/// A numeric sysctl that should be at least `min` (or at most, with `at_most`).
fn sysctl_check(probe: &Probe, name: &'static str, wanted: u64, at_most: bool) -> Finding {
    let fix = Some(format!("sysctl -w {name}={wanted}"));
    match probe.sysctl_number(name) {
        None => finding(name, Status::Info, "unreadable", wanted.to_string(), None),
        Some(value) => {
            let good = if at_most {
                value <= wanted
            } else {
                value >= wanted
            };
            let status = if good { Status::Ok } else { Status::Warn };
            let recommended = if at_most {
                format!("<= {wanted}")
            } else {
                format!(">= {wanted}")
            };
            finding(name, status, value.to_string(), recommended, fix)
        }
    }
}

/// `net.ipv4.tcp_rmem`-style triples: the maximum (third field) matters.
fn tcp_buffer_check(probe: &Probe, name: &'static str) -> Finding {
    let Some(text) = probe.sysctl(name) else {
        return finding(name, Status::Info, "unreadable", "max >= 16777216", None);
    };
    let fields: Vec<u64> = text
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let (min, default, max) = match fields[..] {
        [min, default, max] => (min, default, max),
        _ => return finding(name, Status::Info, text, "max >= 16777216", None),
    };
    let status = if max >= SOCKET_BUFFER_BYTES_MIN {
        Status::Ok
    } else {
        Status::Warn
    };
    finding(
        name,
        status,
        format!("{min} {default} {max}"),
        format!("max >= {SOCKET_BUFFER_BYTES_MIN}"),
        Some(format!(
            "sysctl -w {name}=\"{min} {default} {SOCKET_BUFFER_BYTES_MIN}\""
        )),
    )
}

/// The selected value of a `[choice]` sysfs file such as THP's `always [madvise] never`.
fn bracketed(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(&text[start..end])
}

fn transparent_hugepages(probe: &Probe) -> Finding {
    let name = "transparent_hugepage";
    let path = "kernel/mm/transparent_hugepage/enabled";
    match probe
        .read(&probe.sys_root, path)
        .as_deref()
        .and_then(bracketed)
    {
        None => finding(
            name,
            Status::Info,
            "not available",
            "madvise or never",
            None,
        ),
        Some(mode) => finding(
            name,
            if mode == "always" {
                Status::Warn
            } else {
                Status::Ok
            },
            mode,
            "madvise or never (always stalls on compaction)",
            Some(format!("echo madvise > /sys/{path}")),
        ),
    }
}

fn cpu_governor(probe: &Probe, cores: &[usize]) -> Finding {
    let name = "cpu_governor";
    let governors: Vec<(usize, String)> = cores
        .iter()
        .filter_map(|&core| {
            probe
                .read(
                    &probe.sys_root,
                    &format!("devices/system/cpu/cpu{core}/cpufreq/scaling_governor"),
                )
                .map(|governor| (core, governor))
        })
        .collect();
    if governors.is_empty() {
        return finding(
            name,
            Status::Info,
            "no cpufreq (a VM or a fixed-frequency CPU)",
            "performance",
            None,
        );
    }
    let slow: Vec<usize> = governors
        .iter()
        .filter(|(_, governor)| governor != "performance")
        .map(|(core, _)| *core)
        .collect();
    let mut values: Vec<&str> = governors
        .iter()
        .map(|(_, governor)| governor.as_str())
        .collect();
    values.dedup();
    finding(
        name,
        if slow.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        },
        values.join(","),
        "performance",
        Some(
            "for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do echo performance > $g; done"
                .to_string(),
        ),
    )
}

/// How long an idle haltpoll vCPU polls before halting, below which `weir tune check`
/// warns: a halted vCPU wakes through a VM exit and an IPI (about 40 µs per wake-up on
/// the 2-core VM of bench/RESULTS.md, twice per request round trip).
pub const HALT_POLL_NS_MIN: u64 = 200_000;

/// The guest halt-polling path of the haltpoll cpuidle driver (VMs on KVM/Firecracker).
pub const HALT_POLL_PATH: &str = "module/haltpoll/parameters/guest_halt_poll_ns";

/// Idle states: on a VM with the haltpoll cpuidle driver, an idle vCPU halts at once
/// unless `guest_halt_poll_ns` lets it poll first (Documentation/virt/guest-halt-polling.rst).
fn cpu_idle(probe: &Probe) -> Finding {
    let name = "cpu_idle";
    let fix = Some(format!("echo {HALT_POLL_NS_MIN} > /sys/{HALT_POLL_PATH}"));
    match probe.read(&probe.sys_root, "devices/system/cpu/cpuidle/current_driver") {
        Some(driver) if driver == "haltpoll" => {
            let poll_ns = probe
                .read(&probe.sys_root, HALT_POLL_PATH)
                .and_then(|text| text.parse::<u64>().ok());
            let recommended = format!(
                "guest_halt_poll_ns >= {HALT_POLL_NS_MIN} for latency (idle vCPUs poll before halting; each halt makes a wake-up a VM exit)"
            );
            match poll_ns {
                Some(ns) => finding(
                    name,
                    if ns >= HALT_POLL_NS_MIN {
                        Status::Ok
                    } else {
                        Status::Warn
                    },
                    format!("haltpoll, guest_halt_poll_ns {ns}"),
                    recommended,
                    fix,
                ),
                None => finding(
                    name,
                    Status::Info,
                    "haltpoll (guest_halt_poll_ns not readable)",
                    recommended,
                    None,
                ),
            }
        }
        Some(driver) => finding(
            name,
            Status::Info,
            format!("cpuidle driver {driver}"),
            "latency: shallow C-states only (cpupower idle-set -D 10)",
            None,
        ),
        None => finding(name, Status::Info, "no cpuidle", "-", None),
    }
}

fn cores_and_numa(probe: &Probe, cores: &[usize]) -> Finding {
    let nodes = fs::read_dir(probe.sys_root.join("devices/system/node"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    let name = entry.file_name().to_string_lossy().to_string();
                    name.strip_prefix("node")
                        .is_some_and(|rest| rest.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
        .max(1);
    finding(
        "cores_and_numa",
        Status::Info,
        format!("{} usable cores, {nodes} NUMA node(s)", cores.len()),
        if nodes > 1 {
            "one shard per core; keep the NIC's IRQs and the broker on one node (--shards, taskset)"
        } else {
            "one shard per core"
        },
        None,
    )
}

fn nic_irq_affinity(probe: &Probe) -> Finding {
    let name = "nic_irq_affinity";
    let interfaces: Vec<String> = fs::read_dir(probe.sys_root.join("class/net"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().to_string())
                .filter(|interface| interface != "lo")
                .collect()
        })
        .unwrap_or_default();
    let interrupts = probe
        .read(&probe.proc_root, "interrupts")
        .unwrap_or_default();
    let mut placements = Vec::new();
    for line in interrupts.lines() {
        let Some((irq, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        if irq.parse::<u32>().is_err() {
            continue;
        }
        let Some(interface) = interfaces
            .iter()
            .find(|interface| rest.contains(interface.as_str()))
        else {
            continue;
        };
        let cpus = probe
            .read(&probe.proc_root, &format!("irq/{irq}/smp_affinity_list"))
            .unwrap_or_else(|| "?".to_string());
        placements.push(format!("{interface} irq {irq} -> cpus {cpus}"));
    }
    let value = if placements.is_empty() {
        format!(
            "no NIC interrupts named after {} (virtio/MSI names hide them)",
            if interfaces.is_empty() {
                "any interface".to_string()
            } else {
                interfaces.join(",")
            }
        )
    } else {
        placements.join("; ")
    };
    finding(
        name,
        Status::Info,
        value,
        "spread NIC queues over the broker's cores (irqbalance, or echo CPUS > /proc/irq/N/smp_affinity_list)",
        None,
    )
}

/// Dirty-page thresholds: each is set either as a ratio or in bytes (the kernel zeroes
/// the other form), so report whichever form is in force.
fn dirty_pages(probe: &Probe) -> Finding {
    let threshold = |name: &str| {
        let bytes = probe
            .sysctl_number(&format!("vm.{name}_bytes"))
            .unwrap_or(0);
        if bytes > 0 {
            format!("{name}_bytes {bytes}")
        } else {
            let ratio = probe
                .sysctl(&format!("vm.{name}_ratio"))
                .unwrap_or_default();
            format!("{name}_ratio {ratio}")
        }
    };
    finding(
        "vm.dirty_ratio",
        Status::Info,
        format!("{}, {}", threshold("dirty_background"), threshold("dirty")),
        "throughput: ratios 5 / 60 (let the page cache absorb bursts); latency: small byte limits",
        None,
    )
}

/// Runs every check. `limits` and `io_uring` are passed in so tests can fix them.
pub fn run_checks(
    probe: &Probe,
    limits: Limits,
    io_uring: Result<(), String>,
    cores: &[usize],
) -> Vec<Finding> {
    let memlock_wanted = (MEMLOCK_BYTES_WANTED_PER_SHARD * cores.len().max(1)) as u64;
    let (_, memlock_hard) = limits.memlock;
    let (files_soft, _) = limits.open_files;
    vec![
        finding(
            "memlock",
            // The broker raises its soft limit up to the hard one by itself.
            if memlock_hard >= memlock_wanted {
                Status::Ok
            } else {
                Status::Warn
            },
            format!(
                "soft {} hard {}",
                show_limit(limits.memlock.0),
                show_limit(memlock_hard)
            ),
            format!("hard >= {memlock_wanted} bytes ({} shards)", cores.len()),
            Some(
                "ulimit -l unlimited   (systemd: LimitMEMLOCK=infinity; /etc/security/limits.conf: * - memlock unlimited)"
                    .to_string(),
            ),
        ),
        match io_uring {
            Ok(()) => finding("io_uring", Status::Ok, "available", "available", None),
            Err(reason) => finding(
                "io_uring",
                Status::Warn,
                reason,
                "available",
                Some(
                    "sysctl -w kernel.io_uring_disabled=0   (containers: allow io_uring_* in the seccomp profile)"
                        .to_string(),
                ),
            ),
        },
        sysctl_check(probe, "net.core.somaxconn", SOMAXCONN_MIN.max(4096), false),
        sysctl_check(probe, "net.core.rmem_max", SOCKET_BUFFER_BYTES_MIN, false),
        sysctl_check(probe, "net.core.wmem_max", SOCKET_BUFFER_BYTES_MIN, false),
        tcp_buffer_check(probe, "net.ipv4.tcp_rmem"),
        tcp_buffer_check(probe, "net.ipv4.tcp_wmem"),
        sysctl_check(probe, "vm.swappiness", 1, true),
        dirty_pages(probe),
        transparent_hugepages(probe),
        cpu_governor(probe, cores),
        cpu_idle(probe),
        cores_and_numa(probe, cores),
        nic_irq_affinity(probe),
        finding(
            "open_files",
            if files_soft >= OPEN_FILES_MIN {
                Status::Ok
            } else {
                Status::Warn
            },
            show_limit(files_soft),
            format!(">= {OPEN_FILES_MIN}"),
            Some(
                "ulimit -n 1048576   (systemd: LimitNOFILE=1048576; /etc/security/limits.conf: * - nofile 1048576)"
                    .to_string(),
            ),
        ),
    ]
}

/// The checks against this machine.
pub fn check_this_machine() -> Vec<Finding> {
    let cores = usable_cores().unwrap_or_else(|_| vec![0]);
    run_checks(
        &Probe::default(),
        Limits::of_this_process(),
        check_io_uring().map_err(|error| error.to_string()),
        &cores,
    )
}

/// One finding as `weir tune check` prints it.
pub fn render(finding: &Finding) -> String {
    let mut line = format!(
        "[{:>4}] {}: {} (recommended: {})",
        finding.status.label(),
        finding.name,
        finding.value,
        finding.recommended
    );
    if let Some(fix) = &finding.fix {
        line.push_str(&format!("\n       fix: {fix}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Probe) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        let probe = Probe {
            proc_root: dir.path().join("proc"),
            sys_root: dir.path().join("sys"),
        };
        (dir, probe)
    }

    fn by_name<'a>(findings: &'a [Finding], name: &str) -> &'a Finding {
        findings
            .iter()
            .find(|finding| finding.name == name)
            .unwrap_or_else(|| panic!("{name} checked"))
    }

    const UNTUNED: &[(&str, &str)] = &[
        ("proc/sys/net/core/somaxconn", "128\n"),
        ("proc/sys/net/core/rmem_max", "212992\n"),
        ("proc/sys/net/core/wmem_max", "33554432\n"),
        ("proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n"),
        ("proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t16777216\n"),
        ("proc/sys/vm/swappiness", "60\n"),
        ("proc/sys/vm/dirty_background_ratio", "10\n"),
        ("proc/sys/vm/dirty_ratio", "20\n"),
        (
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never\n",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "powersave\n",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "performance\n",
        ),
        (
            "sys/devices/system/cpu/cpuidle/current_driver",
            "haltpoll\n",
        ),
        ("sys/module/haltpoll/parameters/guest_halt_poll_ns", "0\n"),
        ("sys/devices/system/node/node0/cpulist", "0-1\n"),
        ("sys/devices/system/node/node1/cpulist", "2-3\n"),
        ("sys/class/net/eth0/mtu", "1500\n"),
        (
            "proc/interrupts",
            "           CPU0       CPU1\n 24:   100   0   PCI-MSI  eth0-rx-0\n 25:  0  5  PCI-MSI  nvme0q1\nNMI:  0  0  Non-maskable interrupts\n",
        ),
        ("proc/irq/24/smp_affinity_list", "0\n"),
    ];

    #[test]
    fn an_untuned_machine_gets_warnings_with_the_exact_fixes() {
        let (_dir, probe) = fake_tree(UNTUNED);
        let limits = Limits {
            memlock: (8 << 20, 8 << 20),
            open_files: (1024, 4096),
        };
        let findings = run_checks(
            &probe,
            limits,
            Err("disabled by kernel.io_uring_disabled=2".into()),
            &[0, 1],
        );
        let status = |name| by_name(&findings, name).status;
        for name in [
            "memlock",
            "io_uring",
            "net.core.somaxconn",
            "net.core.rmem_max",
            "net.ipv4.tcp_rmem",
            "vm.swappiness",
            "transparent_hugepage",
            "cpu_governor",
            "cpu_idle",
            "open_files",
        ] {
            assert_eq!(status(name), Status::Warn, "{name}");
            assert!(by_name(&findings, name).fix.is_some(), "{name} has a fix");
        }
        for name in ["net.core.wmem_max", "net.ipv4.tcp_wmem"] {
            assert_eq!(status(name), Status::Ok, "{name}");
        }
        assert_eq!(
            by_name(&findings, "net.core.somaxconn").fix.as_deref(),
            Some("sysctl -w net.core.somaxconn=4096")
        );
        assert_eq!(
            by_name(&findings, "net.ipv4.tcp_rmem").fix.as_deref(),
            Some("sysctl -w net.ipv4.tcp_rmem=\"4096 131072 16777216\"")
        );
        assert_eq!(by_name(&findings, "transparent_hugepage").value, "always");
        assert_eq!(
            by_name(&findings, "cpu_idle").fix.as_deref(),
            Some("echo 200000 > /sys/module/haltpoll/parameters/guest_halt_poll_ns")
        );
        assert_eq!(
            by_name(&findings, "cpu_governor").value,
            "powersave,performance"
        );
        assert_eq!(
            by_name(&findings, "vm.dirty_ratio").value,
            "dirty_background_ratio 10, dirty_ratio 20"
        );
        assert_eq!(
            by_name(&findings, "cores_and_numa").value,
            "2 usable cores, 2 NUMA node(s)"
        );
        assert_eq!(
            by_name(&findings, "nic_irq_affinity").value,
            "eth0 irq 24 -> cpus 0"
        );
        let rendered = render(by_name(&findings, "vm.swappiness"));
        assert_eq!(
            rendered,
            "[warn] vm.swappiness: 60 (recommended: <= 1)\n       fix: sysctl -w vm.swappiness=1"
        );
    }

    #[test]
    fn a_tuned_machine_is_ok_and_missing_files_are_info_not_errors() {
        let (_dir, probe) = fake_tree(&[
            ("proc/sys/net/core/somaxconn", "4096"),
            ("proc/sys/vm/swappiness", "1"),
            ("proc/sys/vm/dirty_background_bytes", "67108864"),
            ("proc/sys/vm/dirty_background_ratio", "0"),
            ("proc/sys/vm/dirty_bytes", "268435456"),
            ("proc/sys/vm/dirty_ratio", "0"),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always madvise [never]",
            ),
        ]);
        let limits = Limits {
            memlock: (libc::RLIM_INFINITY, libc::RLIM_INFINITY),
            open_files: (1 << 20, 1 << 20),
        };
        let findings = run_checks(&probe, limits, Ok(()), &[0]);
        for name in [
            "memlock",
            "io_uring",
            "net.core.somaxconn",
            "vm.swappiness",
            "transparent_hugepage",
            "open_files",
        ] {
            assert_eq!(by_name(&findings, name).status, Status::Ok, "{name}");
            assert_eq!(by_name(&findings, name).fix, None);
        }
        assert_eq!(by_name(&findings, "net.core.rmem_max").status, Status::Info);
        assert_eq!(
            by_name(&findings, "vm.dirty_ratio").value,
            "dirty_background_bytes 67108864, dirty_bytes 268435456"
        );
        assert_eq!(by_name(&findings, "cpu_governor").status, Status::Info);
        assert_eq!(by_name(&findings, "cpu_idle").value, "no cpuidle");
        assert!(
            by_name(&findings, "nic_irq_affinity")
                .value
                .starts_with("no NIC interrupts")
        );
        let names: Vec<_> = findings.iter().map(|finding| finding.name).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique, "each check once");
    }
}
