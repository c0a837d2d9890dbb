//! Deciding what is due, for whom: candidates from the store become one entry per
//! (certificate, owner) with the owner's endpoints and the level due now; open
//! notifications whose certificate the owner no longer serves are resolved.

use std::collections::{BTreeMap, HashMap, HashSet};

use certfleet_store::{
    EndpointId, Mute, NotificationCandidate, NotificationClaim, NotificationRecord,
};
use time::OffsetDateTime;

use crate::policy::{level, Level};
use crate::settings::Settings;

/// A (certificate SHA-256, owner address) pair.
pub type Key = (String, String);

/// Where an owner's endpoint serves a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAt {
    /// The endpoint's id.
    pub endpoint_id: EndpointId,
    /// `address:port`, `[v6]:port`.
    pub address: String,
    /// SNI name probed.
    pub sni: Option<String>,
    /// Reporting host.
    pub hostname: Option<String>,
    /// `app` tag.
    pub app: Option<String>,
    /// `env` tag.
    pub env: Option<String>,
    /// The endpoint's owner (an address), whoever the digest is for (a security copy or a
    /// webhook serves several owners).
    pub owner: String,
    /// When the endpoint was last probed.
    pub probed_at: Option<OffsetDateTime>,
    /// The status of that probe; anything but `ok` means the certificate was not seen
    /// then, and the mail says when it last was (`seen_at`).
    pub probe_status: Option<String>,
    /// When a probe last saw the endpoint serve this certificate.
    pub seen_at: Option<OffsetDateTime>,
}

impl ServedAt {
    /// The last probe failed: what it served is what an earlier probe saw.
    pub fn unreachable(&self) -> bool {
        self.probe_status
            .as_deref()
            .is_some_and(|status| status != "ok")
    }
}

/// One certificate served by one owner's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Lowest chain position it is served at (0: leaf).
    pub position: u32,
    /// The owner's endpoints serving it.
    pub endpoints: Vec<ServedAt>,
    /// What is due now, if anything.
    pub level: Option<Level>,
}

/// What is served and due now.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// When it was decided.
    pub now: Option<OffsetDateTime>,
    /// Candidates expiring after this were not read.
    pub deadline: Option<OffsetDateTime>,
    /// Every (certificate, owner) served now within the window, due or not.
    pub served: HashMap<Key, Served>,
    /// Certificates muted now.
    pub muted: HashSet<String>,
}

impl Decision {
    /// Groups candidates by (certificate, owner) and computes each one's level.
    pub fn new(
        candidates: &[NotificationCandidate],
        mutes: &[Mute],
        settings: &Settings,
        now: OffsetDateTime,
    ) -> Decision {
        let muted: HashSet<String> = mutes.iter().map(|m| m.sha256.clone()).collect();
        let mut thresholds: HashMap<Key, Vec<u32>> = HashMap::new();
        let mut served: HashMap<Key, Served> = HashMap::new();
        let mut checked = HashMap::new();
        for candidate in candidates {
            if muted.contains(&candidate.sha256) {
                continue;
            }
            let owner = settings.owners.owner_with(candidate, &mut checked);
            let own = owner.thresholds.unwrap_or(&settings.thresholds);
            let mut owners = vec![(owner.email.to_owned(), own)];
            if let Some(copy) = settings.security_copy.as_deref() {
                owners.push((copy.to_owned(), &settings.thresholds));
            }
            // A webhook is told with the thresholds of the owners it serves.
            let app = candidate.tags.app.as_deref();
            for webhook in &settings.webhooks {
                if webhook.serves(owner.email, app) {
                    owners.push((webhook.recipient(), own));
                }
            }
            for (recipient, own) in owners {
                let key = (candidate.sha256.clone(), recipient);
                let list = thresholds.entry(key.clone()).or_default();
                for days in own {
                    if !list.contains(days) {
                        list.push(*days);
                    }
                }
                let entry = served.entry(key).or_insert_with(|| Served {
                    not_before: candidate.not_before,
                    not_after: candidate.not_after,
                    position: candidate.position,
                    endpoints: Vec::new(),
                    level: None,
                });
                entry.position = entry.position.min(candidate.position);
                if !entry
                    .endpoints
                    .iter()
                    .any(|e| e.endpoint_id == candidate.endpoint_id)
                {
                    entry.endpoints.push(served_at(candidate, owner.email));
                }
            }
        }
        for (key, entry) in &mut served {
            let own = thresholds
                .get(key)
                .map_or(&settings.thresholds[..], Vec::as_slice);
            let short = settings.short_lived_days;
            entry.level = level(entry.not_before, entry.not_after, now, own, short);
            entry.endpoints.sort_by(|a, b| a.address.cmp(&b.address));
        }
        Decision {
            now: Some(now),
            deadline: Some(now + settings.window()),
            served,
            muted,
        }
    }

    /// One claim per (certificate, owner) with something due, sorted.
    pub fn claims(&self) -> Vec<NotificationClaim> {
        let mut claims: Vec<NotificationClaim> = self
            .served
            .iter()
            .filter_map(|((sha256, owner), served)| {
                Some(NotificationClaim {
                    sha256: sha256.clone(),
                    owner: owner.clone(),
                    threshold: served.level?.key(),
                })
            })
            .collect();
        claims.sort();
        claims
    }
}

fn served_at(candidate: &NotificationCandidate, owner: &str) -> ServedAt {
    let address = if candidate.address.contains(':') {
        format!("[{}]:{}", candidate.address, candidate.port)
    } else {
        format!("{}:{}", candidate.address, candidate.port)
    };
    ServedAt {
        endpoint_id: candidate.endpoint_id,
        address,
        sni: candidate.sni.clone(),
        hostname: candidate.hostname.clone(),
        app: candidate.tags.app.clone(),
        env: candidate.tags.env.clone(),
        owner: owner.to_owned(),
        probed_at: candidate.probed_at,
        probe_status: candidate.probe_status.clone(),
        seen_at: candidate.seen_at,
    }
}

/// Open notifications that no longer stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// "No longer served" notices to claim, for owners who were told it was expiring.
    pub notices: Vec<NotificationClaim>,
    /// To resolve as no longer served (the owner's endpoints serve something else now).
    pub not_served: Vec<i64>,
    /// To resolve as muted.
    pub muted: Vec<i64>,
}

/// Compares open notifications with what is served now. A (certificate, owner) still
/// served keeps its rows; a muted certificate's rows resolve as muted; one no longer
/// served (within the window read) resolves, pending rows unsent, and if the owner had
/// been told, a [`Level::Resolved`] notice is claimed.
pub fn cleanup(decision: &Decision, open: &[NotificationRecord]) -> Cleanup {
    let mut groups: BTreeMap<(&str, &str), Vec<&NotificationRecord>> = BTreeMap::new();
    for row in open {
        groups
            .entry((&row.sha256, &row.owner))
            .or_default()
            .push(row);
    }
    let mut cleanup = Cleanup::default();
    let resolved = Level::Resolved.key();
    for ((sha256, owner), rows) in groups {
        if decision
            .served
            .contains_key(&(sha256.to_owned(), owner.to_owned()))
        {
            continue;
        }
        if decision.muted.contains(sha256) {
            cleanup.muted.extend(rows.iter().map(|row| row.id));
            continue;
        }
        if decision
            .deadline
            .is_none_or(|deadline| rows[0].not_after > deadline)
        {
            continue;
        }
        let told = rows
            .iter()
            .any(|r| r.sent_at.is_some() && r.threshold != resolved);
        let noticed = rows.iter().any(|r| r.threshold == resolved);
        if told && !noticed {
            cleanup.notices.push(NotificationClaim {
                sha256: sha256.to_owned(),
                owner: owner.to_owned(),
                threshold: resolved.clone(),
            });
        }
        let unsent_notice = |r: &&&NotificationRecord| r.threshold == resolved && r.is_pending();
        cleanup
            .not_served
            .extend(rows.iter().filter(|r| !unsent_notice(r)).map(|row| row.id));
    }
    cleanup
}
