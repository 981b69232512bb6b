//! Partition-level lookups at the partition leaders: which partitions a topic has
//! (Metadata) and the earliest, latest or by-timestamp offset of each (ListOffsets, one
//! request per leader), as Kafka's admin client `describeTopics` and `listOffsets` do.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use weir_net::client::ClientError;

use super::admin::{GroupAdmin, OffsetResult, OffsetSpec, Partition, strbytes};

impl GroupAdmin {
    /// The partition numbers of each topic (Metadata); an unknown topic is an error.
    pub fn topic_partitions(
        &mut self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Vec<i32>>, ClientError> {
        let metadata = self.client.metadata(Some(topics))?;
        let mut partitions = BTreeMap::new();
        for topic in metadata.topics {
            let name = topic
                .name
                .map(|name| name.0.to_string())
                .unwrap_or_default();
            ClientError::check(topic.error_code, None, format!("topic '{name}'"))?;
            let mut indexes: Vec<i32> = topic
                .partitions
                .iter()
                .map(|partition| partition.partition_index)
                .collect();
            indexes.sort_unstable();
            partitions.insert(name, indexes);
        }
        Ok(partitions)
    }

    /// ListOffsets for every partition at its leader. A partition whose topic or leader
    /// is unknown, or that the leader answers with an error, maps to that error code.
    pub fn log_offsets(
        &mut self,
        partitions: &BTreeSet<Partition>,
        spec: OffsetSpec,
    ) -> Result<BTreeMap<Partition, OffsetResult>, ClientError> {
        let mut results = BTreeMap::new();
        if partitions.is_empty() {
            return Ok(results);
        }
        let topics: Vec<String> = partitions
            .iter()
            .map(|(topic, _)| topic.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let metadata = self.client.metadata(Some(&topics))?;
        let mut leaders: BTreeMap<Partition, Result<i32, i16>> = BTreeMap::new();
        for topic in &metadata.topics {
            let name = topic
                .name
                .as_ref()
                .map(|name| name.0.to_string())
                .unwrap_or_default();
            for partition in &topic.partitions {
                let leader = if topic.error_code != 0 {
                    Err(topic.error_code)
                } else if partition.error_code != 0 && partition.leader_id.0 < 0 {
                    Err(partition.error_code)
                } else if partition.leader_id.0 < 0 {
                    Err(ResponseError::LeaderNotAvailable.code())
                } else {
                    Ok(partition.leader_id.0)
                };
                leaders.insert((name.clone(), partition.partition_index), leader);
            }
        }
        let mut by_leader: BTreeMap<i32, Vec<Partition>> = BTreeMap::new();
        for partition in partitions {
            match leaders.get(partition) {
                Some(Ok(leader)) => by_leader
                    .entry(*leader)
                    .or_default()
                    .push(partition.clone()),
                Some(Err(code)) => {
                    results.insert(partition.clone(), Err(*code));
                }
                None => {
                    results.insert(
                        partition.clone(),
                        Err(ResponseError::UnknownTopicOrPartition.code()),
                    );
                }
            }
        }
        for (leader, asked) in by_leader {
            let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for (topic, index) in &asked {
                topics.entry(topic).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(*index)
                        .with_timestamp(spec.timestamp()),
                );
            }
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(strbytes(topic)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let connection = self.client.broker(leader)?;
            let (_, response) = connection.call(&request)?;
            for topic in response.topics {
                for partition in topic.partitions {
                    let key = (topic.name.0.to_string(), partition.partition_index);
                    if !partitions.contains(&key) {
                        continue;
                    }
                    let result = if partition.error_code == 0 {
                        Ok(partition.offset)
                    } else {
                        Err(partition.error_code)
                    };
                    results.insert(key, result);
                }
            }
            for partition in asked {
                results
                    .entry(partition)
                    .or_insert(Err(ResponseError::UnknownServerError.code()));
            }
        }
        Ok(results)
    }
}
