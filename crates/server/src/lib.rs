//! The healthcode HTTP API. `serve` opens the data directory and the store chosen by the
//! configuration (SQLite by default, PostgreSQL by URL) and runs the router until shut down.
//!
//! Modules: [`holders`] (one-time codes, registration, sign-in, the holder's own resources),
//! [`scans`] (venue devices), [`admin`] (officers, admins, auditors), [`auth`] (who is asking),
//! [`access`] (personal data only with a recorded purpose), [`status`] (colours and signed codes),
//! [`commit`] (group commit of check-ins), [`sms`], [`metrics`], [`problem`] (errors).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use healthcode_policy::Policy;
use healthcode_store::{AuditEntry, ChainBreak, OtpLimits, PurgeReport, Store, StoreError, verify_audit};
use healthcode_store_postgres::{DatabaseUrl, PgStore};
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use healthcode_token::keystore::{DEFAULT_TRUST_LIST_VALIDITY, Keystore};
use healthcode_token::{TrustList, Verifier};
use time::{Duration, OffsetDateTime};
use tokio::sync::Semaphore;
use utoipa::OpenApi;

pub mod access;
pub mod admin;
pub mod auth;
pub mod commit;
pub mod config;
pub mod datadir;
pub mod demo;
pub mod holders;
pub mod metrics;
pub mod problem;
pub mod scans;
pub mod sms;
pub mod status;
pub mod web;

pub use config::{Config, ConfigError, Overrides};
use datadir::DataDir;
use problem::{ApiError, Problem};

/// The signed trust list, when it was signed, and a verifier built from it.
#[derive(Debug)]
struct TrustState {
    text: String,
    signed_at: OffsetDateTime,
    verifier: Arc<Verifier>,
}

/// What every handler shares.
pub struct App<S> {
    store: S,
    keystore: Keystore,
    policy: Policy,
    settings: Settings,
    trust: RwLock<TrustState>,
    vault: access::Vault,
    auth: auth::AuthCache,
    statuses: status::StatusCache,
    sms: Box<dyn sms::SmsSender>,
    otp_limits: OtpLimits,
    otp_by_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    committer: commit::Committer,
    metrics: Arc<metrics::Metrics>,
}

/// The parts of the configuration handlers read.
#[derive(Debug, Clone)]
struct Settings {
    code_ttl: Duration,
    holder_session: Duration,
    officer_session: Duration,
    retention: Duration,
    public_url: Option<String>,
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

/// The current time in whole seconds.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn sign_trust_list(keystore: &Keystore, t: OffsetDateTime) -> Result<TrustState, String> {
    let text = keystore
        .export_trust_list(t, DEFAULT_TRUST_LIST_VALIDITY)
        .map_err(|e| e.to_string())?;
    let root = healthcode_token::keys::public_key_from_text(keystore.root_public())
        .ok_or("the root public key is unreadable")?;
    let list = TrustList::from_text(&text, &root).map_err(|e| e.to_string())?;
    Ok(TrustState {
        text,
        signed_at: t,
        verifier: Arc::new(Verifier::new(list)),
    })
}

impl<S: Store> App<S> {
    /// Builds the shared state and starts its background tasks (group commit, retention purge).
    pub fn start(
        store: S,
        keystore: Keystore,
        crypto: healthcode_store::Crypto,
        policy: Policy,
        config: &Config,
    ) -> Result<Arc<App<S>>, StartError> {
        let trust = sign_trust_list(&keystore, now()).map_err(StartError::Other)?;
        let public_url = match config
            .public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
        {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(u.to_owned()),
            Some(u) => {
                return Err(StartError::Other(format!(
                    "public_url must start with https:// or http://, not {u:?}"
                )));
            }
            None => None,
        };
        let sms = sms::from_config(&config.sms).map_err(|e| StartError::Other(format!("sms: {e}")))?;
        let per_hour = std::num::NonZeroU32::new(config.otp_per_address_per_hour)
            .ok_or_else(|| StartError::Other("otp_per_address_per_hour must be at least 1".into()))?;
        let (committer, receiver) = commit::Committer::new(config.scan_queue);
        let app = Arc::new(App {
            store,
            keystore,
            policy,
            settings: Settings {
                code_ttl: Duration::seconds(config.code_ttl_seconds.into()),
                holder_session: Duration::days(config.holder_session_days.into()),
                officer_session: Duration::hours(config.officer_session_hours.into()),
                retention: Duration::days(config.retention_days.into()),
                public_url,
            },
            trust: RwLock::new(trust),
            vault: access::Vault::new(crypto),
            auth: auth::AuthCache::default(),
            statuses: status::StatusCache::default(),
            sms,
            otp_limits: OtpLimits::default(),
            otp_by_address: governor::RateLimiter::keyed(governor::Quota::per_hour(per_hour)),
            committer,
            metrics: Arc::new(metrics::Metrics::default()),
        });
        tokio::spawn(commit::run(Arc::downgrade(&app), receiver));
        tokio::spawn(retention_task(Arc::downgrade(&app), app.settings.retention));
        Ok(app)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The personal-data vault.
    pub fn vault(&self) -> &access::Vault {
        &self.vault
    }

    /// The colour policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn refresh_trust(&self) -> Result<(), ApiError> {
        let t = now();
        if let Ok(guard) = self.trust.read() {
            if t - guard.signed_at < Duration::hours(1) {
                return Ok(());
            }
        }
        let fresh = sign_trust_list(&self.keystore, t).map_err(ApiError::Internal)?;
        if let Ok(mut guard) = self.trust.write() {
            *guard = fresh;
        }
        Ok(())
    }

    fn current_trust_list(&self) -> Result<String, ApiError> {
        self.refresh_trust()?;
        self.trust
            .read()
            .map(|g| g.text.clone())
            .map_err(|_| ApiError::Internal("trust list lock poisoned".into()))
    }

    /// A verifier for codes, from the current trust list.
    pub fn verifier(&self) -> Result<Arc<Verifier>, ApiError> {
        self.refresh_trust()?;
        self.trust
            .read()
            .map(|g| g.verifier.clone())
            .map_err(|_| ApiError::Internal("trust list lock poisoned".into()))
    }

    /// Appends to the audit log.
    pub async fn audit(
        &self,
        actor: String,
        role: &str,
        action: &str,
        subject: Option<healthcode_domain::HolderId>,
        purpose: String,
    ) -> Result<(), ApiError> {
        self.store
            .append_audit(&AuditEntry {
                at: now(),
                actor,
                role: role.to_owned(),
                action: action.to_owned(),
                subject,
                purpose,
            })
            .await?;
        Ok(())
    }
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "healthcode",
        description = "Signed three-colour health codes, verified offline. Holders sign in with a \
one-time code sent by SMS; venue devices with a device key; officers with a password. Every error \
is RFC 9457 problem+json with a stable `type`."
    ),
    paths(healthz, readyz, trust_list, policy, metrics_text),
    nest(
        (path = "/api/v1", api = holders::HolderApi),
        (path = "/api/v1", api = scans::ScanApi),
        (path = "/api/v1/admin", api = admin::AdminApi),
    ),
    components(schemas(Problem, PolicyDocument)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("holder", "a holder's session token (hcs_…)"),
            ("officer", "an officer's session token (hcs_…)"),
            ("device", "a venue device's key (hcd_…)"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

/// The router, with limits, time-outs, load shedding and metrics.
pub fn router<S: Store>(app: Arc<App<S>>, config: &Config) -> Router {
    let metrics = app.metrics.clone();
    let gate = Arc::new(Semaphore::new(config.max_in_flight));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics_text::<S>))
        .route("/api/v1/trust-list", get(trust_list::<S>))
        .route("/api/v1/policy", get(policy::<S>))
        .route("/api/openapi.json", get(openapi))
        .merge(holders::routes())
        .merge(scans::routes())
        .merge(admin::routes())
        .merge(web::routes())
        .fallback(not_found)
        .with_state(app)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(problem::bare_errors_as_problems))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            StdDuration::from_secs(config.request_timeout_seconds),
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state((gate, metrics), shed))
}

/// Refuses a request at once (503, Retry-After) when too many are in flight, instead of queueing
/// without bound.
async fn shed(
    State((gate, metrics)): State<(Arc<Semaphore>, Arc<metrics::Metrics>)>,
    req: Request,
    next: Next,
) -> Response {
    match gate.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            metrics.shed.inc();
            ApiError::Unavailable("the server is at capacity; retry shortly".into(), 1).into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text<S: Store>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    app.metrics.queue_depth.set(app.committer.depth());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
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
async fn retention_task<S: Store>(app: std::sync::Weak<App<S>>, retention: Duration) {
    loop {
        let Some(a) = app.upgrade() else { return };
        match purge_once(&a.store, retention).await {
            Ok(r) => tracing::info!(deleted = r.total(), "retention purge"),
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        drop(a);
        tokio::time::sleep(StdDuration::from_secs(3600)).await;
    }
}

/// Runs `$body` with `$s` bound to the configured store: PostgreSQL by URL with `$connections`
/// connections, else the SQLite database of the data directory `$dir` (made when `$may_create`
/// and it does not exist yet). One place for the choice every command makes.
macro_rules! with_store {
    ($config:expr, $dir:expr, $may_create:expr, $connections:expr, |$s:ident| $body:expr) => {
        match &$config.database_url {
            Some(url) => {
                let $s = PgStore::connect(
                    &DatabaseUrl::new(url.clone()),
                    $config.database_schema.as_deref(),
                    $connections,
                )
                .await
                .map_err(|e| StartError::Other(e.to_string()))?;
                $body
            }
            None => {
                let $s = open_sqlite($dir, $may_create)?;
                $body
            }
        }
    };
}

/// The data directory's SQLite database; a missing one is made only when `may_create`.
fn open_sqlite(dir: &std::path::Path, may_create: bool) -> Result<SqliteStore, StartError> {
    let db = DataDir::database_in(dir);
    let mode = if may_create && !db.exists() {
        OpenMode::Create
    } else {
        OpenMode::MustExist
    };
    SqliteStore::open(&db, mode).map_err(|e| StartError::Other(e.to_string()))
}

fn other(e: impl std::fmt::Display) -> StartError {
    StartError::Other(e.to_string())
}

/// Opens the configured store (the data directory must exist) and runs `purge_once` on it: the
/// `healthcode purge` command.
pub async fn purge_now(config: &Config) -> Result<PurgeReport, StartError> {
    let retention = Duration::days(config.retention_days.into());
    with_store!(config, &config.data_dir, false, 2, |store| {
        purge_once(&store, retention).await.map_err(other)
    })
}

/// Walks the configured store's audit chain: the `healthcode audit verify` command.
pub async fn verify_audit_now(config: &Config) -> Result<Result<u64, ChainBreak>, StartError> {
    with_store!(config, &config.data_dir, false, 2, |store| {
        verify_audit(&store).await.map_err(other)
    })
}

/// Creates a staff account with a one-time password in the configured store (making the data
/// directory when it does not exist yet): the `healthcode admin create` command. Returns the
/// password, shown once.
pub async fn create_account_now(
    config: &Config,
    username: &str,
    role: healthcode_store::Role,
) -> Result<String, StartError> {
    // The first account may come before the first `serve`: make the directory as it would.
    if config.database_url.is_none() {
        DataDir::open_or_create(&config.data_dir, &config.region, now())?;
    }
    with_store!(config, &config.data_dir, true, 2, |store| {
        account_with_audit(&store, username, role).await.map_err(other)
    })
}

async fn account_with_audit<S: Store>(
    store: &S,
    username: &str,
    role: healthcode_store::Role,
) -> Result<String, ApiError> {
    let (view, password) = admin::create_account(store, username, role).await?;
    store
        .append_audit(&AuditEntry {
            at: now(),
            actor: "operator".into(),
            role: "system".into(),
            action: "account-create".into(),
            subject: None,
            purpose: format!("{} as {} (command line)", view.username, view.role),
        })
        .await?;
    Ok(password)
}

/// Which cases `healthcode trace` traces.
#[derive(Debug, Clone)]
pub enum CaseSelection {
    /// These.
    Ids(Vec<healthcode_domain::CaseId>),
    /// Every case confirmed on this UTC day.
    Day(time::Date),
}

/// Options of `healthcode trace`.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Also time each case's contact search alone (read and compute, nothing recorded).
    pub per_case: bool,
    /// Write every contact found as CSV (case, holder, venue, contact start, grade, overlap).
    pub export: Option<std::path::PathBuf>,
    /// Load the check-ins the cases' windows reach into memory first, and trace from there.
    pub index: bool,
}

/// How the in-memory index was built.
#[derive(Debug, Clone, Default)]
pub struct IndexBuild {
    /// Check-ins held.
    pub rows: usize,
    /// Holders among them.
    pub holders: usize,
    /// Bytes of its arrays.
    pub bytes: usize,
    /// Seconds to read and build.
    pub seconds: f64,
}

/// Per-case timings, milliseconds.
#[derive(Debug, Clone, Default)]
pub struct PerCase {
    /// Median.
    pub median_ms: f64,
    /// Median of the case record's read alone (part of `median_ms`).
    pub median_read_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// All the cases one after the other, wall time.
    pub total_ms: f64,
    /// All the cases at once (on every core, from the index when there is one), wall time of
    /// each of three runs.
    pub batch_ms: Vec<f64>,
}

async fn trace_in<S: Store>(
    store: &S,
    policy: &Policy,
    which: &CaseSelection,
    options: &TraceOptions,
) -> Result<TraceOutcome, StartError> {
    let fail = |e: String| StartError::Other(e);
    let ids = match which {
        CaseSelection::Ids(ids) => ids.clone(),
        CaseSelection::Day(day) => {
            let from = day.midnight().assume_utc();
            let to = from + Duration::days(1);
            store
                .cases(from)
                .await
                .map_err(|e| fail(e.to_string()))?
                .into_iter()
                .filter(|(_, c)| c.confirmed_at < to)
                .map(|(_, c)| c.id)
                .collect()
        }
    };
    let mut index = None;
    let mut built = None;
    if options.index {
        let (mut from, mut to) = (None::<time::OffsetDateTime>, None::<time::OffsetDateTime>);
        for id in &ids {
            if let Some((_, c)) = store.case(*id).await.map_err(|e| fail(e.to_string()))? {
                let (f, t) = healthcode_exposure::infectious_window(policy.tracing(), &c);
                from = Some(from.map_or(f, |x| x.min(f)));
                to = Some(to.map_or(t, |x| x.max(t)));
            }
        }
        if let (Some(from), Some(to)) = (from, to) {
            let started = std::time::Instant::now();
            let ix = healthcode_exposure::TracingIndex::build(
                store,
                policy.tracing(),
                from - healthcode_exposure::lookback(policy.tracing()),
                to,
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                &|_| {},
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
            built = Some(IndexBuild {
                rows: ix.len(),
                holders: ix.holders(),
                bytes: ix.heap_bytes(),
                seconds: started.elapsed().as_secs_f64(),
            });
            index = Some(ix);
        }
    }
    let mut tracer = healthcode_exposure::Tracer::new(store, policy.tracing())
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Some(ix) = &index {
        tracer = tracer.with_index(ix);
    }
    let mut per_case = None;
    if options.per_case || options.export.is_some() {
        let mut times = Vec::new();
        let mut reads = Vec::new();
        let mut csv = String::from("case_id,holder,venue,contact_start,grade,overlap_minutes\n");
        for id in &ids {
            // Timed from the question (a case number) to the answer.
            let t = std::time::Instant::now();
            let (holder, case) = store
                .case(*id)
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("there is no case {}", id.0)))?;
            reads.push(t.elapsed().as_secs_f64() * 1000.0);
            let (found, _) = tracer
                .contacts(store, &holder, &case)
                .await
                .map_err(|e| fail(e.to_string()))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            for (h, e) in &found {
                csv.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    id.0,
                    h.to_hex(),
                    e.venue.0,
                    e.contact_interval.0.unix_timestamp(),
                    e.grade.as_str(),
                    e.overlap_minutes
                ));
            }
        }
        if let Some(path) = &options.export {
            std::fs::write(path, csv).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
        times.sort_by(f64::total_cmp);
        reads.sort_by(f64::total_cmp);
        if options.per_case && !times.is_empty() {
            let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
            per_case = Some(PerCase {
                median_ms: at(0.5),
                median_read_ms: reads[(reads.len() - 1) / 2],
                p90_ms: at(0.9),
                max_ms: at(1.0),
                total_ms: times.iter().sum(),
                batch_ms: {
                    // Best of three, as the DuckDB script reports its best of three.
                    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                    let mut runs = Vec::new();
                    for _ in 0..3 {
                        let t = std::time::Instant::now();
                        let (all, _) = tracer
                            .contacts_many(store, &ids, threads)
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                        runs.push(t.elapsed().as_secs_f64() * 1000.0);
                        tracing::debug!(contacts = all.iter().map(Vec::len).sum::<usize>(), "batch");
                    }
                    runs
                },
            });
        }
    }
    let (report, _) = tracer.trace(store, &ids).await.map_err(|e| fail(e.to_string()))?;
    store
        .append_audit(&AuditEntry {
            at: now(),
            actor: "operator".into(),
            role: "system".into(),
            action: "trace".into(),
            subject: None,
            purpose: format!(
                "{} cases from the command line: {} new exposures",
                report.cases, report.new_exposures
            ),
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(TraceOutcome {
        report,
        per_case,
        index: built,
    })
}

/// What `healthcode trace` found and measured.
#[derive(Debug, Clone)]
pub struct TraceOutcome {
    /// The run.
    pub report: healthcode_exposure::TraceReport,
    /// Per-case timings, when asked.
    pub per_case: Option<PerCase>,
    /// The in-memory index, when asked.
    pub index: Option<IndexBuild>,
}

pub(crate) fn configured_policy(config: &Config) -> Result<Policy, StartError> {
    match &config.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::Other(format!("{}: {e}", path.display())))?;
            Policy::parse(&text).map_err(|e| StartError::Other(format!("{}: {e}", path.display())))
        }
        None => Ok(Policy::default_policy()),
    }
}

/// Traces cases in the configured store and records their exposures: the `healthcode trace`
/// command.
pub async fn trace_now(
    config: &Config,
    which: &CaseSelection,
    options: &TraceOptions,
) -> Result<TraceOutcome, StartError> {
    let policy = configured_policy(config)?;
    with_store!(config, &config.data_dir, false, 4, |store| {
        trace_in(&store, &policy, which, options).await
    })
}

/// Builds a synthetic city into the configured store (made if it does not exist), then moves
/// every check-in into its indexed place: the `healthcode simulate` command. Returns what was
/// made and the seconds the final indexing took.
pub async fn simulate_now(
    config: &Config,
    params: &healthcode_exposure::simulate::CityParams,
    progress: healthcode_exposure::simulate::Progress<'_>,
) -> Result<(healthcode_exposure::simulate::CityReport, f64), StartError> {
    let dir = DataDir::open_or_create(&config.data_dir, &config.region, now())?;
    with_store!(config, &dir.path, true, 8, |store| {
        let r = healthcode_exposure::simulate::simulate(&store, &dir.crypto, params, progress)
            .await
            .map_err(other)?;
        let t = std::time::Instant::now();
        Store::flush_checkins(&store).await.map_err(other)?;
        Ok((r, t.elapsed().as_secs_f64()))
    })
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
        axum::serve(
            self.listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Opens the data directory and the store, and binds the listener.
pub async fn bind(config: &Config) -> Result<Bound, StartError> {
    let dir = DataDir::open_or_create(&config.data_dir, &config.region, now())?;
    let policy = configured_policy(config)?;
    let router = with_store!(config, &dir.path, dir.created, 16, |store| {
        router(
            App::start(store, dir.keystore, dir.crypto, policy, config)?,
            config,
        )
    });
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
