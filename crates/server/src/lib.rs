//! The healthcode HTTP API. [`bind`] opens the data directory and the store the configuration
//! names (SQLite by default, PostgreSQL by URL) and returns a server ready to run.
//!
//! This file holds [`App`] (what every handler shares) and [`bind`]; [`router`] names the routes.
//! The handlers, by area: [`holders`] (one-time codes, registration, sign-in, the holder's own
//! resources), [`scans`] (venue devices), [`admin`] (officers, admins, auditors), [`web`] (the
//! pages). Beside them: [`auth`] (who is asking), [`access`] (personal data only with a recorded
//! purpose), [`status`] (colours and signed codes), [`commit`] (group commit of check-ins),
//! [`sms`], [`metrics`], [`problem`] (errors). [`ops`] is what the command line does with a store
//! outside the API (choosing the store, purge, audit verification, accounts, tracing, simulate,
//! the demo).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use healthcode_domain::HolderId;
use healthcode_policy::Policy;
use healthcode_store::{AuditEntry, OtpLimits, Store};
use healthcode_token::keystore::{DEFAULT_TRUST_LIST_VALIDITY, Keystore};
use healthcode_token::{Token, TrustList, Verifier};
use time::{Duration, OffsetDateTime};

pub mod access;
pub mod admin;
pub mod alerts;
pub mod auth;
pub mod client;
pub mod commit;
pub mod config;
pub mod consent;
pub mod datadir;
pub mod front;
pub mod holders;
pub mod identity;
pub mod limits;
pub mod metrics;
mod openapi;
pub mod ops;
pub mod policies;
pub mod problem;
pub mod router;
pub mod scans;
pub mod signin;
pub mod sms;
pub mod status;
pub mod totp;
pub mod transparency;
pub mod web;

pub use config::{Config, ConfigError, Overrides};
pub use router::{ApiDoc, router};

use datadir::DataDir;
use problem::{ApiError, BoxError};
use status::CodeView;

/// The environment variable (or `…_FILE`) with the bearer token `/metrics` then requires.
pub const METRICS_TOKEN_ENV: &str = "HEALTHCODE_METRICS_TOKEN";

/// The hash of the token `/metrics` asks for, if one is set; an empty one is refused.
fn metrics_token() -> Result<Option<[u8; 32]>, StartError> {
    match config::secret(METRICS_TOKEN_ENV).map_err(StartError::msg)? {
        Some(t) if t.trim().is_empty() => Err(StartError::msg(format!("{METRICS_TOKEN_ENV} is empty"))),
        Some(t) => Ok(Some(auth::secret_hash(t.trim()))),
        None => Ok(None),
    }
}

/// The signed trust list, when it was signed, and a verifier built from it.
#[derive(Debug)]
struct TrustState {
    text: String,
    signed_at: OffsetDateTime,
    verifier: Arc<Verifier>,
}

/// What every handler shares.
pub struct App<S> {
    store: Arc<S>,
    keystore: Keystore,
    policies: policies::PolicyState,
    settings: Settings,
    trust: RwLock<TrustState>,
    vault: access::Vault,
    auth: auth::AuthCache,
    statuses: status::StatusCache,
    sms: Box<dyn sms::SmsSender>,
    identity: Box<dyn identity::IdentityVerifier>,
    /// Texts telling a holder that their document was presented again, per holder (at most a few
    /// an hour, so that attempts cannot flood their phone).
    document_alerts: governor::DefaultKeyedRateLimiter<HolderId>,
    otp_limits: OtpLimits,
    otp_by_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    otp_guesses_by_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    sms_budget: sms::SmsBudget,
    passwords: auth::PasswordHasher,
    staff: signin::StaffConfig,
    alerts: alerts::AlertsConfig,
    governance: config::GovernanceConfig,
    sign_ins: signin::InFlight,
    committer: commit::Committer,
    metrics: Arc<metrics::Metrics>,
    transparency: transparency::Transparency,
    scrub: holders::erasure::ScrubState,
    /// Single exposure decisions are counted and recorded one at a time (the hourly cap).
    single_decisions: tokio::sync::Mutex<()>,
}

/// The parts of the configuration handlers read.
#[derive(Debug, Clone)]
struct Settings {
    code_ttl: Duration,
    holder_session: Duration,
    officer_session: Duration,
    retention: Duration,
    public_url: Option<String>,
    trusted_proxies: Vec<ipnet::IpNet>,
    forwarded_header: client::ForwardedHeader,
    /// SHA-256 of the token `/metrics` asks for, when one is set.
    metrics_token: Option<[u8; 32]>,
    limits: limits::LimitsConfig,
    personal_retention: limits::RetentionConfig,
}

impl<S> App<S> {
    /// The colour policy in force: the newest published version ([`policies`]).
    pub fn policy(&self) -> Arc<Policy> {
        self.policies.get()
    }
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("policy", &self.policy().version())
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] healthcode_store::StoreError),
    /// Something else: what failed, and the error that made it fail.
    #[error("{0}")]
    Failed(String, #[source] Option<BoxError>),
}

impl StartError {
    /// A failure said in one line, with no underlying error.
    pub fn msg(what: impl Into<String>) -> StartError {
        StartError::Failed(what.into(), None)
    }

    /// A failure caused by `cause`: `what` says what was being done.
    pub fn caused(what: impl Into<String>, cause: impl Into<BoxError>) -> StartError {
        StartError::Failed(what.into(), Some(cause.into()))
    }
}

/// The current time in whole seconds.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn sign_trust_list(keystore: &Keystore, t: OffsetDateTime) -> Result<TrustState, BoxError> {
    let text = keystore.export_trust_list(t, DEFAULT_TRUST_LIST_VALIDITY)?;
    let root = healthcode_token::keys::public_key_from_text(keystore.root_public())
        .ok_or("the root public key is unreadable")?;
    let list = TrustList::from_text(&text, &root)?;
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
        let trust = sign_trust_list(&keystore, now())
            .map_err(|e| StartError::Failed("cannot sign the trust list".into(), Some(e)))?;
        let public_url = match config
            .public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
        {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(u.to_owned()),
            Some(u) => {
                return Err(StartError::msg(format!(
                    "public_url must start with https:// or http://, not {u:?}"
                )));
            }
            None => None,
        };
        let sms = sms::from_config(&config.sms).map_err(|e| StartError::caused("sms", e))?;
        let identity =
            identity::from_config(&config.identity).map_err(|e| StartError::caused("identity", e))?;
        let per_hour = std::num::NonZeroU32::new(config.otp_per_address_per_hour)
            .ok_or_else(|| StartError::msg("otp_per_address_per_hour must be at least 1"))?;
        let guesses_per_hour = std::num::NonZeroU32::new(config.otp_guesses_per_address_per_hour)
            .ok_or_else(|| StartError::msg("otp_guesses_per_address_per_hour must be at least 1"))?;
        let tree_head_signer = keystore
            .audit_log_signer()
            .map_err(|e| StartError::caused("cannot read the audit-log key", e))?;
        let tree_head_interval = std::time::Duration::from_millis(config.tree_head_interval_ms);
        let (committer, receiver) = commit::Committer::new(
            config.scan_queue,
            Duration::seconds(config.limits.same_visit_seconds.into()),
        );
        let store = Arc::new(store);
        let app = Arc::new(App {
            store: store.clone(),
            keystore,
            policies: policies::PolicyState::new(policy),
            settings: Settings {
                code_ttl: Duration::seconds(config.code_ttl_seconds.into()),
                holder_session: Duration::days(config.holder_session_days.into()),
                officer_session: Duration::hours(config.officer_session_hours.into()),
                retention: Duration::days(config.retention_days.into()),
                public_url,
                trusted_proxies: config.trusted_proxies.clone(),
                forwarded_header: config.forwarded_header,
                metrics_token: metrics_token()?,
                limits: config.limits.clone(),
                personal_retention: config.retention.clone(),
            },
            trust: RwLock::new(trust),
            vault: access::Vault::new(crypto),
            auth: auth::AuthCache::default(),
            statuses: status::StatusCache::default(),
            sms,
            identity,
            document_alerts: governor::RateLimiter::keyed(governor::Quota::per_hour(
                std::num::NonZeroU32::MIN.saturating_add(2),
            )),
            otp_limits: OtpLimits {
                min_interval: time::Duration::seconds(i64::from(config.otp_resend_seconds)),
                ..OtpLimits::default()
            },
            otp_by_address: governor::RateLimiter::keyed(governor::Quota::per_hour(per_hour)),
            otp_guesses_by_address: governor::RateLimiter::keyed(governor::Quota::per_hour(guesses_per_hour)),
            sms_budget: sms::SmsBudget::new(&config.sms),
            passwords: auth::PasswordHasher::new(
                config.password_checks_at_once,
                std::time::Duration::from_millis(config.password_queue_ms),
            ),
            staff: config.staff.clone(),
            alerts: config.alerts.clone(),
            governance: config.governance.clone(),
            sign_ins: signin::InFlight::default(),
            committer,
            metrics: Arc::new(metrics::Metrics::default()),
            transparency: transparency::Transparency::new(tree_head_signer, tree_head_interval),
            scrub: holders::erasure::ScrubState::default(),
            single_decisions: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(commit::run(store, receiver));
        tokio::spawn(ops::retention_task(
            Arc::downgrade(&app),
            ops::Retention::new(app.settings.retention, &app.settings.personal_retention),
        ));
        tokio::spawn(holders::forget_quiet_addresses(Arc::downgrade(&app)));
        tokio::spawn(signin::forget_old_failures(Arc::downgrade(&app)));
        alerts::watch(Arc::downgrade(&app), app.alerts.clone());
        tokio::spawn(transparency::publish_task(
            Arc::downgrade(&app),
            tree_head_interval,
        ));
        Ok(app)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// How staff sign in: delays, locks, the second factor, idle sessions.
    pub fn staff(&self) -> &signin::StaffConfig {
        &self.staff
    }

    /// The personal-data vault.
    pub fn vault(&self) -> &access::Vault {
        &self.vault
    }

    fn refresh_trust(&self) -> Result<(), ApiError> {
        let t = now();
        if let Ok(guard) = self.trust.read()
            && t - guard.signed_at < Duration::hours(1)
        {
            return Ok(());
        }
        let fresh = sign_trust_list(&self.keystore, t)
            .map_err(|e| ApiError::Internal("cannot sign the trust list".into(), Some(e)))?;
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
            .map_err(|_| ApiError::fault("trust list lock poisoned"))
    }

    /// A verifier for codes, from the current trust list.
    pub fn verifier(&self) -> Result<Arc<Verifier>, ApiError> {
        self.refresh_trust()?;
        self.trust
            .read()
            .map(|g| g.verifier.clone())
            .map_err(|_| ApiError::fault("trust list lock poisoned"))
    }

    /// The holder's colour now, with reasons, and the name hint (cached: [`status`]).
    pub async fn code_view(&self, holder: &HolderId) -> Result<Arc<CodeView>, ApiError> {
        self.statuses
            .code_view(self.store(), &self.policy(), holder)
            .await
    }

    /// Signs a code for a holder's current view, valid for `ttl` (never beyond its key); returns
    /// it with its expiry.
    pub fn sign_code(
        &self,
        holder: &HolderId,
        view: &CodeView,
        ttl: Duration,
    ) -> Result<(Token, OffsetDateTime), ApiError> {
        self.statuses
            .sign_code(&self.keystore, &self.policy(), holder, view, ttl)
    }

    /// Appends to the audit log.
    pub async fn audit(
        &self,
        actor: String,
        role: &str,
        action: &str,
        subject: Option<HolderId>,
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

/// A server bound to its address, ready to run.
pub struct Bound {
    listener: tokio::net::TcpListener,
    router: Router,
    metrics: Arc<metrics::Metrics>,
    limits: front::Limits,
    /// The data directory, held until the server stops.
    lock: datadir::DirLock,
    /// Whether this start created the data directory.
    pub created: bool,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
    digest: consent::told::DigestTrigger,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// Sends the holders' read digest on demand (what the daily task does at `[notify]
    /// digest_hour_utc`), while the server runs.
    pub fn read_digest(&self) -> consent::told::DigestTrigger {
        self.digest.clone()
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then drains: stops accepting, lets the requests in
    /// flight finish (and with them the scans waiting for the group commit), and returns when
    /// they have, or when the grace period (`shutdown_grace_seconds`) is over, whichever is first.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Bound {
            listener,
            router,
            metrics,
            limits,
            lock,
            ..
        } = self;
        let served = front::serve(listener, router, metrics, limits, shutdown).await;
        drop(lock);
        served
    }
}

/// Opens the data directory and the store, and binds the listener.
pub async fn bind(config: &Config) -> Result<Bound, StartError> {
    let dir = DataDir::open_or_create(&config.data_dir, &config.region, now())?;
    let policy = ops::configured_policy(config)?;
    let (path, created, lock) = (dir.path.clone(), dir.created, dir.lock);
    let serve = Serve {
        keystore: dir.keystore,
        crypto: dir.crypto,
        policy,
        config,
    };
    let (router, metrics, digest) = ops::with_store(config, &path, created, 16, serve).await?;
    let listener = front::listen(config.listen)
        .map_err(|e| StartError::caused(format!("cannot listen on {}", config.listen), e))?;
    Ok(Bound {
        listener,
        router,
        metrics,
        limits: front::Limits {
            header_read: std::time::Duration::from_secs(config.header_read_timeout_seconds),
            idle: std::time::Duration::from_secs(config.idle_timeout_seconds),
            max_connections: config.max_connections,
            grace: std::time::Duration::from_secs(config.shutdown_grace_seconds),
            admission: front::admission::AdmissionLimits {
                wait: std::time::Duration::from_millis(config.admitted_wait_ms),
                floor: config.admitted_floor,
            },
        },
        lock,
        created,
        data_dir: path,
        digest,
    })
}

/// What `bind` does with the store: the shared state, its tasks, and the router.
struct Serve<'a> {
    keystore: Keystore,
    crypto: healthcode_store::Crypto,
    policy: Policy,
    config: &'a Config,
}

impl ops::StoreWork for Serve<'_> {
    type Output = (Router, Arc<metrics::Metrics>, consent::told::DigestTrigger);

    async fn run<S: Store>(self, store: S) -> Result<Self::Output, StartError> {
        policies::publish_first(&store, &self.policy, self.config.policy_first_sha256.as_deref()).await?;
        let app = App::start(store, self.keystore, self.crypto, self.policy, self.config)?;
        policies::adopt(&app).await?;
        tokio::spawn(policies::follow_task(Arc::downgrade(&app)));
        let metrics = app.metrics.clone();
        let digest = consent::told::start_digests(Arc::downgrade(&app), self.config.notify.clone());
        Ok((router(app, self.config), metrics, digest))
    }
}
