//! mTLS adoption: counts by group and the daily trend.

use certfleet_model::MtlsPolicy;
use certfleet_store::{MtlsCounts, MtlsGrouping};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(mtls_summary_counts_policies_by_group_and_keeps_a_daily_trend);

/// Tags of a report, as `(key, value)` pairs.
type Tags<'a> = &'a [(&'a str, &'a str)];

/// One endpoint per (machine, tags, policy), probed with that policy.
async fn serve_policies(t: &TestStore, endpoints: &[(&str, Tags<'_>, MtlsPolicy)]) {
    for (index, (machine, tags, _)) in endpoints.iter().enumerate() {
        let port = 1000 + index as u16;
        let report = report(machine, tags, vec![socket("10.0.0.5", port)], t.clock.now());
        t.store
            .ingest_report(&agent(), &report)
            .await
            .expect("ingests");
    }
    let leased = t
        .store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease");
    let expiry = t.clock.now() + Duration::days(90);
    let results: Vec<_> = leased
        .iter()
        .map(|lease| {
            let index = usize::from(lease.port - 1000);
            let leaf = certificate(index as u64 + 1, &["a.test"], "CN=a.test", expiry);
            let policy = endpoints[index].2.clone();
            (lease.id, probe_ok(vec![leaf], policy, t.clock.now()))
        })
        .collect();
    t.store
        .record_probe_results(&results)
        .await
        .expect("records");
}

fn counts(required: u64, optional: u64, none: u64) -> MtlsCounts {
    MtlsCounts {
        required,
        optional,
        none,
    }
}

async fn mtls_summary_counts_policies_by_group_and_keeps_a_daily_trend(t: TestStore) {
    let billing: Tags = &[("app", "billing"), ("env", "prod")];
    let web: Tags = &[("app", "web"), ("env", "prod")];
    serve_policies(
        &t,
        &[
            ("m1", billing, mtls(true)),
            ("m2", billing, mtls(false)),
            ("m3", billing, no_mtls()),
            ("m4", web, no_mtls()),
            ("m5", &[], mtls(true)),
        ],
    )
    .await;

    let by_app = t
        .store
        .mtls_summary(MtlsGrouping::App)
        .await
        .expect("summary");
    let groups: Vec<_> = by_app
        .groups
        .iter()
        .map(|g| (g.key.as_deref(), g.counts))
        .collect();
    assert_eq!(
        groups,
        vec![
            (None, counts(1, 0, 0)),
            (Some("billing"), counts(1, 1, 1)),
            (Some("web"), counts(0, 0, 1))
        ]
    );
    let by_env = t
        .store
        .mtls_summary(MtlsGrouping::Env)
        .await
        .expect("summary");
    let prod = by_env
        .groups
        .iter()
        .find(|g| g.key.as_deref() == Some("prod"))
        .expect("prod");
    assert_eq!(prod.counts, counts(1, 1, 2));
    assert!((prod.counts.required_share() - 0.25).abs() < 1e-9);
    assert!(by_app.trend.is_empty());

    let written = t.store.snapshot_mtls_adoption().await.expect("snapshot");
    assert_eq!(written, 3 + 2);
    t.store
        .snapshot_mtls_adoption()
        .await
        .expect("same day again replaces");
    t.clock.advance(Duration::days(1));
    t.store.snapshot_mtls_adoption().await.expect("next day");

    let trend = t
        .store
        .mtls_summary(MtlsGrouping::App)
        .await
        .expect("summary")
        .trend;
    assert_eq!(trend.len(), 2);
    assert!(trend[0].day < trend[1].day);
    assert_eq!(trend[0].counts, counts(2, 1, 2));
    assert_eq!(trend[1].counts, counts(2, 1, 2));
}
