//! The settings of `weir produce`: Kafka's producer config keys and the console
//! producer's flags, merged as Kafka merges them (an explicit flag beats
//! `--producer-property`, which beats the flag's default), with Kafka's defaults and
//! its checks (idempotence needs acks=all and retries).

use std::time::Duration;

use weir_storage::batch::Compression;

use super::console::{self, Properties};
use super::produce::Args;

/// Whether records carry an idempotent producer's id and sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotence {
    Off,
    /// Kafka's default since 3.0 (acks=all and retries > 0): on when the broker offers
    /// InitProducerId, silently off otherwise.
    Preferred,
    /// `enable.idempotence=true`: failing to get a producer id is an error.
    Required,
}

/// The producer settings that `weir produce` understands (Kafka's key names in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `client.id`.
    pub client_id: String,
    /// `acks`: -1 (all), 0 or 1.
    pub acks: i16,
    /// `linger.ms`.
    pub linger: Duration,
    /// `batch.size`.
    pub batch_size_bytes: usize,
    /// `max.request.size`.
    pub max_request_size_bytes: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`.
    pub idempotence: Idempotence,
    /// `request.timeout.ms`: the broker's ack timeout sent in each Produce request.
    pub request_timeout_ms: i32,
    /// `retries`.
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `max.block.ms`: how long to wait for the topic's partitions to get leaders.
    pub max_block: Duration,
}

/// Producer property keys `weir produce` understands.
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "enable.idempotence",
    "client.id",
    "request.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "max.request.size",
    "max.block.ms",
];
/// Java producer settings that mean nothing to this producer (serializers, buffer pools,
/// reconnect tuning); accepted silently so existing config files work.
pub const PRODUCER_KEYS_IGNORED: &[&str] = &[
    "bootstrap.servers",
    "key.serializer",
    "value.serializer",
    "buffer.memory",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "metadata.max.age.ms",
    "max.in.flight.requests.per.connection",
    "delivery.timeout.ms",
    "connections.max.idle.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.max.ms",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
];
/// Kafka's `compression.type` names.
pub fn parse_compression(value: &str) -> Result<Compression, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!(
            "unknown compression codec '{value}': use none, gzip, snappy, lz4 or zstd"
        )),
    }
}

/// Kafka's `acks` values.
pub fn parse_acks(value: &str) -> Result<i16, String> {
    match value.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks must be all, -1, 0 or 1, got '{value}'")),
    }
}

/// The producer settings: explicit flags, then producer properties, then the flags'
/// defaults (Kafka's `CommandLineUtils.maybeMergeOptions`).
pub fn producer_config(args: &Args, properties: &Properties) -> Result<ProducerConfig, String> {
    let pick = |flag: Option<String>, key: &str, default: &str| -> String {
        flag.or_else(|| properties.get(key).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let acks = parse_acks(&pick(args.request_required_acks.clone(), "acks", "-1"))?;
    let batch_flag = args.max_partition_memory_bytes.or(args.batch_size);
    let batch_size_bytes = console::parse_number::<usize>(
        "batch.size",
        &pick(batch_flag.map(|v| v.to_string()), "batch.size", "16384"),
    )?
    .max(1);
    let linger = console::parse_ms(
        "linger.ms",
        &pick(args.linger_ms.map(|v| v.to_string()), "linger.ms", "1000"),
    )?;
    let request_timeout_ms = console::parse_number::<i32>(
        "request.timeout.ms",
        &pick(
            args.request_timeout_ms.map(|v| v.to_string()),
            "request.timeout.ms",
            "1500",
        ),
    )?;
    if request_timeout_ms <= 0 {
        return Err("request.timeout.ms must be positive".to_string());
    }
    let retries = console::parse_number::<u32>(
        "retries",
        &pick(
            args.message_send_max_retries.map(|v| v.to_string()),
            "retries",
            "3",
        ),
    )?;
    let retry_backoff = console::parse_ms(
        "retry.backoff.ms",
        &pick(
            args.retry_backoff_ms.map(|v| v.to_string()),
            "retry.backoff.ms",
            "100",
        ),
    )?;
    let max_block = console::parse_ms(
        "max.block.ms",
        &pick(
            args.max_block_ms.map(|v| v.to_string()),
            "max.block.ms",
            "60000",
        ),
    )?;
    let compression = parse_compression(&pick(
        args.compression_codec.clone(),
        "compression.type",
        "none",
    ))?;
    let max_request_size_bytes = console::parse_number::<usize>(
        "max.request.size",
        properties
            .get("max.request.size")
            .map_or("1048576", String::as_str),
    )?;
    let idempotence = match properties.get("enable.idempotence") {
        Some(value) if console::parse_bool("enable.idempotence", value)? => {
            if acks != -1 {
                return Err(
                    "Must set acks to all in order to use the idempotent producer. \
                     Otherwise we cannot guarantee idempotence."
                        .to_string(),
                );
            }
            if retries == 0 {
                return Err(
                    "Must set retries to non-zero when using the idempotent producer.".to_string(),
                );
            }
            Idempotence::Required
        }
        Some(_) => Idempotence::Off,
        None if acks == -1 && retries > 0 => Idempotence::Preferred,
        None => Idempotence::Off,
    };
    Ok(ProducerConfig {
        client_id: properties
            .get("client.id")
            .cloned()
            .unwrap_or_else(|| "weir-produce".to_string()),
        acks,
        linger,
        batch_size_bytes,
        max_request_size_bytes,
        compression,
        idempotence,
        request_timeout_ms,
        retries,
        retry_backoff,
        max_block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{parse_args, properties as props};

    fn args(extra: &[&str]) -> Args {
        let words: Vec<&str> = ["--topic", "t"].iter().chain(extra).copied().collect();
        parse_args("weir-produce", &words).expect("valid arguments")
    }

    #[test]
    fn defaults_are_the_kafka_console_producers() {
        let config = producer_config(&args(&[]), &Properties::new()).expect("valid");
        assert_eq!(config.acks, -1);
        assert_eq!(config.linger, Duration::from_millis(1000));
        assert_eq!(config.batch_size_bytes, 16384);
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.request_timeout_ms, 1500);
        assert_eq!(config.retries, 3);
        assert_eq!(config.idempotence, Idempotence::Preferred);
        assert_eq!(config.client_id, "weir-produce");
        assert_eq!(args(&[]).bootstrap_server, "localhost:9092");
    }

    #[test]
    fn compression_codec_alone_means_gzip() {
        let config =
            producer_config(&args(&["--compression-codec"]), &Properties::new()).expect("valid");
        assert_eq!(config.compression, Compression::Gzip);
        let config = producer_config(&args(&["--compression-codec", "zstd"]), &Properties::new())
            .expect("valid");
        assert_eq!(config.compression, Compression::Zstd);
        let config =
            producer_config(&args(&[]), &props(&[("compression.type", "lz4")])).expect("valid");
        assert_eq!(config.compression, Compression::Lz4);
        assert!(
            producer_config(
                &args(&["--compression-codec", "brotli"]),
                &Properties::new()
            )
            .is_err()
        );
    }

    #[test]
    fn explicit_flags_beat_producer_properties_which_beat_flag_defaults() {
        let properties = props(&[("acks", "1"), ("linger.ms", "5")]);
        let config = producer_config(&args(&[]), &properties).expect("valid");
        assert_eq!(config.acks, 1);
        assert_eq!(config.linger, Duration::from_millis(5));
        assert_eq!(
            config.idempotence,
            Idempotence::Off,
            "acks=1 turns the default off"
        );
        let config = producer_config(
            &args(&["--request-required-acks", "all", "--timeout", "9"]),
            &properties,
        )
        .expect("valid");
        assert_eq!(config.acks, -1);
        assert_eq!(config.linger, Duration::from_millis(9));
    }

    #[test]
    fn idempotence_requires_acks_all_as_in_kafka() {
        let error = producer_config(
            &args(&[]),
            &props(&[("enable.idempotence", "true"), ("acks", "1")]),
        )
        .expect_err("conflict");
        assert!(error.contains("Must set acks to all"), "{error}");
        let config =
            producer_config(&args(&[]), &props(&[("enable.idempotence", "true")])).expect("valid");
        assert_eq!(config.idempotence, Idempotence::Required);
        let config =
            producer_config(&args(&[]), &props(&[("enable.idempotence", "false")])).expect("valid");
        assert_eq!(config.idempotence, Idempotence::Off);
        assert!(producer_config(&args(&[]), &props(&[("acks", "2")])).is_err());
    }
}
