//! Parsing of `weir configs` arguments the way Kafka's `ConfigCommand` reads them:
//! `--add-config` pairs with `[a,b]` values, `--add-config-file` properties, topic names.

/// Kafka's longest legal topic name.
const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// Kafka's `Topic.validate`, which `kafka-configs.sh` applies to topic names.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_LENGTH_MAX} characters, \
             topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character))
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII \
             alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Kafka's `--add-config` syntax: pairs separated by commas outside square brackets,
/// each `key=value` (one `=` outside brackets); brackets are removed from values,
/// which are trimmed. A later pair for the same key wins.
pub fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pieces = split_outside_brackets(text, ',');
    // Java's String.split drops trailing empty strings.
    while pieces.len() > 1 && pieces.last().is_some_and(|piece| piece.is_empty()) {
        pieces.pop();
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in pieces {
        let [key, value] = split_outside_brackets(piece, '=')[..] else {
            return Err(
                "Invalid entity config: all configs to be added must be in the format \"key=val\"."
                    .to_string(),
            );
        };
        let key = key.trim().to_string();
        let value = value.replace(['[', ']'], "").trim().to_string();
        match pairs.iter_mut().find(|(existing, _)| *existing == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key, value)),
        }
    }
    Ok(pairs)
}

/// Splits at `separator` where Kafka's `(?=[^\]]*(?:\[|$))` lookahead allows it: the
/// next bracket after the separator is an opening one, or there is none.
fn split_outside_brackets(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, character) in text.char_indices() {
        if character != separator {
            continue;
        }
        let rest = &text[index + 1..];
        let outside = rest
            .chars()
            .find(|next| *next == '[' || *next == ']')
            .is_none_or(|next| next == '[');
        if outside {
            pieces.push(&text[start..index]);
            start = index + 1;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// A Java properties file, simply: `key=value` or `key: value` lines, `#` and `!`
/// comments (no line continuations or escapes).
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = match line.find(['=', ':']) {
            Some(index) => (&line[..index], &line[index + 1..]),
            None => (line, ""),
        };
        let (key, value) = (key.trim().to_string(), value.trim().to_string());
        match pairs.iter_mut().find(|(existing, _)| *existing == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key, value)),
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn add_config_splits_at_commas_outside_brackets_as_kafka() {
        assert_eq!(
            parse_add_config("k1=v1,k2=[v1,v2,v2],k3=v3"),
            Ok(pairs(&[("k1", "v1"), ("k2", "v1,v2,v2"), ("k3", "v3")]))
        );
        assert_eq!(
            parse_add_config(" retention.ms = 1000 ,"),
            Ok(pairs(&[("retention.ms", "1000")]))
        );
        assert_eq!(
            parse_add_config("ssl.endpoint.identification.algorithm="),
            Ok(pairs(&[("ssl.endpoint.identification.algorithm", "")]))
        );
        assert_eq!(
            parse_add_config("a=1,a=2"),
            Ok(pairs(&[("a", "2")])),
            "a later value wins"
        );
        assert_eq!(
            parse_add_config("k=[a=b]"),
            Ok(pairs(&[("k", "a=b")])),
            "an equals sign inside brackets is part of the value"
        );
        for bad in ["novalue", "a=b=c", "a=1,,b=2"] {
            let error = parse_add_config(bad).expect_err(bad);
            assert!(error.starts_with("Invalid entity config"), "{bad}: {error}");
        }
    }

    #[test]
    fn properties_files_read_as_key_value_lines() {
        let text = "# comment\n! also\n\nretention.ms=1000\ncleanup.policy : compact\nretention.ms = 2000\n";
        assert_eq!(
            parse_properties(text),
            pairs(&[("retention.ms", "2000"), ("cleanup.policy", "compact")])
        );
    }

    #[test]
    fn topic_names_are_validated_as_kafka() {
        assert!(validate_topic_name("orders-2024_eu.v1").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
