//! `--offsets-decoder`: `__consumer_offsets` records as the JSON Kafka's
//! `OffsetsMessageParser` prints, `key: {"type":"1","data":{...}} payload:
//! {"version":"3","data":{...}}`, with field names, order and version gating of Kafka's
//! generated JSON converters. Group members' subscription and assignment bytes are
//! decoded as consumer protocol messages when the group's protocol type is "consumer"
//! (base64 otherwise, or when they do not decode). A tombstone's payload is `<DELETE>`.
//! Keys and values are decoded by the broker's own codec (`group::records`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::cli::consumer_protocol::{self, TopicPartitions};
use crate::group::records::{RecordKey, decode_group_value, decode_key, decode_offset_value};

/// A JSON string literal.
fn text(value: &str) -> String {
    serde_json::to_string(value).expect("strings always serialize")
}

fn nullable_text(value: Option<&str>) -> String {
    value.map_or_else(|| "null".to_string(), text)
}

/// Bytes as Jackson writes them: a base64 string, or null.
fn binary(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "null".to_string(), |bytes| text(&BASE64.encode(bytes)))
}

/// `{"name":value,...}` from already encoded values, in the given order.
fn object(fields: &[(&str, String)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}:{value}", text(name)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn topic_partitions(partitions: &TopicPartitions) -> String {
    let items: Vec<String> = partitions
        .iter()
        .map(|(topic, indexes)| {
            let indexes: Vec<String> = indexes.iter().map(i32::to_string).collect();
            object(&[
                ("topic", text(topic)),
                ("partitions", format!("[{}]", indexes.join(","))),
            ])
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn schema_version(bytes: &[u8]) -> i16 {
    if bytes.len() >= 2 {
        i16::from_be_bytes([bytes[0], bytes[1]])
    } else {
        -1
    }
}

/// A member's subscription as `ConsumerProtocolSubscriptionJsonConverter` writes it, or
/// its base64 when it does not decode (Kafka keeps the original bytes then).
fn subscription_json(bytes: &[u8]) -> String {
    match consumer_protocol::decode_subscription(bytes) {
        Ok(subscription) if subscription.version <= consumer_protocol::VERSION_MAX => {
            let version = subscription.version;
            let topics: Vec<String> = subscription
                .topics
                .iter()
                .map(|topic| text(topic))
                .collect();
            let mut fields = vec![
                ("topics", format!("[{}]", topics.join(","))),
                ("userData", binary(subscription.user_data.as_deref())),
            ];
            if version >= 1 {
                fields.push((
                    "ownedPartitions",
                    topic_partitions(&subscription.owned_partitions),
                ));
            }
            if version >= 2 {
                fields.push(("generationId", subscription.generation_id.to_string()));
            }
            if version >= 3 {
                fields.push(("rackId", nullable_text(subscription.rack_id.as_deref())));
            }
            object(&fields)
        }
        _ => binary(Some(bytes)),
    }
}

/// A member's assignment as `ConsumerProtocolAssignmentJsonConverter` writes it.
fn assignment_json(bytes: &[u8]) -> String {
    match consumer_protocol::decode_assignment(bytes) {
        Ok(assignment)
            if !bytes.is_empty() && assignment.version <= consumer_protocol::VERSION_MAX =>
        {
            object(&[
                (
                    "assignedPartitions",
                    topic_partitions(&assignment.partitions),
                ),
                ("userData", binary(assignment.user_data.as_deref())),
            ])
        }
        _ => binary(Some(bytes)),
    }
}

/// The JSON of a record key: `{"type":"<key version>","data":{...}}`.
fn key_json(key: &RecordKey, version: i16) -> String {
    let data = match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => object(&[
            ("group", text(group)),
            ("topic", text(topic)),
            ("partition", partition.to_string()),
        ]),
        RecordKey::Group { group } => object(&[("group", text(group))]),
    };
    object(&[("type", text(&version.to_string())), ("data", data)])
}

/// The JSON of a record value: `{"version":"<value version>","data":{...}}`.
fn value_json(key: &RecordKey, value: &[u8]) -> Result<String, String> {
    let version = schema_version(value);
    let data = match key {
        RecordKey::Offset { .. } => {
            let decoded = decode_offset_value(value).map_err(|error| error.to_string())?;
            let mut fields = vec![("offset", decoded.offset.to_string())];
            if version >= 3 {
                fields.push(("leaderEpoch", decoded.leader_epoch.to_string()));
            }
            fields.push(("metadata", text(&decoded.metadata)));
            fields.push(("commitTimestamp", decoded.commit_timestamp_ms.to_string()));
            if version == 1 {
                fields.push((
                    "expireTimestamp",
                    decoded.expire_timestamp_ms.unwrap_or(-1).to_string(),
                ));
            }
            object(&fields)
        }
        RecordKey::Group { .. } => {
            let decoded = decode_group_value(value).map_err(|error| error.to_string())?;
            let consumer = decoded.protocol_type == "consumer";
            let members: Vec<String> = decoded
                .members
                .iter()
                .map(|member| {
                    let mut fields = vec![("memberId", text(&member.member_id))];
                    if version >= 3 {
                        fields.push((
                            "groupInstanceId",
                            nullable_text(member.group_instance_id.as_deref()),
                        ));
                    }
                    fields.push(("clientId", text(&member.client_id)));
                    fields.push(("clientHost", text(&member.client_host)));
                    if version >= 1 {
                        fields.push(("rebalanceTimeout", member.rebalance_timeout_ms.to_string()));
                    }
                    fields.push(("sessionTimeout", member.session_timeout_ms.to_string()));
                    if consumer {
                        fields.push(("subscription", subscription_json(&member.subscription)));
                        fields.push(("assignment", assignment_json(&member.assignment)));
                    } else {
                        fields.push(("subscription", binary(Some(&member.subscription))));
                        fields.push(("assignment", binary(Some(&member.assignment))));
                    }
                    object(&fields)
                })
                .collect();
            let mut fields = vec![
                ("protocolType", text(&decoded.protocol_type)),
                ("generation", decoded.generation.to_string()),
                ("protocol", nullable_text(decoded.protocol.as_deref())),
                ("leader", nullable_text(decoded.leader.as_deref())),
            ];
            if version >= 2 {
                fields.push((
                    "currentStateTimestamp",
                    decoded.current_state_timestamp_ms.to_string(),
                ));
            }
            fields.push(("members", format!("[{}]", members.join(","))));
            object(&fields)
        }
    };
    Ok(object(&[
        ("version", text(&version.to_string())),
        ("data", data),
    ]))
}

/// Kafka's `OffsetsMessageParser.parse`: (key, payload) to print. A record without a key
/// is an error (Kafka's tool stops there); one that does not decode prints as Kafka's
/// "skipping" text in place of the key.
pub fn parse_record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    offset: i64,
) -> Result<(Option<String>, Option<String>), String> {
    let Some(key_bytes) = key else {
        return Err(format!(
            "Failed to decode message at offset {offset} using offset topic decoder (message had a missing key)"
        ));
    };
    let version = schema_version(key_bytes);
    if !(0..=2).contains(&version) {
        return Ok((
            Some(format!(
                "Unknown record type {version} at offset {offset}, skipping."
            )),
            None,
        ));
    }
    let key = match decode_key(key_bytes) {
        Ok(key) => key,
        Err(error) => {
            return Ok((
                Some(format!("Error at offset {offset}, skipping. {error}")),
                None,
            ));
        }
    };
    let payload = match value {
        None => "<DELETE>".to_string(),
        Some(value) => match value_json(&key, value) {
            Ok(json) => json,
            Err(error) => {
                return Ok((
                    Some(format!("Error at offset {offset}, skipping. {error}")),
                    None,
                ));
            }
        },
    };
    Ok((Some(key_json(&key, version)), Some(payload)))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::group::records::{
        GroupMember, GroupValue, OffsetValue, encode_group_value, encode_key, encode_offset_value,
    };

    #[test]
    fn offset_commits_print_as_kafkas_json() {
        let key = encode_key(&RecordKey::Offset {
            group: "g".to_string(),
            topic: "t".to_string(),
            partition: 2,
        });
        let value = encode_offset_value(&OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: None,
        });
        assert_eq!(
            parse_record(Some(&key), Some(&value), 5),
            Ok((
                Some(r#"{"type":"1","data":{"group":"g","topic":"t","partition":2}}"#.to_string()),
                Some(
                    r#"{"version":"3","data":{"offset":42,"leaderEpoch":0,"metadata":"","commitTimestamp":1700000000000}}"#
                        .to_string()
                )
            ))
        );
        assert_eq!(
            parse_record(Some(&key), None, 5)
                .expect("tombstone")
                .1
                .as_deref(),
            Some("<DELETE>")
        );
        assert!(parse_record(None, Some(&value), 5).is_err());
        assert_eq!(
            parse_record(Some(&[0, 9, 1]), None, 5)
                .expect("unknown type")
                .0
                .as_deref(),
            Some("Unknown record type 9 at offset 5, skipping.")
        );
    }

    #[test]
    fn group_metadata_decodes_consumer_assignments() {
        let mut assignment = 3i16.to_be_bytes().to_vec();
        assignment.extend_from_slice(&1i32.to_be_bytes());
        assignment.extend_from_slice(&1i16.to_be_bytes());
        assignment.extend_from_slice(b"t");
        assignment.extend_from_slice(&1i32.to_be_bytes());
        assignment.extend_from_slice(&0i32.to_be_bytes());
        assignment.extend_from_slice(&(-1i32).to_be_bytes());
        let value = encode_group_value(&GroupValue {
            protocol_type: "consumer".to_string(),
            generation: 1,
            protocol: Some("range".to_string()),
            leader: Some("m".to_string()),
            current_state_timestamp_ms: 7,
            members: vec![GroupMember {
                member_id: "m".to_string(),
                group_instance_id: None,
                client_id: "c".to_string(),
                client_host: "/127.0.0.1".to_string(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"\xff"),
                assignment: Bytes::from(assignment),
            }],
        });
        let key = encode_key(&RecordKey::Group {
            group: "g".to_string(),
        });
        let (key, payload) = parse_record(Some(&key), Some(&value), 0).expect("decodes");
        assert_eq!(key.as_deref(), Some(r#"{"type":"2","data":{"group":"g"}}"#));
        assert_eq!(
            payload.as_deref(),
            Some(
                r#"{"version":"3","data":{"protocolType":"consumer","generation":1,"protocol":"range","leader":"m","currentStateTimestamp":7,"members":[{"memberId":"m","groupInstanceId":null,"clientId":"c","clientHost":"/127.0.0.1","rebalanceTimeout":300000,"sessionTimeout":45000,"subscription":"/w==","assignment":{"assignedPartitions":[{"topic":"t","partitions":[0]}],"userData":null}}]}}"#
            )
        );
    }
}
