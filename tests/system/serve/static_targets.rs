//! Static targets and PTR names, end to end against a real DNS server (dnsmasq on a
//! loopback port): `lb.static.test` has two A records (127.0.0.2 and 127.0.0.3), both
//! serving different certificates by SNI; a CIDR range 127.0.0.4/31 holds one more server
//! and one closed address; and an `openssl s_server` inside a network namespace (the PTR
//! record of its 198.18.x.x address names it `ptr.static.test`; loopback PTR names are all
//! `localhost`) serves another certificate for that name. No agent reports anything: the
//! scheduler expands the targets, the prober probes each address without SNI, under the
//! host name, under the configured extra name, under the PTR name and under the
//! certificates' names, and every certificate is found under its name. One more target is
//! an SMTP server (aiosmtpd) on a port that is not SMTP's, with `starttls = "smtp"`: its
//! certificate is captured through the upgrade, under its name too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use certfleet_model::ProbeStatus;
use certfleet_store::{EndpointFilter, EndpointRecord, Store};

use super::database::{open_store, runtime, TestDatabase};
use super::process::Service;
use certfleet_testkit::netns::Netns;

use crate::dns_server::Dnsmasq;
use crate::openssl_server::free_port;
use crate::pki::{Cert, Pki, Spec};
use crate::starttls::SmtpServer;
use crate::tls_server::TlsServer;

/// Bound on every name being probed (a few seconds when things work).
const PROBE_LIMIT: Duration = Duration::from_secs(90);

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn static_targets_and_ptr_names_find_every_certificate_under_its_name() {
    // Without root (or `ip`), no namespace: the PTR part is skipped, the rest runs.
    let mut netns = match Netns::create() {
        Ok(netns) => Some(netns),
        Err(why) => {
            certfleet_testkit::skip(&format!(
                "the PTR part: cannot create a network namespace: {why}"
            ));
            None
        }
    };
    let mut records = vec![
        "--host-record=lb.static.test,127.0.0.2".to_owned(),
        "--host-record=lb.static.test,127.0.0.3".to_owned(),
    ];
    if let Some(netns) = &netns {
        let [a, b, c, d] = netns.address.octets();
        records.push(format!(
            "--ptr-record={d}.{c}.{b}.{a}.in-addr.arpa,ptr.static.test"
        ));
    }
    let dns = match Dnsmasq::start(&records) {
        Ok(dns) => dns,
        Err(why) => {
            certfleet_testkit::skip(&format!("{why} (scripts/test installs dnsmasq)"));
            return;
        }
    };
    let pki = Pki::new();
    let leaf = |name: &str| pki.issue(name, Spec::leaf(name, &[name]), None);
    let (default, lb, www, ptr) = (
        leaf("default.static.test"),
        leaf("lb.static.test"),
        leaf("www.static.test"),
        leaf("ptr.static.test"),
    );
    let port = free_port();
    let serve_lb = |at: IpAddr| {
        TlsServer::serving(&[&default], &default)
            .for_name("lb.static.test", &[&lb], &lb)
            .for_name("www.static.test", &[&www], &www)
            .at(SocketAddr::new(at, port))
            .start()
            .expect("start a load balancer member")
    };
    let _members = [serve_lb(loopback(2)), serve_lb(loopback(3))];
    let ptr_port = free_port();
    let _range_server = TlsServer::serving(&[&default], &default)
        .at(SocketAddr::new(loopback(4), ptr_port))
        .start()
        .expect("start the server in the range");
    let ptr_target = netns.as_mut().map(|netns| {
        let address = SocketAddr::new(IpAddr::V4(netns.address), ptr_port);
        let args = [
            "s_server",
            "-quiet",
            "-accept",
            &address.to_string(),
            "-cert",
            path(&default.cert_path),
            "-key",
            path(&default.key_path),
            "-servername",
            "ptr.static.test",
            "-cert2",
            path(&ptr.cert_path),
            "-key2",
            path(&ptr.key_path),
        ];
        let log = pki.path("s_server-netns.log");
        netns.spawn("openssl", &args, &log);
        wait_for_listener(address, &log);
        address
    });

    let mail = leaf("mail.static.test");
    let tls = (path(&mail.cert_path), path(&mail.key_path));
    let smtp = SmtpServer::start(Some(tls)).expect("aiosmtpd (scripts/test installs it)");

    let database = TestDatabase::sqlite();
    let config = database.dir().join("certfleet.toml");
    let text = format!(
        "[database]\nurl = {url:?}\n\n[probe]\nallow = [\"127.0.0.0/8\", \"198.18.0.0/15\"]\n\
         timeout = \"5s\"\n\
         nameservers = [\"{dns}\"]\n\n\
         [[probe.targets]]\nhosts = [\"lb.static.test\"]\nports = [{port}]\n\
         names = [\"www.static.test\"]\napp = \"edge\"\n\n\
         [[probe.targets]]\nhosts = [\"127.0.0.4/31\"{netns_host}]\nports = [{ptr_port}]\n\n\
         [[probe.targets]]\nhosts = [\"127.0.0.1\"]\nports = [{smtp_port}]\nstarttls = \"smtp\"\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        smtp_port = smtp.port,
        url = database.url,
        dns = dns.address(),
        outbox = database.dir().join("outbox").display().to_string(),
        netns_host = ptr_target.map_or(String::new(), |at| format!(", \"{}\"", at.ip())),
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober,scheduler");
    let store = open_store(&database.url);

    let member_names = [
        None,
        Some("lb.static.test"),
        Some("www.static.test"),
        Some("default.static.test"),
    ];
    let member_leaves = [&default, &lb, &www, &default];
    let mut expected = Vec::new();
    for member in [2, 3] {
        for (name, leaf) in member_names.iter().zip(member_leaves) {
            expected.push(((loopback(member), port, *name), leaf));
        }
    }
    expected.push(((loopback(1), smtp.port, None), &mail));
    expected.push(((loopback(1), smtp.port, Some("mail.static.test")), &mail));
    expected.push(((loopback(4), ptr_port, None), &default));
    expected.push((
        (loopback(4), ptr_port, Some("default.static.test")),
        &default,
    ));
    if let Some(at) = ptr_target {
        let ptr_names = [None, Some("ptr.static.test"), Some("default.static.test")];
        for (name, leaf) in ptr_names.iter().zip([&default, &ptr, &default]) {
            expected.push(((at.ip(), ptr_port, *name), leaf));
        }
    }
    let expected: BTreeMap<(IpAddr, u16, Option<String>), String> = expected
        .into_iter()
        .map(|((address, port, name), leaf): (_, &Cert)| {
            (
                (address, port, name.map(str::to_owned)),
                leaf.sha256.clone(),
            )
        })
        .collect();

    let started = Instant::now();
    let leaves = loop {
        let leaves = probed_leaves(&*store);
        if expected.keys().all(|key| leaves.contains_key(key)) {
            break leaves;
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "not every name probed:\n{leaves:#?}\nservice log:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let found: BTreeMap<_, _> = leaves
        .into_iter()
        .filter_map(|(key, leaf)| Some((key, leaf?)))
        .collect();
    assert_eq!(found, expected, "the leaf served under each name");

    // The range's other address was expanded and probed too: nothing listens there.
    let closed = endpoints(&*store)
        .into_iter()
        .find(|endpoint| endpoint.address == "127.0.0.5");
    let closed = closed.expect("127.0.0.5 from the range is an endpoint");
    assert_eq!(closed.last_status, Some(ProbeStatus::Refused), "{closed:?}");
    // The workload fields of the target are kept, names included.
    let edge = endpoints(&*store)
        .into_iter()
        .filter(|endpoint| endpoint.port == port)
        .all(|endpoint| endpoint.tags.app.as_deref() == Some("edge"));
    assert!(edge, "every endpoint of lb.static.test has app = edge");
}

/// Every endpoint's leaf (None: not probed or no certificate), by address, port, name.
fn probed_leaves(store: &dyn Store) -> BTreeMap<(IpAddr, u16, Option<String>), Option<String>> {
    endpoints(store)
        .into_iter()
        .filter(|endpoint| endpoint.last_status.is_some())
        .map(|endpoint| {
            let leaf = endpoint.observation.and_then(|o| o.leaf_sha256);
            let address = endpoint.address.parse().expect("stored addresses are IPs");
            ((address, endpoint.port, endpoint.sni), leaf)
        })
        .collect()
}

fn endpoints(store: &dyn Store) -> Vec<EndpointRecord> {
    let filter = EndpointFilter {
        // Well under the store's page limit: this test makes about twenty.
        limit: 100,
        ..EndpointFilter::default()
    };
    runtime()
        .block_on(store.endpoints(&filter))
        .expect("list the endpoints")
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Waits (at most 10 s) until something accepts connections at `address`.
fn wait_for_listener(address: SocketAddr, log: &std::path::Path) {
    let started = Instant::now();
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "openssl s_server in the namespace did not listen at {address}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
