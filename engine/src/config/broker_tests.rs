//! Tests of `BrokerConfig`: layering, defaults, parsing and validation.

use super::*;

/// The embedded defaults with `key=value` overrides (the config modules' tests).
pub(in crate::config) fn load(overrides: &[&str]) -> Result<BrokerConfig, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|item| item.to_string()).collect();
    BrokerConfig::load(None, Vec::new(), &overrides)
}

/// The message of the error `load(overrides)` must give.
fn load_error(overrides: &[&str]) -> String {
    load(overrides).unwrap_err().to_string()
}

#[test]
fn embedded_defaults_are_a_single_local_node() {
    let config = load(&[]).unwrap();
    assert_eq!(config.node_id, 0);
    assert_eq!(
        config.listen_address,
        "127.0.0.1:9092".parse::<std::net::SocketAddr>().unwrap()
    );
    assert_eq!(config.log_dirs, vec![PathBuf::from("./weir-data")]);
    assert_eq!(config.log_defaults.segment_bytes, 1 << 30);
    assert_eq!(config.log_defaults.segment_ms, 7 * 24 * 3_600_000);
    assert!(config.auto_create_topics_enable);
    assert!(config.warnings.is_empty());
}

#[test]
fn file_environment_and_flags_override_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::write(&path, "num.partitions=2\nlog.segment.bytes=1000\nbroker.id=3\nzookeeper.connect=x:2181\nfoo.bar=1\n").unwrap();
    let environment = vec![("WEIR_NUM_PARTITIONS".to_string(), "4".to_string())];
    let config = BrokerConfig::load(
        Some(&path),
        environment,
        &[
            "log.segment.bytes=2000".to_string(),
            "log.dirs=/a, /b".to_string(),
        ],
    )
    .unwrap();
    assert_eq!(config.num_partitions, 4);
    assert_eq!(config.log_defaults.segment_bytes, 2000);
    assert_eq!(config.node_id, 3);
    assert_eq!(
        config.log_dirs,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|warning| warning.contains("zookeeper.connect is not needed"))
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|warning| warning.contains("'foo.bar'"))
    );
    assert_eq!(
        config.value("log.segment.bytes"),
        Some(("2000", ConfigSource::Static))
    );
}

#[test]
fn retention_and_cleaner_keys_reach_the_log_defaults() {
    let config = load(&[
        "log.retention.minutes=30",
        "log.retention.bytes=4096",
        "log.cleanup.policy=compact",
    ])
    .unwrap();
    let log = &config.log_defaults;
    assert_eq!((log.retention_ms, log.retention_bytes), (1_800_000, 4096));
    assert!(log.cleanup_compact && !log.cleanup_delete);
    assert_eq!(
        load(&[]).unwrap().log_defaults.retention_ms,
        7 * 24 * 3_600_000
    );
    assert_eq!(
        load(&["log.retention.hours=-1"])
            .unwrap()
            .log_defaults
            .retention_ms,
        -1
    );
    let error = load_error(&["log.cleaner.min.cleanable.ratio=2"]);
    assert!(error.contains("log.cleaner.min.cleanable.ratio"), "{error}");
}

#[test]
fn dynamic_values_layer_over_static_ones_with_their_sources() {
    let config = load(&["log.retention.ms=5000", "log.segment.bytes=2000"]).unwrap();
    let cluster = BTreeMap::from([("log.retention.ms".to_string(), "7000".to_string())]);
    let node = BTreeMap::from([("log.segment.bytes".to_string(), "3000".to_string())]);
    let dynamic = config.with_dynamic(&cluster, &node).unwrap();
    assert_eq!(dynamic.log_defaults.retention_ms, 7000);
    assert_eq!(dynamic.log_defaults.segment_bytes, 3000);
    assert_eq!(
        dynamic.value("log.retention.ms"),
        Some(("7000", ConfigSource::DynamicDefaultBroker))
    );
    assert_eq!(
        dynamic.value("log.segment.bytes"),
        Some(("3000", ConfigSource::DynamicBroker))
    );
    // Removing the dynamic values restores the static ones.
    let restored = dynamic
        .with_dynamic(&BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    assert_eq!(restored.log_defaults, config.log_defaults);
}

#[test]
fn replication_factor_below_one_is_a_clear_error() {
    let error = load_error(&["default.replication.factor=0"]);
    assert!(
        error.contains("default.replication.factor") && error.contains("at least 1"),
        "{error}"
    );
    assert_eq!(
        load(&["default.replication.factor=3"])
            .expect("taken")
            .default_replication_factor,
        3
    );
}

#[test]
fn kraft_keys_for_one_and_three_voter_quorums_are_taken() {
    let one = load(&[
        "node.id=1",
        "process.roles=broker,controller",
        "listeners=PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
        "controller.listener.names=CONTROLLER",
        "controller.quorum.voters=1@127.0.0.1:9193",
    ])
    .expect("a quorum of one");
    assert!(one.warnings.is_empty(), "{:?}", one.warnings);
    assert_eq!(
        one.cluster.controller_listener,
        Some("127.0.0.1:9193".parse().unwrap())
    );
    assert_eq!(
        one.listen_address,
        "127.0.0.1:9192".parse::<std::net::SocketAddr>().unwrap()
    );
    let three = load(&[
        "node.id=1",
        "listeners=PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
        "controller.quorum.voters=1@127.0.0.1:9193,2@127.0.0.1:9293,3@127.0.0.1:9393",
    ])
    .expect("a quorum of three");
    assert!(three.cluster.is_multi_node());
    let roles = load_error(&["process.roles=controller"]);
    assert!(roles.contains("combined mode"), "{roles}");
}

#[test]
fn listeners_and_advertised_listeners_are_parsed() {
    let config = load(&[
        "listeners=PLAINTEXT://0.0.0.0:19092",
        "advertised.listeners=PLAINTEXT://broker1:29092",
    ])
    .unwrap();
    assert_eq!(
        config.listen_address,
        "0.0.0.0:19092".parse::<std::net::SocketAddr>().unwrap()
    );
    assert_eq!(
        (config.advertised_host.as_str(), config.advertised_port),
        ("broker1", 29092)
    );
    assert!(load(&["listeners=SSL://127.0.0.1:9093"]).is_err());
    assert!(load(&["num.partitions=zero"]).is_err());
}

#[test]
fn roll_hours_and_flush_interval_map_to_log_config() {
    let config = load(&[
        "log.roll.hours=1",
        "log.flush.interval.messages=1",
        "log.flush.interval.ms=500",
    ])
    .unwrap();
    assert_eq!(config.log_defaults.segment_ms, 3_600_000);
    assert_eq!(config.log_defaults.flush_interval_messages, 1);
    assert_eq!(config.log_defaults.flush_interval_ms, Some(500));
}

#[test]
fn segment_writes_are_configured_or_probed_and_survive_dynamic_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dirs = format!("log.dirs={}", dir.path().display());
    for (value, expected) in [
        ("io_uring", SegmentWrites::IoUring),
        ("pwrite", SegmentWrites::Pwrite),
    ] {
        let mut config = load(&[&log_dirs, &format!("weir.log.segment.writes={value}")]).unwrap();
        assert_eq!(config.segment_writes, Some(expected));
        assert_eq!(config.resolve_segment_writes().unwrap(), expected);
        assert_eq!(config.log_defaults.segment_writes, expected);
    }
    // auto: what the probe of the (only) log dir says.
    let mut config = load(&[&log_dirs]).unwrap();
    assert_eq!(config.segment_writes, None);
    let probed = if weir_storage::buffered_writes_wait_for_worker(dir.path()).unwrap() {
        SegmentWrites::Pwrite
    } else {
        SegmentWrites::IoUring
    };
    assert_eq!(config.resolve_segment_writes().unwrap(), probed);
    // A dynamic config change re-reads the static keys; the settled mode stays.
    let mut config = load(&[&log_dirs, "weir.log.segment.writes=pwrite"]).unwrap();
    config.resolve_segment_writes().unwrap();
    let node = BTreeMap::from([("log.retention.ms".to_string(), "7000".to_string())]);
    let dynamic = config.with_dynamic(&BTreeMap::new(), &node).unwrap();
    assert_eq!(dynamic.log_defaults.segment_writes, SegmentWrites::Pwrite);
    let error = load_error(&["weir.log.segment.writes=direct"]);
    assert!(
        error.contains("weir.log.segment.writes") && error.contains("auto, io_uring or pwrite"),
        "{error}"
    );
}

#[test]
fn socket_buffer_sizes_are_left_to_the_kernel_unless_set() {
    let config = load(&[]).unwrap();
    assert_eq!(config.socket_send_buffer_bytes, None);
    assert_eq!(config.socket_receive_buffer_bytes, None);
    assert!(config.warnings.is_empty());
    let config = load(&[
        "socket.send.buffer.bytes=102400",
        "socket.receive.buffer.bytes=-1",
    ])
    .unwrap();
    assert_eq!(config.socket_send_buffer_bytes, Some(102400));
    assert_eq!(config.socket_receive_buffer_bytes, None);
    assert!(
        config.warnings.is_empty(),
        "the keys take effect: {:?}",
        config.warnings
    );
    assert_eq!(
        load_error(&["socket.receive.buffer.bytes=0"]),
        "invalid value '0' for socket.receive.buffer.bytes: must be -1 (the kernel's default) or between 1 and 2147483647"
    );
}
