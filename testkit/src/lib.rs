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
