//! A schema of its own for each test that uses PostgreSQL, named at random and dropped when the
//! test is done, so that runs never see each other's rows and leave nothing behind. Used by the
//! conformance suite and by the other crates' PostgreSQL tests.

use crate::{ConnectError, DatabaseUrl, PgStore};

/// The environment variable that names the test database (CI sets it).
pub const TEST_URL_ENV: &str = "HEALTHCODE_TEST_POSTGRES_URL";

/// A fresh schema in the test database; dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct TestSchema {
    url: DatabaseUrl,
    name: String,
}

impl TestSchema {
    /// A new schema name starting with `prefix` in the database named by [`TEST_URL_ENV`], or
    /// `None` (with a note on standard error) when it is not set. Under CI (`CI` set) a missing
    /// URL fails the test, so the PostgreSQL half of a suite can never be skipped silently there.
    pub fn from_env(prefix: &str) -> Option<TestSchema> {
        let Ok(url) = std::env::var(TEST_URL_ENV) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{TEST_URL_ENV} must be set under CI"
            );
            eprintln!("skipped: set {TEST_URL_ENV} to run this test on PostgreSQL");
            return None;
        };
        let mut r = [0u8; 6];
        if getrandom::fill(&mut r).is_err() {
            // Unique enough for one test run: the time and the process.
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                ^ u128::from(std::process::id());
            r.copy_from_slice(&n.to_le_bytes()[..6]);
        }
        let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
        Some(TestSchema {
            url: DatabaseUrl::new(url),
            name: format!("{prefix}_{suffix}"),
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store in this schema (made and migrated on first use).
    pub async fn connect(&self, max_connections: usize) -> Result<PgStore, ConnectError> {
        PgStore::connect(&self.url, Some(&self.name), max_connections).await
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let url = self.url.expose().to_owned();
        let schema = self.name.clone();
        // A runtime of its own, on a thread of its own: this may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    let task = tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                    drop(client);
                    let _ = task.await;
                }
            });
        })
        .join();
    }
}
