//! Network zones: which part of the network an endpoint is in, so that only the probers
//! placed there lease it (docs/scale-out.md, "Zones").
//!
//! An endpoint's zone is decided when it is written, in this order: the `zone` tag of the
//! workload that reports it (its socket's, else its host's), else the first configured
//! zone whose CIDRs hold the address, else [`DEFAULT_ZONE`]. A tag can only place the
//! reporting host's own endpoints (every address of a report is checked to be the host's),
//! so no host's input moves another host's endpoints to another prober.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The zone of an endpoint that neither a tag nor a CIDR places.
pub const DEFAULT_ZONE: &str = "default";

/// Longest zone name, in bytes.
pub const MAX_ZONE_NAME: usize = 63;

/// One `[[zones]]` entry of the service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name: 1 to 63 letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// The networks in the zone; an address in several zones' CIDRs is in the first.
    #[serde(default)]
    pub cidrs: Vec<IpNet>,
}

/// Refuses a zone name outside 1 to 63 letters, digits, `.`, `_` and `-`: zone names
/// appear in metric labels, URLs and pages, and a tag is an agent's input.
pub fn check_zone_name(field: &str, name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_ZONE_NAME || !name.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            format!("a zone name is 1 to {MAX_ZONE_NAME} letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(())
}

/// Checks the configured zones: valid names, each named once.
pub fn check_zones(zones: &[Zone]) -> Result<()> {
    for (index, zone) in zones.iter().enumerate() {
        check_zone_name(&format!("zones[{index}].name"), &zone.name)?;
        if zones[..index].iter().any(|other| other.name == zone.name) {
            return Err(Error::invalid(
                format!("zones[{index}].name"),
                format!("zone {} is configured twice", zone.name),
            ));
        }
    }
    Ok(())
}

/// The zone of an endpoint at `address` whose workload's `zone` tag is `tag` (already
/// checked with [`check_zone_name`]).
pub(crate) fn zone_of(zones: &[Zone], tag: Option<&str>, address: IpAddr) -> String {
    if let Some(tag) = tag {
        return tag.to_owned();
    }
    zones
        .iter()
        .find(|zone| zone.cidrs.iter().any(|cidr| cidr.contains(&address)))
        .map_or(DEFAULT_ZONE, |zone| zone.name.as_str())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, cidrs: &[&str]) -> Zone {
        Zone {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
        }
    }

    #[test]
    fn the_tag_wins_then_the_first_matching_cidr_then_default() {
        let zones = [
            zone("eu1", &["10.1.0.0/16"]),
            zone("wide", &["10.0.0.0/8", "fc00::/7"]),
        ];
        let at = |a: &str| a.parse::<IpAddr>().expect("address");
        assert_eq!(zone_of(&zones, Some("lab"), at("10.1.2.3")), "lab");
        assert_eq!(zone_of(&zones, None, at("10.1.2.3")), "eu1");
        assert_eq!(zone_of(&zones, None, at("10.2.0.1")), "wide");
        assert_eq!(zone_of(&zones, None, at("fd00::1")), "wide");
        assert_eq!(zone_of(&zones, None, at("192.168.1.1")), DEFAULT_ZONE);
        assert_eq!(zone_of(&[], None, at("10.1.2.3")), DEFAULT_ZONE);
    }

    #[test]
    fn hostile_zone_names_are_refused() {
        for bad in ["", "a b", "zone\n", "é", "a/b", "x{y}", &"z".repeat(64)] {
            let error = check_zone_name("tags.zone", bad).expect_err(bad);
            assert!(error.to_string().contains("tags.zone"), "{error}");
        }
        for good in ["a", "eu-1", "dc2.rack_7", &"z".repeat(63)] {
            assert!(check_zone_name("tags.zone", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_zone_configured_twice_is_refused() {
        let twice = [zone("a", &[]), zone("a", &["10.0.0.0/8"])];
        let error = check_zones(&twice).expect_err("twice");
        assert!(error.to_string().contains("zones[1].name"), "{error}");
        assert!(check_zones(&[zone("a", &[]), zone("b", &[])]).is_ok());
    }
}
