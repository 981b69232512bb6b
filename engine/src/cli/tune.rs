//! `weir tune check`: reports the machine settings that matter to a broker, each with
//! the exact command that fixes it (the checks live in `weir_tuning::check`).
//! `weir tune apply --profile P`: shows what profile P would change and changes it only
//! after a yes (`weir_tuning::profile`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use weir_tuning::check::{Probe, Status, check_this_machine, render};
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

pub fn run(args: Args) -> ExitCode {
    match args.action {
        Action::Check { fail_on_warn } => {
            let findings = check_this_machine();
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
