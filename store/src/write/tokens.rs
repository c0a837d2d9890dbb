//! Agent and operator tokens, and mTLS adoption snapshots.

use time::{Date, OffsetDateTime};

use crate::db::{with_arg, Bind, Db, Query, Tx};
use crate::error::{Error, Result};
use crate::records::*;
use crate::rows::{self, ReadRow};
use crate::token;

pub(crate) async fn create_token(
    db: &impl Db,
    agent: &AgentName,
    kind: TokenKind,
    host_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<String> {
    insert_token(db, agent, kind, host_key, now)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "agent",
                "this host already holds an active enrolled credential",
            )
        })
}

pub(crate) async fn authenticate(db: &impl Db, presented: &str) -> Result<Option<Credential>> {
    let Some(lookup) = token::lookup_of(presented) else {
        return Ok(None);
    };
    let query = with_arg(
        "SELECT agent, kind, token_sha256, host_key FROM agent_tokens \
         WHERE lookup = $1 AND revoked_at IS NULL",
        Bind::Text(lookup.to_string()),
    );
    let candidates = db
        .rows(&query)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.text("agent")?,
                rows::token_kind(row)?,
                row.bytes("token_sha256")?,
                row.opt_text("host_key")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    rows::matching_agent(presented, &candidates)
}

pub(crate) async fn revoke_tokens(
    db: &impl Db,
    agent: &AgentName,
    now: OffsetDateTime,
) -> Result<u64> {
    db.write(&Query {
        sql: "UPDATE agent_tokens SET revoked_at = $2 WHERE agent = $1 AND revoked_at IS NULL"
            .into(),
        binds: vec![Bind::Text(agent.as_str().into()), Bind::Time(now)],
    })
    .await
}

/// Every token insert. One active enrolled credential per host: a second enrollment
/// inserts nothing (the partial unique index covers `enrolled:` agents only).
const ENROLL: &str =
    "INSERT INTO agent_tokens (agent, lookup, token_sha256, created_at, host_key, kind) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (agent) WHERE revoked_at IS NULL AND agent LIKE 'enrolled:%' DO NOTHING";

/// Inserts a new token; `None` when `agent` is an enrolled host that already holds one.
pub(crate) async fn insert_token(
    db: &impl Db,
    agent: &AgentName,
    kind: TokenKind,
    host_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<String>> {
    let new = token::generate(kind)?;
    let inserted = db
        .write(&Query {
            sql: ENROLL.into(),
            binds: vec![
                Bind::Text(agent.as_str().into()),
                Bind::Text(new.lookup),
                Bind::Bytes(new.sha256),
                Bind::Time(now),
                Bind::OptText(host_key.map(str::to_string)),
                Bind::Text(kind.as_str().into()),
            ],
        })
        .await?;
    Ok((inserted == 1).then_some(new.token))
}

pub(crate) async fn snapshot_mtls_adoption(db: &impl Db, day: Date) -> Result<u64> {
    let mut transaction = db.begin().await?;
    let delete = with_arg("DELETE FROM mtls_snapshots WHERE day = $1", Bind::Date(day));
    transaction.execute(&delete).await?;
    let mut written = 0;
    for by in [MtlsGrouping::App, MtlsGrouping::Env] {
        let insert = Query {
            sql: rows::mtls_snapshot_insert(by),
            binds: vec![Bind::Date(day), Bind::Text(by.as_str().into())],
        };
        written += transaction.execute(&insert).await?;
    }
    transaction.commit().await?;
    Ok(written)
}
