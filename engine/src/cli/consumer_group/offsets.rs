//! A group member's offsets: OffsetFetch of the committed offsets to start from and
//! OffsetCommit of what was printed.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, KafkaClient};

use super::{
    COORDINATOR_RETRY_WINDOW, ConsumeError, GroupMember, Membership, is_coordinator_error,
};

impl GroupMember {
    /// The committed offsets of `partitions` (partitions without one are left out).
    pub fn committed_offsets(
        &mut self,
        client: &mut KafkaClient,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, ConsumeError> {
        let deadline = Instant::now() + COORDINATOR_RETRY_WINDOW;
        loop {
            let (version, response) = self.call(
                client,
                None,
                |version, member| {
                    let name = TopicName(StrBytes::from_string(member.topic.clone()));
                    let group_id = GroupId(StrBytes::from_string(member.settings.group_id.clone()));
                    if version >= 8 {
                        OffsetFetchRequest::default().with_groups(vec![
                            OffsetFetchRequestGroup::default()
                                .with_group_id(group_id)
                                .with_member_id(None)
                                .with_member_epoch(-1)
                                .with_topics(Some(vec![
                                    OffsetFetchRequestTopics::default()
                                        .with_name(name)
                                        .with_partition_indexes(partitions.to_vec()),
                                ])),
                        ])
                    } else {
                        OffsetFetchRequest::default()
                            .with_group_id(group_id)
                            .with_topics(Some(vec![
                                OffsetFetchRequestTopic::default()
                                    .with_name(name)
                                    .with_partition_indexes(partitions.to_vec()),
                            ]))
                            .with_require_stable(version >= 7)
                    }
                },
                |response| {
                    response
                        .groups
                        .first()
                        .map_or(response.error_code, |group| group.error_code)
                },
            )?;
            let mut offsets = BTreeMap::new();
            let mut unstable = false;
            let group_code;
            let mut entries: Vec<(i32, i64, i16)> = Vec::new();
            if version >= 8 {
                let group = response.groups.first();
                group_code = group.map_or(0, |group| group.error_code);
                for topic in group.iter().flat_map(|group| group.topics.iter()) {
                    if *topic.name.0 == *self.topic {
                        entries.extend(topic.partitions.iter().map(|partition| {
                            (
                                partition.partition_index,
                                partition.committed_offset,
                                partition.error_code,
                            )
                        }));
                    }
                }
            } else {
                group_code = response.error_code;
                for topic in &response.topics {
                    if *topic.name.0 == *self.topic {
                        entries.extend(topic.partitions.iter().map(|partition| {
                            (
                                partition.partition_index,
                                partition.committed_offset,
                                partition.error_code,
                            )
                        }));
                    }
                }
            }
            let context = format!("OffsetFetch of group '{}'", self.settings.group_id);
            if group_code == ResponseError::UnstableOffsetCommit.code() {
                unstable = true;
            } else {
                ClientError::check(group_code, None, context.clone())?;
            }
            for (partition, offset, code) in entries {
                if code == ResponseError::UnstableOffsetCommit.code() {
                    unstable = true;
                    continue;
                }
                ClientError::check(code, None, format!("{context}, partition {partition}"))?;
                if offset >= 0 {
                    offsets.insert(partition, offset);
                }
            }
            if !unstable {
                return Ok(offsets);
            }
            if Instant::now() >= deadline {
                return Err(ConsumeError::Group(format!(
                    "the offsets of group '{}' stayed UNSTABLE_OFFSET_COMMIT for {} s",
                    self.settings.group_id,
                    COORDINATOR_RETRY_WINDOW.as_secs()
                )));
            }
            std::thread::sleep(self.settings.retry_backoff);
        }
    }

    /// Commits `offsets` (partition → (next offset to read, leader epoch of the last
    /// record read)). `Rejoin` when the group moved on and the commit was refused.
    pub fn commit(
        &mut self,
        client: &mut KafkaClient,
        offsets: &BTreeMap<i32, (i64, Option<i32>)>,
    ) -> Result<Membership, ConsumeError> {
        if offsets.is_empty() {
            return Ok(Membership::Stable);
        }
        let (_, response) = self.call(
            client,
            None,
            |_, member| {
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(
                        member.settings.group_id.clone(),
                    )))
                    .with_generation_id_or_member_epoch(member.generation_id)
                    .with_member_id(StrBytes::from_string(member.member_id.clone()))
                    .with_group_instance_id(None)
                    .with_retention_time_ms(-1)
                    .with_topics(vec![
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(member.topic.clone())))
                            .with_partitions(
                                offsets
                                    .iter()
                                    .map(|(&partition, &(offset, epoch))| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(partition)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch.unwrap_or(-1))
                                            .with_committed_metadata(Some(
                                                StrBytes::from_static_str(""),
                                            ))
                                    })
                                    .collect(),
                            ),
                    ])
            },
            |response| {
                response
                    .topics
                    .iter()
                    .flat_map(|topic| topic.partitions.iter())
                    .map(|partition| partition.error_code)
                    .find(|&code| is_coordinator_error(code))
                    .unwrap_or(0)
            },
        )?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                let code = partition.error_code;
                if code != 0 {
                    return self.membership_after(
                        code,
                        &format!("OffsetCommit of partition {}", partition.partition_index),
                    );
                }
            }
        }
        Ok(Membership::Stable)
    }
}
