//! The idempotent-producer side of `PartitionLog`: checking client batches against the
//! producer state, loading it (snapshot + replay) at open, snapshotting it at roll and
//! close, and expiring idle producers. See `producer_state` for the rules and
//! `producer_snapshots` for the files' crash-consistency protocol.

use super::*;

impl PartitionLog {
    /// Loads the newest usable producer snapshot and replays the batches after it (from
    /// the log start without one), then forgets expired producers.
    pub(super) async fn load_producer_state(&mut self) -> Result<(), StorageError> {
        let now = now_ms();
        let expiration_ms = self.config.producer_id_expiration_ms;
        let (table, snapshot_offset) =
            producer_snapshots::load(&self.dir, self.log_end_offset(), now, expiration_ms)?;
        self.producers = table;
        self.latest_snapshot_offset = snapshot_offset;
        let from = snapshot_offset.unwrap_or(self.log_start_offset);
        let first = self.segment_index_for(from);
        let producers = &mut self.producers;
        for segment in &self.segments[first..] {
            let (_, position) = segment.state.offset_index.lookup(from);
            segment
                .scan_headers(u64::from(position), |header| {
                    if header.last_offset() >= from
                        && header.producer_id() != NO_PRODUCER_ID
                        && !header.is_control()
                    {
                        producers.apply(&producer_batch(header), header.last_offset());
                    }
                    false
                })
                .await?;
        }
        self.producers.remove_expired(now, expiration_ms);
        Ok(())
    }

    /// Forgets producers idle for `producer_id_expiration_ms`; returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.producers
            .remove_expired(now_ms, self.config.producer_id_expiration_ms)
    }

    /// Writes the producer snapshot for the current log end, unless one exists already
    /// or there is nothing to replay without one (an empty table at the log start).
    /// Called at roll and close; owners that keep the log open call it at shutdown.
    pub fn snapshot_producers(&mut self) -> Result<(), StorageError> {
        let log_end_offset = self.log_end_offset();
        let nothing_to_replay =
            self.producers.is_empty() && log_end_offset == self.log_start_offset;
        if self.latest_snapshot_offset == Some(log_end_offset) || nothing_to_replay {
            return Ok(());
        }
        producer_snapshots::write(&self.dir, log_end_offset, &self.producers)?;
        self.latest_snapshot_offset = Some(log_end_offset);
        Ok(())
    }

    /// Kafka's producer checks for a client append: an idempotent batch must come alone
    /// (as Kafka requires of every produce v3+ request), must not be transactional (no
    /// transactions yet), and must continue its producer's sequence. Returns the
    /// original batch when this one is a retry of it.
    pub(super) fn check_producer(
        &self,
        records: &[u8],
        infos: &[batch::BatchInfo],
    ) -> Result<Option<crate::producer_state::BatchMetadata>, StorageError> {
        let headers = infos
            .iter()
            .map(|info| BatchHeader::new(&records[info.position..]).expect("validated"));
        let mut idempotent = None;
        for header in headers {
            if header.is_transactional() {
                return Err(StorageError::InvalidTxnState {
                    producer_id: header.producer_id(),
                });
            }
            if header.producer_id() != NO_PRODUCER_ID {
                idempotent = Some(header);
            }
        }
        let Some(header) = idempotent else {
            return Ok(None);
        };
        if header.base_sequence() < 0 {
            return Err(StorageError::InvalidRecord {
                reason: format!(
                    "invalid sequence number {} in a record batch of producer {}",
                    header.base_sequence(),
                    header.producer_id()
                ),
            });
        }
        if infos.len() > 1 {
            return Err(StorageError::InvalidRecord {
                reason: format!(
                    "an idempotent produce request must carry exactly one record batch per partition, got {}",
                    infos.len()
                ),
            });
        }
        match self.producers.check(&producer_batch(&header))? {
            SequenceCheck::Append => Ok(None),
            SequenceCheck::Duplicate(original) => Ok(Some(original)),
        }
    }
}

/// The producer fields of a written (or validated) batch header.
pub(super) fn producer_batch(header: &BatchHeader<'_>) -> ProducerBatch {
    ProducerBatch {
        producer_id: header.producer_id(),
        epoch: header.producer_epoch(),
        first_sequence: header.base_sequence(),
        offset_delta: header.last_offset_delta(),
        max_timestamp: header.max_timestamp(),
    }
}
