//! `[events]`: where change events are published (docs/events.md).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// `nats://host:port` of a NATS server with JetStream; empty: no events are written
    /// or published.
    pub nats_url: String,
    /// The JetStream stream, created (file storage) when missing.
    pub stream: String,
    /// Subjects are `<subject_prefix>.events.<kind>`.
    pub subject_prefix: String,
    /// How long JetStream remembers an event id to drop a second publish of it; set on
    /// the stream when it is created.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Published events are deleted from the outbox after this long.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Events published per round (at most 10,000).
    pub batch: u32,
    /// How often the publisher looks for new events when the outbox was empty.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// How long to wait for JetStream to acknowledge an event.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            nats_url: String::new(),
            stream: "CERTFLEET".into(),
            subject_prefix: "certfleet".into(),
            duplicate_window: Duration::from_secs(600),
            retention: Duration::from_secs(7 * 86_400),
            batch: 1_000,
            poll: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(10),
        }
    }
}

impl EventsConfig {
    /// Whether events are on.
    pub fn enabled(&self) -> bool {
        !self.nats_url.trim().is_empty()
    }

    /// The publisher's connection settings.
    pub fn jetstream(&self) -> certfleet_service::events::JetStreamOptions {
        certfleet_service::events::JetStreamOptions {
            url: self.nats_url.trim().to_owned(),
            stream: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            duplicate_window: self.duplicate_window,
            ack_timeout: self.ack_timeout,
        }
    }

    /// Checks the settings when events are on; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if !(1..=10_000).contains(&self.batch) {
            return Err("events.batch must be between 1 and 10000".into());
        }
        if self.poll.is_zero() || self.ack_timeout.is_zero() {
            return Err("events.poll and events.ack_timeout must be longer than zero".into());
        }
        certfleet_service::events::check_options(&self.jetstream())
    }
}
