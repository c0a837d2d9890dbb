//! Prometheus's own checker, `promtool` (Debian's `prometheus` package, which
//! `scripts/test` installs): `check rules` for the shipped alert rules and `check metrics`
//! for what `/metrics` serves. Our own tests of the format only see what we thought of.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Whether `promtool` runs here; when it does not, [`skip`](crate::skip) says so (a
/// failure under `CERTFLEET_TEST_STRICT=1`).
pub fn promtool_or_skip() -> bool {
    let runs = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !runs {
        crate::skip("promtool is not installed (scripts/test installs Debian's prometheus)");
    }
    runs
}

/// `promtool check rules FILE`: panics with promtool's words unless the rules are valid.
pub fn check_rules(file: &Path) {
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("run promtool check rules");
    assert_ok("check rules", &output);
}

/// `promtool check metrics` on an exposition: panics with promtool's words on any error
/// or lint problem (names, units, types, help).
pub fn check_metrics(exposition: &[u8]) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool check metrics");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(exposition)
        .expect("write the exposition to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    assert_ok("check metrics", &output);
}

fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "promtool {what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
