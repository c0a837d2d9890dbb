//! Probe now: operator tokens, and an operator's request that makes an endpoint due ahead
//! of the schedule, at most once per window.

use certfleet_store::{AgentName, EndpointId, ProbeRequest, TokenKind};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    operator_tokens_say_their_kind_and_are_listed_and_revoked,
    a_requested_endpoint_is_leased_before_every_overdue_one,
    a_second_request_within_the_window_changes_nothing,
    a_request_under_lease_makes_the_running_probe_stale,
    unknown_and_retired_endpoints_are_not_found,
);

const WINDOW: Duration = Duration::seconds(60);

async fn operator_tokens_say_their_kind_and_are_listed_and_revoked(t: TestStore) {
    let alice = AgentName::new("alice").expect("name");
    let operator = t.store.create_operator_token(&alice).await.expect("token");
    let agent_token = t.store.create_agent_token(&agent()).await.expect("token");
    assert!(operator.starts_with("cfo_") && agent_token.starts_with("cfa_"));

    let kind = |token: String| {
        let store = t.store.clone();
        async move {
            let credential = store.authenticate(&token).await.expect("asks");
            credential.map(|credential| (credential.agent.to_string(), credential.kind))
        }
    };
    assert_eq!(
        kind(operator.clone()).await,
        Some(("alice".into(), TokenKind::Operator))
    );
    assert_eq!(
        kind(agent_token).await.map(|(_, kind)| kind),
        Some(TokenKind::Agent)
    );
    // The prefix says what a token is, the stored kind what it may do: an operator's
    // secret under the agent prefix is no token at all.
    let relabelled = operator.replacen("cfo_", "cfa_", 1);
    assert_eq!(kind(relabelled).await, None);

    let listed = t.store.tokens().await.expect("list");
    let kinds: Vec<_> = listed
        .iter()
        .map(|token| (token.agent.clone(), token.kind))
        .collect();
    let expected = vec![
        ("alice".to_owned(), TokenKind::Operator),
        (agent().to_string(), TokenKind::Agent),
    ];
    assert_eq!(kinds, expected);
    assert_eq!(t.store.revoke_tokens(&alice).await.expect("revoke"), 1);
    assert_eq!(kind(operator).await, None, "revoked");
}

/// Ingests five sockets and probes every endpoint (the sockets and the names their
/// probes reveal) until none is due, so each is due again in a day; returns them all.
async fn probed_endpoints(t: &TestStore) -> Vec<EndpointId> {
    let report = many_sockets("m1", "10.0.0.5", 5, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let mut ids = Vec::new();
    loop {
        let leased = t
            .store
            .lease_due_endpoints("w", 100, Duration::minutes(5))
            .await
            .expect("lease");
        if leased.is_empty() {
            return ids;
        }
        let failed = || probe_failed(certfleet_model::ProbeStatus::Refused, t.clock.now());
        let results: Vec<_> = leased.iter().map(|lease| (lease.id, failed())).collect();
        t.store
            .record_probe_results(&results)
            .await
            .expect("records");
        ids.extend(leased.iter().map(|lease| lease.id));
    }
}

async fn a_requested_endpoint_is_leased_before_every_overdue_one(t: TestStore) {
    let ids = probed_endpoints(&t).await;
    // Two days later every endpoint is overdue; the last one is asked for.
    t.clock.advance(Duration::days(2));
    let wanted = ids[ids.len() - 1];
    let request = t
        .store
        .request_probe(wanted, WINDOW)
        .await
        .expect("requests");
    assert_eq!(request, ProbeRequest::Requested { at: t.clock.now() });

    let first = t
        .store
        .lease_due_endpoints("w", 1, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(
        first.iter().map(|lease| lease.id).collect::<Vec<_>>(),
        vec![wanted]
    );
    let rest = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(rest.len(), ids.len() - 1, "the schedule's endpoints follow");
    assert!(!rest.iter().any(|lease| lease.id == wanted), "leased once");
}

async fn a_second_request_within_the_window_changes_nothing(t: TestStore) {
    let ids = probed_endpoints(&t).await;
    assert!(matches!(
        t.store
            .request_probe(ids[0], WINDOW)
            .await
            .expect("requests"),
        ProbeRequest::Requested { .. }
    ));
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);

    t.clock.advance(Duration::seconds(20));
    let again = t.store.request_probe(ids[0], WINDOW).await.expect("asks");
    assert_eq!(
        again,
        ProbeRequest::Limited {
            retry_after: Duration::seconds(40)
        }
    );
    let nothing = t
        .store
        .lease_due_endpoints("w2", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(nothing.is_empty(), "not requested twice: {nothing:?}");
    // Another endpoint has its own window.
    assert!(matches!(
        t.store
            .request_probe(ids[1], WINDOW)
            .await
            .expect("requests"),
        ProbeRequest::Requested { .. }
    ));

    t.clock.advance(Duration::seconds(40));
    assert!(matches!(
        t.store
            .request_probe(ids[0], WINDOW)
            .await
            .expect("requests"),
        ProbeRequest::Requested { .. }
    ));
}

async fn a_request_under_lease_makes_the_running_probe_stale(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 1, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let running = t
        .store
        .lease_due_endpoints("slow", 1, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(running.len(), 1);
    t.clock.advance(Duration::seconds(2));
    t.store
        .request_probe(running[0].id, WINDOW)
        .await
        .expect("requests");
    let fresh = t
        .store
        .lease_due_endpoints("fast", 1, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(fresh.len(), 1, "leased again, though under lease");

    let result = probe_failed(certfleet_model::ProbeStatus::Timeout, t.clock.now());
    let lease = certfleet_store::Lease {
        endpoint: running[0].id,
        until: running[0].lease_until,
    };
    let recorded = t
        .store
        .record_leased_probe_results("slow", &[(lease, result)], &[])
        .await
        .expect("records");
    assert_eq!(
        recorded.stale,
        vec![running[0].id],
        "the earlier probe is stale"
    );
}

async fn unknown_and_retired_endpoints_are_not_found(t: TestStore) {
    let error = t
        .store
        .request_probe(EndpointId(987_654), WINDOW)
        .await
        .expect_err("unknown");
    assert!(error.is_not_found(), "{error:?}");

    let ids = probed_endpoints(&t).await;
    t.clock.advance(Duration::days(30));
    let retired = t.store.retire_endpoints(Duration::days(7)).await;
    assert_eq!(retired.expect("retires"), ids.len() as u64);
    let error = t
        .store
        .request_probe(ids[0], WINDOW)
        .await
        .expect_err("retired");
    assert!(error.is_not_found(), "{error:?}");
}
