//! `--reset-offsets`: plan new committed offsets for an inactive group and, with
//! `--execute`, commit them, following `ConsumerGroupCommand.resetOffsets`:
//!
//! ```text
//!  group state Empty/Dead? ──no──► refuse ("Assignments can only be reset if ...")
//!  scope: --all-topics (partitions with a committed offset) | --topic T | T:0,1 | --from-file
//!  scenario ─► requested offset per partition
//!     --to-offset N, --shift-by N, --from-file   ─► clamped to [earliest, latest]
//!     --to-earliest / --to-latest                 ─► ListOffsets
//!     --to-datetime / --by-duration               ─► ListOffsets by timestamp (latest if none)
//!     --to-current                                ─► committed, latest where none
//!  --dry-run (default) prints the plan; --execute commits it (generation −1, no member)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::GroupsError;
use super::admin::{GroupAdmin, OffsetResult, OffsetSpec, Partition};

/// How the new offsets are chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    ToOffset(i64),
    ToEarliest,
    ToLatest,
    ToCurrent,
    ShiftBy(i64),
    /// Milliseconds since the epoch.
    ToTimestamp(i64),
    /// Offsets per group, from a `--from-file` CSV.
    FromPlan(BTreeMap<String, BTreeMap<Partition, i64>>),
}

/// Which partitions are reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every partition the group has a committed offset for.
    AllTopics,
    /// `--topic` values: `topic` (all its partitions) or `topic:0,1`.
    Topics(Vec<String>),
    /// Exactly the partitions of the `--from-file` plan.
    Plan,
}

/// Splits a `--topic` value: `orders` → all partitions, `orders:0,2` → partitions 0 and 2.
pub fn parse_topic_arg(arg: &str) -> Result<(String, Option<Vec<i32>>), String> {
    if !arg.contains(':') {
        return Ok((arg.to_string(), None));
    }
    let parts: Vec<&str> = arg.split(':').collect();
    if parts.len() != 2 || parts[1].is_empty() {
        return Err(format!(
            "Invalid topic arg '{arg}', expected topic name and partitions"
        ));
    }
    let partitions = parts[1]
        .split(',')
        .map(|partition| {
            partition.parse::<i32>().map_err(|_| {
                format!("Invalid partition '{partition}' specified in topic arg '{arg}'")
            })
        })
        .collect::<Result<Vec<i32>, String>>()?;
    Ok((parts[0].to_string(), Some(partitions)))
}

/// Kafka's `checkOffsetsRange`: an offset above the log end becomes the log end, one below
/// the log start becomes the log start (with the warning Kafka logs); unknown bounds leave
/// it as asked.
pub fn clamp(
    partition: &Partition,
    requested: i64,
    earliest: Option<i64>,
    latest: Option<i64>,
) -> (i64, Option<String>) {
    let name = format!("{}-{}", partition.0, partition.1);
    if let Some(latest) = latest
        && requested > latest
    {
        return (
            latest,
            Some(format!(
                "New offset ({requested}) is higher than latest offset for topic partition {name}. Value will be set to {latest}"
            )),
        );
    }
    if let Some(earliest) = earliest
        && requested < earliest
    {
        return (
            earliest,
            Some(format!(
                "New offset ({requested}) is lower than earliest offset for topic partition {name}. Value will be set to {earliest}"
            )),
        );
    }
    (requested, None)
}

/// Parses a reset plan as `--export` writes it: `topic,partition,offset` lines when one
/// group is being reset, `group,topic,partition,offset` lines otherwise (Kafka's
/// `parseResetPlan`; `groups` are the `--group` values).
pub fn parse_reset_plan(
    csv: &str,
    groups: &[String],
) -> Result<BTreeMap<String, BTreeMap<Partition, i64>>, String> {
    let lines: Vec<&str> = csv
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let without_group = groups.len() == 1
        && lines
            .first()
            .is_some_and(|line| line.split(',').count() == 3);
    let mut plan: BTreeMap<String, BTreeMap<Partition, i64>> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (group, topic, partition, offset) = match (without_group, fields.as_slice()) {
            (true, [topic, partition, offset]) => (groups[0].as_str(), *topic, *partition, *offset),
            (false, [group, topic, partition, offset]) => (*group, *topic, *partition, *offset),
            _ => {
                return Err(format!(
                    "the reset plan line '{line}' is not {}",
                    if without_group {
                        "topic,partition,offset"
                    } else {
                        "group,topic,partition,offset"
                    }
                ));
            }
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| format!("the reset plan line '{line}' has a bad partition"))?;
        let offset: i64 = offset
            .parse()
            .map_err(|_| format!("the reset plan line '{line}' has a bad offset"))?;
        plan.entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), offset);
    }
    Ok(plan)
}

/// Kafka's `printOffsetsToReset` table: `%n%-30s %-30s %-10s %-15s` per line (header only
/// when there is a group), then a newline.
pub fn format_reset(result: &BTreeMap<String, BTreeMap<Partition, i64>>) -> String {
    let line = |group: &str, topic: &str, partition: &str, offset: &str| {
        format!(
            "\n{:<30} {:<30} {:<10} {:<15}",
            group, topic, partition, offset
        )
    };
    let mut out = String::new();
    if !result.is_empty() {
        out.push_str(&line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"));
    }
    for (group, offsets) in result {
        for ((topic, partition), offset) in offsets {
            out.push_str(&line(
                group,
                topic,
                &partition.to_string(),
                &offset.to_string(),
            ));
        }
    }
    out.push('\n');
    out
}

/// `--export`: the plan as CSV (`topic,partition,offset`, with the group first when
/// several groups are reset), followed by the empty line Kafka's `println` adds.
pub fn export_csv(
    result: &BTreeMap<String, BTreeMap<Partition, i64>>,
    single_group: bool,
) -> String {
    let mut out = String::new();
    for (group, offsets) in result {
        for ((topic, partition), offset) in offsets {
            if single_group {
                out.push_str(&format!("{topic},{partition},{offset}\n"));
            } else {
                out.push_str(&format!("{group},{topic},{partition},{offset}\n"));
            }
        }
    }
    out.push('\n');
    out
}

/// The partitions `scope` names for `group`.
fn partitions_in_scope(
    admin: &mut GroupAdmin,
    group: &str,
    scope: &Scope,
    scenario: &Scenario,
    committed: &BTreeMap<Partition, i64>,
) -> Result<BTreeSet<Partition>, GroupsError> {
    match scope {
        Scope::AllTopics => Ok(committed.keys().cloned().collect()),
        Scope::Plan => match scenario {
            Scenario::FromPlan(plan) => Ok(plan
                .get(group)
                .map(|offsets| offsets.keys().cloned().collect())
                .unwrap_or_default()),
            _ => Ok(BTreeSet::new()),
        },
        Scope::Topics(args) => {
            let mut partitions = BTreeSet::new();
            let mut whole_topics = Vec::new();
            for arg in args {
                let (topic, indexes) = parse_topic_arg(arg).map_err(GroupsError::Usage)?;
                match indexes {
                    Some(indexes) => {
                        partitions.extend(indexes.into_iter().map(|index| (topic.clone(), index)))
                    }
                    None => whole_topics.push(topic),
                }
            }
            if !whole_topics.is_empty() {
                for (topic, indexes) in admin.topic_partitions(&whole_topics)? {
                    partitions.extend(indexes.into_iter().map(|index| (topic.clone(), index)));
                }
            }
            Ok(partitions)
        }
    }
}

/// Takes the offsets of `results`, failing (as Kafka's usage error) on a partition
/// whose offset could not be listed.
fn require_offsets(
    results: &BTreeMap<Partition, OffsetResult>,
    partitions: &BTreeSet<Partition>,
    what: &str,
) -> Result<BTreeMap<Partition, i64>, GroupsError> {
    partitions
        .iter()
        .map(|partition| match results.get(partition) {
            Some(Ok(offset)) => Ok((partition.clone(), *offset)),
            Some(Err(code)) => Err(GroupsError::Failed(format!(
                "Error getting {what} of topic partition: {}-{} ({})",
                partition.0,
                partition.1,
                weir_net::client::error_name(*code)
            ))),
            None => Err(GroupsError::Failed(format!(
                "Error getting {what} of topic partition: {}-{}",
                partition.0, partition.1
            ))),
        })
        .collect()
}

/// The new offset of every partition in scope for one inactive group. Warnings Kafka
/// logs (clamping) go to `warnings`; the per-partition "is empty" notes of a timestamp
/// reset go to `notes` (Kafka prints those on stdout).
pub fn plan(
    admin: &mut GroupAdmin,
    group: &str,
    scope: &Scope,
    scenario: &Scenario,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<Partition, i64>, GroupsError> {
    let committed = admin.committed_offsets(group)?;
    let partitions = partitions_in_scope(admin, group, scope, scenario, &committed)?;
    let clamped = |admin: &mut GroupAdmin,
                   requested: BTreeMap<Partition, i64>,
                   warnings: &mut Vec<String>|
     -> Result<BTreeMap<Partition, i64>, GroupsError> {
        let keys: BTreeSet<Partition> = requested.keys().cloned().collect();
        let earliest = admin.log_offsets(&keys, OffsetSpec::Earliest)?;
        let latest = admin.log_offsets(&keys, OffsetSpec::Latest)?;
        Ok(requested
            .into_iter()
            .map(|(partition, offset)| {
                let (offset, warning) = clamp(
                    &partition,
                    offset,
                    earliest.get(&partition).and_then(|result| result.ok()),
                    latest.get(&partition).and_then(|result| result.ok()),
                );
                warnings.extend(warning);
                (partition, offset)
            })
            .collect())
    };
    match scenario {
        Scenario::ToOffset(offset) => {
            let requested = partitions.iter().map(|p| (p.clone(), *offset)).collect();
            clamped(admin, requested, warnings)
        }
        Scenario::ShiftBy(shift) => {
            let mut requested = BTreeMap::new();
            for partition in &partitions {
                let current = committed.get(partition).ok_or_else(|| {
                    GroupsError::Usage(format!(
                        "Cannot shift offset for partition {}-{} since there is no current committed offset",
                        partition.0, partition.1
                    ))
                })?;
                requested.insert(partition.clone(), current.saturating_add(*shift));
            }
            clamped(admin, requested, warnings)
        }
        Scenario::FromPlan(plan) => {
            let requested = plan.get(group).cloned().unwrap_or_default();
            clamped(admin, requested, warnings)
        }
        Scenario::ToEarliest => {
            let results = admin.log_offsets(&partitions, OffsetSpec::Earliest)?;
            require_offsets(&results, &partitions, "starting offset")
        }
        Scenario::ToLatest => {
            let results = admin.log_offsets(&partitions, OffsetSpec::Latest)?;
            require_offsets(&results, &partitions, "ending offset")
        }
        Scenario::ToCurrent => {
            let missing: BTreeSet<Partition> = partitions
                .iter()
                .filter(|partition| !committed.contains_key(*partition))
                .cloned()
                .collect();
            let latest = admin.log_offsets(&missing, OffsetSpec::Latest)?;
            let mut offsets = require_offsets(&latest, &missing, "ending offset")?;
            for partition in &partitions {
                if let Some(offset) = committed.get(partition) {
                    offsets.insert(partition.clone(), *offset);
                }
            }
            Ok(offsets)
        }
        Scenario::ToTimestamp(timestamp) => {
            let results = admin.log_offsets(&partitions, OffsetSpec::Timestamp(*timestamp))?;
            // Kafka falls back to the log end where no record is that recent (offset −1).
            let empty: BTreeSet<Partition> = partitions
                .iter()
                .filter(|partition| matches!(results.get(*partition), Some(Ok(-1))))
                .cloned()
                .collect();
            for (topic, partition) in &empty {
                notes.push(format!(
                    "\nWarn: Partition {partition} from topic {topic} is empty. Falling back to latest known offset.\n"
                ));
            }
            let latest = admin.log_offsets(&empty, OffsetSpec::Latest)?;
            let mut merged = results;
            merged.extend(latest);
            require_offsets(&merged, &partitions, "offset by timestamp")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_args_name_whole_topics_or_listed_partitions() {
        assert_eq!(parse_topic_arg("t"), Ok(("t".to_string(), None)));
        assert_eq!(
            parse_topic_arg("t:0,2"),
            Ok(("t".to_string(), Some(vec![0, 2])))
        );
        assert!(parse_topic_arg("t:").is_err());
        assert!(parse_topic_arg("t:1:2").is_err());
        assert_eq!(
            parse_topic_arg("t:x"),
            Err("Invalid partition 'x' specified in topic arg 't:x'".to_string())
        );
    }

    #[test]
    fn clamping_keeps_offsets_between_log_start_and_log_end() {
        let partition = ("t".to_string(), 0);
        assert_eq!(clamp(&partition, 5, Some(2), Some(9)), (5, None));
        let (offset, warning) = clamp(&partition, 50, Some(2), Some(9));
        assert_eq!(offset, 9);
        assert_eq!(
            warning.as_deref(),
            Some(
                "New offset (50) is higher than latest offset for topic partition t-0. Value will be set to 9"
            )
        );
        assert_eq!(clamp(&partition, -3, Some(2), Some(9)).0, 2);
        assert_eq!(clamp(&partition, 50, None, None), (50, None));
    }

    #[test]
    fn reset_plans_read_with_or_without_the_group_column() {
        let single = parse_reset_plan("t,0,5\nt,1,7\n", &["g".to_string()]).expect("valid");
        assert_eq!(
            single,
            BTreeMap::from([(
                "g".to_string(),
                BTreeMap::from([(("t".to_string(), 0), 5), (("t".to_string(), 1), 7)])
            )])
        );
        let multi = parse_reset_plan("a,t,0,1\nb,t,0,2\n", &[]).expect("valid");
        assert_eq!(multi.len(), 2);
        assert_eq!(multi["b"][&("t".to_string(), 0)], 2);
        assert!(parse_reset_plan("t,zero,5\n", &["g".to_string()]).is_err());
        // The export format reads back as the same plan.
        assert_eq!(
            parse_reset_plan(&export_csv(&single, true), &["g".to_string()]),
            Ok(single)
        );
    }

    #[test]
    fn reset_table_matches_kafkas_layout() {
        let result =
            BTreeMap::from([("g".to_string(), BTreeMap::from([(("t".to_string(), 0), 3)]))]);
        assert_eq!(
            format_reset(&result),
            format!(
                "\nGROUP{} TOPIC{} PARTITION  NEW-OFFSET     \ng{} t{} 0          3              \n",
                " ".repeat(25),
                " ".repeat(25),
                " ".repeat(29),
                " ".repeat(29)
            )
        );
        assert_eq!(format_reset(&BTreeMap::new()), "\n");
    }
}
