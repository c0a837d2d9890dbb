//! Names to present (SNI): which names each endpoint is probed with besides none.
//!
//! An endpoint `(address, port, "")` is probed without SNI. Every name known for it
//! becomes an endpoint `(address, port, name)` of its own, due at once and recorded
//! separately: the hostname of the workload that reported it, and the DNS names in the
//! certificate it served (a server that picks its certificate by SNI shows another
//! certificate for another of its names), and names the prober learnt itself (the PTR name
//! of the address, static names from the config). Names found by a named probe count too,
//! so a chain of SNI-dependent certificates is followed, but never beyond
//! [`NAMES_PER_ENDPOINT`] names per address and port. An IP address is never a name.
//!
//! The names are added in the transaction that records the results: a prober killed
//! between the two would otherwise lose them for good (the endpoint is not due again for a
//! whole interval).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use certfleet_model::{ProbeResult, ProbeStatus};

use crate::records::{EndpointId, StaticEndpoint};

/// Most named endpoints created per (address, port).
pub const NAMES_PER_ENDPOINT: usize = 8;

/// The name as it would be sent, when it can be: a DNS name (letters, digits, hyphens,
/// dots), lower-cased, without a trailing dot; never an IP address, a wildcard, an e-mail
/// address or a URI.
pub fn usable_sni(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let usable = !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.chars().any(|c| c.is_ascii_alphabetic())
        && name.split('.').all(valid_label);
    usable.then_some(name)
}

/// The `(endpoint, name)` pairs to create from a batch of probe results: the DNS names of
/// each captured leaf, the reporting workload's `hostnames` (by endpoint id) and the
/// `learnt` names (PTR, static), without the name the endpoint was probed with, at most
/// [`NAMES_PER_ENDPOINT`] per endpoint.
pub fn names_to_present(
    results: &[(EndpointId, ProbeResult)],
    hostnames: &HashMap<i64, String>,
    learnt: &[(EndpointId, String)],
) -> Vec<(i64, String)> {
    // Looked up once per result: a batch holds hundreds of results and of learnt names.
    let mut learnt_by_endpoint: HashMap<&EndpointId, Vec<&String>> = HashMap::new();
    for (id, name) in learnt {
        learnt_by_endpoint.entry(id).or_default().push(name);
    }
    let mut pairs = Vec::new();
    for (id, result) in results {
        let sans = match (&result.status, result.chain.first()) {
            (ProbeStatus::Ok, Some(leaf)) => leaf.sans.as_slice(),
            _ => &[],
        };
        let probed_with = result.sni.as_deref().and_then(usable_sni);
        let learnt_here = learnt_by_endpoint.get(id).into_iter().flatten().copied();
        let names: BTreeSet<String> = hostnames
            .get(&id.0)
            .into_iter()
            .chain(learnt_here)
            .chain(sans)
            .filter_map(|name| usable_sni(name))
            .filter(|name| Some(name) != probed_with.as_ref())
            .collect();
        pairs.extend(
            names
                .into_iter()
                .take(NAMES_PER_ENDPOINT)
                .map(|name| (id.0, name)),
        );
    }
    pairs
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_names_are_sent_as_sni() {
        assert_eq!(
            usable_sni("API.Example.com."),
            Some("api.example.com".into())
        );
        assert_eq!(usable_sni("i-0abc"), Some("i-0abc".into()));
        for refused in [
            "10.1.2.3",
            "::1",
            "*.example.com",
            "a@b.c",
            "https://x",
            "",
            "-a.b",
        ] {
            assert_eq!(usable_sni(refused), None, "{refused}");
        }
    }
}
