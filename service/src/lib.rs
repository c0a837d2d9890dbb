//! certfleet's service roles, the long-running parts of `certfleet serve`, as a library:
//! the command-line crate only parses flags and configuration and wires these together.
//!
//! - [`prober_worker`]: lease due endpoints, probe them, record the results in batches
//!   (with [`probe_lines`] keeping one address from holding up the others, and
//!   [`ptr_names`] adding reverse-DNS names to present).
//! - [`heartbeat`]: a prober announces itself (zones, version, probe rate) to the store.
//! - [`scheduler`]: periodic store housekeeping and the expiry notifier.
//! - [`static_targets`]: endpoints no agent reports (`[[probe.targets]]`).
//! - [`confirm`]: the notifier's confirm-before-mail probe, run in-process under leases.
//! - [`events`]: publishes the change-event outbox to NATS JetStream ([`events::EventPublisher`]).
//! - [`supervise`]: runs the roles, notices one that ends or panics, and stops the rest.
//!
//! The HTTP role is `certfleet-web`'s router; its health ([`certfleet_web::RoleHealth`]) is
//! what the supervisor reports on.

pub mod confirm;
pub mod events;
pub mod heartbeat;
pub mod probe_lines;
pub mod prober_worker;
pub mod ptr_names;
pub mod scheduler;
pub mod static_targets;
pub mod supervise;
