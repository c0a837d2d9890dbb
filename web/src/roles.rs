//! Which roles of the process run, for `/readyz`: `serve` supervises its roles and marks
//! each here as it starts and ends; a role that is not running makes the process not
//! ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The roles of this process and their state (`running`, `stopped`, `failed`).
#[derive(Debug, Clone, Default)]
pub struct RoleHealth(Arc<Mutex<BTreeMap<&'static str, &'static str>>>);

impl RoleHealth {
    /// `role` runs.
    pub fn running(&self, role: &'static str) {
        self.set(role, "running");
    }

    /// `role` no longer runs: `stopped` when asked to, `failed` otherwise.
    pub fn stopped(&self, role: &'static str, state: &'static str) {
        self.set(role, state);
    }

    /// True when every role runs (and there is at least none that failed).
    pub fn ready(&self) -> bool {
        self.snapshot().values().all(|state| state == "running")
    }

    /// Every role and its state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let roles = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        roles
            .iter()
            .map(|(role, state)| ((*role).to_owned(), (*state).to_owned()))
            .collect()
    }

    fn set(&self, role: &'static str, state: &'static str) {
        let mut roles = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        roles.insert(role, state);
    }
}
