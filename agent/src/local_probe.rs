//! Agent-side probing (`agent.probe_local`): the agent probes, with the service's own
//! prober, the listeners the centre cannot reach (loopback-only ones), or with `"all"`
//! every listener of the host and its containers, and sends the results in its report
//! (`probes`, each in the probe JSON contract).
//!
//! What it may connect to is its own allow list: the loopback networks and the host's and
//! its containers' own addresses, nothing else, whatever a socket table says. At most
//! `probe_concurrency` probes run at once, each within `probe_timeout`, with the
//! prober's usual STARTTLS-by-port rules.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use certfleet_model::{ProbeResult, SocketInfo, SocketScope, MAX_PROBES};
use certfleet_prober::{Host, NetworkPolicy, Prober, ProberConfig, Target, TrustStore};
use futures::StreamExt;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::{AgentConfig, Error};

/// Which listeners the agent probes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeLocal {
    /// None: the centre probes what it can reach (the default).
    #[default]
    Off,
    /// Listeners bound to loopback only, in the agent's own network namespace (`true`).
    Loopback,
    /// Those, and every other listener of the host and its containers at the addresses
    /// it is reachable at (`"all"`): the centre then probes none of this host's sockets.
    All,
}

/// `false`, `true`, `"loopback"` or `"all"`.
impl<'de> Deserialize<'de> for ProbeLocal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flag(false) => Ok(ProbeLocal::Off),
            Raw::Flag(true) => Ok(ProbeLocal::Loopback),
            Raw::Word(word) => match word.as_str() {
                "false" | "off" => Ok(ProbeLocal::Off),
                "true" | "loopback" => Ok(ProbeLocal::Loopback),
                "all" => Ok(ProbeLocal::All),
                other => Err(serde::de::Error::custom(format!(
                    "probe_local: expected true, false or \"all\", not {other:?}"
                ))),
            },
        }
    }
}

/// Longest PEM sent: the service reads no longer string in a report. A certificate
/// beyond it (a very long SAN list) is still reported, by its fields and SHA-256.
const MAX_PEM: usize = 4000;

/// The sockets to probe, in address order, at most [`MAX_PROBES`]: loopback listeners of
/// the agent's own network namespace (`own_netns`; another namespace's loopback is out of
/// its reach), and with [`ProbeLocal::All`] every host-scope listener at each address it
/// is reachable at.
pub fn targets(
    mode: ProbeLocal,
    own_netns: Option<u64>,
    sockets: impl Iterator<Item = SocketInfo>,
) -> Vec<SocketAddr> {
    let mut targets = BTreeSet::new();
    if mode == ProbeLocal::Off {
        return Vec::new();
    }
    for socket in sockets {
        match socket.scope {
            SocketScope::Loopback => {
                if socket.address.is_loopback() && socket.netns == own_netns {
                    targets.insert(SocketAddr::new(socket.address, socket.port));
                }
            }
            SocketScope::Host if mode == ProbeLocal::All => {
                for address in socket.probe_addresses() {
                    targets.insert(SocketAddr::new(address, socket.port));
                }
            }
            SocketScope::Host => {}
        }
    }
    targets.into_iter().take(MAX_PROBES).collect()
}

/// The agent's allow list: loopback, and the host's and its containers' own addresses.
pub fn allow_list(own: &[IpAddr]) -> Vec<IpNet> {
    let loopback = ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse::<IpNet>().ok());
    loopback
        .chain(own.iter().map(|&ip| IpNet::from(ip)))
        .collect()
}

/// The prober the agent uses: the service's, within the agent's allow list, keeping each
/// certificate's PEM (the service stores it), trusting the agent's `ca_file` too.
pub fn prober(config: &AgentConfig, own: &[IpAddr]) -> Result<Prober, Error> {
    let mut trust = TrustStore::mozilla();
    if let Some(path) = &config.ca_file {
        trust
            .add_pem_file(path)
            .map_err(|error| Error::config("agent.ca_file", error.to_string()))?;
    }
    let defaults = ProberConfig::default();
    Ok(Prober::new(ProberConfig {
        timeout: config.probe_timeout,
        connect_timeout: defaults.connect_timeout.min(config.probe_timeout),
        policy: NetworkPolicy::new(allow_list(own), Vec::new()),
        trust,
        include_pem: true,
        ..defaults
    }))
}

/// Probes `targets`, at most `concurrency` at once; results in the order of `targets`.
pub async fn probe_all(
    prober: &Prober,
    targets: &[SocketAddr],
    concurrency: usize,
) -> Vec<ProbeResult> {
    let started = Instant::now();
    let probes = targets
        .iter()
        .enumerate()
        .map(|(index, &address)| async move {
            let target = Target {
                host: Host::Ip(address.ip()),
                port: address.port(),
                sni: None,
                raw: address.to_string(),
                starttls: None,
            };
            let mut result = prober.probe_address(&target, address).await;
            for certificate in &mut result.chain {
                if certificate
                    .pem
                    .as_ref()
                    .is_some_and(|pem| pem.len() > MAX_PEM)
                {
                    certificate.pem = None;
                }
            }
            (index, result)
        });
    // Unordered: a silent listener holding its slot until the deadline must not keep
    // the probes behind it from starting.
    let mut results: Vec<(usize, ProbeResult)> = futures::stream::iter(probes)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_unstable_by_key(|(index, _)| *index);
    let results: Vec<ProbeResult> = results.into_iter().map(|(_, result)| result).collect();
    tracing::info!(
        probes = results.len(),
        ok = results
            .iter()
            .filter(|r| r.status == certfleet_model::ProbeStatus::Ok)
            .count(),
        elapsed_ms = elapsed_ms(started.elapsed()),
        "probed local listeners"
    );
    results
}

fn elapsed_ms(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_model::Protocol;

    fn socket(address: &str, port: u16, scope: SocketScope, netns: u64) -> SocketInfo {
        let address: IpAddr = address.parse().expect("literal");
        let reachable = match scope {
            SocketScope::Host => vec!["10.0.0.5".parse().expect("literal")],
            SocketScope::Loopback => Vec::new(),
        };
        SocketInfo {
            address,
            port,
            protocol: Protocol::Tcp,
            netns: Some(netns),
            process: None,
            container: None,
            reachable,
            scope,
            tags: Default::default(),
        }
    }

    fn sockets() -> Vec<SocketInfo> {
        vec![
            socket("127.0.0.1", 8443, SocketScope::Loopback, 1),
            socket("::1", 8443, SocketScope::Loopback, 1),
            socket("127.0.0.1", 9443, SocketScope::Loopback, 2),
            socket("0.0.0.0", 443, SocketScope::Host, 1),
        ]
    }

    #[test]
    fn loopback_mode_probes_the_own_namespaces_loopback_listeners_only() {
        let found = targets(ProbeLocal::Loopback, Some(1), sockets().into_iter());
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found, ["127.0.0.1:8443", "[::1]:8443"]);
        assert!(targets(ProbeLocal::Off, Some(1), sockets().into_iter()).is_empty());
    }

    #[test]
    fn all_mode_adds_every_host_listener_at_its_reachable_addresses() {
        let found = targets(ProbeLocal::All, Some(1), sockets().into_iter());
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found, ["10.0.0.5:443", "127.0.0.1:8443", "[::1]:8443"]);
    }

    #[test]
    fn the_allow_list_is_loopback_and_the_hosts_own_addresses() {
        let own: Vec<IpAddr> = vec!["10.0.0.5".parse().expect("literal")];
        let policy = NetworkPolicy::new(allow_list(&own), Vec::new());
        for allowed in ["127.0.0.1", "::1", "10.0.0.5"] {
            assert_eq!(policy.refusal(allowed.parse().expect("literal")), None);
        }
        for refused in ["10.0.0.6", "192.168.1.1", "169.254.169.254"] {
            assert!(policy.refusal(refused.parse().expect("literal")).is_some());
        }
    }

    #[test]
    fn probe_local_reads_booleans_and_all() {
        #[derive(Deserialize)]
        struct Wrap {
            p: ProbeLocal,
        }
        let read = |text: &str| toml::from_str::<Wrap>(text).map(|w| w.p);
        assert_eq!(read("p = true").ok(), Some(ProbeLocal::Loopback));
        assert_eq!(read("p = false").ok(), Some(ProbeLocal::Off));
        assert_eq!(read("p = \"all\"").ok(), Some(ProbeLocal::All));
        assert!(read("p = \"everything\"").is_err());
    }
}
