//! The quorum's wire format between voters, on the CONTROLLER listener: one frame per
//! Raft message, sans-IO.
//!
//! ```text
//!  frame = u32 length (of what follows the crc) | u32 crc32c (of the payload) | payload
//!  payload = raft Message (protobuf), at most FRAME_PAYLOAD_BYTES_MAX
//! ```
//!
//! A damaged frame (oversized, wrong CRC, undecodable message) is an error: the caller
//! closes that connection, and Raft retransmits whatever it still needs.

use raft::eraftpb::Message;

use super::{decode_message, encode_message};

/// The largest message payload accepted (snapshots of the metadata log fit easily).
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 64 << 20;
const HEADER_BYTES: usize = 8;

/// Why a connection's bytes are not a frame stream.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "a quorum frame claims {length} bytes, more than the {FRAME_PAYLOAD_BYTES_MAX} allowed"
    )]
    TooLarge { length: usize },
    #[error("a quorum frame's CRC-32C does not match its {length} bytes")]
    BadChecksum { length: usize },
    #[error("a quorum frame does not hold a Raft message: {reason}")]
    NotAMessage { reason: String },
}

/// One message as a frame.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    let payload = encode_message(message);
    assert!(
        payload.len() <= FRAME_PAYLOAD_BYTES_MAX,
        "raft messages stay below the frame limit"
    );
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Collects a connection's bytes and hands out whole messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// Bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buffer.len() < HEADER_BYTES {
            return Ok(None);
        }
        let length = u32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes")) as usize;
        if length > FRAME_PAYLOAD_BYTES_MAX {
            return Err(FrameError::TooLarge { length });
        }
        if self.buffer.len() < HEADER_BYTES + length {
            return Ok(None);
        }
        let crc = u32::from_be_bytes(self.buffer[4..8].try_into().expect("4 bytes"));
        let payload = &self.buffer[HEADER_BYTES..HEADER_BYTES + length];
        if crc32c::crc32c(payload) != crc {
            return Err(FrameError::BadChecksum { length });
        }
        let message = decode_message(payload).map_err(|error| FrameError::NotAMessage {
            reason: error.to_string(),
        })?;
        self.buffer.drain(..HEADER_BYTES + length);
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{Entry, MessageType};

    use super::*;

    fn message(index: u64) -> Message {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.from = 1;
        message.to = 2;
        message.term = 3;
        message.index = index;
        let entry = Entry {
            index: index + 1,
            data: format!("record {index}").into_bytes().into(),
            ..Default::default()
        };
        message.mut_entries().push(entry);
        message
    }

    #[test]
    fn messages_round_trip_however_the_bytes_are_split() {
        let stream: Vec<u8> = (0..3).flat_map(|i| encode_frame(&message(i))).collect();
        for chunk in [1, 2, 7, 13, stream.len()] {
            let mut decoder = FrameDecoder::default();
            let mut decoded = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.extend(piece);
                while let Some(message) = decoder.next_message().expect("valid frames") {
                    decoded.push(message);
                }
            }
            assert_eq!(
                decoded,
                (0..3).map(message).collect::<Vec<_>>(),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_truncated_frame_waits_at_every_length() {
        let frame = encode_frame(&message(9));
        for cut in 0..frame.len() {
            let mut decoder = FrameDecoder::default();
            decoder.extend(&frame[..cut]);
            assert_eq!(decoder.next_message(), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        let frame = encode_frame(&message(1));
        for position in 4..frame.len() {
            let mut damaged = frame.clone();
            damaged[position] ^= 0x40;
            let mut decoder = FrameDecoder::default();
            decoder.extend(&damaged);
            assert!(
                matches!(decoder.next_message(), Err(FrameError::BadChecksum { .. })),
                "a flipped bit at {position} is caught by the CRC"
            );
        }
        let mut huge = FrameDecoder::default();
        huge.extend(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(matches!(
            huge.next_message(),
            Err(FrameError::TooLarge { .. })
        ));
        let garbage = [0xffu8; 5];
        let mut not_a_message = FrameDecoder::default();
        not_a_message.extend(&(garbage.len() as u32).to_be_bytes());
        not_a_message.extend(&crc32c::crc32c(&garbage).to_be_bytes());
        not_a_message.extend(&garbage);
        assert!(matches!(
            not_a_message.next_message(),
            Err(FrameError::NotAMessage { .. })
        ));
    }
}
