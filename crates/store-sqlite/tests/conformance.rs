//! The shared conformance suite on SQLite, each test on its own database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_store::conformance::Harness;
use healthcode_store_sqlite::{OpenMode, SqliteStore};

struct Sqlite {
    store: SqliteStore,
    dir: tempfile::TempDir,
}

async fn fresh() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("healthcode.db"), OpenMode::Create).unwrap();
    Sqlite { store, dir }
}

impl Harness for Sqlite {
    type S = SqliteStore;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn raw_holder_bytes(&self) -> Vec<u8> {
        // Every byte SQLite wrote: the database file and its write-ahead log.
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        all
    }

    async fn tamper_audit(&self, seq: i64, action: &str) {
        let n = self
            .store
            .raw_execute(&format!(
                "UPDATE audit_log SET action = '{action}' WHERE seq = {seq}"
            ))
            .unwrap();
        assert_eq!(n, 1);
    }
}

/// Named `sqlite::…` in the test output, beside the PostgreSQL run's `postgres::…`.
mod sqlite {
    healthcode_store::conformance_tests!(async { Some(super::fresh().await) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_path_is_not_a_new_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthcode.db");
    let err = SqliteStore::open(&dir.path().join("healthcdoe.db"), OpenMode::MustExist).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("healthcdoe.db").exists());
    drop(SqliteStore::open(&path, OpenMode::Create).unwrap());
    // Reopening runs no migration twice and keeps the data.
    SqliteStore::open(&path, OpenMode::MustExist).unwrap();
}

/// Check-ins are acknowledged in the inbox and merged into the indexed file in the background;
/// the suite above mostly sees the inbox, so this walks the merge itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkins_survive_the_merge_and_stay_unique() {
    use healthcode_domain::{CheckIn, DeviceId, HolderId, VenueId};
    use healthcode_store::Store;
    use time::{Duration, macros::datetime};
    let h = fresh().await;
    let s = &h.store;
    let t = datetime!(2026-11-20 08:00:00 UTC);
    let scan = |i: i64| CheckIn {
        holder: HolderId::from_bytes(&[(i % 5) as u8; 8]).unwrap(),
        venue: VenueId(i % 3),
        device: DeviceId(i % 3),
        seq: i,
        at: t + Duration::minutes(i),
        out: None,
    };
    let first: Vec<CheckIn> = (0..500).map(scan).collect();
    assert_eq!(s.insert_checkins(&first).await.unwrap(), 500);
    tokio::task::block_in_place(|| s.flush_checkins()).unwrap();
    // Re-sent after the merge: recognised against the indexed table.
    let again: Vec<CheckIn> = (400..600).map(scan).collect();
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 100);
    // Half merged, half in the inbox: a range read sees each scan once.
    let all = s
        .checkins_at_venue(VenueId(1), t, t + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(all.len(), (0..600).filter(|i| i % 3 == 1).count());
    // Simulate a crash between the merge's copy and its delete: the same rows in both places.
    tokio::task::block_in_place(|| s.flush_checkins()).unwrap();
    s.raw_execute("INSERT INTO checkin_inbox (device, seq, holder, venue, at, out) SELECT device, seq, holder, venue, at, out FROM ix.checkins WHERE seq < 50").unwrap();
    let all = s
        .checkins_of_holder(&HolderId::from_bytes(&[0; 8]).unwrap(), t, t + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(all.len(), 120);
    let report = s.purge(t + Duration::minutes(100)).await.unwrap();
    assert_eq!(report.checkins, 100, "rows in both places are counted once");
    tokio::task::block_in_place(|| s.flush_checkins()).unwrap();
    assert_eq!(
        s.checkins_at_venue(VenueId(0), t, t + Duration::days(1))
            .await
            .unwrap()
            .len(),
        (100..600).filter(|i| i % 3 == 0).count()
    );
}
