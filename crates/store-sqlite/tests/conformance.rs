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

    async fn raw_erasure_bytes(&self) -> Vec<u8> {
        self.raw_holder_bytes().await
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

    async fn flush_checkins(&self) {
        tokio::task::block_in_place(|| self.store.flush_checkins()).unwrap();
    }

    async fn duplicate_into_inbox(&self, below: i64) {
        self.store
            .raw_execute(&format!(
                "INSERT INTO checkin_inbox (device, seq, holder, venue, at, out)
                 SELECT device, seq, holder, venue, at, out FROM ix.checkins WHERE seq < {below}"
            ))
            .unwrap();
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

/// A role this version does not know (written by a later one, or damaged) is unreadable data, not
/// a database failure, and never some other role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_stored_role_is_corrupt() {
    let h = fresh().await;
    let s = &h.store;
    let officer = healthcode_store::conformance::add_one_officer(s).await;
    assert_eq!(
        s.raw_execute("UPDATE officers SET role = 'superuser'").unwrap(),
        1
    );
    healthcode_store::conformance::an_unknown_role_reads_as_corrupt(s, &officer).await;
}

/// An exposure state this version does not know (written by a later one, or damaged) is
/// unreadable data, not a database failure, and never some other state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_stored_exposure_state_is_corrupt() {
    let h = fresh().await;
    let s = &h.store;
    let stored = healthcode_store::conformance::add_one_pending_exposure(s).await;
    // The schema refuses such a state; only a damaged or newer file holds one.
    assert!(s.raw_execute("UPDATE exposures SET state = 'reviewed'").is_err());
    s.raw_execute("PRAGMA ignore_check_constraints = ON").unwrap();
    assert_eq!(
        s.raw_execute("UPDATE exposures SET state = 'reviewed'").unwrap(),
        1
    );
    healthcode_store::conformance::an_unknown_exposure_state_reads_as_corrupt(s, &stored).await;
}

/// A failing statement is a database error that keeps what SQLite said as its source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_keeps_what_sqlite_said() {
    use healthcode_store::StoreError;
    let h = fresh().await;
    let e = h.store.raw_execute("SELEC 1").unwrap_err();
    assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
    let said = healthcode_store::conformance::messages(&e);
    assert_eq!(said[0], "database error");
    assert!(said.iter().any(|m| m.contains("syntax error")), "{said:?}");
    // Opening a file that is not a database says why, too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthcode.db");
    std::fs::write(&path, b"this is not a database, only a text file of some length").unwrap();
    std::fs::write(SqliteStore::checkins_path(&path), b"nor this").unwrap();
    let e = SqliteStore::open(&path, OpenMode::MustExist).unwrap_err();
    let said = healthcode_store::conformance::messages(&e);
    assert!(said[0].starts_with("cannot open database"), "{said:?}");
    assert!(said.iter().any(|m| m.contains("not a database")), "{said:?}");
}
