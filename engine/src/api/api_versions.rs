//! ApiVersions v0–4, generated from the handler registry.
//!
//! Traps handled here: the response header is always v0 (no tagged fields, even for
//! flexible versions); an unknown version gets a v0-encoded UNSUPPORTED_VERSION reply
//! that still lists the APIs (KIP-511); default-valued tagged fields are not written
//! (kafka-protocol skips them), which Debian's librdkafka 2.0.2 depends on.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use weir_net::{FrameError, encode_response_with_header_version};

use super::SUPPORTED_APIS;
use crate::shard::Shard;

fn listing() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|entry| {
            ApiVersion::default()
                .with_api_key(entry.key as i16)
                .with_min_version(entry.min_version)
                .with_max_version(entry.max_version)
        })
        .collect()
}

pub async fn handle(
    _shard: &Rc<Shard>,
    _version: i16,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(listing())
        .with_finalized_features_epoch(-1)
}

/// The KIP-511 answer to an ApiVersions version weir does not know.
pub fn unsupported_version_response(correlation_id: i32) -> Result<Bytes, FrameError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(listing());
    encode_response_with_header_version(correlation_id, 0, 0, &body, "ApiVersionsResponse")
}
