//! The agent report: the body of `POST /api/v1/reports`, the agent report contract.
//!
//! Serde does the parsing (addresses are [`IpAddr`], ports `u16`, protocol and scope
//! closed enums); [`AgentReport::validate`] then checks what types cannot: sizes, empty
//! strings, port zero. Its error names the bad field the way the API answers it
//! (`sockets[3].port`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One report from a host agent: the host and every socket listening on it or in one of
/// its network namespaces (containers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The agent that collected the report.
    pub agent: AgentInfo,
    /// When the agent collected it (the agent's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// The host the sockets belong to.
    pub host: HostInfo,
    /// Listening sockets, wildcard binds already expanded in `reachable`.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_SOCKETS>")]
    pub sockets: Vec<SocketInfo>,
    /// The agent's own probes of its sockets (`agent.probe_local`), each in the probe JSON
    /// contract; absent from reports of agents that do not probe (see
    /// [`AgentReport::check_probes`]).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::bounded::vec::<_, _, { crate::report_probes::MAX_PROBES }>"
    )]
    pub probes: Vec<crate::ProbeResult>,
}

/// About the agent program itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's version, e.g. `0.1.0`.
    pub version: String,
}

/// The identity of the reporting host and the workload tags that decide ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The host's name as it knows itself.
    pub hostname: String,
    /// `/etc/machine-id` or the platform's equivalent; the host's stable key when set.
    #[serde(default)]
    pub machine_id: String,
    /// The host's own (non-loopback) addresses.
    #[serde(
        default,
        deserialize_with = "crate::bounded::vec::<_, _, MAX_ADDRESSES>"
    )]
    pub addresses: Vec<IpAddr>,
    /// Workload tags; `app`, `env` and `owner` are the ones certfleet reads.
    #[serde(default, deserialize_with = "crate::bounded::map::<_, _, MAX_TAGS>")]
    pub tags: BTreeMap<String, String>,
    /// The addresses of the host's other network namespaces (containers). With
    /// `addresses`, the only addresses its sockets may claim (see
    /// [`AgentReport::check_addresses`]).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::bounded::vec::<_, _, MAX_SOCKETS>"
    )]
    pub namespace_addresses: Vec<IpAddr>,
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketInfo {
    /// The address the socket is bound to (possibly a wildcard, `0.0.0.0` or `::`).
    pub address: IpAddr,
    /// The listening port, never 0.
    pub port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Inode number of the socket's network namespace, when known.
    #[serde(default)]
    pub netns: Option<u64>,
    /// Name of the listening process (`comm`), never its command line.
    #[serde(default)]
    pub process: Option<String>,
    /// Container name or id, when the socket lives in a container.
    #[serde(default)]
    pub container: Option<String>,
    /// The addresses the socket can be reached at from other machines.
    #[serde(
        default,
        deserialize_with = "crate::bounded::vec::<_, _, MAX_ADDRESSES>"
    )]
    pub reachable: Vec<IpAddr>,
    /// Where the socket can be reached from.
    pub scope: SocketScope,
    /// The socket's own workload tags (its container's, from the container runtime's
    /// labels and annotations): they replace the host's tags of the same name for this
    /// socket. Bounded like the host's tags, with fewer entries (see
    /// [`ReportLimits::max_socket_tags`]).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::bounded::map::<_, _, MAX_SOCKET_TAGS>"
    )]
    pub tags: BTreeMap<String, String>,
}

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP: the only protocol certfleet probes.
    Tcp,
    /// UDP (QUIC, DTLS): reported, not probed.
    Udp,
}

/// Where a socket can be reached from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketScope {
    /// Bound to a non-loopback or wildcard address: reachable from other machines.
    Host,
    /// Bound to loopback only: not probed from the centre.
    Loopback,
}

/// Size limits of a report. [`ReportLimits::default`] is what the server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Sockets in one report.
    pub max_sockets: usize,
    /// Addresses of the host, and `reachable` addresses of one socket.
    pub max_addresses: usize,
    /// Tags of the host.
    pub max_tags: usize,
    /// Tags of one socket. Fewer than the host's: a report may hold 20,000 sockets, and
    /// 64 tags on each would let one 16 MiB body cost over 100 MiB once parsed.
    pub max_socket_tags: usize,
    /// Bytes of any one string (hostname, tag key or value, process, container, ...).
    pub max_string: usize,
    /// Distinct (address, port) endpoints one report may stand for.
    pub max_endpoints: usize,
}

/// The default limits, also the bounds while a report is parsed (see `bounded`).
const MAX_SOCKETS: usize = 20_000;
const MAX_ADDRESSES: usize = 256;
const MAX_TAGS: usize = 64;
const MAX_SOCKET_TAGS: usize = 16;

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_sockets: MAX_SOCKETS,
            max_addresses: MAX_ADDRESSES,
            max_tags: MAX_TAGS,
            max_socket_tags: MAX_SOCKET_TAGS,
            max_string: 512,
            max_endpoints: 20_000,
        }
    }
}

/// Why a report was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    /// The path of the bad field, e.g. `sockets[3].port` or `host.tags.app`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ReportError {}

impl AgentReport {
    /// Checks the report against [`ReportLimits::default`].
    pub fn validate(&self) -> Result<(), ReportError> {
        self.validate_with(&ReportLimits::default())
    }

    /// Checks the report against the given limits; the first bad field is named.
    pub fn validate_with(&self, limits: &ReportLimits) -> Result<(), ReportError> {
        let check = Checker { limits };
        at(check.required(&self.agent.version), || "agent.version")?;
        at(check.required(&self.host.hostname), || "host.hostname")?;
        at(check.string(&self.host.machine_id), || "host.machine_id")?;
        let addresses = self.host.addresses.len();
        at(check.count(addresses, limits.max_addresses), || {
            "host.addresses"
        })?;
        // One or two per container: bounded like the sockets.
        let namespace_addresses = self.host.namespace_addresses.len();
        at(check.count(namespace_addresses, limits.max_sockets), || {
            "host.namespace_addresses"
        })?;
        at(check.count(self.host.tags.len(), limits.max_tags), || {
            "host.tags"
        })?;
        for (key, value) in &self.host.tags {
            at(check.required(key), || format!("host.tags.{key}"))?;
            at(check.string(value), || format!("host.tags.{key}"))?;
        }
        at(check.count(self.sockets.len(), limits.max_sockets), || {
            "sockets"
        })?;
        for (index, socket) in self.sockets.iter().enumerate() {
            // Named only when a check fails: a report holds up to 20,000 sockets, and
            // formatting every field's name cost 3% of ingest's CPU.
            let field = |name: &str| format!("sockets[{index}].{name}");
            if socket.port == 0 {
                return Err(bad(field("port"), "must be between 1 and 65535"));
            }
            let reachable = socket.reachable.len();
            at(check.count(reachable, limits.max_addresses), || {
                field("reachable")
            })?;
            if let Some(process) = &socket.process {
                at(check.string(process), || field("process"))?;
            }
            if let Some(container) = &socket.container {
                at(check.string(container), || field("container"))?;
            }
            let tags = socket.tags.len();
            at(check.count(tags, limits.max_socket_tags), || field("tags"))?;
            for (key, value) in &socket.tags {
                at(check.required(key), || field(&format!("tags.{key}")))?;
                at(check.string(value), || field(&format!("tags.{key}")))?;
            }
        }
        Ok(())
    }

    /// The key the store knows the host by: its machine id, or `hostname:<name>` when it
    /// has none. A token bound to a host accepts only reports with this key.
    pub fn host_key(&self) -> String {
        match self.host.machine_id.trim() {
            "" => format!("hostname:{}", self.host.hostname),
            machine_id => machine_id.to_owned(),
        }
    }

    /// An agent speaks only for its own host: every address a socket is bound to or
    /// reachable at must be one of the host's (`host.addresses` or
    /// `host.namespace_addresses`), and the report stands for at most
    /// `limits.max_endpoints` endpoints. The first foreign address is named.
    pub fn check_addresses(&self, limits: &ReportLimits) -> Result<(), ReportError> {
        let own: HashSet<IpAddr> = self
            .host
            .addresses
            .iter()
            .chain(&self.host.namespace_addresses)
            .copied()
            .collect();
        let foreign = "not an address of this host (host.addresses, host.namespace_addresses)";
        let mut endpoints = HashSet::new();
        for (index, socket) in self.sockets.iter().enumerate() {
            if socket.scope != SocketScope::Host {
                continue;
            }
            let bound = socket.address;
            if !bound.is_unspecified() && !bound.is_loopback() && !own.contains(&bound) {
                return Err(bad(format!("sockets[{index}].address"), foreign));
            }
            for (position, address) in socket.reachable.iter().enumerate() {
                // A wildcard is no destination (never an endpoint), so claims nothing.
                if !address.is_unspecified() && !own.contains(address) {
                    return Err(bad(
                        format!("sockets[{index}].reachable[{position}]"),
                        foreign,
                    ));
                }
            }
            for address in socket.probe_addresses() {
                endpoints.insert((address, socket.port));
            }
            if endpoints.len() > limits.max_endpoints {
                let message = format!("more than {} endpoints", limits.max_endpoints);
                return Err(bad("sockets".to_owned(), message));
            }
        }
        Ok(())
    }

    /// The host's value of a tag, when set and not empty.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.host
            .tags
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// A socket's value of a tag: the socket's own (its container's) when it has one,
    /// else the host's; `None` when unset or empty. An empty socket tag does not clear
    /// the host's.
    pub fn socket_tag<'a>(&'a self, socket: &'a SocketInfo, key: &str) -> Option<&'a str> {
        socket
            .tags
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
            .or_else(|| self.tag(key))
    }
}

impl SocketInfo {
    /// The addresses a central prober should try for this socket: none for loopback-scoped
    /// or UDP sockets; otherwise `reachable`, or the bound address itself when that is not
    /// a wildcard. Loopback addresses listed as reachable are kept: whether the prober may
    /// go there is `probe.allow`'s decision (it excludes 127.0.0.0/8 by default), and the
    /// end-to-end tests need it.
    pub fn probe_addresses(&self) -> Vec<IpAddr> {
        if self.scope == SocketScope::Loopback || self.protocol != Protocol::Tcp {
            return Vec::new();
        }
        let candidates = if self.reachable.is_empty() {
            vec![self.address]
        } else {
            self.reachable.clone()
        };
        candidates
            .into_iter()
            .filter(|address| !address.is_unspecified())
            .collect()
    }
}

struct Checker<'a> {
    limits: &'a ReportLimits,
}

/// What is wrong with a value, if anything; [`at`] names the field.
impl Checker<'_> {
    fn required(&self, value: &str) -> Result<(), String> {
        if value.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        self.string(value)
    }

    fn string(&self, value: &str) -> Result<(), String> {
        if value.len() > self.limits.max_string {
            return Err(format!("longer than {} bytes", self.limits.max_string));
        }
        if value.chars().any(char::is_control) {
            return Err("contains control characters".to_owned());
        }
        Ok(())
    }

    fn count(&self, count: usize, max: usize) -> Result<(), String> {
        if count > max {
            return Err(format!("more than {max} entries"));
        }
        Ok(())
    }
}

/// A failed check as the error naming its field, the name worked out only then.
fn at<F: Into<String>>(
    checked: Result<(), String>,
    field: impl FnOnce() -> F,
) -> Result<(), ReportError> {
    checked.map_err(|message| bad(field().into(), message))
}

fn bad(field: String, message: impl Into<String>) -> ReportError {
    ReportError {
        field,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"{"agent":{"version":"0.1.0"},"collected_at":"2026-11-27T10:00:00Z",
 "host":{"hostname":"i-0abc","machine_id":"5f1c","addresses":["10.0.0.5"],
         "tags":{"app":"billing","env":"prod","owner":"billing-team@example.com"}},
 "sockets":[{"address":"0.0.0.0","port":8443,"protocol":"tcp","netns":4026531840,
             "process":"java","container":null,"reachable":["10.0.0.5"],"scope":"host"}]}"#;

    fn example() -> AgentReport {
        serde_json::from_str(CONTRACT_EXAMPLE).expect("the contract example parses")
    }

    #[test]
    fn contract_example_parses_and_validates() {
        let report = example();
        assert_eq!(report.validate(), Ok(()));
        assert_eq!(report.tag("app"), Some("billing"));
        assert_eq!(
            report.sockets[0].probe_addresses(),
            vec![report.host.addresses[0]]
        );
    }

    #[test]
    fn validation_names_the_bad_socket_field() {
        let mut report = example();
        let socket = report.sockets[0].clone();
        report.sockets = vec![socket; 4];
        report.sockets[3].port = 0;
        let error = report.validate().expect_err("port 0 is refused");
        assert_eq!(error.field, "sockets[3].port");
    }

    #[test]
    fn validation_names_each_kind_of_bad_field_with_its_message() {
        let mut report = example();
        let socket = report.sockets[0].clone();
        report.sockets = vec![socket; 2];
        report.sockets[1]
            .tags
            .insert("app".into(), "a\u{7}b".into());
        let error = report
            .validate()
            .expect_err("a control character is refused");
        assert_eq!(
            error.to_string(),
            "sockets[1].tags.app: contains control characters"
        );
        report.sockets[1].tags.clear();
        report.sockets[0].process = Some("p".repeat(513));
        let error = report
            .validate()
            .expect_err("a long process name is refused");
        assert_eq!(
            error.to_string(),
            "sockets[0].process: longer than 512 bytes"
        );
        report.sockets[0].process = None;
        report.host.tags.insert(String::new(), "x".into());
        let error = report.validate().expect_err("an empty tag key is refused");
        assert_eq!(error.to_string(), "host.tags.: must not be empty");
    }

    #[test]
    fn validation_refuses_too_many_sockets_and_empty_hostname() {
        let mut report = example();
        let limits = ReportLimits {
            max_sockets: 1,
            ..ReportLimits::default()
        };
        report.sockets.push(report.sockets[0].clone());
        assert_eq!(
            report.validate_with(&limits).map_err(|e| e.field),
            Err("sockets".into())
        );
        report.host.hostname = " ".into();
        assert_eq!(
            report.validate().map_err(|e| e.field),
            Err("host.hostname".into())
        );
    }

    #[test]
    fn sockets_may_claim_only_the_hosts_own_addresses() {
        let mut report = example();
        assert_eq!(report.check_addresses(&ReportLimits::default()), Ok(()));
        report.sockets[0].reachable = vec!["10.9.9.9".parse().expect("literal")];
        let error = report
            .check_addresses(&ReportLimits::default())
            .expect_err("a foreign address is refused");
        assert_eq!(error.field, "sockets[0].reachable[0]");
        report.host.namespace_addresses = vec!["10.9.9.9".parse().expect("literal")];
        assert_eq!(report.check_addresses(&ReportLimits::default()), Ok(()));
        report.sockets[0].address = "10.8.8.8".parse().expect("literal");
        let error = report
            .check_addresses(&ReportLimits::default())
            .expect_err("a foreign bound address is refused");
        assert_eq!(error.field, "sockets[0].address");
    }

    #[test]
    fn a_report_stands_for_a_bounded_number_of_endpoints() {
        let mut report = example();
        let socket = report.sockets[0].clone();
        report.sockets = (1..=3)
            .map(|port| SocketInfo {
                port,
                ..socket.clone()
            })
            .collect();
        let limits = ReportLimits {
            max_endpoints: 2,
            ..ReportLimits::default()
        };
        let error = report.check_addresses(&limits).expect_err("bounded");
        assert_eq!(error.field, "sockets");
    }

    #[test]
    fn socket_tags_override_the_hosts_and_are_bounded_like_them() {
        let mut report = example();
        assert!(report.sockets[0].tags.is_empty());
        let json = serde_json::to_value(&report.sockets[0]).expect("json");
        assert!(
            json.get("tags").is_none(),
            "absent when empty: old services see nothing new"
        );
        report.sockets[0].tags = BTreeMap::from([
            ("owner".to_owned(), "payments@example.com".to_owned()),
            ("env".to_owned(), String::new()),
        ]);
        assert_eq!(report.validate(), Ok(()));
        let socket = &report.sockets[0];
        assert_eq!(
            report.socket_tag(socket, "owner"),
            Some("payments@example.com")
        );
        assert_eq!(
            report.socket_tag(socket, "env"),
            Some("prod"),
            "empty: the host's"
        );
        assert_eq!(report.socket_tag(socket, "app"), Some("billing"));

        let text = serde_json::to_string(&report).expect("json");
        let back: AgentReport = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, report);

        report.sockets[0].tags = BTreeMap::from([("app".to_owned(), "a\u{7}b".to_owned())]);
        let error = report.validate().expect_err("control character");
        assert_eq!(error.field, "sockets[0].tags.app");
        report.sockets[0].tags = BTreeMap::from([("app".to_owned(), "x".repeat(513))]);
        assert_eq!(
            report.validate().map_err(|e| e.field),
            Err("sockets[0].tags.app".into())
        );
        report.sockets[0].tags = BTreeMap::from([(" ".to_owned(), "x".to_owned())]);
        assert_eq!(
            report.validate().map_err(|e| e.field),
            Err("sockets[0].tags. ".into())
        );
        report.sockets[0].tags = (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            report.validate().map_err(|e| e.field),
            Err("sockets[0].tags".into())
        );

        let tags: Vec<String> = (0..17).map(|i| format!("\"k{i}\":\"v\"")).collect();
        let wide = CONTRACT_EXAMPLE.replace(
            "\"scope\":\"host\"}",
            &format!("\"scope\":\"host\",\"tags\":{{{}}}}}", tags.join(",")),
        );
        let error = serde_json::from_str::<AgentReport>(&wide).expect_err("bounded while parsing");
        assert!(
            error.to_string().contains("more than 16 entries"),
            "{error}"
        );
    }

    #[test]
    fn loopback_and_wildcard_without_reachable_give_nothing_to_probe() {
        let mut socket = example().sockets[0].clone();
        socket.reachable.clear();
        assert!(socket.probe_addresses().is_empty());
        socket.scope = SocketScope::Loopback;
        socket.address = "127.0.0.1".parse().expect("literal address");
        assert!(socket.probe_addresses().is_empty());
    }
}
