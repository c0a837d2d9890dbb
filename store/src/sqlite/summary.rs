//! Agent tokens and mTLS adoption.

use sqlx::SqlitePool;
use time::{Date, OffsetDateTime};

use super::{seconds, write};
use crate::error::{Error, Result};
use crate::records::*;
use crate::rows;
use crate::token;

pub(super) async fn create_token(
    pool: &SqlitePool,
    agent: &AgentName,
    host_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<String> {
    insert_token(pool, agent, host_key, now)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "agent",
                "this host already holds an active enrolled credential",
            )
        })
}

pub(super) async fn authenticate(pool: &SqlitePool, presented: &str) -> Result<Option<Credential>> {
    let Some(lookup) = token::lookup_of(presented) else {
        return Ok(None);
    };
    let candidates: Vec<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT agent, token_sha256, host_key FROM agent_tokens \
         WHERE lookup = $1 AND revoked_at IS NULL",
    )
    .bind(lookup)
    .fetch_all(pool)
    .await?;
    rows::matching_agent(presented, &candidates)
}

pub(super) async fn revoke_tokens(
    pool: &SqlitePool,
    agent: &AgentName,
    now: OffsetDateTime,
) -> Result<u64> {
    let mut transaction = write(pool).await?;
    let done = sqlx::query(
        "UPDATE agent_tokens SET revoked_at = $2 WHERE agent = $1 AND revoked_at IS NULL",
    )
    .bind(agent.as_str())
    .bind(seconds(now))
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(done.rows_affected())
}

/// Every token insert. One active enrolled credential per host: a second enrollment
/// inserts nothing (the partial unique index covers `enrolled:` agents only).
const ENROLL: &str =
    "INSERT INTO agent_tokens (agent, lookup, token_sha256, created_at, host_key) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (agent) WHERE revoked_at IS NULL AND agent LIKE 'enrolled:%' DO NOTHING";

/// Inserts a new token; `None` when `agent` is an enrolled host that already holds one.
pub(super) async fn insert_token(
    pool: &SqlitePool,
    agent: &AgentName,
    host_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<String>> {
    let new = token::generate()?;
    let mut transaction = write(pool).await?;
    let done = sqlx::query(ENROLL)
        .bind(agent.as_str())
        .bind(&new.lookup)
        .bind(&new.sha256)
        .bind(seconds(now))
        .bind(host_key)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok((done.rows_affected() == 1).then_some(new.token))
}

pub(super) async fn snapshot_mtls_adoption(pool: &SqlitePool, day: Date) -> Result<u64> {
    let day = day.to_string();
    let mut transaction = write(pool).await?;
    sqlx::query("DELETE FROM mtls_snapshots WHERE day = $1")
        .bind(&day)
        .execute(&mut *transaction)
        .await?;
    let mut written = 0;
    for by in [MtlsGrouping::App, MtlsGrouping::Env] {
        written += sqlx::query(&rows::mtls_snapshot_insert(by))
            .bind(&day)
            .bind(by.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
    }
    transaction.commit().await?;
    Ok(written)
}
