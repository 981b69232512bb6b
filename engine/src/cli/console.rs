//! Settings plumbing shared by `weir produce` and `weir consume`: Kafka's client
//! property maps (a `*.config` file, then `--*-property key=value` flags on top) and
//! the value syntax Kafka's console tools accept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::properties;

/// A client property map: key → value, later sources winning.
pub type Properties = BTreeMap<String, String>;

/// Reads `file` (Java `.properties`, as `--producer.config`/`--consumer.config`) if
/// given, then applies `pairs` on top, as Kafka's tools do.
pub fn load_properties(
    file: Option<&Path>,
    pairs: &[(String, String)],
) -> Result<Properties, String> {
    let mut out = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            properties::parse(&text)
        }
        None => Properties::new(),
    };
    for (key, value) in pairs {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// Kafka's console tools read booleans as `value.trim().equalsIgnoreCase("true")`.
pub fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// A strict boolean for client configs (`enable.idempotence`, `enable.auto.commit`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key} must be true or false, got '{value}'")),
    }
}

/// A non-negative number of `key`.
pub fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| format!("{key} must be a non-negative number, got '{value}'"))
}

/// Milliseconds of `key` as a duration.
pub fn parse_ms(key: &str, value: &str) -> Result<Duration, String> {
    parse_number::<u64>(key, value).map(Duration::from_millis)
}

/// Warns on stderr about keys neither understood nor known to be irrelevant here, as
/// Kafka logs "The configuration 'x' was supplied but isn't a known config".
pub fn warn_unknown(properties: &Properties, understood: &[&str], ignored: &[&str]) {
    for key in properties.keys() {
        if !understood.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
            eprintln!("Warning: the configuration '{key}' was supplied but isn't a known config.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_properties_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.properties");
        std::fs::write(&path, "acks=1\nlinger.ms = 7\n# comment\n").expect("write");
        let loaded = load_properties(Some(&path), &[("acks".to_string(), "all".to_string())])
            .expect("loads");
        assert_eq!(loaded["acks"], "all");
        assert_eq!(loaded["linger.ms"], "7");
        let missing = load_properties(Some(&dir.path().join("missing")), &[]);
        assert!(missing.expect_err("no file").contains("missing"));
    }

    #[test]
    fn booleans_and_numbers_parse_as_kafka_reads_them() {
        assert!(is_true(" TRUE "));
        assert!(!is_true("yes"));
        assert_eq!(parse_bool("k", "False"), Ok(false));
        assert!(parse_bool("k", "1").is_err());
        assert_eq!(parse_number::<u32>("k", "42"), Ok(42));
        assert!(parse_number::<u32>("k", "-1").is_err());
        assert_eq!(parse_ms("k", "1500"), Ok(Duration::from_millis(1500)));
    }
}
