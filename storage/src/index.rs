//! Kafka's sparse segment indexes, kept in memory and appended to their files.
//!
//! * `.index` (`OffsetIndex`): 8-byte entries `relative offset u32 BE, position u32 BE`.
//!   An entry maps the LAST offset of a batch to the file position of that batch's
//!   start, so "greatest entry ≤ target, then scan batch headers forward until a batch's
//!   last offset ≥ target" finds the batch holding `target`.
//! * `.timeindex` (`TimeIndex`): 12-byte entries `timestamp i64 BE, relative offset u32 BE`,
//!   the largest timestamp seen so far in the segment and the offset it belongs to.
//!
//! Relative offsets are `offset − segment base offset`. Entries are strictly increasing
//! in offset (offset index) and in timestamp and non-decreasing in offset (time index).
//! Kafka preallocates index files and may leave a zero tail after an unclean stop; a
//! loaded index stops at the first all-zero entry after entry 0.
//!
//! The in-memory vectors are the truth; `pending_bytes` hands the entries not yet on
//! disk to the segment, which appends them to the file after the log write.

/// Bytes per `.index` entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes per `.timeindex` entry.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// The raw `(relative offset, position)` entries of `.index` bytes in file order, with
/// no checks (a trailing partial entry is left out). For tools that print a file as it
/// is; the broker uses `OffsetIndex::load`.
pub fn offset_index_entries(bytes: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES).map(|entry| {
        (
            u32::from_be_bytes(entry[0..4].try_into().expect("4 bytes")),
            u32::from_be_bytes(entry[4..8].try_into().expect("4 bytes")),
        )
    })
}

/// The raw `(timestamp, relative offset)` entries of `.timeindex` bytes in file order,
/// with no checks (a trailing partial entry is left out).
pub fn time_index_entries(bytes: &[u8]) -> impl Iterator<Item = (i64, u32)> + '_ {
    bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES).map(|entry| {
        (
            i64::from_be_bytes(entry[0..8].try_into().expect("8 bytes")),
            u32::from_be_bytes(entry[8..12].try_into().expect("4 bytes")),
        )
    })
}

/// Sparse map from (batch last) offset to the position of its batch in the `.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    entries_max: usize,
    entries_on_disk: usize,
}

impl OffsetIndex {
    /// An empty index for the segment at `base_offset`, holding at most `index_bytes_max / 8` entries.
    pub fn new(base_offset: i64, index_bytes_max: u32) -> Self {
        let entries_max = (index_bytes_max as usize / OFFSET_INDEX_ENTRY_BYTES).max(1);
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
            entries_max,
            entries_on_disk: 0,
        }
    }

    /// Parses an index file's bytes and sanity-checks them against the segment's `.log`
    /// size: entries strictly increasing, positions inside the log. A trailing partial
    /// entry or an inconsistency is an error (the caller rebuilds the index).
    pub fn load(
        base_offset: i64,
        index_bytes_max: u32,
        bytes: &[u8],
        log_size_bytes: u64,
    ) -> Result<Self, String> {
        let mut index = OffsetIndex::new(base_offset, index_bytes_max);
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return Err(format!(
                "size {} is not a multiple of {OFFSET_INDEX_ENTRY_BYTES}",
                bytes.len()
            ));
        }
        for (number, (relative, position)) in offset_index_entries(bytes).enumerate() {
            if number > 0 && relative == 0 && position == 0 {
                break; // Kafka's preallocated zero tail.
            }
            if let Some(&(last_relative, last_position)) = index.entries.last()
                && (relative <= last_relative || position <= last_position)
            {
                return Err(format!(
                    "entry {number} ({relative}, {position}) does not increase"
                ));
            }
            if u64::from(position) >= log_size_bytes {
                return Err(format!(
                    "entry {number} points at {position}, past the log end {log_size_bytes}"
                ));
            }
            index.entries.push((relative, position));
        }
        if index.entries.len() > index.entries_max {
            // Keep what fits: the index stays correct, only sparser at the end.
            index.entries.truncate(index.entries_max);
        }
        index.entries_on_disk = index.entries.len();
        Ok(index)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }
    /// The last entry as (absolute offset, position).
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries
            .last()
            .map(|&(relative, position)| (self.base_offset + i64::from(relative), position))
    }

    /// Appends an entry. Offsets and positions must strictly increase; a full index
    /// ignores the entry (the segment rolls before the next append).
    pub fn append(&mut self, offset: i64, position: u32) {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        let relative = relative as u32;
        if let Some(&(last_relative, last_position)) = self.entries.last() {
            assert!(
                relative > last_relative && position > last_position,
                "offset index went backwards"
            );
        }
        if !self.is_full() {
            self.entries.push((relative, position));
        }
    }

    /// Greatest entry with offset ≤ `target`, as (absolute offset, position); the segment
    /// start `(base_offset, 0)` if there is none.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let relative = target - self.base_offset;
        if relative < 0 {
            return (self.base_offset, 0);
        }
        let relative = relative.min(i64::from(u32::MAX)) as u32;
        let count = self
            .entries
            .partition_point(|&(entry_relative, _)| entry_relative <= relative);
        match count {
            0 => (self.base_offset, 0),
            count => {
                let (entry_relative, position) = self.entries[count - 1];
                (self.base_offset + i64::from(entry_relative), position)
            }
        }
    }

    /// Positions of the indexed batches starting strictly between `low` and `high`, in order.
    pub fn positions_between(&self, low: u32, high: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self
            .entries
            .partition_point(|&(_, position)| position <= low);
        self.entries[first..]
            .iter()
            .map(|&(_, position)| position)
            .take_while(move |&position| position < high)
    }

    /// Greatest entry with position ≤ `position`, used to resume scanning.
    pub fn lookup_position(&self, position: u32) -> u32 {
        let count = self
            .entries
            .partition_point(|&(_, entry_position)| entry_position <= position);
        if count == 0 {
            0
        } else {
            self.entries[count - 1].1
        }
    }

    /// The file position and bytes of the entries not yet written to disk; marks them written.
    pub fn take_pending(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.entries_on_disk == self.entries.len() {
            return None;
        }
        let mut bytes = Vec::with_capacity(
            (self.entries.len() - self.entries_on_disk) * OFFSET_INDEX_ENTRY_BYTES,
        );
        for &(relative, position) in &self.entries[self.entries_on_disk..] {
            bytes.extend_from_slice(&relative.to_be_bytes());
            bytes.extend_from_slice(&position.to_be_bytes());
        }
        let file_position = (self.entries_on_disk * OFFSET_INDEX_ENTRY_BYTES) as u64;
        self.entries_on_disk = self.entries.len();
        Some((file_position, bytes))
    }

    /// Every entry encoded, for rewriting the whole file; marks them written.
    pub fn encode_all(&mut self) -> Vec<u8> {
        self.entries_on_disk = 0;
        self.take_pending()
            .map(|(_, bytes)| bytes)
            .unwrap_or_default()
    }
}

/// Sparse map from timestamp to the offset holding the largest timestamp so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    entries_max: usize,
    entries_on_disk: usize,
}

impl TimeIndex {
    pub fn new(base_offset: i64, index_bytes_max: u32) -> Self {
        let entries_max = (index_bytes_max as usize / TIME_INDEX_ENTRY_BYTES).max(1);
        TimeIndex {
            base_offset,
            entries: Vec::new(),
            entries_max,
            entries_on_disk: 0,
        }
    }

    /// Parses and sanity-checks a `.timeindex`: timestamps strictly increasing, offsets
    /// non-decreasing and below `next_offset_max` (the segment's offset bound).
    pub fn load(base_offset: i64, index_bytes_max: u32, bytes: &[u8]) -> Result<Self, String> {
        let mut index = TimeIndex::new(base_offset, index_bytes_max);
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return Err(format!(
                "size {} is not a multiple of {TIME_INDEX_ENTRY_BYTES}",
                bytes.len()
            ));
        }
        for (number, (timestamp, relative)) in time_index_entries(bytes).enumerate() {
            if number > 0 && timestamp == 0 && relative == 0 {
                break; // Kafka's preallocated zero tail.
            }
            if let Some(&(last_timestamp, last_relative)) = index.entries.last()
                && (timestamp <= last_timestamp || relative < last_relative)
            {
                return Err(format!(
                    "entry {number} ({timestamp}, {relative}) does not increase"
                ));
            }
            index.entries.push((timestamp, relative));
        }
        index.entries.truncate(index.entries_max);
        index.entries_on_disk = index.entries.len();
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }
    /// The last entry as (timestamp, absolute offset).
    pub fn last(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(timestamp, relative)| (timestamp, self.base_offset + i64::from(relative)))
    }
    /// Largest absolute offset referenced (for the sanity check against the log).
    pub fn last_offset(&self) -> Option<i64> {
        self.last().map(|(_, offset)| offset)
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's
    /// (Kafka's `maybeAppend`). `ignore_full` lets the final entry at roll through.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, ignore_full: bool) {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        let relative = relative as u32;
        if let Some(&(last_timestamp, last_relative)) = self.entries.last() {
            if timestamp <= last_timestamp {
                return;
            }
            assert!(
                relative >= last_relative,
                "time index offset went backwards"
            );
        }
        if ignore_full || !self.is_full() {
            self.entries.push((timestamp, relative));
        }
    }

    /// Greatest entry with timestamp ≤ `timestamp`, as (timestamp, absolute offset);
    /// `(-1, base_offset)` if there is none (Kafka's convention).
    pub fn lookup(&self, timestamp: i64) -> (i64, i64) {
        let count = self
            .entries
            .partition_point(|&(entry_timestamp, _)| entry_timestamp <= timestamp);
        match count {
            0 => (-1, self.base_offset),
            count => {
                let (entry_timestamp, relative) = self.entries[count - 1];
                (entry_timestamp, self.base_offset + i64::from(relative))
            }
        }
    }

    pub fn take_pending(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.entries_on_disk == self.entries.len() {
            return None;
        }
        let mut bytes = Vec::with_capacity(
            (self.entries.len() - self.entries_on_disk) * TIME_INDEX_ENTRY_BYTES,
        );
        for &(timestamp, relative) in &self.entries[self.entries_on_disk..] {
            bytes.extend_from_slice(&timestamp.to_be_bytes());
            bytes.extend_from_slice(&relative.to_be_bytes());
        }
        let file_position = (self.entries_on_disk * TIME_INDEX_ENTRY_BYTES) as u64;
        self.entries_on_disk = self.entries.len();
        Some((file_position, bytes))
    }

    pub fn encode_all(&mut self) -> Vec<u8> {
        self.entries_on_disk = 0;
        self.take_pending()
            .map(|(_, bytes)| bytes)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_greatest_entry_at_or_below_target() {
        let mut index = OffsetIndex::new(100, 1024);
        index.append(104, 300);
        index.append(110, 900);
        assert_eq!(index.lookup(99), (100, 0));
        assert_eq!(index.lookup(103), (100, 0));
        assert_eq!(index.lookup(104), (104, 300));
        assert_eq!(index.lookup(109), (104, 300));
        assert_eq!(index.lookup(500), (110, 900));
        assert_eq!(index.lookup_position(899), 300);
    }

    #[test]
    fn offset_index_round_trips_through_bytes_and_ignores_a_zero_tail() {
        let mut index = OffsetIndex::new(100, 1024);
        index.append(100, 0);
        index.append(105, 4200);
        let mut bytes = index.encode_all();
        assert_eq!(
            bytes,
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x10, 0x68]
        );
        bytes.extend_from_slice(&[0; 64]); // Kafka preallocation
        let loaded = OffsetIndex::load(100, 1024, &bytes, 5000).expect("valid");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.lookup(106), (105, 4200));
    }

    #[test]
    fn offset_index_sanity_check_rejects_inconsistent_files() {
        let entry = |relative: u32, position: u32| {
            [relative.to_be_bytes(), position.to_be_bytes()].concat()
        };
        let backwards = [entry(5, 100), entry(3, 200)].concat();
        assert!(OffsetIndex::load(0, 1024, &backwards, 1000).is_err());
        let past_end = entry(5, 2000);
        assert!(OffsetIndex::load(0, 1024, &past_end, 1000).is_err());
        assert!(OffsetIndex::load(0, 1024, &[0; 7], 1000).is_err());
    }

    #[test]
    fn raw_entries_decode_in_file_order_without_checks() {
        let bytes = [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0xff];
        let entries: Vec<_> = offset_index_entries(&bytes).collect();
        assert_eq!(entries, vec![(5, 9), (1, 2)]);
        let bytes = [0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 7];
        let entries: Vec<_> = time_index_entries(&bytes).collect();
        assert_eq!(entries, vec![(1000, 7)]);
    }

    #[test]
    fn pending_bytes_are_handed_out_once_at_the_right_position() {
        let mut index = OffsetIndex::new(0, 1024);
        index.append(3, 10);
        assert_eq!(
            index.take_pending(),
            Some((0, vec![0, 0, 0, 3, 0, 0, 0, 10]))
        );
        assert_eq!(index.take_pending(), None);
        index.append(9, 20);
        assert_eq!(index.take_pending().map(|(position, _)| position), Some(8));
    }

    #[test]
    fn full_offset_index_drops_entries() {
        let mut index = OffsetIndex::new(0, 16);
        index.append(1, 1);
        index.append(2, 2);
        assert!(index.is_full());
        index.append(3, 3);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn time_index_only_grows_with_larger_timestamps() {
        let mut index = TimeIndex::new(50, 1200);
        index.maybe_append(1000, 52, false);
        index.maybe_append(900, 55, false);
        index.maybe_append(1000, 56, false);
        index.maybe_append(2000, 60, false);
        assert_eq!(index.len(), 2);
        assert_eq!(index.lookup(999), (-1, 50));
        assert_eq!(index.lookup(1500), (1000, 52));
        assert_eq!(index.lookup(2000), (2000, 60));
        let bytes = index.encode_all();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[0..12], &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 2]);
        let loaded =
            TimeIndex::load(50, 1200, &[bytes.as_slice(), &[0; 24]].concat()).expect("valid");
        assert_eq!(
            loaded,
            TimeIndex {
                entries_on_disk: 2,
                ..index
            }
        );
    }

    #[test]
    fn time_index_sanity_check_rejects_decreasing_timestamps() {
        let entry = |timestamp: i64, relative: u32| {
            [
                timestamp.to_be_bytes().to_vec(),
                relative.to_be_bytes().to_vec(),
            ]
            .concat()
        };
        assert!(TimeIndex::load(0, 1200, &[entry(10, 1), entry(5, 2)].concat()).is_err());
        assert!(TimeIndex::load(0, 1200, &[entry(10, 3), entry(15, 2)].concat()).is_err());
    }
}
