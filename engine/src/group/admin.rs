//! Coordinator-side group administration: listing, describing, deleting groups and
//! deleting committed offsets. Groups with only committed offsets (standalone
//! consumers, or groups whose members all left) are reported as Empty, as Kafka does.

use std::collections::BTreeSet;
use std::rc::Rc;

use bytes::Buf;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use super::coordinator::{GroupCoordinator, coordinator_for};
use super::driver::now_ms;
use super::offsets::{group_record, offset_tombstones};
use super::state::{GroupDescription, GroupState};
use crate::shard::Shard;

/// One group as ListGroups reports it: (group id, protocol type, state name).
pub type ListedGroup = (String, String, &'static str);

/// What DescribeGroups reports for a group the coordinator has no live state for.
fn empty_description() -> GroupDescription {
    GroupDescription {
        state: GroupState::Empty,
        state_name: GroupState::Empty.name(),
        protocol_type: String::new(),
        protocol_name: String::new(),
        generation_id: -1,
        leader_id: None,
        members: Vec::new(),
    }
}

/// Topics a consumer-protocol member subscribed to (unparseable metadata: none).
fn subscribed_topics(subscription: &[u8]) -> Vec<String> {
    let mut bytes = subscription;
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16();
    let mut rest = bytes::Bytes::copy_from_slice(bytes);
    ConsumerProtocolSubscription::decode(&mut rest, version.clamp(0, 3))
        .map(|decoded| {
            decoded
                .topics
                .iter()
                .map(|topic| topic.to_string())
                .collect()
        })
        .unwrap_or_default()
}

impl GroupCoordinator {
    /// Every group this shard coordinates.
    pub fn list(&self) -> Vec<ListedGroup> {
        let mut listed: Vec<ListedGroup> = Vec::new();
        let mut seen = BTreeSet::new();
        for group_id in self.table.group_ids() {
            let entry = self.table.with_group(&group_id, |group| {
                group
                    .filter(|group| group.state() != GroupState::Dead)
                    .map(|group| {
                        (
                            group.protocol_type().unwrap_or_default().to_string(),
                            group.state().name(),
                        )
                    })
            });
            if let Some((protocol_type, state)) = entry {
                seen.insert(group_id.clone());
                listed.push((group_id, protocol_type, state));
            }
        }
        for group_id in self.store.borrow().group_names() {
            if !seen.contains(group_id) {
                listed.push((
                    group_id.to_string(),
                    String::new(),
                    GroupState::Empty.name(),
                ));
            }
        }
        listed
    }

    /// DescribeGroups for one group; `None` when the group does not exist.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let live = self.table.with_group(group_id, |group| {
            group
                .filter(|group| group.state() != GroupState::Dead)
                .map(|group| group.describe())
        });
        live.or_else(|| {
            self.store
                .borrow()
                .group(group_id)
                .map(|_| empty_description())
        })
    }

    /// DeleteGroups: only groups without members; their offsets and metadata are
    /// tombstoned.
    pub async fn delete_group(&self, shard: &Rc<Shard>, group_id: &str) -> Result<(), i16> {
        let live = self
            .table
            .with_group(group_id, |group| group.map(|group| group.validate_delete()));
        let stored = self.store.borrow().group(group_id).cloned();
        match (live, &stored) {
            (Some(Err(code)), _) => return Err(code),
            (None, None) => return Err(ResponseError::GroupIdNotFound.code()),
            _ => {}
        }
        let now = now_ms();
        if live.is_some() {
            let effects = self
                .table
                .run_without_answer(group_id, |group| group.delete(now).unwrap_or_default());
            self.table.apply(shard, group_id, effects).await;
        }
        let mut records = Vec::new();
        if let Some(stored) = stored {
            let partitions: Vec<(String, i32)> = stored.offsets.keys().cloned().collect();
            records.extend(offset_tombstones(group_id, &partitions, now as i64));
            if stored.metadata.is_some() && live.is_none() {
                records.push(group_record(group_id, None, now as i64));
            }
        }
        self.table.remove(group_id);
        if records.is_empty() {
            return Ok(());
        }
        let (partition, _) = coordinator_for(shard, group_id);
        self.append(shard, partition, records, now as i64)
            .await
            .map_err(|(code, _)| code)
    }

    /// OffsetDelete: removes committed offsets of topics the group's members do not
    /// subscribe to. Returns the per-partition codes in request order.
    pub async fn delete_offsets(
        &self,
        shard: &Rc<Shard>,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let subscribed: Option<BTreeSet<String>> = self.table.with_group(group_id, |group| {
            group
                .filter(|group| group.state() != GroupState::Dead)
                .map(|group| {
                    group
                        .snapshot()
                        .members
                        .iter()
                        .flat_map(|member| subscribed_topics(&member.subscription))
                        .collect()
                })
        });
        if subscribed.is_none() && self.store.borrow().group(group_id).is_none() {
            return Err(ResponseError::GroupIdNotFound.code());
        }
        let subscribed = subscribed.unwrap_or_default();
        let mut codes = Vec::with_capacity(partitions.len());
        let mut doomed = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                codes.push(ResponseError::GroupSubscribedToTopic.code());
            } else {
                codes.push(0);
                if self
                    .store
                    .borrow()
                    .offset(group_id, &topic, partition)
                    .is_some()
                {
                    doomed.push((topic, partition));
                }
            }
        }
        if !doomed.is_empty() {
            let now = now_ms() as i64;
            let (partition, _) = coordinator_for(shard, group_id);
            self.append(
                shard,
                partition,
                offset_tombstones(group_id, &doomed, now),
                now,
            )
            .await
            .map_err(|(code, _)| code)?;
        }
        Ok(codes)
    }
}
