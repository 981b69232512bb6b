//! `weir configs --describe`: DescribeConfigs (also used by `weir topics --describe`)
//! and Kafka's output lines.

use std::collections::BTreeSet;

use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::protocol::StrBytes;
use weir_net::client::{ClientError, Connection, KafkaClient};

use super::{
    ConfigEntry, ConfigsError, Entity, EntityType, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER,
    RESOURCE_TOPIC, SOURCE_DYNAMIC_BROKER_CONFIG, SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG,
    SOURCE_DYNAMIC_TOPIC_CONFIG, Synonym,
};
use crate::cli::topics::write_stdout;

/// Kafka's name of a config source (`ConfigEntry.ConfigSource`).
pub fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// `  name=value sensitive=false synonyms={SOURCE:name=value, ...}`
pub fn format_entry(entry: &ConfigEntry) -> String {
    let synonyms: Vec<String> = entry
        .synonyms
        .iter()
        .map(|synonym| {
            format!(
                "{}:{}={}",
                source_name(synonym.source),
                synonym.name,
                synonym.value.as_deref().unwrap_or("null")
            )
        })
        .collect();
    format!(
        "  {}={} sensitive={} synonyms={{{}}}",
        entry.name,
        entry.value.as_deref().unwrap_or("null"),
        entry.sensitive,
        synonyms.join(", ")
    )
}

/// The line before an entity's configs.
pub fn header(entity_type: EntityType, name: &str, all: bool) -> String {
    if entity_type == EntityType::Brokers && name.is_empty() {
        return "Default configs for brokers in the cluster are:".to_string();
    }
    let which = if all { "All" } else { "Dynamic" };
    format!("{which} configs for {} {name} are:", entity_type.singular())
}

/// The source `--describe` shows without `--all` (None: everything).
fn dynamic_source(entity_type: EntityType, name: &str) -> Option<i8> {
    match entity_type {
        EntityType::Topics => Some(SOURCE_DYNAMIC_TOPIC_CONFIG),
        EntityType::Brokers if name.is_empty() => Some(SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG),
        EntityType::Brokers => Some(SOURCE_DYNAMIC_BROKER_CONFIG),
        EntityType::BrokerLoggers => None,
    }
}

/// Sends one DescribeConfigs for `resources` ((type, name) pairs) and returns their
/// entries in the same order; a resource's error fails the whole call.
pub fn describe_configs(
    connection: &mut Connection,
    resources: &[(i8, String)],
    include_synonyms: bool,
) -> Result<Vec<Vec<ConfigEntry>>, ClientError> {
    let request = DescribeConfigsRequest::default()
        .with_resources(
            resources
                .iter()
                .map(|(resource_type, name)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(*resource_type)
                        .with_resource_name(StrBytes::from_string(name.clone()))
                        .with_configuration_keys(None)
                })
                .collect(),
        )
        .with_include_synonyms(include_synonyms);
    let (_, response) = connection.call(&request)?;
    resources
        .iter()
        .map(|(resource_type, name)| {
            let result = response
                .results
                .iter()
                .find(|result| {
                    result.resource_type == *resource_type && result.resource_name.as_str() == name
                })
                .ok_or_else(|| ClientError::Protocol {
                    address: connection.address().to_string(),
                    what: "DescribeConfigs response".to_string(),
                    reason: format!("no result for resource type {resource_type} '{name}'"),
                })?;
            ClientError::check(
                result.error_code,
                result.error_message.as_ref(),
                format!(
                    "DescribeConfigs for {}",
                    resource_label(*resource_type, name)
                ),
            )?;
            Ok(result
                .configs
                .iter()
                .map(|config| ConfigEntry {
                    name: config.name.to_string(),
                    value: config.value.as_ref().map(|value| value.to_string()),
                    source: config.config_source,
                    sensitive: config.is_sensitive,
                    synonyms: config
                        .synonyms
                        .iter()
                        .map(|synonym| Synonym {
                            name: synonym.name.to_string(),
                            value: synonym.value.as_ref().map(|value| value.to_string()),
                            source: synonym.source,
                        })
                        .collect(),
                })
                .collect())
        })
        .collect()
}

pub(super) fn resource_label(resource_type: i8, name: &str) -> String {
    match resource_type {
        RESOURCE_TOPIC => format!("topic '{name}'"),
        RESOURCE_BROKER if name.is_empty() => "the broker default".to_string(),
        RESOURCE_BROKER => format!("broker {name}"),
        RESOURCE_BROKER_LOGGER => format!("the loggers of broker {name}"),
        other => format!("resource type {other} '{name}'"),
    }
}

/// The connection that must answer for `name`: a broker's own configs come from that
/// broker (as Kafka's admin client routes them); the rest from any broker.
pub(super) fn connection_for<'a>(
    client: &'a mut KafkaClient,
    entity_type: EntityType,
    name: &str,
) -> Result<&'a mut Connection, ClientError> {
    match (entity_type, name.parse::<i32>()) {
        (EntityType::Brokers | EntityType::BrokerLoggers, Ok(node_id)) => client.broker(node_id),
        _ => Ok(client.any()),
    }
}

/// The entity's configs as `--describe` shows them: filtered to the dynamic source
/// unless `all`, sorted by name.
pub(super) fn resource_configs(
    client: &mut KafkaClient,
    entity_type: EntityType,
    name: &str,
    include_synonyms: bool,
    all: bool,
) -> Result<Vec<ConfigEntry>, ClientError> {
    let connection = connection_for(client, entity_type, name)?;
    let resources = [(entity_type.resource_type(), name.to_string())];
    let mut entries = describe_configs(connection, &resources, include_synonyms)?
        .pop()
        .unwrap_or_default();
    let wanted = if all {
        None
    } else {
        dynamic_source(entity_type, name)
    };
    entries.retain(|entry| wanted.is_none_or(|source| entry.source == source));
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(entries)
}

pub(super) fn describe(
    client: &mut KafkaClient,
    entity: &Entity,
    all: bool,
) -> Result<(), ConfigsError> {
    let names = match &entity.name {
        Some(name) => vec![name.clone()],
        None => match entity.entity_type {
            EntityType::Topics => {
                let metadata = client.metadata(None)?;
                let names: BTreeSet<String> = metadata
                    .topics
                    .iter()
                    .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
                    .collect();
                names.into_iter().collect()
            }
            EntityType::Brokers | EntityType::BrokerLoggers => {
                let metadata = client.metadata(Some(&[]))?;
                let ids: BTreeSet<i32> = metadata
                    .brokers
                    .iter()
                    .map(|broker| broker.node_id.0)
                    .collect();
                let mut names: Vec<String> = ids.iter().map(i32::to_string).collect();
                names.push(String::new());
                names
            }
        },
    };
    for name in names {
        let entries = resource_configs(client, entity.entity_type, &name, true, all)?;
        let mut out = header(entity.entity_type, &name, all);
        out.push('\n');
        for entry in &entries {
            out.push_str(&format_entry(entry));
            out.push('\n');
        }
        write_stdout(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::configs::SOURCE_DEFAULT_CONFIG;

    #[test]
    fn entries_print_as_kafka_with_sources_and_synonyms() {
        let entry = ConfigEntry {
            name: "retention.ms".to_string(),
            value: Some("1000".to_string()),
            source: SOURCE_DYNAMIC_TOPIC_CONFIG,
            sensitive: false,
            synonyms: vec![
                Synonym {
                    name: "retention.ms".to_string(),
                    value: Some("1000".to_string()),
                    source: SOURCE_DYNAMIC_TOPIC_CONFIG,
                },
                Synonym {
                    name: "log.retention.hours".to_string(),
                    value: Some("168".to_string()),
                    source: SOURCE_DEFAULT_CONFIG,
                },
            ],
        };
        assert_eq!(
            format_entry(&entry),
            "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, \
             DEFAULT_CONFIG:log.retention.hours=168}"
        );
        let secret = ConfigEntry {
            name: "ssl.key.password".to_string(),
            value: None,
            source: 4,
            sensitive: true,
            synonyms: Vec::new(),
        };
        assert_eq!(
            format_entry(&secret),
            "  ssl.key.password=null sensitive=true synonyms={}"
        );
        assert_eq!(source_name(0), "UNKNOWN");
        assert_eq!(source_name(42), "UNKNOWN");
    }

    #[test]
    fn headers_name_the_entity_as_kafka() {
        assert_eq!(
            header(EntityType::Topics, "orders", false),
            "Dynamic configs for topic orders are:"
        );
        assert_eq!(
            header(EntityType::Topics, "orders", true),
            "All configs for topic orders are:"
        );
        assert_eq!(
            header(EntityType::Brokers, "0", false),
            "Dynamic configs for broker 0 are:"
        );
        assert_eq!(
            header(EntityType::Brokers, "", true),
            "Default configs for brokers in the cluster are:"
        );
        assert_eq!(
            header(EntityType::BrokerLoggers, "1", false),
            "Dynamic configs for broker-logger 1 are:"
        );
    }
}
