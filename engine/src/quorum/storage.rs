//! The Raft log of the controller quorum on disk (`raft::Storage` for tikv's `raft`).
//!
//! ```text
//!  <first log dir>/weir-quorum/
//!    snapshot      Snapshot protobuf: metadata (index, term, voters) + the state machine's bytes
//!    hard-state    HardState protobuf: term, vote, commit
//!    entries.log   records [u32 length][u32 crc32c][Entry protobuf], indexes snapshot+1, +2, ...
//! ```
//!
//! Crash consistency:
//! * Entries are appended and fdatasync'ed before `raft` may act on them (messages that
//!   depend on them go out after `append` returns). A torn or corrupt record ends the log
//!   at open (it was never synced, so no peer relied on it).
//! * Overwriting a suffix (a new leader's entries conflict) cuts the file at the first
//!   conflicting record, then appends; a crash between leaves a shorter log, which Raft
//!   treats as entries never received.
//! * `snapshot` and `hard-state` are replaced atomically (temp, fsync, rename, fsync dir).
//!   Compaction writes the snapshot first, then rewrites `entries.log` without the
//!   entries it covers; entries at or below the snapshot found at open are dropped.
//! * A fresh directory is bootstrapped with a snapshot at index 0 naming the configured
//!   voters (every node starts from the same state, so no format step is needed). Later
//!   starts must name the same voters.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage};
use weir_storage::checkpoint::write_atomically;

use super::QuorumError;

const SNAPSHOT_FILE: &str = "snapshot";
const HARD_STATE_FILE: &str = "hard-state";
const ENTRIES_FILE: &str = "entries.log";
const RECORD_HEADER_BYTES: usize = 8;

/// The quorum's Raft log: everything since the latest snapshot is also in memory (the
/// metadata log is small and compacted by snapshots).
pub struct DiskStorage {
    dir: PathBuf,
    hard_state: HardState,
    snapshot: Snapshot,
    /// Indexes `snapshot.index + 1 ..`; `positions[i]` is where entry i starts in the file.
    entries: Vec<Entry>,
    positions: Vec<u64>,
    log: File,
    log_bytes: u64,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> QuorumError + 'a {
    move |source| QuorumError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, QuorumError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io("read", path)(error)),
    }
}

fn decode<M: protobuf::Message>(path: &Path, bytes: &[u8]) -> Result<M, QuorumError> {
    M::parse_from_bytes(bytes).map_err(|error| QuorumError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

fn encode_record(entry: &Entry, out: &mut Vec<u8>) {
    let payload = entry.write_to_bytes().expect("an Entry always encodes");
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes the records of `bytes` up to the first torn or corrupt one: (entries, their
/// positions, bytes of good records).
fn decode_records(path: &Path, bytes: &[u8]) -> (Vec<Entry>, Vec<u64>, u64) {
    let (mut entries, mut positions, mut at) = (Vec::new(), Vec::new(), 0usize);
    while bytes.len() - at >= RECORD_HEADER_BYTES {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + RECORD_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + length) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(entry) = Entry::parse_from_bytes(payload) else {
            break;
        };
        entries.push(entry);
        positions.push(at as u64);
        at = start + length;
    }
    if at != bytes.len() {
        tracing::warn!(path = %path.display(), position = at, bytes_dropped = bytes.len() - at,
            "dropping a torn or corrupt tail of the quorum log");
    }
    (entries, positions, at as u64)
}

impl DiskStorage {
    /// Opens `dir` (creating and bootstrapping it with `voters` when empty).
    pub fn open(dir: &Path, voters: &[u64]) -> Result<DiskStorage, QuorumError> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let hard_state_path = dir.join(HARD_STATE_FILE);
        let entries_path = dir.join(ENTRIES_FILE);
        let mut wanted = voters.to_vec();
        wanted.sort_unstable();
        let snapshot = match read_optional(&snapshot_path)? {
            Some(bytes) => decode::<Snapshot>(&snapshot_path, &bytes)?,
            None => {
                let mut snapshot = Snapshot::default();
                snapshot
                    .mut_metadata()
                    .set_conf_state(ConfState::from((wanted.clone(), vec![])));
                write_atomically(&snapshot_path, &snapshot.write_to_bytes().expect("encodes"))
                    .map_err(|error| QuorumError::Storage(Box::new(error)))?;
                snapshot
            }
        };
        let mut found = snapshot
            .get_metadata()
            .get_conf_state()
            .get_voters()
            .to_vec();
        found.sort_unstable();
        if found != wanted {
            return Err(QuorumError::VotersChanged {
                dir: dir.to_path_buf(),
                found,
                configured: wanted,
            });
        }
        let hard_state = match read_optional(&hard_state_path)? {
            Some(bytes) => decode::<HardState>(&hard_state_path, &bytes)?,
            None => HardState::default(),
        };
        let mut bytes = Vec::new();
        if let Ok(mut file) = File::open(&entries_path) {
            file.read_to_end(&mut bytes)
                .map_err(io("read", &entries_path))?;
        }
        let (mut entries, mut positions, good_bytes) = decode_records(&entries_path, &bytes);
        let snapshot_index = snapshot.get_metadata().index;
        // Entries a compaction covered (a crash before the log was rewritten), and any
        // that do not continue the snapshot, are not part of the log.
        let stale = entries
            .iter()
            .take_while(|e| e.index <= snapshot_index)
            .count();
        let contiguous = entries[stale..]
            .iter()
            .enumerate()
            .take_while(|(i, e)| e.index == snapshot_index + 1 + *i as u64)
            .count();
        let rewrite =
            stale > 0 || stale + contiguous != entries.len() || good_bytes != bytes.len() as u64;
        entries = entries.drain(stale..stale + contiguous).collect();
        positions.truncate(stale + contiguous);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&entries_path)
            .map_err(io("open", &entries_path))?;
        let mut storage = DiskStorage {
            dir: dir.to_path_buf(),
            hard_state,
            snapshot,
            entries,
            positions,
            log,
            log_bytes: good_bytes,
        };
        if rewrite {
            storage.rewrite_entries()?;
        }
        // A commit index past the log (its entries were torn) cannot stand.
        let last = storage.last();
        if storage.hard_state.commit > last {
            storage.hard_state.commit = last;
        }
        Ok(storage)
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.get_metadata().index + self.entries.len() as u64
    }

    /// The latest snapshot (the state machine restores from its data at start).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Appends entries from a Ready, replacing any conflicting suffix; durable on return.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), QuorumError> {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        assert!(
            first_new >= self.first(),
            "raft overwrites compacted entries at {first_new}"
        );
        assert!(
            first_new <= self.last() + 1,
            "raft leaves a gap before {first_new}"
        );
        let path = self.dir.join(ENTRIES_FILE);
        if first_new <= self.last() {
            let keep = (first_new - self.first()) as usize;
            let cut = self.positions[keep];
            self.log.set_len(cut).map_err(io("truncate", &path))?;
            self.entries.truncate(keep);
            self.positions.truncate(keep);
            self.log_bytes = cut;
        }
        let mut bytes = Vec::new();
        for entry in entries {
            self.positions.push(self.log_bytes + bytes.len() as u64);
            encode_record(entry, &mut bytes);
        }
        self.log.write_all(&bytes).map_err(io("append to", &path))?;
        self.log.sync_data().map_err(io("fdatasync", &path))?;
        self.log_bytes += bytes.len() as u64;
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Persists a new hard state (term, vote, commit).
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), QuorumError> {
        if hard_state != self.hard_state {
            let path = self.dir.join(HARD_STATE_FILE);
            write_atomically(&path, &hard_state.write_to_bytes().expect("encodes"))
                .map_err(|error| QuorumError::Storage(Box::new(error)))?;
            self.hard_state = hard_state;
        }
        Ok(())
    }

    pub fn set_commit(&mut self, commit: u64) -> Result<(), QuorumError> {
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(hard_state)
    }

    /// A snapshot from the leader replaces the whole log.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), QuorumError> {
        let metadata = snapshot.get_metadata();
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(metadata.term);
        hard_state.commit = hard_state.commit.max(metadata.index);
        self.install_snapshot(snapshot)?;
        self.entries.clear();
        self.positions.clear();
        self.rewrite_entries()?;
        self.set_hard_state(hard_state)
    }

    /// Compacts: a snapshot of the state machine at `applied_index` (`data`) replaces
    /// the entries up to it.
    pub fn compact(&mut self, applied_index: u64, data: Vec<u8>) -> Result<(), QuorumError> {
        if applied_index < self.first() || applied_index > self.last() {
            return Ok(());
        }
        let term = self.term(applied_index).expect("in the log");
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let metadata = snapshot.mut_metadata();
        metadata.index = applied_index;
        metadata.term = term;
        metadata.set_conf_state(self.snapshot.get_metadata().get_conf_state().clone());
        let drop = (applied_index + 1 - self.first()) as usize;
        self.install_snapshot(snapshot)?;
        self.entries.drain(..drop);
        self.rewrite_entries()
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), QuorumError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        write_atomically(&path, &snapshot.write_to_bytes().expect("encodes"))
            .map_err(|error| QuorumError::Storage(Box::new(error)))?;
        self.snapshot = snapshot;
        Ok(())
    }

    /// Rewrites `entries.log` with exactly the entries in memory (atomically).
    fn rewrite_entries(&mut self) -> Result<(), QuorumError> {
        let path = self.dir.join(ENTRIES_FILE);
        let mut bytes = Vec::new();
        self.positions.clear();
        for entry in &self.entries {
            self.positions.push(bytes.len() as u64);
            encode_record(entry, &mut bytes);
        }
        write_atomically(&path, &bytes).map_err(|error| QuorumError::Storage(Box::new(error)))?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        self.log_bytes = bytes.len() as u64;
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let offset = self.first();
        let mut entries = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let metadata = self.snapshot.get_metadata();
        if index == metadata.index {
            return Ok(metadata.term);
        }
        if index < self.first() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if index > self.last() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        Ok(self.entries[(index - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}
