//! Goal: every advertised version of AlterConfigs and IncrementalAlterConfigs changes
//! configs with Kafka's semantics and error codes, and the changes survive a restart.
//! Method: the real binary; per version, alter a topic and the broker, read the result
//! back with DescribeConfigs (value and source), send the mistakes Kafka refuses, then
//! restart and read everything again.

mod common;

use common::{Broker, Client, advertised_versions, create_topic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// (value, source) of `key` on a resource.
fn describe(client: &mut Client, resource_type: i8, name: &str, key: &str) -> (String, i8) {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configuration_keys(Some(vec![text(key)])),
    ]);
    let response = client.call(4, &request);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let entry = result
        .configs
        .first()
        .unwrap_or_else(|| panic!("{key} on {name}"));
    (
        entry.value.as_deref().unwrap_or_default().to_string(),
        entry.config_source,
    )
}

/// IncrementalAlterConfigs with (key, operation, value) on one resource; its error code.
fn incremental(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    operations: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = operations
        .iter()
        .map(|(key, operation, value)| {
            AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(*operation)
                .with_value(value.map(text))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs),
    ]);
    let response = client.call(version, &request);
    assert_eq!(response.responses.len(), 1);
    let result = &response.responses[0];
    assert_eq!(result.resource_name.as_str(), name);
    assert_eq!(result.resource_type, resource_type);
    (
        result.error_code,
        result
            .error_message
            .as_ref()
            .map(|message| message.to_string()),
    )
}

/// AlterConfigs (whole-set replacement) on one resource; its error code.
fn alter(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> i16 {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = configs
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(text(key))
                .with_value(Some(text(value)))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs),
    ]);
    let response = client.call(version, &request);
    assert_eq!(response.responses.len(), 1);
    response.responses[0].error_code
}

#[test]
fn alter_and_incremental_alter_configs_work_at_every_version_and_survive_restart() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    let incremental_versions = advertised_versions(&mut client, ApiKey::IncrementalAlterConfigs);
    let alter_versions = advertised_versions(&mut client, ApiKey::AlterConfigs);
    assert_eq!(incremental_versions, 0..=1);
    assert_eq!(alter_versions, 0..=2);
    let mut expected: Vec<(String, String, i8)> = Vec::new();

    for version in incremental_versions {
        let topic = format!("incremental-{version}");
        create_topic(&mut client, &topic, 1);
        let retention = (1000 + version).to_string();
        let ops = [
            ("retention.ms", 0, Some(retention.as_str())),
            ("cleanup.policy", 2, Some("compact")),
        ];
        assert_eq!(incremental(&mut client, version, TOPIC, &topic, &ops).0, 0);
        assert_eq!(
            describe(&mut client, TOPIC, &topic, "cleanup.policy"),
            ("delete,compact".to_string(), SOURCE_TOPIC)
        );
        let ops = [("cleanup.policy", 3, Some("delete"))];
        assert_eq!(incremental(&mut client, version, TOPIC, &topic, &ops).0, 0);
        expected.push((topic.clone(), retention, SOURCE_TOPIC));

        let (code, message) = incremental(
            &mut client,
            version,
            TOPIC,
            &topic,
            &[("retention.ms", 0, Some("soon"))],
        );
        assert_eq!(code, INVALID_CONFIG, "v{version}");
        assert!(message.is_some_and(|message| message.contains("retention.ms")));
        let duplicate = [("retention.ms", 0, Some("1")), ("retention.ms", 1, None)];
        assert_eq!(
            incremental(&mut client, version, TOPIC, &topic, &duplicate).0,
            INVALID_REQUEST
        );
        assert_eq!(
            incremental(
                &mut client,
                version,
                TOPIC,
                &topic,
                &[("retention.ms", 0, None)]
            )
            .0,
            INVALID_REQUEST,
            "SET needs a value"
        );
        assert_eq!(
            incremental(
                &mut client,
                version,
                TOPIC,
                "missing",
                &[("retention.ms", 0, Some("1"))]
            )
            .0,
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            incremental(
                &mut client,
                version,
                BROKER,
                "7",
                &[("log.retention.ms", 0, Some("1"))]
            )
            .0,
            INVALID_REQUEST,
            "another broker's id"
        );
        assert_eq!(
            incremental(
                &mut client,
                version,
                BROKER,
                "0",
                &[("log.dirs", 0, Some("/x"))]
            )
            .0,
            INVALID_CONFIG,
            "a static key"
        );
    }
    assert_eq!(
        incremental(
            &mut client,
            1,
            BROKER,
            "",
            &[("log.retention.bytes", 0, Some("777"))]
        )
        .0,
        0
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            BROKER,
            "0",
            &[("log.roll.ms", 0, Some("3600000"))]
        )
        .0,
        0
    );

    for version in alter_versions {
        let topic = format!("alter-{version}");
        create_topic(&mut client, &topic, 1);
        assert_eq!(
            alter(
                &mut client,
                version,
                TOPIC,
                &topic,
                &[("segment.ms", "60000")]
            ),
            0
        );
        let retention = (2000 + version).to_string();
        assert_eq!(
            alter(
                &mut client,
                version,
                TOPIC,
                &topic,
                &[("retention.ms", &retention)]
            ),
            0
        );
        assert_eq!(
            describe(&mut client, TOPIC, &topic, "segment.ms"),
            ("3600000".to_string(), SOURCE_DYNAMIC_BROKER),
            "AlterConfigs replaces the topic's whole set"
        );
        assert_eq!(
            alter(
                &mut client,
                version,
                TOPIC,
                &topic,
                &[("segment.bytes", "13")]
            ),
            INVALID_CONFIG
        );
        expected.push((topic, retention, SOURCE_TOPIC));
    }

    let check = |client: &mut Client| {
        for (topic, retention, source) in &expected {
            assert_eq!(
                describe(client, TOPIC, topic, "retention.ms"),
                (retention.clone(), *source),
                "{topic}"
            );
            assert_eq!(
                describe(client, TOPIC, topic, "retention.bytes"),
                ("777".to_string(), SOURCE_DYNAMIC_DEFAULT)
            );
            assert_eq!(
                describe(client, TOPIC, topic, "segment.bytes"),
                ("1073741824".to_string(), SOURCE_DEFAULT)
            );
        }
        assert_eq!(
            describe(client, BROKER, "0", "log.roll.ms"),
            ("3600000".to_string(), SOURCE_DYNAMIC_BROKER)
        );
    };
    check(&mut client);
    broker.stop();
    broker.restart();
    let mut client = broker.connect();
    check(&mut client);
}
