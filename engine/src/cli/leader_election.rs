//! `weir leader-election`: kafka-leader-election.sh over ElectLeaders.
//!
//! `--election-type PREFERRED|UNCLEAN` with `--all-topic-partitions` or
//! `--topic T --partition P`. Prints which partitions got a new leader, which already
//! had a valid one, and the errors; exits 1 when any partition failed.

use std::process::ExitCode;

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_net::client::error_name;

use super::{BOOTSTRAP_DEFAULT, connect, fail};

/// Kafka's ELECTION_NOT_NEEDED.
const ELECTION_NOT_NEEDED: i16 = 84;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  weir leader-election --election-type PREFERRED --all-topic-partitions\n  \
weir leader-election --election-type UNCLEAN --topic orders --partition 3"
)]
pub struct Args {
    /// A broker to ask.
    #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,
    /// PREFERRED (the first replica, if in sync) or UNCLEAN (any live replica of a
    /// partition without a leader; may lose data).
    #[arg(long, value_parser = ["PREFERRED", "UNCLEAN"], ignore_case = true)]
    pub election_type: String,
    /// Every partition of every topic.
    #[arg(long, conflicts_with_all = ["topic", "partition"], required_unless_present = "topic")]
    pub all_topic_partitions: bool,
    /// The topic of the one partition to elect for.
    #[arg(long, requires = "partition")]
    pub topic: Option<String>,
    /// The partition to elect for.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
}

pub fn run(args: Args) -> ExitCode {
    let unclean = args.election_type.eq_ignore_ascii_case("UNCLEAN");
    let label = if unclean { "UNCLEAN" } else { "PREFERRED" };
    let partitions = match (&args.topic, args.partition) {
        (Some(topic), Some(partition)) => Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![partition]),
        ]),
        _ => None,
    };
    let request = ElectLeadersRequest::default()
        .with_election_type(i8::from(unclean))
        .with_topic_partitions(partitions)
        .with_timeout_ms(30_000);
    let mut client = match connect(&args.bootstrap_server, "leader-election") {
        Ok(client) => client,
        Err(error) => return fail(error),
    };
    let response = match client.any().call(&request) {
        Ok((_, response)) => response,
        Err(error) => return fail(error),
    };
    if response.error_code != 0 {
        return fail(format!(
            "the broker refused the election: {}",
            error_name(response.error_code)
        ));
    }
    let (text, failed) = render(label, &response);
    print!("{text}");
    if failed > 0 {
        eprintln!("Error: {failed} replica(s) could not be elected");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// kafka-leader-election.sh's lines, and how many partitions failed.
pub fn render(label: &str, response: &ElectLeadersResponse) -> (String, usize) {
    let (mut elected, mut already, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for topic in &response.replica_election_results {
        for partition in &topic.partition_result {
            let name = format!("{}-{}", topic.topic.0, partition.partition_id);
            match partition.error_code {
                0 => elected.push(name),
                ELECTION_NOT_NEEDED => already.push(name),
                code => {
                    let message = partition
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    errors.push(format!("{name}: {} ({message})", error_name(code)));
                }
            }
        }
    }
    let mut out = String::new();
    if !elected.is_empty() {
        out.push_str(&format!(
            "Successfully completed leader election ({label}) for partitions {}\n",
            elected.join(", ")
        ));
    }
    if !already.is_empty() {
        out.push_str(&format!(
            "Valid replica already elected for partitions {}\n",
            already.join(", ")
        ));
    }
    for error in &errors {
        out.push_str(&format!(
            "Error completing leader election ({label}) for partition: {error}\n"
        ));
    }
    (out, errors.len())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };

    use super::*;

    #[test]
    fn each_outcome_gets_kafkas_line() {
        let result = |id: i32, code: i16| {
            PartitionResult::default()
                .with_partition_id(id)
                .with_error_code(code)
        };
        let response = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_result(vec![
                    result(0, 0),
                    result(1, 84),
                    result(2, 0),
                    result(3, 80),
                ]),
        ]);
        let (text, failed) = render("PREFERRED", &response);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Successfully completed leader election (PREFERRED) for partitions orders-0, orders-2"
        );
        assert_eq!(
            lines[1],
            "Valid replica already elected for partitions orders-1"
        );
        assert!(lines[2].starts_with("Error completing leader election (PREFERRED) for partition: orders-3: PREFERRED_LEADER_NOT_AVAILABLE"), "{}", lines[2]);
        assert_eq!(failed, 1);
    }

    #[test]
    fn a_target_is_required() {
        use crate::cli::test_support::parse_args;
        assert!(parse_args::<Args>("leader-election", &["--election-type", "PREFERRED"]).is_err());
        assert!(
            parse_args::<Args>(
                "leader-election",
                &["--election-type", "PREFERRED", "--topic", "t"]
            )
            .is_err()
        );
        assert!(
            parse_args::<Args>(
                "leader-election",
                &["--election-type", "preferred", "--all-topic-partitions"]
            )
            .is_ok()
        );
        assert!(
            parse_args::<Args>(
                "leader-election",
                &[
                    "--election-type",
                    "UNCLEAN",
                    "--topic",
                    "t",
                    "--partition",
                    "0"
                ]
            )
            .is_ok()
        );
    }
}
