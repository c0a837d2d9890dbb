//! Probers announce themselves (a heartbeat: name, zones, version, probe rate), and the
//! queue is counted per zone, so that a zone whose endpoints no live prober serves is seen
//! (`GET /api/v1/probers`, the dashboard, `/metrics`).

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::db::{plain, with_arg, Bind, Db, Query};
use crate::error::Result;
use crate::rows::ReadRow;
use crate::zones::{Zone, DEFAULT_ZONE};

/// How long a prober that stopped announcing itself stays listed (not live).
const LISTED_FOR: Duration = Duration::days(1);

/// What a prober says about itself at each heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct ProberBeat {
    /// The prober's name (its lease owner name: `host/pid`).
    pub name: String,
    /// The zones it serves; empty: every zone.
    pub zones: Vec<String>,
    /// Its certfleet version.
    pub version: String,
    /// When the process started.
    pub started_at: OffsetDateTime,
    /// How long it counts as live after this beat: a few heartbeat intervals.
    pub live_for: Duration,
    /// Probes it recorded per second since its last beat.
    pub probes_per_second: f64,
}

/// A prober as last announced.
#[derive(Debug, Clone, PartialEq)]
pub struct ProberRecord {
    pub name: String,
    /// Empty: every zone.
    pub zones: Vec<String>,
    pub version: String,
    pub started_at: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    /// Whether its last beat is recent enough (see [`ProberBeat::live_for`]).
    pub live: bool,
    pub probes_per_second: f64,
}

impl ProberRecord {
    /// Whether it leases the endpoints of `zone`.
    pub fn serves(&self, zone: &str) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|served| served == zone)
    }
}

/// The probe queue of one zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneQueue {
    pub zone: String,
    /// Active endpoints in the zone.
    pub endpoints: u64,
    /// Due now and not leased (an expired lease is due again).
    pub due: u64,
    /// Leased to a prober right now.
    pub leased: u64,
    /// Live probers that serve the zone (those serving every zone included).
    pub live_probers: u64,
}

impl ZoneQueue {
    /// Due endpoints that no live prober will take: the dashboard's warning.
    pub fn stranded(&self) -> bool {
        self.due > 0 && self.live_probers == 0
    }
}

/// The probers and the queue of every zone: configured, holding endpoints, or served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProberStatus {
    /// Live ones first, then by name.
    pub probers: Vec<ProberRecord>,
    /// By zone name.
    pub zones: Vec<ZoneQueue>,
}

/// Upserts the prober's row; drops the rows of probers gone for a day.
pub(crate) async fn announce<D: Db>(db: &D, beat: &ProberBeat, now: OffsetDateTime) -> Result<()> {
    let zones = serde_json::to_string(&beat.zones)?;
    let per_minute = (beat.probes_per_second.max(0.0) * 60.0).round() as i64;
    let upsert = Query {
        sql: format!(
            "INSERT INTO probers (name, zones, version, started_at, last_seen, live_until, \
                 probes_per_minute) \
             VALUES ($1, {}, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO UPDATE SET zones = excluded.zones, \
                 version = excluded.version, started_at = excluded.started_at, \
                 last_seen = excluded.last_seen, live_until = excluded.live_until, \
                 probes_per_minute = excluded.probes_per_minute",
            D::DIALECT.json("$2")
        ),
        binds: vec![
            Bind::Text(beat.name.clone()),
            Bind::Text(zones),
            Bind::Text(beat.version.clone()),
            Bind::Time(beat.started_at),
            Bind::Time(now),
            Bind::Time(now + beat.live_for),
            Bind::Int(per_minute),
        ],
    };
    db.write(&upsert).await?;
    let gone = with_arg(
        "DELETE FROM probers WHERE live_until < $1",
        Bind::Time(now - LISTED_FOR),
    );
    db.write(&gone).await?;
    Ok(())
}

/// The probers, and the queue of each zone with the live probers serving it. One pass
/// over the active endpoints: cache it (the overview does).
pub(crate) async fn status<D: Db>(
    db: &D,
    configured: &[Zone],
    now: OffsetDateTime,
) -> Result<ProberStatus> {
    let probers = plain(
        "SELECT name, zones, version, started_at, last_seen, live_until, probes_per_minute \
         FROM probers ORDER BY name",
    );
    let mut probers = db
        .rows(&probers)
        .await?
        .iter()
        .map(|row| {
            Ok(ProberRecord {
                name: row.text("name")?,
                zones: row.json("zones")?,
                version: row.text("version")?,
                started_at: row.time("started_at")?,
                last_seen: row.time("last_seen")?,
                live: row.time("live_until")? > now,
                probes_per_second: row.int("probes_per_minute")? as f64 / 60.0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    probers.sort_by_key(|prober| !prober.live);
    let queues = with_arg(
        "SELECT zone, COUNT(*) AS endpoints, \
             SUM(CASE WHEN next_probe_at <= $1 THEN 1 ELSE 0 END) AS due, \
             SUM(CASE WHEN lease_until > $1 THEN 1 ELSE 0 END) AS leased \
         FROM endpoints WHERE retired_at IS NULL GROUP BY zone",
        Bind::Time(now),
    );
    let mut zones: BTreeMap<String, ZoneQueue> = BTreeMap::new();
    for row in db.rows(&queues).await? {
        let zone = row.text("zone")?;
        let queue = ZoneQueue {
            zone: zone.clone(),
            endpoints: row.count("endpoints")?,
            due: row.count("due")?,
            leased: row.count("leased")?,
            live_probers: 0,
        };
        zones.insert(zone, queue);
    }
    // Zones configured or served but without endpoints are listed too, empty, and so is
    // the default zone, which always exists.
    let named = configured.iter().map(|zone| zone.name.clone());
    let named = named.chain([DEFAULT_ZONE.to_owned()]);
    let served = probers
        .iter()
        .flat_map(|prober| prober.zones.iter().cloned());
    for zone in named.chain(served) {
        zones.entry(zone.clone()).or_insert_with(|| ZoneQueue {
            zone,
            ..ZoneQueue::default()
        });
    }
    for queue in zones.values_mut() {
        let live = probers.iter().filter(|p| p.live && p.serves(&queue.zone));
        queue.live_probers = live.count() as u64;
    }
    Ok(ProberStatus {
        probers,
        zones: zones.into_values().collect(),
    })
}
