//! Client properties as Kafka's tools take them: `k=v` pairs after `--producer-props`
//! and properties files (`--producer.config`); later sources win.

use std::collections::BTreeMap;
use std::path::Path;

use super::PerfError;

/// Parsed client properties with typed getters that name the key on a bad value.
#[derive(Clone, Debug, Default)]
pub struct Props {
    values: BTreeMap<String, String>,
}

impl Props {
    /// Reads `file` (if any), then applies `pairs` (`key=value`).
    pub fn load(file: Option<&Path>, pairs: &[String]) -> Result<Props, PerfError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                PerfError::Usage(format!("cannot read {}: {error}", path.display()))
            })?;
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (key, value) = line.split_once(['=', ':']).ok_or_else(|| {
                    PerfError::Usage(format!("{}: bad line {line:?}", path.display()))
                })?;
                values.insert(key.trim().to_string(), value.trim().to_string());
            }
        }
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| PerfError::Usage(format!("expected key=value, got {pair:?}")))?;
            values.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(Props { values })
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    pub fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, PerfError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| {
                PerfError::Usage(format!("Invalid value {value} for configuration {key}"))
            }),
        }
    }

    pub fn boolean(&self, key: &str, default: bool) -> Result<bool, PerfError> {
        match self.get(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(value) => Err(PerfError::Usage(format!(
                "Invalid value {value} for configuration {key}: Expected value to be either true or false"
            ))),
        }
    }

    /// Keys not in `known`, in order, for Kafka's "supplied but isn't a known config".
    pub fn unknown(&self, known: &[&str]) -> Vec<String> {
        self.values
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_override_the_file_and_bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("producer.properties");
        std::fs::write(
            &file,
            "# comment\nacks=all\nlinger.ms = 7\nbatch.size: 100\n",
        )
        .unwrap();
        let props = Props::load(Some(&file), &["acks=1".to_string(), "x.y=z".to_string()]).unwrap();
        assert_eq!(props.get("acks"), Some("1"));
        assert_eq!(props.number::<u64>("linger.ms", 5).unwrap(), 7);
        assert_eq!(props.number::<u64>("batch.size", 5).unwrap(), 100);
        assert_eq!(props.number::<u64>("missing", 5).unwrap(), 5);
        assert_eq!(
            props.unknown(&["acks", "linger.ms", "batch.size"]),
            vec!["x.y"]
        );
        let error = Props::load(None, &["linger.ms=soon".into()])
            .unwrap()
            .number::<u64>("linger.ms", 0)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid value soon for configuration linger.ms"
        );
        assert!(Props::load(None, &["novalue".into()]).is_err());
    }
}
