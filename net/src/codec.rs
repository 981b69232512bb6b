//! Glue between frames and the `kafka-protocol` crate's generated types.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::frame::FrameError;

/// The fixed part of every request header, read without decoding anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPeek {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id from the first 8 bytes of a frame.
pub fn peek_header(frame: &[u8]) -> Result<RequestPeek, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Short {
            offset: 0,
            need: 8,
            have: frame.len(),
        });
    }
    Ok(RequestPeek {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the request header and body of a frame whose api key is known.
pub fn decode_request<R: Decodable>(
    mut frame: Bytes,
    api_key: ApiKey,
    api_version: i16,
    what: &'static str,
) -> Result<(RequestHeader, R), FrameError> {
    let header_version = api_key.request_header_version(api_version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|error| FrameError::Decode {
            what: "request header",
            version: header_version,
            reason: error.to_string(),
        })?;
    let body = R::decode(&mut frame, api_version).map_err(|error| FrameError::Decode {
        what,
        version: api_version,
        reason: error.to_string(),
    })?;
    Ok((header, body))
}

/// Encodes `size | response header | body` for `body`'s own header version.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    api_version: i16,
    body: &R,
    what: &'static str,
) -> Result<Bytes, FrameError> {
    encode_response_with_header_version(
        correlation_id,
        R::header_version(api_version),
        api_version,
        body,
        what,
    )
}

/// Encodes a response with an explicit header version (ApiVersions always uses v0).
pub fn encode_response_with_header_version<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
    body: &R,
    what: &'static str,
) -> Result<Bytes, FrameError> {
    let encode_error = |error: EncodeError| FrameError::Encode {
        what,
        version: api_version,
        reason: error.to_string(),
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version).map_err(encode_error)?
        + body.compute_size(api_version).map_err(encode_error)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(size as i32);
    header
        .encode(&mut out, header_version)
        .map_err(encode_error)?;
    body.encode(&mut out, api_version).map_err(encode_error)?;
    debug_assert_eq!(out.len(), 4 + size, "compute_size agrees with encode");
    Ok(out.freeze())
}

/// kafka-protocol's error type; only its Display is used.
type EncodeError = anyhow::Error;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    #[test]
    fn peek_reads_key_version_and_correlation_id() {
        let frame = [0, 18, 0, 3, 0, 0, 1, 2, 0xff];
        assert_eq!(
            peek_header(&frame).unwrap(),
            RequestPeek {
                api_key: 18,
                api_version: 3,
                correlation_id: 258
            }
        );
        for cut in 0..8 {
            assert!(peek_header(&frame[..cut]).is_err());
        }
    }

    #[test]
    fn api_versions_response_header_has_no_tagged_fields() {
        let body = kafka_protocol::messages::ApiVersionsResponse::default();
        let bytes =
            encode_response_with_header_version(7, 0, 3, &body, "ApiVersionsResponse").unwrap();
        // size | correlation id | body: error code comes straight after the correlation id.
        assert_eq!(&bytes[4..8], &7i32.to_be_bytes());
        assert_eq!(&bytes[8..10], &0i16.to_be_bytes());
    }

    #[test]
    fn request_roundtrips_through_decode() {
        let header = RequestHeader::default()
            .with_request_api_key(18)
            .with_request_api_version(3)
            .with_correlation_id(9)
            .with_client_id(Some("test".into()));
        let body = ApiVersionsRequest::default().with_client_software_name("weir".into());
        let mut out = BytesMut::new();
        header
            .encode(&mut out, ApiKey::ApiVersions.request_header_version(3))
            .unwrap();
        body.encode(&mut out, 3).unwrap();
        let frame = out.freeze();
        let (decoded_header, decoded): (_, ApiVersionsRequest) =
            decode_request(frame.clone(), ApiKey::ApiVersions, 3, "ApiVersionsRequest").unwrap();
        assert_eq!(decoded_header.correlation_id, 9);
        assert_eq!(decoded, body);
        for cut in 0..frame.len() {
            assert!(
                decode_request::<ApiVersionsRequest>(
                    frame.slice(..cut),
                    ApiKey::ApiVersions,
                    3,
                    "x"
                )
                .is_err(),
                "cut {cut} decoded"
            );
        }
    }
}
