//! The cluster keys, with Kafka's names and KRaft's rules: `process.roles`,
//! `controller.quorum.voters`, `controller.listener.names` and the controller listener
//! in `listeners`, plus the replication timings.
//!
//! ```text
//!  node.id=2
//!  process.roles=broker,controller           combined mode, the only mode weir runs
//!  listeners=PLAINTEXT://10.0.0.2:9092,CONTROLLER://10.0.0.2:9093
//!  controller.listener.names=CONTROLLER      which listener entry the quorum uses
//!  controller.quorum.voters=1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093
//!                                            node.id must be a voter, at its CONTROLLER port
//! ```
//!
//! Without `controller.quorum.voters` the node is a quorum of one (itself, at its
//! controller listener if it has one): a single broker needs no cluster keys at all.

use std::net::SocketAddr;

use super::broker::ConfigError;

/// Cluster keys and Kafka's defaults (merged into the broker's key table).
pub const CLUSTER_KEYS: &[(&str, Option<&str>)] = &[
    ("process.roles", Some("broker,controller")),
    ("controller.quorum.voters", None),
    ("controller.listener.names", Some("CONTROLLER")),
    ("controller.quorum.election.timeout.ms", Some("1000")),
    ("broker.session.timeout.ms", Some("9000")),
    ("broker.heartbeat.interval.ms", Some("2000")),
    ("replica.lag.time.max.ms", Some("30000")),
    ("replica.fetch.backoff.ms", Some("1000")),
    ("auto.leader.rebalance.enable", Some("true")),
    ("leader.imbalance.check.interval.seconds", Some("300")),
];

/// One member of the controller quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// The parsed cluster keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The quorum, this node included, sorted by id.
    pub voters: Vec<Voter>,
    /// Where this node's controller listener binds, if `listeners` has one.
    pub controller_listener: Option<SocketAddr>,
    pub election_timeout_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_backoff_ms: u64,
    pub unclean_leader_election: bool,
    /// auto.leader.rebalance.enable: the active controller moves leadership back to
    /// preferred replicas every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: u64,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl ClusterSettings {
    /// Whether more than this node votes (a replicated cluster).
    pub fn is_multi_node(&self) -> bool {
        self.voters.len() > 1
    }

    /// Parses the cluster keys; `get` answers a key's effective value (its default
    /// when unset), `listeners` is the raw `listeners` value.
    pub fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        node_id: i32,
    ) -> Result<ClusterSettings, ConfigError> {
        let text = |key: &str| get(key).unwrap_or_default();
        let roles_value = text("process.roles");
        let mut roles: Vec<&str> = roles_value
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        if let Some(unknown) = roles
            .iter()
            .find(|role| !matches!(**role, "broker" | "controller"))
        {
            return Err(invalid(
                "process.roles",
                &roles_value,
                format!("unknown role '{unknown}' (roles are broker and controller)"),
            ));
        }
        if roles != ["broker", "controller"] {
            return Err(invalid(
                "process.roles",
                &roles_value,
                "weir runs every node as broker and controller (combined mode); set process.roles=broker,controller",
            ));
        }
        let listener_name_value = text("controller.listener.names");
        let listener_name = listener_name_value
            .split(',')
            .map(str::trim)
            .find(|name| !name.is_empty())
            .ok_or_else(|| {
                invalid(
                    "controller.listener.names",
                    &listener_name_value,
                    "names no listener",
                )
            })?
            .to_string();
        if listener_name == "PLAINTEXT" {
            return Err(invalid(
                "controller.listener.names",
                &listener_name_value,
                "the controller listener must be separate from the client listener PLAINTEXT",
            ));
        }
        let listeners = text("listeners");
        let controller_listener = controller_listener(&listeners, &listener_name)?;
        let voters_value = get("controller.quorum.voters");
        let voters = match &voters_value {
            Some(value) => parse_voters(value)?,
            None => vec![Voter {
                id: node_id,
                host: controller_listener
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default(),
                port: controller_listener.map_or(0, |a| a.port()),
            }],
        };
        if let Some(value) = &voters_value {
            let Some(me) = voters.iter().find(|voter| voter.id == node_id) else {
                return Err(invalid(
                    "controller.quorum.voters",
                    value,
                    format!(
                        "node.id {node_id} is not one of the voters (in combined mode every node votes)"
                    ),
                ));
            };
            match controller_listener {
                None => {
                    return Err(invalid(
                        "listeners",
                        &listeners,
                        format!(
                            "a voter needs a {listener_name}://host:port entry (controller.listener.names) for the quorum"
                        ),
                    ));
                }
                Some(address) if address.port() != me.port => {
                    return Err(invalid(
                        "controller.quorum.voters",
                        value,
                        format!(
                            "node {node_id} is listed at port {}, but its {listener_name} listener is on port {}",
                            me.port,
                            address.port()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let positive = |key: &str| -> Result<u64, ConfigError> {
            let value = text(key);
            match value.parse::<u64>() {
                Ok(number) if number > 0 => Ok(number),
                _ => Err(invalid(
                    key,
                    &value,
                    "must be a positive number of milliseconds",
                )),
            }
        };
        let boolean = |key: &str| -> Result<bool, ConfigError> {
            let value = text(key);
            match value.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(key, &value, "must be true or false")),
            }
        };
        let unclean_leader_election = boolean("unclean.leader.election.enable")?;
        let auto_leader_rebalance = boolean("auto.leader.rebalance.enable")?;
        let interval_value = text("leader.imbalance.check.interval.seconds");
        let leader_imbalance_check_interval_ms = match interval_value.parse::<u64>() {
            Ok(seconds) if seconds > 0 => seconds * 1000,
            _ => {
                return Err(invalid(
                    "leader.imbalance.check.interval.seconds",
                    &interval_value,
                    "must be a positive number of seconds",
                ));
            }
        };
        let settings = ClusterSettings {
            voters,
            controller_listener,
            election_timeout_ms: positive("controller.quorum.election.timeout.ms")?,
            broker_session_timeout_ms: positive("broker.session.timeout.ms")?,
            broker_heartbeat_interval_ms: positive("broker.heartbeat.interval.ms")?,
            replica_lag_time_max_ms: positive("replica.lag.time.max.ms")?,
            replica_fetch_backoff_ms: positive("replica.fetch.backoff.ms")?,
            unclean_leader_election,
            auto_leader_rebalance,
            leader_imbalance_check_interval_ms,
        };
        if settings.broker_heartbeat_interval_ms >= settings.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                &settings.broker_heartbeat_interval_ms.to_string(),
                "must be below broker.session.timeout.ms, or every broker is fenced between heartbeats",
            ));
        }
        Ok(settings)
    }
}

/// The address of the `name://host:port` entry of `listeners`, if there is one.
fn controller_listener(listeners: &str, name: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let prefix = format!("{name}://");
    let Some(entry) = listeners
        .split(',')
        .map(str::trim)
        .find(|entry| entry.starts_with(&prefix))
    else {
        return Ok(None);
    };
    let address = &entry[prefix.len()..];
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("listeners", listeners, format!("{name} needs host:port")))?;
    let host = match host.trim_matches(['[', ']']) {
        "" | "localhost" => "127.0.0.1",
        host => host,
    };
    let parsed = format!("{host}:{port}")
        .parse::<SocketAddr>()
        .or_else(|_| format!("[{host}]:{port}").parse::<SocketAddr>())
        .map_err(|_| {
            invalid(
                "listeners",
                listeners,
                format!("{name}'s host must be an IP address and its port a number"),
            )
        })?;
    Ok(Some(parsed))
}

/// `id@host:port,...` (Kafka's `controller.quorum.voters`), sorted by id.
fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || invalid(key, value, format!("'{entry}' is not id@host:port"));
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        let port: u16 = port.trim().parse().map_err(|_| bad())?;
        if id < 0 || host.is_empty() {
            return Err(bad());
        }
        if voters.iter().any(|voter: &Voter| voter.id == id) {
            return Err(invalid(key, value, format!("node {id} is listed twice")));
        }
        voters.push(Voter {
            id,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        });
    }
    if voters.is_empty() {
        return Err(invalid(key, value, "names no voter"));
    }
    voters.sort_by_key(|voter| voter.id);
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)], node_id: i32) -> Result<ClusterSettings, ConfigError> {
        let mut keys: BTreeMap<String, String> = CLUSTER_KEYS
            .iter()
            .filter_map(|(key, default)| default.map(|d| (key.to_string(), d.to_string())))
            .collect();
        keys.insert("listeners".into(), "PLAINTEXT://127.0.0.1:9092".into());
        keys.insert("unclean.leader.election.enable".into(), "false".into());
        for (key, value) in pairs {
            keys.insert(key.to_string(), value.to_string());
        }
        ClusterSettings::parse(&|key| keys.get(key).cloned(), node_id)
    }

    fn reason(result: Result<ClusterSettings, ConfigError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn no_cluster_keys_make_a_quorum_of_one_without_a_controller_listener() {
        let settings = parse(&[], 0).expect("defaults");
        assert_eq!(
            settings.voters,
            vec![Voter {
                id: 0,
                host: String::new(),
                port: 0
            }]
        );
        assert_eq!(settings.controller_listener, None);
        assert!(!settings.is_multi_node());
        assert_eq!(
            (
                settings.replica_lag_time_max_ms,
                settings.broker_session_timeout_ms
            ),
            (30_000, 9_000)
        );
    }

    #[test]
    fn a_three_voter_quorum_with_this_node_at_its_controller_listener() {
        let settings = parse(
            &[
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
                ),
                (
                    "controller.quorum.voters",
                    "3@127.0.0.1:9393,1@127.0.0.1:9193,2@127.0.0.1:9293",
                ),
            ],
            1,
        )
        .expect("valid");
        let ids: Vec<i32> = settings.voters.iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(
            settings.controller_listener,
            Some("127.0.0.1:9193".parse().expect("address"))
        );
        assert!(settings.is_multi_node());
    }

    #[test]
    fn a_node_outside_the_voters_or_at_another_port_is_refused() {
        let listeners = (
            "listeners",
            "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
        );
        let outside = reason(parse(
            &[listeners, ("controller.quorum.voters", "1@h:9193,2@h:9293")],
            5,
        ));
        assert!(
            outside.contains("node.id 5 is not one of the voters"),
            "{outside}"
        );
        let port = reason(parse(
            &[listeners, ("controller.quorum.voters", "1@h:9999,2@h:9293")],
            1,
        ));
        assert!(
            port.contains("port 9999") && port.contains("9193"),
            "{port}"
        );
        let none = reason(parse(
            &[("controller.quorum.voters", "1@h:9193,2@h:9293")],
            1,
        ));
        assert!(none.contains("CONTROLLER://host:port"), "{none}");
    }

    #[test]
    fn malformed_voters_and_roles_get_clear_errors() {
        let listeners = (
            "listeners",
            "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
        );
        for (voters, expected) in [
            ("1@h", "is not id@host:port"),
            ("x@h:1", "is not id@host:port"),
            ("1@h:9193,1@g:9193", "listed twice"),
            (" , ", "names no voter"),
        ] {
            let message = reason(parse(&[listeners, ("controller.quorum.voters", voters)], 1));
            assert!(message.contains(expected), "{voters}: {message}");
        }
        assert!(reason(parse(&[("process.roles", "broker")], 1)).contains("combined mode"));
        assert!(
            reason(parse(&[("process.roles", "broker,zookeeper")], 1)).contains("unknown role")
        );
        let same = reason(parse(&[("controller.listener.names", "PLAINTEXT")], 1));
        assert!(same.contains("separate from the client listener"), "{same}");
        let fast = reason(parse(&[("broker.heartbeat.interval.ms", "9000")], 1));
        assert!(fast.contains("below broker.session.timeout.ms"), "{fast}");
    }
}
