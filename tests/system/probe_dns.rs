//! `certfleet probe --dns-server` against a real DNS server (dnsmasq on a loopback port):
//! a host name is resolved there, probed at the address it names, and sent as SNI, so the
//! server's certificate for that name is the one captured.

use crate::check::assert_ok;
use crate::cli::probe_json;
use crate::dns_server::Dnsmasq;
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

#[test]
fn a_name_resolved_by_the_given_dns_server_is_probed_and_sent_as_sni() {
    let records = ["--address=/api.static.test/127.0.0.1".to_owned()];
    let dns = match Dnsmasq::start(&records) {
        Ok(dns) => dns,
        Err(why) => {
            certfleet_testkit::skip(&format!("{why} (scripts/test installs dnsmasq)"));
            return;
        }
    };
    let pki = Pki::new();
    let default = pki.issue(
        "default",
        Spec::leaf("default.test", &["default.test"]),
        None,
    );
    let named = pki.issue(
        "api",
        Spec::leaf("api.static.test", &["api.static.test"]),
        None,
    );
    let server = TlsServer::serving(&[&default], &default)
        .for_name("api.static.test", &[&named], &named)
        .start()
        .expect("start the rustls server");
    let target = format!("api.static.test:{}", server.port);

    let run = probe_json(&[&target, "--dns-server", &dns.address(), "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_eq!(result["sni"], "api.static.test", "{}", run.context());
    assert_eq!(
        result["chain"][0]["sha256"],
        named.sha256.as_str(),
        "{}",
        run.context()
    );
    let handshakes = server.handshakes();
    assert!(
        handshakes
            .iter()
            .any(|h| h.sni.as_deref() == Some("api.static.test")),
        "the server received the name: {handshakes:?}"
    );
}
