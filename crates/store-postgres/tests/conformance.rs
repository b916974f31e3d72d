//! The shared conformance suite on PostgreSQL. Runs when HEALTHCODE_TEST_POSTGRES_URL names a
//! database (CI sets it); each test works in a schema of its own, so runs never see each other's
//! rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_store::conformance::Harness;
use healthcode_store_postgres::PgStore;
use healthcode_store_postgres::testing::TestSchema;

struct Postgres {
    // Declared first, so the pool closes before the schema is dropped.
    store: PgStore,
    _schema: TestSchema,
}

/// A store in a fresh schema, or `None` (with a note) when no database is configured.
async fn fresh() -> Option<Postgres> {
    let schema = TestSchema::from_env("hc_test")?;
    let store = schema.connect(8).await.unwrap();
    Some(Postgres {
        store,
        _schema: schema,
    })
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

    async fn raw_erasure_bytes(&self) -> Vec<u8> {
        // The pages as they lie (pageinspect, through the buffer cache), of every table erasure
        // deletes from and every index on them: what a plain DELETE or VACUUM would leave readable.
        let mut tries = 0;
        while let Err(e) = self
            .store
            .raw_query("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public")
            .await
        {
            // Tests creating it at once race on the catalogue; one of them wins.
            tries += 1;
            assert!(tries < 5, "pageinspect: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let tables = healthcode_store::erased_tables()
            .map(|t| format!("'{t}'::regclass"))
            .collect::<Vec<_>>()
            .join(", ");
        let rels = self
            .store
            .raw_query(&format!(
                "SELECT c.oid::regclass::text FROM pg_class c
                 WHERE c.oid IN ({tables})
                    OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ({tables}))"
            ))
            .await
            .unwrap();
        let mut all = Vec::new();
        for r in rels {
            let rel: String = r.get(0);
            let pages = self
                .store
                .raw_query(&format!(
                    "SELECT public.get_raw_page('{rel}', p::int) FROM generate_series(0, pg_relation_size('{rel}') / 8192 - 1) p"
                ))
                .await
                .unwrap();
            for p in pages {
                all.extend(p.get::<_, Vec<u8>>(0));
            }
        }
        assert!(!all.is_empty());
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
        // Close the open hours now: duplicates out, indexes in.
        self.store.flush_checkins().await.unwrap();
    }

    async fn duplicate_into_inbox(&self, _below: i64) {
        // No inbox on PostgreSQL: nothing a crash could leave in two places.
    }
}

/// Named `postgres::…` in the test output, beside the SQLite run's `sqlite::…`.
mod postgres {
    healthcode_store::conformance_tests!(super::fresh());
}

/// Scans of the current hour go unindexed into its partition; re-sent ones are stored twice until
/// the hour closes, but read once, and counted as new only while the hour is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_hour_reads_each_scan_once_and_closes_clean() {
    use healthcode_domain::{CheckIn, DeviceId, HolderId, VenueId};
    use healthcode_store::CheckinStore;
    use time::{Duration, OffsetDateTime};
    let Some(h) = fresh().await else { return };
    let s = &h.store;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let scans: Vec<CheckIn> = (0..300)
        .map(|i| CheckIn {
            holder: HolderId::from_bytes(&[(i % 4) as u8; 8]).unwrap(),
            venue: VenueId(i % 2),
            device: DeviceId(i % 2),
            seq: i,
            at: now - Duration::seconds(i),
            out: None,
        })
        .collect();
    assert_eq!(s.insert_checkins(&scans).await.unwrap(), 300);
    // A scanner re-sends 100 of them before the hour closes.
    s.insert_checkins(&scans[..100]).await.unwrap();
    let window = (now - Duration::hours(2), now + Duration::hours(1));
    assert_eq!(
        s.checkins_at_venue(VenueId(1), window.0, window.1)
            .await
            .unwrap()
            .len(),
        150
    );
    assert_eq!(
        s.checkins_of_holder(&HolderId::from_bytes(&[0; 8]).unwrap(), window.0, window.1)
            .await
            .unwrap()
            .len(),
        75
    );
    s.flush_checkins().await.unwrap();
    let stored: i64 = s.raw_query("SELECT count(*) FROM checkins").await.unwrap()[0].get(0);
    assert_eq!(stored, 300, "closing the hour removed the duplicates");
    assert_eq!(
        s.insert_checkins(&scans[..100]).await.unwrap(),
        0,
        "a closed hour counts exactly"
    );
    assert_eq!(
        s.checkins_at_venue(VenueId(0), window.0, window.1)
            .await
            .unwrap()
            .len(),
        150
    );
}

/// A role this version does not know (written by a later one, or damaged) is unreadable data, not
/// a database failure, and never some other role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_stored_role_is_corrupt() {
    let Some(h) = fresh().await else { return };
    let s = &h.store;
    let officer = healthcode_store::conformance::add_one_officer(s).await;
    s.raw_query("UPDATE officers SET role = 'superuser'")
        .await
        .unwrap();
    healthcode_store::conformance::an_unknown_role_reads_as_corrupt(s, &officer).await;
}

/// An exposure state this version does not know (written by a later one, or damaged) is
/// unreadable data, not a database failure, and never some other state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_stored_exposure_state_is_corrupt() {
    let Some(h) = fresh().await else { return };
    let s = &h.store;
    let stored = healthcode_store::conformance::add_one_pending_exposure(s).await;
    // The schema refuses such a state; only a damaged or newer database holds one.
    assert!(
        s.raw_query("UPDATE exposures SET state = 'reviewed'")
            .await
            .is_err()
    );
    s.raw_query("ALTER TABLE exposures DROP CONSTRAINT exposures_state_check")
        .await
        .unwrap();
    s.raw_query("UPDATE exposures SET state = 'reviewed'")
        .await
        .unwrap();
    healthcode_store::conformance::an_unknown_exposure_state_reads_as_corrupt(s, &stored).await;
}

/// A failing query is a database error that keeps PostgreSQL's own message in its sources (the
/// driver's error says only "db error"); a clash names its constraint but never the row's values
/// (PostgreSQL's DETAIL quotes them, and a conflict's text can reach a client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_keeps_what_postgresql_said() {
    use healthcode_store::{Role, StaffStore, StoreError};
    let Some(h) = fresh().await else { return };
    let s = &h.store;
    let e = s.raw_query("SELEC 1").await.unwrap_err();
    assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
    let said = healthcode_store::conformance::messages(&e);
    assert_eq!(said[0], "database error");
    assert!(
        said.iter()
            .any(|m| m.contains("syntax error at or near \"SELEC\"")),
        "{said:?}"
    );
    let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    s.insert_officer("li.na", Role::Officer, "$argon2id$x", false, at)
        .await
        .unwrap();
    match s
        .insert_officer("li.na", Role::Auditor, "$argon2id$y", false, at)
        .await
    {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("officers_username_key"), "{m}");
            assert!(!m.contains("li.na"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
