//! ListGroups v0–5, DescribeGroups v0–5, DeleteGroups v0–2 and OffsetDelete v0.
//! ListGroups asks every shard (each coordinates the groups of the `__consumer_offsets`
//! partitions it owns); the others go to the group's coordinator shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::groups::on_coordinator;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::shard::Shard;

fn strbytes(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub async fn list_groups(
    shard: &Rc<Shard>,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let listed: Vec<(String, String, &'static str)> =
        if shard.metadata().topic(OFFSETS_TOPIC).is_some() {
            shard
                .invoke_on_all(|target: Rc<Shard>| async move { target.groups.list() })
                .await
                .into_iter()
                .filter_map(Result::ok)
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|state| state.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|kind| kind.to_lowercase())
        .collect();
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| {
            version < 4 || states.is_empty() || states.contains(&state.to_lowercase())
        })
        // Every group weir runs is a classic group.
        .filter(|_| version < 5 || types.is_empty() || types.iter().any(|kind| kind == "classic"))
        .map(|(group_id, protocol_type, state)| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(strbytes(group_id)))
                .with_protocol_type(strbytes(protocol_type));
            if version >= 4 {
                listed = listed.with_group_state(strbytes(state));
            }
            if version >= 5 {
                listed = listed.with_group_type(strbytes("classic"));
            }
            listed
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(0)
        .with_groups(groups)
}

pub async fn describe_groups(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in request.groups {
        let group_id = group.0.to_string();
        let key = group_id.clone();
        let described = on_coordinator(shard, &group_id, move |coordinator| async move {
            coordinator.groups.describe(&key)
        })
        .await;
        let mut entry = DescribedGroup::default().with_group_id(group);
        if version >= 3 {
            entry = entry.with_authorized_operations(i32::MIN);
        }
        entry = match described {
            Err(code) => entry.with_error_code(code),
            // Kafka answers an unknown group as Dead with no error up to v5.
            Ok(None) => entry.with_error_code(0).with_group_state(strbytes("Dead")),
            Ok(Some(description)) => {
                let members = description
                    .members
                    .into_iter()
                    .map(|member| {
                        DescribedGroupMember::default()
                            .with_member_id(strbytes(member.member_id))
                            .with_group_instance_id(if version >= 4 {
                                member.group_instance_id.map(strbytes)
                            } else {
                                None
                            })
                            .with_client_id(strbytes(member.client_id))
                            .with_client_host(strbytes(member.client_host))
                            .with_member_metadata(member.metadata)
                            .with_member_assignment(member.assignment)
                    })
                    .collect();
                entry
                    .with_error_code(0)
                    .with_group_state(strbytes(description.state_name))
                    .with_protocol_type(strbytes(description.protocol_type))
                    .with_protocol_data(strbytes(description.protocol_name))
                    .with_members(members)
            }
        };
        groups.push(entry);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    shard: &Rc<Shard>,
    _version: i16,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let group_id = group.0.to_string();
        let key = group_id.clone();
        let code = on_coordinator(shard, &group_id, move |coordinator| async move {
            coordinator.groups.delete_group(&coordinator, &key).await
        })
        .await
        .and_then(|result| result)
        .err()
        .unwrap_or(0);
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(
    shard: &Rc<Shard>,
    _version: i16,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.to_string();
    let metadata = shard.metadata();
    let mut partitions = Vec::new();
    let mut unknown = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let count = metadata.topic(&name).map_or(0, |topic| topic.partitions);
        for partition in &topic.partitions {
            let index = partition.partition_index;
            if index < 0 || index >= count {
                unknown.push((name.clone(), index));
            } else {
                partitions.push((name.clone(), index));
            }
        }
    }
    let key = group_id.clone();
    let asked = partitions.clone();
    let outcome = on_coordinator(shard, &group_id, move |coordinator| async move {
        coordinator
            .groups
            .delete_offsets(&coordinator, &key, asked)
            .await
    })
    .await
    .and_then(|result| result);
    let codes = match outcome {
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
        Ok(codes) => codes,
    };
    let code_of = |topic: &str, index: i32| -> i16 {
        if unknown
            .iter()
            .any(|(name, partition)| name == topic && *partition == index)
        {
            return ResponseError::UnknownTopicOrPartition.code();
        }
        partitions
            .iter()
            .position(|(name, partition)| name == topic && *partition == index)
            .map_or(0, |position| codes[position])
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code_of(&name, partition.partition_index))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default()
        .with_error_code(0)
        .with_topics(topics)
}
