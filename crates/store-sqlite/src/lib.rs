//! The embedded SQLite backend: one file, WAL, `synchronous=NORMAL` (a committed transaction
//! survives a crash of the process), one writer connection and a few readers.
//!
//! Calls run on the caller's Tokio worker thread through `block_in_place`, so the store needs the
//! multi-threaded runtime (as `serve` and the tests use).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use healthcode_domain::*;
use healthcode_store::rules;
use healthcode_store::*;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, params};
use time::{Date, OffsetDateTime};

/// The migrations of the main file, in order. Released ones are never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_accounts", include_str!("../migrations/0002_accounts.sql")),
    (
        "0003_exposure_review",
        include_str!("../migrations/0003_exposure_review.sql"),
    ),
];
/// The migrations of the check-ins file.
const CHECKIN_MIGRATIONS: &[(&str, &str)] = &[(
    "0001_checkins",
    include_str!("../migrations/checkins/0001_checkins.sql"),
)];

const READERS: usize = 4;

/// Check-ins moved from the inbox per merge transaction. Large, so that each index page of the
/// check-ins file is written once for many rows; the merge holds only that file's writer.
const MERGE_CHUNK: i64 = 200_000;

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
    inbox_keys: Mutex<HashSet<(i64, i64)>>,
    /// Held for the whole of a merge.
    merge_lock: Mutex<()>,
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
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    fn ix_write_blocking<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut c = lock(&self.ix_writer)?;
        let tx = c.transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Moves up to `limit` of the oldest inbox rows into the indexed table, sorted so each index
    /// page is written once per chunk: first copied under the check-ins file's writer (scans keep
    /// arriving meanwhile), then deleted from the inbox. A crash in between leaves rows in both,
    /// which reads and the next merge treat as one. Returns how many rows left the inbox.
    fn merge_chunk(&self, limit: i64) -> StoreResult<u64> {
        // One merge at a time (the background thread, an explicit flush).
        let _one = lock(&self.merge_lock)?;
        let upto = self.ix_write_blocking(|tx| {
            let upto: Option<i64> = tx
                .query_row("SELECT max(id) FROM (SELECT id FROM hub.checkin_inbox ORDER BY id LIMIT ?1)", [limit], |r| r.get(0))
                .map_err(backend)?;
            if let Some(upto) = upto {
                tx.execute(
                    "INSERT INTO main.checkins (device, seq, holder, venue, at, out)
                     SELECT device, seq, holder, venue, at, out FROM hub.checkin_inbox WHERE id <= ?1 ORDER BY venue, at
                     ON CONFLICT (device, seq) DO NOTHING",
                    [upto],
                )
                .map_err(backend)?;
            }
            Ok(upto)
        })?;
        let Some(upto) = upto else { return Ok(0) };
        // Only rows now in the indexed table leave the inbox: a row appended meanwhile can never
        // be deleted unmerged, whatever its id.
        self.delete_from_inbox(
            "DELETE FROM checkin_inbox WHERE id <= ?1 AND EXISTS
             (SELECT 1 FROM ix.checkins c WHERE c.device = checkin_inbox.device AND c.seq = checkin_inbox.seq)
             RETURNING device, seq",
            upto,
            false,
        )
        .map(|(n, _)| n)
    }

    /// Deletes inbox rows with `sql` (which returns `device, seq` of each), keeping the key set in
    /// step. Returns how many rows went, and (when asked) how many of them were not also in the
    /// indexed table.
    fn delete_from_inbox(&self, sql: &str, arg: i64, count_unindexed: bool) -> StoreResult<(u64, u64)> {
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let keys: Vec<(i64, i64)> = {
            let mut st = tx.prepare(sql).map_err(backend)?;
            st.query_map([arg], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(backend)?
        };
        let mut not_indexed = 0u64;
        if count_unindexed {
            let mut st = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM ix.checkins WHERE device = ?1 AND seq = ?2)")
                .map_err(backend)?;
            for k in &keys {
                if !st
                    .query_row([k.0, k.1], |r| r.get::<_, bool>(0))
                    .map_err(backend)?
                {
                    not_indexed += 1;
                }
            }
        }
        tx.commit().map_err(backend)?;
        let mut set = lock(&self.inbox_keys)?;
        for k in &keys {
            set.remove(k);
        }
        Ok((keys.len() as u64, not_indexed))
    }

    /// Appends scans to the inbox, skipping those whose `(device, seq)` is already in the inbox,
    /// earlier in the batch, or in the indexed table. Keys enter the set only after the commit.
    fn ingest(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let mut fresh: Vec<(i64, i64)> = Vec::with_capacity(batch.len());
        {
            let set = lock(&self.inbox_keys)?;
            let mut seen_now = HashSet::with_capacity(batch.len());
            let mut exists = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM ix.checkins WHERE device = ?1 AND seq = ?2)")
                .map_err(backend)?;
            let mut insert = tx
                .prepare_cached("INSERT INTO checkin_inbox (device, seq, holder, venue, at, out) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(backend)?;
            for c in batch {
                let key = (c.device.0, c.seq);
                if set.contains(&key) || !seen_now.insert(key) {
                    continue;
                }
                if exists
                    .query_row(key_params(key), |r| r.get::<_, bool>(0))
                    .map_err(backend)?
                {
                    continue;
                }
                insert
                    .execute(params![
                        c.device.0,
                        c.seq,
                        c.holder.as_bytes(),
                        c.venue.0,
                        ts(c.at),
                        c.out.map(ts)
                    ])
                    .map_err(backend)?;
                fresh.push(key);
            }
        }
        tx.commit().map_err(backend)?;
        let n = fresh.len() as u64;
        lock(&self.inbox_keys)?.extend(fresh);
        Ok(n)
    }
}

/// Moves check-ins from the inbox while the store lives.
fn merger(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let moved = match inner.merge_chunk(MERGE_CHUNK) {
            Ok(n) => n,
            Err(e) => {
                // Retried on the next round; scans stay safe in the inbox meanwhile.
                tracing::error!(error = %e, "moving check-ins from the inbox failed");
                0
            }
        };
        drop(inner);
        if moved < MERGE_CHUNK as u64 / 4 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
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
    /// Opens (or, with [`OpenMode::Create`], creates) the database and runs pending migrations.
    pub fn open(path: &Path, mode: OpenMode) -> Result<SqliteStore, OpenError> {
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
        configure(&ix_writer).map_err(err(&ix_path))?;
        // A merge's copy must be on disk before the inbox rows it copied are deleted: the
        // check-ins file syncs at every commit (merges are few and large).
        ix_writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(err(&ix_path))?;
        migrate(&mut ix_writer, CHECKIN_MIGRATIONS).map_err(err(&ix_path))?;
        let mut writer = Connection::open(path).map_err(err(path))?;
        configure(&writer).map_err(err(path))?;
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
        let keys: HashSet<(i64, i64)> = writer
            .prepare("SELECT device, seq FROM checkin_inbox")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(err(path))?;
        let inner = Arc::new(Inner {
            inbox_keys: Mutex::new(keys),
            merge_lock: Mutex::new(()),
            path: path.to_owned(),
            writer: Mutex::new(writer),
            ix_writer: Mutex::new(ix_writer),
            readers,
            next_reader: AtomicUsize::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("checkin-merger".into())
            .spawn(move || merger(weak))
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

    /// Moves every check-in waiting in the inbox into the indexed table now.
    pub fn flush_checkins(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let n = self.inner.merge_chunk(MERGE_CHUNK)?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
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

    /// The holder whose unique `column` (a fixed column name) equals `value`.
    fn holder_where(&self, column: &'static str, value: &[u8]) -> StoreResult<Option<SealedHolder>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {HOLDER_COLS} FROM holders WHERE {column} = ?1"))
                .and_then(|mut s| s.query_row([value], holder_row).optional())
                .map_err(backend)
        })
    }

    /// Runs raw SQL on the main file's writer, for tests that must reach behind the store's back.
    #[doc(hidden)]
    pub fn raw_execute(&self, sql: &str) -> StoreResult<usize> {
        lock(&self.inner.writer)?.execute(sql, []).map_err(backend)
    }
}

fn key_params(k: (i64, i64)) -> [i64; 2] {
    [k.0, k.1]
}

fn backend(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::backend(e),
    }
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(s: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, msg.into())
}

fn holder_id(b: Vec<u8>) -> rusqlite::Result<HolderId> {
    HolderId::from_bytes(&b).map_err(|e| conversion(e.0))
}

fn hash32(b: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| conversion("hash is not 32 bytes".into()))
}

fn date_text(d: Date) -> String {
    d.to_string()
}

fn parse_date(s: &str) -> rusqlite::Result<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| conversion(e.to_string()))
}

fn issuer(s: String) -> rusqlite::Result<Issuer> {
    Issuer::parse(&s).map_err(|e| conversion(e.0))
}

fn colour_of(s: &str) -> rusqlite::Result<Colour> {
    s.parse().map_err(|e: ClaimError| conversion(e.to_string()))
}

fn level_of(s: &str) -> rusqlite::Result<RiskLevel> {
    RiskLevel::parse(s).ok_or_else(|| conversion(format!("unknown risk level {s}")))
}

fn grade_of(s: &str) -> rusqlite::Result<ExposureGrade> {
    ExposureGrade::parse(s).ok_or_else(|| conversion(format!("unknown exposure grade {s}")))
}

const HOLDER_COLS: &str = "id, kind, identity_hash, phone_hash, name_hint, sealed, created_at";

fn holder_row(r: &Row<'_>) -> rusqlite::Result<SealedHolder> {
    let kind: String = r.get(1)?;
    Ok(SealedHolder {
        id: holder_id(r.get(0)?)?,
        kind: HolderKind::parse(&kind).ok_or_else(|| conversion(format!("unknown holder kind {kind}")))?,
        identity_hash: hash32(r.get(2)?)?,
        phone_hash: hash32(r.get(3)?)?,
        name_hint: r.get(4)?,
        sealed: r.get(5)?,
        created_at: from_ts(r.get(6)?)?,
    })
}

fn venue_row(r: &Row<'_>) -> rusqlite::Result<Venue> {
    let category: String = r.get(2)?;
    let admission: String = r.get(4)?;
    Ok(Venue {
        id: VenueId(r.get(0)?),
        name: r.get(1)?,
        category: VenueCategory::parse(&category)
            .ok_or_else(|| conversion(format!("unknown category {category}")))?,
        region: issuer(r.get(3)?)?,
        admission: AdmissionPolicy::parse(&admission)
            .ok_or_else(|| conversion(format!("unknown admission {admission}")))?,
    })
}

fn checkin_row(r: &Row<'_>) -> rusqlite::Result<CheckIn> {
    Ok(CheckIn {
        device: DeviceId(r.get(0)?),
        seq: r.get(1)?,
        holder: holder_id(r.get(2)?)?,
        venue: VenueId(r.get(3)?),
        at: from_ts(r.get(4)?)?,
        out: r.get::<_, Option<i64>>(5)?.map(from_ts).transpose()?,
    })
}

fn override_row(r: &Row<'_>) -> rusqlite::Result<Override> {
    let colour: String = r.get(1)?;
    let approved_by: Option<i64> = r.get(5)?;
    let approved_at: Option<i64> = r.get(6)?;
    Ok(Override {
        id: OverrideId(r.get(0)?),
        colour: colour_of(&colour)?,
        reason: r.get(2)?,
        proposed_by: OfficerId(r.get(3)?),
        proposed_at: from_ts(r.get(4)?)?,
        approval: match (approved_by, approved_at) {
            (Some(by), Some(at)) => Some((OfficerId(by), from_ts(at)?)),
            _ => None,
        },
        expires_at: from_ts(r.get(7)?)?,
    })
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let at_ns: i64 = r.get(1)?;
    Ok(AuditRecord {
        seq: r.get(0)?,
        entry: AuditEntry {
            at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ns))
                .map_err(|e| conversion(e.to_string()))?,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            subject: r.get::<_, Option<Vec<u8>>>(5)?.map(holder_id).transpose()?,
            purpose: r.get(6)?,
        },
        prev_hash: hash32(r.get(7)?)?,
        hash: hash32(r.get(8)?)?,
    })
}

fn appeal_row(r: &Row<'_>) -> rusqlite::Result<Appeal> {
    let decided_by: Option<i64> = r.get(4)?;
    let decision = match decided_by {
        Some(by) => Some((
            OfficerId(by),
            r.get::<_, bool>(5)?,
            r.get::<_, String>(6)?,
            from_ts(r.get(7)?)?,
        )),
        None => None,
    };
    Ok(Appeal {
        id: AppealId(r.get(0)?),
        holder: holder_id(r.get(1)?)?,
        text: r.get(2)?,
        filed_at: from_ts(r.get(3)?)?,
        decision,
    })
}

fn device_row(r: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: DeviceId(r.get(0)?),
        venue: VenueId(r.get(1)?),
        label: r.get(2)?,
        key_hash: hash32(r.get(3)?)?,
    })
}

fn case_row(r: &Row<'_>) -> rusqlite::Result<(HolderId, ConfirmedCase)> {
    Ok((
        holder_id(r.get(1)?)?,
        ConfirmedCase {
            id: CaseId(r.get(0)?),
            onset: from_ts(r.get(2)?)?,
            confirmed_at: from_ts(r.get(3)?)?,
        },
    ))
}

/// An override and whose colour it sets, from `OVERRIDE_COLS, holder`.
fn holder_override_row(r: &Row<'_>) -> rusqlite::Result<(HolderId, Override)> {
    Ok((holder_id(r.get(8)?)?, override_row(r)?))
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    let kind: String = r.get(0)?;
    let principal = match kind.as_str() {
        "holder" => Principal::Holder(holder_id(r.get(1)?)?),
        "officer" => Principal::Officer(OfficerId(r.get(2)?)),
        _ => return Err(conversion(format!("unknown principal kind {kind}"))),
    };
    Ok(Session {
        principal,
        created_at: from_ts(r.get(3)?)?,
        expires_at: from_ts(r.get(4)?)?,
    })
}

/// An officer row with its role as stored: an unknown role is [`StoreError::Corrupt`] (see
/// [`officer_of`]), not a database failure.
type RawOfficer = (OfficerId, String, String, String, bool, OffsetDateTime);

fn officer_row(r: &Row<'_>) -> rusqlite::Result<RawOfficer> {
    Ok((
        OfficerId(r.get(0)?),
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        from_ts(r.get(5)?)?,
    ))
}

fn officer_of(
    (id, username, role, password_hash, must_change_password, created_at): RawOfficer,
) -> StoreResult<Officer> {
    Ok(Officer {
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role} of officer {id}")))?,
        id,
        username,
        password_hash,
        must_change_password,
        created_at,
    })
}

/// An exposure row with its state as stored: an unknown state is [`StoreError::Corrupt`] (see
/// [`stored_exposure_of`]), not a database failure.
type RawExposure = (HolderId, Exposure, String);

/// From `EXPOSURE_COLS`.
fn exposure_row(r: &Row<'_>) -> rusqlite::Result<RawExposure> {
    let grade: String = r.get(8)?;
    Ok((
        holder_id(r.get(0)?)?,
        Exposure {
            case: CaseId(r.get(1)?),
            venue: VenueId(r.get(2)?),
            case_interval: (from_ts(r.get(3)?)?, from_ts(r.get(4)?)?),
            contact_interval: (from_ts(r.get(5)?)?, from_ts(r.get(6)?)?),
            overlap_minutes: r.get(7)?,
            grade: grade_of(&grade)?,
        },
        r.get(9)?,
    ))
}

fn stored_exposure_of((holder, exposure, state): RawExposure) -> StoreResult<StoredExposure> {
    Ok(StoredExposure {
        state: ExposureState::parse(&state).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "unknown state {state} of the exposure to case {} at venue {}",
                exposure.case, exposure.venue
            ))
        })?,
        holder,
        exposure,
    })
}

const EXPOSURE_COLS: &str =
    "holder, case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade, state";
const AUDIT_COLS: &str = "seq, at_ns, actor, role, action, subject, purpose, prev_hash, hash";
const APPEAL_COLS: &str = "id, holder, text, filed_at, decided_by, upheld, note, decided_at";
const OFFICER_COLS: &str = "id, username, role, password_hash, must_change_password, created_at";
const OVERRIDE_COLS: &str =
    "id, colour, reason, proposed_by, proposed_at, approved_by, approved_at, expires_at";

impl HolderStore for SqliteStore {
    async fn insert_holder(&self, h: &SealedHolder) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO holders (id, kind, identity_hash, phone_hash, name_hint, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![h.id.as_bytes(), h.kind.as_str(), h.identity_hash, h.phone_hash, h.name_hint, h.sealed, ts(h.created_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn insert_holders(&self, batch: &[SealedHolder]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        // One transaction: a taken identity or phone fails the insert, and the error rolls back
        // every row before it.
        self.write(|tx| {
            let mut s = tx
                .prepare_cached(
                    "INSERT INTO holders (id, kind, identity_hash, phone_hash, name_hint, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(backend)?;
            for h in batch {
                s.execute(params![
                    h.id.as_bytes(),
                    h.kind.as_str(),
                    h.identity_hash,
                    h.phone_hash,
                    h.name_hint,
                    h.sealed,
                    ts(h.created_at)
                ])
                .map_err(backend)?;
            }
            Ok(batch.len() as u64)
        })
    }

    async fn holder(&self, id: &HolderId) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("id", id.as_bytes())
    }

    async fn holder_by_phone(&self, phone_hash: &[u8; 32]) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("phone_hash", phone_hash)
    }

    async fn holder_by_identity(&self, identity_hash: &[u8; 32]) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("identity_hash", identity_hash)
    }

    async fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> StoreResult<Result<(), time::Duration>> {
        self.write(|tx| {
            let before: Option<(i64, i64, i64)> = tx
                .query_row(
                    "SELECT last_sent_at, window_start, window_count FROM one_time_codes WHERE phone_hash = ?1",
                    [&phone_hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let before = match before {
                None => None,
                Some((last_sent, window_start, window_count)) => Some(rules::OtpSends {
                    last_sent: from_ts(last_sent).map_err(backend)?,
                    window_start: from_ts(window_start).map_err(backend)?,
                    window_count,
                }),
            };
            let issue = match limits.issue(now, before.as_ref()) {
                Ok(issue) => issue,
                Err(wait) => return Ok(Err(wait)),
            };
            tx.execute(
                "INSERT INTO one_time_codes (phone_hash, code_hash, expires_at, attempts_left, last_sent_at, window_start, window_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (phone_hash) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at,
                   attempts_left = excluded.attempts_left, last_sent_at = excluded.last_sent_at,
                   window_start = excluded.window_start, window_count = excluded.window_count",
                params![
                    &phone_hash[..],
                    &code_hash[..],
                    ts(issue.expires_at),
                    issue.attempts,
                    ts(issue.sends.last_sent),
                    ts(issue.sends.window_start),
                    issue.sends.window_count
                ],
            )
            .map_err(backend)?;
            Ok(Ok(()))
        })
    }

    async fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<OtpCheck> {
        self.write(|tx| {
            let row: Option<(Option<Vec<u8>>, i64, i64)> = tx
                .query_row(
                    "SELECT code_hash, expires_at, attempts_left FROM one_time_codes WHERE phone_hash = ?1",
                    [&phone_hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let stored = match &row {
                None => None,
                Some((code, expires_at, attempts_left)) => Some(rules::StoredOtp {
                    code_hash: code.as_deref(),
                    expires_at: from_ts(*expires_at).map_err(backend)?,
                    attempts_left: *attempts_left,
                }),
            };
            let outcome = rules::check_otp(stored, code_hash, now)?;
            match outcome {
                OtpCheck::Accepted => tx.execute(
                    "UPDATE one_time_codes SET code_hash = NULL WHERE phone_hash = ?1",
                    [&phone_hash[..]],
                ),
                OtpCheck::Wrong { attempts_left } => tx.execute(
                    "UPDATE one_time_codes SET attempts_left = ?1 WHERE phone_hash = ?2",
                    params![attempts_left, &phone_hash[..]],
                ),
                OtpCheck::Exhausted | OtpCheck::Expired | OtpCheck::Missing => Ok(0),
            }
            .map_err(backend)?;
            Ok(outcome)
        })
    }

    async fn insert_session(&self, token_hash: &[u8; 32], session: &Session) -> StoreResult<()> {
        let (kind, holder, officer) = match &session.principal {
            Principal::Holder(h) => ("holder", Some(h.as_bytes()), None),
            Principal::Officer(o) => ("officer", None, Some(o.0)),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sessions (token_hash, kind, holder, officer, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&token_hash[..], kind, holder, officer, ts(session.created_at), ts(session.expires_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT kind, holder, officer, created_at, expires_at FROM sessions WHERE token_hash = ?1",
            )
            .and_then(|mut s| s.query_row([&token_hash[..]], session_row).optional())
            .map_err(backend)
        })
    }

    async fn revoke_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM sessions WHERE token_hash = ?1", [&token_hash[..]])
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn revoke_sessions_of(&self, principal: &Principal) -> StoreResult<u64> {
        self.write(|tx| {
            match principal {
                Principal::Holder(h) => tx.execute("DELETE FROM sessions WHERE holder = ?1", [h.as_bytes()]),
                Principal::Officer(o) => tx.execute("DELETE FROM sessions WHERE officer = ?1", [o.0]),
            }
            .map(|n| n as u64)
            .map_err(backend)
        })
    }
}

impl CheckinStore for SqliteStore {
    async fn insert_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        tokio::task::block_in_place(|| self.inner.ingest(batch))
    }

    async fn flush_checkins(&self) -> StoreResult<u64> {
        tokio::task::block_in_place(|| SqliteStore::flush_checkins(self))
    }

    async fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT device, seq, holder, venue, at, out FROM ix.checkins WHERE venue = ?1 AND at >= ?2 AND at < ?3
                  UNION SELECT device, seq, holder, venue, at, out FROM checkin_inbox WHERE venue = ?1 AND at >= ?2 AND at < ?3
                  ORDER BY 5, 1, 2")
                .map_err(backend)?;
            s.query_map(params![venue.0, ts(from), ts(to)], checkin_row).and_then(Iterator::collect).map_err(backend)
        })
    }

    async fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT device, seq, holder, venue, at, out FROM ix.checkins WHERE holder = ?1 AND at >= ?2 AND at < ?3
                  UNION SELECT device, seq, holder, venue, at, out FROM checkin_inbox WHERE holder = ?1 AND at >= ?2 AND at < ?3
                  ORDER BY 5, 1, 2")
                .map_err(backend)?;
            s.query_map(params![holder.as_bytes(), ts(from), ts(to)], checkin_row).and_then(Iterator::collect).map_err(backend)
        })
    }

    async fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> StoreResult<u64> {
        const BATCH: usize = 50_000;
        self.read(|c| {
            // The inbox first, then the indexed table without the keys already seen: the merge
            // copies a row into the indexed table before it leaves the inbox, so a row it moves
            // meanwhile is read in one place or the other, and once.
            let mut inbox_keys: HashSet<(i64, i64)> = HashSet::new();
            let mut batch = Vec::with_capacity(BATCH);
            let mut n = 0u64;
            for (sql, inbox) in [
                ("SELECT device, seq, holder, venue, at, out FROM checkin_inbox WHERE at >= ?1 AND at < ?2", true),
                ("SELECT device, seq, holder, venue, at, out FROM ix.checkins WHERE at >= ?1 AND at < ?2", false),
            ] {
                let mut st = c.prepare(sql).map_err(backend)?;
                let rows = st.query_map(params![ts(from), ts(to)], checkin_row).map_err(backend)?;
                for r in rows {
                    let r = r.map_err(backend)?;
                    let key = (r.device.0, r.seq);
                    let fresh = if inbox { inbox_keys.insert(key) } else { !inbox_keys.contains(&key) };
                    if fresh {
                        batch.push(r);
                        if batch.len() == BATCH {
                            n += batch.len() as u64;
                            each(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                        }
                    }
                }
            }
            if !batch.is_empty() {
                n += batch.len() as u64;
                each(batch);
            }
            Ok(n)
        })
    }
}

impl CaseStore for SqliteStore {
    async fn add_fact(&self, holder: &HolderId, fact: &Fact) -> StoreResult<()> {
        let h = holder.as_bytes();
        self.write(|tx| {
            match fact {
                Fact::Health(d) => {
                    let symptoms = serde_json::to_string(&d.symptoms).map_err(StoreError::backend)?;
                    tx.execute(
                        "INSERT INTO health_declarations (holder, at, symptoms, temperature) VALUES (?1, ?2, ?3, ?4)",
                        params![h, ts(d.at), symptoms, d.temperature_c.map(f64::from)],
                    )
                }
                Fact::Travel(t) => tx.execute(
                    "INSERT INTO travel_declarations (holder, at, region, date_from, date_until) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![h, ts(t.at), t.region.as_str(), date_text(t.from), date_text(t.until)],
                ),
                Fact::Report(r) => {
                    tx.execute("INSERT INTO daily_reports (holder, at, well) VALUES (?1, ?2, ?3)", params![h, ts(r.at), r.well])
                }
                Fact::Test(t) => tx.execute(
                    "INSERT INTO test_results (holder, positive, sampled_at, lab) VALUES (?1, ?2, ?3, ?4)",
                    params![h, t.positive, ts(t.sampled_at), t.lab],
                ),
            }
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn add_case(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
    ) -> StoreResult<ConfirmedCase> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO cases (holder, onset, confirmed_at) VALUES (?1, ?2, ?3)",
                params![holder.as_bytes(), ts(onset), ts(confirmed_at)],
            )
            .map_err(backend)?;
            Ok(ConfirmedCase {
                id: CaseId(tx.last_insert_rowid()),
                onset,
                confirmed_at,
            })
        })
    }

    async fn case(&self, id: CaseId) -> StoreResult<Option<(HolderId, ConfirmedCase)>> {
        self.read(|c| {
            c.query_row(
                "SELECT holder, onset, confirmed_at FROM cases WHERE id = ?1",
                [id.0],
                |r| {
                    Ok((
                        holder_id(r.get(0)?)?,
                        ConfirmedCase {
                            id,
                            onset: from_ts(r.get(1)?)?,
                            confirmed_at: from_ts(r.get(2)?)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(backend)
        })
    }

    async fn cases(&self, since: OffsetDateTime) -> StoreResult<Vec<(HolderId, ConfirmedCase)>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, holder, onset, confirmed_at FROM cases WHERE confirmed_at >= ?1 ORDER BY confirmed_at, id",
                )
                .map_err(backend)?;
            s.query_map([ts(since)], case_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn holder_facts(&self, holder: &HolderId) -> StoreResult<HolderFacts> {
        let h = holder.as_bytes();
        self.read(|c| {
            let run = || -> rusqlite::Result<HolderFacts> {
                let mut f = HolderFacts::default();
                let mut s = c.prepare_cached("SELECT id, onset, confirmed_at FROM cases WHERE holder = ?1 ORDER BY id")?;
                f.cases = s
                    .query_map([h], |r| Ok(ConfirmedCase { id: CaseId(r.get(0)?), onset: from_ts(r.get(1)?)?, confirmed_at: from_ts(r.get(2)?)? }))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached("SELECT positive, sampled_at, lab FROM test_results WHERE holder = ?1 ORDER BY id")?;
                f.tests = s
                    .query_map([h], |r| Ok(TestResult { positive: r.get(0)?, sampled_at: from_ts(r.get(1)?)?, lab: r.get(2)? }))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached(
                    "SELECT case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade FROM exposures WHERE holder = ?1 AND state = 'applied' ORDER BY contact_start, case_id, venue",
                )?;
                f.exposures = s
                    .query_map([h], |r| {
                        let grade: String = r.get(7)?;
                        Ok(Exposure {
                            case: CaseId(r.get(0)?),
                            venue: VenueId(r.get(1)?),
                            case_interval: (from_ts(r.get(2)?)?, from_ts(r.get(3)?)?),
                            contact_interval: (from_ts(r.get(4)?)?, from_ts(r.get(5)?)?),
                            overlap_minutes: r.get(6)?,
                            grade: grade_of(&grade)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached("SELECT at, region, date_from, date_until FROM travel_declarations WHERE holder = ?1 ORDER BY id")?;
                f.travels = s
                    .query_map([h], |r| {
                        Ok(TravelDeclaration {
                            at: from_ts(r.get(0)?)?,
                            region: issuer(r.get(1)?)?,
                            from: parse_date(&r.get::<_, String>(2)?)?,
                            until: parse_date(&r.get::<_, String>(3)?)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached("SELECT at, symptoms, temperature FROM health_declarations WHERE holder = ?1 ORDER BY id")?;
                f.declarations = s
                    .query_map([h], |r| {
                        let symptoms: String = r.get(1)?;
                        Ok(HealthDeclaration {
                            at: from_ts(r.get(0)?)?,
                            symptoms: serde_json::from_str(&symptoms).map_err(|e| conversion(e.to_string()))?,
                            temperature_c: r.get::<_, Option<f64>>(2)?.map(|t| t as f32),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached("SELECT at, well FROM daily_reports WHERE holder = ?1 ORDER BY id")?;
                f.reports = s
                    .query_map([h], |r| Ok(DailyReport { at: from_ts(r.get(0)?)?, well: r.get(1)? }))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut s = c.prepare_cached(&format!("SELECT {OVERRIDE_COLS} FROM overrides WHERE holder = ?1 ORDER BY id"))?;
                f.overrides = s.query_map([h], override_row)?.collect::<rusqlite::Result<_>>()?;
                Ok(f)
            };
            run().map_err(backend)
        })
    }

    async fn add_exposures_as(
        &self,
        exposures: &[(HolderId, Exposure)],
        state: ExposureState,
    ) -> StoreResult<u64> {
        self.write(|tx| {
            let mut s = tx
                .prepare_cached(
                    "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                )
                .map_err(backend)?;
            let mut n = 0u64;
            for (h, e) in exposures {
                n += s
                    .execute(params![
                        h.as_bytes(),
                        e.case.0,
                        e.venue.0,
                        ts(e.contact_interval.0),
                        ts(e.contact_interval.1),
                        ts(e.case_interval.0),
                        ts(e.case_interval.1),
                        e.overlap_minutes,
                        e.grade.as_str(),
                        state.as_str()
                    ])
                    .map_err(backend)? as u64;
            }
            Ok(n)
        })
    }

    async fn exposures_of_case(&self, case: CaseId) -> StoreResult<Vec<StoredExposure>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {EXPOSURE_COLS} FROM exposures WHERE case_id = ?1 ORDER BY holder, venue, contact_start"
                ))
                .map_err(backend)?;
            let raw: Vec<RawExposure> = s
                .query_map([case.0], exposure_row)
                .and_then(Iterator::collect)
                .map_err(backend)?;
            raw.into_iter().map(stored_exposure_of).collect()
        })
    }

    async fn pending_exposures(&self, limit: u32) -> StoreResult<Vec<StoredExposure>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {EXPOSURE_COLS} FROM exposures WHERE state = 'pending'
                     ORDER BY case_id, holder, venue, contact_start LIMIT ?1"
                ))
                .map_err(backend)?;
            let raw: Vec<RawExposure> = s
                .query_map([limit], exposure_row)
                .and_then(Iterator::collect)
                .map_err(backend)?;
            raw.into_iter().map(stored_exposure_of).collect()
        })
    }

    async fn set_exposure_state(
        &self,
        key: &ExposureKey,
        state: ExposureState,
    ) -> StoreResult<StoredExposure> {
        let review = rules::ExposureReview::new(key, state)?;
        let (h, case, venue, start) = (
            key.holder.as_bytes(),
            key.case.0,
            key.venue.0,
            ts(key.contact_start),
        );
        self.write(|tx| {
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {EXPOSURE_COLS} FROM exposures WHERE holder = ?1 AND case_id = ?2 AND venue = ?3 AND contact_start = ?4"
                    ),
                    params![h, case, venue, start],
                    exposure_row,
                )
                .optional()
                .map_err(backend)?
                .map(stored_exposure_of)
                .transpose()?;
            let e = review.apply(found)?;
            tx.execute(
                "UPDATE exposures SET state = ?5 WHERE holder = ?1 AND case_id = ?2 AND venue = ?3 AND contact_start = ?4",
                params![h, case, venue, start, e.state.as_str()],
            )
            .map_err(backend)?;
            Ok(e)
        })
    }

    async fn add_risk_area(&self, area: &RiskArea) -> StoreResult<()> {
        let level = area.level.as_str();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO risk_areas (region, level, starts_at, ends_at) VALUES (?1, ?2, ?3, ?4)",
                params![area.region.as_str(), level, ts(area.from), area.until.map(ts)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn risk_areas(&self) -> StoreResult<Vec<RiskArea>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT region, level, starts_at, ends_at FROM risk_areas ORDER BY id")
                .map_err(backend)?;
            s.query_map([], |r| {
                let level: String = r.get(1)?;
                Ok(RiskArea {
                    region: issuer(r.get(0)?)?,
                    level: level_of(&level)?,
                    from: from_ts(r.get(2)?)?,
                    until: r.get::<_, Option<i64>>(3)?.map(from_ts).transpose()?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(backend)
        })
    }

    async fn propose_override(&self, o: &NewOverride) -> StoreResult<Override> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO overrides (holder, colour, reason, proposed_by, proposed_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![o.holder.as_bytes(), o.colour.as_str(), o.reason, o.proposed_by.0, ts(o.proposed_at), ts(o.expires_at)],
            )
            .map_err(backend)?;
            Ok(Override {
                id: OverrideId(tx.last_insert_rowid()),
                colour: o.colour,
                reason: o.reason.clone(),
                proposed_by: o.proposed_by,
                proposed_at: o.proposed_at,
                approval: None,
                expires_at: o.expires_at,
            })
        })
    }

    async fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
    ) -> StoreResult<Override> {
        self.write(|tx| {
            let found = tx
                .query_row(
                    &format!("SELECT {OVERRIDE_COLS} FROM overrides WHERE id = ?1"),
                    [id.0],
                    override_row,
                )
                .optional()
                .map_err(backend)?;
            let o = rules::approve_override(id, found, officer, at)?;
            tx.execute(
                "UPDATE overrides SET approved_by = ?1, approved_at = ?2 WHERE id = ?3",
                params![officer.0, ts(at), id.0],
            )
            .map_err(backend)?;
            Ok(o)
        })
    }

    async fn override_by_id(&self, id: OverrideId) -> StoreResult<Option<(HolderId, Override)>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {OVERRIDE_COLS}, holder FROM overrides WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id.0], holder_override_row).optional())
            .map_err(backend)
        })
    }

    async fn overrides(&self, pending_only: bool) -> StoreResult<Vec<(HolderId, Override)>> {
        let filter = if pending_only {
            "WHERE approved_by IS NULL"
        } else {
            ""
        };
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {OVERRIDE_COLS}, holder FROM overrides {filter} ORDER BY id"
                ))
                .map_err(backend)?;
            s.query_map([], holder_override_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn add_appeal(&self, holder: &HolderId, text: &str, at: OffsetDateTime) -> StoreResult<Appeal> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO appeals (holder, text, filed_at) VALUES (?1, ?2, ?3)",
                params![holder.as_bytes(), text, ts(at)],
            )
            .map_err(backend)?;
            Ok(Appeal {
                id: AppealId(tx.last_insert_rowid()),
                holder: holder.clone(),
                text: text.to_owned(),
                filed_at: at,
                decision: None,
            })
        })
    }

    async fn appeals_of(&self, holder: &HolderId) -> StoreResult<Vec<Appeal>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {APPEAL_COLS} FROM appeals WHERE holder = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            s.query_map([holder.as_bytes()], appeal_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn appeals(&self, open_only: bool) -> StoreResult<Vec<Appeal>> {
        let filter = if open_only { "WHERE decided_by IS NULL" } else { "" };
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {APPEAL_COLS} FROM appeals {filter} ORDER BY id"))
                .map_err(backend)?;
            s.query_map([], appeal_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn decide_appeal(
        &self,
        id: AppealId,
        officer: OfficerId,
        upheld: bool,
        note: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Appeal> {
        self.write(|tx| {
            let found = tx
                .query_row(
                    &format!("SELECT {APPEAL_COLS} FROM appeals WHERE id = ?1"),
                    [id.0],
                    appeal_row,
                )
                .optional()
                .map_err(backend)?;
            let a = rules::decide_appeal(id, found, officer, upheld, note, at)?;
            tx.execute(
                "UPDATE appeals SET decided_by = ?1, upheld = ?2, note = ?3, decided_at = ?4 WHERE id = ?5",
                params![officer.0, upheld, note, ts(at), id.0],
            )
            .map_err(backend)?;
            Ok(a)
        })
    }

    async fn activity(&self, since: OffsetDateTime, flagged_limit: u32) -> StoreResult<Activity> {
        fn hours(c: &Connection, sql: &str, since: i64) -> StoreResult<Vec<(OffsetDateTime, u64)>> {
            let mut s = c.prepare_cached(sql).map_err(backend)?;
            s.query_map([since], |r| {
                Ok((from_ts(r.get::<_, i64>(0)? * 3600)?, r.get::<_, i64>(1)? as u64))
            })
            .and_then(Iterator::collect)
            .map_err(backend)
        }
        self.read(|c| {
            let holders: i64 = c
                .query_row("SELECT COUNT(*) FROM holders", [], |r| r.get(0))
                .map_err(backend)?;
            // A check-in can be in the inbox and the indexed file for a moment during a merge:
            // UNION counts it once.
            let checkins_per_hour = hours(
                c,
                "SELECT at / 3600, COUNT(*) FROM (
                    SELECT device, seq, at FROM ix.checkins WHERE at >= ?1
                    UNION SELECT device, seq, at FROM checkin_inbox WHERE at >= ?1)
                 GROUP BY 1 ORDER BY 1",
                ts(since),
            )?;
            let exposures_per_hour = hours(
                c,
                "SELECT contact_start / 3600, COUNT(*) FROM exposures WHERE contact_start >= ?1 GROUP BY 1 ORDER BY 1",
                ts(since),
            )?;
            let mut s = c
                .prepare_cached(
                    "SELECT holder FROM test_results WHERE positive = 1
                     UNION SELECT holder FROM cases
                     UNION SELECT holder FROM exposures WHERE state = 'applied'
                     UNION SELECT holder FROM travel_declarations
                     UNION SELECT holder FROM health_declarations
                     UNION SELECT holder FROM overrides WHERE approved_by IS NOT NULL
                     ORDER BY 1 LIMIT ?1",
                )
                .map_err(backend)?;
            let flagged = s
                .query_map([flagged_limit], |r| holder_id(r.get(0)?))
                .and_then(Iterator::collect)
                .map_err(backend)?;
            Ok(Activity {
                holders: holders as u64,
                checkins_per_hour,
                exposures_per_hour,
                flagged,
            })
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> StoreResult<PurgeReport> {
        let b = ts(before);
        // No merge may run meanwhile: a chunk copied into the check-ins file between the inbox
        // delete and the indexed delete would be counted twice, or come back after the purge.
        let _no_merge = lock(&self.inner.merge_lock)?;
        // Inbox rows already copied into the check-ins file are counted there.
        let (_, inbox_only) = tokio::task::block_in_place(|| {
            self.inner.delete_from_inbox(
                "DELETE FROM checkin_inbox WHERE at < ?1 RETURNING device, seq",
                b,
                true,
            )
        })?;
        let mut report = self.write(|tx| {
            let del = |sql: &str| tx.execute(sql, [b]).map(|n| n as u64).map_err(backend);
            let report = PurgeReport {
                checkins: inbox_only,
                declarations: del("DELETE FROM health_declarations WHERE at < ?1")?
                    + del("DELETE FROM travel_declarations WHERE at < ?1")?,
                reports: del("DELETE FROM daily_reports WHERE at < ?1")?,
                exposures: del("DELETE FROM exposures WHERE contact_end < ?1")?,
            };
            // Not retention, but housekeeping: sessions and codes that were dead by the cutoff.
            del("DELETE FROM sessions WHERE expires_at < ?1")?;
            del("DELETE FROM one_time_codes WHERE expires_at < ?1")?;
            Ok(report)
        })?;
        report.checkins += self.ix_write(|tx| {
            Ok(tx
                .execute("DELETE FROM main.checkins WHERE at < ?1", [b])
                .map_err(backend)? as u64)
        })?;
        Ok(report)
    }
}

impl StaffStore for SqliteStore {
    async fn insert_venue(&self, v: &NewVenue) -> StoreResult<Venue> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO venues (name, category, region, admission) VALUES (?1, ?2, ?3, ?4)",
                params![
                    v.name,
                    v.category.as_str(),
                    v.region.as_str(),
                    v.admission.as_str()
                ],
            )
            .map_err(backend)?;
            Ok(Venue {
                id: VenueId(tx.last_insert_rowid()),
                name: v.name.clone(),
                category: v.category,
                region: v.region.clone(),
                admission: v.admission,
            })
        })
    }

    async fn insert_venues(&self, batch: &[NewVenue]) -> StoreResult<Vec<Venue>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut s = tx
                .prepare_cached(
                    "INSERT INTO venues (name, category, region, admission) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            let mut out = Vec::with_capacity(batch.len());
            for v in batch {
                s.execute(params![
                    v.name,
                    v.category.as_str(),
                    v.region.as_str(),
                    v.admission.as_str()
                ])
                .map_err(backend)?;
                out.push(Venue {
                    id: VenueId(tx.last_insert_rowid()),
                    name: v.name.clone(),
                    category: v.category,
                    region: v.region.clone(),
                    admission: v.admission,
                });
            }
            Ok(out)
        })
    }

    async fn venue(&self, id: VenueId) -> StoreResult<Option<Venue>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, name, category, region, admission FROM venues WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.0], venue_row).optional())
                .map_err(backend)
        })
    }

    async fn venues(&self) -> StoreResult<Vec<Venue>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT id, name, category, region, admission FROM venues ORDER BY id")
                .map_err(backend)?;
            s.query_map([], venue_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn insert_device(&self, venue: VenueId, label: &str, key_hash: &[u8; 32]) -> StoreResult<Device> {
        self.write(|tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM venues WHERE id = ?1)",
                    [venue.0],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound(format!("venue {venue}")));
            }
            tx.execute(
                "INSERT INTO devices (venue, label, key_hash) VALUES (?1, ?2, ?3)",
                params![venue.0, label, &key_hash[..]],
            )
            .map_err(backend)?;
            Ok(Device {
                id: DeviceId(tx.last_insert_rowid()),
                venue,
                label: label.to_owned(),
                key_hash: *key_hash,
            })
        })
    }

    async fn device_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, venue, label, key_hash FROM devices WHERE key_hash = ?1")
                .and_then(|mut s| s.query_row([&key_hash[..]], device_row).optional())
                .map_err(backend)
        })
    }

    async fn devices(&self, venue: Option<VenueId>) -> StoreResult<Vec<Device>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, venue, label, key_hash FROM devices WHERE ?1 IS NULL OR venue = ?1 ORDER BY id",
                )
                .map_err(backend)?;
            s.query_map([venue.map(|v| v.0)], device_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn insert_officer(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        must_change_password: bool,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![username, role.as_str(), password_hash, must_change_password, ts(at)],
            )
            .map_err(backend)?;
            Ok(Officer {
                id: OfficerId(tx.last_insert_rowid()),
                username: username.to_owned(),
                role,
                password_hash: password_hash.to_owned(),
                must_change_password,
                created_at: at,
            })
        })
    }

    async fn officer(&self, id: OfficerId) -> StoreResult<Option<Officer>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {OFFICER_COLS} FROM officers WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id.0], officer_row).optional())
                .map_err(backend)?
                .map(officer_of)
                .transpose()
        })
    }

    async fn officer_by_username(&self, username: &str) -> StoreResult<Option<Officer>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {OFFICER_COLS} FROM officers WHERE username = ?1"
            ))
            .and_then(|mut s| s.query_row([username], officer_row).optional())
            .map_err(backend)?
            .map(officer_of)
            .transpose()
        })
    }

    async fn officers(&self) -> StoreResult<Vec<Officer>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!("SELECT {OFFICER_COLS} FROM officers ORDER BY id"))
                .map_err(backend)?;
            let raw: Vec<RawOfficer> = s
                .query_map([], officer_row)
                .and_then(Iterator::collect)
                .map_err(backend)?;
            raw.into_iter().map(officer_of).collect()
        })
    }

    async fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET password_hash = ?1, must_change_password = ?2 WHERE id = ?3",
                    params![password_hash, must_change_password, id.0],
                )
                .map_err(backend)?;
            rules::updated(n as u64, || format!("officer {id}"))
        })
    }
}

impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        self.write(|tx| {
            let last: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let head = match last {
                Some((seq, hash)) => Some((seq, hash32(hash).map_err(backend)?)),
                None => None,
            };
            let record = AuditRecord::next(head, e);
            tx.execute(
                &format!("INSERT INTO audit_log ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    record.seq,
                    record.at_ns()?,
                    e.actor,
                    e.role,
                    e.action,
                    e.subject.as_ref().map(|s| s.as_bytes().to_vec()),
                    e.purpose,
                    record.prev_hash,
                    record.hash
                ],
            )
            .map_err(backend)?;
            Ok(record)
        })
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(backend)?;
            s.query_map(params![after, limit], audit_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }

    async fn audit_of_subject(&self, holder: &HolderId) -> StoreResult<Vec<AuditRecord>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLS} FROM audit_log WHERE subject = ?1 ORDER BY seq"
                ))
                .map_err(backend)?;
            s.query_map([holder.as_bytes()], audit_row)
                .and_then(Iterator::collect)
                .map_err(backend)
        })
    }
}
