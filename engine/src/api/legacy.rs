//! Versions advertised only for old clients' feature detection, and refused.
//!
//! librdkafka decides what a broker can do from the advertised version ranges: it
//! needs Produce v0–2 listed to produce at all, and Fetch v2 listed to use lz4
//! (Kafka 4.0 keeps advertising such versions for the same reason, KAFKA-18659).
//! weir stores only v2 record batches, so these versions are answered with
//! UNSUPPORTED_VERSION for every partition. The codec crate starts at Produce v3 and
//! Fetch v4, so these old layouts (all non-flexible) are read and written by hand.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use weir_net::FrameError;

/// A bounds-checked reader over an old-format request.
struct Reader {
    bytes: Bytes,
    total: usize,
}

impl Reader {
    fn need(&self, count: usize) -> Result<(), FrameError> {
        if self.bytes.remaining() < count {
            return Err(FrameError::Short {
                offset: self.total - self.bytes.remaining(),
                need: count,
                have: self.bytes.remaining(),
            });
        }
        Ok(())
    }
    fn i16(&mut self) -> Result<i16, FrameError> {
        self.need(2)?;
        Ok(self.bytes.get_i16())
    }
    fn i32(&mut self) -> Result<i32, FrameError> {
        self.need(4)?;
        Ok(self.bytes.get_i32())
    }
    fn skip(&mut self, count: usize) -> Result<(), FrameError> {
        self.need(count)?;
        self.bytes.advance(count);
        Ok(())
    }
    /// A non-negative array or string length.
    fn length(&mut self, length: i32) -> usize {
        length.max(0) as usize
    }
    fn string(&mut self) -> Result<Bytes, FrameError> {
        let length = self.i16()?.max(0) as usize;
        self.need(length)?;
        Ok(self.bytes.split_to(length))
    }
    /// Skips request header v1 (api key, version, correlation id, client id).
    fn new_after_header(frame: Bytes) -> Result<Reader, FrameError> {
        let mut reader = Reader {
            total: frame.len(),
            bytes: frame,
        };
        reader.skip(8)?;
        let client_id = reader.i16()?;
        reader.skip(client_id.max(0) as usize)?;
        Ok(reader)
    }
}

/// (topic name, partition indexes) as the request listed them.
type TopicPartitions = Vec<(Bytes, Vec<i32>)>;

fn read_topics(
    reader: &mut Reader,
    skip_per_partition: impl Fn(&mut Reader) -> Result<(), FrameError>,
) -> Result<TopicPartitions, FrameError> {
    let count = reader.i32()?;
    let count = reader.length(count);
    let mut topics = Vec::new();
    for _ in 0..count {
        let name = reader.string()?;
        let partition_count = reader.i32()?;
        let partition_count = reader.length(partition_count);
        let mut partitions = Vec::new();
        for _ in 0..partition_count {
            partitions.push(reader.i32()?);
            skip_per_partition(reader)?;
        }
        topics.push((name, partitions));
    }
    Ok(topics)
}

fn frame(body: BytesMut) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_i32(body.len() as i32);
    out.put_slice(&body);
    out.freeze()
}

fn put_topics(
    body: &mut BytesMut,
    topics: &TopicPartitions,
    mut put_partition: impl FnMut(&mut BytesMut, i32),
) {
    body.put_i32(topics.len() as i32);
    for (name, partitions) in topics {
        body.put_i16(name.len() as i16);
        body.put_slice(name);
        body.put_i32(partitions.len() as i32);
        for partition in partitions {
            put_partition(body, *partition);
        }
    }
}

/// Produce v0–2: UNSUPPORTED_VERSION per partition; none for acks=0.
pub fn refuse_produce(
    frame_bytes: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<Option<Bytes>, FrameError> {
    let mut reader = Reader::new_after_header(frame_bytes)?;
    let acks = reader.i16()?;
    let _timeout_ms = reader.i32()?;
    let topics = read_topics(&mut reader, |reader| {
        let records = reader.i32()?;
        reader.skip(records.max(0) as usize)
    })?;
    if acks == 0 {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    put_topics(&mut body, &topics, |body, partition| {
        body.put_i32(partition);
        body.put_i16(ResponseError::UnsupportedVersion.code());
        body.put_i64(-1); // base offset
        if version >= 2 {
            body.put_i64(-1); // log append time
        }
    });
    if version >= 1 {
        body.put_i32(0); // throttle time
    }
    Ok(Some(frame(body)))
}

/// Fetch v0–3: UNSUPPORTED_VERSION per partition, no records.
pub fn refuse_fetch(
    frame_bytes: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<Option<Bytes>, FrameError> {
    let mut reader = Reader::new_after_header(frame_bytes)?;
    // replica id, max wait, min bytes, and from v3 max bytes.
    reader.skip(if version >= 3 { 16 } else { 12 })?;
    // Per partition after its index: fetch offset i64, partition max bytes i32.
    let topics = read_topics(&mut reader, |reader| reader.skip(12))?;
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    if version >= 1 {
        body.put_i32(0); // throttle time
    }
    put_topics(&mut body, &topics, |body, partition| {
        body.put_i32(partition);
        body.put_i16(ResponseError::UnsupportedVersion.code());
        body.put_i64(-1); // high watermark
        body.put_i32(0); // empty record set
    });
    Ok(Some(frame(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_v3_request() -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i16(1);
        out.put_i16(3);
        out.put_i32(42);
        out.put_i16(-1);
        out.put_i32(-1);
        out.put_i32(500);
        out.put_i32(1);
        out.put_i32(1 << 20);
        out.put_i32(1);
        out.put_i16(3);
        out.put_slice(b"abc");
        out.put_i32(2);
        for partition in [0, 7] {
            out.put_i32(partition);
            out.put_i64(0);
            out.put_i32(1 << 20);
        }
        out.to_vec()
    }

    #[test]
    fn fetch_v3_is_answered_with_unsupported_version_per_partition() {
        let response = refuse_fetch(Bytes::from(fetch_v3_request()), 3, 42)
            .unwrap()
            .unwrap();
        let mut expected = BytesMut::new();
        expected.put_i32(42);
        expected.put_i32(0);
        expected.put_i32(1);
        expected.put_i16(3);
        expected.put_slice(b"abc");
        expected.put_i32(2);
        for partition in [0, 7] {
            expected.put_i32(partition);
            expected.put_i16(35);
            expected.put_i64(-1);
            expected.put_i32(0);
        }
        assert_eq!(&response[4..], &expected[..]);
        assert_eq!(
            i32::from_be_bytes(response[..4].try_into().unwrap()) as usize,
            expected.len()
        );
    }

    #[test]
    fn truncated_old_requests_fail_cleanly_at_every_byte() {
        let request = fetch_v3_request();
        for cut in 0..request.len() {
            assert!(
                refuse_fetch(Bytes::copy_from_slice(&request[..cut]), 3, 42).is_err(),
                "cut {cut}"
            );
        }
    }
}
