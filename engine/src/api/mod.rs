//! Kafka API handlers and the registry ApiVersions is built from.
//!
//! Each entry of [`SUPPORTED_APIS`] is an API weir handles with the exact version range
//! it handles and tests; ApiVersions advertises this table and nothing else, and
//! [`dispatch`] refuses any version outside it. One handler module per API.

mod admin;
mod alter_configs;
mod api_versions;
mod configs;
mod delete_records;
mod describe_quorum;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod group_admin;
mod groups;
mod legacy;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod producers;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tracing::{debug, warn};
use weir_net::zero_copy::{FramePart, encode_response_parts};
use weir_net::{FrameError, decode_request, encode_response, peek_header};

use crate::shard::Shard;

/// Who sent a request, as group membership records it.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    /// Kafka's format: `/` followed by the IP address (Java's InetAddress.toString).
    pub host: String,
}

impl Client {
    fn new(header: &kafka_protocol::messages::RequestHeader, peer: SocketAddr) -> Client {
        Client {
            client_id: header
                .client_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            host: format!("/{}", peer.ip()),
        }
    }
}

/// One handled API and the versions it handles.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    /// Lowest advertised version.
    pub min_version: i16,
    /// Lowest version actually served; `min_version..accepted_min_version` are
    /// advertised for old clients' feature detection and refused (see `legacy`).
    pub accepted_min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> ApiSupport {
    ApiSupport {
        key,
        min_version,
        accepted_min_version: min_version,
        max_version,
    }
}

const fn api_with_legacy(
    key: ApiKey,
    min_version: i16,
    accepted_min_version: i16,
    max_version: i16,
) -> ApiSupport {
    ApiSupport {
        key,
        min_version,
        accepted_min_version,
        max_version,
    }
}

/// Every API weir answers, with the versions it handles. Produce v0–2 and Fetch v0–3
/// are advertised but refused: librdkafka needs them listed (to produce at all, and
/// to use lz4), Kafka 4.0 does the same (KAFKA-18659); they carry message formats
/// v0/v1 that weir does not store.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    api_with_legacy(ApiKey::Produce, 0, 3, 11),
    api_with_legacy(ApiKey::Fetch, 0, 4, 17),
    api(ApiKey::ListOffsets, 1, 8),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeQuorum, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
];

pub fn supported(key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|entry| entry.key == key)
}

pub use fetch::FetchRegion;

/// A response frame to send: encoded bytes, or (Fetch with zero copy) bytes and file
/// regions in wire order.
pub enum Response {
    Frame(Bytes),
    Parts(Vec<FramePart<FetchRegion>>),
    /// Known once the future ends (a produce waiting for its replicas); the
    /// connection goes on reading requests meanwhile and answers in order.
    Later(futures::future::LocalBoxFuture<'static, Result<Response, FrameError>>),
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Frame(bytes) => f.debug_tuple("Frame").field(bytes).finish(),
            Response::Parts(parts) => f.debug_tuple("Parts").field(parts).finish(),
            Response::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Which shards own the partitions a Produce or Fetch request names (what a
/// connection needs to decide whether to move next to them, `conn.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionShards {
    /// No partitions named (or another request).
    #[default]
    None,
    /// All owned by this shard.
    One(usize),
    Several,
}

impl PartitionShards {
    /// Notes the owner of `topic`'s `partition` (a negative index, which the handler
    /// refuses, names none).
    fn add(&mut self, shard: &Shard, topic: &str, partition: i32) {
        if partition < 0 {
            return;
        }
        let owner = shard.owner_of(topic, partition);
        *self = match *self {
            PartitionShards::None => PartitionShards::One(owner),
            PartitionShards::One(one) if one == owner => PartitionShards::One(one),
            _ => PartitionShards::Several,
        };
    }
}

/// Handles one request frame. `Ok(None)`: no response (acks=0 produce).
/// `Err`: the connection must be closed (broken frame, unknown API or version).
/// `shards` learns the owners of the partitions a Produce or Fetch names.
pub async fn dispatch(
    shard: &Rc<Shard>,
    frame: Bytes,
    peer: SocketAddr,
    shards: &mut PartitionShards,
) -> Result<Option<Response>, FrameError> {
    let peek = peek_header(&frame)?;
    let key = ApiKey::try_from(peek.api_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: peek.api_key,
    })?;
    let version = peek.api_version;
    let correlation_id = peek.correlation_id;
    let Some(support) = supported(key) else {
        return Err(FrameError::Decode {
            what: "request",
            version,
            reason: format!(
                "api {key:?} (key {}) is not supported by weir",
                peek.api_key
            ),
        });
    };
    if key == ApiKey::ApiVersions && !(support.min_version..=support.max_version).contains(&version)
    {
        // KIP-511: answer an unknown ApiVersions version in v0 with the error and the list.
        return Ok(Some(Response::Frame(
            api_versions::unsupported_version_response(correlation_id)?,
        )));
    }
    if (support.min_version..support.accepted_min_version).contains(&version) {
        let refusal = match key {
            ApiKey::Produce => legacy::refuse_produce(frame, version, correlation_id),
            ApiKey::Fetch => legacy::refuse_fetch(frame, version, correlation_id),
            other => unreachable!("{other:?} has no legacy versions in SUPPORTED_APIS"),
        };
        return refusal.map(|response| response.map(Response::Frame));
    }
    if !(support.min_version..=support.max_version).contains(&version) {
        return Err(FrameError::Decode {
            what: "request",
            version,
            reason: format!(
                "{key:?} v{version} is not supported (weir handles v{}–v{})",
                support.min_version, support.max_version
            ),
        });
    }
    debug!(
        shard = shard.id,
        api_key = peek.api_key,
        api_version = version,
        correlation_id,
        "request"
    );
    macro_rules! serve {
        ($request:ty, $response:ty, $handler:path) => {{
            let (_header, request) =
                decode_request::<$request>(frame, key, version, stringify!($request))?;
            let response: $response = $handler(shard, version, request).await;
            Ok(Some(respond(
                correlation_id,
                version,
                &response,
                stringify!($response),
            )?))
        }};
        // Handlers that need to know who is asking (group membership).
        ($request:ty, $response:ty, $handler:path, with_client) => {{
            let (header, request) =
                decode_request::<$request>(frame, key, version, stringify!($request))?;
            let client = Client::new(&header, peer);
            let response: $response = $handler(shard, version, request, client).await;
            Ok(Some(respond(
                correlation_id,
                version,
                &response,
                stringify!($response),
            )?))
        }};
    }
    match key {
        ApiKey::ApiVersions => serve!(
            ApiVersionsRequest,
            ApiVersionsResponse,
            api_versions::handle
        ),
        ApiKey::Metadata => serve!(MetadataRequest, MetadataResponse, metadata::handle),
        ApiKey::Fetch => {
            let (_header, request) =
                decode_request::<FetchRequest>(frame, key, version, "FetchRequest")?;
            let metadata = shard.metadata();
            for topic in &request.topics {
                if let Some(found) = fetch::requested_topic(&metadata, version, topic) {
                    for partition in &topic.partitions {
                        shards.add(shard, &found.name, partition.partition);
                    }
                }
            }
            let (response, regions) = fetch::handle(shard, version, request).await;
            if regions.is_empty() {
                return Ok(Some(respond(
                    correlation_id,
                    version,
                    &response,
                    "FetchResponse",
                )?));
            }
            Ok(Some(Response::Parts(encode_response_parts(
                correlation_id,
                version,
                &response,
                regions,
                "FetchResponse",
            )?)))
        }
        ApiKey::JoinGroup => serve!(
            JoinGroupRequest,
            JoinGroupResponse,
            groups::join_group,
            with_client
        ),
        ApiKey::SyncGroup => serve!(
            SyncGroupRequest,
            SyncGroupResponse,
            groups::sync_group,
            with_client
        ),
        ApiKey::Heartbeat => serve!(
            HeartbeatRequest,
            HeartbeatResponse,
            groups::heartbeat,
            with_client
        ),
        ApiKey::LeaveGroup => serve!(
            LeaveGroupRequest,
            LeaveGroupResponse,
            groups::leave_group,
            with_client
        ),
        ApiKey::OffsetCommit => serve!(
            OffsetCommitRequest,
            OffsetCommitResponse,
            offsets::offset_commit
        ),
        ApiKey::OffsetFetch => serve!(
            OffsetFetchRequest,
            OffsetFetchResponse,
            offsets::offset_fetch
        ),
        ApiKey::ListGroups => serve!(
            ListGroupsRequest,
            ListGroupsResponse,
            group_admin::list_groups
        ),
        ApiKey::DescribeGroups => serve!(
            DescribeGroupsRequest,
            DescribeGroupsResponse,
            group_admin::describe_groups
        ),
        ApiKey::DeleteGroups => serve!(
            DeleteGroupsRequest,
            DeleteGroupsResponse,
            group_admin::delete_groups
        ),
        ApiKey::OffsetDelete => serve!(
            OffsetDeleteRequest,
            OffsetDeleteResponse,
            group_admin::offset_delete
        ),
        ApiKey::FindCoordinator => serve!(
            FindCoordinatorRequest,
            FindCoordinatorResponse,
            find_coordinator::handle
        ),
        ApiKey::InitProducerId => serve!(
            InitProducerIdRequest,
            InitProducerIdResponse,
            producers::init_producer_id
        ),
        ApiKey::DescribeProducers => serve!(
            DescribeProducersRequest,
            DescribeProducersResponse,
            producers::describe_producers
        ),
        ApiKey::ElectLeaders => serve!(
            ElectLeadersRequest,
            ElectLeadersResponse,
            elect_leaders::handle
        ),
        ApiKey::DescribeQuorum => serve!(
            DescribeQuorumRequest,
            DescribeQuorumResponse,
            describe_quorum::handle
        ),
        ApiKey::OffsetForLeaderEpoch => serve!(
            OffsetForLeaderEpochRequest,
            OffsetForLeaderEpochResponse,
            offset_for_leader_epoch::handle
        ),
        ApiKey::ListOffsets => serve!(
            ListOffsetsRequest,
            ListOffsetsResponse,
            list_offsets::handle
        ),
        ApiKey::CreateTopics => serve!(
            CreateTopicsRequest,
            CreateTopicsResponse,
            admin::create_topics,
            with_client
        ),
        ApiKey::DeleteTopics => serve!(
            DeleteTopicsRequest,
            DeleteTopicsResponse,
            admin::delete_topics
        ),
        ApiKey::CreatePartitions => serve!(
            CreatePartitionsRequest,
            CreatePartitionsResponse,
            admin::create_partitions
        ),
        ApiKey::DescribeConfigs => serve!(
            DescribeConfigsRequest,
            DescribeConfigsResponse,
            configs::describe_configs
        ),
        ApiKey::AlterConfigs => serve!(
            AlterConfigsRequest,
            AlterConfigsResponse,
            alter_configs::alter_configs
        ),
        ApiKey::IncrementalAlterConfigs => serve!(
            IncrementalAlterConfigsRequest,
            IncrementalAlterConfigsResponse,
            alter_configs::incremental_alter_configs
        ),
        ApiKey::DeleteRecords => serve!(
            DeleteRecordsRequest,
            DeleteRecordsResponse,
            delete_records::handle
        ),
        ApiKey::DescribeCluster => serve!(
            DescribeClusterRequest,
            DescribeClusterResponse,
            admin::describe_cluster
        ),
        ApiKey::Produce => {
            let (_header, request) =
                decode_request::<ProduceRequest>(frame, key, version, "ProduceRequest")?;
            for topic in &request.topic_data {
                for partition in &topic.partition_data {
                    shards.add(shard, &topic.name.0, partition.index);
                }
            }
            let acks = request.acks;
            let appending = produce::append(shard, request).await;
            if acks == 0 {
                // No answer to owe: finishing here bounds what one connection queues.
                appending.finish().await;
                return Ok(None);
            }
            // Writing, and waiting for the ISR (acks=all), do not hold up the
            // connection's next requests; the answer is written in request order.
            Ok(Some(Response::Later(Box::pin(async move {
                let response = appending.finish().await.respond(version).await;
                respond(correlation_id, version, &response, "ProduceResponse")
            }))))
        }
        other => {
            warn!(api = ?other, "api listed as supported has no handler");
            Err(FrameError::Decode {
                what: "request",
                version,
                reason: format!("no handler for {other:?}"),
            })
        }
    }
}

fn respond<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
    what: &'static str,
) -> Result<Response, FrameError> {
    encode_response(correlation_id, version, body, what).map(Response::Frame)
}

/// Decodes a message body only (used by tests and the refusal path).
pub fn decode_body<R: Decodable>(mut bytes: Bytes, version: i16) -> Option<R> {
    R::decode(&mut bytes, version).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_fit_what_the_codec_can_decode() {
        for entry in SUPPORTED_APIS {
            let codec = entry.key.valid_versions();
            assert!(
                codec.min <= entry.accepted_min_version && entry.max_version <= codec.max,
                "{:?}: {codec:?}",
                entry.key
            );
            assert!(entry.min_version <= entry.max_version);
        }
    }
}
