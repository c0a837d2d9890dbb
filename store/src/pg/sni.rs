//! Named endpoints (PostgreSQL): see [`crate::sni`].

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use crate::error::Result;
use crate::records::EndpointId;
use crate::sni::{names_to_present, NAMES_PER_ENDPOINT};

/// Creates the `(address, port, name)` endpoints the results reveal, due at `now`, with
/// the workload fields of the endpoint they came from; an existing one only has its
/// `last_seen` carried forward (so it retires with the endpoint that names it).
/// Each carries its [`NameSource`](crate::NameSource); a guessed one met again from a source
/// that is not a guess takes that source. A guessed one retired after `recheck_before` (for
/// selecting the default certificate, see [`retire_default_guesses`]) stays retired; an
/// older retirement ends and the endpoint is due at once, to be checked again.
/// Returns the endpoints created or carried forward.
pub(super) async fn add_named_endpoints(
    connection: &mut PgConnection,
    results: &[(EndpointId, ProbeResult)],
    learnt: &[(EndpointId, String)],
    now: OffsetDateTime,
    recheck_before: OffsetDateTime,
) -> Result<u64> {
    let ids: Vec<i64> = results.iter().map(|(id, _)| id.0).collect();
    let hostnames: HashMap<i64, String> = sqlx::query(
        "SELECT e.id, h.hostname FROM endpoints e JOIN hosts h ON h.id = e.host_id \
         WHERE e.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("id")?, row.try_get("hostname")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let triples = names_to_present(results, &hostnames, learnt);
    if triples.is_empty() {
        return Ok(0);
    }
    let mut parents = Vec::with_capacity(triples.len());
    let mut names = Vec::with_capacity(triples.len());
    let mut sources = Vec::with_capacity(triples.len());
    for (parent, name, source) in triples {
        parents.push(parent);
        names.push(name);
        sources.push(source.as_str());
    }
    // Existing named endpoints are only updated when their `last_seen` must move (and so
    // only then locked): an upsert (ON CONFLICT DO UPDATE) locks every row it meets, and
    // two probers recording at once each hold the rows the other wants to name, which
    // deadlocked them (the losing transaction retried after a pause) in the scale-out
    // benchmark.
    let touched: i64 = sqlx::query_scalar(
        "WITH wanted AS ( \
             SELECT DISTINCT ON (p.address, p.port, u.name) p.address, p.port, \
                 u.name AS sni, u.source AS sni_source, \
                 u.source IN ('host_name', 'ptr') AS guessed, p.host_id, p.process, \
                 p.container, p.netns, p.app, p.env, p.owner, p.namespace, \
                 p.container_name, p.starttls, p.last_seen \
             FROM UNNEST($1::int8[], $2::text[], $5::text[]) AS u(parent, name, source) \
             JOIN endpoints p ON p.id = u.parent \
             WHERE p.retired_at IS NULL \
             ORDER BY p.address, p.port, u.name, u.source IN ('host_name', 'ptr'), \
                 p.last_seen DESC), \
         carried AS ( \
             UPDATE endpoints e SET last_seen = GREATEST(e.last_seen, w.last_seen), \
                 sni_source = CASE WHEN e.sni_source IN ('host_name', 'ptr') \
                     AND NOT w.guessed THEN w.sni_source ELSE e.sni_source END, \
                 retired_at = CASE WHEN e.retired_at > $6 AND w.guessed \
                     AND e.sni_source IN ('host_name', 'ptr') THEN e.retired_at END, \
                 next_probe_at = CASE WHEN e.retired_at IS NOT NULL AND NOT (e.retired_at > $6 \
                     AND w.guessed AND e.sni_source IN ('host_name', 'ptr')) \
                     THEN $3 ELSE e.next_probe_at END \
             FROM wanted w \
             WHERE e.address = w.address AND e.port = w.port AND e.sni = w.sni \
                 AND (e.last_seen < w.last_seen OR e.retired_at IS NOT NULL \
                     OR (e.sni_source IN ('host_name', 'ptr') AND NOT w.guessed)) \
             RETURNING 1), \
         inserted AS ( \
             INSERT INTO endpoints (address, port, sni, sni_source, host_id, process, \
                 container, netns, app, env, owner, namespace, container_name, starttls, \
                 first_seen, last_seen, next_probe_at) \
             SELECT w.address, w.port, w.sni, w.sni_source, w.host_id, w.process, w.container, w.netns, \
                 w.app, w.env, w.owner, w.namespace, w.container_name, w.starttls, $3, \
                 w.last_seen, $3 \
             FROM wanted w \
             WHERE (SELECT count(*) FROM endpoints s \
                 WHERE s.address = w.address AND s.port = w.port AND s.sni <> '') < $4 \
             ORDER BY w.address, w.port, w.sni \
             ON CONFLICT (address, port, sni) DO NOTHING \
             RETURNING 1) \
         SELECT (SELECT count(*) FROM carried) + (SELECT count(*) FROM inserted)",
    )
    .bind(&parents)
    .bind(&names)
    .bind(now)
    .bind(NAMES_PER_ENDPOINT as i64)
    .bind(&sources)
    .bind(recheck_before)
    .fetch_one(&mut *connection)
    .await?;
    Ok(u64::try_from(touched).unwrap_or(0))
}

/// Retires the guessed-name endpoints among `ids` (host name, PTR name) whose current leaf
/// is the one their socket serves without SNI (`(address, port, '')`): the name selects
/// the default certificate, so it adds nothing but a second count of the socket. Run in
/// the recording transaction, after the endpoints' leaves are updated. Returns how many.
pub(super) async fn retire_default_guesses(
    connection: &mut PgConnection,
    ids: &[i64],
    now: OffsetDateTime,
) -> Result<u64> {
    let retired = sqlx::query(
        "UPDATE endpoints e SET retired_at = $2, lease_owner = NULL, lease_until = NULL \
         WHERE e.id = ANY($1) AND e.retired_at IS NULL AND e.sni <> '' \
             AND e.sni_source IN ('host_name', 'ptr') AND e.leaf_sha256 IS NOT NULL \
             AND EXISTS (SELECT 1 FROM endpoints d WHERE d.address = e.address \
                 AND d.port = e.port AND d.sni = '' AND d.leaf_sha256 = e.leaf_sha256)",
    )
    .bind(ids)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(retired.rows_affected())
}
