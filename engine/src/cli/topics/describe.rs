//! `weir topics --describe`: a topic line and a line per partition, in Kafka's format
//! (`\t` is a tab):
//!
//! ```text
//! Topic: orders\tTopicId: 1Wm2uVhXQwWuZ0w7U0Q0iA\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=1000
//! \tTopic: orders\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0\tElr: N/A\tLastKnownElr: N/A
//! \tTopic: orders\tPartition: 1\tLeader: 0\tReplicas: 0\tIsr: 0\tElr: N/A\tLastKnownElr: N/A
//! ```
//!
//! `Configs` lists every config whose source is not DEFAULT_CONFIG (Kafka's
//! `ConfigEntry.isDefault`), so topic overrides and values set in the broker's
//! properties file, in the broker's order. Partition reassignments are not queried
//! (ListPartitionReassignments): replication factors are the replica counts.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_net::client::{ClientError, Connection, KafkaClient, metadata_topic};
use weir_storage::meta::uuid_to_kafka_string;

use super::{
    Args, PARTITIONS_PER_RESPONSE_DEFAULT, TopicFilter, TopicsError, ensure_found, matching_topics,
    write_stdout,
};
use crate::cli::configs::{self, ConfigEntry, RESOURCE_TOPIC, SOURCE_DEFAULT_CONFIG};

/// Bound on DescribeTopicPartitions pages for one describe (2000 partitions a page
/// by default: far beyond any cluster).
const DESCRIBE_PAGES_MAX: usize = 100_000;
/// Kafka's default `min.insync.replicas`, used when a broker does not report it.
const MIN_INSYNC_REPLICAS_DEFAULT: usize = 1;

/// One partition as the describe output needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// None: no leader (printed `none`).
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// None when the broker answered through Metadata, which has no ELR (`N/A`).
    pub elr: Option<Vec<i32>>,
    pub last_known_elr: Option<Vec<i32>>,
}

/// One topic: its id and partitions (sorted by partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Kafka's replication factor: the first partition's replica count.
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .first()
            .map_or(0, |partition| partition.replicas.len())
    }
}

/// Which lines the report flags ask for (Kafka's `DescribeOptions`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reports {
    pub under_replicated: bool,
    pub unavailable: bool,
    pub under_min_isr: bool,
    pub at_min_isr: bool,
    pub with_overrides: bool,
}

impl Reports {
    fn from_args(args: &Args) -> Reports {
        Reports {
            under_replicated: args.under_replicated_partitions,
            unavailable: args.unavailable_partitions,
            under_min_isr: args.under_min_isr_partitions,
            at_min_isr: args.at_min_isr_partitions,
            with_overrides: args.topics_with_overrides,
        }
    }

    fn any_partition_report(&self) -> bool {
        self.under_replicated || self.unavailable || self.under_min_isr || self.at_min_isr
    }
}

pub(super) fn describe(
    client: &mut KafkaClient,
    args: &Args,
    filter: Option<&TopicFilter>,
) -> Result<(), TopicsError> {
    let (metadata, names) = match &args.topic_id {
        Some(id) => {
            let (metadata, all) = matching_topics(client, None, args.exclude_internal)?;
            let wanted = weir_storage::meta::uuid_from_kafka_string(id).filter(|id| !id.is_nil());
            let names: Vec<String> = metadata
                .topics
                .iter()
                .filter(|topic| Some(topic.topic_id) == wanted)
                .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
                .filter(|name| all.contains(name))
                .collect();
            if names.is_empty() && !args.if_exists {
                return Err(TopicsError::TopicIdNotFound(id.clone()));
            }
            (metadata, names)
        }
        None => {
            let (metadata, names) = matching_topics(client, filter, args.exclude_internal)?;
            ensure_found(args, &names)?;
            (metadata, names)
        }
    };
    if names.is_empty() {
        return Ok(());
    }
    let live_brokers: HashSet<i32> = metadata
        .brokers
        .iter()
        .map(|broker| broker.node_id.0)
        .collect();
    let connection = client.any();
    let topics = if connection
        .version_of::<DescribeTopicPartitionsRequest>()
        .is_ok()
    {
        let limit = args
            .partition_size_limit_per_response
            .unwrap_or(PARTITIONS_PER_RESPONSE_DEFAULT);
        from_describe_topic_partitions(connection, &names, limit)?
    } else {
        from_metadata(&metadata, &names)?
    };
    let resources: Vec<(i8, String)> = names
        .iter()
        .map(|name| (RESOURCE_TOPIC, name.clone()))
        .collect();
    let configs = configs::describe_configs(connection, &resources, false)?;
    let reports = Reports::from_args(args);
    let mut out = String::new();
    for (topic, entries) in topics.iter().zip(&configs) {
        out.push_str(&format_topic(topic, entries, reports, &live_brokers));
    }
    Ok(write_stdout(&out)?)
}

/// The topic line (when wanted) and the wanted partition lines of one topic.
pub fn format_topic(
    topic: &TopicInfo,
    entries: &[ConfigEntry],
    reports: Reports,
    live_brokers: &HashSet<i32>,
) -> String {
    let mut out = String::new();
    let describe_configs = !reports.any_partition_report();
    let has_override = entries
        .iter()
        .any(|entry| entry.source != SOURCE_DEFAULT_CONFIG);
    if describe_configs && (!reports.with_overrides || has_override) {
        out.push_str(&topic_line(topic, entries));
        out.push('\n');
    }
    if reports.with_overrides {
        return out;
    }
    let min_isr = entries
        .iter()
        .find(|entry| entry.name == "min.insync.replicas")
        .and_then(|entry| entry.value.as_deref()?.trim().parse::<usize>().ok())
        .unwrap_or(MIN_INSYNC_REPLICAS_DEFAULT);
    for partition in &topic.partitions {
        let under_replicated = partition.replicas.len() > partition.isr.len();
        let unavailable = partition
            .leader
            .is_none_or(|leader| !live_brokers.contains(&leader));
        let under_min_isr = partition.leader.is_none() || partition.isr.len() < min_isr;
        let at_min_isr = partition.isr.len() == min_isr;
        let wanted = describe_configs
            || (reports.under_replicated && under_replicated)
            || (reports.unavailable && unavailable)
            || (reports.under_min_isr && under_min_isr)
            || (reports.at_min_isr && at_min_isr);
        if wanted {
            out.push_str(&partition_line(&topic.name, partition));
            out.push('\n');
        }
    }
    out
}

/// `Topic: T\tTopicId: ...\tPartitionCount: N\tReplicationFactor: R\tConfigs: k=v,...`
/// (no TopicId for the nil id, as Kafka).
pub fn topic_line(topic: &TopicInfo, entries: &[ConfigEntry]) -> String {
    let configs: Vec<String> = entries
        .iter()
        .filter(|entry| entry.source != SOURCE_DEFAULT_CONFIG)
        .map(|entry| {
            format!(
                "{}={}",
                entry.name,
                entry.value.as_deref().unwrap_or("null")
            )
        })
        .collect();
    let mut line = format!("Topic: {}", topic.name);
    if !topic.id.is_nil() {
        line.push_str(&format!("\tTopicId: {}", uuid_to_kafka_string(topic.id)));
    }
    line.push_str(&format!(
        "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        topic.partitions.len(),
        topic.replication_factor(),
        configs.join(",")
    ));
    line
}

/// `\tTopic: T\tPartition: P\tLeader: L\tReplicas: a,b\tIsr: a,b\tElr: ...\tLastKnownElr: ...`
pub fn partition_line(topic: &str, partition: &PartitionInfo) -> String {
    let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let optional_ids = |ids_or_none: &Option<Vec<i32>>| {
        ids_or_none
            .as_deref()
            .map_or_else(|| "N/A".to_string(), ids)
    };
    format!(
        "\tTopic: {topic}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: {}\tLastKnownElr: {}",
        partition.partition,
        partition
            .leader
            .map_or_else(|| "none".to_string(), |leader| leader.to_string()),
        ids(&partition.replicas),
        ids(&partition.isr),
        optional_ids(&partition.elr),
        optional_ids(&partition.last_known_elr),
    )
}

fn leader(id: i32) -> Option<i32> {
    (id >= 0).then_some(id)
}

fn broker_ids(ids: &[kafka_protocol::messages::BrokerId]) -> Vec<i32> {
    ids.iter().map(|id| id.0).collect()
}

/// Topics `names` from a Metadata answer (no ELR there), in `names` order.
fn from_metadata(
    metadata: &MetadataResponse,
    names: &[String],
) -> Result<Vec<TopicInfo>, TopicsError> {
    names
        .iter()
        .map(|name| {
            let topic = metadata_topic(metadata, name).expect("names come from this metadata");
            ClientError::check(
                topic.error_code,
                None,
                format!("Metadata for topic '{name}'"),
            )?;
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|partition| PartitionInfo {
                    partition: partition.partition_index,
                    leader: leader(partition.leader_id.0),
                    replicas: broker_ids(&partition.replica_nodes),
                    isr: broker_ids(&partition.isr_nodes),
                    elr: None,
                    last_known_elr: None,
                })
                .collect();
            partitions.sort_by_key(|partition| partition.partition);
            Ok(TopicInfo {
                name: name.clone(),
                id: topic.topic_id,
                partitions,
            })
        })
        .collect()
}

/// Topics `names` through DescribeTopicPartitions (Kafka 3.8+), following the cursor
/// across pages of at most `limit` partitions; in `names` order.
fn from_describe_topic_partitions(
    connection: &mut Connection,
    names: &[String],
    limit: i32,
) -> Result<Vec<TopicInfo>, TopicsError> {
    let mut topics: BTreeMap<String, TopicInfo> = BTreeMap::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..DESCRIBE_PAGES_MAX {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|name| {
                        TopicRequest::default()
                            .with_name(TopicName(StrBytes::from_string(name.clone())))
                    })
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.take());
        let (_, response): (i16, DescribeTopicPartitionsResponse) = connection.call(&request)?;
        for topic in response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|name| name.0.to_string())
                .unwrap_or_default();
            ClientError::check(
                topic.error_code,
                None,
                format!("DescribeTopicPartitions for topic '{name}'"),
            )?;
            let entry = topics.entry(name.clone()).or_insert_with(|| TopicInfo {
                name,
                id: topic.topic_id,
                partitions: Vec::new(),
            });
            entry
                .partitions
                .extend(topic.partitions.iter().map(|partition| {
                    PartitionInfo {
                        partition: partition.partition_index,
                        leader: leader(partition.leader_id.0),
                        replicas: broker_ids(&partition.replica_nodes),
                        isr: broker_ids(&partition.isr_nodes),
                        elr: partition
                            .eligible_leader_replicas
                            .as_deref()
                            .map(broker_ids),
                        last_known_elr: partition.last_known_elr.as_deref().map(broker_ids),
                    }
                }));
        }
        match response.next_cursor {
            Some(next) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(next.topic_name)
                        .with_partition_index(next.partition_index),
                )
            }
            None => {
                return names
                    .iter()
                    .map(|name| {
                        let mut topic =
                            topics.remove(name).ok_or_else(|| ClientError::Protocol {
                                address: connection.address().to_string(),
                                what: "DescribeTopicPartitions response".to_string(),
                                reason: format!("topic '{name}' is missing"),
                            })?;
                        topic
                            .partitions
                            .sort_by_key(|partition| partition.partition);
                        topic
                            .partitions
                            .dedup_by_key(|partition| partition.partition);
                        Ok(topic)
                    })
                    .collect();
            }
        }
    }
    Err(ClientError::Protocol {
        address: connection.address().to_string(),
        what: "DescribeTopicPartitions responses".to_string(),
        reason: format!("still paging after {DESCRIBE_PAGES_MAX} pages"),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(
        partition: i32,
        leader: Option<i32>,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionInfo {
        PartitionInfo {
            partition,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            elr: None,
            last_known_elr: None,
        }
    }

    fn entry(name: &str, value: &str, source: i8) -> ConfigEntry {
        ConfigEntry {
            name: name.to_string(),
            value: Some(value.to_string()),
            source,
            sensitive: false,
            synonyms: Vec::new(),
        }
    }

    fn topic() -> TopicInfo {
        TopicInfo {
            name: "orders".to_string(),
            id: Uuid::from_bytes([
                0xd5, 0x69, 0xb6, 0xb9, 0x58, 0x57, 0x43, 0x05, 0xae, 0x67, 0x4c, 0x3b, 0x53, 0x44,
                0x34, 0x88,
            ]),
            partitions: vec![
                partition(0, Some(0), &[0, 1], &[0, 1]),
                partition(1, None, &[1, 0], &[0]),
            ],
        }
    }

    #[test]
    fn topic_line_has_kafkas_fields_and_only_non_default_configs() {
        let entries = vec![
            entry("cleanup.policy", "delete", SOURCE_DEFAULT_CONFIG),
            entry("retention.ms", "1000", 1),
            entry("segment.bytes", "1048576", 4),
        ];
        assert_eq!(
            topic_line(&topic(), &entries),
            "Topic: orders\tTopicId: 1Wm2uVhXQwWuZ0w7U0Q0iA\tPartitionCount: 2\t\
             ReplicationFactor: 2\tConfigs: retention.ms=1000,segment.bytes=1048576"
        );
        let nil = TopicInfo {
            id: Uuid::nil(),
            partitions: Vec::new(),
            ..topic()
        };
        assert_eq!(
            topic_line(&nil, &[]),
            "Topic: orders\tPartitionCount: 0\tReplicationFactor: 0\tConfigs: "
        );
    }

    #[test]
    fn partition_lines_start_with_a_tab_and_print_missing_elr_as_not_available() {
        let topic = topic();
        assert_eq!(
            partition_line("orders", &topic.partitions[0]),
            "\tTopic: orders\tPartition: 0\tLeader: 0\tReplicas: 0,1\tIsr: 0,1\tElr: N/A\tLastKnownElr: N/A"
        );
        let mut with_elr = topic.partitions[1].clone();
        with_elr.elr = Some(Vec::new());
        with_elr.last_known_elr = Some(vec![1]);
        assert_eq!(
            partition_line("orders", &with_elr),
            "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 1,0\tIsr: 0\tElr: \tLastKnownElr: 1"
        );
    }

    #[test]
    fn report_flags_pick_partitions_as_kafka_does() {
        let live: HashSet<i32> = [0, 1].into_iter().collect();
        let entries = vec![entry("min.insync.replicas", "2", 1)];
        let everything = format_topic(&topic(), &entries, Reports::default(), &live);
        assert_eq!(everything.lines().count(), 3, "{everything}");
        let under = Reports {
            under_replicated: true,
            ..Reports::default()
        };
        let text = format_topic(&topic(), &entries, under, &live);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            vec![partition_line("orders", &topic().partitions[1])]
        );
        let unavailable = Reports {
            unavailable: true,
            ..Reports::default()
        };
        let text = format_topic(&topic(), &entries, unavailable, &live);
        assert!(
            text.starts_with("\tTopic: orders\tPartition: 1\t") && text.lines().count() == 1,
            "{text}"
        );
        let at_min = Reports {
            at_min_isr: true,
            ..Reports::default()
        };
        let text = format_topic(&topic(), &entries, at_min, &live);
        assert!(
            text.starts_with("\tTopic: orders\tPartition: 0\t") && text.lines().count() == 1,
            "{text}"
        );
        let overrides = Reports {
            with_overrides: true,
            ..Reports::default()
        };
        assert_eq!(
            format_topic(&topic(), &entries, overrides, &live)
                .lines()
                .count(),
            1,
            "only the topic line"
        );
        let defaults = vec![entry("min.insync.replicas", "1", SOURCE_DEFAULT_CONFIG)];
        assert_eq!(format_topic(&topic(), &defaults, overrides, &live), "");
    }
}
