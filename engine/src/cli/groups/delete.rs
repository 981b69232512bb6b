//! `--delete` (DeleteGroups) and `--delete-offsets` (OffsetDelete), with the messages
//! `kafka-consumer-groups.sh` prints. Failures print Kafka's error lines on stderr and
//! make the command exit 1 (Kafka prints them on stdout and exits 0; weir's tools keep
//! stdout for results and report failure in the exit code).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use weir_net::client::error_name;

use super::GroupsError;
use super::admin::{GroupAdmin, Partition};
use super::reset::parse_topic_arg;
use crate::cli::groups::{print_err, print_out};

/// Kafka's message for the error codes these commands meet (`Errors.java`).
pub fn kafka_message(code: i16) -> Option<&'static str> {
    Some(match ResponseError::try_from_code(code)? {
        ResponseError::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        ResponseError::CoordinatorLoadInProgress => {
            "The coordinator is loading and hence can't process requests."
        }
        ResponseError::CoordinatorNotAvailable => "The coordinator is not available.",
        ResponseError::NotCoordinator => "This is not the correct coordinator.",
        ResponseError::InvalidGroupId => "The configured groupId is invalid.",
        ResponseError::GroupAuthorizationFailed => "Group authorization failed.",
        ResponseError::NonEmptyGroup => "The group is not empty.",
        ResponseError::GroupIdNotFound => "The group id does not exist.",
        ResponseError::GroupSubscribedToTopic => {
            "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it."
        }
        _ => return None,
    })
}

/// `NON_EMPTY_GROUP (The group is not empty.)`: Kafka's error name and message.
pub fn describe_error(code: i16) -> String {
    match kafka_message(code) {
        Some(message) => format!("{} ({message})", error_name(code)),
        None => error_name(code),
    }
}

/// Deletes `groups`; prints Kafka's success line, or its failure lines.
pub fn delete_groups(admin: &mut GroupAdmin, groups: &[String]) -> Result<bool, GroupsError> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group in groups {
        match admin.delete_group(group)? {
            0 => deleted.push(group.clone()),
            code => failed.push((group.clone(), code)),
        }
    }
    if failed.is_empty() {
        // Kafka quotes the joined list once: ('a, b').
        print_out(&format!(
            "Deletion of requested consumer groups ('{}') was successful.\n",
            deleted.join(", ")
        ));
        return Ok(true);
    }
    let mut text = String::from("\nError: Deletion of some consumer groups failed:\n");
    for (group, code) in &failed {
        text.push_str(&format!(
            "* Group '{group}' could not be deleted due to: {}\n",
            describe_error(*code)
        ));
    }
    print_err(&text);
    if !deleted.is_empty() {
        let names: Vec<String> = deleted.iter().map(|group| format!("'{group}'")).collect();
        print_out(&format!(
            "\nThese consumer groups were deleted successfully: {}\n",
            names.join(", ")
        ));
    }
    Ok(false)
}

/// Kafka's status table of `--delete-offsets`: `%n%-30s %-15s %-15s` lines, then a
/// newline. A topic that could not be resolved has partition "Not Provided".
pub fn format_delete_offsets(rows: &[(String, Option<i32>, String)]) -> String {
    let line = |topic: &str, partition: &str, status: &str| {
        format!("\n{topic:<30} {partition:<15} {status:<15}")
    };
    let mut out = line("TOPIC", "PARTITION", "STATUS");
    for (topic, partition, status) in rows {
        let partition = partition.map_or_else(|| "Not Provided".to_string(), |p| p.to_string());
        out.push_str(&line(topic, &partition, status));
    }
    out.push('\n');
    out
}

/// Deletes the committed offsets of `topics` (`topic` or `topic:0,1`) for `group`.
pub fn delete_offsets(
    admin: &mut GroupAdmin,
    group: &str,
    topics: &[String],
) -> Result<bool, GroupsError> {
    let mut partitions: BTreeSet<Partition> = BTreeSet::new();
    let mut rows: Vec<(String, Option<i32>, String)> = Vec::new();
    for arg in topics {
        let (topic, indexes) = parse_topic_arg(arg).map_err(GroupsError::Usage)?;
        match indexes {
            Some(indexes) => partitions.extend(indexes.into_iter().map(|i| (topic.clone(), i))),
            None => match admin.topic_partitions(std::slice::from_ref(&topic)) {
                Ok(found) => {
                    for (name, indexes) in found {
                        partitions.extend(indexes.into_iter().map(|i| (name.clone(), i)));
                    }
                }
                Err(error) => match error.code() {
                    Some(code) => {
                        rows.push((topic, None, format!("Error: :{}", describe_error(code))))
                    }
                    None => return Err(error.into()),
                },
            },
        }
    }
    let (top_code, codes) = if partitions.is_empty() {
        (0, BTreeMap::new())
    } else {
        admin.delete_offsets(group, &partitions)?
    };
    let mut first_partition_error = None;
    for partition in &partitions {
        let code = codes.get(partition).copied().unwrap_or(top_code);
        let status = if code == 0 {
            "Successful".to_string()
        } else {
            first_partition_error.get_or_insert(code);
            format!("Error: :{}", describe_error(code))
        };
        rows.push((partition.0.clone(), Some(partition.1), status));
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let unresolved = rows.iter().any(|(_, partition, _)| partition.is_none());
    // As Kafka's admin client: the request's error, else the first partition's.
    let code = if top_code != 0 {
        top_code
    } else if let Some(code) = first_partition_error {
        code
    } else if unresolved {
        ResponseError::UnknownTopicOrPartition.code()
    } else {
        0
    };
    let success = code == 0;
    if success {
        print_out(&format!(
            "Request succeed for deleting offsets with topic {} group {group}\n",
            topics.join(", ")
        ));
    } else {
        let message = match ResponseError::try_from_code(code) {
            Some(ResponseError::InvalidGroupId) => format!("'{group}' is not valid."),
            Some(ResponseError::GroupIdNotFound) => format!("'{group}' does not exist."),
            Some(ResponseError::GroupAuthorizationFailed) => {
                format!("Access to '{group}' is not authorized.")
            }
            Some(ResponseError::NonEmptyGroup) => format!(
                "Deleting offsets of a consumer group '{group}' is forbidden if the group is not empty."
            ),
            Some(
                ResponseError::GroupSubscribedToTopic
                | ResponseError::TopicAuthorizationFailed
                | ResponseError::UnknownTopicOrPartition,
            ) => "Encounter some partition level error, see the follow-up details:".to_string(),
            _ => format!("Encounter some unknown error: {}", error_name(code)),
        };
        print_err(&format!("\nError: {message}\n"));
    }
    print_out(&format_delete_offsets(&rows));
    Ok(success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_with_kafkas_name_and_message() {
        assert_eq!(
            describe_error(68),
            "NON_EMPTY_GROUP (The group is not empty.)"
        );
        assert_eq!(
            describe_error(69),
            "GROUP_ID_NOT_FOUND (The group id does not exist.)"
        );
        assert_eq!(describe_error(36), "TOPIC_ALREADY_EXISTS");
    }

    #[test]
    fn delete_offsets_table_matches_kafkas_layout() {
        let table = format_delete_offsets(&[
            ("t".to_string(), Some(0), "Successful".to_string()),
            (
                "x".to_string(),
                None,
                "Error: :UNKNOWN_TOPIC_OR_PARTITION".to_string(),
            ),
        ]);
        assert_eq!(
            table,
            format!(
                "\nTOPIC{} PARTITION       STATUS         \nt{} 0               Successful     \nx{} Not Provided    Error: :UNKNOWN_TOPIC_OR_PARTITION\n",
                " ".repeat(25),
                " ".repeat(29),
                " ".repeat(29)
            )
        );
    }
}
