//! The records inside an uncompressed batch (or a decompressed record section): the
//! leader's one-pass soundness check, and the detailed walk that hands out each record.

use super::{BatchHeader, HEADER_BYTES};

/// The checks of `walk_records` on an uncompressed batch's records, plus offset deltas
/// counting up from 0, in one tight pass that only answers yes or no: the leader runs
/// it on every record produced. It accepts nothing the detailed walk rejects.
pub(super) fn records_are_sound(records: &[u8], records_count: i32) -> bool {
    /// A nullable byte string (length −1 for null) within `bytes`.
    #[inline(always)]
    fn skip_bytes(bytes: &[u8], at: &mut usize, nullable: bool) -> Option<()> {
        let length = varint(bytes, at)?;
        if length < -1 || (length == -1 && !nullable) {
            return None;
        }
        if length > 0 {
            *at = at
                .checked_add(length as usize)
                .filter(|end| *end <= bytes.len())?;
        }
        Some(())
    }
    let walk = || -> Option<()> {
        let mut at = 0usize;
        for index in 0..records_count {
            let length = varint(records, &mut at)?;
            if length < 0 {
                return None;
            }
            let end = at
                .checked_add(length as usize)
                .filter(|end| *end <= records.len())?;
            let record = &records[..end];
            at += 1; // attributes
            if at > end {
                return None;
            }
            varlong(record, &mut at)?; // timestamp delta
            if varint(record, &mut at)? != index {
                return None;
            }
            skip_bytes(record, &mut at, true)?; // key
            skip_bytes(record, &mut at, true)?; // value
            let headers = varint(record, &mut at)?;
            if headers < 0 {
                return None;
            }
            for _ in 0..headers {
                skip_bytes(record, &mut at, false)?;
                skip_bytes(record, &mut at, true)?;
            }
            if at != end {
                return None;
            }
        }
        (records_count >= 0 && at == records.len()).then_some(())
    };
    walk().is_some()
}

/// One record of an uncompressed batch, as seen by `walk_records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers_count: i32,
    /// The `headers_count` headers as stored, already bounds-checked by the walk;
    /// `headers()` reads them.
    pub headers_bytes: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record's headers in order: (key, value); a value may be null.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        let mut cursor = Cursor {
            bytes: self.headers_bytes,
            at: 0,
        };
        (0..self.headers_count).map(move |_| {
            let key = cursor
                .nullable_bytes()
                .ok()
                .flatten()
                .expect("walk_record_section checked every header key");
            let value = cursor
                .nullable_bytes()
                .expect("walk_record_section checked every header value");
            (key, value)
        })
    }
}

/// Walks the records of an uncompressed batch (`batch` is exactly one whole batch),
/// calling `visit` for each. Fails with a reason on any bound violation, on a record
/// count different from recordsCount, or on bytes left over after the last record.
pub fn walk_records<'a>(
    batch: &'a [u8],
    visit: impl FnMut(RecordView<'a>) -> Result<(), String>,
) -> Result<usize, String> {
    let header = BatchHeader::new(batch).ok_or("batch shorter than its header")?;
    walk_record_section(&batch[HEADER_BYTES..], header.records_count(), visit)
}

/// Walks `records_count` records laid out back to back in `records` (the bytes after
/// a batch header, decompressed if the batch was compressed), with the checks of
/// `walk_records`. Positions in the reasons count from the start of `records`.
pub fn walk_record_section<'a>(
    records: &'a [u8],
    records_count: i32,
    mut visit: impl FnMut(RecordView<'a>) -> Result<(), String>,
) -> Result<usize, String> {
    if records_count < 0 {
        return Err(format!("recordsCount is {records_count}"));
    }
    let mut cursor = Cursor {
        bytes: records,
        at: 0,
    };
    for index in 0..records_count {
        let length = cursor.varint()?;
        if length < 0 {
            return Err(format!("record {index} has negative length {length}"));
        }
        let end = cursor
            .at
            .checked_add(length as usize)
            .filter(|end| *end <= records.len())
            .ok_or_else(|| {
                format!("record {index} of {length} bytes runs past the end of the records")
            })?;
        let mut record = Cursor {
            bytes: &records[..end],
            at: cursor.at,
        };
        let _attributes = record.take(1)?;
        let timestamp_delta = record.varlong()?;
        let offset_delta = record.varint()?;
        let key = record.nullable_bytes()?;
        let value = record.nullable_bytes()?;
        let headers_count = record.varint()?;
        if headers_count < 0 {
            return Err(format!("record {index} has negative headers count"));
        }
        let headers_start = record.at;
        for _ in 0..headers_count {
            match record.nullable_bytes()? {
                Some(_) => {}
                None => return Err(format!("record {index} has a header with a null key")),
            }
            record.nullable_bytes()?;
        }
        if record.at != end {
            return Err(format!(
                "record {index} has {} bytes beyond its fields",
                end - record.at
            ));
        }
        visit(RecordView {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers_count,
            headers_bytes: &records[headers_start..end],
        })?;
        cursor.at = end;
    }
    if cursor.at != records.len() {
        return Err(format!(
            "{} bytes follow the last of {records_count} records",
            records.len() - cursor.at
        ));
    }
    Ok(records_count as usize)
}

/// A bounds-checked reader for record fields.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "need {count} bytes at {} but only {} remain",
                    self.at,
                    self.bytes.len() - self.at
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<i32, String> {
        let start = self.at;
        varint(self.bytes, &mut self.at).ok_or_else(|| varint_fault(self.bytes, start, 5))
    }

    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, String> {
        let start = self.at;
        varlong(self.bytes, &mut self.at).ok_or_else(|| varint_fault(self.bytes, start, 10))
    }

    #[inline(always)]
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let length = self.varint()?;
        match length {
            -1 => Ok(None),
            length if length < -1 => Err(format!("invalid length {length}")),
            length => self.take(length as usize).map(Some),
        }
    }
}

/// An unsigned varint of at most `max_bytes` bytes at `*at` in `bytes`, moving `*at`
/// past it; `None` (with `*at` unmoved) when it runs past the end or is longer.
#[inline(always)]
fn unsigned_varint(bytes: &[u8], at: &mut usize, max_bytes: usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    // Most record fields fit one byte (lengths and deltas below 64), and nearly all the
    // rest two (100-byte values, offset deltas below 8192): both without a loop.
    if first < 0x80 {
        *at += 1;
        return Some(u64::from(first));
    }
    let second = *bytes.get(*at + 1)?;
    if second < 0x80 {
        *at += 2;
        return Some(u64::from(first & 0x7f) | u64::from(second) << 7);
    }
    long_unsigned_varint(bytes, at, max_bytes)
}

/// `unsigned_varint` for three bytes and more, out of the hot path.
#[inline(never)]
fn long_unsigned_varint(bytes: &[u8], at: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut raw = 0u64;
    let mut index = 0;
    loop {
        if index == max_bytes {
            return None;
        }
        let byte = *bytes.get(*at + index)?;
        raw |= u64::from(byte & 0x7f) << (7 * index);
        index += 1;
        if byte < 0x80 {
            break;
        }
    }
    *at += index;
    Some(raw)
}

/// A zigzag varint (Kafka's `varint`): at most 5 bytes, within 32 bits.
#[inline(always)]
fn varint(bytes: &[u8], at: &mut usize) -> Option<i32> {
    let start = *at;
    let Ok(raw) = u32::try_from(unsigned_varint(bytes, at, 5)?) else {
        *at = start;
        return None;
    };
    Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong: at most 10 bytes.
#[inline(always)]
fn varlong(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let raw = unsigned_varint(bytes, at, 10)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Why the varint at `at` (at most `max_bytes` long) could not be read.
#[cold]
fn varint_fault(bytes: &[u8], at: usize, max_bytes: usize) -> String {
    let rest = bytes.get(at..).unwrap_or_default();
    match rest
        .iter()
        .take(max_bytes)
        .position(|byte| byte & 0x80 == 0)
    {
        Some(_) => "varint overflows 32 bits".to_string(),
        None if rest.len() < max_bytes => "varint runs past the end".to_string(),
        None => format!("varint longer than {max_bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{
        Compression, ProducerRecord, RecordHeader, SimpleRecord, encode_batch,
        encode_producer_batch,
    };

    fn record(timestamp_ms: i64, value: &[u8]) -> SimpleRecord {
        SimpleRecord {
            timestamp_ms,
            key: None,
            value: Some(value.to_vec()),
        }
    }

    #[test]
    fn records_walk_returns_keys_values_and_deltas() {
        let batch = encode_batch(
            0,
            &[
                SimpleRecord {
                    timestamp_ms: 10,
                    key: Some(b"k".to_vec()),
                    value: None,
                },
                record(15, b"v"),
            ],
        );
        let mut seen = Vec::new();
        walk_records(&batch, |view| {
            seen.push((
                view.timestamp_delta,
                view.offset_delta,
                view.key.map(<[u8]>::to_vec),
                view.value.map(<[u8]>::to_vec),
            ));
            Ok(())
        })
        .expect("walk");
        assert_eq!(
            seen,
            vec![
                (0, 0, Some(b"k".to_vec()), None),
                (5, 1, None, Some(b"v".to_vec()))
            ]
        );
    }

    #[test]
    fn headers_come_back_in_order_with_null_values() {
        // One record: no key, value "v", headers ("a" = "x", "bc" = null).
        let body = [
            0x00, 0x00, 0x00, 0x01, 0x02, b'v', 0x04, 0x02, b'a', 0x02, b'x', 0x04, b'b', b'c',
            0x01,
        ];
        let mut records = vec![(body.len() as u8) << 1];
        records.extend_from_slice(&body);
        let mut headers = Vec::new();
        walk_record_section(&records, 1, |view| {
            assert_eq!(view.headers_count, 2);
            assert_eq!(view.value, Some(&b"v"[..]));
            headers = view.headers().collect();
            Ok(())
        })
        .expect("walk");
        assert_eq!(
            headers,
            vec![(&b"a"[..], Some(&b"x"[..])), (&b"bc"[..], None)]
        );
    }

    /// The detailed walk with validation's offset-delta check.
    fn detailed_walk(records: &[u8], count: i32) -> Result<usize, String> {
        let mut expected = 0i32;
        walk_record_section(records, count, |record| {
            if record.offset_delta != expected {
                return Err("delta".into());
            }
            expected += 1;
            Ok(())
        })
    }

    #[test]
    fn the_fast_record_check_agrees_with_the_detailed_walk_on_every_mutation() {
        let header = |key: &[u8], value: Option<&[u8]>| RecordHeader {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        };
        let records = vec![
            ProducerRecord {
                timestamp_ms: 1_000,
                key: None,
                value: Some(vec![b'v'; 100]),
                headers: vec![],
            },
            ProducerRecord {
                timestamp_ms: 1_000 + (1 << 40),
                key: Some(b"key".to_vec()),
                value: None,
                headers: vec![header(b"h", Some(b"x")), header(b"", None)],
            },
            ProducerRecord {
                timestamp_ms: 900,
                key: Some(vec![]),
                value: Some(vec![b'w'; 9000]),
                headers: vec![header(b"long", Some(&[7; 70]))],
            },
        ];
        let batch = encode_producer_batch(0, &records, Compression::None);
        let section = &batch[HEADER_BYTES..];
        assert!(records_are_sound(section, 3));
        assert!(detailed_walk(section, 3).is_ok());
        for count in [-1, 0, 2, 4] {
            assert!(!records_are_sound(section, count), "count {count}");
            assert!(detailed_walk(section, count).is_err(), "count {count}");
        }
        // Every byte replaced by a few telling values (but the long value's body).
        let mut checked = 0;
        for at in (0..section.len()).filter(|&at| section[at] != b'w') {
            for value in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, section[at] ^ 0x01] {
                let mut mutated = section.to_vec();
                mutated[at] = value;
                assert_eq!(
                    records_are_sound(&mutated, 3),
                    detailed_walk(&mutated, 3).is_ok(),
                    "byte {at} set to {value:#x}"
                );
                checked += 1;
            }
        }
        // Cut at every length.
        for cut in 0..section.len() {
            assert_eq!(
                records_are_sound(&section[..cut], 3),
                detailed_walk(&section[..cut], 3).is_ok(),
                "cut at {cut}"
            );
        }
        assert!(checked > 1_000);
    }

    #[test]
    fn varints_round_trip_across_the_byte_length_boundaries() {
        use crate::batch::{put_varint, put_varlong};
        let ints = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            -8192,
            8192,
            -8193,
            1 << 20,
            i32::MAX,
            i32::MIN,
        ];
        for value in ints {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            bytes.push(0x7f); // a following byte must stay unread
            let mut cursor = Cursor {
                bytes: &bytes,
                at: 0,
            };
            assert_eq!(cursor.varint(), Ok(value), "varint {value}");
            assert_eq!(cursor.at, bytes.len() - 1, "varint {value} length");
        }
        for value in [
            0,
            -1,
            8191,
            -8193,
            i64::from(i32::MAX) + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let mut bytes = Vec::new();
            put_varlong(&mut bytes, value);
            let mut cursor = Cursor {
                bytes: &bytes,
                at: 0,
            };
            assert_eq!(cursor.varlong(), Ok(value), "varlong {value}");
            assert_eq!(cursor.at, bytes.len(), "varlong {value} length");
        }
        // A two-byte varint cut after its first byte.
        let mut cursor = Cursor {
            bytes: &[0x80],
            at: 0,
        };
        assert!(cursor.varint().is_err());
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let mut cursor = Cursor {
            bytes: &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            at: 0,
        };
        assert!(cursor.varint().is_err());
        let mut cursor = Cursor {
            bytes: &[0xff],
            at: 0,
        };
        assert!(cursor.varlong().is_err());
        let mut cursor = Cursor {
            bytes: &[0x03],
            at: 0,
        };
        assert_eq!(cursor.varint(), Ok(-2));
    }
}
