//! `certfleet demo` from scratch: the real binary on a free port in an empty folder, and a
//! real headless Chromium that loads its dashboard and endpoint list and sees the demo
//! certificates, probed and analysed, without anything else being started.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certfleet_testkit::browser::{chromium, dump_dom, visible};

use crate::openssl_server::free_port;

/// Upper bound for the demo to probe its endpoints (it takes a second or two).
const DEMO_LIMIT: Duration = Duration::from_secs(90);

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_dashboard_shows_the_demo_certificates_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        certfleet_testkit::skip("chromium is not installed (scripts/test installs it)");
        return;
    };
    let folder = tempfile::tempdir().expect("temporary folder");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(crate::bin::certfleet())
        .args(["demo", "--listen", &listen, "--dir"])
        .arg(folder.path().join("demo"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start certfleet demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let demo = Demo(child);
    // The demo prints the dashboard URL on a line of its own once everything runs.
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("http://"))
        .expect("the demo prints its dashboard URL");
    assert_eq!(url, format!("http://{listen}/"));

    let started = Instant::now();
    let endpoints = loop {
        let text = visible(&dump_dom(
            &chromium,
            &format!("{url}endpoints"),
            folder.path(),
        ));
        let probed = text.matches("TLSv1.3").count();
        if probed >= 7 || started.elapsed() > DEMO_LIMIT {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for subject in [
        "CN=payments.demo.test",
        "CN=billing.demo.test",
        "CN=legacy.demo.test",
    ] {
        assert!(
            endpoints.contains(subject),
            "{subject} missing from the endpoints page:\n{endpoints}"
        );
    }
    assert!(
        endpoints.contains("required"),
        "mTLS required shown: {endpoints}"
    );
    assert!(
        endpoints.contains("optional"),
        "mTLS optional shown: {endpoints}"
    );
    assert!(endpoints.contains("incomplete_chain"), "{endpoints}");
    assert!(endpoints.contains("self_signed"), "{endpoints}");
    // The list shows each of the seven sockets once, the names each is probed under
    // nested beneath it.
    let table = dump_dom(&chromium, &format!("{url}endpoints"), folder.path());
    assert_eq!(
        table.matches("<tr class=\"socket\"").count(),
        7,
        "one row per socket:\n{endpoints}"
    );
    assert!(
        table.matches("<tr class=\"name\"").count() >= 7,
        "the sockets' names nested under them:\n{endpoints}"
    );
    // A name's own page shows the socket it belongs to. A guessed name is retired once a
    // probe shows it selects the socket's default certificate, which can happen between
    // reading the list and opening the page: then the list is read again.
    let mut table = table;
    for attempt in 1.. {
        let name_row = &table[table.find("<tr class=\"name\"").expect("a name row")..];
        let link = &name_row[name_row.find("href=\"/endpoints/").expect("a link") + 6..];
        let path = &link[..link.find('"').expect("the link ends")];
        let page_url = format!("{}{path}", url.trim_end_matches('/'));
        let name_page = visible(&dump_dom(&chromium, &page_url, folder.path()));
        if name_page.contains("(retired ") && attempt < 10 {
            std::thread::sleep(std::time::Duration::from_secs(1));
            table = dump_dom(&chromium, &format!("{url}endpoints"), folder.path());
            continue;
        }
        assert!(
            name_page.contains("The socket's names"),
            "{path} shows its socket:\n{name_page}"
        );
        break;
    }

    let dashboard = visible(&dump_dom(&chromium, &url, folder.path()));
    assert!(dashboard.contains("Dashboard"), "{dashboard}");
    // Seven listening sockets, however many names each is probed under; two of them
    // require mTLS (payments, ledger), one asks for it (billing): the mTLS split counts
    // each socket once.
    let words = dashboard.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("7 sockets"), "{words}");
    assert!(
        words.contains("29% required , 14% optional , 57% none (7 sockets)"),
        "{words}"
    );
    assert!(dashboard.contains("expire within 7 days"), "{dashboard}");
    drop(demo);
}
