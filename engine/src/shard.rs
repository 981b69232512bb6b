//! A shard: one pinned glommio executor and everything it owns.
//!
//! ```text
//!   shard i ──ShardTask──► bounded shared channel (i→j) ──► shard j runs it, replies
//!            ◄────────────────── futures oneshot ─────────────┘
//! ```
//!
//! Cross-shard calls are closures sent over bounded channels, one per ordered pair of
//! shards ([`Shard::invoke_on`], the Seastar `submit_to` pattern): the closure carries
//! only `Send` data, runs on the target shard with that shard's `Rc<Shard>`, and its
//! result comes back on a oneshot. State inside a shard is `!Send` (`Rc`, `RefCell`,
//! `Cell`) and never leaves it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use tracing::{info, warn};
use weir_storage::{LogConfig, PartitionLog, StorageError, meta};

use crate::config::{BrokerConfig, topic as topic_config};
use crate::disk_space::DirSpace;
use crate::event::Event;
use crate::group::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use crate::metadata::{ClusterMetadata, TopicMetadata, partition_dir};
use crate::partition::{LeadershipChange, Partition};
use crate::producer_ids::{ProducerIdBlocks, ProducerIdCache};
use crate::replication::leader::LeaderConfig;
use crate::routing::shard_for;

/// Capacity of each shard-to-shard channel: enough to keep a busy pair of shards
/// streaming without letting one shard queue unbounded work on another.
pub const CROSS_SHARD_CHANNEL_CAPACITY: usize = 1024;

/// Work sent to another shard.
pub type ShardTask = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, ()> + Send>;

/// The target shard stopped before answering (only during shutdown).
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} is gone")]
pub struct ShardGone {
    pub shard: usize,
}

/// Recovery facts handed to each shard at start-up.
#[derive(Debug, Default)]
pub struct StartupState {
    /// (topic, partition) → recovery point, from every log dir's checkpoint.
    pub recovery_points: HashMap<(String, i32), i64>,
    /// (topic, partition) → log start offset.
    pub log_start_offsets: HashMap<(String, i32), i64>,
    /// (topic, partition) → first offset the log cleaner has not cleaned yet.
    pub cleaner_offsets: HashMap<(String, i32), i64>,
    /// (topic, partition) → high watermark (`replication-offset-checkpoint`).
    pub high_watermarks: HashMap<(String, i32), i64>,
    /// Index of log dirs that had the clean-shutdown marker.
    pub clean_dirs: Vec<bool>,
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    /// The static configuration (file, environment, flags).
    pub config: Arc<BrokerConfig>,
    /// `config` with the dynamic broker configs of the current metadata applied: what
    /// log defaults, retention and the cleaner read.
    effective_config: RefCell<Arc<BrokerConfig>>,
    metadata: RefCell<Arc<ClusterMetadata>>,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    senders: Vec<Option<ConnectedSender<ShardTask>>>,
    /// Fired when the shard starts shutting down: connections stop reading.
    pub shutdown: Rc<Event>,
    shutting_down: std::cell::Cell<bool>,
    /// Serializes metadata changes; only used on shard 0 (the controller role).
    pub controller_lock: glommio::sync::Semaphore,
    /// The metadata log; held by shard 0 (the controller role) only.
    pub metadata_log: RefCell<Option<crate::quorum::MetadataLog>>,
    /// The metadata log index this node's shards last installed (controller shard).
    pub published_index: std::cell::Cell<u64>,
    /// Fired after each publication (controller shard).
    pub metadata_published: Rc<Event>,
    /// Leaders this shard runs a replica fetcher for.
    pub fetcher_leaders: RefCell<std::collections::BTreeSet<i32>>,
    /// Counts changes to what this shard follows (a partition, its leader or epoch);
    /// `followed_changed` fires with each, so a fetcher parked at a leader with an
    /// older set starts over with the new one instead of waiting out its fetch.
    pub followed_version: std::cell::Cell<u64>,
    pub followed_changed: Rc<Event>,
    /// Serializes checkpoint writes (the periodic one, DeleteRecords', shutdown's) so an
    /// older view never overwrites a newer one; only used on shard 0.
    pub checkpoint_lock: glommio::sync::Semaphore,
    /// Every connection task runs inside this gate; closing it waits for them.
    pub connections: glommio::sync::Gate,
    /// Fired when the shard may stop its executor (the last step of shutdown).
    pub exit: Rc<Event>,
    /// Another shard's thread ended (its channel to this one closed).
    pub peer_gone: std::cell::Cell<bool>,
    /// The groups this shard coordinates (those of the `__consumer_offsets`
    /// partitions it owns).
    pub groups: GroupCoordinator,
    /// This shard's block of producer ids for InitProducerId.
    pub producer_ids: ProducerIdCache,
    /// Producer id blocks; only used on the controller shard.
    pub producer_id_blocks: ProducerIdBlocks,
    /// Free-space state of each log dir, as this shard last measured it.
    dir_space: Vec<Rc<DirSpace>>,
}

/// What one partition contributes to the per-log-dir checkpoint files.
#[derive(Debug, Clone)]
pub struct CheckpointEntry {
    pub topic: String,
    pub partition: i32,
    pub dir_index: usize,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The cleaner checkpoint, for partitions the cleaner has cleaned.
    pub first_dirty_offset: Option<i64>,
}

impl Shard {
    pub fn new(
        id: usize,
        count: usize,
        config: Arc<BrokerConfig>,
        metadata: Arc<ClusterMetadata>,
        senders: Vec<Option<ConnectedSender<ShardTask>>>,
    ) -> Rc<Shard> {
        let dir_space = config
            .log_dirs
            .iter()
            .map(|_| Rc::new(DirSpace::default()))
            .collect();
        Rc::new(Shard {
            id,
            count,
            effective_config: RefCell::new(effective_config(&config, &metadata)),
            config,
            metadata: RefCell::new(metadata),
            partitions: RefCell::new(HashMap::new()),
            senders,
            shutdown: Event::new(),
            shutting_down: std::cell::Cell::new(false),
            controller_lock: glommio::sync::Semaphore::new(1),
            metadata_log: RefCell::new(None),
            published_index: std::cell::Cell::new(0),
            metadata_published: Event::new(),
            fetcher_leaders: RefCell::new(std::collections::BTreeSet::new()),
            followed_version: std::cell::Cell::new(0),
            followed_changed: Event::new(),
            checkpoint_lock: glommio::sync::Semaphore::new(1),
            connections: glommio::sync::Gate::new(),
            exit: Event::new(),
            peer_gone: std::cell::Cell::new(false),
            groups: GroupCoordinator::default(),
            producer_ids: ProducerIdCache::default(),
            producer_id_blocks: ProducerIdBlocks::default(),
            dir_space,
        })
    }

    /// Runs `work` on shard `target` and returns its result. Local calls run inline.
    pub async fn invoke_on<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        work: F,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            return Ok(work(self.clone()).await);
        }
        self.send_to(target, work, &std::cell::Cell::new(false))
            .await
    }

    /// `invoke_on` that sets `ordered` once `work` has started in order behind the work
    /// sent to `target` before: after its first poll here, or once it is in the channel
    /// to `target` (whose tasks start in the order they arrive). Work that takes its
    /// place in a line before its first await (`Partition::append`) is then queued
    /// behind every earlier call's.
    pub async fn invoke_on_in_order<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        work: F,
        ordered: &std::cell::Cell<bool>,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            // A task of its own, which glommio polls once right here, so it has its
            // place before this returns. It then runs whether or not the caller is
            // polled, as work sent to another shard does: a connection busy writing to
            // a slow client must not keep a partition's append (and its log) waiting.
            let task = glommio::spawn_local(work(self.clone())).detach();
            ordered.set(true);
            return task.await.ok_or(ShardGone { shard: self.id });
        }
        self.send_to(target, work, ordered).await
    }

    /// Sends `work` to another shard; sets `ordered` once it is in the channel.
    async fn send_to<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        work: F,
        ordered: &std::cell::Cell<bool>,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task: ShardTask = Box::new(move |shard| {
            Box::pin(async move {
                let _ = reply.send(work(shard).await);
            })
        });
        let sender = self.senders[target]
            .as_ref()
            .expect("every other shard has a sender");
        let sent = sender.send(task).await;
        ordered.set(true);
        if sent.is_err() {
            return Err(ShardGone { shard: target });
        }
        answer.await.map_err(|_| ShardGone { shard: target })
    }

    /// Runs `work` on every shard (including this one) concurrently.
    pub async fn invoke_on_all<R, F, Fut>(self: &Rc<Self>, work: F) -> Vec<Result<R, ShardGone>>
    where
        R: Send + 'static,
        F: Fn(Rc<Shard>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let calls = (0..self.count).map(|target| {
            let work = work.clone();
            self.invoke_on(target, work)
        });
        futures::future::join_all(calls).await
    }

    /// Serves tasks other shards send here, until the channel closes.
    pub async fn serve_peer(self: Rc<Self>, receiver: ConnectedReceiver<ShardTask>) {
        while let Some(task) = receiver.recv().await {
            glommio::spawn_local(task(self.clone())).detach();
        }
        // The other shard's thread ended: at shutdown's end, or a failed start-up.
        self.peer_gone.set(true);
    }

    /// The free-space state of log dir `index` (see `disk_space`).
    pub fn dir_space(&self, index: usize) -> Rc<DirSpace> {
        self.dir_space[index].clone()
    }

    /// The configuration in force now: static keys with dynamic broker configs applied.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.effective_config.borrow().clone()
    }

    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        shard_for(topic, partition, self.count)
    }

    /// The local partition, if this shard owns and has opened it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn local_partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Sleeps `interval_ms` or until shutdown begins; false once the shard is shutting
    /// down (the caller's loop should end). The one wait of every periodic shard task.
    pub async fn sleep_unless_shutdown(&self, interval_ms: u64) -> bool {
        if self.is_shutting_down() {
            return false;
        }
        let sleep = glommio::timer::sleep(std::time::Duration::from_millis(interval_ms));
        let shutdown = self.shutdown.listen();
        futures::pin_mut!(sleep, shutdown);
        futures::future::select(sleep, shutdown).await;
        !self.is_shutting_down()
    }

    /// Runs a background task (retention, the cleaner) in its own task queue with
    /// `shares` (the default queue has 1000), so under load it yields to produce and
    /// fetch.
    pub fn spawn_background(
        &self,
        name: &'static str,
        shares: usize,
        task: impl Future<Output = ()> + 'static,
    ) {
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(shares),
            glommio::Latency::NotImportant,
            name,
        );
        glommio::spawn_local_into(task, queue)
            .expect("a task queue just created on this executor accepts tasks")
            .detach();
    }

    pub fn begin_shutdown(&self) {
        if !self.shutting_down.replace(true) {
            self.shutdown.notify_all();
        }
    }

    /// The log settings of a topic: broker defaults with the topic's overrides applied.
    pub fn log_config_for(&self, topic: &TopicMetadata) -> LogConfig {
        log_config_for(&self.effective_config(), topic)
    }

    /// Installs a new metadata snapshot: opens partitions this shard now owns, closes
    /// and deletes partitions whose topic was deleted, and applies config changes.
    pub async fn apply_metadata(
        self: &Rc<Self>,
        metadata: Arc<ClusterMetadata>,
        startup: Option<&StartupState>,
    ) -> Result<(), StorageError> {
        if metadata.version < self.metadata.borrow().version {
            // A newer snapshot was published before this shard applied its start-up one.
            return Ok(());
        }
        // The new snapshot becomes visible to requests only once the partitions it
        // places here are open and have their roles, so Metadata never names this broker
        // for a partition it cannot serve yet.
        let previous = self.metadata();
        let previous_config = self.effective_config();
        if metadata.broker_configs != previous.broker_configs {
            self.effective_config
                .replace(effective_config(&self.config, &metadata));
            // A changed weir.log.dir.min.free.bytes is in force once acknowledged.
            crate::disk_space::check(self);
        }
        let log_defaults_changed =
            previous_config.log_defaults != self.effective_config().log_defaults;
        // Partitions of topics that disappeared or were re-created under a new id.
        let stale: Vec<((String, i32), Rc<Partition>)> = self
            .partitions
            .borrow()
            .iter()
            .filter(|((topic, partition), _)| {
                match (metadata.topic(topic), previous.topic(topic)) {
                    (Some(now), Some(before)) => {
                        now.id != before.id || *partition >= now.partitions
                    }
                    (None, _) => true,
                    _ => false,
                }
            })
            .map(|(key, partition)| (key.clone(), partition.clone()))
            .collect();
        for ((topic, index), partition) in stale {
            self.partitions.borrow_mut().remove(&(topic.clone(), index));
            partition.close().await?;
            if let Some(before) = previous.topic(&topic) {
                let dir = partition_dir(&self.config.log_dirs, before, index);
                delete_partition_dir(&self.config.log_dirs, &dir);
            }
        }
        let node = self.config.node_id;
        let now_ms = weir_storage::now_ms().max(0) as u64;
        let broker_min_isr = self
            .effective_config()
            .value("min.insync.replicas")
            .and_then(|(value, _)| value.parse::<usize>().ok())
            .unwrap_or(1);
        let mut followed = std::collections::BTreeSet::new();
        let mut followed_changed = false;
        for topic in metadata.topics.values() {
            let config = self.log_config_for(topic);
            let leader_config = LeaderConfig {
                replica_lag_time_max_ms: self.config.cluster.replica_lag_time_max_ms,
                min_insync_replicas: topic
                    .configs
                    .get("min.insync.replicas")
                    .and_then(|value| value.parse::<usize>().ok())
                    .unwrap_or(broker_min_isr),
            };
            for index in 0..topic.partitions {
                if self.owner_of(&topic.name, index) != self.id {
                    continue;
                }
                let registration = topic.registrations.get(index as usize);
                if registration.is_some_and(|r| !r.replicas.contains(&node)) {
                    // Not a replica here (any more): closed, its data left on disk.
                    let removed = self
                        .partitions
                        .borrow_mut()
                        .remove(&(topic.name.clone(), index));
                    if let Some(partition) = removed {
                        partition.close().await?;
                    }
                    continue;
                }
                let existing = self.partition(&topic.name, index);
                let leader_epoch = registration.map(|r| r.leader_epoch);
                let partition = match existing {
                    Some(partition) => {
                        if log_defaults_changed
                            || previous.topic(&topic.name).map(|before| &before.configs)
                                != Some(&topic.configs)
                        {
                            partition.set_config(config.clone()).await?;
                        }
                        partition
                    }
                    None => {
                        let partition = self
                            .open_partition(topic, index, config.clone(), startup)
                            .await?;
                        if let Some(epoch) = leader_epoch {
                            partition.set_leader_epoch(epoch);
                        }
                        self.partitions
                            .borrow_mut()
                            .insert((topic.name.clone(), index), partition.clone());
                        partition
                    }
                };
                if let Some(registration) = registration {
                    let following_before = partition.following();
                    let change =
                        partition.apply_registration(node, registration, leader_config, now_ms);
                    followed_changed |= partition.following() != following_before;
                    if topic.name == OFFSETS_TOPIC {
                        match change {
                            LeadershipChange::Became => {
                                // The groups of this partition are coordinated here now.
                                self.groups.unload_partition(self, index);
                                let records = self.groups.load_partition(&partition).await;
                                self.groups.restore_groups(self, index);
                                if records > 0 {
                                    info!(
                                        shard = self.id,
                                        partition = index,
                                        records,
                                        "loaded group state"
                                    );
                                }
                            }
                            LeadershipChange::Lost => {
                                self.groups.unload_partition(self, index);
                                info!(
                                    shard = self.id,
                                    partition = index,
                                    "unloaded group state (no longer the coordinator)"
                                );
                            }
                            _ => {}
                        }
                    }
                    if let Some((leader, _)) = partition.following() {
                        followed.insert(leader);
                    }
                }
            }
        }
        self.metadata.replace(metadata);
        if followed_changed {
            self.followed_version.set(self.followed_version.get() + 1);
            self.followed_changed.notify_all();
        }
        for leader in followed {
            crate::replica_manager::ensure_fetcher(self, leader);
        }
        Ok(())
    }

    async fn open_partition(
        &self,
        topic: &TopicMetadata,
        index: i32,
        config: LogConfig,
        startup: Option<&StartupState>,
    ) -> Result<Rc<Partition>, StorageError> {
        let dir = partition_dir(&self.config.log_dirs, topic, index);
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            op: "create partition dir",
            path: dir.clone(),
            source,
        })?;
        if meta::PartitionMetadata::read(&dir)?.is_none() {
            meta::PartitionMetadata { topic_id: topic.id }.write(&dir)?;
        }
        let key = (topic.name.clone(), index);
        let dir_index = topic
            .partition_dirs
            .get(index as usize)
            .copied()
            .unwrap_or(0);
        let (recovery_point, log_start, clean) = match startup {
            Some(state) => (
                state.recovery_points.get(&key).copied(),
                state.log_start_offsets.get(&key).copied(),
                state.clean_dirs.get(dir_index).copied().unwrap_or(false),
            ),
            None => (None, None, false),
        };
        let (log, report) =
            PartitionLog::open(dir.clone(), config, recovery_point, log_start, clean).await?;
        for note in &report.truncated {
            warn!(
                shard = self.id,
                topic = %topic.name,
                partition = index,
                file = %note.path.display(),
                position = note.position,
                bytes_dropped = note.bytes_dropped,
                "truncated log tail at {}:{}: {}",
                note.path.display(),
                note.position,
                note.reason
            );
        }
        for rebuilt in &report.indexes_rebuilt {
            info!(shard = self.id, topic = %topic.name, partition = index, file = %rebuilt.display(), "rebuilt index");
        }
        let partition = Partition::new(topic.name.clone(), index, log, self.dir_space(dir_index));
        if let Some(high_watermark) = startup.and_then(|state| state.high_watermarks.get(&key)) {
            partition.restore_high_watermark(*high_watermark);
        }
        partition.set_first_dirty_offset(
            startup.and_then(|state| state.cleaner_offsets.get(&key).copied()),
        );
        Ok(partition)
    }

    fn checkpoint_entry(
        &self,
        metadata: &ClusterMetadata,
        partition: &Partition,
    ) -> CheckpointEntry {
        let dir_index = metadata
            .topic(&partition.topic)
            .and_then(|topic| topic.partition_dirs.get(partition.index as usize).copied())
            .unwrap_or(0);
        CheckpointEntry {
            topic: partition.topic.clone(),
            partition: partition.index,
            dir_index,
            recovery_point: partition.recovery_point(),
            log_start_offset: partition.log_start_offset(),
            high_watermark: partition.high_watermark(),
            first_dirty_offset: partition.first_dirty_offset(),
        }
    }

    /// Flushes and closes every local partition; returns their checkpoint entries.
    pub async fn close_partitions(&self) -> Vec<CheckpointEntry> {
        let partitions: Vec<Rc<Partition>> = self
            .partitions
            .borrow_mut()
            .drain()
            .map(|(_, partition)| partition)
            .collect();
        let metadata = self.metadata();
        let mut entries = Vec::new();
        for partition in partitions {
            if let Err(error) = partition.close().await {
                warn!(shard = self.id, topic = %partition.topic, partition = partition.index, %error, "could not flush partition at shutdown");
                continue;
            }
            entries.push(self.checkpoint_entry(&metadata, &partition));
        }
        entries
    }

    /// Checkpoint entries of the open local partitions, without closing them.
    pub fn checkpoint_entries(&self) -> Vec<CheckpointEntry> {
        let metadata = self.metadata();
        self.local_partitions()
            .iter()
            .map(|partition| self.checkpoint_entry(&metadata, partition))
            .collect()
    }
}

/// The static config with the dynamic broker configs of `metadata` applied (the static
/// one alone if those are invalid, which only a hand-edited file can make them).
fn effective_config(config: &Arc<BrokerConfig>, metadata: &ClusterMetadata) -> Arc<BrokerConfig> {
    let (cluster, node) = metadata.dynamic_configs(config.node_id);
    if cluster.is_empty() && node.is_empty() {
        return config.clone();
    }
    match config.with_dynamic(&cluster, &node) {
        Ok(effective) => Arc::new(effective),
        Err(error) => {
            warn!(%error, "ignoring invalid dynamic broker configs");
            config.clone()
        }
    }
}

/// Broker log defaults with a topic's overrides applied.
pub fn log_config_for(config: &BrokerConfig, topic: &TopicMetadata) -> LogConfig {
    let mut log = config.log_defaults.clone();
    for (key, value) in &topic.configs {
        if topic_config::validate(key, value).is_ok() {
            topic_config::apply(&mut log, key, value);
        }
    }
    log
}

/// Removes a deleted partition's directory: renamed to `*-delete` first (Kafka's
/// convention, so a crash mid-removal never resurrects it), then removed.
fn delete_partition_dir(log_dirs: &[PathBuf], dir: &PathBuf) {
    if !crate::metadata::is_inside(dir, log_dirs) || !dir.exists() {
        return;
    }
    let doomed = dir.with_file_name(format!(
        "{}.{}-delete",
        dir.file_name()
            .map(|name| name.to_string_lossy().to_string())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().simple()
    ));
    let target = if std::fs::rename(dir, &doomed).is_ok() {
        doomed
    } else {
        dir.clone()
    };
    if let Err(error) = std::fs::remove_dir_all(&target) {
        warn!(dir = %target.display(), %error, "could not remove deleted partition directory");
    }
}
