//! certfleet-web end to end: the real router served on 127.0.0.1:0 over a real store
//! (SQLite, and PostgreSQL from `CERTFLEET_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, one fresh database per test), seeded
//! through the Store API with probe results that carry the facts of real certificates
//! made here. One test binary: every file is a module of it.

mod support;

mod access;
mod api_certificates;
mod api_endpoints;
mod browser;
mod metrics;
mod openapi;
mod overview_snapshot;
mod pages;
mod probe_now;
