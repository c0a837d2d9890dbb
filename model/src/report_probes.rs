//! The agent's own probes (`agent.probe_local`), carried in its report as `probes`: each
//! entry is one line of the probe JSON contract (`certfleet probe --format json`).
//!
//! An agent may speak only for its own sockets: [`AgentReport::check_probes`] keeps an
//! entry only when it names a TCP socket the same report lists (a loopback-scope socket at
//! its loopback address, or a host-scope socket at one of the addresses it is reachable
//! at, which [`AgentReport::check_addresses`] holds to the host's own). Every other entry
//! is refused on its own, with the reason; the rest of the report is kept.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::report::{AgentReport, Protocol, ReportError, SocketScope};
use crate::ProbeResult;

/// Probe results one report may carry (bounded while parsing: more is a `400`).
pub const MAX_PROBES: usize = 4096;
/// Certificates in one probe's chain: more is no real server's chain.
pub const MAX_PROBE_CHAIN: usize = 16;

/// The socket a kept probe result stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbedSocket {
    pub address: IpAddr,
    pub port: u16,
}

impl ProbedSocket {
    /// A loopback listener: only its own host can reach it, so it is stored per host.
    pub fn is_loopback(&self) -> bool {
        self.address.is_loopback()
    }
}

/// What [`AgentReport::check_probes`] made of a report's `probes`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckedProbes<'a> {
    /// The entries kept, each with its index in `probes` and the socket it stands for
    /// (one entry per socket).
    pub kept: Vec<(usize, ProbedSocket, &'a ProbeResult)>,
    /// The entries refused, each named (`probes[3]`) with its reason.
    pub refused: Vec<ReportError>,
}

impl AgentReport {
    /// Sorts the report's `probes` into those that stand for one of its own sockets and
    /// those that do not (see the module documentation).
    pub fn check_probes(&self) -> CheckedProbes<'_> {
        let mut own: HashSet<ProbedSocket> = HashSet::new();
        for socket in &self.sockets {
            if socket.protocol != Protocol::Tcp {
                continue;
            }
            match socket.scope {
                SocketScope::Loopback if socket.address.is_loopback() => {
                    own.insert(ProbedSocket {
                        address: socket.address,
                        port: socket.port,
                    });
                }
                SocketScope::Loopback => {}
                SocketScope::Host => own.extend(socket.probe_addresses().into_iter().map(
                    |address| ProbedSocket {
                        address,
                        port: socket.port,
                    },
                )),
            }
        }
        let mut checked = CheckedProbes::default();
        let mut seen = HashSet::new();
        for (index, result) in self.probes.iter().enumerate() {
            let refuse = |message: &str| ReportError {
                field: format!("probes[{index}]"),
                message: message.to_owned(),
            };
            let Some(socket) = probed_socket(result) else {
                checked
                    .refused
                    .push(refuse("address: not an IP address and port"));
                continue;
            };
            if !own.contains(&socket) {
                checked.refused.push(refuse(
                    "not a TCP socket of this report (a loopback listener, or a host \
                     listener at one of its reachable addresses)",
                ));
            } else if result.chain.len() > MAX_PROBE_CHAIN {
                let message = format!("chain: more than {MAX_PROBE_CHAIN} certificates");
                checked.refused.push(refuse(&message));
            } else if !seen.insert(socket) {
                checked.refused.push(refuse("the same socket twice"));
            } else {
                checked.kept.push((index, socket, result));
            }
        }
        checked
    }
}

/// The socket a result was probed at: its `address` (`ip:port`), else its `target`.
/// Names are not accepted: the agent probes addresses.
fn probed_socket(result: &ProbeResult) -> Option<ProbedSocket> {
    let text = result.address.as_deref().unwrap_or(&result.target);
    let address: SocketAddr = text.parse().ok()?;
    Some(ProbedSocket {
        address: address.ip(),
        port: address.port(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProbeStatus;

    fn report() -> AgentReport {
        serde_json::from_str(
            r#"{"agent":{"version":"0.1.0"},"collected_at":"2026-11-27T10:00:00Z",
             "host":{"hostname":"h","addresses":["10.0.0.5"]},
             "sockets":[
               {"address":"127.0.0.1","port":8443,"protocol":"tcp","scope":"loopback"},
               {"address":"0.0.0.0","port":443,"protocol":"tcp","reachable":["10.0.0.5"],
                "scope":"host"},
               {"address":"127.0.0.1","port":53,"protocol":"udp","scope":"loopback"}]}"#,
        )
        .expect("parses")
    }

    fn probe(target: &str) -> ProbeResult {
        ProbeResult {
            target: target.to_owned(),
            address: Some(target.to_owned()),
            sni: None,
            status: ProbeStatus::Refused,
            error: None,
            probed_at: time::OffsetDateTime::UNIX_EPOCH,
            elapsed_ms: 1,
            starttls: None,
            tls: None,
            mtls: None,
            chain: Vec::new(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn a_report_without_probes_parses_as_before() {
        let report = report();
        assert!(report.probes.is_empty());
        let json = serde_json::to_value(&report).expect("json");
        assert!(json.get("probes").is_none(), "left out when empty: {json}");
    }

    #[test]
    fn probes_of_the_reports_own_sockets_are_kept_and_others_refused_one_by_one() {
        let mut report = report();
        report.probes = vec![
            probe("127.0.0.1:8443"),
            probe("10.0.0.5:443"),
            probe("10.9.9.9:443"),
            probe("127.0.0.1:9999"),
            probe("127.0.0.1:53"),
            probe("localhost:8443"),
            probe("127.0.0.1:8443"),
        ];
        let checked = report.check_probes();
        let kept: Vec<String> = checked
            .kept
            .iter()
            .map(|(_, socket, _)| format!("{}:{}", socket.address, socket.port))
            .collect();
        assert_eq!(kept, ["127.0.0.1:8443", "10.0.0.5:443"]);
        let refused: Vec<&str> = checked.refused.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            refused,
            [
                "probes[2]",
                "probes[3]",
                "probes[4]",
                "probes[5]",
                "probes[6]"
            ]
        );
        assert!(checked.kept[0].1.is_loopback());
        assert_eq!(checked.kept[1].0, 1, "the index in probes");
    }

    #[test]
    fn a_loopback_scope_claim_on_a_host_address_gives_no_probe() {
        let mut report = report();
        report.sockets[0].address = "10.0.0.5".parse().expect("literal");
        report.probes = vec![probe("10.0.0.5:8443")];
        assert_eq!(report.check_probes().refused.len(), 1);
    }

    #[test]
    fn too_many_probes_are_refused_while_parsing() {
        let entry = serde_json::to_string(&probe("127.0.0.1:8443")).expect("json");
        let entries = vec![entry; MAX_PROBES + 1].join(",");
        let mut json = serde_json::to_value(report()).expect("json");
        json["probes"] = serde_json::from_str(&format!("[{entries}]")).expect("json");
        let error = serde_json::from_value::<AgentReport>(json).expect_err("bounded");
        assert!(
            error.to_string().contains("more than 4096 entries"),
            "{error}"
        );
    }
}
