//! weir's Kafka wire layer. The broker side has no sockets of its own, only bytes in and
//! bytes out (below); `client` is the small blocking Kafka client the operator tools use.
//!
//! ```text
//!   TCP bytes ──► FrameReader ──► frame (Bytes, size prefix stripped)
//!                    │  4-byte big-endian size, bounded by socket.request.max.bytes
//!                    ▼
//!               peek_header ──► (api_key, api_version, correlation_id)   no allocation
//!                    ▼
//!               decode_request::<R>(frame, version) ──► R + RequestHeader  (kafka-protocol)
//!                    ▼                      engine handlers
//!               encode_response(header, body) ──► size | response header | body
//! ```
//!
//! Invariants: a frame is never larger than the configured maximum, so client input
//! cannot grow memory without a bound; every decode error carries where it happened
//! (`offset`, `need`, `have`), and a broken frame is fatal only to its connection.

pub mod client;
pub mod codec;
pub mod frame;
pub mod zero_copy;

pub use codec::{
    RequestPeek, decode_request, encode_response, encode_response_with_header_version, peek_header,
};
pub use frame::{FRAME_SIZE_PREFIX_BYTES, FrameError, FrameReader, FrameSource};
