//! The `certfleet` binary under test, and the repository the tests read files from:
//! testkit's, which the agent's tests share (it builds the binary once per test process).

pub use certfleet_testkit::binary::{certfleet, repo};
