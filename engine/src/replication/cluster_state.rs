//! The metadata state machine: what every node rebuilds from the quorum log (Kafka's
//! metadata image), and the active controller's decisions that produce its records.
//!
//! ```text
//!  decision (active controller, on the state it has applied)
//!    register_broker ─► BrokerEndpoint + RegisterBroker (+ ISR / leader changes)
//!    create_topic    ─► Topic + one Partition per partition (placement.rs or explicit assignments)
//!    create_partitions ─► Partition for each new partition
//!    delete_topic    ─► RemovePartition for each partition + RemoveTopic
//!  ─► records proposed to the quorum ─► committed ─► apply() on every node, in log order
//!  snapshot(): the records that rebuild the state; restore() replays them
//! ```
//!
//! Records are JSON inside Raft entries: small, rare, and readable when debugging a log.
//! Decisions never change the state themselves; only `apply` does, so a node's state is
//! exactly the committed prefix of the log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::control::{MetadataChange, PartitionKey, ReplicationControl};
use super::placement::{PlacementBroker, PlacementError, check_assignments, place};
use super::{NodeId, PartitionRegistration};

/// What a metadata snapshot starts with (then its rkyv archive of records).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"WEIRMDS1";

/// One committed change of the cluster's metadata.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum MetadataRecord {
    /// Brokers, fencing and partition registrations.
    Replication(MetadataChange),
    /// Where a broker serves clients, and its `broker.rack`.
    BrokerEndpoint {
        node: NodeId,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    Topic {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    RemoveTopic {
        name: String,
    },
    /// A topic's whole set of config overrides.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Dynamic broker configs of resource `""` (every broker) or `"<node id>"`.
    BrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// The next producer id block starts here (ids below were handed out).
    ProducerIdBlock {
        next_block_start: i64,
        /// The block went to another broker's request (its ids end at
        /// `next_block_start`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        granted: Option<ProducerIdGrant>,
    },
    /// A broker's request to the active controller, carried by the log (a follower's
    /// proposal is forwarded to the Raft leader): it changes no state; the controller
    /// that applies it while active decides on it and commits the outcome, and the
    /// requester watches the state for that outcome (retrying when a leader change lost
    /// the request).
    Request(ControllerRequest),
}

/// A producer id block the active controller granted to a broker's request.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct ProducerIdGrant {
    pub node: NodeId,
    /// The request's nonce, so the broker knows the grant answers it.
    pub nonce: u64,
    pub start: i64,
}

/// What a broker asks of the active controller (Kafka's BrokerRegistration,
/// BrokerHeartbeat with `wantFence=false` or `wantShutDown`, and AlterPartition).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum ControllerRequest {
    Register {
        node: NodeId,
        incarnation: u64,
        clean_shutdown: bool,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    ControlledShutdown {
        node: NodeId,
        incarnation: u64,
    },
    /// A fenced broker asks to be unfenced (Kafka's BrokerHeartbeat with
    /// `wantFence=false`): granted when `incarnation` is the registered one and the
    /// broker has caught up with the metadata log. A restarted process registers first,
    /// so its predecessor's registration is never unfenced on its behalf.
    Unfence {
        node: NodeId,
        incarnation: u64,
    },
    /// A block of producer ids for a broker that is not the active controller.
    AllocateProducerIds {
        node: NodeId,
        nonce: u64,
    },
    AlterPartition {
        leader: NodeId,
        key: PartitionKey,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<NodeId>,
    },
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata records always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A broker's client endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// A topic as the metadata log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicState {
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: i32,
}

/// Why a topic change is refused (mapped to Kafka's codes by the handlers).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("This server does not host this topic: '{0}'.")]
    Unknown(String),
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    PartitionsNotIncreased { current: i32, requested: i32 },
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

/// The applied metadata.
#[derive(Debug)]
pub struct ClusterState {
    control: ReplicationControl,
    endpoints: BTreeMap<NodeId, Endpoint>,
    topics: BTreeMap<String, TopicState>,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    next_producer_id_block: i64,
    /// The latest producer id block granted to each broker's request (not part of the
    /// snapshot: a broker whose grant was compacted away asks again).
    producer_id_grants: BTreeMap<NodeId, ProducerIdGrant>,
}

impl ClusterState {
    pub fn new(control: ReplicationControl) -> ClusterState {
        ClusterState {
            control,
            endpoints: BTreeMap::new(),
            topics: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            next_producer_id_block: 0,
            producer_id_grants: BTreeMap::new(),
        }
    }

    pub fn control(&self) -> &ReplicationControl {
        &self.control
    }

    /// The heartbeat side of the controller (sessions are not part of the log).
    pub fn control_mut(&mut self) -> &mut ReplicationControl {
        &mut self.control
    }

    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topics.get(name)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &TopicState)> {
        self.topics.iter()
    }

    pub fn endpoint(&self, node: NodeId) -> Option<&Endpoint> {
        self.endpoints.get(&node)
    }

    /// (node, host, port) of every registered broker's client endpoint.
    pub fn endpoints_snapshot(&self) -> Vec<(NodeId, String, u16)> {
        self.endpoints
            .iter()
            .map(|(&node, endpoint)| (node, endpoint.host.clone(), endpoint.port))
            .collect()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRegistration> {
        self.control.partition(&(topic.to_string(), partition))
    }

    pub fn broker_configs(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.broker_configs
    }

    /// The latest producer id block granted to `node`'s request.
    pub fn producer_id_grant(&self, node: NodeId) -> Option<ProducerIdGrant> {
        self.producer_id_grants.get(&node).copied()
    }

    pub fn next_producer_id_block(&self) -> i64 {
        self.next_producer_id_block
    }

    /// Replays one committed record.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Replication(change) => self.control.apply(change),
            MetadataRecord::BrokerEndpoint {
                node,
                host,
                port,
                rack,
            } => {
                let endpoint = Endpoint {
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                };
                self.endpoints.insert(*node, endpoint);
            }
            MetadataRecord::Topic { name, id, configs } => {
                let partitions = self.topics.get(name).map_or(0, |topic| topic.partitions);
                self.topics.insert(
                    name.clone(),
                    TopicState {
                        id: *id,
                        configs: configs.clone(),
                        partitions,
                    },
                );
            }
            MetadataRecord::RemoveTopic { name } => {
                assert!(
                    self.control
                        .partitions()
                        .all(|((topic, _), _)| topic != name),
                    "topic {name} removed before its partitions"
                );
                self.topics.remove(name);
            }
            MetadataRecord::TopicConfigs { name, configs } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.configs = configs.clone();
                }
            }
            MetadataRecord::BrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(resource);
                } else {
                    self.broker_configs
                        .insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::ProducerIdBlock {
                next_block_start,
                granted,
            } => {
                assert!(
                    *next_block_start >= self.next_producer_id_block,
                    "producer ids go back"
                );
                self.next_producer_id_block = *next_block_start;
                if let Some(grant) = granted {
                    self.producer_id_grants.insert(grant.node, *grant);
                }
            }
            MetadataRecord::Request(_) => {}
        }
        if let MetadataRecord::Replication(MetadataChange::Partition {
            key: (topic, partition),
            ..
        }) = record
        {
            let state = self
                .topics
                .get_mut(topic)
                .expect("a partition's topic is created first");
            state.partitions = state.partitions.max(partition + 1);
        }
    }

    /// The records that rebuild this state (the quorum snapshot's data):
    /// [`SNAPSHOT_MAGIC`] then the records archived with rkyv.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut records = Vec::new();
        for (&node, endpoint) in &self.endpoints {
            records.push(MetadataRecord::BrokerEndpoint {
                node,
                host: endpoint.host.clone(),
                port: endpoint.port,
                rack: endpoint.rack.clone(),
            });
        }
        for (node, broker) in self.control.brokers() {
            let register = MetadataChange::RegisterBroker {
                node,
                incarnation: broker.incarnation,
            };
            records.push(MetadataRecord::Replication(register));
            if broker.fenced {
                records.push(MetadataRecord::Replication(MetadataChange::FenceBroker {
                    node,
                }));
            }
        }
        for (name, topic) in &self.topics {
            records.push(MetadataRecord::Topic {
                name: name.clone(),
                id: topic.id,
                configs: topic.configs.clone(),
            });
        }
        for (key, registration) in self.control.partitions() {
            let change = MetadataChange::Partition {
                key: key.clone(),
                registration: registration.clone(),
            };
            records.push(MetadataRecord::Replication(change));
        }
        for (resource, configs) in &self.broker_configs {
            records.push(MetadataRecord::BrokerConfigs {
                resource: resource.clone(),
                configs: configs.clone(),
            });
        }
        records.push(MetadataRecord::ProducerIdBlock {
            next_block_start: self.next_producer_id_block,
            granted: None,
        });
        let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&records)
            .expect("metadata records always archive");
        let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + archived.len());
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&archived);
        bytes
    }

    /// Rebuilds the state from a [`snapshot`](Self::snapshot) (empty bytes: empty state).
    /// The archive is validated (bytecheck) before use; snapshots written before the rkyv
    /// format (a JSON array of records) still load.
    pub fn restore(control: ReplicationControl, bytes: &[u8]) -> Result<ClusterState, String> {
        let mut state = ClusterState::new(control);
        let records: Vec<MetadataRecord> = if bytes.is_empty() {
            Vec::new()
        } else if let Some(archived) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
            // rkyv reads from aligned memory; the snapshot's bytes may sit anywhere.
            let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archived.len());
            aligned.extend_from_slice(archived);
            rkyv::from_bytes::<Vec<MetadataRecord>, rkyv::rancor::Error>(&aligned)
                .map_err(|error| format!("the metadata snapshot's archive is invalid: {error}"))?
        } else {
            serde_json::from_slice(bytes)
                .map_err(|error| format!("the metadata snapshot is not a known format: {error}"))?
        };
        for record in &records {
            state.apply(record);
        }
        Ok(state)
    }

    /// A broker (re)registering: its endpoint, then the replication side.
    pub fn register_broker(
        &mut self,
        node: NodeId,
        incarnation: u64,
        clean_shutdown: bool,
        endpoint: Endpoint,
        now_ms: u64,
    ) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if self.endpoints.get(&node) != Some(&endpoint) {
            records.push(MetadataRecord::BrokerEndpoint {
                node,
                host: endpoint.host,
                port: endpoint.port,
                rack: endpoint.rack,
            });
        }
        let changes = self
            .control
            .register(node, incarnation, clean_shutdown, now_ms);
        records.extend(changes.into_iter().map(MetadataRecord::Replication));
        records
    }

    /// Unfenced brokers, for placement.
    fn placement_brokers(&self) -> Vec<PlacementBroker> {
        self.control
            .brokers()
            .filter(|(_, broker)| !broker.fenced)
            .map(|(id, _)| PlacementBroker {
                id,
                rack: self.endpoints.get(&id).and_then(|e| e.rack.clone()),
            })
            .collect()
    }

    fn known_brokers(&self) -> BTreeSet<NodeId> {
        self.control.brokers().map(|(id, _)| id).collect()
    }

    /// CreateTopics: `assignments` (explicit replica lists) or `partitions` ×
    /// `replication_factor` placed over the unfenced brokers.
    pub fn create_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        assignments: Option<Vec<Vec<NodeId>>>,
        configs: BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, TopicError> {
        if self.topics.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let replicas = match assignments {
            Some(assignments) => {
                check_assignments(&assignments, &self.known_brokers())?;
                assignments
            }
            None => {
                let hash = crate::routing::fnv1a_64(name.as_bytes()) as usize;
                place(
                    &self.placement_brokers(),
                    partitions,
                    replication_factor,
                    hash,
                    hash >> 16,
                )?
            }
        };
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            id,
            configs,
        }];
        records.extend(self.partition_records(name, 0, replicas));
        Ok(records)
    }

    /// CreatePartitions: grows `name` to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<NodeId>>>,
    ) -> Result<Vec<MetadataRecord>, TopicError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if total <= topic.partitions {
            return Err(TopicError::PartitionsNotIncreased {
                current: topic.partitions,
                requested: total,
            });
        }
        let replication_factor = self
            .partition(name, 0)
            .map_or(1, |registration| registration.replicas.len() as i16);
        let new = total - topic.partitions;
        let replicas = match assignments {
            Some(assignments) => {
                check_assignments(&assignments, &self.known_brokers())?;
                if assignments.len() as i32 != new {
                    return Err(PlacementError::InvalidAssignment(format!(
                        "{} assignments for {new} new partitions",
                        assignments.len()
                    ))
                    .into());
                }
                assignments
            }
            None => {
                let hash = crate::routing::fnv1a_64(name.as_bytes()) as usize;
                // Continue the rotation where the existing partitions left it.
                place(
                    &self.placement_brokers(),
                    new,
                    replication_factor,
                    hash + topic.partitions as usize,
                    hash >> 16,
                )?
            }
        };
        Ok(self.partition_records(name, topic.partitions, replicas))
    }

    /// DeleteTopics: every partition goes, then the topic.
    pub fn delete_topic(&self, name: &str) -> Result<Vec<MetadataRecord>, TopicError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let mut records: Vec<MetadataRecord> = (0..topic.partitions)
            .map(|partition| {
                let key = (name.to_string(), partition);
                MetadataRecord::Replication(MetadataChange::RemovePartition { key })
            })
            .collect();
        records.push(MetadataRecord::RemoveTopic {
            name: name.to_string(),
        });
        Ok(records)
    }

    fn partition_records(
        &self,
        name: &str,
        first: i32,
        replicas: Vec<Vec<NodeId>>,
    ) -> Vec<MetadataRecord> {
        replicas
            .into_iter()
            .enumerate()
            .flat_map(|(i, replicas)| {
                let key: PartitionKey = (name.to_string(), first + i as i32);
                self.control.create_partition(key, replicas)
            })
            .map(MetadataRecord::Replication)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::NO_LEADER;

    fn endpoint(port: u16, rack: Option<&str>) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".to_string(),
            port,
            rack: rack.map(str::to_string),
        }
    }

    fn apply_all(state: &mut ClusterState, records: &[MetadataRecord]) {
        for record in records {
            // Every record goes through the log's encoding.
            state.apply(&MetadataRecord::decode(&record.encode()).expect("decodes"));
        }
    }

    fn three_brokers() -> ClusterState {
        let mut state = ClusterState::new(ReplicationControl::new(9_000));
        for node in 1..=3 {
            let records =
                state.register_broker(node, 1, true, endpoint(9090 + node as u16, None), 0);
            apply_all(&mut state, &records);
        }
        state
    }

    #[test]
    fn a_created_topic_has_placed_partitions_led_by_their_first_replica() {
        let mut state = three_brokers();
        let id = Uuid::new_v4();
        let records = state
            .create_topic("orders", id, 6, 3, None, BTreeMap::new())
            .expect("created");
        assert!(
            state.topic("orders").is_none(),
            "a decision does not change the state"
        );
        apply_all(&mut state, &records);
        let topic = state.topic("orders").expect("applied");
        assert_eq!((topic.id, topic.partitions), (id, 6));
        let mut leaders = BTreeMap::new();
        for partition in 0..6 {
            let registration = state.partition("orders", partition).expect("registered");
            assert_eq!(registration.replicas.len(), 3);
            assert_eq!(registration.isr, registration.replicas);
            assert_eq!(registration.leader, registration.replicas[0]);
            *leaders.entry(registration.leader).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let again = state.create_topic("orders", Uuid::new_v4(), 1, 1, None, BTreeMap::new());
        assert_eq!(
            again.expect_err("exists").to_string(),
            "Topic 'orders' already exists."
        );
    }

    #[test]
    fn explicit_assignments_and_growing_a_topic() {
        let mut state = three_brokers();
        let records = state
            .create_topic(
                "t",
                Uuid::new_v4(),
                0,
                -1,
                Some(vec![vec![3, 1], vec![2, 3]]),
                BTreeMap::new(),
            )
            .expect("created");
        apply_all(&mut state, &records);
        assert_eq!(state.partition("t", 1).expect("p1").replicas, vec![2, 3]);
        let grow = state.create_partitions("t", 4, None).expect("grown");
        apply_all(&mut state, &grow);
        assert_eq!(state.topic("t").expect("t").partitions, 4);
        assert_eq!(
            state.partition("t", 3).expect("p3").replicas.len(),
            2,
            "same replication factor"
        );
        let shrink = state
            .create_partitions("t", 2, None)
            .expect_err("refused")
            .to_string();
        assert!(shrink.contains("higher than the requested 2"), "{shrink}");
        let bad = state
            .create_partitions("t", 5, Some(vec![vec![9, 1]]))
            .expect_err("refused")
            .to_string();
        assert!(bad.contains("broker 9"), "{bad}");
    }

    #[test]
    fn a_fenced_broker_gets_no_new_replicas_and_too_few_brokers_is_an_error() {
        let mut state = three_brokers();
        for node in [1, 2] {
            let changes = state.control_mut().heartbeat(node, 10_000);
            apply_all(
                &mut state,
                &changes
                    .into_iter()
                    .map(MetadataRecord::Replication)
                    .collect::<Vec<_>>(),
            );
        }
        let expired = state.control().expire(10_000);
        apply_all(
            &mut state,
            &expired
                .into_iter()
                .map(MetadataRecord::Replication)
                .collect::<Vec<_>>(),
        );
        let records = state
            .create_topic("t", Uuid::new_v4(), 4, 2, None, BTreeMap::new())
            .expect("two left");
        apply_all(&mut state, &records);
        for partition in 0..4 {
            assert!(
                !state
                    .partition("t", partition)
                    .expect("placed")
                    .replicas
                    .contains(&3)
            );
        }
        let error = state
            .create_topic("u", Uuid::new_v4(), 1, 3, None, BTreeMap::new())
            .expect_err("only 2");
        assert_eq!(
            error.to_string(),
            "Replication factor: 3 larger than available brokers: 2."
        );
    }

    #[test]
    fn deleting_a_topic_removes_its_partitions_first() {
        let mut state = three_brokers();
        let records = state
            .create_topic("t", Uuid::new_v4(), 3, 1, None, BTreeMap::new())
            .expect("created");
        apply_all(&mut state, &records);
        let delete = state.delete_topic("t").expect("exists");
        assert!(matches!(
            delete.last(),
            Some(MetadataRecord::RemoveTopic { .. })
        ));
        apply_all(&mut state, &delete);
        assert!(state.topic("t").is_none() && state.partition("t", 0).is_none());
        assert!(matches!(
            state.delete_topic("t"),
            Err(TopicError::Unknown(_))
        ));
    }

    #[test]
    fn a_snapshot_rebuilds_the_same_state() {
        let mut state = three_brokers();
        let records = state
            .create_topic(
                "t",
                Uuid::new_v4(),
                2,
                2,
                None,
                BTreeMap::from([("retention.ms".into(), "1000".into())]),
            )
            .expect("created");
        apply_all(&mut state, &records);
        apply_all(
            &mut state,
            &[
                MetadataRecord::BrokerConfigs {
                    resource: String::new(),
                    configs: BTreeMap::from([("log.retention.hours".into(), "1".into())]),
                },
                MetadataRecord::ProducerIdBlock {
                    next_block_start: 5000,
                    granted: None,
                },
                MetadataRecord::Replication(MetadataChange::FenceBroker { node: 2 }),
            ],
        );
        let restored = ClusterState::restore(ReplicationControl::new(9_000), &state.snapshot())
            .expect("restores");
        assert_eq!(restored.snapshot(), state.snapshot());
        assert_eq!(restored.topic("t"), state.topic("t"));
        assert_eq!(restored.partition("t", 1), state.partition("t", 1));
        assert_eq!(restored.endpoint(3), Some(&endpoint(9093, None)));
        assert!(restored.control().broker(2).expect("known").fenced);
        assert_eq!(restored.next_producer_id_block(), 5000);
        assert_eq!(restored.broker_configs().len(), 1);
        let empty = ClusterState::restore(ReplicationControl::new(9_000), &[]).expect("empty");
        assert!(empty.topics().next().is_none());
        assert_ne!(state.partition("t", 0).expect("p0").leader, NO_LEADER);
    }

    #[test]
    fn snapshots_are_rkyv_archives_checked_on_load_and_old_json_ones_still_load() {
        let mut state = three_brokers();
        let records = state
            .create_topic("t", Uuid::new_v4(), 3, 2, None, BTreeMap::new())
            .expect("created");
        apply_all(&mut state, &records);
        let snapshot = state.snapshot();
        assert!(snapshot.starts_with(SNAPSHOT_MAGIC));
        // A snapshot from before the rkyv format: the same records as a JSON array.
        let archived = &snapshot[SNAPSHOT_MAGIC.len()..];
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(archived);
        let records: Vec<MetadataRecord> =
            rkyv::from_bytes::<_, rkyv::rancor::Error>(&aligned).expect("valid archive");
        let json = serde_json::to_vec(&records).expect("json");
        let from_json = ClusterState::restore(ReplicationControl::new(9_000), &json).expect("json");
        assert_eq!(from_json.snapshot(), snapshot);
        // Damage is an error, never a panic or a wrong state.
        for cut in [
            SNAPSHOT_MAGIC.len(),
            SNAPSHOT_MAGIC.len() + 3,
            snapshot.len() - 1,
        ] {
            assert!(
                ClusterState::restore(ReplicationControl::new(9_000), &snapshot[..cut]).is_err()
            );
        }
        let mut garbage = snapshot.clone();
        for byte in garbage[SNAPSHOT_MAGIC.len()..].iter_mut().rev().take(8) {
            *byte = 0xff;
        }
        assert!(ClusterState::restore(ReplicationControl::new(9_000), &garbage).is_err());
    }
}
