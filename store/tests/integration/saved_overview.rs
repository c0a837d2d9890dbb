//! The saved fleet overview (`overview_snapshot`): one row, rewritten by each save, read
//! back whole; a body this version cannot read is no overview rather than an error.

use crate::harness::TestStore;

crate::on_both_backends!(
    a_saved_overview_reads_back_and_a_save_rewrites_it,
    an_unreadable_saved_overview_is_none,
);

async fn a_saved_overview_reads_back_and_a_save_rewrites_it(t: TestStore) {
    assert_eq!(t.store.saved_overview().await.expect("reads"), None);
    let mut overview = t.store.fleet_overview().await.expect("overview");
    t.store.save_overview(&overview).await.expect("saves");
    assert_eq!(
        t.store.saved_overview().await.expect("reads").as_ref(),
        Some(&overview)
    );
    overview.hosts += 7;
    overview.certificates_by_days_left.expired = 3;
    t.store.save_overview(&overview).await.expect("saves again");
    assert_eq!(
        t.store.saved_overview().await.expect("reads"),
        Some(overview)
    );
    let rows = t.count("SELECT COUNT(*) FROM overview_snapshot").await;
    assert_eq!(rows, 1, "one row, rewritten");
}

async fn an_unreadable_saved_overview_is_none(t: TestStore) {
    for body in ["not json", "{\"hosts\": 3}", "[]", ""] {
        t.execute(&format!(
            "INSERT INTO overview_snapshot (id, body) VALUES (1, '{}') \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            body.replace('\'', "''")
        ))
        .await;
        assert_eq!(
            t.store.saved_overview().await.expect("reads"),
            None,
            "{body}"
        );
    }
}
