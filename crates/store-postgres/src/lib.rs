//! The PostgreSQL backend: a deadpool connection pool, migrations at start-up, check-ins in a table
//! partitioned by hour (UTC), appended to unindexed while the hour is open and indexed when it
//! closes (see `checkins`), so that retention drops whole partitions.
//!
//! This file connects, migrates and holds the pool; each store trait is implemented in a file of
//! its own (`holders`, `checkins` with the hour partitions, `cases`, `staff`, `audit`), reading
//! rows through `rows`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use healthcode_store::StoreResult;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::rows::{db, pool_err};

mod audit;
mod cases;
mod checkin_keys;
mod checkins;
mod consent;
mod credentials;
mod erasure;
mod health;
mod holders;
mod proposals;
mod rows;
mod staff;
pub mod testing;
mod tls;

/// The migrations, in order. Released ones are never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_accounts", include_str!("../migrations/0002_accounts.sql")),
    (
        "0003_exposure_review",
        include_str!("../migrations/0003_exposure_review.sql"),
    ),
    (
        "0004_device_revocation",
        include_str!("../migrations/0004_device_revocation.sql"),
    ),
    (
        "0005_staff_credentials",
        include_str!("../migrations/0005_staff_credentials.sql"),
    ),
    (
        "0007_write_probe",
        include_str!("../migrations/0007_write_probe.sql"),
    ),
    (
        "0008_otp_challenge",
        include_str!("../migrations/0008_otp_challenge.sql"),
    ),
    (
        "0009_session_second_factor",
        include_str!("../migrations/0009_session_second_factor.sql"),
    ),
    (
        "0010_transparency",
        include_str!("../migrations/0010_transparency.sql"),
    ),
    (
        "0011_two_person",
        include_str!("../migrations/0011_two_person.sql"),
    ),
    ("0012_consent", include_str!("../migrations/0012_consent.sql")),
    (
        "0013_limits_erasure",
        include_str!("../migrations/0013_limits_erasure.sql"),
    ),
    ("0014_policies", include_str!("../migrations/0014_policies.sql")),
    ("0015_insiders", include_str!("../migrations/0015_insiders.sql")),
    (
        "0016_staff_phones",
        include_str!("../migrations/0016_staff_phones.sql"),
    ),
];

/// Connecting or migrating failed; the cause is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is malformed.
    #[error("bad PostgreSQL URL")]
    Url(#[source] tokio_postgres::Error),
    /// The schema asked for is not a plain name.
    #[error("schema name {0:?} must be lower-case letters, digits and _")]
    Schema(String),
    /// `sslmode` or `sslrootcert` cannot be used.
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    /// The server refused, is unreachable, or a migration failed.
    #[error("cannot use PostgreSQL")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A PostgreSQL URL whose `Debug` and `Display` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The URL with its password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        // postgres://user:password@host/db → postgres://user:***@host/db
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &self.0[s + 3..at];
                match creds.find(':') {
                    Some(c) => format!("{}{}:***{}", &self.0[..s + 3], &creds[..c], &self.0[at..]),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    inner: Arc<PgInner>,
}

/// What the store and its background partition closer share.
pub struct PgInner {
    pool: Pool,
    /// Hours whose check-in partition is known to exist, and whether it is closed.
    partitions: Mutex<BTreeMap<OffsetDateTime, bool>>,
    /// Hours a bulk load of this process created open and may still be filling: the closer
    /// leaves them to the load's flush (or to a later process's closer).
    loading: Mutex<std::collections::HashSet<OffsetDateTime>>,
}

impl std::fmt::Debug for PgInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgInner")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for PgStore {
    type Target = PgInner;
    fn deref(&self) -> &PgInner {
        &self.inner
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with a pool of `max_connections`, optionally in a schema of its own (created if
    /// missing), and runs pending migrations.
    pub async fn connect(
        url: &DatabaseUrl,
        schema: Option<&str>,
        max_connections: usize,
    ) -> Result<PgStore, ConnectError> {
        let (tls, rest) = tls::split(url.expose())?;
        let mut cfg = tokio_postgres::Config::from_str(&rest).map_err(ConnectError::Url)?;
        cfg.ssl_mode(tls.driver_mode());
        let connector = tls.connector()?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(5));
        }
        if let Some(s) = schema {
            if !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConnectError::Schema(s.to_owned()));
            }
            let (client, conn) = cfg
                .connect(connector.clone())
                .await
                .map_err(|e| ConnectError::Database(e.into()))?;
            let task = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await
                .map_err(|e| ConnectError::Database(e.into()))?;
            drop(client);
            let _ = task.await;
            cfg.options(format!("-c search_path={s}"));
        }
        let mgr = Manager::from_config(
            cfg,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Time-outs, so that a database that stops answering (packets dropped, no reset) is a
        // prompt "unavailable", not a request hanging until its own time-out.
        let limit = Some(std::time::Duration::from_secs(5));
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(limit)
            .create_timeout(limit)
            .recycle_timeout(limit)
            .build()
            .map_err(|e| ConnectError::Database(e.into()))?;
        let store = PgStore {
            inner: Arc::new(PgInner {
                pool,
                partitions: Mutex::new(BTreeMap::new()),
                loading: Mutex::new(std::collections::HashSet::new()),
            }),
        };
        tokio::spawn(checkins::closer(Arc::downgrade(&store.inner)));
        store
            .migrate()
            .await
            .map_err(|e| ConnectError::Database(e.into()))?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // One migrator at a time across all API nodes.
        tx.execute("SELECT pg_advisory_xact_lock(7209411)", &[])
            .await
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            .await
            .map_err(db)?;
        for (name, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[name])
                .await
                .map_err(db)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    /// Runs raw SQL, for tests that must reach behind the store's back.
    #[doc(hidden)]
    pub async fn raw_query(&self, sql: &str) -> StoreResult<Vec<Row>> {
        self.conn().await?.query(sql, &[]).await.map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_connection_says_why() {
        let e = PgStore::connect(&DatabaseUrl::new("postgres://x@127.0.0.1:1/none"), None, 1)
            .await
            .unwrap_err();
        let said = healthcode_store::conformance::messages(&e);
        assert_eq!(said[0], "cannot use PostgreSQL");
        assert!(
            said.iter().any(|m| m.to_lowercase().contains("connect")),
            "{said:?}"
        );
        let e = PgStore::connect(&DatabaseUrl::new("postgres://x@127.0.0.1/none?bogus=1"), None, 1)
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::Url(_)), "{e:?}");
        assert!(healthcode_store::conformance::messages(&e).len() > 1, "{e:?}");
        let e = PgStore::connect(&DatabaseUrl::new("postgres://x@127.0.0.1/none"), Some("No"), 1)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "schema name \"No\" must be lower-case letters, digits and _"
        );
    }

    #[test]
    fn a_database_url_does_not_print_its_password() {
        let url = DatabaseUrl::new("postgres://healthcode:s3cret-pw@db.internal:5432/healthcode");
        assert_eq!(
            format!("{url:?}"),
            "DatabaseUrl(postgres://healthcode:***@db.internal:5432/healthcode)"
        );
        assert!(!url.to_string().contains("s3cret"));
        assert_eq!(
            url.expose(),
            "postgres://healthcode:s3cret-pw@db.internal:5432/healthcode"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://root@127.0.0.1/test").to_string(),
            "postgres://root@127.0.0.1/test"
        );
    }
}
