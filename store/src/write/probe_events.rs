//! The change events of a recorded probe batch, worked out in memory from what the
//! recording transaction read (each endpoint's current observation before) and what it
//! writes: certificates seen for the first time, rotations, findings raised and cleared,
//! client-certificate policy changes. A quiet re-sighting (the same observation again)
//! makes none.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::json;

use super::events::NewEvent;
use crate::events::{rfc3339, EventKind};
use crate::fence::{MtlsColumns, Previous};
use crate::plan::{CertificateRow, EndpointUpdate, ObservationRow, Outcome};
use crate::rotation::RotationRow;

/// What the events of one batch are worked out from.
pub(crate) struct ProbeChanges<'a> {
    /// Certificates the batch wrote that were not known before.
    pub new_certificates: &'a [&'a CertificateRow],
    pub rotations: &'a [RotationRow],
    pub outcomes: &'a [Outcome],
    pub observations: &'a [ObservationRow],
    pub updates: &'a [EndpointUpdate],
    /// Each endpoint's current observation before this batch.
    pub previous: &'a HashMap<i64, Previous>,
}

impl ProbeChanges<'_> {
    /// The events, in a stable order: first sightings, rotations, then per endpoint its
    /// findings and policy.
    pub fn events(&self) -> Vec<NewEvent> {
        let mut events: Vec<NewEvent> = self
            .new_certificates
            .iter()
            .map(|certificate| NewEvent {
                kind: EventKind::CertificateFirstSeen,
                endpoint_id: None,
                data: json!({ "certificate": certificate_json(certificate) }),
            })
            .collect();
        events.extend(self.rotations.iter().map(|rotation| NewEvent {
            kind: EventKind::CertificateRotated,
            endpoint_id: Some(rotation.endpoint_id),
            data: json!({
                "certificate": {"sha256": rotation.new_sha256},
                "previous": {"sha256": rotation.old_sha256},
                "latency_ms": rotation.latency_ms,
            }),
        }));
        let fingerprints: HashMap<i64, &str> = self
            .outcomes
            .iter()
            .filter_map(|o| Some((o.endpoint_id, o.fingerprint.as_deref()?)))
            .collect();
        let observations: HashMap<(i64, &str), &ObservationRow> = self
            .observations
            .iter()
            .map(|o| ((o.endpoint_id, o.fingerprint.as_str()), o))
            .collect();
        for update in self.updates {
            // Only a probe that replaces the current observation changes what it says.
            if update.keep_observation || update.observation_id.is_none() {
                continue;
            }
            let Some(fingerprint) = fingerprints.get(&update.id) else {
                continue;
            };
            let Some(now) = observations.get(&(update.id, *fingerprint)) else {
                continue;
            };
            let before = self.previous.get(&update.id);
            self.findings(update.id, now, before, &mut events);
            let mtls = MtlsColumns {
                requested: now.mtls_requested,
                required: now.mtls_required,
                enforced: now.mtls_enforced.map(str::to_owned),
            };
            if let Some(before) = before.filter(|before| before.mtls != mtls) {
                events.push(NewEvent {
                    kind: EventKind::MtlsChanged,
                    endpoint_id: Some(update.id),
                    data: json!({
                        "mtls": mtls_json(&mtls),
                        "previous": {"mtls": mtls_json(&before.mtls)},
                    }),
                });
            }
        }
        events
    }

    fn findings(
        &self,
        endpoint_id: i64,
        now: &ObservationRow,
        before: Option<&Previous>,
        events: &mut Vec<NewEvent>,
    ) {
        let now_findings: BTreeSet<String> = serde_json::from_str::<Vec<String>>(&now.findings)
            .map_or_else(
                |_| BTreeSet::new(),
                |findings| findings.into_iter().collect(),
            );
        let before_findings: HashSet<&str> = before
            .map(|b| b.findings.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let leaf = now.leaf_sha256.as_deref();
        for finding in &now_findings {
            if !before_findings.contains(finding.as_str()) {
                events.push(finding_event(
                    EventKind::FindingRaised,
                    endpoint_id,
                    finding,
                    leaf,
                ));
            }
        }
        let mut cleared: Vec<&str> = before_findings
            .into_iter()
            .filter(|finding| !now_findings.contains(*finding))
            .collect();
        cleared.sort_unstable();
        for finding in cleared {
            events.push(finding_event(
                EventKind::FindingCleared,
                endpoint_id,
                finding,
                leaf,
            ));
        }
    }
}

fn finding_event(kind: EventKind, endpoint_id: i64, finding: &str, leaf: Option<&str>) -> NewEvent {
    NewEvent {
        kind,
        endpoint_id: Some(endpoint_id),
        data: json!({
            "finding": finding,
            "certificate": leaf.map(|sha256| json!({"sha256": sha256})),
        }),
    }
}

fn mtls_json(mtls: &MtlsColumns) -> serde_json::Value {
    json!({
        "requested": mtls.requested,
        "required": mtls.required,
        "enforced": mtls.enforced,
    })
}

fn certificate_json(certificate: &CertificateRow) -> serde_json::Value {
    json!({
        "sha256": certificate.sha256,
        "serial": certificate.serial,
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "not_before": rfc3339(certificate.not_before),
        "not_after": rfc3339(certificate.not_after),
        "is_ca": certificate.is_ca,
        "self_signed": certificate.self_signed,
    })
}
