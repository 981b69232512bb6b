//! Parsing of `weir topics` arguments the way Kafka's `TopicCommand` reads them:
//! `--topic` patterns, `--config` pairs, `--replica-assignment` lists.

/// `--replica-assignment`: replica broker ids per partition, in partition order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAssignment(pub Vec<Vec<i32>>);

/// Kafka's `TopicFilter.IncludeList`: a regular expression over whole topic names,
/// after Kafka's clean-up (trimmed, commas become `|`, spaces and surrounding quotes
/// dropped).
#[derive(Debug)]
pub struct TopicFilter {
    pattern: regex::Regex,
}

impl TopicFilter {
    pub fn new(raw: &str) -> Result<TopicFilter, String> {
        let cleaned = raw.trim().replace(',', "|").replace(' ', "");
        let cleaned = cleaned
            .trim_start_matches(['"', '\''])
            .trim_end_matches(['"', '\'']);
        regex::Regex::new(&format!("^(?:{cleaned})$"))
            .map(|pattern| TopicFilter { pattern })
            .map_err(|_| format!("{cleaned} is an invalid regex."))
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.pattern.is_match(topic)
    }
}

/// Kafka's `Topic.hasCollisionChars`: names with `.` or `_` can collide in metric names.
pub fn has_collision_chars(topic: &str) -> bool {
    topic.contains('.') || topic.contains('_')
}

/// `--config` for `--create`: Kafka splits at `=` (spaces around it dropped) and wants
/// exactly a key and a value.
pub fn parse_topic_config(text: &str) -> Result<(String, String), String> {
    let mut pieces: Vec<&str> = text.split('=').map(str::trim).collect();
    // Java's String.split drops trailing empty strings.
    while pieces.len() > 1 && pieces.last().is_some_and(|piece| piece.is_empty()) {
        pieces.pop();
    }
    match pieces.as_slice() {
        [key, value] if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(
            "Invalid topic config: all configs to be added must be in the format \"key=val\"."
                .to_string(),
        ),
    }
}

/// `--replica-assignment 0:1,1:2`: partitions separated by commas, their replicas by
/// colons; every partition has the same replica count and no broker twice.
pub fn parse_replica_assignment(text: &str) -> Result<ReplicaAssignment, String> {
    let mut partitions: Vec<Vec<i32>> = Vec::new();
    for (partition, replicas) in text.split(',').enumerate() {
        let brokers = replicas
            .split(':')
            .map(|broker| {
                broker
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| format!("'{}' is not a broker id", broker.trim()))
            })
            .collect::<Result<Vec<i32>, String>>()?;
        let mut duplicates: Vec<i32> = brokers
            .iter()
            .enumerate()
            .filter(|(index, broker)| brokers[..*index].contains(broker))
            .map(|(_, broker)| *broker)
            .collect();
        duplicates.dedup();
        if !duplicates.is_empty() {
            let listed: Vec<String> = duplicates.iter().map(i32::to_string).collect();
            return Err(format!(
                "Partition replica lists may not contain duplicate entries: {}",
                listed.join(",")
            ));
        }
        if partitions
            .first()
            .is_some_and(|first| first.len() != brokers.len())
        {
            let listed: Vec<String> = brokers.iter().map(i32::to_string).collect();
            return Err(format!(
                "Partition {partition} has different replication factor: [{}]",
                listed.join(", ")
            ));
        }
        partitions.push(brokers);
    }
    Ok(ReplicaAssignment(partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filter_matches_whole_names_as_kafkas_include_list() {
        let filter = TopicFilter::new("orders").expect("valid");
        assert!(filter.matches("orders"));
        assert!(!filter.matches("orders-eu"));
        assert!(!filter.matches("old-orders"));
        let dotted = TopicFilter::new("test.topic").expect("valid");
        assert!(dotted.matches("test.topic") && dotted.matches("test_topic"));
        let escaped = TopicFilter::new("test\\.topic").expect("valid");
        assert!(escaped.matches("test.topic") && !escaped.matches("test_topic"));
        let listed = TopicFilter::new(" 'a, b' ").expect("valid");
        assert!(listed.matches("a") && listed.matches("b") && !listed.matches("a,b"));
        let pattern = TopicFilter::new("orders-.*").expect("valid");
        assert!(pattern.matches("orders-eu") && !pattern.matches("orders"));
        assert_eq!(
            TopicFilter::new("bad(").expect_err("unbalanced"),
            "bad( is an invalid regex."
        );
    }

    #[test]
    fn topic_configs_need_exactly_one_key_and_value() {
        assert_eq!(
            parse_topic_config("retention.ms = 1000"),
            Ok(("retention.ms".to_string(), "1000".to_string()))
        );
        assert_eq!(
            parse_topic_config("cleanup.policy=compact="),
            Ok(("cleanup.policy".to_string(), "compact".to_string()))
        );
        for bad in ["retention.ms", "retention.ms=", "a=b=c", "=1"] {
            let error = parse_topic_config(bad).expect_err(bad);
            assert!(error.contains("\"key=val\""), "{bad}: {error}");
        }
    }

    #[test]
    fn replica_assignments_parse_per_partition_and_are_checked() {
        assert_eq!(
            parse_replica_assignment("0:1, 1:2 ,2:0"),
            Ok(ReplicaAssignment(vec![vec![0, 1], vec![1, 2], vec![2, 0]]))
        );
        assert_eq!(
            parse_replica_assignment("0:0:1"),
            Err("Partition replica lists may not contain duplicate entries: 0".to_string())
        );
        assert_eq!(
            parse_replica_assignment("0:1,2"),
            Err("Partition 1 has different replication factor: [2]".to_string())
        );
        assert_eq!(
            parse_replica_assignment("0:x"),
            Err("'x' is not a broker id".to_string())
        );
    }

    #[test]
    fn collision_warning_is_for_dots_and_underscores() {
        assert!(has_collision_chars("a.b") && has_collision_chars("a_b"));
        assert!(!has_collision_chars("a-b"));
    }
}
