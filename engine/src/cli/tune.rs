//! `weir tune check`: reports the machine settings that matter to a broker, each with
//! the exact command that fixes it (the checks live in `weir_tuning::check`).

use std::process::ExitCode;

use clap::Subcommand;
use weir_tuning::check::{Status, check_this_machine, render};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  weir tune check\n  weir tune check --fail-on-warn   (exit 1 when any setting needs a change)\n\n\
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
    }
}
