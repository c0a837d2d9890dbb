//! certfleet-agent's integration tests, one binary: the collector over a /proc tree the
//! test builds, over real network namespaces (root only; skipped otherwise, saying so),
//! and the real `certfleet agent` against a real `certfleet serve`.

mod container_tags;
mod fake_proc;
mod namespaces;
mod netns;
mod service;
mod spool_full;
mod support;
