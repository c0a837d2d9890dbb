//! Delivery: post each report with retries and exponential back-off (full jitter), keep what
//! could not be delivered in the spool, and drain the spool oldest first once the server
//! answers again, so that the newest report is always the last one the server sees.

use std::time::Duration;

use crate::http::{Bearer, Client};
use crate::spool::Spool;
use crate::Error;

/// The ingest route, under the server URL's prefix.
pub const REPORTS_PATH: &str = "/api/v1/reports";

/// How often and how patiently one report is posted.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Back-off ceiling before the second attempt; doubles with each attempt.
    pub backoff: Duration,
    /// Largest back-off ceiling.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (0-based), for a uniform `random` in [0, 1):
    /// "full jitter", anywhere between zero and the exponential ceiling, so that agents
    /// that failed together do not retry together.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let ceiling = self
            .backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.backoff_max);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }
}

/// What one delivery did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Reports the server accepted (spooled ones included).
    pub delivered: usize,
    /// Whether this cycle's report went to the spool.
    pub spooled: bool,
    /// Reports given up: refused by the server for good, or pushed out of a full spool.
    pub dropped: usize,
    /// The last failure, if any.
    pub error: Option<Error>,
}

impl Outcome {
    /// Every report of this cycle (and the spool) reached the server.
    pub fn is_complete(&self) -> bool {
        !self.spooled && self.error.is_none()
    }
}

/// Posts reports to the server, through the spool when it is down.
pub struct Sender {
    client: Client,
    token: Bearer,
    retry: RetryPolicy,
    spool: Option<Spool>,
}

impl Sender {
    /// A sender; without a spool, undeliverable reports are lost (and said so).
    pub fn new(client: Client, token: Bearer, retry: RetryPolicy, spool: Option<Spool>) -> Self {
        Sender {
            client,
            token,
            retry,
            spool,
        }
    }

    /// Delivers the spool, oldest first, then this cycle's report; spools the report when
    /// the server cannot take it now.
    pub async fn deliver(&self, report: &[u8]) -> Outcome {
        let mut outcome = Outcome::default();
        let mut server_down = false;
        if let Some(spool) = &self.spool {
            match spool.entries() {
                Ok(entries) => {
                    for entry in entries {
                        let body = match spool.read(&entry) {
                            Ok(body) => body,
                            Err(error) => {
                                tracing::warn!(%error, "unreadable spooled report skipped");
                                continue;
                            }
                        };
                        match self.send(&body).await {
                            Ok(()) => outcome.delivered += 1,
                            Err(error) if error.keeps_report() => {
                                outcome.error = Some(error);
                                server_down = true;
                                break;
                            }
                            Err(error) => {
                                tracing::error!(%error, path = %entry.path.display(),
                                    "the server refused a spooled report; dropped");
                                outcome.dropped += 1;
                                outcome.error = Some(error);
                            }
                        }
                        if let Err(error) = spool.remove(&entry) {
                            tracing::warn!(%error, "cannot remove a delivered report");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot list the spool"),
            }
        }
        if !server_down {
            match self.send(report).await {
                Ok(()) => {
                    outcome.delivered += 1;
                    return outcome;
                }
                Err(error) if error.keeps_report() => outcome.error = Some(error),
                Err(error) => {
                    tracing::error!(%error, "the server refused the report; dropped");
                    outcome.dropped += 1;
                    outcome.error = Some(error);
                    return outcome;
                }
            }
        }
        match &self.spool {
            Some(spool) => match spool.push(report) {
                Ok(dropped) => {
                    outcome.spooled = true;
                    outcome.dropped += dropped;
                    if dropped > 0 {
                        tracing::warn!(dropped, "spool full: the oldest reports were dropped");
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot spool the report; it is lost");
                    outcome.dropped += 1;
                }
            },
            None => {
                tracing::error!("no spool configured: the undelivered report is lost");
                outcome.dropped += 1;
            }
        }
        outcome
    }

    /// One report, with retries for transient failures.
    pub async fn send(&self, body: &[u8]) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .post_gzip_json(REPORTS_PATH, &self.token, body)
                .await;
            match result {
                Ok(response) => {
                    let answer = String::from_utf8_lossy(&response.body);
                    tracing::info!(status = response.status, answer = %answer.trim(),
                        "report delivered");
                    return Ok(());
                }
                Err(error) if error.is_transient() && attempt + 1 < self.retry.attempts => {
                    let wait = self.retry.delay(attempt, random_fraction());
                    tracing::warn!(%error, attempt = attempt + 1, ?wait, "delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// A uniform random number in [0, 1) from the operating system (jitter needs no more).
pub fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No randomness source: use the clock's nanoseconds, still different per host.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        return f64::from(nanos) / 1e9;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_jitter_stays_inside() {
        let policy = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (0..8).map(|n| policy.delay(n, 1.0).as_secs()).collect();
        assert_eq!(ceilings, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(policy.delay(200, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        for _ in 0..100 {
            let random = random_fraction();
            assert!((0.0..1.0).contains(&random));
            assert!(policy.delay(2, random) <= Duration::from_secs(8));
        }
    }
}
