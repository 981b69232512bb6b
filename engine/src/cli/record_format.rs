//! How `weir consume` prints a record: Kafka's `DefaultMessageFormatter`, field for
//! field, so scripts that parse kafka-console-consumer.sh output keep working.
//!
//! ```text
//!  [CreateTime:<ms>|LogAppendTime:<ms>] [Partition:<p>] [Offset:<o>] [Delivery:NOT_PRESENT]
//!  [Epoch:<e>|NOT_PRESENT] [h1:v1,h2:v2|NO_HEADERS] [key] value
//! ```
//!
//! Every printed field is followed by `key.separator` (default TAB) when a later field
//! is printed, else by `line.separator` (default newline); the value always ends with
//! `line.separator`. Null keys, values and header values print as `null.literal`
//! (default `null`). Keys and values are written as raw bytes.

use std::io::Write;

use super::console::{self, Properties};

/// The timestamp kind of a record (its batch's attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
    NoTimestamp,
}

/// One consumed record, as the formatter sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_type: TimestampType,
    pub timestamp: i64,
    /// The batch's partitionLeaderEpoch; `None` when it is -1.
    pub leader_epoch: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The formatter's settings (`--property` of `weir consume`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFormat {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_delivery: bool,
    pub print_epoch: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: Vec<u8>,
    pub line_separator: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub null_literal: Vec<u8>,
}

impl Default for RecordFormat {
    fn default() -> RecordFormat {
        RecordFormat {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_delivery: false,
            print_epoch: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: b"\t".to_vec(),
            line_separator: b"\n".to_vec(),
            headers_separator: b",".to_vec(),
            null_literal: b"null".to_vec(),
        }
    }
}

/// Formatter property keys `RecordFormat` reads.
pub const FORMAT_KEYS: &[&str] = &[
    "print.timestamp",
    "print.key",
    "print.offset",
    "print.delivery",
    "print.epoch",
    "print.partition",
    "print.headers",
    "print.value",
    "key.separator",
    "line.separator",
    "headers.separator",
    "null.literal",
    "key.deserializer",
    "value.deserializer",
    "headers.deserializer",
];

/// Deserializers that print bytes unchanged, which is all this formatter does.
const RAW_DESERIALIZERS: &[&str] = &[
    "org.apache.kafka.common.serialization.StringDeserializer",
    "org.apache.kafka.common.serialization.ByteArrayDeserializer",
    "org.apache.kafka.common.serialization.BytesDeserializer",
];

impl RecordFormat {
    /// Reads the formatter properties as `DefaultMessageFormatter.configure` does.
    pub fn from_properties(properties: &Properties) -> Result<RecordFormat, String> {
        let mut format = RecordFormat::default();
        let flags: [(&str, &mut bool); 8] = [
            ("print.timestamp", &mut format.print_timestamp),
            ("print.key", &mut format.print_key),
            ("print.offset", &mut format.print_offset),
            ("print.delivery", &mut format.print_delivery),
            ("print.epoch", &mut format.print_epoch),
            ("print.partition", &mut format.print_partition),
            ("print.headers", &mut format.print_headers),
            ("print.value", &mut format.print_value),
        ];
        for (key, flag) in flags {
            if let Some(value) = properties.get(key) {
                *flag = console::is_true(value);
            }
        }
        let texts: [(&str, &mut Vec<u8>); 4] = [
            ("key.separator", &mut format.key_separator),
            ("line.separator", &mut format.line_separator),
            ("headers.separator", &mut format.headers_separator),
            ("null.literal", &mut format.null_literal),
        ];
        for (key, text) in texts {
            if let Some(value) = properties.get(key) {
                *text = value.as_bytes().to_vec();
            }
        }
        for key in [
            "key.deserializer",
            "value.deserializer",
            "headers.deserializer",
        ] {
            if let Some(name) = properties.get(key)
                && !RAW_DESERIALIZERS.contains(&name.trim())
            {
                return Err(format!(
                    "{key}={name} is not supported: weir consume prints bytes as they are \
                     (StringDeserializer, ByteArrayDeserializer)"
                ));
            }
        }
        Ok(format)
    }

    /// Writes `record` as one output line.
    pub fn write(&self, record: &ConsumedRecord, out: &mut impl Write) -> std::io::Result<()> {
        let later = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_delivery,
            self.print_epoch,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        // Separator after field `index`: the column separator if any later field prints.
        let separator = |index: usize| -> &[u8] {
            if later[index + 1..].iter().any(|&printed| printed) {
                &self.key_separator
            } else {
                &self.line_separator
            }
        };
        let nullable = |bytes: &Option<Vec<u8>>| -> Vec<u8> {
            bytes.clone().unwrap_or_else(|| self.null_literal.clone())
        };
        if self.print_timestamp {
            match record.timestamp_type {
                TimestampType::CreateTime => write!(out, "CreateTime:{}", record.timestamp)?,
                TimestampType::LogAppendTime => write!(out, "LogAppendTime:{}", record.timestamp)?,
                TimestampType::NoTimestamp => out.write_all(b"NO_TIMESTAMP")?,
            }
            out.write_all(separator(0))?;
        }
        if self.print_partition {
            write!(out, "Partition:{}", record.partition)?;
            out.write_all(separator(1))?;
        }
        if self.print_offset {
            write!(out, "Offset:{}", record.offset)?;
            out.write_all(separator(2))?;
        }
        if self.print_delivery {
            // Only share groups deliver a record more than once; a consumer never knows.
            out.write_all(b"Delivery:NOT_PRESENT")?;
            out.write_all(separator(3))?;
        }
        if self.print_epoch {
            match record.leader_epoch {
                Some(epoch) => write!(out, "Epoch:{epoch}")?,
                None => out.write_all(b"Epoch:NOT_PRESENT")?,
            }
            out.write_all(separator(4))?;
        }
        if self.print_headers {
            if record.headers.is_empty() {
                out.write_all(b"NO_HEADERS")?;
            }
            for (index, (key, value)) in record.headers.iter().enumerate() {
                if index > 0 {
                    out.write_all(&self.headers_separator)?;
                }
                out.write_all(key)?;
                out.write_all(b":")?;
                out.write_all(&nullable(value))?;
            }
            out.write_all(separator(5))?;
        }
        if self.print_key {
            out.write_all(&nullable(&record.key))?;
            out.write_all(separator(6))?;
        }
        if self.print_value {
            out.write_all(&nullable(&record.value))?;
            out.write_all(&self.line_separator)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            partition: 2,
            offset: 5,
            timestamp_type: TimestampType::CreateTime,
            timestamp: 1_700_000_000_000,
            leader_epoch: Some(0),
            key: Some(b"key".to_vec()),
            value: Some(b"value".to_vec()),
            headers: Vec::new(),
        }
    }

    fn format(pairs: &[(&str, &str)]) -> RecordFormat {
        let properties = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RecordFormat::from_properties(&properties).expect("valid properties")
    }

    fn printed(format: &RecordFormat, record: &ConsumedRecord) -> String {
        let mut out = Vec::new();
        format.write(record, &mut out).expect("writes to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn by_default_only_the_value_prints() {
        assert_eq!(printed(&format(&[]), &record()), "value\n");
    }

    #[test]
    fn all_fields_print_in_kafkas_order_and_labels() {
        let all = format(&[
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.delivery", "true"),
            ("print.epoch", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
        ]);
        let mut with_headers = record();
        with_headers.headers = vec![
            (b"h1".to_vec(), Some(b"v1".to_vec())),
            (b"h2".to_vec(), None),
        ];
        assert_eq!(
            printed(&all, &with_headers),
            "CreateTime:1700000000000\tPartition:2\tOffset:5\tDelivery:NOT_PRESENT\tEpoch:0\th1:v1,h2:null\tkey\tvalue\n"
        );
        let mut bare = record();
        bare.leader_epoch = None;
        bare.timestamp_type = TimestampType::LogAppendTime;
        assert_eq!(
            printed(&all, &bare),
            "LogAppendTime:1700000000000\tPartition:2\tOffset:5\tDelivery:NOT_PRESENT\tEpoch:NOT_PRESENT\tNO_HEADERS\tkey\tvalue\n"
        );
    }

    #[test]
    fn null_key_and_value_print_the_null_literal() {
        let mut nulls = record();
        nulls.key = None;
        nulls.value = None;
        assert_eq!(
            printed(&format(&[("print.key", "true")]), &nulls),
            "null\tnull\n"
        );
        assert_eq!(
            printed(
                &format(&[("print.key", "true"), ("null.literal", "<none>")]),
                &nulls
            ),
            "<none>\t<none>\n"
        );
    }

    #[test]
    fn separators_are_configurable() {
        let custom = format(&[
            ("print.key", "true"),
            ("print.offset", "true"),
            ("key.separator", " | "),
            ("line.separator", ";"),
        ]);
        assert_eq!(printed(&custom, &record()), "Offset:5 | key | value;");
    }

    #[test]
    fn without_the_value_the_last_field_ends_the_line() {
        let keys_only = format(&[("print.key", "true"), ("print.value", "false")]);
        assert_eq!(printed(&keys_only, &record()), "key\n");
        let nothing = format(&[("print.value", "false")]);
        assert_eq!(printed(&nothing, &record()), "");
        let timestamp_only = format(&[("print.timestamp", "TRUE"), ("print.value", "false")]);
        assert_eq!(
            printed(&timestamp_only, &record()),
            "CreateTime:1700000000000\n"
        );
    }

    #[test]
    fn flags_other_than_true_are_false_and_custom_deserializers_are_refused() {
        let format = format(&[("print.key", "yes")]);
        assert!(!format.print_key);
        let properties = [(
            "value.deserializer".to_string(),
            "org.apache.kafka.common.serialization.LongDeserializer".to_string(),
        )]
        .into_iter()
        .collect();
        assert!(RecordFormat::from_properties(&properties).is_err());
        let properties = [(
            "key.deserializer".to_string(),
            "org.apache.kafka.common.serialization.StringDeserializer".to_string(),
        )]
        .into_iter()
        .collect();
        assert!(RecordFormat::from_properties(&properties).is_ok());
    }
}
