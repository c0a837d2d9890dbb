//! `/healthz` (the process answers) and `/readyz` (its database answers and every role
//! of the process runs; with a read replica, a line says whether reads go to it).

use axum::extract::State;
use axum::http::StatusCode;

use certfleet_store::ReplicaStatus;

use crate::{ApiError, AppState};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `ready` and a line per role (`api: running`), or `503` with the roles that are not
/// running. With a read replica, a `replica:` line says where reads go; a replica that is
/// down or behind does not make the process unready, since the primary answers its reads.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, String), ApiError> {
    state.store.ping().await?;
    let roles = state.roles.snapshot();
    let lines: String = roles
        .iter()
        .map(|(role, role_state)| format!("{role}: {role_state}\n"))
        .collect();
    let lines = match &state.replica {
        Some(replica) => lines + &replica_line(&replica.status()),
        None => lines,
    };
    if state.roles.ready() {
        Ok((StatusCode::OK, format!("ready\n{lines}")))
    } else {
        Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{lines}"),
        ))
    }
}

/// `replica: up, lag 0.2s`, or why reads go to the primary.
fn replica_line(status: &ReplicaStatus) -> String {
    let lag = status.lag.map(|lag| format!("{:.1}s", lag.as_secs_f64()));
    let max = status.max_lag.as_secs_f64();
    match (status.up, lag) {
        (false, _) => "replica: down, reads from the primary\n".to_owned(),
        (true, None) => "replica: not caught up yet, reads from the primary\n".to_owned(),
        (true, Some(lag)) if !status.serves_reads() => {
            format!("replica: behind by {lag} (over {max}s), reads from the primary\n")
        }
        (true, Some(lag)) => format!("replica: up, lag {lag}\n"),
    }
}
