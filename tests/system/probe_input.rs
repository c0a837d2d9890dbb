//! Where targets come from (arguments, `-f FILE`, `-` for stdin) and the table format.

use crate::check::{assert_chain, assert_failed, assert_ok};
use crate::cli::{probe, probe_json, Run};
use crate::pki::{Chain, Pki, Spec};
use crate::plain_servers::closed_port;
use crate::tls_server::TlsServer;

/// A TLS server, and three targets: the server, the server with an SNI name, a closed port.
struct Targets {
    chain: Chain,
    _server: TlsServer,
    ok: String,
    with_sni: String,
    closed: String,
}

impl Targets {
    fn new(pki: &Pki) -> Targets {
        let chain = pki.chain(Spec::leaf("list.test", &["list.test"]));
        let server = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
            .start()
            .expect("start the rustls server");
        let ok = server.target();
        Targets {
            with_sni: format!("{ok}@list.test"),
            ok,
            closed: format!("127.0.0.1:{}", closed_port()),
            chain,
            _server: server,
        }
    }

    fn lines(&self) -> String {
        format!("{}\n{}\n{}\n", self.ok, self.with_sni, self.closed)
    }

    fn assert_reported(&self, run: &Run) {
        assert_eq!(
            run.lines().len(),
            3,
            "one line per target\n{}",
            run.context()
        );
        let served = [&self.chain.leaf, &self.chain.intermediate];
        let result = run.result(&self.ok);
        assert_ok(&result, &self.ok, run);
        assert_chain(&result, &served);
        let result = run.result(&self.with_sni);
        assert_ok(&result, &self.with_sni, run);
        assert_eq!(result["sni"], "list.test");
        assert_chain(&result, &served);
        assert_failed(&run.result(&self.closed), &self.closed, "refused", run);
    }
}

#[test]
fn targets_are_read_from_a_file() {
    let pki = Pki::new();
    let targets = Targets::new(&pki);
    // `certfleet probe --help`: one target per line, `#` starts a comment.
    let text = format!("# endpoints to check\n\n{}", targets.lines());
    let file = pki.write("targets.txt", &text);
    let file = file.to_str().expect("temporary paths are UTF-8");

    let run = probe_json(&["-f", file, "--timeout", "5s", "--concurrency", "2"]);
    targets.assert_reported(&run);
}

#[test]
fn targets_are_read_from_stdin() {
    let pki = Pki::new();
    let targets = Targets::new(&pki);

    let run = probe(
        &["-", "--format", "json", "--timeout", "5s"],
        Some(&targets.lines()),
    );
    targets.assert_reported(&run);
}

#[test]
fn table_format_prints_a_line_per_target_with_its_status() {
    let pki = Pki::new();
    let targets = Targets::new(&pki);

    let run = probe(
        &[
            &targets.ok,
            &targets.closed,
            "--format",
            "table",
            "--timeout",
            "5s",
        ],
        None,
    );
    for (target, status) in [(&targets.ok, "ok"), (&targets.closed, "refused")] {
        let line = run
            .stdout
            .lines()
            .find(|line| line.contains(target.as_str()))
            .unwrap_or_else(|| panic!("a line for {target}\n{}", run.context()));
        assert!(
            line.contains(status),
            "{status} in {line:?}\n{}",
            run.context()
        );
    }
}

#[test]
fn many_targets_with_low_concurrency_are_all_reported_once() {
    let pki = Pki::new();
    let targets = Targets::new(&pki);
    let closed: Vec<String> = (0..6)
        .map(|_| format!("127.0.0.1:{}", closed_port()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut args: Vec<&str> = closed.iter().map(String::as_str).collect();
    args.extend([targets.ok.as_str(), "--concurrency", "1", "--timeout", "5s"]);

    let run = probe_json(&args);
    assert_eq!(run.lines().len(), closed.len() + 1, "{}", run.context());
    for target in &closed {
        assert_failed(&run.result(target), target, "refused", &run);
    }
    assert_ok(&run.result(&targets.ok), &targets.ok, &run);
}

/// The command line prints an error and its causes (anyhow's `{:#}`); each is said once.
#[test]
fn a_missing_ca_file_is_reported_with_its_cause_said_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing-ca.pem");
    let output = std::process::Command::new(crate::bin::certfleet())
        .arg("probe")
        .arg("--ca-file")
        .arg(&missing)
        .arg("127.0.0.1:1")
        .output()
        .expect("run certfleet probe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read CA file {}", missing.display())),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}
