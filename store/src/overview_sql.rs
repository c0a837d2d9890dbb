//! The SQL of the fleet overview ([`crate::browse::FleetOverview`]): one pass over the
//! active endpoints grouped by (app, env), one index range over the leaves expiring in
//! the next 90 days, and a few small counts; for both backends ([`Dialect`]).

use std::collections::BTreeMap;

use certfleet_model::ProbeStatus;
use time::{Duration, OffsetDateTime};

use crate::browse::*;
use crate::browse_sql::{count, Bind, Dialect, Query};
use crate::error::Result;
use crate::records::{MtlsCounts, MtlsGroup};
use crate::rotation::DiscoveryLatency;
use crate::rows::ReadRow;

/// Probe statuses in the contract's order, for the overview's counts.
const STATUSES: [ProbeStatus; 8] = [
    ProbeStatus::Ok,
    ProbeStatus::NotTls,
    ProbeStatus::Refused,
    ProbeStatus::Timeout,
    ProbeStatus::TlsError,
    ProbeStatus::Unreachable,
    ProbeStatus::Denied,
    ProbeStatus::StarttlsRefused,
];

/// 1 for the endpoint `e` that stands for its socket (address, port) in the figures people
/// count: the active endpoint with the smallest SNI ('' first: the socket probed without a
/// name, whose certificate is the server's default); 0 for the names under it. The
/// subquery runs only for named endpoints, on the (address, port, sni) index.
pub(crate) const REPRESENTS: &str = "CASE WHEN e.sni = '' THEN 1 \
    WHEN NOT EXISTS (SELECT 1 FROM endpoints s WHERE s.address = e.address \
        AND s.port = e.port AND s.sni < e.sni AND s.retired_at IS NULL) THEN 1 ELSE 0 END";

/// One pass over the active endpoints, grouped by (app, env): every count of the
/// overview that is per endpoint. Read with [`fold_groups`].
pub(crate) fn overview_groups(dialect: Dialect, now: OffsetDateTime) -> Query {
    let mut query = Query::default();
    let now_arg = query.arg(Bind::Time(now));
    let overdue = query.arg(Bind::Time(now - Duration::hours(1)));
    let recent = query.arg(Bind::Time(now - Duration::minutes(5)));
    let [d7, d30, d90] = [7, 30, 90].map(|days| query.arg(Bind::Time(now + Duration::days(days))));
    // Probe work (the queue) counts endpoints; what people count (mTLS, findings, days
    // left, probe status) counts sockets: each (address, port) once, as its first active
    // endpoint ('' first, the socket probed without a name) sees it (`REPRESENTS`).
    let sum = |condition: &str, name: &str| {
        format!("SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {name}")
    };
    let per_socket = |condition: &str, name: &str| {
        format!("SUM(CASE WHEN e.rep = 1 AND ({condition}) THEN 1 ELSE 0 END) AS {name}")
    };
    let mut columns = vec![
        "e.app AS app".to_owned(),
        "e.env AS env".to_owned(),
        "COUNT(*) AS endpoints".to_owned(),
        "SUM(e.rep) AS sockets".to_owned(),
        "COUNT(o.id) AS observed".to_owned(),
        per_socket(dialect.mtls(MtlsState::Required), "required"),
        per_socket(dialect.mtls(MtlsState::Optional), "optional"),
        per_socket(dialect.mtls(MtlsState::None), "absent"),
        per_socket("e.last_status IS NULL", "s_never"),
        sum(&format!("e.next_probe_at <= {now_arg}"), "due"),
        sum(&format!("e.next_probe_at <= {overdue}"), "overdue"),
        sum(&format!("e.lease_until > {now_arg}"), "leased"),
        sum("e.failures > 0", "failing"),
        sum(&format!("e.last_probed_at >= {recent}"), "probed_recently"),
        per_socket(&format!("e.leaf_not_after < {now_arg}"), "d_expired"),
        per_socket(
            &format!("e.leaf_not_after >= {now_arg} AND e.leaf_not_after < {d7}"),
            "d_7",
        ),
        per_socket(
            &format!("e.leaf_not_after >= {d7} AND e.leaf_not_after < {d30}"),
            "d_30",
        ),
        per_socket(
            &format!("e.leaf_not_after >= {d30} AND e.leaf_not_after < {d90}"),
            "d_90",
        ),
        per_socket(&format!("e.leaf_not_after >= {d90}"), "d_later"),
    ];
    for finding in FINDINGS {
        columns.push(per_socket(
            &dialect.finding(finding),
            &format!("f_{}", finding.as_str()),
        ));
    }
    for status in STATUSES {
        let condition = format!("e.last_status = '{}'", status.as_str());
        columns.push(per_socket(&condition, &format!("s_{}", status.as_str())));
    }
    query.sql = format!(
        "SELECT {} FROM (SELECT e.*, {REPRESENTS} AS rep FROM endpoints e \
             WHERE e.retired_at IS NULL{}) e \
         LEFT JOIN observations o ON o.id = e.observation_id \
         GROUP BY e.app, e.env",
        columns.join(", "),
        dialect.fence(),
    );
    query
}

/// Distinct leaves in use by days left, over the index range of the next 90 days; read
/// with [`leaf_buckets`].
pub(crate) fn overview_leaves(now: OffsetDateTime) -> Query {
    let mut query = Query::default();
    let [now, d7, d30, d90] =
        [0, 7, 30, 90].map(|days| query.arg(Bind::Time(now + Duration::days(days))));
    let distinct = |condition: String, name: &str| {
        format!("COUNT(DISTINCT CASE WHEN {condition} THEN leaf_sha256 END) AS {name}")
    };
    query.sql = format!(
        "SELECT {}, {}, {}, {} FROM endpoints \
         WHERE retired_at IS NULL AND leaf_not_after IS NOT NULL AND leaf_not_after < {d90}",
        distinct(format!("leaf_not_after < {now}"), "expired"),
        distinct(
            format!("leaf_not_after >= {now} AND leaf_not_after < {d7}"),
            "within_7"
        ),
        distinct(
            format!("leaf_not_after >= {d7} AND leaf_not_after < {d30}"),
            "within_30"
        ),
        distinct(
            format!("leaf_not_after >= {d30} AND leaf_not_after < {d90}"),
            "within_90"
        ),
    );
    query
}

/// Small counts of the overview (no `$` arguments).
pub(crate) const OVERVIEW_COUNTS: &str = "SELECT \
    (SELECT COUNT(*) FROM hosts) AS hosts, \
    (SELECT COUNT(*) FROM certificates) AS certificates, \
    (SELECT COUNT(*) FROM notifications \
        WHERE sent_at IS NULL AND resolved_at IS NULL AND attempts > 0) AS failed_notifications, \
    (SELECT COUNT(*) FROM endpoint_claims) AS endpoint_conflicts";

/// The row of [`overview_leaves`].
pub(crate) fn leaf_buckets(row: &impl ReadRow) -> Result<ExpiryBuckets> {
    Ok(ExpiryBuckets {
        expired: count(row, "expired")?,
        within_7_days: count(row, "within_7")?,
        within_30_days: count(row, "within_30")?,
        within_90_days: count(row, "within_90")?,
        later: 0,
    })
}

/// Adds up the rows of [`overview_groups`] and the row of [`OVERVIEW_COUNTS`] into an
/// overview (without leaves and trend, which the caller adds).
pub(crate) fn fold_groups<R: ReadRow>(
    rows: &[R],
    counts: &R,
    now: OffsetDateTime,
) -> Result<FleetOverview> {
    let mut by_app: BTreeMap<Option<String>, MtlsCounts> = BTreeMap::new();
    let mut by_env: BTreeMap<Option<String>, MtlsCounts> = BTreeMap::new();
    let mut findings = vec![0u64; FINDINGS.len()];
    let mut statuses = vec![0u64; STATUSES.len() + 1];
    let mut overview = FleetOverview {
        computed_at: now,
        hosts: count(counts, "hosts")?,
        certificates: count(counts, "certificates")?,
        active_endpoints: 0,
        sockets: 0,
        observed_endpoints: 0,
        certificates_by_days_left: ExpiryBuckets::default(),
        endpoints_by_days_left: ExpiryBuckets::default(),
        mtls: MtlsCounts::default(),
        mtls_by_app: Vec::new(),
        mtls_by_env: Vec::new(),
        mtls_trend: Vec::new(),
        findings: Vec::new(),
        probe_status: Vec::new(),
        queue: QueueDepth::default(),
        failed_notifications: count(counts, "failed_notifications")?,
        endpoint_conflicts: count(counts, "endpoint_conflicts")?,
        discovery: DiscoveryLatency::default(),
        zones: Vec::new(),
    };
    for row in rows {
        let mtls = MtlsCounts {
            required: count(row, "required")?,
            optional: count(row, "optional")?,
            none: count(row, "absent")?,
        };
        add(&mut overview.mtls, &mtls);
        add(by_app.entry(row.opt_text("app")?).or_default(), &mtls);
        add(by_env.entry(row.opt_text("env")?).or_default(), &mtls);
        overview.active_endpoints += count(row, "endpoints")?;
        overview.sockets += count(row, "sockets")?;
        overview.observed_endpoints += count(row, "observed")?;
        let queue = &mut overview.queue;
        queue.due += count(row, "due")?;
        queue.overdue += count(row, "overdue")?;
        queue.leased += count(row, "leased")?;
        queue.failing += count(row, "failing")?;
        queue.probed_last_5m += count(row, "probed_recently")?;
        let days = &mut overview.endpoints_by_days_left;
        days.expired += count(row, "d_expired")?;
        days.within_7_days += count(row, "d_7")?;
        days.within_30_days += count(row, "d_30")?;
        days.within_90_days += count(row, "d_90")?;
        days.later += count(row, "d_later")?;
        for (index, finding) in FINDINGS.iter().enumerate() {
            findings[index] += count(row, &format!("f_{}", finding.as_str()))?;
        }
        statuses[0] += count(row, "s_never")?;
        for (index, status) in STATUSES.iter().enumerate() {
            statuses[index + 1] += count(row, &format!("s_{}", status.as_str()))?;
        }
    }
    let groups = |map: BTreeMap<Option<String>, MtlsCounts>| {
        map.into_iter()
            .map(|(key, counts)| MtlsGroup { key, counts })
            .collect()
    };
    overview.mtls_by_app = groups(by_app);
    overview.mtls_by_env = groups(by_env);
    overview.findings = FINDINGS
        .iter()
        .zip(findings)
        .map(|(finding, count)| NamedCount {
            name: finding.as_str().to_owned(),
            count,
        })
        .collect();
    let names = std::iter::once("never").chain(STATUSES.iter().map(|status| status.as_str()));
    overview.probe_status = names
        .zip(statuses)
        .map(|(name, count)| NamedCount {
            name: name.to_owned(),
            count,
        })
        .collect();
    Ok(overview)
}

fn add(sum: &mut MtlsCounts, counts: &MtlsCounts) {
    sum.required += counts.required;
    sum.optional += counts.optional;
    sum.none += counts.none;
}
