//! DescribeConfigs v1–4 for topics and the broker, with sources and synonyms.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::dynamic::{RESOURCE_BROKER, RESOURCE_TOPIC, is_dynamic_broker_key};
use crate::config::{BrokerConfig, ConfigSource, TOPIC_CONFIG_KEYS};
use crate::metadata::TopicMetadata;
use crate::shard::Shard;

/// Kafka's config source codes.
const SOURCE_TOPIC: i8 = 1;

/// One effective config value.
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    /// (name, value, source), most specific first, the entry's own source included.
    pub synonyms: Vec<(String, String, i8)>,
}

/// Every topic config of `topic` with its effective value and where it comes from.
pub fn topic_config_entries(config: &BrokerConfig, topic: &TopicMetadata) -> Vec<ConfigEntry> {
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|key| {
            let (broker_value, broker_source) = config.topic_default(key);
            let mut synonyms = Vec::new();
            if let Some(value) = topic.configs.get(key.name) {
                synonyms.push((key.name.to_string(), value.clone(), SOURCE_TOPIC));
            }
            for (broker_key, value, source) in config.topic_synonyms(key) {
                synonyms.push((broker_key.to_string(), value, source.code()));
            }
            let (value, source) = match topic.configs.get(key.name) {
                Some(value) => (value.clone(), SOURCE_TOPIC),
                None => (
                    broker_value,
                    broker_source.map_or(5, |(_, source)| source.code()),
                ),
            };
            ConfigEntry {
                name: key.name.to_string(),
                value,
                source,
                config_type: key.config_type,
                synonyms,
            }
        })
        .collect()
}

/// The broker's configs; for resource `""` (every broker) only the dynamic defaults,
/// as Kafka answers it.
fn broker_config_entries(config: &BrokerConfig, cluster_default: bool) -> Vec<ConfigEntry> {
    config
        .values()
        .filter_map(|(name, value, source)| {
            if !cluster_default {
                return Some((name, value, source));
            }
            // Resource "" shows the every-broker layer itself, even where this node
            // overrides it.
            config
                .cluster_dynamic_value(name)
                .map(|value| (name, value, ConfigSource::DynamicDefaultBroker))
        })
        .map(|(name, value, source)| ConfigEntry {
            name: name.to_string(),
            value: value.to_string(),
            source: source.code(),
            config_type: 2,
            synonyms: config
                .layers(name)
                .into_iter()
                .map(|(value, source)| (name.to_string(), value, source.code()))
                .collect(),
        })
        .collect()
}

pub async fn describe_configs(
    shard: &Rc<Shard>,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let metadata = shard.metadata();
    let config = shard.effective_config();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.to_string();
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match metadata.topic(&name) {
                    Some(topic) => Ok(topic_config_entries(&config, topic)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition.code(),
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == config.node_id.to_string() => {
                    Ok(broker_config_entries(&config, name.is_empty()))
                }
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "This broker is node {}, not '{name}'.",
                        shard.config.node_id
                    ),
                )),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("Resource type {other} is not supported."),
                )),
            };
            match entries {
                Ok(entries) => {
                    let wanted = resource
                        .configuration_keys
                        .map(|keys| keys.iter().map(|key| key.to_string()).collect::<Vec<_>>());
                    let configs = entries
                        .into_iter()
                        .filter(|entry| {
                            wanted
                                .as_ref()
                                .is_none_or(|keys| keys.contains(&entry.name))
                        })
                        .map(|entry| {
                            let read_only = resource.resource_type == RESOURCE_BROKER
                                && !is_dynamic_broker_key(&entry.name);
                            let mut result = DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(entry.name))
                                .with_value(Some(StrBytes::from_string(entry.value)))
                                .with_read_only(read_only)
                                .with_config_source(entry.source)
                                .with_is_sensitive(false);
                            if request.include_synonyms {
                                result = result.with_synonyms(
                                    entry
                                        .synonyms
                                        .into_iter()
                                        .map(|(name, value, source)| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(StrBytes::from_string(name))
                                                .with_value(Some(StrBytes::from_string(value)))
                                                .with_source(source)
                                        })
                                        .collect(),
                                );
                            }
                            if version >= 3 {
                                result = result.with_config_type(entry.config_type);
                            }
                            result
                        })
                        .collect();
                    result.with_error_code(0).with_configs(configs)
                }
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn topic_synonyms_list_every_set_broker_key_with_its_own_value() {
        let config = BrokerConfig::load(
            None,
            std::iter::empty::<(String, String)>(),
            &["log.retention.minutes=30".to_string()],
        )
        .expect("valid config");
        let topic = TopicMetadata {
            name: "orders".into(),
            id: uuid::Uuid::nil(),
            partitions: 1,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            partition_dirs: vec![0],
            registrations: Vec::new(),
        };
        let entries = topic_config_entries(&config, &topic);
        let retention = entries
            .iter()
            .find(|entry| entry.name == "retention.ms")
            .expect("listed");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", SOURCE_TOPIC)
        );
        let synonyms: Vec<_> = retention
            .synonyms
            .iter()
            .map(|(name, value, _)| format!("{name}={value}"))
            .collect();
        assert_eq!(
            synonyms,
            [
                "retention.ms=1000",
                "log.retention.minutes=30",
                "log.retention.hours=168"
            ]
        );
        // Without the topic override the effective value comes from the most specific key.
        let plain = TopicMetadata {
            configs: BTreeMap::new(),
            ..topic
        };
        let entries = topic_config_entries(&config, &plain);
        let retention = entries
            .iter()
            .find(|entry| entry.name == "retention.ms")
            .expect("listed");
        assert_eq!(retention.value, "1800000");
    }
}
