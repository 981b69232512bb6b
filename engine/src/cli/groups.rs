//! `weir groups`: list, describe, reset and delete consumer groups, as
//! `kafka-consumer-groups.sh` does, with its flags, checks, tables and messages.
//!
//! ```text
//!  --list [--state [S,..]]       ListGroups at every broker
//!  --describe --group G|--all-groups [--offsets|--members [--verbose]|--state]
//!        FindCoordinator ─► DescribeGroups (assignments decoded) ─► OffsetFetch
//!        ─► ListOffsets(latest) at each partition leader ─► table
//!  --reset-offsets ... --dry-run|--execute     (reset.rs)
//!  --delete --group G, --delete-offsets --group G --topic T     (delete.rs)
//! ```
//!
//! Differences from Kafka, on purpose: errors go to stderr and fail the command with exit
//! code 1 (Kafka prints most of them on stdout and exits 0); usage mistakes exit 2;
//! rows and group lists are sorted (Kafka prints some in hash-map order).

mod admin;
mod delete;
mod describe;
mod leaders;
mod options;
mod reset;
mod time;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use weir_net::client::ClientError;

use self::admin::{GroupAdmin, OffsetSpec, Partition};
pub use self::options::Args;
use self::options::{check_args, parse_states};
use self::reset::{Scenario, Scope};
use crate::cli::connect;

/// Why a `weir groups` command stopped.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The arguments do not make a command (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The command cannot be done (exit code 1).
    #[error("{0}")]
    Failed(String),
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes to stderr.
pub(crate) fn print_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn run(args: Args) -> ExitCode {
    if let Err(message) = check_args(&args) {
        eprintln!("Error: {message}");
        eprintln!("Run 'weir groups --help' for the options and examples.");
        return ExitCode::from(2);
    }
    if args.reset_offsets && !args.dry_run && !args.execute {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. \
             Add --dry-run to keep this behaviour explicitly, or --execute to commit the new offsets."
        );
    }
    let outcome = connect(&args.bootstrap_server, "groups")
        .map_err(GroupsError::from)
        .and_then(|client| {
            let mut admin = GroupAdmin::new(client, Duration::from_millis(args.timeout));
            execute(&mut admin, &args)
        });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(GroupsError::Usage(message)) => {
            eprintln!("Error: {message}");
            ExitCode::from(2)
        }
        Err(error) => crate::cli::fail(error),
    }
}

/// The groups named by `--group` (sorted, without repeats) or `--all-groups`.
fn selected_groups(admin: &mut GroupAdmin, args: &Args) -> Result<Vec<String>, GroupsError> {
    if args.all_groups {
        return Ok(admin
            .list_groups(&[])?
            .into_iter()
            .map(|group| group.group_id)
            .collect());
    }
    let mut groups = args.group.clone();
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// Runs the checked command; `Ok(false)` when it failed after printing why.
fn execute(admin: &mut GroupAdmin, args: &Args) -> Result<bool, GroupsError> {
    if args.list {
        list(admin, args)
    } else if args.describe {
        describe_groups(admin, args)
    } else if args.reset_offsets {
        reset_offsets(admin, args)
    } else if args.delete {
        let groups = selected_groups(admin, args)?;
        delete::delete_groups(admin, &groups)
    } else {
        delete::delete_offsets(admin, &args.group[0], &args.topic)
    }
}

fn list(admin: &mut GroupAdmin, args: &Args) -> Result<bool, GroupsError> {
    let Some(states) = &args.state else {
        let groups = admin.list_groups(&[])?;
        let text: String = groups
            .iter()
            .map(|group| format!("{}\n", group.group_id))
            .collect();
        print_out(&text);
        return Ok(true);
    };
    let filter = parse_states(states)?;
    let groups: Vec<(String, String)> = admin
        .list_groups(&filter)?
        .into_iter()
        .map(|group| {
            (
                group.group_id,
                group.state.unwrap_or_else(|| "Unknown".to_string()),
            )
        })
        .filter(|(_, state)| filter.is_empty() || filter.contains(state))
        .collect();
    print_out(&describe::format_list_with_state(&groups));
    Ok(true)
}

/// Kafka's note on the group's state before a table (stderr): none when Stable.
fn print_state_note(group: &str, state: &str) {
    match state {
        "Empty" => print_err(&format!(
            "\nConsumer group '{group}' has no active members.\n"
        )),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => print_err(
            &format!("\nWarning: Consumer group '{group}' is rebalancing.\n"),
        ),
        _ => {}
    }
}

fn describe_groups(admin: &mut GroupAdmin, args: &Args) -> Result<bool, GroupsError> {
    let mut success = true;
    for group in selected_groups(admin, args)? {
        let description = admin.describe_group(&group)?;
        if description.state == "Dead" {
            print_err(&format!(
                "\nError: Consumer group '{group}' does not exist.\n"
            ));
            success = false;
            continue;
        }
        if args.members {
            print_state_note(&group, &description.state);
            print_out(&describe::format_members(
                &group,
                &description.members,
                args.verbose,
            ));
        } else if args.state.is_some() {
            print_state_note(&group, &description.state);
            print_out(&describe::format_state(&description));
        } else {
            let committed = admin.committed_offsets(&group)?;
            let partitions = describe::partitions_to_describe(&description, &committed);
            let log_end = admin.log_offsets(&partitions, OffsetSpec::Latest)?;
            let rows = describe::offset_rows(&description, &committed, &log_end);
            print_state_note(&group, &description.state);
            if !rows.is_empty() {
                print_out(&describe::format_offsets(&rows));
            }
        }
    }
    Ok(success)
}

use weir_storage::now_ms;

fn scenario_of(args: &Args) -> Result<Scenario, GroupsError> {
    Ok(if let Some(offset) = args.to_offset {
        Scenario::ToOffset(offset)
    } else if let Some(shift) = args.shift_by {
        Scenario::ShiftBy(shift)
    } else if let Some(text) = &args.to_datetime {
        Scenario::ToTimestamp(time::parse_datetime(text).map_err(GroupsError::Usage)?)
    } else if let Some(text) = &args.by_duration {
        let duration_ms = time::parse_duration(text).map_err(GroupsError::Usage)?;
        Scenario::ToTimestamp(now_ms().saturating_sub(duration_ms))
    } else if args.to_earliest {
        Scenario::ToEarliest
    } else if args.to_latest {
        Scenario::ToLatest
    } else if args.to_current {
        Scenario::ToCurrent
    } else {
        let path = args
            .from_file
            .as_ref()
            .expect("check_args requires a scenario");
        let csv = std::fs::read_to_string(path).map_err(|error| {
            GroupsError::Failed(format!(
                "cannot read the reset plan {}: {error}",
                path.display()
            ))
        })?;
        Scenario::FromPlan(reset::parse_reset_plan(&csv, &args.group).map_err(GroupsError::Usage)?)
    })
}

fn reset_offsets(admin: &mut GroupAdmin, args: &Args) -> Result<bool, GroupsError> {
    let scenario = scenario_of(args)?;
    let scope = if args.all_topics {
        Scope::AllTopics
    } else if !args.topic.is_empty() {
        Scope::Topics(args.topic.clone())
    } else {
        Scope::Plan
    };
    let mut results: BTreeMap<String, BTreeMap<Partition, i64>> = BTreeMap::new();
    let mut success = true;
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    for group in selected_groups(admin, args)? {
        let description = admin.describe_group(&group)?;
        if description.state != "Empty" && description.state != "Dead" {
            print_err(&format!(
                "\nError: Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.\n",
                description.state
            ));
            success = false;
            continue;
        }
        let offsets = reset::plan(admin, &group, &scope, &scenario, &mut warnings, &mut notes)?;
        if args.execute && !offsets.is_empty() {
            admin.commit_offsets(&group, &offsets)?;
        }
        results.insert(group, offsets);
    }
    for warning in &warnings {
        print_err(&format!("WARN {warning}\n"));
    }
    print_out(&notes.concat());
    if args.export {
        print_out(&reset::export_csv(&results, args.group.len() == 1));
    } else if !results.is_empty() || success {
        print_out(&reset::format_reset(&results));
    }
    Ok(success)
}
