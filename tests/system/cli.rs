//! Runs the real `certfleet` binary and parses what `certfleet probe` prints.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

/// No probe run in these tests should take longer; a hung binary fails the test instead of
/// hanging the suite.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// One finished `certfleet probe` run.
pub struct Run {
    pub args: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    pub started: OffsetDateTime,
    pub finished: OffsetDateTime,
    pub wall: Duration,
}

/// `certfleet probe ARGS... --format json`; asserts exit 0 and one JSON object per line.
pub fn probe_json(args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--format", "json"]);
    let run = probe(&all, None);
    let _ = run.lines();
    run
}

/// `certfleet probe ARGS...` with `stdin` written to its standard input; asserts exit 0.
pub fn probe(args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(crate::bin::certfleet());
    command
        .arg("probe")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let mut child = command.spawn().expect("start the certfleet binary");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .expect("write targets to stdin");
    }
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for certfleet") {
            break status;
        }
        if clock.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("certfleet probe {args:?} still running after {RUN_LIMIT:?}; killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
        started,
        finished: OffsetDateTime::now_utc(),
        wall: clock.elapsed(),
    };
    assert!(
        status.success(),
        "certfleet probe {:?} exited with {status}\nstdout:\n{}\nstderr:\n{}",
        run.args,
        run.stdout,
        run.stderr
    );
    run
}

impl Run {
    /// Every stdout line, parsed as one JSON object.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|err| {
                    panic!("not a JSON line ({err}): {line}\n{}", self.context())
                });
                assert!(value.is_object(), "not a JSON object: {line}");
                value
            })
            .collect()
    }

    /// All result lines for `target` (one per resolved address).
    pub fn results(&self, target: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["target"] == target)
            .collect()
    }

    /// The single result line for `target`.
    pub fn result(&self, target: &str) -> Value {
        let mut results = self.results(target);
        assert_eq!(
            results.len(),
            1,
            "expected exactly one line for {target}\n{}",
            self.context()
        );
        results.remove(0)
    }

    /// The arguments and output, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "args: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.stdout, self.stderr
        )
    }
}
