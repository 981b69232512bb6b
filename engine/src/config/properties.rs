//! Java `.properties` parsing, as Kafka reads `server.properties`.

use std::collections::BTreeMap;

/// Parses `key=value`, `key: value` and `key value` lines; `#` and `!` start comments;
/// a trailing backslash continues a line. Later duplicates win, as in Java.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            continue;
        }
        logical.push_str(line);
        if let Some((key, value)) = split_pair(&logical) {
            out.insert(key, value);
        }
        logical.clear();
    }
    if let Some((key, value)) = split_pair(&logical) {
        out.insert(key, value);
    }
    out
}

/// Splits one logical line into key and value.
pub fn split_pair(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let split = line.find(['=', ':', ' ', '\t']).unwrap_or(line.len());
    let key = line[..split].trim().to_string();
    let mut rest = line[split..].trim_start();
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start();
    }
    Some((key, rest.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_server_properties_forms() {
        let parsed = parse(
            "# comment\n! also comment\nnode.id=1\nlog.dirs : /a,/b\nnum.partitions 3\n\
             listeners=PLAINTEXT://127.0.0.1:9092,\\\n   CONTROLLER://127.0.0.1:9093\nnode.id=2\n",
        );
        assert_eq!(parsed["node.id"], "2");
        assert_eq!(parsed["log.dirs"], "/a,/b");
        assert_eq!(parsed["num.partitions"], "3");
        assert_eq!(
            parsed["listeners"],
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
        );
        assert_eq!(parsed.len(), 4);
    }
}
