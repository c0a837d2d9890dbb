//! Static targets (`[[probe.targets]]`): endpoints no agent reports, such as load
//! balancers and appliances. Every `probe.targets_refresh`, host names are resolved (A and
//! AAAA, through `probe.nameservers` when set) and CIDR ranges expanded, and each address
//! and port is upserted without SNI and under each of the target's names (a host name is
//! one); the prober takes them from there like any reported endpoint. Endpoints a target no
//! longer yields retire like unreported ones.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use certfleet_prober::{Resolver, StartTlsMode};
use certfleet_store::{StaticEndpoint, Store, WorkloadTags, NAMES_PER_ENDPOINT};
use ipnet::IpNet;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// `[[probe.targets]]`: hosts (names, addresses, CIDR ranges) times ports, probed without
/// SNI and with each of `names` (a host name is a name too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTarget {
    pub hosts: Vec<TargetHost>,
    pub ports: Vec<u16>,
    #[serde(default)]
    pub names: Vec<String>,
    /// `auto` (by the port, the default), `none`, or a protocol (`smtp`, `postgres`, ...).
    #[serde(default)]
    pub starttls: Option<StartTlsSetting>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// Most addresses one CIDR range of a static target may expand to.
pub const MAX_RANGE_ADDRESSES: u128 = 65_536;

/// One entry of a static target's `hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TargetHost {
    /// Every address of the range (at most [`MAX_RANGE_ADDRESSES`]); a single address is a
    /// range of one.
    Range(IpNet),
    /// Resolved (A and AAAA) at every refresh.
    Name(String),
}

impl TryFrom<String> for TargetHost {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let text = text.trim();
        if let Ok(address) = text.parse::<std::net::IpAddr>() {
            return Ok(TargetHost::Range(IpNet::from(address)));
        }
        if let Ok(range) = text.parse::<IpNet>() {
            let bits = u32::from(range.max_prefix_len() - range.prefix_len());
            if 1u128
                .checked_shl(bits)
                .is_none_or(|size| size > MAX_RANGE_ADDRESSES)
            {
                return Err(format!(
                    "range {text} is larger than {MAX_RANGE_ADDRESSES} addresses; split it"
                ));
            }
            return Ok(TargetHost::Range(range.trunc()));
        }
        match certfleet_store::usable_sni(text) {
            Some(name) => Ok(TargetHost::Name(name)),
            None => Err(format!(
                "{text:?} is neither an address, a CIDR range nor a host name"
            )),
        }
    }
}

/// A static target's `starttls`, checked when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StartTlsSetting(pub StartTlsMode);

impl TryFrom<String> for StartTlsSetting {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(StartTlsSetting)
    }
}

/// Deadline of one host name's resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most endpoints all static targets together may stand for (ranges x ports x names);
/// beyond it the rest is left out, with a warning: a typo such as a /16 times fifty ports
/// must not fill the database.
const MAX_STATIC_ENDPOINTS: usize = 1_000_000;

pub async fn run(
    store: Arc<dyn Store>,
    targets: Vec<StaticTarget>,
    resolver: Resolver,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let endpoints = expand(&targets, &resolver).await;
        match store.upsert_static_endpoints(&endpoints).await {
            Ok(touched) => tracing::info!(
                targets = targets.len(),
                endpoints = endpoints.len(),
                touched,
                "static targets refreshed"
            ),
            Err(error) => tracing::warn!(%error, "cannot store the static targets"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every.max(Duration::from_secs(10))) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every (address, port, name) the targets stand for. A name that does not resolve is
/// logged and skipped (its endpoints live on until they retire).
pub async fn expand(targets: &[StaticTarget], resolver: &Resolver) -> Vec<StaticEndpoint> {
    let mut endpoints = Vec::new();
    for target in targets {
        for host in &target.hosts {
            let (addresses, host_name) = match host {
                // Bounded when the config was read; IPv4 network and broadcast
                // addresses are left out, as in every scanner.
                TargetHost::Range(range) => (range.hosts().collect::<Vec<IpAddr>>(), None),
                TargetHost::Name(name) => match resolver.lookup(name, RESOLVE_TIMEOUT).await {
                    Ok(addresses) => (addresses, Some(name.as_str())),
                    Err(error) => {
                        tracing::warn!(%error, "a static target's host name did not resolve");
                        continue;
                    }
                },
            };
            let names: BTreeSet<&str> = host_name
                .into_iter()
                .chain(target.names.iter().map(String::as_str))
                .take(NAMES_PER_ENDPOINT)
                .collect();
            let presented = std::iter::once(None).chain(names.iter().map(|name| Some(*name)));
            for sni in presented {
                for address in &addresses {
                    if endpoints.len() + target.ports.len() > MAX_STATIC_ENDPOINTS {
                        tracing::warn!(
                            limit = MAX_STATIC_ENDPOINTS,
                            "static targets stand for too many endpoints; the rest is left out"
                        );
                        return endpoints;
                    }
                    for port in &target.ports {
                        endpoints.push(StaticEndpoint {
                            address: *address,
                            port: *port,
                            sni: sni.map(str::to_owned),
                            starttls: target.starttls.map(|mode| mode.0.to_string()),
                            tags: WorkloadTags {
                                app: target.app.clone(),
                                env: target.env.clone(),
                                owner: target.owner.clone(),
                            },
                        });
                    }
                }
            }
        }
    }
    endpoints
}
