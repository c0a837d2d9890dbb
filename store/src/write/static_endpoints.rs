//! Static targets: see [`crate::IngestStore::upsert_static_endpoints`].

use time::OffsetDateTime;

use super::events::upsert_discovering;
use super::CHUNK;
use crate::db::{Batch, Bind, Db, Query, Tx};
use crate::error::Result;
use crate::records::StaticEndpoint;
use crate::sni::static_rows;
use crate::zones::{zone_of, Zone};

pub(crate) async fn upsert<D: Db>(
    db: &D,
    endpoints: &[StaticEndpoint],
    zones: &[Zone],
    at: OffsetDateTime,
    events: bool,
) -> Result<u64> {
    let rows = static_rows(endpoints);
    let mut transaction = db.begin().await?;
    let mut touched = 0;
    for chunk in rows.chunks(CHUNK) {
        let batch = Batch::new(chunk.len())
            .column("address", chunk, |e| Some(e.address.to_string()))
            .column("port", chunk, |e| Some(i32::from(e.port)))
            .text("sni", chunk, |e| e.sni.as_deref())
            .text("starttls", chunk, |e| e.starttls.as_deref())
            .tags(chunk, |e| &e.tags)
            // A target is in the zone its CIDRs say (it has no host to carry a tag).
            .column("zone", chunk, |e| Some(zone_of(zones, None, e.address)));
        let mut query = Query::default();
        let now = query.arg(Bind::Time(at));
        let source = D::bind_batch(&mut query, batch);
        query.sql = format!(
            "INSERT INTO endpoints (address, port, sni, sni_source, starttls, app, env, owner, \
                 zone, first_seen, last_seen, next_probe_at) \
             SELECT u.address, u.port, u.sni, CASE WHEN u.sni <> '' THEN 'config' END, \
                 u.starttls, u.app, u.env, u.owner, u.zone, {now}, {now}, {now} \
             FROM {source} WHERE true \
             ON CONFLICT (address, port, sni) DO UPDATE SET last_seen = excluded.last_seen, \
                 retired_at = NULL, \
                 sni_source = COALESCE(excluded.sni_source, endpoints.sni_source), \
                 starttls = COALESCE(excluded.starttls, endpoints.starttls), \
                 app = COALESCE(excluded.app, endpoints.app), \
                 env = COALESCE(excluded.env, endpoints.env), \
                 owner = COALESCE(excluded.owner, endpoints.owner), \
                 zone = CASE WHEN endpoints.host_id IS NULL THEN excluded.zone \
                     ELSE endpoints.zone END"
        );
        touched += upsert_discovering::<D>(&mut transaction, query, events, at).await?;
    }
    transaction.commit().await?;
    Ok(touched)
}
