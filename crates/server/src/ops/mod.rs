//! What the command line does with the configured store outside the HTTP API: the choice of
//! store ([`with_store`], the one place it is made, also for `bind`), the retention purge, audit
//! verification, staff accounts, tracing ([`trace`]), a synthetic city ([`simulate_now`]) and the
//! demo ([`demo`]). Printing and timing belong to the command line; these return values.

use std::future::Future;
use std::path::Path;
use std::sync::Weak;
use std::time::Duration as StdDuration;

use healthcode_policy::Policy;
use healthcode_store::{
    AuditEntry, ChainBreak, HeadMismatch, Principal, Role, Store, StoreError, all_audit_records,
    verify_chain, verify_tree_heads,
};
use healthcode_store_postgres::{DatabaseUrl, PgStore};
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use time::{Duration, OffsetDateTime};

use crate::datadir::DataDir;
use crate::problem::ApiError;
use crate::{App, Config, StartError, now};
pub use erasure::{Purged, Retention};

pub mod backup;
pub mod demo;
pub mod erasure;
pub mod trace;
pub mod witness;

/// Work to run on whichever store the configuration names: see [`with_store`].
pub trait StoreWork {
    /// What the work gives back.
    type Output;
    /// Runs on the opened store.
    fn run<S: Store>(self, store: S) -> impl Future<Output = Result<Self::Output, StartError>>;
}

/// Opens the configured store and runs `work` on it: PostgreSQL by URL with `connections`
/// connections, else the SQLite database of the data directory `dir` (made when `may_create` and
/// it does not exist yet; otherwise a missing database is an error, so a mistyped path never
/// becomes a second, empty one). Every entry point, `bind` included, chooses the store here.
pub async fn with_store<W: StoreWork>(
    config: &Config,
    dir: &Path,
    may_create: bool,
    connections: usize,
    work: W,
) -> Result<W::Output, StartError> {
    match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(
                &DatabaseUrl::new(url.clone()),
                config.database_schema.as_deref(),
                connections,
            )
            .await
            .map_err(|e| StartError::caused("cannot open the PostgreSQL store", e))?;
            work.run(store).await
        }
        None => {
            let db = DataDir::database_in(dir);
            let mode = if may_create && !db.exists() {
                OpenMode::Create
            } else {
                OpenMode::MustExist
            };
            let store = SqliteStore::open_with(&db, mode, config.storage.sqlite_options())
                .map_err(|e| StartError::caused("cannot open the SQLite store", e))?;
            work.run(store).await
        }
    }
}

/// For a command that writes the SQLite store: this process's hold on the data directory (when
/// it exists: a missing one is reported by opening the store), so that it does not run beside a
/// server on the same files.
pub fn hold_sqlite_dir(config: &Config) -> Result<Option<crate::datadir::DirLock>, StartError> {
    if config.database_url.is_some() || !config.data_dir.exists() {
        return Ok(None);
    }
    Ok(Some(crate::datadir::DirLock::acquire(&config.data_dir)?))
}

/// The policy file the configuration names, or the default policy.
pub fn configured_policy(config: &Config) -> Result<Policy, StartError> {
    match &config.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::caused(path.display().to_string(), e))?;
            Policy::parse(&text).map_err(|e| StartError::caused(path.display().to_string(), e))
        }
        None => Ok(Policy::default_policy()),
    }
}

/// Deletes what is older than its retention, erases holders inactive past theirs, and records
/// each in the audit log (an erasure as `holder-erased`, naming the holder's id only); then, when
/// it deleted anything, scrubs the deleted bytes from the database's files.
pub async fn purge_once<S: Store>(store: &S, retention: &Retention) -> Result<Purged, StoreError> {
    let t = now();
    let report = store.purge(t - retention.records).await?;
    let personal = erasure::purge_personal(store, retention, t).await?;
    store
        .append_audit(&AuditEntry {
            at: t,
            actor: "system".into(),
            role: "system".into(),
            action: format!(
                "purge: {} check-ins, {} declarations, {} reports, {} exposures, {} test results, {} decided appeals, {} inactive holders",
                report.checkins,
                report.declarations,
                report.reports,
                report.exposures,
                personal.tests,
                personal.appeals,
                personal.holders
            ),
            subject: None,
            purpose: format!(
                "retention of {} days; tests {} days, decided appeals {} days, inactive holders {} days",
                retention.records.whole_days(),
                retention.tests.whole_days(),
                retention.decided_appeals.whole_days(),
                retention.holders_inactive.whole_days()
            ),
        })
        .await?;
    let purged = Purged { report, personal };
    // After the record, so that a long scrub does not hold it back.
    if purged.erased_personal() {
        erasure::scrub(store).await;
    }
    Ok(purged)
}

/// Purges at start and every hour after, while the server runs. The purge at start also scrubs
/// when it deleted nothing: erasures whose background scrub a stopped node still owed are
/// covered then.
pub(crate) async fn retention_task<S: Store>(app: Weak<App<S>>, retention: Retention) {
    let mut first = true;
    loop {
        let Some(a) = app.upgrade() else { return };
        match purge_once(a.store(), &retention).await {
            Ok(r) => {
                tracing::info!(
                    deleted = r.report.total() + r.personal.tests + r.personal.appeals,
                    erased = r.personal.holders,
                    "retention purge"
                );
                if first && !r.erased_personal() {
                    erasure::scrub(a.store()).await;
                }
            }
            Err(e) => tracing::error!(error = %crate::problem::ErrorChain(&e), "retention purge failed"),
        }
        first = false;
        drop(a);
        tokio::time::sleep(StdDuration::from_secs(3600)).await;
    }
}

struct Purge(Retention);

impl StoreWork for Purge {
    type Output = Purged;

    async fn run<S: Store>(self, store: S) -> Result<Purged, StartError> {
        Ok(purge_once(&store, &self.0).await?)
    }
}

/// Opens the configured store (the data directory must exist) and runs [`purge_once`] on it:
/// the `healthcode purge` command.
pub async fn purge_now(config: &Config) -> Result<Purged, StartError> {
    let retention = Retention::from_config(config);
    let _held = hold_sqlite_dir(config)?;
    with_store(config, &config.data_dir, false, 2, Purge(retention)).await
}

struct VerifyAudit;

/// What `healthcode audit verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditBroken {
    /// The hash chain breaks.
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    /// A tree head the server published no longer matches the rows.
    #[error(transparent)]
    Head(#[from] HeadMismatch),
}

impl StoreWork for VerifyAudit {
    type Output = Result<u64, AuditBroken>;

    async fn run<S: Store>(self, store: S) -> Result<Self::Output, StartError> {
        let records = all_audit_records(&store).await?;
        let heads = store.tree_heads().await?;
        if let Err(brk) = verify_chain(records.iter().cloned()) {
            return Ok(Err(brk.into()));
        }
        let n = records.len() as u64;
        Ok(
            tokio::task::block_in_place(|| verify_tree_heads(&records, &heads))
                .map(|_| n)
                .map_err(AuditBroken::from),
        )
    }
}

/// Walks the configured store's audit chain and checks the tree heads kept in it against the
/// rows: the `healthcode audit verify` command.
pub async fn verify_audit_now(config: &Config) -> Result<Result<u64, AuditBroken>, StartError> {
    with_store(config, &config.data_dir, false, 2, VerifyAudit).await
}

struct CreateAccount<'a> {
    username: &'a str,
    role: Role,
    phone: Option<&'a str>,
    at: OffsetDateTime,
}

impl StoreWork for CreateAccount<'_> {
    type Output = String;

    async fn run<S: Store>(self, store: S) -> Result<String, StartError> {
        let phone = match self.phone {
            Some(p) => Some(
                healthcode_domain::Phone::parse(p).map_err(|e| StartError::msg(format!("--phone: {e}")))?,
            ),
            None => None,
        };
        let password = account_with_audit(&store, self.username, self.role, self.at)
            .await
            .map_err(|e| StartError::caused("cannot create the account", e))?;
        if let Some(phone) = phone {
            let o = store
                .officer_by_username(self.username)
                .await?
                .ok_or_else(|| StartError::msg("the account just created is gone"))?;
            store.set_officer_phone(o.id, phone.as_str(), now()).await?;
        }
        Ok(password)
    }
}

struct ResetPassword<'a> {
    username: &'a str,
    second_factor: bool,
}

impl StoreWork for ResetPassword<'_> {
    type Output = String;

    async fn run<S: Store>(self, store: S) -> Result<String, StartError> {
        let officer = store
            .officer_by_username(self.username.trim())
            .await?
            .ok_or_else(|| StartError::msg(format!("no staff account is named {:?}", self.username)))?;
        let password = crate::auth::one_time_password().map_err(|e| StartError::caused("no password", e))?;
        let hash = crate::auth::PasswordHasher::default()
            .hash(password.clone())
            .await
            .map_err(|e| StartError::caused("cannot hash the password", e))?;
        // Audited before it is done, as in the API.
        store
            .append_audit(&AuditEntry {
                at: now(),
                actor: "operator".into(),
                role: "system".into(),
                action: if self.second_factor {
                    "second-factor-reset"
                } else {
                    "password-reset"
                }
                .into(),
                subject: None,
                purpose: format!(
                    "account {} ({}): a new one-time password{} (command line: break-glass)",
                    officer.id.0,
                    crate::signin::printable(&officer.username),
                    if self.second_factor {
                        ", second factor removed"
                    } else {
                        ""
                    }
                ),
            })
            .await?;
        if self.second_factor && officer.second_factor {
            store.reset_second_factor(officer.id).await?;
        }
        // Recorded as a reset, by "the operator" (no account has id 0): the account then
        // approves nothing for a day, nor anything of another account the operator reset.
        store
            .reset_officer_password(officer.id, &hash, healthcode_domain::OfficerId(0), now())
            .await?;
        store.revoke_sessions_of(&Principal::Officer(officer.id)).await?;
        Ok(password)
    }
}

/// Gives a staff account a new one-time password, printed on the server's terminal, and ends
/// its sessions (with `second_factor`, removes its second factor too): the `healthcode admin
/// reset-password` command, for an account with no phone to send one to, or when no admin can
/// sign in. Audited.
pub async fn reset_password_now(
    config: &Config,
    username: &str,
    second_factor: bool,
) -> Result<String, StartError> {
    with_store(
        config,
        &config.data_dir,
        false,
        2,
        ResetPassword {
            username,
            second_factor,
        },
    )
    .await
}

/// Creates a staff account with a one-time password in the configured store (making the data
/// directory when it does not exist yet): the `healthcode admin create` command, the bootstrap
/// and break-glass path that needs no second admin (audited as such). Returns the password,
/// shown once.
pub async fn create_account_now(config: &Config, username: &str, role: Role) -> Result<String, StartError> {
    create_account_at(config, username, role, None, now()).await
}

/// [`create_account_now`] with the owner's phone (where an admin's later reset sends a new
/// password) and the account's creation time given: an account created `at` in the past may
/// approve two-person acts at once (`[governance] approver_min_age_hours`). Past times are for
/// restoring accounts and for tests; the audit entry says the time it was given.
pub async fn create_account_at(
    config: &Config,
    username: &str,
    role: Role,
    phone: Option<&str>,
    at: OffsetDateTime,
) -> Result<String, StartError> {
    // The first account may come before the first `serve`: make the directory as it would, and
    // hold it while the account is written.
    let _held = match config.database_url {
        None => Some(DataDir::open_or_create(&config.data_dir, &config.region, now())?),
        Some(_) => None,
    };
    with_store(
        config,
        &config.data_dir,
        true,
        2,
        CreateAccount {
            username,
            role,
            phone,
            at,
        },
    )
    .await
}

async fn account_with_audit<S: Store>(
    store: &S,
    username: &str,
    role: Role,
    at: OffsetDateTime,
) -> Result<String, ApiError> {
    let passwords = crate::auth::PasswordHasher::default();
    let (view, password) = crate::admin::create_account(store, &passwords, username, role, at).await?;
    let t = now();
    let dated = if (t - at).abs() < Duration::minutes(1) {
        String::new()
    } else {
        format!(", created as of {}", crate::admin::rfc(at))
    };
    store
        .append_audit(&AuditEntry {
            at: t,
            actor: "operator".into(),
            role: "system".into(),
            action: "account-create".into(),
            subject: None,
            purpose: format!(
                "{} as {} (command line: bootstrap or break-glass, no second admin{dated})",
                view.username, view.role
            ),
        })
        .await?;
    Ok(password)
}

struct UnlockAccount<'a> {
    username: &'a str,
}

impl StoreWork for UnlockAccount<'_> {
    type Output = bool;

    async fn run<S: Store>(self, store: S) -> Result<bool, StartError> {
        let officer = store
            .officer_by_username(self.username.trim())
            .await?
            .ok_or_else(|| StartError::msg(format!("no staff account is named {:?}", self.username)))?;
        // Audited before it is done, as in the API.
        store
            .append_audit(&AuditEntry {
                at: now(),
                actor: "operator".into(),
                role: "system".into(),
                action: "sign-in-unlock".into(),
                subject: None,
                purpose: format!(
                    "account {} ({}) (command line)",
                    officer.id.0,
                    crate::signin::printable(&officer.username)
                ),
            })
            .await?;
        Ok(store.unlock_sign_in(&crate::signin::lock_key(officer.id)).await?)
    }
}

/// Lifts the lock that repeated wrong second-factor codes put on a staff account: the
/// `healthcode admin unlock` command, for when no admin can sign in to do it. Audited. False
/// when the account was not locked.
pub async fn unlock_account_now(config: &Config, username: &str) -> Result<bool, StartError> {
    with_store(config, &config.data_dir, false, 2, UnlockAccount { username }).await
}

struct Simulate<'a> {
    dir: &'a DataDir,
    policy: Policy,
    params: &'a healthcode_exposure::simulate::CityParams,
    progress: healthcode_exposure::simulate::Progress<'a>,
}

impl StoreWork for Simulate<'_> {
    type Output = (healthcode_exposure::simulate::CityReport, f64);

    async fn run<S: Store>(self, store: S) -> Result<Self::Output, StartError> {
        crate::policies::publish_for_tool(&store, &self.policy, "made by healthcode simulate").await?;
        let r = healthcode_exposure::simulate::simulate(&store, &self.dir.crypto, self.params, self.progress)
            .await?;
        let t = std::time::Instant::now();
        store.flush_checkins().await?;
        Ok((r, t.elapsed().as_secs_f64()))
    }
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
    let work = Simulate {
        dir: &dir,
        policy: configured_policy(config)?,
        params,
        progress,
    };
    with_store(config, &dir.path, true, 8, work).await
}
