//! `weir tune check`: reports the machine settings that matter to a broker, each with
//! the exact command that fixes it (the checks live in `weir_tuning::check`), and the
//! segment-write mode the broker would pick for `--log-dirs`.
//! `weir tune apply --profile P`: shows what profile P would change and changes it only
//! after a yes (`weir_tuning::profile`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use weir_storage::SegmentWrites;
use weir_tuning::check::{Finding, Probe, Status, check_this_machine, render};
use weir_tuning::profile;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  weir tune check\n  weir tune check --fail-on-warn   (exit 1 when any setting needs a change)\n  \
weir tune apply --profile throughput --dry-run\n  weir tune apply --profile latency --yes\n\n\
Each line is [ok|warn|info] name: value (recommended: ...); warn lines carry the command that fixes\n\
them. Limits (memlock, open files) are this shell's: a broker started from it inherits them."
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Report memlock, io_uring, socket, memory, CPU and file-limit settings with fixes.
    Check {
        /// Exit with status 1 when any check is at warn (for provisioning scripts).
        #[arg(long)]
        fail_on_warn: bool,
        /// The broker's log dirs (comma-separated, as log.dirs), for the segment-write
        /// mode `weir.log.segment.writes=auto` would choose on their filesystem.
        #[arg(long, value_name = "DIR[,DIR...]", default_value = "./weir-data")]
        log_dirs: String,
    },
    /// Show the changes a profile makes (sysctls, /sys), then make them after a yes.
    Apply {
        /// The profile: throughput or latency (tuning/profiles/*.conf).
        #[arg(long)]
        profile: String,
        /// Only print the plan.
        #[arg(long)]
        dry_run: bool,
        /// Apply without asking (for provisioning scripts).
        #[arg(long)]
        yes: bool,
    },
}

/// What `weir.log.segment.writes=auto` picks for `log_dirs` (probed where they exist,
/// else at their nearest existing parent, where the broker would create them).
fn segment_writes(log_dirs: &str) -> Finding {
    let mut probed = Vec::new();
    let mut notes = Vec::new();
    for dir in log_dirs
        .split(',')
        .map(str::trim)
        .filter(|dir| !dir.is_empty())
    {
        let dir = std::path::PathBuf::from(dir);
        let Some(existing) = dir.ancestors().find(|path| path.is_dir()) else {
            notes.push(format!("{} has no existing parent", dir.display()));
            continue;
        };
        if existing != dir.as_path() {
            notes.push(format!(
                "{} does not exist yet, probed at {}",
                dir.display(),
                existing.display()
            ));
        }
        probed.push(existing.to_path_buf());
    }
    let (status, mode) = if probed.is_empty() {
        (Status::Info, "not probed".to_string())
    } else {
        match crate::config::broker::auto_segment_writes(&probed) {
            Ok(SegmentWrites::Pwrite) => (
                Status::Info,
                "pwrite on each shard: the log dirs' filesystem refuses RWF_NOWAIT buffered \
                 writes, so io_uring would hand every append to a worker thread; a write the \
                 kernel throttles stalls the shard (the broker logs it)"
                    .to_string(),
            ),
            Ok(SegmentWrites::IoUring) => (
                Status::Ok,
                "io_uring: the log dirs' filesystem takes RWF_NOWAIT buffered writes".to_string(),
            ),
            Err(error) => (Status::Info, format!("cannot probe: {error}")),
        }
    };
    let reserving = probed
        .iter()
        .filter(|dir| weir_storage::preallocates_in(dir).unwrap_or(false))
        .count();
    let mode = if reserving == 0 {
        mode
    } else {
        let which = if reserving == probed.len() {
            String::new()
        } else {
            format!(" ({reserving} of {} dirs)", probed.len())
        };
        format!(
            "{mode}; ext4{which}: each segment's blocks are reserved ahead of its appends \
             (fallocate, given back when it is sealed)"
        )
    };
    let value = if notes.is_empty() {
        mode
    } else {
        format!("{mode} ({})", notes.join("; "))
    };
    Finding {
        name: "weir.log.segment.writes",
        status,
        value,
        recommended: "auto, the default: the broker probes the same way at start".to_string(),
        fix: None,
    }
}

pub fn run(args: Args) -> ExitCode {
    match args.action {
        Action::Check {
            fail_on_warn,
            log_dirs,
        } => {
            let mut findings = check_this_machine();
            findings.push(segment_writes(&log_dirs));
            for finding in &findings {
                println!("{}", render(finding));
            }
            let warnings = findings
                .iter()
                .filter(|finding| finding.status == Status::Warn)
                .count();
            println!(
                "{} checks: {} ok, {warnings} warn, {} info.",
                findings.len(),
                findings
                    .iter()
                    .filter(|finding| finding.status == Status::Ok)
                    .count(),
                findings
                    .iter()
                    .filter(|finding| finding.status == Status::Info)
                    .count()
            );
            if fail_on_warn && warnings > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Action::Apply {
            profile: name,
            dry_run,
            yes,
        } => apply(&name, dry_run, yes),
    }
}

fn apply(name: &str, dry_run: bool, yes: bool) -> ExitCode {
    let settings = match profile::profile(name) {
        Ok(settings) => settings,
        Err(message) => return crate::cli::topics::usage_error::<Args>("weir tune apply", message),
    };
    let changes = profile::plan(&Probe::default(), &settings);
    if changes.is_empty() {
        println!("Nothing to change: this machine already matches the {name} profile.");
        return ExitCode::SUCCESS;
    }
    println!("The {name} profile changes {} settings:", changes.len());
    for change in &changes {
        let current = change.current.as_deref().unwrap_or("(not on this machine)");
        println!(
            "  {}: {current} -> {}   # {}",
            change.key,
            change.wanted,
            change.command()
        );
    }
    if dry_run {
        return ExitCode::SUCCESS;
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "Error: nothing was changed: stdin is not a terminal to ask on; pass --yes to apply without asking."
            );
            return ExitCode::from(1);
        }
        print!("Apply these {} changes? [y/N] ", changes.len());
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing was changed.");
            return ExitCode::SUCCESS;
        }
    }
    match profile::apply(&changes) {
        Ok(()) => {
            println!(
                "Applied {} changes (until reboot; persist them in /etc/sysctl.d/).",
                changes.len()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::from(1)
        }
    }
}
