//! certfleet's expiry notifications: which certificates in use approach expiry, who owns
//! them, and one digest email per owner, delivered from a durable outbox.
//!
//! A run ([`Notifier::run_once`]):
//!
//! 1. **Decide**: read every certificate in the current chain of an active endpoint that
//!    expires within the largest threshold, work out each endpoint's owner
//!    ([`OwnerRules`]) and what is due ([`policy::level`]): the tightest threshold crossed,
//!    "renewal late" for short-lived certificates, or "expired but still served".
//!    Before mail goes out about an endpoint last probed longer ago than
//!    `confirm_within`, the endpoint is probed again ([`Confirm`]) and the decision made
//!    again: a certificate replaced since is not mailed about (a pending notification of
//!    it resolves as rotated).
//! 2. **Claim** each (certificate, owner, level) in the store. The unique constraint makes
//!    a claim happen once, whichever scheduler gets there first; a claimed row stays in
//!    the outbox until sent or resolved.
//! 3. **Resolve** what no longer stands: a certificate the owner's endpoints stopped
//!    serving (its pending rows are dropped; if the owner had been told, a "no longer
//!    served" notice is claimed), or a muted one.
//! 4. **Deliver**: lease the due rows owner by owner, render one digest per owner, send it
//!    (SMTP through lettre, or `.eml` files; a webhook's as a signed HTTP post), and
//!    record it as sent, or record the failure's reason and when to try again.

mod confirm;
mod digest;
mod error;
mod owners;
mod plan;
pub mod policy;
mod run;
mod settings;
mod transport;
mod webhook;

pub use confirm::{Confirm, Confirmed};
pub use digest::{display_name, time_left, Digest};
pub use error::{Error, Result};
pub use owners::{OwnerRule, OwnerRules, Ownership};
pub use plan::{cleanup, Cleanup, Decision, Served, ServedAt};
pub use run::{Failure, Notifier, RunReport};
pub use settings::{Backoff, Delivery, ProbeLinks, Settings};
pub use transport::{message, DeliveryError, Mailer};
pub use webhook::{
    delivery_id, signature, Format as WebhookFormat, PostError, Webhook, WebhookSpec,
};
