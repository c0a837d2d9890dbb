//! End-to-end tests of `certfleet serve`: the real binary on port 0, real databases (a
//! SQLite file, a fresh PostgreSQL database, and a private PostgreSQL server that the
//! outage test kills), real TLS servers, and agent reports posted over HTTP.
//!
//! Nothing waits a fixed time: the tests read the service's "listening" line, and poll
//! the store (every 100 ms, up to a bound) for what the service writes on its own.

mod agent_probes;
mod allowed_networks;
mod churn;
mod database;
mod e2e;
mod events;
mod export;
mod fleet_servers;
mod fresh_mail;
mod guessed_names;
mod hostile_agents;
mod http;
mod injection;
mod load;
mod metrics;
mod outage;
mod paused_prober;
pub mod private_pg;
mod probe_now;
mod probe_outage;
mod process;
mod read_replica;
mod reports;
mod retention;
mod scale_out;
mod secrets;
mod sni_names;
mod static_targets;
mod tarpit;
mod webhook;
mod zones;
