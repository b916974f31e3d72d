//! The shared conformance suite on PostgreSQL. Runs when HEALTHCODE_TEST_POSTGRES_URL names a
//! database (CI sets it); each test works in a schema of its own, so runs never see each other's
//! rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_store::conformance::Harness;
use healthcode_store_postgres::{DatabaseUrl, PgStore};

const URL_ENV: &str = "HEALTHCODE_TEST_POSTGRES_URL";

struct Postgres {
    store: PgStore,
}

/// A store in a fresh schema, or `None` (with a note) when no database is configured. Under CI a
/// missing URL is an error, so the PostgreSQL suite can never be skipped silently there.
async fn fresh() -> Option<Postgres> {
    let Ok(url) = std::env::var(URL_ENV) else {
        assert!(std::env::var_os("CI").is_none(), "{URL_ENV} must be set under CI");
        eprintln!("skipped: set {URL_ENV} to run the PostgreSQL conformance suite");
        return None;
    };
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).unwrap();
    let schema = format!(
        "hc_test_{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let store = PgStore::connect(&DatabaseUrl::new(url), Some(&schema), 8)
        .await
        .unwrap();
    Some(Postgres { store })
}

impl Harness for Postgres {
    type S = PgStore;

    fn store(&self) -> &PgStore {
        &self.store
    }

    async fn raw_holder_bytes(&self) -> Vec<u8> {
        let rows = self
            .store
            .raw_query("SELECT convert_to(t::text, 'UTF8') FROM holders t")
            .await
            .unwrap();
        let mut all = Vec::new();
        for r in rows {
            all.extend(r.get::<_, Vec<u8>>(0));
        }
        // The row text shows byte strings as hex: also look at the raw bytes themselves.
        let rows = self.store.raw_query("SELECT sealed FROM holders").await.unwrap();
        for r in rows {
            all.extend(r.get::<_, Vec<u8>>(0));
        }
        all
    }

    async fn tamper_audit(&self, seq: i64, action: &str) {
        self.store
            .raw_query(&format!(
                "UPDATE audit_log SET action = '{action}' WHERE seq = {seq}"
            ))
            .await
            .unwrap();
    }

    async fn flush_checkins(&self) {
        // Check-ins go straight into their day partition: nothing waits to be merged.
    }

    async fn duplicate_into_inbox(&self, _below: i64) {
        // No inbox on PostgreSQL: nothing a crash could leave in two places.
    }
}

/// Named `postgres::…` in the test output, beside the SQLite run's `sqlite::…`.
mod postgres {
    healthcode_store::conformance_tests!(super::fresh());
}
