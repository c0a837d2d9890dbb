//! What a person sees, in a real headless Chromium (Debian's `chromium`, installed by
//! scripts/test): the dashboard, a search by host name, a search by a pasted serial in
//! capitals with colons, and the certificate page. Screenshots are kept under
//! `target/test-artifacts/`.
//!
//! Chromium is driven from the command line (`--dump-dom` for the DOM after load,
//! `--screenshot` for a picture): the pages need no JavaScript, so nothing more is needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use certfleet_testkit::browser::{chromium, visible, HEADLESS};

use crate::support::http::encode;
use crate::support::TestApp;

/// A guard against a hung browser; a page here loads in well under a second.
const BROWSER_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_finds_a_certificate_from_the_dashboard() {
    let Some(chromium) = chromium() else {
        certfleet_testkit::skip(
            "chromium is not installed (scripts/test installs Debian's chromium)",
        );
        return;
    };
    let setup = crate::support::harness::Setup { read_token: false };
    crate::support::harness::on_sqlite(setup, move |app| browse(app, chromium)).await;
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let directory = target.join("test-artifacts");
    std::fs::create_dir_all(&directory).expect("artifact directory");
    directory
}

/// Runs chromium headless on `url` with `action` (`--dump-dom` or `--screenshot=...`,
/// with more flags before it, separated by spaces);
/// returns its standard output.
async fn run(chromium: &Path, url: &str, action: &str) -> String {
    let profile = tempfile::tempdir().expect("fresh profile directory");
    let mut command = tokio::process::Command::new(chromium);
    command
        .args(HEADLESS)
        .args(["--hide-scrollbars", "--window-size=1280,1400"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(action.split(' '))
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_LIMIT, command.output())
        .await
        .expect("chromium finishes within the guard")
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium {action} {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn look(chromium: &Path, app: &TestApp, path: &str, name: &str) -> String {
    let url = app.url(path);
    let file = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&file);
    run(chromium, &url, &format!("--screenshot={}", file.display())).await;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a real screenshot of {path} at {}",
        file.display()
    );
    run(chromium, &url, "--dump-dom").await
}

async fn browse(app: TestApp, chromium: PathBuf) {
    let fleet = &app.fleet;
    let dashboard = look(&chromium, &app, "/", "01-dashboard").await;
    let text = visible(&dashboard);
    assert!(text.contains("9 endpoints"), "{text}");
    assert!(text.contains("1 expired, still served"), "{text}");
    assert!(text.contains("2 expire within 30 days"), "{text}");
    assert!(
        text.contains("Weak keys (RSA < 2048, EC < 256) 1"),
        "{text}"
    );
    assert!(text.contains("25% required"), "{text}");
    assert!(
        dashboard.contains("action=\"/search\"") && dashboard.contains("name=\"q\""),
        "the search box submits GET /search?q="
    );

    let results = look(
        &chromium,
        &app,
        "/search?q=api.example.test",
        "02-search-hostname",
    )
    .await;
    let text = visible(&results);
    assert!(text.contains("2 certificate(s) by hostname"), "{text}");
    let link = format!("/certificates/{}", fleet.api.info.sha256);
    assert!(results.contains(&link), "a link to the certificate page");

    let pasted = "0A:1B:2C:3D:4E:5F:60";
    let opened = look(
        &chromium,
        &app,
        &format!("/search?q={}", encode(pasted)),
        "03-search-serial",
    )
    .await;
    let certificate = look(&chromium, &app, &link, "04-certificate").await;
    for dom in [&opened, &certificate] {
        let text = visible(dom);
        assert!(
            text.contains(&fleet.api.info.subject),
            "subject shown: {text}"
        );
        assert!(text.contains("10 days left"), "days left shown: {text}");
        assert!(text.contains("served now by 1 endpoint(s)"), "{text}");
        assert!(text.contains("10.1.0.10:443"), "where it is served: {text}");
        assert!(
            text.contains("billing-team@example.com"),
            "its owner: {text}"
        );
        assert!(text.contains("a1b2c3d4e5f60"), "its serial: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_asks_for_a_probe_with_the_page_button() {
    let Some(chromium) = chromium() else {
        certfleet_testkit::skip(
            "chromium is not installed (scripts/test installs Debian's chromium)",
        );
        return;
    };
    let setup = crate::support::harness::Setup { read_token: false };
    crate::support::harness::on_sqlite(setup, move |app| press_probe_now(app, chromium)).await;
}

/// The endpoint page shows the button; the browser submits its form as rendered (the
/// page's own form, with the operator's token typed in: a small local page holds a copy
/// of it and submits it, as a person pressing the button would), and the answer says the
/// probe was requested, which the next prober lease confirms.
async fn press_probe_now(app: TestApp, chromium: PathBuf) {
    let api = app.fleet.api_endpoint;
    // The seeded fleet's never-probed endpoints are due: a prober takes them first.
    app.store
        .lease_due_endpoints("test-prober", 100, time::Duration::minutes(5))
        .await
        .expect("lease");
    let page = look(
        &chromium,
        &app,
        &format!("/endpoints/{}", api.0),
        "05-endpoint",
    )
    .await;
    assert!(visible(&page).contains("Probe now"), "{page}");
    let start = page
        .find("<form id=\"probe-now\"")
        .expect("the Probe now form");
    let end = start + page[start..].find("</form>").expect("the form ends") + "</form>".len();
    let form = &page[start..end];
    assert!(
        form.contains("type=\"password\""),
        "the token is typed, hidden: {form}"
    );

    // The form as the page rendered it, its action made absolute (the copy is a local
    // file) and the token typed in.
    let action = format!("action=\"{}", app.url("/endpoints/"));
    let form = form.replacen("action=\"/endpoints/", &action, 1).replacen(
        "name=\"token\"",
        &format!("name=\"token\" value=\"{}\"", app.operator_token),
        1,
    );
    let directory = tempfile::tempdir().expect("scratch directory");
    let press = directory.path().join("press.html");
    let script = "<script>document.getElementById('probe-now').requestSubmit()</script>";
    std::fs::write(
        &press,
        format!("<!DOCTYPE html><html><body>{form}{script}</body></html>"),
    )
    .expect("writes the page");
    let answer = run(
        &chromium,
        &format!("file://{}", press.display()),
        "--virtual-time-budget=10000 --dump-dom",
    )
    .await;
    let text = visible(&answer);
    assert!(text.contains("Probe requested"), "{answer}");
    assert!(
        text.contains("A probe of 10.1.0.10:443 was requested"),
        "{text}"
    );
    let leased = app
        .store
        .lease_due_endpoints("test-prober", 100, time::Duration::minutes(5))
        .await
        .expect("lease");
    let ids: Vec<_> = leased.iter().map(|lease| lease.id).collect();
    assert_eq!(ids, vec![api], "the button asked for exactly this endpoint");
}
