//! Test support shared by the integration tests of several crates (never a dependency of
//! anything shipped). Network namespaces are what both the agent's and the service's tests
//! need to use addresses other than loopback without sending traffic off the machine.

pub mod netns;

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
