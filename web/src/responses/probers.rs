//! `GET /api/v1/probers`: the probers that announced themselves and each zone's queue.

use certfleet_store as store;
use serde::Serialize;
use time::OffsetDateTime;

use super::rfc3339;

/// The probers, live ones first, and the probe queue of every zone.
#[derive(Debug, Clone, Serialize)]
pub struct Probers {
    pub probers: Vec<Prober>,
    pub zones: Vec<ZoneQueue>,
}

/// A prober as it last announced itself.
#[derive(Debug, Clone, Serialize)]
pub struct Prober {
    pub name: String,
    /// The zones it serves; empty: every zone.
    pub zones: Vec<String>,
    pub version: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub started_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
    /// Announced itself within its last three heartbeats.
    pub live: bool,
    /// Probes it recorded per second over its last heartbeat interval.
    pub probes_per_second: f64,
}

/// The probe queue of one zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneQueue {
    pub zone: String,
    /// Active endpoints in the zone.
    pub endpoints: u64,
    /// Due now and not leased.
    pub due: u64,
    /// Leased to a prober now.
    pub leased: u64,
    /// Live probers serving the zone.
    pub live_probers: u64,
    /// Endpoints are due and no live prober serves the zone.
    pub stranded: bool,
}

impl From<&store::ZoneQueue> for ZoneQueue {
    fn from(queue: &store::ZoneQueue) -> Self {
        ZoneQueue {
            zone: queue.zone.clone(),
            endpoints: queue.endpoints,
            due: queue.due,
            leased: queue.leased,
            live_probers: queue.live_probers,
            stranded: queue.stranded(),
        }
    }
}

impl From<&store::ProberStatus> for Probers {
    fn from(status: &store::ProberStatus) -> Self {
        let prober = |record: &store::ProberRecord| Prober {
            name: record.name.clone(),
            zones: record.zones.clone(),
            version: record.version.clone(),
            started_at: record.started_at,
            last_seen: record.last_seen,
            live: record.live,
            probes_per_second: (record.probes_per_second * 100.0).round() / 100.0,
        };
        Probers {
            probers: status.probers.iter().map(prober).collect(),
            zones: status.zones.iter().map(ZoneQueue::from).collect(),
        }
    }
}
