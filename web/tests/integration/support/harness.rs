//! A served router over a fresh, seeded store, on both backends, and the macro that runs
//! a test on both.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certfleet_model::probe_link::LinkKey;
use certfleet_store::{AgentName, PostgresStore, ReadModel, SqliteStore, Store, StoreOptions};
use certfleet_testkit::postgres::ScratchDatabase;
use certfleet_web::{AppState, IngestLimits, ProbeNow, RoleHealth, WebOptions};
use serde_json::Value;

use super::fleet::Fleet;
use super::http::{self, Response};

/// The secret of the signed probe links (`server.link_secret`).
pub const LINK_SECRET: &str = "link-secret-for-web-tests-0123456789";

/// The read token of apps started with one.
pub const READ_TOKEN: &str = "read-token-for-tests-0123456789";

/// One test's service: the router served on a loopback port, its store and what was
/// seeded in it.
pub struct TestApp {
    pub address: SocketAddr,
    pub fleet: Fleet,
    /// A valid agent token (ingest only).
    pub agent_token: String,
    /// A valid operator token (asks for probes).
    pub operator_token: String,
    /// The store the app serves.
    pub store: Arc<dyn Store>,
    /// Whether reads need [`READ_TOKEN`].
    pub read_token: Option<&'static str>,
    /// The roles `/readyz` reports (the API role runs).
    pub roles: RoleHealth,
}

impl TestApp {
    /// `GET path`, with the read token when the app has one.
    pub async fn get(&self, path: &str) -> Response {
        match self.read_token {
            Some(token) => {
                self.get_with(path, &[("Authorization", &format!("Bearer {token}"))])
                    .await
            }
            None => self.get_with(path, &[]).await,
        }
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http::send(self.address, "GET", path, headers, b"").await
    }

    /// `GET path`, expecting 200 and JSON.
    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        response.json()
    }

    /// `GET path`, expecting 200; the body as text.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        response.text()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// Where and how a test runs.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub read_token: bool,
}

async fn serve(store: Arc<dyn Store>, setup: Setup) -> TestApp {
    let agent = AgentName::new("agent-web-tests").expect("agent name");
    let agent_token = store.create_agent_token(&agent).await.expect("agent token");
    let operator = AgentName::new("operator-web-tests").expect("operator name");
    let operator_token = store
        .create_operator_token(&operator)
        .await
        .expect("operator token");
    let fleet = Fleet::seed(&store).await;
    let read_token = setup.read_token.then_some(READ_TOKEN);
    let roles = RoleHealth::default();
    roles.running("api");
    // Every request computes the overview, so what a test seeded is what it sees.
    let options = WebOptions {
        overview_ttl: Duration::ZERO,
        ..WebOptions::default()
    };
    let address = listen(&store, read_token, &roles, options).await;
    TestApp {
        address,
        fleet,
        agent_token,
        operator_token,
        store,
        read_token,
        roles,
    }
}

/// Serves a router over `store` on a loopback port (another process of the same service,
/// when called again on one store).
async fn listen(
    store: &Arc<dyn Store>,
    read_token: Option<&str>,
    roles: &RoleHealth,
    options: WebOptions,
) -> SocketAddr {
    let state = AppState {
        store: store.clone(),
        reads: store.clone(),
        replica: None,
        ingest: IngestLimits::default(),
        read_token: read_token.map(str::to_owned),
        osquery_enroll_secret: Some("osquery-secret-for-tests".into()),
        agent_enroll_secret: Some("agent-enroll-secret-for-tests".into()),
        roles: roles.clone(),
        probe_now: ProbeNow {
            link_key: Some(LinkKey::new(LINK_SECRET.as_bytes()).expect("a long secret")),
            ..ProbeNow::default()
        },
    };
    let app = certfleet_web::router_with(state, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a loopback port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

impl TestApp {
    /// A second process of the service, just started, over the same store, caching the
    /// overview for `overview_ttl`: its address.
    pub async fn start_another(&self, overview_ttl: Duration) -> SocketAddr {
        let options = WebOptions {
            overview_ttl,
            ..WebOptions::default()
        };
        listen(&self.store, self.read_token, &self.roles, options).await
    }
}

/// Runs a test against a fresh SQLite database in a temporary directory.
pub async fn on_sqlite<F, Fut>(setup: Setup, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("web.db").display());
    let store = SqliteStore::connect(&url, fixed_fleet())
        .await
        .expect("SQLite opens");
    store.migrate().await.expect("SQLite migrates");
    let app = serve(Arc::new(store), setup).await;
    let outcome = tokio::spawn(test(app)).await;
    drop(directory);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Runs a test against a fresh PostgreSQL database, dropped afterwards.
pub async fn on_postgres<F, Fut>(setup: Setup, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = ScratchDatabase::create("certfleet_web_test").await;
    let url = database.url.clone();
    let store = PostgresStore::connect(&url, fixed_fleet())
        .await
        .expect("PostgreSQL opens");
    store.migrate().await.expect("PostgreSQL migrates");
    let pool = store.pool().clone();
    let app = serve(Arc::new(store), setup).await;
    let outcome = tokio::spawn(test(app)).await;
    pool.close().await;
    database.drop_now().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Declares, for each named `async fn(TestApp)` of the calling module, one test on SQLite
/// and one on PostgreSQL (`sqlite::name`, `postgres::name`). `read_token: true` starts the
/// app with a read token.
#[macro_export]
macro_rules! on_both_backends {
    (read_token: $token:expr; $($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let setup = $crate::support::harness::Setup { read_token: $token };
                    $crate::support::harness::on_sqlite(setup, super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let setup = $crate::support::harness::Setup { read_token: $token };
                    $crate::support::harness::on_postgres(setup, super::$test).await;
                }
            )*
        }
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_both_backends!(read_token: false; $($test),*);
    };
}

/// The fleet the tests build is the whole fleet: recording its probes adds no endpoints for
/// the names they reveal (the store's and the service's tests cover names to present).
fn fixed_fleet() -> StoreOptions {
    StoreOptions {
        present_names: false,
        ..StoreOptions::default()
    }
}
