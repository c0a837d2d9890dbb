//! Names to present (SNI): which names each endpoint is probed with besides none.
//!
//! An endpoint `(address, port, "")` is probed without SNI. Every name known for it
//! becomes an endpoint `(address, port, name)` of its own, due at once and recorded
//! separately: the hostname of the workload that reported it, and the DNS names in the
//! certificate it served (a server that picks its certificate by SNI shows another
//! certificate for another of its names), and names the prober learnt itself (the PTR name
//! of the address; static names from the config are endpoints of their own). Each named
//! endpoint records where its name came from ([`NameSource`]): the guessed ones (host
//! name, PTR name) never raise `hostname_mismatch` (the prober worker drops it) and are
//! retired when they select the socket's default certificate (`retire_default_guesses`
//! in each backend, in the recording transaction). Names found by a named probe count too,
//! so a chain of SNI-dependent certificates is followed, but never beyond
//! [`NAMES_PER_ENDPOINT`] names per address and port. An IP address is never a name.
//!
//! What a usable name is, and the bound, are domain rules: `certfleet_model::names`.
//!
//! The names are added in the transaction that records the results: a prober killed
//! between the two would otherwise lose them for good (the endpoint is not due again for a
//! whole interval).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

pub use certfleet_model::names::{usable_sni, NAMES_PER_ENDPOINT};
use certfleet_model::{ProbeResult, ProbeStatus};

use crate::records::{EndpointId, NameSource, StaticEndpoint};

/// The `(endpoint, name, source)` triples to create from a batch of probe results: the
/// DNS names of each captured leaf ([`NameSource::Certificate`]), the reporting workload's
/// `hostnames` by endpoint id ([`NameSource::HostName`]) and the `learnt` names, the PTR
/// names of the addresses ([`NameSource::Ptr`]), without the name the endpoint was probed
/// with, at most [`NAMES_PER_ENDPOINT`] per endpoint. A name with several sources takes
/// the least guessed one (a host name that the leaf also names is a certificate name).
pub fn names_to_present(
    results: &[(EndpointId, ProbeResult)],
    hostnames: &HashMap<i64, String>,
    learnt: &[(EndpointId, String)],
) -> Vec<(i64, String, NameSource)> {
    // Looked up once per result: a batch holds hundreds of results and of learnt names.
    let mut learnt_by_endpoint: HashMap<&EndpointId, Vec<&String>> = HashMap::new();
    for (id, name) in learnt {
        learnt_by_endpoint.entry(id).or_default().push(name);
    }
    let mut triples = Vec::new();
    for (id, result) in results {
        let sans = match (&result.status, result.chain.first()) {
            (ProbeStatus::Ok, Some(leaf)) => leaf.sans.as_slice(),
            _ => &[],
        };
        let probed_with = result.sni.as_deref().and_then(usable_sni);
        let learnt_here = learnt_by_endpoint.get(id).into_iter().flatten().copied();
        let candidates = hostnames
            .get(&id.0)
            .into_iter()
            .map(|name| (name, NameSource::HostName))
            .chain(learnt_here.map(|name| (name, NameSource::Ptr)))
            .chain(sans.iter().map(|name| (name, NameSource::Certificate)));
        let mut names: BTreeMap<String, NameSource> = BTreeMap::new();
        for (name, source) in candidates {
            let Some(name) = usable_sni(name) else {
                continue;
            };
            if Some(&name) == probed_with.as_ref() {
                continue;
            }
            names
                .entry(name)
                .and_modify(|known| *known = (*known).min(source))
                .or_insert(source);
        }
        triples.extend(
            names
                .into_iter()
                .take(NAMES_PER_ENDPOINT)
                .map(|(name, source)| (id.0, name, source)),
        );
    }
    triples
}

/// A static endpoint as stored: `sni` as sent (`""` for none; an unusable name drops the
/// endpoint), at most one row per (address, port, sni), the last one given winning.
pub(crate) fn static_rows(endpoints: &[StaticEndpoint]) -> Vec<StaticEndpoint> {
    let mut rows: BTreeMap<(IpAddr, u16, String), StaticEndpoint> = BTreeMap::new();
    for endpoint in endpoints {
        let sni = match &endpoint.sni {
            None => String::new(),
            Some(name) => match usable_sni(name) {
                Some(name) => name,
                None => continue,
            },
        };
        let key = (endpoint.address, endpoint.port, sni.clone());
        let mut row = endpoint.clone();
        row.sni = Some(sni);
        rows.insert(key, row);
    }
    rows.into_values().collect()
}
