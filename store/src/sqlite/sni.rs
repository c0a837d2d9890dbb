//! Named endpoints (SQLite): see [`crate::sni`].

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use super::seconds;
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
    connection: &mut SqliteConnection,
    results: &[(EndpointId, ProbeResult)],
    learnt: &[(EndpointId, String)],
    now: OffsetDateTime,
    recheck_before: OffsetDateTime,
) -> Result<u64> {
    let ids: Vec<i64> = results.iter().map(|(id, _)| id.0).collect();
    let hostnames: HashMap<i64, String> = sqlx::query(
        "SELECT e.id, h.hostname FROM endpoints e JOIN hosts h ON h.id = e.host_id \
         WHERE e.id IN (SELECT value FROM json_each($1))",
    )
    .bind(serde_json::to_string(&ids)?)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("id")?, row.try_get("hostname")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let triples: Vec<(i64, String, &str)> = names_to_present(results, &hostnames, learnt)
        .into_iter()
        .map(|(parent, name, source)| (parent, name, source.as_str()))
        .collect();
    if triples.is_empty() {
        return Ok(0);
    }
    // `kept`: the row is a guess retired since `recheck_before` and met again as a guess.
    let inserted = sqlx::query(
        "INSERT INTO endpoints (address, port, sni, sni_source, host_id, process, container, \
             netns, app, env, owner, namespace, container_name, starttls, first_seen, \
             last_seen, next_probe_at) \
         SELECT p.address, p.port, j.value ->> 1, j.value ->> 2, p.host_id, p.process, \
             p.container, p.netns, p.app, p.env, p.owner, p.namespace, p.container_name, \
             p.starttls, $2, p.last_seen, $2 \
         FROM json_each($1) AS j JOIN endpoints p ON p.id = j.value ->> 0 \
         WHERE p.retired_at IS NULL AND (SELECT count(*) FROM endpoints s \
             WHERE s.address = p.address AND s.port = p.port AND s.sni <> '') < $3 \
         ORDER BY j.value ->> 2 IN ('host_name', 'ptr') DESC \
         ON CONFLICT (address, port, sni) DO UPDATE SET \
             last_seen = max(endpoints.last_seen, excluded.last_seen), \
             sni_source = CASE WHEN endpoints.sni_source IN ('host_name', 'ptr') \
                 AND excluded.sni_source NOT IN ('host_name', 'ptr') \
                 THEN excluded.sni_source ELSE endpoints.sni_source END, \
             retired_at = CASE WHEN endpoints.retired_at > $4 \
                 AND endpoints.sni_source IN ('host_name', 'ptr') \
                 AND excluded.sni_source IN ('host_name', 'ptr') \
                 THEN endpoints.retired_at END, \
             next_probe_at = CASE WHEN endpoints.retired_at IS NOT NULL \
                 AND NOT (endpoints.retired_at > $4 \
                     AND endpoints.sni_source IN ('host_name', 'ptr') \
                     AND excluded.sni_source IN ('host_name', 'ptr')) \
                 THEN $2 ELSE endpoints.next_probe_at END \
         WHERE endpoints.last_seen < excluded.last_seen OR endpoints.retired_at IS NOT NULL \
             OR (endpoints.sni_source IN ('host_name', 'ptr') \
                 AND excluded.sni_source NOT IN ('host_name', 'ptr'))",
    )
    .bind(serde_json::to_string(&triples)?)
    .bind(seconds(now))
    .bind(NAMES_PER_ENDPOINT as i64)
    .bind(seconds(recheck_before))
    .execute(&mut *connection)
    .await?;
    Ok(inserted.rows_affected())
}

/// Retires the guessed-name endpoints among `ids` (host name, PTR name) whose current leaf
/// is the one their socket serves without SNI (`(address, port, '')`): the name selects
/// the default certificate, so it adds nothing but a second count of the socket. Run in
/// the recording transaction, after the endpoints' leaves are updated. Returns how many.
pub(super) async fn retire_default_guesses(
    connection: &mut SqliteConnection,
    ids: &[i64],
    now: OffsetDateTime,
) -> Result<u64> {
    let retired = sqlx::query(
        "UPDATE endpoints SET retired_at = $2, lease_owner = NULL, lease_until = NULL \
         WHERE id IN (SELECT value FROM json_each($1)) AND retired_at IS NULL AND sni <> '' \
             AND sni_source IN ('host_name', 'ptr') AND leaf_sha256 IS NOT NULL \
             AND EXISTS (SELECT 1 FROM endpoints d WHERE d.address = endpoints.address \
                 AND d.port = endpoints.port AND d.sni = '' \
                 AND d.leaf_sha256 = endpoints.leaf_sha256)",
    )
    .bind(serde_json::to_string(ids)?)
    .bind(seconds(now))
    .execute(&mut *connection)
    .await?;
    Ok(retired.rows_affected())
}
