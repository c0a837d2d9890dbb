//! The agent on a real host with test-made network namespaces: every listener is found at
//! its namespace's address with its process name; end to end, the service then probes it
//! and stores its certificate.

use std::net::IpAddr;
use std::time::Duration;

use certfleet_agent::{collect, CollectOptions, Collection};
use certfleet_model::SocketScope;
use certfleet_store::{EndpointFilter, StoreOptions};

use crate::netns::{netns_or_skip, write_certificate};
use crate::support::{
    create_token, database_url, run_agent, wait_for, write_service_config, Service,
};

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .expect("the child is running")
        .trim()
        .to_owned()
}

fn in_namespace(collection: &Collection, inode: u64, port: u16) -> bool {
    collection
        .sockets()
        .any(|s| s.netns == Some(inode) && s.port == port)
}

#[test]
fn listeners_in_a_namespace_are_found_at_its_address_with_their_process() {
    let Some(mut netns) = netns_or_skip("listeners_in_a_namespace_are_found...") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    write_certificate(dir.path(), netns.address);
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let tls = netns.spawn(
        "openssl",
        &[
            "s_server",
            "-accept",
            "8443",
            "-cert",
            cert.to_str().expect("UTF-8"),
            "-key",
            key.to_str().expect("UTF-8"),
            "-quiet",
        ],
        &dir.path().join("s_server.log"),
    );
    let web = netns.spawn(
        "python3",
        &["-m", "http.server", "--bind", "127.0.0.1", "8080"],
        &dir.path().join("http.log"),
    );
    let collection = wait_for("both listeners", Duration::from_secs(20), || {
        let collection = collect(&CollectOptions::default()).expect("collect");
        let ready = in_namespace(&collection, netns.inode, 8443)
            && in_namespace(&collection, netns.inode, 8080);
        ready.then_some(collection)
    });
    let sockets: Vec<_> = collection.sockets().collect();
    let ours: Vec<_> = sockets
        .iter()
        .filter(|s| s.netns == Some(netns.inode))
        .collect();
    let tls_socket = ours
        .iter()
        .find(|s| s.port == 8443)
        .expect("the TLS listener");
    assert_eq!(tls_socket.process.as_deref(), Some("openssl"));
    assert_eq!(tls_socket.process, Some(comm(tls)));
    assert_eq!(tls_socket.scope, SocketScope::Host);
    assert!(
        tls_socket.address.is_unspecified(),
        "s_server binds a wildcard"
    );
    assert!(
        tls_socket.reachable.contains(&IpAddr::V4(netns.address)),
        "{tls_socket:?} should be reachable at {}",
        netns.address
    );
    for host_address in &collection.host_addresses {
        assert!(
            !tls_socket.reachable.contains(host_address),
            "a namespace's listener is not reachable at the host's {host_address}"
        );
    }
    let web_socket = ours
        .iter()
        .find(|s| s.port == 8080)
        .expect("the web listener");
    assert_eq!(web_socket.scope, SocketScope::Loopback);
    assert!(web_socket.reachable.is_empty());
    assert_eq!(web_socket.process, Some(comm(web)));
    assert!(
        !sockets.iter().any(|s| s.netns != Some(netns.inode)
            && s.port == 8443
            && s.reachable.contains(&IpAddr::V4(netns.address))),
        "the listener is reported once, in its own namespace"
    );
}

#[test]
fn end_to_end_the_service_probes_a_namespace_listener_and_stores_its_certificate() {
    let Some(mut netns) = netns_or_skip("end_to_end_the_service_probes...") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sha256 = write_certificate(dir.path(), netns.address);
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    netns.spawn(
        "openssl",
        &[
            "s_server",
            "-accept",
            "8443",
            "-cert",
            cert.to_str().expect("UTF-8"),
            "-key",
            key.to_str().expect("UTF-8"),
            "-quiet",
        ],
        &dir.path().join("s_server.log"),
    );
    wait_for("the TLS listener", Duration::from_secs(20), || {
        let collection = collect(&CollectOptions::default()).expect("collect");
        in_namespace(&collection, netns.inode, 8443).then_some(())
    });
    let config = write_service_config(dir.path(), "198.18.0.0/15");
    let token = create_token(&config);
    let service = Service::start(&config, "api,prober,scheduler", "127.0.0.1:0");
    let spool = dir.path().join("spool");
    let run = run_agent(
        &[
            "--once",
            "--server",
            &service.url(),
            "--token",
            &token,
            "--tag",
            "app=netns-e2e",
        ],
        &[("CERTFLEET_AGENT__SPOOL_DIR", spool.to_str().expect("UTF-8"))],
    );
    assert!(run.status.success(), "agent failed:\n{}", run.stderr);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = runtime
        .block_on(certfleet_store::connect(
            &database_url(dir.path()),
            StoreOptions::default(),
        ))
        .expect("open the service's database");
    let filter = EndpointFilter {
        address: Some(IpAddr::V4(netns.address)),
        port: Some(8443),
        ..EndpointFilter::default()
    };
    let endpoint = wait_for("the probe's certificate", Duration::from_secs(60), || {
        let endpoints = runtime.block_on(store.endpoints(&filter)).ok()?;
        let endpoint = endpoints.into_iter().next()?;
        let probed = endpoint.observation.as_ref()?.leaf_sha256.is_some();
        probed.then_some(endpoint)
    });
    assert_eq!(endpoint.process.as_deref(), Some("openssl"));
    assert_eq!(endpoint.tags.app.as_deref(), Some("netns-e2e"));
    let observation = endpoint.observation.expect("observed");
    assert_eq!(
        observation.leaf_sha256.as_deref(),
        Some(sha256.as_str()),
        "service log:\n{}",
        service.log()
    );
}
