//! certfleet-agent: the host side of certfleet.
//!
//! One pass ([`collect`]) finds every listening TCP socket of the host and of every other
//! network namespace on it (containers, pods), with its process name, container id and the
//! addresses it can be reached at, reading only /proc (never command lines or
//! environments). [`run`] turns passes into reports in the contract's shape
//! ([`certfleet_model::AgentReport`]) and prints them or posts them to the service, with
//! retries and a small on-disk spool for when the service is down.
//!
//! The /proc root is a setting, so tests point the collector at a directory they build.

mod collect;
mod config;
mod containers;
mod deliver;
mod enroll;
mod error;
mod http;
mod local_probe;
mod report;
mod run;
mod sockets;
mod spool;

pub mod proc;

pub use collect::{collect, CollectOptions, Visibility};
pub use config::{parse_tags, AgentConfig, ENV_PREFIX};
pub use containers::{workload_tags, Lookup, RuntimeState, MAX_STATE_FILE};
pub use deliver::{Outcome, RetryPolicy, Sender, REPORTS_PATH};
pub use error::Error;
pub use http::{Bearer, Client, Response, ServerUrl};
pub use local_probe::{allow_list, probe_all, prober, targets, ProbeLocal};
pub use report::{Collected, Identity, VERSION};
pub use run::{collect_once, run, Mode};
pub use sockets::{place, Collection};
pub use spool::{Entry, Spool};
