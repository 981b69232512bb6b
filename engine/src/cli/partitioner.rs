//! Where `weir produce` puts a record, as Kafka's default partitioner does, so keys land
//! on the partitions every other client puts them on:
//!
//! - keyed: `toPositive(murmur2(key)) % partitions` — Java's `BuiltInPartitioner` and
//!   librdkafka's `murmur2_random` (the partitioner librdkafka recommends for Java
//!   compatibility) compute exactly this;
//! - unkeyed: "uniform sticky" (KIP-794): all records go to one partition until
//!   `batch.size` bytes went there, then another partition is picked at random, so
//!   batches fill up instead of spreading single records over every partition.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), which both the Java
/// client and librdkafka's `murmur2_random` partitioner hash keys with.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("chunks of 4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// A small xorshift generator for the sticky partitioner (no cryptographic needs).
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        Random((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn below(&mut self, bound: i32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as i32
    }
}

/// The partition choice of one producer (its sticky state).
pub struct Partitioner {
    sticky_partition: Option<i32>,
    sticky_bytes: usize,
    /// `batch.size`: bytes that go to one sticky partition before it changes.
    sticky_bytes_max: usize,
    random: Random,
}

impl Partitioner {
    pub fn new(batch_size_bytes: usize) -> Partitioner {
        Partitioner {
            sticky_partition: None,
            sticky_bytes: 0,
            sticky_bytes_max: batch_size_bytes.max(1),
            random: Random::seeded(),
        }
    }

    /// The partition (of `partitions`) for a record with `key` taking `size` bytes.
    pub fn partition(&mut self, key: Option<&[u8]>, size: usize, partitions: i32) -> i32 {
        assert!(partitions > 0, "a topic has at least one partition");
        if let Some(key) = key {
            return partition_for_key(key, partitions);
        }
        let partition = match self.sticky_partition {
            Some(partition) if partition < partitions => partition,
            _ => {
                self.sticky_bytes = 0;
                self.random.below(partitions)
            }
        };
        self.sticky_bytes += size;
        if self.sticky_bytes >= self.sticky_bytes_max {
            let next = if partitions > 1 {
                (partition + 1 + self.random.below(partitions - 1)) % partitions
            } else {
                0
            };
            self.sticky_partition = Some(next);
            self.sticky_bytes = 0;
        } else {
            self.sticky_partition = Some(partition);
        }
        partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_golden_values() {
        // The vectors of Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert_eq!(murmur2(b""), 275_646_681);
    }

    #[test]
    fn keys_map_to_the_partition_the_java_client_picks() {
        // toPositive(murmur2("foobar")) % 3, computed by hand from the golden value.
        assert_eq!(
            partition_for_key(b"foobar", 3),
            ((-790_332_482i32 & 0x7fff_ffff) % 3)
        );
        assert_eq!(partition_for_key(b"21", 1), 0);
        for partitions in 1..20 {
            let partition = partition_for_key(b"any key", partitions);
            assert!((0..partitions).contains(&partition));
        }
    }

    #[test]
    fn the_random_source_stays_in_bounds() {
        let mut random = Random(12345);
        for bound in 1..50 {
            for _ in 0..20 {
                assert!((0..bound).contains(&random.below(bound)));
            }
        }
    }

    #[test]
    fn unkeyed_records_stick_to_a_partition_for_one_batch_size() {
        let mut partitioner = Partitioner::new(100);
        let first = partitioner.partition(None, 30, 4);
        assert_eq!(partitioner.partition(None, 30, 4), first);
        assert_eq!(partitioner.partition(None, 30, 4), first);
        // This record reaches 100 bytes: it still goes to `first`, the next does not.
        assert_eq!(partitioner.partition(None, 30, 4), first);
        let second = partitioner.partition(None, 30, 4);
        assert_ne!(second, first);
        assert!((0..4).contains(&second));
        // Keys ignore stickiness.
        assert_eq!(
            partitioner.partition(Some(b"foobar"), 30, 4),
            partition_for_key(b"foobar", 4)
        );
        // A topic that shrank in metadata never gets a partition beyond its count.
        assert_eq!(partitioner.partition(None, 1, 1), 0);
    }
}
