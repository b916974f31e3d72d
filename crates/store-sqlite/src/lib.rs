//! The embedded SQLite backend: one file, WAL, one writer connection and a few readers.
//!
//! Durability ([`Synchronous`]): with `FULL` (the default) a committed transaction is on the disk
//! before the commit returns, so it survives a crash of the process, of the operating system and a
//! power cut; with `NORMAL` it survives a crash of the process, but the last commits before a
//! power cut or an operating-system crash may be lost.
//!
//! Calls run on the caller's Tokio worker thread through `block_in_place`, so the store needs the
//! multi-threaded runtime (as `serve` and the tests use).
//!
//! This file opens, migrates and holds the connections; each store trait is implemented in a file
//! of its own (`holders`, `checkins` with the check-in inbox and its merger, `cases`, `staff`,
//! `audit`), reading rows through `rows`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use healthcode_domain::HolderId;
use healthcode_store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags, Transaction, params};
use time::OffsetDateTime;

use crate::rows::backend;

mod audit;
mod backup;
mod cases;
mod checkins;
mod consent;
mod credentials;
mod erasure;
mod health;
mod holders;
mod proposals;
mod rows;
mod space;
mod staff;

pub use backup::{BackupError, backup_database, check_database};
pub use space::BelowFloor;

/// The migrations of the main file, in order. Released ones are never edited.
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
/// The migrations of the check-ins file.
const CHECKIN_MIGRATIONS: &[(&str, &str)] = &[(
    "0001_checkins",
    include_str!("../migrations/checkins/0001_checkins.sql"),
)];

const READERS: usize = 4;

/// How to treat a missing database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create it (a fresh data directory).
    Create,
    /// Refuse: a mistyped path must not silently become a second, empty database.
    MustExist,
}

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file is missing and creating it was not asked for.
    #[error(
        "database {0} does not exist (pass the path of the existing database, or initialise a new data directory)"
    )]
    Missing(PathBuf),
    /// SQLite refused.
    #[error("cannot open database {path}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The thread that moves check-ins into their indexed file could not start.
    #[error("cannot start the check-in merger")]
    Merger(#[source] std::io::Error),
}

/// When a commit of the main file returns (SQLite's `synchronous` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// After the write-ahead log is synced to the disk: a committed transaction survives a power
    /// cut.
    #[default]
    Full,
    /// Before the log is synced (it is synced at checkpoints): a committed transaction survives a
    /// crash of the process, not necessarily of the operating system or the power.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// When commits of the main file (everything acknowledged) return.
    pub synchronous: Synchronous,
    /// Free bytes kept on the database's file system: below them writes are refused before they
    /// are tried (`StoreError::Unavailable`) and the check-in merger waits. 0: no floor.
    pub min_free_bytes: u64,
}

/// The SQLite store: a main file, and beside it `<name>.checkins` holding the indexed check-ins.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Writes the main file (the check-ins file attached as `ix`, read only by it).
    writer: Mutex<Connection>,
    /// Writes the check-ins file (the main file attached as `hub`, read only by it).
    ix_writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// `(device, seq)` of every row in the inbox; changed only under `writer`'s lock.
    /// The `(device, seq)` keys of the inbox and whose check-in each holds.
    inbox_keys: Mutex<HashMap<(i64, i64), HolderId>>,
    /// Held for the whole of a merge.
    merge_lock: Mutex<()>,
    /// The floor of free space.
    space: space::SpaceGuard,
    /// Set while the merger cannot write (a full disk, below the floor): readiness reports it.
    merger_stalled: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> StoreResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| StoreError::backend("connection lock poisoned"))
}

impl Inner {
    fn write_blocking<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.space.check()?;
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    fn ix_write_blocking<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.space.check()?;
        let mut c = lock(&self.ix_writer)?;
        let tx = c.transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

fn configure(c: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", sync.pragma())?;
    // After a checkpoint the log is cut back to 64 MiB, so space a burst (or a transaction a full
    // disk rolled back) took is given back.
    c.pragma_update(None, "journal_size_limit", 64_i64 << 20)?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted rows are overwritten with zeros, not only unlinked: erased personal data does not
    // stay readable in free space (this database and those attached later).
    c.pragma_update(None, "secure_delete", "ON")?;
    // Up to 256 MiB of pages a connection, taken only as used.
    c.pragma_update(None, "cache_size", -262_144)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn migrate(c: &mut Connection, migrations: &[(&str, &str)]) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (name, sql) in migrations {
        let tx = c.transaction()?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                params![name, OffsetDateTime::now_utc().unix_timestamp()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

fn attach(c: &Connection, path: &Path, name: &str) -> rusqlite::Result<()> {
    let p = path
        .to_str()
        .ok_or_else(|| rusqlite::Error::InvalidPath(path.to_owned()))?;
    c.execute("ATTACH DATABASE ?1 AS ?2", params![p, name])?;
    Ok(())
}

impl SqliteStore {
    /// Opens (or, with [`OpenMode::Create`], creates) the database and runs pending migrations,
    /// with the default [`Options`] (`synchronous=FULL`, no floor of free space).
    pub fn open(path: &Path, mode: OpenMode) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_with(path, mode, Options::default())
    }

    /// [`SqliteStore::open`] with the given options.
    pub fn open_with(path: &Path, mode: OpenMode, options: Options) -> Result<SqliteStore, OpenError> {
        let ix_path = Self::checkins_path(path);
        if mode == OpenMode::MustExist {
            for p in [path, ix_path.as_path()] {
                if !p.exists() {
                    return Err(OpenError::Missing(p.to_owned()));
                }
            }
        }
        fn err(p: &Path) -> impl FnOnce(rusqlite::Error) -> OpenError + '_ {
            move |source| OpenError::Sqlite {
                path: p.to_owned(),
                source,
            }
        }
        let mut ix_writer = Connection::open(&ix_path).map_err(err(&ix_path))?;
        // A merge's copy must be on disk before the inbox rows it copied are deleted: the
        // check-ins file syncs at every commit (merges are few and large).
        configure(&ix_writer, Synchronous::Full).map_err(err(&ix_path))?;
        migrate(&mut ix_writer, CHECKIN_MIGRATIONS).map_err(err(&ix_path))?;
        let mut writer = Connection::open(path).map_err(err(path))?;
        configure(&writer, options.synchronous).map_err(err(path))?;
        migrate(&mut writer, MIGRATIONS).map_err(err(path))?;
        attach(&writer, &ix_path, "ix").map_err(err(&ix_path))?;
        attach(&ix_writer, path, "hub").map_err(err(path))?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(err(path))?;
            r.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(err(path))?;
            attach(&r, &ix_path, "ix").map_err(err(&ix_path))?;
            readers.push(Mutex::new(r));
        }
        let rows: Vec<(i64, i64, Vec<u8>)> = writer
            .prepare("SELECT device, seq, holder FROM checkin_inbox")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(err(path))?;
        let mut keys = HashMap::with_capacity(rows.len());
        for (device, seq, holder) in rows {
            let holder = HolderId::from_bytes(&holder).map_err(|e| {
                err(path)(rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                ))
            })?;
            keys.insert((device, seq), holder);
        }
        let inner = Arc::new(Inner {
            inbox_keys: Mutex::new(keys),
            merge_lock: Mutex::new(()),
            space: space::SpaceGuard::new(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned(),
                options.min_free_bytes,
            ),
            merger_stalled: std::sync::atomic::AtomicBool::new(false),
            path: path.to_owned(),
            writer: Mutex::new(writer),
            ix_writer: Mutex::new(ix_writer),
            readers,
            next_reader: AtomicUsize::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("checkin-merger".into())
            .spawn(move || checkins::merger(weak))
            .map_err(OpenError::Merger)?;
        Ok(SqliteStore { inner })
    }

    /// The file of the indexed check-ins that belongs with the main file at `path`.
    pub fn checkins_path(path: &Path) -> PathBuf {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".checkins");
        path.with_file_name(name)
    }

    /// The main database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        tokio::task::block_in_place(|| self.inner.write_blocking(f))
    }

    fn ix_write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        tokio::task::block_in_place(|| self.inner.ix_write_blocking(f))
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        tokio::task::block_in_place(|| {
            let i = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
            let c = lock(&self.inner.readers[i])?;
            f(&c)
        })
    }

    /// Runs raw SQL on the main file's writer, for tests that must reach behind the store's back.
    #[doc(hidden)]
    pub fn raw_execute(&self, sql: &str) -> StoreResult<usize> {
        lock(&self.inner.writer)?.execute(sql, []).map_err(backend)
    }
}
