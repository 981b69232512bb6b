//! `weir configs --alter`: one IncrementalAlterConfigs with SET and DELETE operations,
//! after Kafka's check that every deleted key is currently set (or, for broker
//! loggers, that every named logger exists).

use std::collections::BTreeSet;

use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, KafkaClient};

use super::describe::{connection_for, resource_configs, resource_label};
use super::{Changes, ConfigsError, Entity, EntityType};
use crate::cli::topics::write_stdout;

/// IncrementalAlterConfigs operations.
const OPERATION_SET: i8 = 0;
const OPERATION_DELETE: i8 = 1;

pub(super) fn alter(
    client: &mut KafkaClient,
    entity: &Entity,
    changes: &Changes,
) -> Result<(), ConfigsError> {
    let entity_type = entity.entity_type;
    let name = entity
        .name
        .clone()
        .expect("check_usage requires a name or the default with --alter");
    // Every logger named must exist; of other configs, only those to delete.
    let loggers = entity_type == EntityType::BrokerLoggers;
    let known: BTreeSet<String> = resource_configs(client, entity_type, &name, loggers, false)?
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    let set_keys = changes.set.iter().filter(|_| loggers);
    let invalid: Vec<&str> = changes
        .delete
        .iter()
        .map(String::as_str)
        .chain(set_keys.map(|(key, _)| key.as_str()))
        .filter(|key| !known.contains(*key))
        .collect();
    if !invalid.is_empty() {
        let invalid = invalid.join(",");
        return Err(if loggers {
            ConfigsError::InvalidBrokerLoggers(invalid)
        } else {
            ConfigsError::InvalidConfigs(invalid)
        });
    }
    let configs = changes
        .set
        .iter()
        .map(|(key, value)| (key, OPERATION_SET, value.as_str()))
        .chain(changes.delete.iter().map(|key| (key, OPERATION_DELETE, "")))
        .map(|(key, operation, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(operation)
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(entity_type.resource_type())
            .with_resource_name(StrBytes::from_string(name.clone()))
            .with_configs(configs),
    ]);
    let connection = connection_for(client, entity_type, &name)?;
    let (_, response) = connection.call(&request)?;
    for result in &response.responses {
        ClientError::check(
            result.error_code,
            result.error_message.as_ref(),
            format!(
                "IncrementalAlterConfigs for {}",
                resource_label(result.resource_type, result.resource_name.as_str())
            ),
        )?;
    }
    if name.is_empty() {
        write_stdout(&format!(
            "Completed updating default config for {} in the cluster.\n",
            entity_type.plural()
        ))?;
    } else {
        write_stdout(&format!(
            "Completed updating config for {} {name}.\n",
            entity_type.singular()
        ))?;
    }
    Ok(())
}
