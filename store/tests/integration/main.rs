//! The store behaviour suite: written once against `Arc<dyn Store>`, run on SQLite and on
//! PostgreSQL, each test in a fresh database.
//!
//! PostgreSQL comes from `CERTFLEET_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own database
//! there and drops it afterwards.

mod durability;
mod events;
mod fixtures;
mod harness;

mod agent_probes;
mod churn;
mod container_tags;
mod fencing;
mod fresh;
mod hostile_results;
mod ingest;
mod leasing;
mod lookups;
mod mtls;
mod name_source;
mod notify;
mod osquery;
mod probe_now;
mod probes;
mod replica;
mod retention;
mod saved_overview;
mod sni_names;
mod tokens;
mod zones;
