//! `weir metadata-quorum describe --status | --replication`: the metadata quorum as
//! `kafka-metadata-quorum.sh` shows it, from DescribeQuorum (and the cluster id from
//! Metadata).

use std::process::ExitCode;

use clap::Subcommand;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response;
use kafka_protocol::messages::{DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{BOOTSTRAP_DEFAULT, connect, fail};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  weir metadata-quorum describe --status\n  \
weir metadata-quorum --bootstrap-server localhost:9092 describe --replication --human-readable")]
pub struct Args {
    /// A broker to ask.
    #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Describe the metadata quorum.
    Describe {
        /// Leader, epoch, high watermark, follower lag and voters.
        #[arg(
            long,
            conflicts_with = "replication",
            required_unless_present = "replication"
        )]
        status: bool,
        /// One line per voter: log end offset, lag, last fetch and caught-up times.
        #[arg(long)]
        replication: bool,
        /// With --replication: times as "N ms ago".
        #[arg(long, requires = "replication")]
        human_readable: bool,
    },
}

/// Kafka's name for the metadata log's topic.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn run(args: Args) -> ExitCode {
    let Action::Describe {
        status,
        replication: _,
        human_readable,
    } = args.action;
    let mut client = match connect(&args.bootstrap_server, "metadata-quorum") {
        Ok(client) => client,
        Err(error) => return fail(error),
    };
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let response = match client.any().call(&request) {
        Ok((_, response)) => response,
        Err(error) => return fail(error),
    };
    if response.error_code != 0 {
        return fail(format!(
            "the broker answered DescribeQuorum with error code {}",
            response.error_code
        ));
    }
    let Some(partition) = response
        .topics
        .first()
        .and_then(|topic| topic.partitions.first())
    else {
        return fail("the broker's DescribeQuorum answer names no metadata partition");
    };
    if partition.error_code != 0 {
        return fail(format!(
            "the metadata quorum answered with error code {}",
            partition.error_code
        ));
    }
    let now_ms = weir_storage::now_ms();
    if status {
        let cluster_id = match client.metadata(Some(&[])) {
            Ok(metadata) => metadata
                .cluster_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            Err(error) => return fail(error),
        };
        print!("{}", render_status(&cluster_id, partition, now_ms));
    } else {
        print!("{}", render_replication(partition, now_ms, human_readable));
    }
    ExitCode::SUCCESS
}

fn leader_end_offset(partition: &describe_quorum_response::PartitionData) -> i64 {
    partition
        .current_voters
        .iter()
        .find(|voter| voter.replica_id == partition.leader_id)
        .map_or(-1, |voter| voter.log_end_offset)
}

/// kafka-metadata-quorum.sh's `describe --status` block.
pub fn render_status(
    cluster_id: &str,
    partition: &describe_quorum_response::PartitionData,
    now_ms: i64,
) -> String {
    let leader_end = leader_end_offset(partition);
    let followers = || {
        partition
            .current_voters
            .iter()
            .filter(|voter| voter.replica_id != partition.leader_id)
    };
    let max_lag = followers()
        .map(|voter| leader_end - voter.log_end_offset)
        .max()
        .unwrap_or(0);
    let max_lag_ms = followers()
        .map(|voter| now_ms - voter.last_caught_up_timestamp)
        .max()
        .unwrap_or(0);
    let ids = |voters: &[describe_quorum_response::ReplicaState]| {
        voters
            .iter()
            .map(|voter| voter.replica_id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {max_lag}\n\
         MaxFollowerLagTimeMs:   {max_lag_ms}\n\
         CurrentVoters:          [{}]\n\
         CurrentObservers:       [{}]\n",
        partition.leader_id.0,
        partition.leader_epoch,
        partition.high_watermark,
        ids(&partition.current_voters),
        ids(&partition.observers),
    )
}

/// kafka-metadata-quorum.sh's `describe --replication` table (tab-separated).
pub fn render_replication(
    partition: &describe_quorum_response::PartitionData,
    now_ms: i64,
    human: bool,
) -> String {
    let leader_end = leader_end_offset(partition);
    let time = |ms: i64| {
        if human {
            format!("{} ms ago", (now_ms - ms).max(0))
        } else {
            ms.to_string()
        }
    };
    let mut out = String::from(
        "NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus\n",
    );
    let rows = partition
        .current_voters
        .iter()
        .map(|voter| {
            (
                voter,
                if voter.replica_id == partition.leader_id {
                    "Leader"
                } else {
                    "Follower"
                },
            )
        })
        .chain(
            partition
                .observers
                .iter()
                .map(|observer| (observer, "Observer")),
        );
    for (replica, status) in rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{status}\n",
            replica.replica_id.0,
            replica.log_end_offset,
            (leader_end - replica.log_end_offset).max(0),
            time(replica.last_fetch_timestamp),
            time(replica.last_caught_up_timestamp),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn partition() -> describe_quorum_response::PartitionData {
        let voter = |id: i32, end: i64, caught_up: i64| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(end)
                .with_last_fetch_timestamp(caught_up)
                .with_last_caught_up_timestamp(caught_up)
        };
        describe_quorum_response::PartitionData::default()
            .with_leader_id(BrokerId(1))
            .with_leader_epoch(7)
            .with_high_watermark(40)
            .with_current_voters(vec![
                voter(1, 42, 1000),
                voter(2, 40, 900),
                voter(3, 30, 400),
            ])
    }

    #[test]
    fn status_shows_the_leader_and_the_worst_follower_lag() {
        let text = render_status("abc", &partition(), 1000);
        assert_eq!(
            text,
            "ClusterId:              abc\nLeaderId:               1\nLeaderEpoch:            7\n\
             HighWatermark:          40\nMaxFollowerLag:         12\nMaxFollowerLagTimeMs:   600\n\
             CurrentVoters:          [1,2,3]\nCurrentObservers:       []\n"
        );
    }

    #[test]
    fn replication_lists_every_voter_with_its_lag() {
        let text = render_replication(&partition(), 1000, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus"
        );
        assert_eq!(lines[1], "1\t42\t0\t0 ms ago\t0 ms ago\tLeader");
        assert_eq!(lines[3], "3\t30\t12\t600 ms ago\t600 ms ago\tFollower");
        assert_eq!(
            render_replication(&partition(), 1000, false).lines().nth(2),
            Some("2\t40\t2\t900\t900\tFollower")
        );
    }

    #[test]
    fn describe_needs_status_or_replication() {
        use crate::cli::test_support::parse_args;
        assert!(parse_args::<Args>("metadata-quorum", &["describe"]).is_err());
        assert!(
            parse_args::<Args>(
                "metadata-quorum",
                &["describe", "--status", "--replication"]
            )
            .is_err()
        );
        assert!(
            parse_args::<Args>(
                "metadata-quorum",
                &["describe", "--replication", "--human-readable"]
            )
            .is_ok()
        );
    }
}
