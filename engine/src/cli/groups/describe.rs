//! `--describe` (offsets, `--members`, `--state`) and `--list --state` tables, laid out
//! as `kafka-consumer-groups.sh` lays them out: `String.format` columns (`%-Ns`, padded,
//! never cut) whose widths Kafka computes from the longest value with a floor of 15,
//! `-` for a missing value, each table preceded by an empty line. Rows are built from
//! DescribeGroups, OffsetFetch and ListOffsets results; everything here is pure.

use std::collections::{BTreeMap, BTreeSet};

use super::admin::{GroupDescription, Member, OffsetResult, Partition};

/// Kafka's placeholder for a value that is not there.
pub const MISSING: &str = "-";
/// Narrowest width of a computed column.
const COLUMN_WIDTH_MIN: usize = 15;

/// `%-{width}s`: left-aligned, padded with spaces to `width` characters, never cut.
pub fn pad(value: &str, width: usize) -> String {
    format!("{value:<width$}")
}

fn width_of<'a>(values: impl Iterator<Item = &'a str>, floor: usize) -> usize {
    values
        .map(|value| value.chars().count())
        .fold(floor, usize::max)
}

/// One line of the offsets table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub consumer_id: String,
    pub host: String,
    pub client_id: String,
}

impl OffsetRow {
    /// Kafka's lag: log end offset − committed offset, when both are known.
    pub fn lag(&self) -> Option<i64> {
        match (self.current_offset, self.log_end_offset) {
            (Some(current), Some(end)) if current != -1 => Some(end - current),
            _ => None,
        }
    }
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| MISSING.to_string(), |value| value.to_string())
}

/// The rows of `--describe --offsets`: members with partitions first (most partitions
/// first, each member's partitions in order), then partitions that have a committed
/// offset but no owner, with `-` as consumer, host and client.
pub fn offset_rows(
    description: &GroupDescription,
    committed: &BTreeMap<Partition, i64>,
    log_end: &BTreeMap<Partition, OffsetResult>,
) -> Vec<OffsetRow> {
    let row = |partition: &Partition, consumer_id: &str, host: &str, client_id: &str| OffsetRow {
        group: description.group_id.clone(),
        topic: partition.0.clone(),
        partition: partition.1,
        current_offset: committed.get(partition).copied(),
        log_end_offset: log_end.get(partition).and_then(|result| result.ok()),
        consumer_id: consumer_id.to_string(),
        host: host.to_string(),
        client_id: client_id.to_string(),
    };
    let mut members: Vec<&Member> = description
        .members
        .iter()
        .filter(|member| !member.assignment.is_empty())
        .collect();
    // Stable, so members with equal counts keep the coordinator's order (as Kafka).
    members.sort_by_key(|member| std::cmp::Reverse(member.assignment.len()));
    let mut rows = Vec::new();
    let mut assigned = BTreeSet::new();
    for member in members {
        let partitions: BTreeSet<&Partition> = member.assignment.iter().collect();
        for partition in partitions {
            assigned.insert(partition.clone());
            rows.push(row(
                partition,
                &member.member_id,
                &member.host,
                &member.client_id,
            ));
        }
    }
    for partition in committed
        .keys()
        .filter(|partition| !assigned.contains(*partition))
    {
        rows.push(row(partition, MISSING, MISSING, MISSING));
    }
    rows
}

/// Every partition whose log end offset `offset_rows` needs (assigned or committed).
pub fn partitions_to_describe(
    description: &GroupDescription,
    committed: &BTreeMap<Partition, i64>,
) -> BTreeSet<Partition> {
    description
        .members
        .iter()
        .flat_map(|member| member.assignment.iter().cloned())
        .chain(committed.keys().cloned())
        .collect()
}

/// The offsets table (header and rows, each line preceded by a newline, one newline at
/// the end), as `printOffsets` prints it.
pub fn format_offsets(rows: &[OffsetRow]) -> String {
    let group_width = width_of(rows.iter().map(|row| row.group.as_str()), COLUMN_WIDTH_MIN);
    let topic_width = width_of(rows.iter().map(|row| row.topic.as_str()), COLUMN_WIDTH_MIN);
    let consumer_width = width_of(
        rows.iter().map(|row| row.consumer_id.as_str()),
        COLUMN_WIDTH_MIN,
    );
    let host_width = width_of(rows.iter().map(|row| row.host.as_str()), COLUMN_WIDTH_MIN);
    let line = |cells: [&str; 9]| {
        format!(
            "\n{} {} {} {} {} {} {} {} {}",
            pad(cells[0], group_width),
            pad(cells[1], topic_width),
            pad(cells[2], 10),
            pad(cells[3], 15),
            pad(cells[4], 15),
            pad(cells[5], 15),
            pad(cells[6], consumer_width),
            pad(cells[7], host_width),
            cells[8]
        )
    };
    let mut out = line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in rows {
        out.push_str(&line([
            &row.group,
            &row.topic,
            &row.partition.to_string(),
            &show(row.current_offset),
            &show(row.log_end_offset),
            &show(row.lag()),
            &row.consumer_id,
            &row.host,
            &row.client_id,
        ]));
    }
    out.push('\n');
    out
}

/// `topic(0,1), other(2)`: a member's partitions per topic, as Kafka's `--verbose`
/// ASSIGNMENT column showed them (topics sorted, partitions in numeric order).
pub fn format_assignment(assignment: &[Partition]) -> String {
    if assignment.is_empty() {
        return MISSING.to_string();
    }
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in assignment {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut topics: Vec<String> = by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}({})", list.join(","))
        })
        .collect();
    topics.sort();
    topics.join(", ")
}

/// The `--members` table: a header line after an empty line, then one line per member,
/// every cell but the last followed by a space (Kafka's format ends in `%-15s `).
pub fn format_members(group: &str, members: &[Member], verbose: bool) -> String {
    let group_width = width_of(std::iter::once(group), COLUMN_WIDTH_MIN);
    let consumer_width = width_of(
        members.iter().map(|member| member.member_id.as_str()),
        COLUMN_WIDTH_MIN,
    );
    let instance_ids: Vec<&str> = members
        .iter()
        .map(|member| member.group_instance_id.as_deref().unwrap_or(""))
        .collect();
    let instance_width = width_of(instance_ids.iter().copied(), 17);
    let with_instance_id = instance_ids.iter().any(|id| !id.is_empty());
    let host_width = width_of(
        members.iter().map(|member| member.host.as_str()),
        COLUMN_WIDTH_MIN,
    );
    let client_width = width_of(
        members.iter().map(|member| member.client_id.as_str()),
        COLUMN_WIDTH_MIN,
    );
    let line =
        |group: &str, consumer: &str, instance: &str, host: &str, client: &str, count: &str| {
            let mut text = format!(
                "{} {} ",
                pad(group, group_width),
                pad(consumer, consumer_width)
            );
            if with_instance_id {
                text.push_str(&pad(instance, instance_width));
                text.push(' ');
            }
            text.push_str(&format!(
                "{} {} {} ",
                pad(host, host_width),
                pad(client, client_width),
                pad(count, 15)
            ));
            text
        };
    let mut out = String::from("\n");
    out.push_str(&line(
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    ));
    if verbose {
        out.push_str("ASSIGNMENT");
    }
    out.push('\n');
    for (member, instance_id) in members.iter().zip(&instance_ids) {
        out.push_str(&line(
            group,
            &member.member_id,
            instance_id,
            &member.host,
            &member.client_id,
            &member.assignment.len().to_string(),
        ));
        if verbose {
            out.push_str(&format_assignment(&member.assignment));
        }
        out.push('\n');
    }
    out
}

/// The `--state` table. Kafka sizes the GROUP column by the coordinator's text (at least
/// 25) and gives COORDINATOR (ID) a fixed 25; kept as is so output matches byte for byte.
pub fn format_state(description: &GroupDescription) -> String {
    let coordinator = format!(
        "{}:{}  ({})",
        description.coordinator.host, description.coordinator.port, description.coordinator.node_id
    );
    let first_width = coordinator.chars().count().max(25);
    let line = |cells: [&str; 5]| {
        format!(
            "\n{} {} {} {} {}",
            pad(cells[0], first_width),
            pad(cells[1], 25),
            pad(cells[2], 20),
            pad(cells[3], 15),
            cells[4]
        )
    };
    let mut out = line([
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]);
    out.push_str(&line([
        &description.group_id,
        &coordinator,
        &description.assignor,
        &description.state,
        &description.members.len().to_string(),
    ]));
    out.push('\n');
    out
}

/// `--list --state`: GROUP (as wide as the longest id, at least 15, plus 10) and STATE.
pub fn format_list_with_state(groups: &[(String, String)]) -> String {
    let width = width_of(
        groups.iter().map(|(group, _)| group.as_str()),
        COLUMN_WIDTH_MIN,
    ) + 10;
    let mut out = format!("{} {}\n", pad("GROUP", width), pad("STATE", 20));
    for (group, state) in groups {
        out.push_str(&format!("{} {}\n", pad(group, width), pad(state, 20)));
    }
    out
}

#[cfg(test)]
mod tests {
    use weir_net::client::BrokerAddress;

    use super::*;

    fn member(id: &str, client: &str, assignment: &[(&str, i32)]) -> Member {
        Member {
            member_id: id.to_string(),
            group_instance_id: None,
            client_id: client.to_string(),
            host: "/127.0.0.1".to_string(),
            assignment: assignment
                .iter()
                .map(|(topic, partition)| (topic.to_string(), *partition))
                .collect(),
        }
    }

    fn group(state: &str, members: Vec<Member>) -> GroupDescription {
        GroupDescription {
            group_id: "g".to_string(),
            state: state.to_string(),
            assignor: "range".to_string(),
            members,
            coordinator: BrokerAddress {
                node_id: 0,
                host: "127.0.0.1".to_string(),
                port: 9092,
            },
        }
    }

    #[test]
    fn offset_rows_put_busy_members_first_and_unowned_commits_last() {
        let description = group(
            "Stable",
            vec![
                member("m1", "c1", &[("t", 2)]),
                member("m2", "c2", &[("t", 1), ("t", 0)]),
                member("idle", "c3", &[]),
            ],
        );
        let committed: BTreeMap<Partition, i64> = [
            (("t".to_string(), 0), 5),
            (("t".to_string(), 2), 7),
            (("u".to_string(), 0), 3),
        ]
        .into();
        let log_end: BTreeMap<Partition, OffsetResult> = [
            (("t".to_string(), 0), Ok(5)),
            (("t".to_string(), 1), Ok(4)),
            (("t".to_string(), 2), Ok(9)),
            (("u".to_string(), 0), Err(3)),
        ]
        .into();
        let rows = offset_rows(&description, &committed, &log_end);
        let summary: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "{}-{} current {:?} end {:?} lag {:?} {}",
                    row.topic,
                    row.partition,
                    row.current_offset,
                    row.log_end_offset,
                    row.lag(),
                    row.consumer_id
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "t-0 current Some(5) end Some(5) lag Some(0) m2",
                "t-1 current None end Some(4) lag None m2",
                "t-2 current Some(7) end Some(9) lag Some(2) m1",
                "u-0 current Some(3) end None lag None -",
            ]
        );
        assert_eq!(partitions_to_describe(&description, &committed).len(), 4);
    }

    #[test]
    fn offsets_table_matches_kafkas_layout() {
        let rows = vec![OffsetRow {
            group: "g".to_string(),
            topic: "orders".to_string(),
            partition: 0,
            current_offset: Some(3),
            log_end_offset: Some(4),
            consumer_id: MISSING.to_string(),
            host: MISSING.to_string(),
            client_id: MISSING.to_string(),
        }];
        assert_eq!(
            format_offsets(&rows),
            "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\
             \ng               orders          0          3               4               1               -               -               -\n"
        );
        // A long value widens its column for every line.
        let mut long = rows[0].clone();
        long.topic = "a-rather-long-topic-name".to_string();
        let table = format_offsets(&[long]);
        assert!(
            table.contains("\nGROUP           TOPIC                    PARTITION"),
            "{table}"
        );
    }

    #[test]
    fn members_table_ends_cells_with_a_space_and_verbose_adds_assignments() {
        let members = vec![member("m-1", "c", &[("t", 1), ("t", 0), ("a", 3)])];
        assert_eq!(
            format_members("g", &members, true),
            "\nGROUP           CONSUMER-ID     HOST            CLIENT-ID       #PARTITIONS     ASSIGNMENT\
             \ng               m-1             /127.0.0.1      c               3               a(3), t(0,1)\n"
        );
        let mut static_member = member("m-2", "c", &[]);
        static_member.group_instance_id = Some("i".to_string());
        let table = format_members("g", &[static_member], false);
        assert!(
            table.starts_with("\nGROUP           CONSUMER-ID     GROUP-INSTANCE-ID HOST"),
            "{table}"
        );
        assert!(
            table.contains("m-2             i                 /127.0.0.1"),
            "{table}"
        );
    }

    #[test]
    fn state_table_sizes_the_group_column_by_the_coordinator() {
        let description = group("Stable", vec![member("m", "c", &[("t", 0)])]);
        assert_eq!(
            format_state(&description),
            "\nGROUP                     COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE           #MEMBERS\
             \ng                         127.0.0.1:9092  (0)       range                Stable          1\n"
        );
    }

    #[test]
    fn list_with_state_pads_group_ids_by_ten_more_than_the_longest() {
        let table = format_list_with_state(&[("g".to_string(), "Empty".to_string())]);
        assert_eq!(
            table,
            format!(
                "GROUP{} STATE{}\ng{} Empty{}\n",
                " ".repeat(20),
                " ".repeat(15),
                " ".repeat(24),
                " ".repeat(15)
            )
        );
    }
}
