//! weir's broker engine: shards, routing, partitions, metadata and Kafka API handlers.
//!
//! ```text
//!  main thread: config → env checks → load metadata → spawn shards → wait for signal
//!      │
//!      ├── shard 0 (core a): listener (SO_REUSEPORT) · conns · owned partitions · controller
//!      ├── shard 1 (core b): listener (SO_REUSEPORT) · conns · owned partitions
//!      └── ...           bounded channels between every pair of shards (invoke_on)
//!
//!  request: conn (accepting shard) → api::dispatch → handler
//!           → per partition: invoke_on(shard_for(topic, partition)) → Partition (log)
//! ```
//!
//! Invariants: a partition's log is written only by its owner shard; metadata has one
//! writer (shard 0) and is published as immutable snapshots; shard state never crosses
//! threads (only `Send` closures and their results do); every queue is bounded.

pub mod api;
pub mod broker_client;
pub mod cleaner;
pub mod cli;
pub mod config;
pub mod conn;
pub mod controller;
pub mod disk_space;
pub mod errors;
pub mod event;
pub mod group;
pub mod main_thread;
pub mod malloc;
pub mod metadata;
pub mod partition;
pub mod producer_ids;
pub mod quorum;
pub mod replica_manager;
pub mod replication;
pub mod retention;
pub mod routing;
pub mod send_file;
pub mod server;
pub mod shard;
pub mod socket_read;
pub mod turns;
pub mod watchdog;
