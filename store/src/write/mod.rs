//! Every write, written once against [`Db`](crate::db::Db): a write transaction runs
//! [`Query`](crate::db::Query)s, batches are bound by the backend
//! ([`Db::bind_batch`](crate::db::Db::bind_batch)), and where the SQL itself differs the
//! text is chosen by [`Dialect`](crate::db::Dialect) (a method for a small difference,
//! a `match` for a statement each backend writes its own way: leases, certificates,
//! named endpoints, the notification lease).

pub(crate) mod agent_probes;
pub(crate) mod events;
pub(crate) mod ingest;
pub(crate) mod leases;
mod named;
pub(crate) mod notify;
pub(crate) mod osquery;
mod probe_events;
pub(crate) mod probes;
mod prune;
pub(crate) mod static_endpoints;
pub(crate) mod tokens;

/// Rows per statement in batched writes: large enough that a 10,000-socket report is one
/// statement, small enough to bound one statement's memory.
const CHUNK: usize = 10_000;
