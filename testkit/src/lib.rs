//! Test support shared by the integration tests of several crates (never a dependency of
//! anything shipped): network namespaces (addresses other than loopback without traffic
//! off the machine), headless Chromium, promtool, skips, waits, the fuzz seed corpus, and
//! the `certfleet` binary the system and agent tests run (built once per test process).

pub mod binary;
pub mod browser;
pub mod json_schema;
pub mod nats;
pub mod netns;
pub mod postgres;
pub mod promtool;

/// Says why the calling test (or part of it) cannot run on this machine. Under
/// `CERTFLEET_TEST_STRICT=1`, which `scripts/test` sets when it runs as root after
/// installing every tool the tests use, that is a failure instead: a suite that silently
/// skips would pass without testing anything.
pub fn skip(why: &str) {
    if std::env::var("CERTFLEET_TEST_STRICT").as_deref() == Ok("1") {
        panic!("cannot run under CERTFLEET_TEST_STRICT=1: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Polls `done` every 20 ms until it holds; fails after `limit`, saying what it waited for
/// and what `context` tells (logs, counts) at that moment.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    context: &dyn Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every file of the fuzz seed corpus `fuzz/corpus/<target>/`, as (path, bytes) in name
/// order; fails unless there are at least `minimum`, so a test feeding them through the
/// fuzz target's function can never pass on an empty or missing corpus.
pub fn fuzz_corpus(target: &str, minimum: usize) -> Vec<(String, Vec<u8>)> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("corpus file reads");
            (path.display().to_string(), bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= minimum,
        "{}: {} files, expected at least {minimum}",
        folder.display(),
        files.len()
    );
    files
}

/// `bytes` random bytes as lowercase hex (names that never collide between test runs).
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut buffer))
        .expect("read /dev/urandom");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
