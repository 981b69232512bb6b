//! The writing side of Kafka's ConsumerProtocol (the subscription a member sends in
//! JoinGroup, the assignment the leader hands out in SyncGroup) and Kafka's `range`
//! assignor, for `weir consume --group`. Written at version 0, which every client and
//! tool reads; `cli::consumer_protocol` decodes any version.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    consumer_protocol_assignment,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// Kafka's protocol type for consumers.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The one assignor offered (Kafka's `RangeAssignor` name).
pub const RANGE_ASSIGNOR: &str = "range";
/// ConsumerProtocol version written: v0 is read by every client and broker tool.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// Encodes a ConsumerProtocol subscription (version prefix, then the v0 body).
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut sorted: Vec<&String> = topics.iter().collect();
    sorted.sort();
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        sorted
            .into_iter()
            .map(|topic| StrBytes::from_string(topic.clone()))
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    subscription
        .encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .expect("a subscription of topic names encodes at v0");
    out.freeze()
}

/// Encodes a ConsumerProtocol assignment: topic → partitions.
pub fn encode_assignment(assignment: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    assignment
        .encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .expect("an assignment of topic partitions encodes at v0");
    out.freeze()
}

/// A member as the assignor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<String>,
}

/// Kafka's `RangeAssignor`: per topic, the subscribed members in order (static members
/// by instance id first, then by member id) get consecutive ranges of partitions, the
/// first `partitions % members` one partition more. Every member gets an entry.
pub fn range_assign(
    members: &[MemberSubscription],
    partitions_per_topic: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut ordered: Vec<&MemberSubscription> = members.iter().collect();
    ordered.sort_by(|a, b| match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    });
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
        .iter()
        .map(|member| (member.member_id.clone(), BTreeMap::new()))
        .collect();
    for (topic, &partitions) in partitions_per_topic {
        let subscribed: Vec<&&MemberSubscription> = ordered
            .iter()
            .filter(|member| member.topics.contains(topic))
            .collect();
        if subscribed.is_empty() || partitions <= 0 {
            continue;
        }
        let count = subscribed.len() as i32;
        let per_member = partitions / count;
        let extra = partitions % count;
        for (index, member) in subscribed.into_iter().enumerate() {
            let index = index as i32;
            let start = per_member * index + index.min(extra);
            let length = per_member + i32::from(index < extra);
            if length > 0 {
                out.get_mut(&member.member_id)
                    .expect("every member has an entry")
                    .insert(topic.clone(), (start..start + length).collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::consumer_protocol::{decode_assignment, decode_subscription};

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn partitions(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_gives_the_first_members_one_partition_more() {
        // Kafka's RangeAssignorTest: two consumers, two topics of three partitions.
        let members = [member("c2", &["t1", "t2"]), member("c1", &["t1", "t2"])];
        let assignment = range_assign(&members, &partitions(&[("t1", 3), ("t2", 3)]));
        assert_eq!(assignment["c1"]["t1"], vec![0, 1]);
        assert_eq!(assignment["c1"]["t2"], vec![0, 1]);
        assert_eq!(assignment["c2"]["t1"], vec![2]);
        assert_eq!(assignment["c2"]["t2"], vec![2]);
    }

    #[test]
    fn range_leaves_extra_members_empty_and_skips_unsubscribed_topics() {
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t", "other"]),
        ];
        let assignment = range_assign(&members, &partitions(&[("t", 2), ("other", 4)]));
        assert_eq!(assignment["a"]["t"], vec![0]);
        assert_eq!(assignment["b"]["t"], vec![1]);
        assert!(!assignment["c"].contains_key("t"));
        assert_eq!(assignment["c"]["other"], vec![0, 1, 2, 3]);
        assert!(!assignment["a"].contains_key("other"));
    }

    #[test]
    fn static_members_sort_before_dynamic_ones() {
        let mut static_member = member("z-dynamic-id", &["t"]);
        static_member.group_instance_id = Some("instance-1".to_string());
        let members = [member("a", &["t"]), static_member];
        let assignment = range_assign(&members, &partitions(&[("t", 3)]));
        assert_eq!(assignment["z-dynamic-id"]["t"], vec![0, 1]);
        assert_eq!(assignment["a"]["t"], vec![2]);
    }

    #[test]
    fn subscription_v0_has_kafkas_exact_bytes() {
        let bytes = encode_subscription(&["orders".to_string(), "b".to_string()]);
        // version 0 | 2 topics | "b" | "orders" (sorted) | null user data
        let mut expected = vec![0, 0, 0, 0, 0, 2, 0, 1, b'b', 0, 6];
        expected.extend_from_slice(b"orders");
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(
            decode_subscription(&bytes).expect("decodes").topics,
            vec!["b".to_string(), "orders".to_string()]
        );
    }

    #[test]
    fn assignments_decode_to_what_was_encoded_also_as_later_versions() {
        let assignment: BTreeMap<String, Vec<i32>> =
            [("t".to_string(), vec![0, 2])].into_iter().collect();
        let bytes = encode_assignment(&assignment);
        // version 0 | 1 topic | "t" | 2 partitions 0, 2 | null user data
        assert_eq!(
            &bytes[..],
            &[
                0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff,
                0xff
            ]
        );
        let expected = vec![("t".to_string(), vec![0, 2])];
        assert_eq!(
            decode_assignment(&bytes).expect("decodes").partitions,
            expected
        );
        // A v3 assignment (what Java leaders send) reads the same.
        let mut v3 = bytes.to_vec();
        v3[1] = 3;
        assert_eq!(
            decode_assignment(&v3).expect("decodes").partitions,
            expected
        );
        assert!(decode_assignment(&[]).expect("empty").partitions.is_empty());
        for length in 1..bytes.len() {
            assert!(
                decode_assignment(&bytes[..length]).is_err(),
                "truncated at {length}"
            );
        }
    }
}
