//! Which shard owns a partition.
//!
//! Contract of [`shard_for`]: the result depends only on the topic name, the partition
//! index and the shard count, never on start-up order, timing or other topics; it is in
//! `0..shard_count`; the partitions of one topic go round-robin over the shards starting
//! at a shard picked by a stable hash of the topic name (FNV-1a 64, fixed forever), so a
//! topic with at least `shard_count` partitions uses every shard. Changing the shard
//! count (`--shards`, a different core count) moves partitions between shards, which is
//! safe because the mapping is recomputed at every start and partitions live in
//! per-partition directories, not per-shard ones.

/// The shard that owns `topic`/`partition` among `shard_count` shards.
pub fn shard_for(topic: &str, partition: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "a broker has at least one shard");
    assert!(partition >= 0, "partition indexes are never negative");
    let start = fnv1a_64(topic.as_bytes()) % shard_count as u64;
    ((start + partition as u64) % shard_count as u64) as usize
}

pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_for_is_stable_and_spreads_a_topic_over_all_shards() {
        // Golden values: changing them moves every existing partition.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        for shards in 1..8 {
            let owners: std::collections::BTreeSet<usize> = (0..shards as i32)
                .map(|partition| shard_for("orders", partition, shards))
                .collect();
            assert_eq!(owners.len(), shards);
            assert!((0..100).all(|partition| shard_for("orders", partition, shards) < shards));
        }
        assert_eq!(shard_for("t", 5, 3), shard_for("t", 5, 3));
    }
}
