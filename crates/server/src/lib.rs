//! The healthcode HTTP API. `serve` opens the data directory and the store chosen by the
//! configuration (SQLite by default, PostgreSQL by URL) and runs the router until shut down.
//!
//! This is the first part of the server: configuration, the data directory, health, the public
//! trust list and policy, problem+json errors and the OpenAPI document. Registration, codes,
//! scans and the officers' endpoints build on it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use healthcode_policy::Policy;
use healthcode_store::{AuditEntry, ChainBreak, PurgeReport, Store, StoreError, verify_audit};
use healthcode_store_postgres::{DatabaseUrl, PgStore};
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use healthcode_token::keystore::{DEFAULT_TRUST_LIST_VALIDITY, Keystore};
use time::{Duration, OffsetDateTime};
use utoipa::OpenApi;

pub mod config;
pub mod datadir;
pub mod problem;

pub use config::{Config, ConfigError, Overrides};
use datadir::DataDir;
use problem::{ApiError, Problem};

/// What every handler shares.
pub struct App<S> {
    store: S,
    keystore: Keystore,
    policy: Policy,
    /// The signed trust list and when it was signed; re-signed when an hour old.
    trust_list: RwLock<(String, OffsetDateTime)>,
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("policy", &self.policy.version())
            .finish_non_exhaustive()
    }
}

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    /// Something else, said in one line.
    #[error("{0}")]
    Other(String),
}

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

impl<S: Store> App<S> {
    /// Builds the shared state.
    pub fn new(store: S, keystore: Keystore, policy: Policy) -> Result<App<S>, StartError> {
        let t = now();
        let list = keystore
            .export_trust_list(t, DEFAULT_TRUST_LIST_VALIDITY)
            .map_err(|e| StartError::Other(e.to_string()))?;
        Ok(App {
            store,
            keystore,
            policy,
            trust_list: RwLock::new((list, t)),
        })
    }

    fn current_trust_list(&self) -> Result<String, ApiError> {
        let t = now();
        if let Ok(guard) = self.trust_list.read() {
            if t - guard.1 < Duration::hours(1) {
                return Ok(guard.0.clone());
            }
        }
        let list = self
            .keystore
            .export_trust_list(t, DEFAULT_TRUST_LIST_VALIDITY)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Ok(mut guard) = self.trust_list.write() {
            *guard = (list.clone(), t);
        }
        Ok(list)
    }
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "healthcode",
        description = "Signed three-colour health codes, verified offline."
    ),
    paths(healthz, readyz, trust_list, policy),
    components(schemas(Problem, PolicyDocument))
)]
pub struct ApiDoc;

/// The router, with limits and time-outs.
pub fn router<S: Store>(app: Arc<App<S>>, config: &Config) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/api/v1/trust-list", get(trust_list::<S>))
        .route("/api/v1/policy", get(policy::<S>))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(app)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            StdDuration::from_secs(config.request_timeout_seconds),
        ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = String),
    (status = 500, description = "the store does not answer", body = Problem, content_type = "application/problem+json"),
))]
async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Result<&'static str, ApiError> {
    app.store.risk_areas().await?;
    Ok("ready")
}

/// The signed trust list (`HCTL1:…`, docs/token-format.md §5) that offline verifiers cache.
#[utoipa::path(get, path = "/api/v1/trust-list", responses(
    (status = 200, description = "the trust list, signed by the root key", body = String, content_type = "text/plain"),
))]
async fn trust_list<S: Store>(State(app): State<Arc<App<S>>>) -> Result<impl IntoResponse, ApiError> {
    let list = app.current_trust_list()?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        list,
    ))
}

/// The published colour policy.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PolicyDocument {
    /// The version recorded with every colour it produces.
    pub version: String,
    /// The policy file as published, every rule stated.
    pub source: String,
}

/// The colour policy in force.
#[utoipa::path(get, path = "/api/v1/policy", responses((status = 200, description = "the policy", body = PolicyDocument)))]
async fn policy<S: Store>(State(app): State<Arc<App<S>>>) -> axum::Json<PolicyDocument> {
    axum::Json(PolicyDocument {
        version: app.policy.version().to_owned(),
        source: app.policy.source().to_owned(),
    })
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no resource at {}", uri.path()))
}

/// Deletes what is older than the retention period, and records that it did in the audit log.
pub async fn purge_once<S: Store>(store: &S, retention: Duration) -> Result<PurgeReport, StoreError> {
    let t = now();
    let report = store.purge(t - retention).await?;
    store
        .append_audit(&AuditEntry {
            at: t,
            actor: "system".into(),
            role: "system".into(),
            action: format!(
                "purge: {} check-ins, {} declarations, {} reports, {} exposures",
                report.checkins, report.declarations, report.reports, report.exposures
            ),
            subject: None,
            purpose: format!("retention of {} days", retention.whole_days()),
        })
        .await?;
    Ok(report)
}

/// Purges at start and every hour after, while the server runs.
async fn retention_task<S: Store>(app: Arc<App<S>>, retention: Duration) {
    loop {
        match purge_once(&app.store, retention).await {
            Ok(r) => tracing::info!(deleted = r.total(), "retention purge"),
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        tokio::time::sleep(StdDuration::from_secs(3600)).await;
    }
}

/// Opens the configured store (the data directory must exist) and runs `purge_once` on it: the
/// `healthcode purge` command.
pub async fn purge_now(config: &Config) -> Result<PurgeReport, StartError> {
    let retention = Duration::days(config.retention_days.into());
    match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(&DatabaseUrl::new(url.clone()), None, 2)
                .await
                .map_err(|e| StartError::Other(e.to_string()))?;
            purge_once(&store, retention)
                .await
                .map_err(|e| StartError::Other(e.to_string()))
        }
        None => {
            let store = open_existing_sqlite(config)?;
            purge_once(&store, retention)
                .await
                .map_err(|e| StartError::Other(e.to_string()))
        }
    }
}

/// Walks the configured store's audit chain: the `healthcode audit verify` command.
pub async fn verify_audit_now(config: &Config) -> Result<Result<u64, ChainBreak>, StartError> {
    match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(&DatabaseUrl::new(url.clone()), None, 2)
                .await
                .map_err(|e| StartError::Other(e.to_string()))?;
            verify_audit(&store)
                .await
                .map_err(|e| StartError::Other(e.to_string()))
        }
        None => {
            let store = open_existing_sqlite(config)?;
            verify_audit(&store)
                .await
                .map_err(|e| StartError::Other(e.to_string()))
        }
    }
}

fn open_existing_sqlite(config: &Config) -> Result<SqliteStore, StartError> {
    SqliteStore::open(&DataDir::database_in(&config.data_dir), OpenMode::MustExist)
        .map_err(|e| StartError::Other(e.to_string()))
}

/// A server bound to its address, ready to run.
pub struct Bound {
    listener: tokio::net::TcpListener,
    router: Router,
    /// Whether this start created the data directory.
    pub created: bool,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Opens the data directory and the store, and binds the listener.
pub async fn bind(config: &Config) -> Result<Bound, StartError> {
    let dir = DataDir::open_or_create(&config.data_dir, &config.region, now())?;
    let policy = match &config.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::Other(format!("{}: {e}", path.display())))?;
            Policy::parse(&text).map_err(|e| StartError::Other(format!("{}: {e}", path.display())))?
        }
        None => Policy::default_policy(),
    };
    let retention = Duration::days(config.retention_days.into());
    let router = match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(&DatabaseUrl::new(url.clone()), None, 16)
                .await
                .map_err(|e| StartError::Other(e.to_string()))?;
            let app = Arc::new(App::new(store, dir.keystore, policy)?);
            tokio::spawn(retention_task(app.clone(), retention));
            router(app, config)
        }
        None => {
            let mode = if dir.created {
                OpenMode::Create
            } else {
                OpenMode::MustExist
            };
            let store = SqliteStore::open(&DataDir::database_in(&dir.path), mode)
                .map_err(|e| StartError::Other(e.to_string()))?;
            let app = Arc::new(App::new(store, dir.keystore, policy)?);
            tokio::spawn(retention_task(app.clone(), retention));
            router(app, config)
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", config.listen)))?;
    Ok(Bound {
        listener,
        router,
        created: dir.created,
        data_dir: dir.path,
    })
}
