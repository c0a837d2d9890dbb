//! Supervision of `serve`'s roles: each role is a task with a name; a role that ends or
//! panics while the service should be running is a fault. It is logged, marked on
//! `/readyz`, the other roles are asked to stop, and `serve` exits non-zero so that its
//! supervisor (systemd's `Restart=on-failure`) starts it again.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use certfleet_web::RoleHealth;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The roles of one process, running.
pub struct Roles {
    tasks: JoinSet<&'static str>,
    /// A panicked task returns no name: its id says which role it was.
    names: HashMap<tokio::task::Id, &'static str>,
    health: RoleHealth,
    shutdown: CancellationToken,
}

/// How the roles ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Asked to stop; every role finished its work (or the drain timed out).
    Stopped,
    /// A role ended on its own (`None`) or panicked (`Some(message)`).
    Failed {
        role: &'static str,
        panic: Option<String>,
    },
}

impl Roles {
    pub fn new(health: RoleHealth, shutdown: CancellationToken) -> Roles {
        Roles {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            health,
            shutdown,
        }
    }

    /// The token every role watches to stop.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts a role; it is marked running on `/readyz` until it ends.
    pub fn spawn(&mut self, role: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.health.running(role);
        let handle = self.tasks.spawn(async move {
            task.await;
            role
        });
        self.names.insert(handle.id(), role);
    }

    /// Waits for `stop` (a signal) or for a role to end, whichever comes first; then asks
    /// every role to stop and waits for them (at most `drain`).
    pub async fn run_until(mut self, stop: impl Future<Output = ()>, drain: Duration) -> Ended {
        let ended = tokio::select! {
            () = stop => Ended::Stopped,
            Some(joined) = self.tasks.join_next() => self.failed(joined),
        };
        self.stop(drain).await;
        ended
    }

    /// Asks every role to stop and waits for them (at most `drain`).
    pub async fn stop(mut self, drain: Duration) {
        self.shutdown.cancel();
        let health = self.health.clone();
        let all = async {
            while let Some(joined) = self.tasks.join_next().await {
                if let Ok(role) = joined {
                    health.stopped(role, "stopped");
                }
            }
        };
        if tokio::time::timeout(drain, all).await.is_err() {
            tracing::warn!(seconds = drain.as_secs(), "roles did not stop in time");
        }
    }

    fn failed(&self, joined: Result<&'static str, tokio::task::JoinError>) -> Ended {
        let (role, panic) = match joined {
            Ok(role) => (role, None),
            Err(error) => {
                let role = self.names.get(&error.id()).copied().unwrap_or("unknown");
                (role, Some(panic_message(error)))
            }
        };
        match &panic {
            Some(message) => tracing::error!(role, panic = %message, "role panicked; stopping"),
            None => tracing::error!(role, "role ended unexpectedly; stopping"),
        }
        self.health.stopped(role, "failed");
        Ended::Failed { role, panic }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> (Roles, RoleHealth) {
        let health = RoleHealth::default();
        (Roles::new(health.clone(), CancellationToken::new()), health)
    }

    /// A role that runs until asked to stop.
    async fn until_stopped(token: CancellationToken) {
        token.cancelled().await
    }

    #[tokio::test]
    async fn a_role_that_ends_stops_the_others_and_is_reported() {
        let (mut roles, health) = roles();
        roles.spawn("api", until_stopped(roles.shutdown()));
        roles.spawn("prober", async {});
        let ended = roles
            .run_until(std::future::pending(), Duration::from_secs(5))
            .await;
        assert_eq!(
            ended,
            Ended::Failed {
                role: "prober",
                panic: None
            }
        );
        let states = health.snapshot();
        assert_eq!(states.get("prober").map(String::as_str), Some("failed"));
        assert_eq!(states.get("api").map(String::as_str), Some("stopped"));
    }

    #[tokio::test]
    async fn a_role_that_panics_is_named_with_its_message() {
        let (mut roles, health) = roles();
        roles.spawn("api", until_stopped(roles.shutdown()));
        roles.spawn("scheduler", async {
            tokio::task::yield_now().await;
            panic!("the scheduler broke");
        });
        let ended = roles
            .run_until(std::future::pending(), Duration::from_secs(5))
            .await;
        let Ended::Failed { role, panic } = ended else {
            panic!("a panicking role must fail the service");
        };
        assert_eq!(panic.as_deref(), Some("the scheduler broke"));
        assert_eq!(role, "scheduler");
        assert!(!health.ready());
    }

    #[tokio::test]
    async fn a_signal_stops_every_role_cleanly() {
        let (mut roles, health) = roles();
        roles.spawn("api", until_stopped(roles.shutdown()));
        roles.spawn("prober", until_stopped(roles.shutdown()));
        assert!(health.ready());
        let ended = roles.run_until(async {}, Duration::from_secs(5)).await;
        assert_eq!(ended, Ended::Stopped);
        let states = health.snapshot();
        assert!(
            states.values().all(|state| state == "stopped"),
            "{states:?}"
        );
    }
}
