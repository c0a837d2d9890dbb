//! The right owners receive the right digests.

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{certificate, leaf, Host};
use crate::harness::{on_postgres, on_sqlite, settings, TestStore};
use crate::smtpd::Mailbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_owner_gets_one_digest_of_their_own_endpoints_on_sqlite() {
    on_sqlite(each_owner_gets_one_digest_of_their_own_endpoints).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_owner_gets_one_digest_of_their_own_endpoints_on_postgres() {
    on_postgres(each_owner_gets_one_digest_of_their_own_endpoints).await;
}

async fn each_owner_gets_one_digest_of_their_own_endpoints(t: TestStore) {
    let now = t.now();
    let shared = leaf(1, "shared.example.com", now, Duration::days(10));
    let urgent = leaf(2, "pay.example.com", now, Duration::days(3));
    let untagged = leaf(3, "dev.example.com", now, Duration::days(20));
    let healthy = leaf(4, "fine.example.com", now, Duration::days(200));
    let payments_leaf = leaf(5, "gateway.example.com", now, Duration::days(60));
    let mut intermediate = certificate(
        6,
        "Payments Issuing CA",
        now + Duration::days(6),
        Duration::days(1000),
    );
    intermediate.is_ca = true;
    let alice = Host {
        hostname: "web-1",
        address: "10.0.0.1",
        tags: &[("owner", "alice@example.com"), ("app", "billing")],
    };
    alice
        .serves(
            &*t.store,
            now,
            vec![(443, vec![shared.clone()]), (8443, vec![healthy.clone()])],
        )
        .await;
    let billing = Host {
        hostname: "billing-1",
        address: "10.0.0.2",
        tags: &[("app", "billing"), ("env", "prod")],
    };
    billing
        .serves(
            &*t.store,
            now,
            vec![(443, vec![shared.clone()]), (8443, vec![urgent.clone()])],
        )
        .await;
    let dev = Host {
        hostname: "dev-1",
        address: "10.0.0.3",
        tags: &[("env", "dev")],
    };
    dev.serves(&*t.store, now, vec![(443, vec![untagged.clone()])])
        .await;
    let payments = Host {
        hostname: "pay-7",
        address: "10.0.0.4",
        tags: &[],
    };
    let chain = vec![payments_leaf.clone(), intermediate.clone()];
    payments.serves(&*t.store, now, vec![(443, chain)]).await;
    let mailbox = Mailbox::new();
    let server = mailbox.serve();
    let mut settings = settings(Delivery::Smtp(server.url()));
    settings.security_copy = Some("security@example.com".into());
    let notifier = t.notifier(settings);

    let report = notifier.run_once().await.expect("run");

    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.digests_sent, 5, "{report:?}");
    let alices = mailbox.to("alice@example.com");
    assert_eq!(alices.len(), 1);
    let mail = &alices[0];
    assert!(
        mail.subject
            .contains("shared.example.com expires in 10 days"),
        "{}",
        mail.subject
    );
    assert!(mail.mentions(&shared.sha256) && mail.mentions(&shared.serial));
    assert!(mail.mentions("Example Issuing CA"));
    assert!(mail.mentions("10.0.0.1:443"), "{}", mail.text);
    assert!(
        !mail.mentions("10.0.0.2"),
        "only alice's own endpoint: {}",
        mail.text
    );
    assert!(mail.mentions(&format!(
        "https://certfleet.test/certificates/{}",
        shared.sha256
    )));
    assert!(!mail.mentions(&healthy.sha256), "not due yet");
    assert!(
        !mail.mentions("probe-link"),
        "no link secret, no signed link"
    );

    let billings = mailbox.to("billing@example.com");
    assert_eq!(billings.len(), 1, "one digest for both certificates");
    let mail = &billings[0];
    assert!(
        mail.subject
            .starts_with("[certfleet] pay.example.com expires in 3 days (and 1 more)"),
        "{}",
        mail.subject
    );
    assert!(mail.mentions(&shared.sha256) && mail.mentions(&urgent.sha256));
    assert!(mail.mentions("10.0.0.2:443") && !mail.mentions("10.0.0.1"));
    assert!(mail.mentions("app billing"));

    let ops = mailbox.to("ops@example.com");
    assert_eq!(ops.len(), 1, "the default owner");
    assert!(ops[0].mentions(&untagged.sha256));

    let payments = mailbox.to("payments@example.com");
    assert_eq!(payments.len(), 1, "by hostname rule");
    assert!(
        payments[0].mentions(&intermediate.sha256),
        "the intermediate expires before the leaf"
    );
    assert!(
        !payments[0].mentions(&payments_leaf.sha256),
        "the leaf is not due"
    );
    assert!(payments[0].mentions("intermediate"));

    let security = mailbox.to("security@example.com");
    assert_eq!(security.len(), 1, "one copy of everything");
    for sha256 in [
        &shared.sha256,
        &urgent.sha256,
        &untagged.sha256,
        &intermediate.sha256,
    ] {
        assert!(security[0].mentions(sha256));
    }

    let again = notifier.run_once().await.expect("second run");
    assert_eq!((again.claimed, again.digests_sent), (0, 0), "{again:?}");
    assert_eq!(mailbox.messages().len(), 5, "nothing is sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_carry_a_signed_check_again_link_per_socket_on_sqlite() {
    on_sqlite(digests_carry_a_signed_check_again_link_per_socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_carry_a_signed_check_again_link_per_socket_on_postgres() {
    on_postgres(digests_carry_a_signed_check_again_link_per_socket).await;
}

/// With `server.link_secret`, each socket serving an expiring certificate gets a
/// "renewed? check again" link: signed for that socket's endpoint, expiring with the
/// configured lifetime, to the web UI's base URL.
async fn digests_carry_a_signed_check_again_link_per_socket(t: TestStore) {
    use certfleet_model::probe_link::{LinkError, LinkKey, LinkParts};
    use certfleet_notifier::ProbeLinks;
    use certfleet_store::EndpointId;

    let now = t.now();
    let expiring = leaf(1, "renew.example.com", now, Duration::days(10));
    let alice = Host {
        hostname: "web-1",
        address: "10.0.0.1",
        tags: &[("owner", "alice@example.com")],
    };
    let served = vec![
        (443, vec![expiring.clone()]),
        (8443, vec![expiring.clone()]),
    ];
    alice.serves(&*t.store, now, served).await;
    let mailbox = Mailbox::new();
    let server = mailbox.serve();
    let key = LinkKey::new(b"link-secret-for-notifier-tests-0123").expect("key");
    let mut settings = settings(Delivery::Smtp(server.url()));
    settings.probe_links = Some(ProbeLinks {
        key: key.clone(),
        lifetime: Duration::days(7),
    });
    let report = t.notifier(settings).run_once().await.expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mails = mailbox.to("alice@example.com");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];

    let prefix = "https://certfleet.test/probe-link?";
    let links: Vec<&str> = mail
        .text
        .lines()
        .filter_map(|line| line.split_once(prefix).map(|(_, query)| query.trim()))
        .collect();
    assert_eq!(links.len(), 2, "one per socket: {}", mail.text);
    let mut sockets = Vec::new();
    for query in links {
        assert!(
            mail.html.contains(&query.replace('&', "&amp;")),
            "{}",
            mail.html
        );
        let mut parts = LinkParts::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').expect("name=value");
            match name {
                "endpoint" => parts.endpoint = value.into(),
                "expires" => parts.expires = value.into(),
                "signature" => parts.signature = value.into(),
                other => panic!("unexpected {other} in {query}"),
            }
        }
        let endpoint = key.verify(&parts, now).expect("a genuine link");
        assert_eq!(
            key.verify(&parts, now + Duration::days(7)),
            Err(LinkError::Expired),
            "it expires with the configured lifetime"
        );
        let detail = t
            .store
            .endpoint(EndpointId(endpoint))
            .await
            .expect("endpoint");
        sockets.push(format!(
            "{}:{}",
            detail.endpoint.address, detail.endpoint.port
        ));
    }
    sockets.sort();
    assert_eq!(sockets, vec!["10.0.0.1:443", "10.0.0.1:8443"]);
    assert!(
        mail.text.contains("Renewed?   check again 10.0.0.1:443: "),
        "{}",
        mail.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_due_more_than_one_email_lists_gets_parts_on_sqlite() {
    on_sqlite(an_owner_due_more_than_one_email_lists_gets_parts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_due_more_than_one_email_lists_gets_parts_on_postgres() {
    on_postgres(an_owner_due_more_than_one_email_lists_gets_parts).await;
}

/// `max_per_email` caps one message: five certificates at two per email arrive as three
/// messages, most urgent first, each saying which part it is; every certificate is in
/// exactly one of them, and a second run sends none again.
async fn an_owner_due_more_than_one_email_lists_gets_parts(t: TestStore) {
    let now = t.now();
    let leaves: Vec<_> = (0..5_u16)
        .map(|n| {
            let left = Duration::days(5) + Duration::hours(i64::from(n));
            leaf(u64::from(n) + 1, &format!("svc{n}.example.com"), now, left)
        })
        .collect();
    let host = Host {
        hostname: "many-1",
        address: "10.0.3.1",
        tags: &[],
    };
    let served = leaves
        .iter()
        .zip(0_u16..)
        .map(|(leaf, n)| (8000 + n, vec![leaf.clone()]))
        .collect();
    host.serves(&*t.store, now, served).await;
    let mailbox = Mailbox::new();
    let server = mailbox.serve();
    let mut settings = settings(Delivery::Smtp(server.url()));
    settings.max_per_email = 2;
    let notifier = t.notifier(settings);

    let report = notifier.run_once().await.expect("run");

    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!((report.digests_sent, report.notifications_sent), (3, 5));
    let mut mails = mailbox.to("ops@example.com");
    mails.sort_by(|a, b| a.subject.cmp(&b.subject));
    let subjects: Vec<&str> = mails.iter().map(|mail| mail.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "[certfleet] [part 1 of 3] svc0.example.com expires in 5 days (and 1 more)",
            "[certfleet] [part 2 of 3] svc2.example.com expires in 5 days (and 1 more)",
            "[certfleet] [part 3 of 3] svc4.example.com expires in 5 days",
        ]
    );
    assert!(mails[1].mentions("Part 2 of 3 of this digest, which lists 5 certificates"));
    for leaf in &leaves {
        let holding = mails.iter().filter(|mail| mail.mentions(&leaf.sha256));
        assert_eq!(holding.count(), 1, "{} in exactly one part", leaf.sha256);
    }
    assert!(mails[0].mentions(&leaves[0].sha256) && mails[0].mentions(&leaves[1].sha256));

    let again = notifier.run_once().await.expect("second run");
    assert_eq!((again.claimed, again.digests_sent), (0, 0), "{again:?}");
    assert_eq!(mailbox.messages().len(), 3, "nothing is sent twice");
}
