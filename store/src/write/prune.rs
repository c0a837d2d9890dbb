//! Retention's SQL ([`crate::RetentionStore`]): one batch is one write transaction that
//! deletes at most `batch` rows of each kind, oldest first, and adds what it deleted to
//! `retention_totals`.
//!
//! On PostgreSQL the rows a batch takes are locked (`FOR UPDATE ... SKIP LOCKED`): a row a
//! report or a probe is writing right now is being seen again, so it is skipped, and two
//! schedulers never take the same rows. Each candidate's condition is checked again on
//! the locked row, so a certificate served again, an endpoint revived or a host that
//! reported again since the batch began is left alone. SQLite's write transaction holds
//! the whole database.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::db::{plain, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::retention::{PruneCounts, RetentionPolicy, RetentionStore, MAX_BATCH};
use crate::rows::ReadRow;
use crate::store::SqlStore;

#[async_trait]
impl<D: Db> RetentionStore for SqlStore<D> {
    async fn prune_batch(&self, policy: &RetentionPolicy) -> Result<PruneCounts> {
        prune_batch(self.pool(), policy, self.now()).await
    }

    async fn pruned_totals(&self) -> Result<PruneCounts> {
        let rows = self
            .pool()
            .rows(&plain("SELECT kind, pruned FROM retention_totals"))
            .await?;
        let mut totals = PruneCounts::default();
        for row in &rows {
            let pruned = row.count("pruned")?;
            match row.text("kind")?.as_str() {
                "certificates" => totals.certificates = pruned,
                "observations" => totals.observations = pruned,
                "endpoints" => totals.endpoints = pruned,
                "hosts" => totals.hosts = pruned,
                _ => {}
            }
        }
        Ok(totals)
    }
}

async fn prune_batch<D: Db>(
    db: &D,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> Result<PruneCounts> {
    let mut counts = PruneCounts::default();
    if !policy.prunes() {
        return Ok(counts);
    }
    let limit = i64::try_from(policy.batch.clamp(1, MAX_BATCH)).unwrap_or(1);
    let mut transaction = db.begin().await?;
    // Endpoints before hosts (a host goes once it has no endpoint left), and both before
    // certificates, whose last observations they may take with them.
    if let Some(age) = policy.hosts {
        let before = now - age;
        let (endpoints, observations) =
            prune_endpoints::<D>(&mut transaction, before, limit).await?;
        counts.endpoints = endpoints;
        counts.observations += observations;
        counts.hosts = prune_hosts::<D>(&mut transaction, before, limit).await?;
    }
    if let Some(age) = policy.observations {
        counts.observations +=
            compact_observations::<D>(&mut transaction, now - age, limit).await?;
        counts.observations += prune_rotations::<D>(&mut transaction, now - age, limit).await?;
    }
    if let Some(age) = policy.certificates {
        let (certificates, observations) =
            prune_certificates::<D>(&mut transaction, now - age, limit).await?;
        counts.certificates = certificates;
        counts.observations += observations;
    }
    add_to_totals::<D>(&mut transaction, &counts).await?;
    transaction.commit().await?;
    if counts.total() > 0 {
        tracing::debug!(?counts, "retention batch");
    }
    Ok(counts)
}

/// The lock a batch takes on the rows it selects (of `table` when given).
fn lock(dialect: Dialect, table: &str) -> String {
    match dialect {
        Dialect::Postgres if table.is_empty() => " FOR UPDATE SKIP LOCKED".into(),
        Dialect::Postgres => format!(" FOR UPDATE OF {table} SKIP LOCKED"),
        Dialect::Sqlite => String::new(),
    }
}

/// The first column of every row of a selection of ids.
async fn ids<D: Db>(transaction: &mut D::Tx, query: &Query, column: &str) -> Result<Vec<i64>> {
    let rows = transaction.rows(query).await?;
    rows.iter().map(|row| row.int(column)).collect()
}

/// Endpoints retired before `before`, with their observations, chains and claims.
/// Returns (endpoints, observations) deleted.
async fn prune_endpoints<D: Db>(
    transaction: &mut D::Tx,
    before: OffsetDateTime,
    limit: i64,
) -> Result<(u64, u64)> {
    let select = Query {
        sql: format!(
            "SELECT id FROM endpoints WHERE retired_at IS NOT NULL AND retired_at < $1 \
             ORDER BY retired_at LIMIT $2{}",
            lock(D::DIALECT, "")
        ),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    let endpoints = ids::<D>(transaction, &select, "id").await?;
    if endpoints.is_empty() {
        return Ok((0, 0));
    }
    let any = D::DIALECT.any("$1");
    let by_id = |sql: String| Query {
        sql,
        binds: vec![Bind::Ints(endpoints.clone())],
    };
    transaction
        .execute(&by_id(format!(
            "DELETE FROM observation_chain WHERE observation_id IN \
             (SELECT id FROM observations WHERE endpoint_id {any})"
        )))
        .await?;
    let observations = transaction
        .execute(&by_id(format!(
            "DELETE FROM observations WHERE endpoint_id {any}"
        )))
        .await?;
    transaction
        .execute(&by_id(format!(
            "DELETE FROM endpoint_claims WHERE endpoint_id {any}"
        )))
        .await?;
    let deleted = transaction
        .execute(&by_id(format!(
            "DELETE FROM endpoints WHERE id {any} AND retired_at IS NOT NULL"
        )))
        .await?;
    Ok((deleted, observations))
}

/// Hosts that last reported before `before` and have no endpoint left (active or
/// retired), with the claims they made; then osquery nodes silent since before then.
async fn prune_hosts<D: Db>(
    transaction: &mut D::Tx,
    before: OffsetDateTime,
    limit: i64,
) -> Result<u64> {
    let select = Query {
        sql: format!(
            "SELECT h.id FROM hosts h WHERE h.last_seen < $1 \
             AND NOT EXISTS (SELECT 1 FROM endpoints e \
                 WHERE e.host_id = h.id AND e.retired_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM endpoints e \
                 WHERE e.host_id = h.id AND e.retired_at IS NOT NULL) \
             ORDER BY h.last_seen LIMIT $2{}",
            lock(D::DIALECT, "h")
        ),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    let hosts = ids::<D>(transaction, &select, "id").await?;
    let mut deleted = 0;
    if !hosts.is_empty() {
        let any = D::DIALECT.any("$1");
        let by_id = |sql: String| Query {
            sql,
            binds: vec![Bind::Ints(hosts.clone())],
        };
        transaction
            .execute(&by_id(format!(
                "DELETE FROM endpoint_claims WHERE host_id {any}"
            )))
            .await?;
        deleted += transaction
            .execute(&by_id(format!("DELETE FROM hosts WHERE id {any}")))
            .await?;
    }
    let osquery = Query {
        sql: format!(
            "DELETE FROM osquery_hosts WHERE host_key IN (SELECT host_key FROM osquery_hosts \
             WHERE updated_at < $1 ORDER BY updated_at LIMIT $2{})",
            lock(D::DIALECT, "")
        ),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    deleted += transaction.execute(&osquery).await?;
    Ok(deleted)
}

/// An observation that is no endpoint's current one and was last seen before `$1`: old
/// history (SQL over `observations {alias}`).
fn old_history(alias: &str) -> String {
    format!(
        "{alias}.last_seen < $1 AND NOT EXISTS \
         (SELECT 1 FROM endpoints e WHERE e.observation_id = {alias}.id)"
    )
}

/// Deletes the rotations (changes of leaf, with their latency) seen before `before`:
/// history like old observations, one row per certificate change, which at 700,000 new
/// certificates a day grew the database by itself (bench/fleet-day.sh). The discovery
/// figures read the last week. Returns how many went.
async fn prune_rotations<D: Db>(
    transaction: &mut D::Tx,
    before: OffsetDateTime,
    limit: i64,
) -> Result<u64> {
    let query = Query {
        sql: "DELETE FROM rotations WHERE id IN (SELECT id FROM rotations \
                  WHERE new_seen_at < $1 ORDER BY new_seen_at LIMIT $2)"
            .into(),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    transaction.execute(&query).await
}

/// Compacts old history to the changes: of each endpoint's old observations (see
/// [`old_history`]) of one leaf (or of none, for failed probes), only the latest stays,
/// and it takes the earliest first_seen of those that go. Returns how many went.
async fn compact_observations<D: Db>(
    transaction: &mut D::Tx,
    before: OffsetDateTime,
    limit: i64,
) -> Result<u64> {
    let same_leaf = "COALESCE(n.leaf_sha256, '') = COALESCE(o.leaf_sha256, '')";
    let select = Query {
        sql: format!(
            "SELECT o.id FROM observations o WHERE {} AND EXISTS \
             (SELECT 1 FROM observations n WHERE n.endpoint_id = o.endpoint_id \
                 AND {same_leaf} AND {} \
                 AND (n.last_seen > o.last_seen OR (n.last_seen = o.last_seen AND n.id > o.id))) \
             ORDER BY o.last_seen LIMIT $2{}",
            old_history("o"),
            old_history("n"),
            lock(D::DIALECT, "o")
        ),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    let going = ids::<D>(transaction, &select, "id").await?;
    if going.is_empty() {
        return Ok(0);
    }
    let any = D::DIALECT.any("$2");
    // What stays of each (endpoint, leaf) reaches back to the first sighting of what goes;
    // every old observation left in the group takes it, so the one kept last has it.
    let earliest = Query {
        sql: format!(
            "UPDATE observations AS n SET first_seen = d.first_seen \
             FROM (SELECT o.endpoint_id, COALESCE(o.leaf_sha256, '') AS leaf, \
                       MIN(o.first_seen) AS first_seen \
                   FROM observations o WHERE o.id {any} \
                   GROUP BY o.endpoint_id, COALESCE(o.leaf_sha256, '')) AS d \
             WHERE n.endpoint_id = d.endpoint_id AND COALESCE(n.leaf_sha256, '') = d.leaf \
                 AND NOT (n.id {any}) AND n.first_seen > d.first_seen AND {}",
            old_history("n")
        ),
        binds: vec![Bind::Time(before), Bind::Ints(going.clone())],
    };
    transaction.execute(&earliest).await?;
    delete_observations::<D>(transaction, going).await
}

/// Deletes observations by id (never the current one of an active endpoint), their
/// chains first, and forgets them as the current observation of retired endpoints.
/// Returns how many went.
async fn delete_observations<D: Db>(transaction: &mut D::Tx, ids: Vec<i64>) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let select = Query {
        sql: format!(
            "SELECT o.id FROM observations o WHERE o.id {} AND NOT EXISTS \
             (SELECT 1 FROM endpoints e WHERE e.observation_id = o.id AND e.retired_at IS NULL)",
            D::DIALECT.any("$1")
        ),
        binds: vec![Bind::Ints(ids)],
    };
    let ids = self::ids::<D>(transaction, &select, "id").await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let any = D::DIALECT.any("$1");
    let by_id = |sql: String| Query {
        sql,
        binds: vec![Bind::Ints(ids.clone())],
    };
    transaction
        .execute(&by_id(format!(
            "UPDATE endpoints SET observation_id = NULL, leaf_sha256 = NULL, \
                 leaf_not_after = NULL \
             WHERE observation_id {any}"
        )))
        .await?;
    transaction
        .execute(&by_id(format!(
            "DELETE FROM observation_chain WHERE observation_id {any}"
        )))
        .await?;
    transaction
        .execute(&by_id(format!("DELETE FROM observations WHERE id {any}")))
        .await
}

/// Certificates last served before `before` that no active endpoint serves now (in any
/// position of its current chain) and no pending notification is about; with the
/// observations whose chain holds them, their names and their finished notifications.
/// Returns (certificates, observations) deleted.
async fn prune_certificates<D: Db>(
    transaction: &mut D::Tx,
    before: OffsetDateTime,
    limit: i64,
) -> Result<(u64, u64)> {
    let select = Query {
        sql: format!(
            "SELECT c.sha256 FROM certificates c WHERE c.last_seen < $1 \
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.sha256 = c.sha256 \
                 AND n.resolved_at IS NULL AND n.sent_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM observation_chain oc \
                 JOIN endpoints e ON e.observation_id = oc.observation_id \
                 WHERE oc.sha256 = c.sha256 AND e.retired_at IS NULL) \
             ORDER BY c.last_seen LIMIT $2{}",
            lock(D::DIALECT, "c")
        ),
        binds: vec![Bind::Time(before), Bind::Int(limit)],
    };
    let rows = transaction.rows(&select).await?;
    let certificates = rows
        .iter()
        .map(|row| row.text("sha256"))
        .collect::<Result<Vec<_>>>()?;
    if certificates.is_empty() {
        return Ok((0, 0));
    }
    let any = D::DIALECT.any("$1");
    let by_sha256 = |sql: String| Query {
        sql,
        binds: vec![Bind::Texts(certificates.clone())],
    };
    let holding = ids::<D>(
        transaction,
        &by_sha256(format!(
            "SELECT DISTINCT observation_id FROM observation_chain WHERE sha256 {any}"
        )),
        "observation_id",
    )
    .await?;
    let observations = delete_observations::<D>(transaction, holding).await?;
    // A certificate still linked from an observation kept above (one an active endpoint
    // made current since the selection) stays, with its names and notifications.
    let unlinked = |table: &str| {
        format!(
            "sha256 {any} AND NOT EXISTS (SELECT 1 FROM observation_chain oc \
             WHERE oc.sha256 = {table}.sha256)"
        )
    };
    transaction
        .execute(&by_sha256(format!(
            "DELETE FROM certificate_names WHERE {}",
            unlinked("certificate_names")
        )))
        .await?;
    transaction
        .execute(&by_sha256(format!(
            "DELETE FROM notifications WHERE {}",
            unlinked("notifications")
        )))
        .await?;
    let deleted = transaction
        .execute(&by_sha256(format!(
            "DELETE FROM certificates WHERE {}",
            unlinked("certificates")
        )))
        .await?;
    Ok((deleted, observations))
}

/// Adds a batch's counts to `retention_totals`.
async fn add_to_totals<D: Db>(transaction: &mut D::Tx, counts: &PruneCounts) -> Result<()> {
    for (kind, pruned) in counts.by_kind() {
        if pruned == 0 {
            continue;
        }
        let query = Query {
            sql: "INSERT INTO retention_totals (kind, pruned) VALUES ($1, $2) \
                  ON CONFLICT (kind) DO UPDATE \
                  SET pruned = retention_totals.pruned + excluded.pruned"
                .into(),
            binds: vec![
                Bind::Text(kind.into()),
                Bind::Int(i64::try_from(pruned).unwrap_or(i64::MAX)),
            ],
        };
        transaction.execute(&query).await?;
    }
    Ok(())
}
