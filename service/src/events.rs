//! The `events` role: publishes the change-event outbox (docs/events.md) to a message
//! broker, in outbox order, a bounded batch at a time, and marks what the broker
//! acknowledged as published in one statement per batch.
//!
//! The broker is behind [`EventPublisher`]: publish a batch, say which events were
//! acknowledged. [`JetStreamPublisher`] is NATS JetStream; a Kafka publisher (idempotent
//! producer, the event id as the record key) implements the same trait and is wired in
//! `certfleet serve` next to it.
//!
//! Exactly once: an event is marked published only after the broker acknowledged it, so
//! none is lost (an outage, a crash before the mark: it is published again). Published
//! again, it carries the same id as `Nats-Msg-Id`, and JetStream drops a message whose id
//! it stored within the stream's duplicate window (`events.duplicate_window`), so none is
//! doubled as long as the publisher comes back within that window after a crash between
//! the acknowledgement and the mark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_trait::async_trait;
use certfleet_store::{OutboxEvent, Store};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

/// Why events could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The broker could not be reached.
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// The stream could neither be found nor created.
    #[error("cannot find or create the JetStream stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Publishing failed before any acknowledgement could come.
    #[error("cannot publish to JetStream")]
    Publish(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where change events go.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events` (in this order, any number in flight at once) and returns the
    /// `seq` of each the broker acknowledged (stored, or recognised as a duplicate of one
    /// it stored). Those missing are published again later, with the same id.
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, PublishError>;
}

/// Where and how to publish to NATS JetStream: `[events]`.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// `nats://host:port` (or `tls://`).
    pub url: String,
    /// The stream, created when missing (file storage, subjects `<prefix>.events.>`).
    pub stream: String,
    /// Subjects are `<subject_prefix>.events.<kind>`.
    pub subject_prefix: String,
    /// How long JetStream remembers a message id, to drop a second publish of it: the
    /// longest a crash between acknowledgement and mark may last without a duplicate.
    pub duplicate_window: Duration,
    /// How long to wait for an acknowledgement.
    pub ack_timeout: Duration,
}

/// Publishes to a JetStream stream with the event id as `Nats-Msg-Id`.
pub struct JetStreamPublisher {
    context: jetstream::Context,
    subject_prefix: String,
}

impl JetStreamPublisher {
    /// Connects and finds the stream, creating it when missing.
    pub async fn connect(options: &JetStreamOptions) -> Result<Self, PublishError> {
        let client = async_nats::ConnectOptions::new()
            .name("certfleet-events")
            .connection_timeout(Duration::from_secs(5))
            .connect(options.url.as_str())
            .await
            .map_err(|source| PublishError::Connect {
                url: options.url.clone(),
                source,
            })?;
        let mut context = jetstream::new(client);
        context.set_timeout(options.ack_timeout);
        let config = stream::Config {
            name: options.stream.clone(),
            subjects: vec![format!("{}.events.>", options.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: options.duplicate_window,
            ..stream::Config::default()
        };
        context
            .get_or_create_stream(config)
            .await
            .map_err(|source| PublishError::Stream {
                stream: options.stream.clone(),
                source: Box::new(source),
            })?;
        Ok(JetStreamPublisher {
            context,
            subject_prefix: options.subject_prefix.clone(),
        })
    }
}

#[async_trait]
impl EventPublisher for JetStreamPublisher {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, PublishError> {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let subject = format!("{}.events.{}", self.subject_prefix, event.kind);
            let payload = event.to_json().to_string();
            let publish = PublishMessage::build()
                .payload(payload.into())
                .message_id(event.id.as_str());
            match self.context.send_publish(subject, publish).await {
                Ok(ack) => pending.push((event.seq, ack)),
                // Not sent: this one and the rest wait for the next round.
                Err(error) if pending.is_empty() => {
                    return Err(PublishError::Publish(Box::new(error)));
                }
                Err(error) => {
                    tracing::debug!(%error, "publish interrupted; the rest is sent later");
                    break;
                }
            }
        }
        let (seqs, acks): (Vec<i64>, Vec<_>) = pending.into_iter().unzip();
        let acked = join_all(acks.into_iter().map(|ack| ack.into_future())).await;
        Ok(seqs
            .into_iter()
            .zip(acked)
            .filter_map(|(seq, ack)| ack.ok().map(|_| seq))
            .collect())
    }
}

/// How the role runs.
#[derive(Debug, Clone)]
pub struct RoleOptions {
    /// Events read and published per round (bounded: memory and in-flight acks).
    pub batch: u32,
    /// How often to look for new events when the outbox was empty.
    pub poll: Duration,
    /// Published events are deleted after this long.
    pub retention: time::Duration,
}

/// What the role did, for `/metrics` and logs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events published (acknowledged and marked) since start.
    pub published: AtomicU64,
}

/// How often published events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The longest wait between two attempts while the broker or the database is away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the role until `shutdown`: connects (`connect` again after a failure, with
/// backoff), publishes the outbox, prunes what was published long ago. Never ends on its
/// own: an outage of the broker or of the database is waited out.
pub async fn run<P, F, Fut>(
    store: Arc<dyn Store>,
    connect: F,
    options: RoleOptions,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) where
    P: EventPublisher,
    F: Fn() -> Fut + Send,
    Fut: std::future::Future<Output = Result<P, PublishError>> + Send,
{
    let mut publisher: Option<P> = None;
    let mut backoff = Duration::from_millis(250);
    let mut next_prune = tokio::time::Instant::now();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        if tokio::time::Instant::now() >= next_prune {
            match store.prune_events(options.retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "published events pruned"),
                Err(error) => tracing::warn!(%error, "cannot prune published events"),
            }
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
        }
        let wait = match round(&*store, &connect, &mut publisher, &options, &counters).await {
            Ok(Round::Full) => {
                backoff = Duration::from_millis(250);
                continue;
            }
            Ok(Round::Idle) => {
                backoff = Duration::from_millis(250);
                options.poll
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&*error), retry_in = ?backoff, "events not published");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

enum Round {
    /// A whole batch went out: look again at once.
    Full,
    /// Less than a batch: wait for the next poll.
    Idle,
}

type RoundError = Box<dyn std::error::Error + Send + Sync>;

async fn round<P, F, Fut>(
    store: &dyn Store,
    connect: &F,
    publisher: &mut Option<P>,
    options: &RoleOptions,
    counters: &Counters,
) -> Result<Round, RoundError>
where
    P: EventPublisher,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<P, PublishError>>,
{
    let events = store.pending_events(options.batch).await?;
    if events.is_empty() {
        return Ok(Round::Idle);
    }
    let current = match publisher.take() {
        Some(current) => current,
        None => connect().await?,
    };
    let acked = match current.publish(&events).await {
        Ok(acked) => acked,
        // Connect afresh next time.
        Err(error) => return Err(error.into()),
    };
    *publisher = Some(current);
    // Marked in one statement; if the database fails here, these are published again
    // (and dropped by JetStream as duplicates within the window).
    let marked = store.events_published(&acked).await?;
    counters.published.fetch_add(marked, Ordering::Relaxed);
    if acked.len() < events.len() {
        let missing = events.len() - acked.len();
        return Err(format!("{missing} of {} events not acknowledged", events.len()).into());
    }
    tracing::debug!(published = acked.len(), "events published");
    if events.len() as u64 >= u64::from(options.batch) {
        Ok(Round::Full)
    } else {
        Ok(Round::Idle)
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks the `[events]` settings before anything connects: the URL is a NATS server
/// address, the stream a valid stream name and the prefix valid subject tokens. The
/// error names the key.
pub fn check_options(options: &JetStreamOptions) -> Result<(), String> {
    let url = options.url.trim();
    if !(url.starts_with("nats://") || url.starts_with("tls://")) {
        return Err("events.nats_url must start with nats:// or tls://".into());
    }
    let address = url
        .parse::<async_nats::ServerAddr>()
        .map_err(|error| format!("events.nats_url is not a NATS server address: {error}"))?;
    if address.host().is_empty() {
        return Err("events.nats_url names no host".into());
    }
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !name_ok(&options.stream) {
        return Err("events.stream must be letters, digits, '-' or '_' (at most 255)".into());
    }
    if options.subject_prefix.len() > 200 || !options.subject_prefix.split('.').all(name_ok) {
        return Err(
            "events.subject_prefix must be dot-separated tokens of letters, digits, '-' or '_'"
                .into(),
        );
    }
    if options.duplicate_window.is_zero() {
        return Err("events.duplicate_window must be longer than zero".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> JetStreamOptions {
        JetStreamOptions {
            url: url.into(),
            stream: "CERTFLEET".into(),
            subject_prefix: "certfleet".into(),
            duplicate_window: Duration::from_secs(600),
            ack_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_nats_url_and_names_are_accepted() {
        assert_eq!(check_options(&options("nats://127.0.0.1:4222")), Ok(()));
        assert_eq!(
            check_options(&options("tls://nats.example.com:4222")),
            Ok(())
        );
    }

    #[test]
    fn malformed_and_hostile_settings_are_refused_naming_the_key() {
        for url in [
            "",
            "http://127.0.0.1:4222",
            "nats://",
            "nats://host:notaport",
            "nats://host:99999",
            "127.0.0.1:4222",
        ] {
            let error = check_options(&options(url)).expect_err(url);
            assert!(error.contains("events.nats_url"), "{url}: {error}");
        }
        for stream in ["", "A.B", "a b", "x>", "a*", &"s".repeat(300)] {
            let mut bad = options("nats://127.0.0.1:4222");
            bad.stream = stream.into();
            let error = check_options(&bad).expect_err(stream);
            assert!(error.contains("events.stream"), "{error}");
        }
        for prefix in ["", "a..b", "a.>", "a.*", "a b", "a.\r\nPUB x"] {
            let mut bad = options("nats://127.0.0.1:4222");
            bad.subject_prefix = prefix.into();
            let error = check_options(&bad).expect_err(prefix);
            assert!(error.contains("events.subject_prefix"), "{error}");
        }
    }
}
