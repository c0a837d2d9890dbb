//! Webhooks through the real binary (issue 16): `certfleet notify` with a
//! `[[notify.webhooks]]` entry whose secret is in a file posts a signed digest of a real
//! server's expiring certificate to a real HTTP receiver on 127.0.0.1, once; a receiver
//! that answers 503 shows in `certfleet notify --status` beside the mail, failing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Output;

use super::database::TestDatabase;
use super::fresh_mail::{config_with_notify, expiring, notify, probed};
use super::process::{certfleet, create_token, Service};
use crate::pki::Pki;
use crate::tls_server::TlsServer;

/// The notifier tests' receiver: axum on 127.0.0.1, recording every request.
#[path = "../../../notifier/tests/integration/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use receiver::{Answer, Receiver};

const SECRET: &str = "system-test-webhook-secret";

#[test]
fn notify_posts_a_signed_digest_to_a_webhook_on_sqlite() {
    posts_a_signed_digest(TestDatabase::sqlite());
}

#[test]
fn notify_posts_a_signed_digest_to_a_webhook_on_postgres() {
    posts_a_signed_digest(TestDatabase::postgres());
}

/// `[notify]` lines: a json webhook serving every owner, its secret in a file.
fn webhook_lines(dir: &Path, url: &str) -> String {
    let secret_file = dir.join("webhook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write the secret");
    format!(
        "webhook_timeout = \"5s\"\n\n[[notify.webhooks]]\nname = \"team\"\nurl = {url:?}\n\
         format = \"json\"\nsecret_file = {:?}\n",
        secret_file.display().to_string()
    )
}

fn run(config: &Path, args: &[&str]) -> Output {
    let config = config.to_str().expect("UTF-8 path");
    let mut all = vec!["notify", "--config", config];
    all.extend_from_slice(args);
    certfleet(&all).output().expect("run certfleet notify")
}

fn posts_a_signed_digest(database: TestDatabase) {
    let kind = database.kind();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the receivers");
    let pki = Pki::new();
    let old = expiring(&pki);
    let server = TlsServer::serving(&[&old], &old)
        .start()
        .expect("start the TLS server");
    let unavailable = Answer::status(503).header("retry-after", "3600");
    let failing = runtime.block_on(Receiver::start(Vec::new(), unavailable));
    let failing_config =
        config_with_notify(&database, &webhook_lines(database.dir(), &failing.url));
    let service = Service::start(&failing_config, "api,prober");
    let token = create_token(&failing_config, "webhook-agent");
    probed(&service, &token, server.port, &old, kind);

    // A receiver that answers 503: the run fails (exit 1), the status lists it failing
    // beside what was mailed, with its reason.
    let down = run(&failing_config, &[]);
    let stdout = String::from_utf8_lossy(&down.stdout);
    assert_eq!(down.status.code(), Some(1), "{kind}: {stdout}");
    assert!(
        stdout.contains("failed: webhook:team: webhook team: HTTP 503"),
        "{kind}: {stdout}"
    );
    let status = run(&failing_config, &["--status"]);
    let listed = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{kind}: {listed}");
    assert!(
        listed.contains("pending 1  failing 1  sent 1"),
        "{kind}: {listed}"
    );
    assert!(
        listed.contains(&format!(
            "FAILING webhook:team {} 7d attempts=1",
            old.sha256
        )),
        "{kind}: {listed}"
    );
    assert_eq!(failing.received().len(), 1);

    // The same webhook name at a receiver that takes it: the pending digest is posted
    // once its retry is due; here a fresh name starts afresh instead, at once.
    let receiver = runtime.block_on(Receiver::start(Vec::new(), Answer::status(200)));
    let lines = webhook_lines(database.dir(), &receiver.url).replace("\"team\"", "\"team-2\"");
    let config = config_with_notify(&database, &lines);
    let sent = notify(&config, &[]);
    assert!(sent.contains("1 digests sent"), "{kind}: {sent}");
    notify(&config, &[]);
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{kind}: posted once");
    assert_eq!(
        failing.received().len(),
        1,
        "{kind}: the renamed webhook is not posted to"
    );
    let status = run(&config, &["--status"]);
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(
        listed.contains("failing 0  sent 2  resolved 1"),
        "{kind}: {listed}"
    );
    let post = &received[0];
    assert!(
        post.signed_with(SECRET),
        "{kind}: signed with the file's secret"
    );
    let document = post.json();
    assert_eq!(document["recipient"], "webhook:team-2", "{kind}");
    assert_eq!(
        document["items"][0]["sha256"],
        old.sha256.as_str(),
        "{kind}"
    );
    assert_eq!(document["items"][0]["names"][0], "fresh.test", "{kind}");
    assert_eq!(
        document["items"][0]["endpoints"][0]["address"],
        format!("{}:{}", IpAddr::V4(Ipv4Addr::LOCALHOST), server.port),
        "{kind}"
    );
}
