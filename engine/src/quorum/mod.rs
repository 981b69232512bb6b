//! The controller quorum: a replicated metadata log on tikv's `raft` (sans-IO Raft),
//! as KRaft runs it in combined mode (`process.roles=broker,controller`).
//!
//! ```text
//!  QuorumDriver (shard 0) ── tick() every tick_ms ──► QuorumNode ──► raft::RawNode<DiskStorage>
//!       │ step(message from a peer)                       │ handle_ready():
//!       │ propose(record bytes) (leader only)             │   1. entries + hard state durable (storage.rs)
//!       ◄── Ready { messages to send, committed records } ◄   2. messages (after persistence)
//!                                                          │   3. committed entries, in log order, once
//! ```
//!
//! Invariants: a record is applied on every node in the same order, exactly once per
//! process lifetime (a restart replays from the latest snapshot, whose data the state
//! machine restores first); nothing is acknowledged to a peer before it is fdatasync'ed;
//! a single node is a one-voter quorum on the same path.
//!
//! `MetadataLog` runs the metadata state machine (`replication::cluster_state`) on it; a
//! single broker is a quorum of one. `transport` frames Raft messages for the wire
//! between voters and `driver` runs a node among its peers on a glommio executor.

mod driver;
mod metadata_log;
mod node;
mod storage;
pub mod transport;

pub use driver::QuorumDriver;
pub use metadata_log::{
    Applied, MetadataLog, QUORUM_DIR_NAME, QuorumDescription, VoterProgress, node_id_of, raft_id,
    timing,
};

pub use node::{Committed, QuorumNode, QuorumTiming, Ready, decode_message, encode_message};
pub use storage::DiskStorage;

use std::path::PathBuf;

/// Errors of the quorum's storage and Raft.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("could not {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{dir} belongs to a quorum of voters {found:?}, but controller.quorum.voters names {configured:?}; \
         a quorum's voters cannot be changed by configuration (use the old voters, or a new data directory)"
    )]
    VotersChanged {
        dir: PathBuf,
        found: Vec<u64>,
        configured: Vec<u64>,
    },
    #[error(transparent)]
    Storage(Box<weir_storage::StorageError>),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("the metadata log stopped after an earlier failure ({0}); restart the broker")]
    Stopped(String),
}

/// Forwards `raft`'s slog records to `tracing` (target `weir_engine::quorum::raft`);
/// its chatty info level (every state change) becomes debug.
struct TracingDrain;

struct KeyValues(String);

impl slog::Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        let mut fields = KeyValues(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "weir_engine::quorum::raft", "{message}{}", fields.0)
            }
            slog::Level::Warning => {
                tracing::warn!(target: "weir_engine::quorum::raft", "{message}{}", fields.0)
            }
            _ => tracing::debug!(target: "weir_engine::quorum::raft", "{message}{}", fields.0),
        }
        Ok(())
    }
}

fn logger(node_id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("node" => node_id))
}

#[cfg(test)]
mod tests;
