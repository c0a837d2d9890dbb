//! Per-container tags: the sockets of two containers on one host get their own owners
//! (their tags over the host's), and the candidates for mail carry their namespace and
//! container name for the ownership rules.

use std::collections::BTreeMap;

use certfleet_model::SocketInfo;
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    containers_of_one_host_get_their_own_owners,
    a_container_relabelled_changes_its_endpoints_owner,
);

const BILLING_ID: &str = "3f4e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
const REDIS_ID: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";

fn in_container(address: &str, port: u16, id: &str, tags: &[(&str, &str)]) -> SocketInfo {
    SocketInfo {
        container: Some(id.into()),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..socket(address, port)
    }
}

fn shared_host(t: &TestStore, billing_owner: &str) -> certfleet_model::AgentReport {
    let sockets = vec![
        socket("10.0.0.5", 443),
        in_container(
            "10.0.0.5",
            8443,
            BILLING_ID,
            &[
                ("owner", billing_owner),
                ("app", "billing"),
                ("env", "prod"),
                ("container", "billing-api"),
            ],
        ),
        in_container(
            "10.0.0.5",
            6380,
            REDIS_ID,
            &[
                ("namespace", "payments"),
                ("pod", "cache-0"),
                ("container", "redis"),
                ("owner", ""),
            ],
        ),
    ];
    let host_tags = [
        ("owner", "platform@example.com"),
        ("env", "staging"),
        ("app", "docker-host"),
    ];
    report("m1", &host_tags, sockets, t.clock.now())
}

async fn containers_of_one_host_get_their_own_owners(t: TestStore) {
    let report = shared_host(&t, "billing@example.com");
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let endpoints = all_endpoints(&*t.store).await;
    let by_port = |port: u16| {
        let e = endpoints.iter().find(|e| e.port == port).expect("endpoint");
        (
            e.tags.owner.as_deref(),
            e.tags.app.as_deref(),
            e.tags.env.as_deref(),
        )
    };
    assert_eq!(
        by_port(443),
        (
            Some("platform@example.com"),
            Some("docker-host"),
            Some("staging")
        )
    );
    assert_eq!(
        by_port(8443),
        (Some("billing@example.com"), Some("billing"), Some("prod"))
    );
    assert_eq!(
        by_port(6380),
        (
            Some("platform@example.com"),
            Some("docker-host"),
            Some("staging")
        ),
        "tags the container does not set (or sets empty) are the host's"
    );

    // Probed, each serving a certificate that expires soon: the candidates carry the
    // container's namespace and name for the ownership rules.
    let now = t.clock.now();
    let leases = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leases.len(), 3);
    let results: Vec<_> = leases
        .iter()
        .enumerate()
        .map(|(index, lease)| {
            let seed = 10 + index as u64;
            let leaf = certificate(
                seed,
                &["svc.example.com"],
                "CN=svc",
                now + Duration::days(5),
            );
            (lease.id, probe_ok(vec![leaf], no_mtls(), now))
        })
        .collect();
    t.store
        .record_probe_results(&results)
        .await
        .expect("records");
    let mut found: Vec<_> = t
        .store
        .notification_candidates(now + Duration::days(30))
        .await
        .expect("candidates")
        .into_iter()
        .map(|c| (c.port, c.tags.owner, c.namespace, c.container))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (443, Some("platform@example.com".into()), None, None),
            (
                6380,
                Some("platform@example.com".into()),
                Some("payments".into()),
                Some("redis".into())
            ),
            (
                8443,
                Some("billing@example.com".into()),
                None,
                Some("billing-api".into())
            ),
        ]
    );
}

async fn a_container_relabelled_changes_its_endpoints_owner(t: TestStore) {
    let first = shared_host(&t, "billing@example.com");
    t.store
        .ingest_report(&agent(), &first)
        .await
        .expect("ingests");
    t.clock.advance(Duration::minutes(10));
    let second = shared_host(&t, "billing-oncall@example.com");
    t.store
        .ingest_report(&agent(), &second)
        .await
        .expect("ingests");
    let endpoints = all_endpoints(&*t.store).await;
    let billing = endpoints.iter().find(|e| e.port == 8443).expect("billing");
    assert_eq!(
        billing.tags.owner.as_deref(),
        Some("billing-oncall@example.com")
    );
    let host = endpoints.iter().find(|e| e.port == 443).expect("host");
    assert_eq!(host.tags.owner.as_deref(), Some("platform@example.com"));
}
