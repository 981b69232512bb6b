//! The flags of `weir groups` (Kafka's `ConsumerGroupCommandOptions`) and Kafka's checks
//! of how they combine. A failed check is a usage error: exit code 2.

use std::path::PathBuf;

use super::GroupsError;
use crate::cli::BOOTSTRAP_DEFAULT;

/// Kafka's consumer group states, in `ConsumerGroupState` order (what `--state` accepts).
const GROUP_STATES: [&str; 7] = [
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

const AFTER_HELP: &str = "Examples:
  weir groups --list
  weir groups --list --state stable,empty
  weir groups --describe --group orders-app
  weir groups --describe --group orders-app --members --verbose
  weir groups --describe --all-groups --state
  weir groups --reset-offsets --group orders-app --topic orders --to-earliest --dry-run
  weir groups --reset-offsets --group orders-app --topic orders:0,1 --shift-by -10 --execute
  weir groups --reset-offsets --group orders-app --all-topics --to-datetime 2024-01-31T08:00:00.000 --execute
  weir groups --reset-offsets --group orders-app --all-topics --by-duration PT1H --export > plan.csv
  weir groups --delete --group orders-app
  weir groups --delete-offsets --group orders-app --topic orders

Exit codes: 0 success, 1 the operation failed (unknown group, active members, broker error), 2 usage error.";

/// List, describe, reset and delete consumer groups (kafka-consumer-groups.sh).
#[derive(clap::Args, Debug, Default)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The server(s) to connect to.
    #[arg(long, value_name = "HOST:PORT", default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe consumer groups and their offset lag (number of messages not yet processed).
    #[arg(long)]
    pub describe: bool,
    /// Delete groups: their committed offsets and ownership information.
    #[arg(long)]
    pub delete: bool,
    /// Reset the offsets of inactive groups (see the scenario and --dry-run/--execute options).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete the committed offsets of --topic for one group.
    #[arg(long)]
    pub delete_offsets: bool,
    /// The consumer group to act on (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Apply to all consumer groups.
    #[arg(long)]
    pub all_groups: bool,
    /// A topic to reset or delete offsets of; `topic:0,1,2` limits it to partitions (repeatable).
    #[arg(long, value_name = "TOPIC[:P,P...]")]
    pub topic: Vec<String>,
    /// Reset every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// With --describe: list the members.
    #[arg(long)]
    pub members: bool,
    /// With --describe --members: add each member's assigned partitions.
    #[arg(long)]
    pub verbose: bool,
    /// With --describe: partitions, committed offsets and lag (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe: the group's coordinator, assignor, state and size. With --list:
    /// show states, or list only groups in these (comma-separated) states.
    #[arg(long, value_name = "STATES", num_args = 0..=1, default_missing_value = "")]
    pub state: Option<String>,
    /// Only show the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
    /// Print the new offsets as CSV (input for --from-file).
    #[arg(long)]
    pub export: bool,
    /// Reset to this offset (kept within the log's start and end).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the latest offset (the log end).
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to the committed offset (the latest where there is none).
    #[arg(long)]
    pub to_current: bool,
    /// Move the committed offset by N (negative moves back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Reset to the first offset at or after YYYY-MM-DDTHH:mm:SS.sss[Z|±hh:mm] (UTC without a zone).
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Reset to the first offset at or after now minus this ISO-8601 duration (PnDTnHnMnS).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub by_duration: Option<String>,
    /// Reset to the offsets of a CSV file (topic,partition,offset or group,topic,partition,offset).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// How long to keep asking a coordinator that is loading or moving, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout: u64,
}

/// Kafka's option checks (`ConsumerGroupCommandOptions.checkArgs` and `main`).
pub(super) fn check_args(args: &Args) -> Result<(), String> {
    let actions = [
        args.list,
        args.describe,
        args.delete,
        args.reset_offsets,
        args.delete_offsets,
    ];
    if actions.iter().filter(|on| **on).count() != 1 {
        return Err(
            "Command must include exactly one action: --list, --describe, --delete, \
                    --reset-offsets, --delete-offsets"
                .to_string(),
        );
    }
    let has_group_scope = !args.group.is_empty() || args.all_groups;
    if !args.group.is_empty() && args.all_groups {
        return Err("Option --group can't be used with option --all-groups".to_string());
    }
    if args.list && !args.group.is_empty() {
        return Err("Option --group can't be used with option --list".to_string());
    }
    if !args.topic.is_empty() && (args.list || args.describe) {
        let action = if args.list { "--list" } else { "--describe" };
        return Err(format!("Option --topic can't be used with option {action}"));
    }
    if !args.describe && (args.members || args.verbose || args.offsets) {
        return Err("Options --members, --offsets and --verbose need --describe".to_string());
    }
    if args.state.is_some() && !(args.describe || args.list) {
        return Err("Option --state needs --describe or --list".to_string());
    }
    if args.describe {
        if !has_group_scope {
            return Err(
                "Option --describe takes one of these options: --group, --all-groups".to_string(),
            );
        }
        let views = [args.members, args.offsets, args.state.is_some()];
        if views.iter().filter(|on| **on).count() > 1 {
            return Err("Option --describe takes at most one of these options: --members, --offsets, --state".to_string());
        }
        if args.state.as_deref().is_some_and(|value| !value.is_empty()) {
            return Err("Option --describe does not take a value for --state".to_string());
        }
    }
    if args.delete {
        if !has_group_scope {
            return Err(
                "Option --delete takes one of these options: --group, --all-groups".to_string(),
            );
        }
        if !args.topic.is_empty() {
            return Err("The consumer does not support topic-specific offset deletion from a consumer group.".to_string());
        }
    }
    if args.delete_offsets && (args.group.len() != 1 || args.topic.is_empty()) {
        return Err(
            "Option --delete-offsets takes the following options: --group (one), --topic"
                .to_string(),
        );
    }
    let scenarios = [
        ("--to-offset", args.to_offset.is_some()),
        ("--shift-by", args.shift_by.is_some()),
        ("--to-datetime", args.to_datetime.is_some()),
        ("--by-duration", args.by_duration.is_some()),
        ("--to-earliest", args.to_earliest),
        ("--to-latest", args.to_latest),
        ("--to-current", args.to_current),
        ("--from-file", args.from_file.is_some()),
    ];
    let chosen: Vec<&str> = scenarios
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    if args.reset_offsets {
        if args.dry_run && args.execute {
            return Err(
                "Option --reset-offsets only accepts one of --execute and --dry-run".to_string(),
            );
        }
        if !has_group_scope {
            return Err(
                "Option --reset-offsets takes one of these options: --group, --all-groups"
                    .to_string(),
            );
        }
        match chosen.as_slice() {
            [] => {
                return Err(
                    "Option --reset-offsets requires one of the following scenarios: \
                            --to-offset, --shift-by, --to-datetime, --by-duration, --to-earliest, \
                            --to-latest, --to-current, --from-file"
                        .to_string(),
                );
            }
            [_] => {}
            [first, second, ..] => {
                return Err(format!("Option {first} can't be used with option {second}"));
            }
        }
        if !args.all_topics && args.topic.is_empty() && args.from_file.is_none() {
            return Err(
                "One of the reset scopes should be defined: --all-topics, --topic.".to_string(),
            );
        }
        if args.all_topics && !args.topic.is_empty() {
            return Err("Option --all-topics can't be used with option --topic".to_string());
        }
    } else {
        if let Some(first) = chosen.first() {
            return Err(format!("Option {first} needs --reset-offsets"));
        }
        if args.dry_run || args.execute || args.export || args.all_topics {
            return Err(
                "Options --dry-run, --execute, --export and --all-topics need --reset-offsets"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// Kafka's state names for a `--state` list (case-insensitive); empty for no filter.
pub(super) fn parse_states(list: &str) -> Result<Vec<String>, GroupsError> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|name| {
            GROUP_STATES
                .iter()
                .find(|state| state.eq_ignore_ascii_case(name.trim()))
                .map(|state| state.to_string())
                .ok_or_else(|| {
                    GroupsError::Usage(format!(
                        "Invalid state list '{list}'. Valid states are: {}",
                        GROUP_STATES.join(", ")
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(edit: impl FnOnce(&mut Args)) -> Args {
        let mut args = Args {
            bootstrap_server: BOOTSTRAP_DEFAULT.to_string(),
            timeout: 5000,
            ..Args::default()
        };
        edit(&mut args);
        args
    }

    #[test]
    fn exactly_one_action_is_required() {
        assert!(check_args(&args(|_| {})).is_err());
        assert!(check_args(&args(|a| a.list = true)).is_ok());
        let both = check_args(&args(|a| {
            a.list = true;
            a.describe = true;
        }));
        assert!(
            both.expect_err("two actions")
                .contains("exactly one action")
        );
    }

    #[test]
    fn describe_needs_a_group_and_at_most_one_view() {
        assert!(check_args(&args(|a| a.describe = true)).is_err());
        let ok = args(|a| {
            a.describe = true;
            a.group = vec!["g".to_string()];
            a.state = Some(String::new());
        });
        assert!(check_args(&ok).is_ok());
        let two_views = args(|a| {
            a.describe = true;
            a.group = vec!["g".to_string()];
            a.members = true;
            a.offsets = true;
        });
        assert!(check_args(&two_views).is_err());
        let state_value = args(|a| {
            a.describe = true;
            a.all_groups = true;
            a.state = Some("stable".to_string());
        });
        assert!(check_args(&state_value).is_err());
    }

    #[test]
    fn reset_needs_one_scenario_and_a_scope() {
        let base = |a: &mut Args| {
            a.reset_offsets = true;
            a.group = vec!["g".to_string()];
        };
        assert!(
            check_args(&args(|a| {
                base(a);
                a.topic = vec!["t".to_string()];
            }))
            .expect_err("no scenario")
            .contains("requires one of the following scenarios")
        );
        assert!(
            check_args(&args(|a| {
                base(a);
                a.to_earliest = true;
            }))
            .expect_err("no scope")
            .contains("reset scopes")
        );
        assert_eq!(
            check_args(&args(|a| {
                base(a);
                a.all_topics = true;
                a.to_offset = Some(3);
                a.shift_by = Some(1);
            })),
            Err("Option --to-offset can't be used with option --shift-by".to_string())
        );
        assert!(
            check_args(&args(|a| {
                base(a);
                a.all_topics = true;
                a.to_latest = true;
                a.execute = true;
            }))
            .is_ok()
        );
    }

    #[test]
    fn states_parse_case_insensitively_to_kafkas_names() {
        assert_eq!(
            parse_states("stable, EMPTY").expect("valid"),
            vec!["Stable".to_string(), "Empty".to_string()]
        );
        assert!(parse_states("").expect("no filter").is_empty());
        let error = parse_states("bogus").expect_err("invalid");
        assert!(
            error
                .to_string()
                .contains("Valid states are: PreparingRebalance"),
            "{error}"
        );
    }
}
