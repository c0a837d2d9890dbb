//! The store's roles, one trait each: [`IngestStore`], [`ProbeQueue`], [`ReadModel`] (and
//! the notification outbox, [`NotificationStore`](crate::NotificationStore)).
//! [`Store`](crate::Store) is all of them.

use async_trait::async_trait;
use certfleet_model::{AgentReport, OsqueryHost, OsqueryUpdate, ProbeResult};
use time::{Duration, OffsetDateTime};

use crate::browse::*;
use crate::error::Result;
use crate::notify_records::NotificationRecord;
use crate::probers::{ProberBeat, ProberStatus};
use crate::records::*;

/// What agents and operators put in: tokens and enrollment, reports, osquery posts, static
/// targets, the retirement of what no report mentions, the settling of conflicting claims.
/// Used by the web API's agent endpoints (`web/src/handlers`: reports, enrollment,
/// osquery) and by the `certfleet` binary (`admin` token and conflict commands, the
/// scheduler's retirement, the static targets of the config).
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Issues a new token for an agent and returns it; only its SHA-256 is stored, so
    /// this is the only time it can be read.
    async fn create_agent_token(&self, agent: &AgentName) -> Result<String> {
        self.create_token(agent, None).await
    }

    /// Issues a new token for an agent, bound to one host when `host_key` is given (its
    /// reports must then name that host: its machine id, or `hostname:<name>`).
    async fn create_token(&self, agent: &AgentName, host_key: Option<&str>) -> Result<String>;

    /// Issues a new operator token (it may ask for probes, never report) and returns it;
    /// only its SHA-256 is stored. Listed and revoked by name like an agent's.
    async fn create_operator_token(&self, operator: &AgentName) -> Result<String>;

    /// Who a presented token was issued to and its kind, or `None` for an unknown,
    /// revoked or malformed token. Hashes are compared in constant time.
    async fn authenticate(&self, token: &str) -> Result<Option<Credential>>;

    /// The agent a presented token was issued to (see [`IngestStore::authenticate`]).
    async fn authenticate_agent(&self, token: &str) -> Result<Option<AgentName>> {
        Ok(self
            .authenticate(token)
            .await?
            .map(|credential| credential.agent))
    }

    /// Enrollment: a new token for `agent` (`enrolled:<host key>`), bound to `host_key`,
    /// unless that agent already holds an active one (`None`: an operator revokes it
    /// first). Two enrollments at once give one token.
    async fn enroll(&self, agent: &AgentName, host_key: &str) -> Result<Option<String>>;

    /// Every token issued, oldest first (never the tokens themselves).
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Revokes every token of an agent; they are refused from now on. Returns how many.
    async fn revoke_tokens(&self, agent: &AgentName) -> Result<u64>;

    /// Stores a report in one transaction: the host, and one endpoint per distinct
    /// (address, port) a prober can reach. A report that fails validation (the error
    /// names the field) or fails half-way leaves nothing. The same report twice leaves
    /// the same state.
    ///
    /// Then the agent's own probes (`probes`, agent-side probing): each result for one of
    /// the report's own sockets is recorded like a prober's on that socket's endpoint
    /// (a loopback listener's is stored under the host, `127.0.0.1%<host id>`), which is
    /// then probed by the agent only (`probed_by`); the others are refused one by one
    /// and counted. The host's endpoints its agent no longer probes go back to the
    /// probers, due at once.
    async fn ingest_report(&self, agent: &AgentName, report: &AgentReport) -> Result<IngestCounts>;

    /// osquery: merges what one logger post of the node enrolled as `host_key` tells
    /// (interface addresses, wildcard listeners, decorations) into the state kept for it,
    /// in one transaction, and returns the new state. See [`OsqueryHost::apply`].
    async fn update_osquery_host(
        &self,
        host_key: &str,
        update: &OsqueryUpdate,
    ) -> Result<OsqueryHost>;

    /// Static targets: creates each endpoint (due at once) or marks it seen now, so that it
    /// lives as long as the config names it. Workload fields and STARTTLS given here win
    /// over stored ones; an agent's report of the same socket keeps its host. Returns the
    /// endpoints created or refreshed.
    async fn upsert_static_endpoints(&self, endpoints: &[StaticEndpoint]) -> Result<u64>;

    /// Retires endpoints no report has mentioned for `older_than`; they are no longer
    /// leased nor counted. A later report revives them. Returns how many retired.
    async fn retire_endpoints(&self, older_than: Duration) -> Result<u64>;

    /// Settles the conflicting claims on an endpoint: `Some(host_key)` gives the endpoint
    /// to that claiming host (its tags become the endpoint's, and it is due at once);
    /// `None` dismisses every claim. `NotFound` when there is no such claim. Returns the
    /// claims removed.
    async fn settle_conflict(&self, endpoint: EndpointId, to: Option<&str>) -> Result<u64>;
}

/// The probers' queue: leases on due endpoints (or on chosen ones, for a confirming probe),
/// the results recorded under them, leases handed back. Used by the prober workers
/// (`certfleet/src/commands/prober_worker.rs`) and by the notifier's confirming probes
/// (`certfleet/src/commands/confirm.rs`).
#[async_trait]
pub trait ProbeQueue: Send + Sync {
    /// Leases up to `limit` due endpoints to `worker` until now + `lease_for`. No other
    /// caller gets them before the lease ends; if no result is recorded by then, they are
    /// due again.
    async fn lease_due_endpoints(
        &self,
        worker: &str,
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>> {
        self.lease_due_in_zones(worker, &[], limit, lease_for).await
    }

    /// [`lease_due_endpoints`](ProbeQueue::lease_due_endpoints), only of endpoints in
    /// `zones` (empty: in every zone). An endpoint whose zone no prober serves stays due.
    async fn lease_due_in_zones(
        &self,
        worker: &str,
        zones: &[String],
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>>;

    /// Leases these endpoints to `worker` until now + `lease_for`, whether they are due
    /// or not: those active and not under another lease now (a prober probing one right
    /// now keeps it). For a probe outside the schedule, such as the one that confirms what
    /// an endpoint serves before a notification about it is sent.
    async fn lease_endpoints(
        &self,
        worker: &str,
        ids: &[EndpointId],
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>>;

    /// Records probe results in one transaction: certificates (by SHA-256, with the PEM
    /// when present), their names, observations (an identical probe only moves
    /// last_seen), and each endpoint's status and next probe time (interval with jitter;
    /// back-off on failure). Ends the endpoints' leases. Unknown endpoint ids are
    /// ignored. Returns the number of endpoints updated.
    ///
    /// In the same transaction, the names to present: an endpoint `(address, port, name)`,
    /// due at once, for each name the results reveal for their endpoints (the reporting
    /// host's name, the DNS names of the served leaf; never an IP address or a wildcard;
    /// at most eight named endpoints per address and port).
    async fn record_probe_results(&self, results: &[(EndpointId, ProbeResult)]) -> Result<u64> {
        self.record_probe_results_with_names(results, &[]).await
    }

    /// [`record_probe_results`](ProbeQueue::record_probe_results), with names the prober learnt
    /// besides the results to present too: the PTR names of the addresses, recorded as
    /// guessed ([`NameSource::Ptr`]). In the same transaction, a guessed-name endpoint
    /// whose probe captured its socket's default leaf is retired (docs/probing.md).
    async fn record_probe_results_with_names(
        &self,
        results: &[(EndpointId, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<u64>;

    /// [`record_probe_results_with_names`](ProbeQueue::record_probe_results_with_names) for
    /// what `worker` probed under its leases: a result is written only while its lease is
    /// still the endpoint's lease (same owner, same deadline, whether or not the deadline
    /// has passed). A result whose lease was ended (recorded, released, retired) or taken
    /// over by a later lease is stale: nothing of it is written (certificate, observation,
    /// names) and its endpoint is listed in [`Recorded::stale`]; the other results of the
    /// batch are recorded as usual. Learnt names of stale endpoints are dropped too.
    async fn record_leased_probe_results(
        &self,
        worker: &str,
        results: &[(Lease, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<Recorded>;

    /// An operator asks for the endpoint to be probed now: it becomes due ahead of every
    /// endpoint the schedule made due, so the next lease of any prober takes it (even one
    /// under lease now: that prober's result is then stale, and the new probe's counts).
    /// At most once per `window` per endpoint, across every process on the database: a
    /// second request within it changes nothing and says when to ask again. `NotFound`
    /// for an unknown or retired endpoint. Zones filter the lease, not the request: an
    /// endpoint whose zone no live prober serves stays due until one does.
    async fn request_probe(&self, id: EndpointId, window: Duration) -> Result<ProbeRequest>;

    /// A prober announces itself (see [`ProberBeat`]): its row is written with the store's
    /// now as its last beat. Rows of probers silent for a day are dropped.
    async fn announce_prober(&self, beat: &ProberBeat) -> Result<()>;

    /// Hands leased endpoints back unprobed: each lease that is still `worker`'s (same
    /// deadline) ends, and its endpoint is due again at the time given, with no failure
    /// counted. Returns how many leases were ended.
    async fn release_leases(&self, worker: &str, leases: &[(Lease, OffsetDateTime)])
        -> Result<u64>;
}

/// What is read back: certificates, endpoints and sockets, their history, the overview,
/// the mTLS summary (and its daily snapshot), the inventory, notification pages; and the
/// database's upkeep every process does (`migrate` at start-up, `ping` for readiness).
/// Used by the web API and pages (`web/`), the notifier's digests and the scheduler's
/// snapshot (`certfleet/src/commands/scheduler.rs`).
#[async_trait]
pub trait ReadModel: Send + Sync {
    /// Applies the embedded migrations that are not applied yet.
    async fn migrate(&self) -> Result<()>;

    /// Succeeds when the database answers a trivial query (readiness).
    async fn ping(&self) -> Result<()>;

    /// One certificate with its PEM, latest chain and where it is served; `NotFound`
    /// when unknown.
    async fn certificate(&self, sha256: &str) -> Result<CertificateDetail>;

    /// Endpoints with their current certificate and mTLS policy, in id order.
    async fn endpoints(&self, filter: &EndpointFilter) -> Result<Vec<EndpointRecord>>;

    /// mTLS adoption of the active endpoints, by `app` or `env`, with the daily trend
    /// from the snapshots.
    async fn mtls_summary(&self, by: MtlsGrouping) -> Result<MtlsSummary>;

    /// Writes (or rewrites) today's mTLS adoption snapshot, for both groupings. Returns
    /// the number of group rows written.
    async fn snapshot_mtls_adoption(&self) -> Result<u64>;

    /// How much the store holds.
    async fn inventory(&self) -> Result<Inventory>;

    /// Certificates a lookup finds (host name, serial in any spelling, SHA-256 or SHA-1
    /// fingerprint, issuer), newest expiry first, a page at a time after a cursor.
    async fn search_certificates(
        &self,
        search: &CertificateSearch,
    ) -> Result<Vec<CertificateRecord>>;

    /// Leaf certificates served now by active endpoints that expire within `within`
    /// (expired ones included), soonest first, with how many endpoints serve each; a
    /// page after the certificate whose SHA-256 is `after`.
    async fn expiring_leaves(
        &self,
        within: Duration,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExpiringCertificate>>;

    /// Active endpoints matching a search, a page at a time (see [`EndpointSearch`] for
    /// the order).
    async fn search_endpoints(&self, search: &EndpointSearch) -> Result<Vec<EndpointRecord>>;

    /// Active sockets matching a search, a page at a time: the endpoint that stands for
    /// each (the filters apply to it, as the counts of the overview count it) with the
    /// other names it is probed under (see [`SocketRecord`]).
    async fn search_sockets(&self, search: &EndpointSearch) -> Result<Vec<SocketRecord>>;

    /// One endpoint (retired or not) and what it served over time; `NotFound` when
    /// unknown.
    async fn endpoint(&self, id: EndpointId) -> Result<EndpointDetail>;

    /// What a certificate replaced and what replaced it, where it was a leaf.
    async fn certificate_history(&self, sha256: &str) -> Result<CertificateHistory>;

    /// Notifications (failed ones, or one owner's), newest first, a page at a time.
    async fn notification_page(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRecord>>;

    /// Where the fleet stands now. One pass over the active endpoints: cache it.
    async fn fleet_overview(&self) -> Result<FleetOverview>;

    /// Keeps `overview` as the last one computed (one row, rewritten; a write), so that
    /// the next process to start can answer with it while it computes its own.
    async fn save_overview(&self, overview: &FleetOverview) -> Result<()>;

    /// The last overview saved, if any; `None` also when it was saved in a shape this
    /// version does not read (it is only a head start).
    async fn saved_overview(&self) -> Result<Option<FleetOverview>>;

    /// The probers that announced themselves and the probe queue of every zone (configured,
    /// holding endpoints, or served by a prober), read now.
    async fn prober_status(&self) -> Result<ProberStatus>;

    /// One page of an export (`certfleet export`): every certificate, or every endpoint
    /// (retired ones too), last seen at or after `since`, in key order after the cursor.
    async fn export_page(&self, page: &ExportPage) -> Result<ExportRows>;
}
