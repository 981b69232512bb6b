//! AlterConfigs v0–2 and IncrementalAlterConfigs v0–1, for topics and dynamic broker
//! configs.
//!
//! Both decode into [`ConfigChange`]s per resource and hand them to the controller
//! shard, which applies them under its lock, validates each resource as a whole,
//! persists the result with the topic metadata and publishes it to every shard before
//! answering — so a config change is in force (and survives a restart) once
//! acknowledged. AlterConfigs replaces a resource's whole set of overrides (keys it
//! does not name are removed, as in Kafka); IncrementalAlterConfigs applies
//! SET/DELETE/APPEND/SUBTRACT to the keys it names.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::dynamic::{
    ConfigChange, ConfigOperation, ConfigResource, RESOURCE_BROKER, RESOURCE_TOPIC,
};
use crate::controller::{self, CONTROLLER_SHARD};
use crate::shard::Shard;

/// One resource of a request: its type and name as sent, and the decoded change or why
/// it cannot be made.
struct ResourceRequest {
    resource_type: i8,
    resource_name: StrBytes,
    change: Result<(ConfigResource, Vec<ConfigChange>), (i16, String)>,
}

fn resource(resource_type: i8, name: &str) -> Result<ConfigResource, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER => Ok(ConfigResource::Broker(name.to_string())),
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("Resource type {other} cannot be altered by this broker."),
        )),
    }
}

/// Runs the decodable resources through the controller; returns one outcome per
/// resource, in request order.
async fn alter(
    shard: &Rc<Shard>,
    resources: &[ResourceRequest],
    replace: bool,
    validate_only: bool,
) -> Vec<Result<(), (i16, String)>> {
    let requests: Vec<(ConfigResource, Vec<ConfigChange>)> = resources
        .iter()
        .filter_map(|resource| resource.change.as_ref().ok().cloned())
        .collect();
    let mut answers = if requests.is_empty() {
        Vec::new()
    } else {
        match shard
            .invoke_on(CONTROLLER_SHARD, move |controller_shard| {
                controller::alter_configs(controller_shard, requests, replace, validate_only)
            })
            .await
        {
            Ok(answers) => answers,
            Err(gone) => vec![
                Err((ResponseError::KafkaStorageError.code(), gone.to_string()));
                resources.len()
            ],
        }
    }
    .into_iter();
    resources
        .iter()
        .map(|resource| match &resource.change {
            Ok(_) => answers.next().unwrap_or_else(|| {
                Err((
                    ResponseError::UnknownServerError.code(),
                    "the controller gave no answer".into(),
                ))
            }),
            Err(error) => Err(error.clone()),
        })
        .collect()
}

fn message(outcome: &Result<(), (i16, String)>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, text)) => (*code, Some(StrBytes::from_string(text.clone()))),
    }
}

pub async fn alter_configs(
    shard: &Rc<Shard>,
    _version: i16,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources: Vec<ResourceRequest> = request
        .resources
        .into_iter()
        .map(|entry| {
            let change =
                resource(entry.resource_type, entry.resource_name.as_str()).map(|target| {
                    let changes = entry
                        .configs
                        .into_iter()
                        .map(|config| ConfigChange {
                            name: config.name.to_string(),
                            // A null value in the non-incremental request leaves the key unset.
                            operation: match config.value {
                                Some(value) => ConfigOperation::Set(value.to_string()),
                                None => ConfigOperation::Delete,
                            },
                        })
                        .collect();
                    (target, changes)
                });
            ResourceRequest {
                resource_type: entry.resource_type,
                resource_name: entry.resource_name,
                change,
            }
        })
        .collect();
    let outcomes = alter(shard, &resources, true, request.validate_only).await;
    let responses = resources
        .into_iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let (code, text) = message(&outcome);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(text)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    _version: i16,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources: Vec<ResourceRequest> = request
        .resources
        .into_iter()
        .map(|entry| {
            let change =
                resource(entry.resource_type, entry.resource_name.as_str()).and_then(|target| {
                    let changes = entry
                        .configs
                        .into_iter()
                        .map(|config| {
                            let name = config.name.to_string();
                            ConfigOperation::from_wire(
                                &name,
                                config.config_operation,
                                config.value.map(|value| value.to_string()),
                            )
                            .map(|operation| ConfigChange { name, operation })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((target, changes))
                });
            ResourceRequest {
                resource_type: entry.resource_type,
                resource_name: entry.resource_name,
                change,
            }
        })
        .collect();
    let outcomes = alter(shard, &resources, false, request.validate_only).await;
    let responses = resources
        .into_iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let (code, text) = message(&outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(text)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
