//! Consumer groups and committed offsets (classic protocol), per DESIGN.md §4.
//!
//! ```text
//!   group G ──java hash──► __consumer_offsets partition p = abs(hash(G)) % N
//!                          └─► owner shard of p = G's coordinator (only writer of G's state)
//!   records in p: OffsetCommitKey/Value, GroupMetadataKey/Value (Kafka's schemas)
//! ```
//!
//! Built in steps: `records` (the on-disk schemas) first; the sans-IO state machine and
//! the shard-side driver follow. Nothing here is advertised in ApiVersions until the
//! APIs are handled end to end and tested with real clients.

pub mod admin;
pub mod coordinator;
pub mod driver;
pub mod expiry;
pub mod offsets;
pub mod records;
pub mod state;
