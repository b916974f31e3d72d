//! The PostgreSQL backend: a deadpool connection pool, migrations at start-up, check-ins in a table
//! partitioned by hour (UTC), appended to unindexed while the hour is open and indexed when it
//! closes (see `checkins`), so that retention drops whole partitions.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use healthcode_domain::*;
use healthcode_store::rules;
use healthcode_store::*;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, Row};

/// The migrations, in order. Released ones are never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_accounts", include_str!("../migrations/0002_accounts.sql")),
    (
        "0003_exposure_review",
        include_str!("../migrations/0003_exposure_review.sql"),
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

mod checkins;
pub mod testing;

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

fn db(e: tokio_postgres::Error) -> StoreError {
    // What PostgreSQL said (the error's own text is only "db error").
    let said = || e.as_db_error().map_or_else(|| e.to_string(), ToString::to_string);
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(said()),
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NotFound(said()),
        _ => StoreError::backend(e),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::backend(e)
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl PgStore {
    /// Connects with a pool of `max_connections`, optionally in a schema of its own (created if
    /// missing), and runs pending migrations.
    pub async fn connect(
        url: &DatabaseUrl,
        schema: Option<&str>,
        max_connections: usize,
    ) -> Result<PgStore, ConnectError> {
        let mut cfg = tokio_postgres::Config::from_str(url.expose()).map_err(ConnectError::Url)?;
        if let Some(s) = schema {
            if !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConnectError::Schema(s.to_owned()));
            }
            let (client, conn) = cfg
                .connect(NoTls)
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
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
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

    /// The holder whose unique `column` (a fixed column name) equals `value`.
    async fn holder_where(&self, column: &'static str, value: &[u8]) -> StoreResult<Option<SealedHolder>> {
        let c = self.conn().await?;
        let sql = format!("SELECT {HOLDER_COLS} FROM holders WHERE {column} = $1");
        let row = c.query_opt(&sql, &[&value]).await.map_err(db)?;
        row.as_ref().map(holder_row).transpose()
    }

    /// Runs raw SQL, for tests that must reach behind the store's back.
    #[doc(hidden)]
    pub async fn raw_query(&self, sql: &str) -> StoreResult<Vec<Row>> {
        self.conn().await?.query(sql, &[]).await.map_err(db)
    }

    /// Closes every open check-in partition now (deduplicated and indexed), whatever its hour.
    pub async fn flush_checkins(&self) -> StoreResult<u64> {
        self.inner.close_due(OffsetDateTime::now_utc(), true).await
    }
}

fn holder_id(b: &[u8]) -> StoreResult<HolderId> {
    HolderId::from_bytes(b).map_err(|e| corrupt(e.0))
}

fn hash32(b: &[u8]) -> StoreResult<[u8; 32]> {
    b.try_into().map_err(|_| corrupt("hash is not 32 bytes"))
}

fn issuer(s: &str) -> StoreResult<Issuer> {
    Issuer::parse(s).map_err(|e| corrupt(e.0))
}

fn colour_of(s: &str) -> StoreResult<Colour> {
    s.parse().map_err(|e: healthcode_domain::ClaimError| corrupt(e))
}

fn level_of(s: &str) -> StoreResult<RiskLevel> {
    RiskLevel::parse(s).ok_or_else(|| corrupt(format!("unknown risk level {s}")))
}

fn grade_of(s: &str) -> StoreResult<ExposureGrade> {
    ExposureGrade::parse(s).ok_or_else(|| corrupt(format!("unknown exposure grade {s}")))
}

const HOLDER_COLS: &str = "id, kind, identity_hash, phone_hash, name_hint, sealed, created_at";

fn holder_row(r: &Row) -> StoreResult<SealedHolder> {
    let kind: &str = r.get(1);
    Ok(SealedHolder {
        id: holder_id(r.get(0))?,
        kind: HolderKind::parse(kind).ok_or_else(|| corrupt(format!("unknown holder kind {kind}")))?,
        identity_hash: hash32(r.get(2))?,
        phone_hash: hash32(r.get(3))?,
        name_hint: r.get(4),
        sealed: r.get(5),
        created_at: r.get(6),
    })
}

fn venue_row(r: &Row) -> StoreResult<Venue> {
    let category: &str = r.get(2);
    let admission: &str = r.get(4);
    Ok(Venue {
        id: VenueId(r.get(0)),
        name: r.get(1),
        category: VenueCategory::parse(category)
            .ok_or_else(|| corrupt(format!("unknown category {category}")))?,
        region: issuer(r.get(3))?,
        admission: AdmissionPolicy::parse(admission)
            .ok_or_else(|| corrupt(format!("unknown admission {admission}")))?,
    })
}

pub(crate) fn checkin_row(r: &Row) -> StoreResult<CheckIn> {
    Ok(CheckIn {
        device: DeviceId(r.get(0)),
        seq: r.get(1),
        holder: holder_id(r.get(2))?,
        venue: VenueId(r.get(3)),
        at: r.get(4),
        out: r.get(5),
    })
}

const OVERRIDE_COLS: &str =
    "id, colour, reason, proposed_by, proposed_at, approved_by, approved_at, expires_at";

fn override_row(r: &Row) -> StoreResult<Override> {
    let approved_by: Option<i64> = r.get(5);
    let approved_at: Option<OffsetDateTime> = r.get(6);
    Ok(Override {
        id: OverrideId(r.get(0)),
        colour: colour_of(r.get(1))?,
        reason: r.get(2),
        proposed_by: OfficerId(r.get(3)),
        proposed_at: r.get(4),
        approval: approved_by.zip(approved_at).map(|(by, at)| (OfficerId(by), at)),
        expires_at: r.get(7),
    })
}

const AUDIT_COLS: &str = "seq, at_ns, actor, role, action, subject, purpose, prev_hash, hash";

fn audit_row(r: &Row) -> StoreResult<AuditRecord> {
    let at_ns: i64 = r.get(1);
    let subject: Option<&[u8]> = r.get(5);
    Ok(AuditRecord {
        seq: r.get(0),
        entry: AuditEntry {
            at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ns)).map_err(corrupt)?,
            actor: r.get(2),
            role: r.get(3),
            action: r.get(4),
            subject: subject.map(holder_id).transpose()?,
            purpose: r.get(6),
        },
        prev_hash: hash32(r.get(7))?,
        hash: hash32(r.get(8))?,
    })
}

fn device_row(r: &Row) -> StoreResult<Device> {
    Ok(Device {
        id: DeviceId(r.get(0)),
        venue: VenueId(r.get(1)),
        label: r.get(2),
        key_hash: hash32(r.get(3))?,
    })
}

fn case_row(r: &Row) -> StoreResult<(HolderId, ConfirmedCase)> {
    Ok((
        holder_id(r.get(1))?,
        ConfirmedCase {
            id: CaseId(r.get(0)),
            onset: r.get(2),
            confirmed_at: r.get(3),
        },
    ))
}

/// An override and whose colour it sets, from `OVERRIDE_COLS, holder`.
fn holder_override_row(r: &Row) -> StoreResult<(HolderId, Override)> {
    Ok((holder_id(r.get(8))?, override_row(r)?))
}

fn session_row(r: &Row) -> StoreResult<Session> {
    let kind: &str = r.get(0);
    let principal = match kind {
        "holder" => Principal::Holder(holder_id(r.get(1))?),
        "officer" => Principal::Officer(OfficerId(r.get(2))),
        _ => return Err(corrupt(format!("unknown principal kind {kind}"))),
    };
    Ok(Session {
        principal,
        created_at: r.get(3),
        expires_at: r.get(4),
    })
}

const OFFICER_COLS: &str = "id, username, role, password_hash, must_change_password, created_at";

fn officer_row(r: &Row) -> StoreResult<Officer> {
    let id = OfficerId(r.get(0));
    let role: &str = r.get(2);
    Ok(Officer {
        id,
        username: r.get(1),
        role: Role::parse(role).ok_or_else(|| corrupt(format!("unknown role {role} of officer {id}")))?,
        password_hash: r.get(3),
        must_change_password: r.get(4),
        created_at: r.get(5),
    })
}

const EXPOSURE_COLS: &str =
    "holder, case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade, state";

fn exposure_row(r: &Row) -> StoreResult<StoredExposure> {
    let grade: &str = r.get(8);
    let exposure = Exposure {
        case: CaseId(r.get(1)),
        venue: VenueId(r.get(2)),
        case_interval: (r.get(3), r.get(4)),
        contact_interval: (r.get(5), r.get(6)),
        overlap_minutes: r.get(7),
        grade: grade_of(grade)?,
    };
    let state: &str = r.get(9);
    Ok(StoredExposure {
        holder: holder_id(r.get(0))?,
        state: ExposureState::parse(state).ok_or_else(|| {
            corrupt(format!(
                "unknown state {state} of the exposure to case {} at venue {}",
                exposure.case, exposure.venue
            ))
        })?,
        exposure,
    })
}

const APPEAL_COLS: &str = "id, holder, text, filed_at, decided_by, upheld, note, decided_at";

fn appeal_row(r: &Row) -> StoreResult<Appeal> {
    let decided_by: Option<i64> = r.get(4);
    let decision = decided_by.map(|by| {
        (
            OfficerId(by),
            r.get::<_, bool>(5),
            r.get::<_, String>(6),
            r.get::<_, OffsetDateTime>(7),
        )
    });
    Ok(Appeal {
        id: AppealId(r.get(0)),
        holder: holder_id(r.get(1))?,
        text: r.get(2),
        filed_at: r.get(3),
        decision,
    })
}

impl HolderStore for PgStore {
    async fn insert_holder(&self, h: &SealedHolder) -> StoreResult<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO holders (id, kind, identity_hash, phone_hash, name_hint, sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&h.id.as_bytes(), &h.kind.as_str(), &&h.identity_hash[..], &&h.phone_hash[..], &h.name_hint, &h.sealed, &h.created_at],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_holders(&self, batch: &[SealedHolder]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Binary COPY straight into the table, in one transaction: a taken identity or phone (in the
        // table or earlier in the batch) fails the COPY, and the rollback leaves nothing behind.
        let sink = tx
            .copy_in("COPY holders (id, kind, identity_hash, phone_hash, name_hint, sealed, created_at) FROM STDIN BINARY")
            .await
            .map_err(db)?;
        let types = [
            Type::BYTEA,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::TEXT,
            Type::BYTEA,
            Type::TIMESTAMPTZ,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for h in batch {
            writer
                .as_mut()
                .write(&[
                    &h.id.as_bytes(),
                    &h.kind.as_str(),
                    &&h.identity_hash[..],
                    &&h.phone_hash[..],
                    &h.name_hint,
                    &h.sealed,
                    &h.created_at,
                ])
                .await
                .map_err(db)?;
        }
        let n = writer.finish().await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    async fn holder(&self, id: &HolderId) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("id", id.as_bytes()).await
    }

    async fn holder_by_phone(&self, phone_hash: &[u8; 32]) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("phone_hash", phone_hash).await
    }

    async fn holder_by_identity(&self, identity_hash: &[u8; 32]) -> StoreResult<Option<SealedHolder>> {
        self.holder_where("identity_hash", identity_hash).await
    }

    async fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> StoreResult<Result<(), time::Duration>> {
        let (phone, code) = (&phone_hash[..], &code_hash[..]);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        loop {
            // The row stays locked to the commit: concurrent sends to one phone take turns.
            let row = tx
                .query_opt(
                    "SELECT last_sent_at, window_start, window_count FROM one_time_codes WHERE phone_hash = $1 FOR UPDATE",
                    &[&phone],
                )
                .await
                .map_err(db)?;
            let Some(row) = row else {
                // A first code. If a concurrent send inserted the row meanwhile, this waits for it
                // and inserts nothing; the next round then reads (and locks) that row.
                let issue = match limits.issue(now, None) {
                    Ok(issue) => issue,
                    Err(wait) => return Ok(Err(wait)),
                };
                let n = tx
                    .execute(
                        "INSERT INTO one_time_codes (phone_hash, code_hash, expires_at, attempts_left, last_sent_at, window_start, window_count)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (phone_hash) DO NOTHING",
                        &[
                            &phone,
                            &code,
                            &issue.expires_at,
                            &i16::from(issue.attempts),
                            &issue.sends.last_sent,
                            &issue.sends.window_start,
                            &issue.sends.window_count,
                        ],
                    )
                    .await
                    .map_err(db)?;
                if n == 0 {
                    continue;
                }
                break;
            };
            let before = rules::OtpSends {
                last_sent: row.get(0),
                window_start: row.get(1),
                window_count: row.get(2),
            };
            let issue = match limits.issue(now, Some(&before)) {
                Ok(issue) => issue,
                Err(wait) => return Ok(Err(wait)),
            };
            tx.execute(
                "UPDATE one_time_codes SET code_hash = $2, expires_at = $3, attempts_left = $4, last_sent_at = $5,
                   window_start = $6, window_count = $7 WHERE phone_hash = $1",
                &[
                    &phone,
                    &code,
                    &issue.expires_at,
                    &i16::from(issue.attempts),
                    &issue.sends.last_sent,
                    &issue.sends.window_start,
                    &issue.sends.window_count,
                ],
            )
            .await
            .map_err(db)?;
            break;
        }
        tx.commit().await.map_err(db)?;
        Ok(Ok(()))
    }

    async fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<OtpCheck> {
        let phone = &phone_hash[..];
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                "SELECT code_hash, expires_at, attempts_left FROM one_time_codes WHERE phone_hash = $1 FOR UPDATE",
                &[&phone],
            )
            .await
            .map_err(db)?;
        let stored = row.as_ref().map(|row| rules::StoredOtp {
            code_hash: row.get(0),
            expires_at: row.get(1),
            attempts_left: i64::from(row.get::<_, i16>(2)),
        });
        let outcome = rules::check_otp(stored, code_hash, now)?;
        match outcome {
            OtpCheck::Accepted => {
                tx.execute(
                    "UPDATE one_time_codes SET code_hash = NULL WHERE phone_hash = $1",
                    &[&phone],
                )
                .await
            }
            OtpCheck::Wrong { attempts_left } => {
                tx.execute(
                    "UPDATE one_time_codes SET attempts_left = $2 WHERE phone_hash = $1",
                    &[&phone, &i16::from(attempts_left)],
                )
                .await
            }
            OtpCheck::Exhausted | OtpCheck::Expired | OtpCheck::Missing => Ok(0),
        }
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(outcome)
    }

    async fn insert_session(&self, token_hash: &[u8; 32], session: &Session) -> StoreResult<()> {
        let (kind, holder, officer) = match &session.principal {
            Principal::Holder(h) => ("holder", Some(h.as_bytes()), None),
            Principal::Officer(o) => ("officer", None, Some(o.0)),
        };
        self.conn()
            .await?
            .execute(
                "INSERT INTO sessions (token_hash, kind, holder, officer, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&&token_hash[..], &kind, &holder, &officer, &session.created_at, &session.expires_at],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT kind, holder, officer, created_at, expires_at FROM sessions WHERE token_hash = $1",
                &[&&token_hash[..]],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(session_row).transpose()
    }

    async fn revoke_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let n = self
            .conn()
            .await?
            .execute("DELETE FROM sessions WHERE token_hash = $1", &[&&token_hash[..]])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn revoke_sessions_of(&self, principal: &Principal) -> StoreResult<u64> {
        let c = self.conn().await?;
        match principal {
            Principal::Holder(h) => {
                c.execute("DELETE FROM sessions WHERE holder = $1", &[&h.as_bytes()])
                    .await
            }
            Principal::Officer(o) => {
                c.execute("DELETE FROM sessions WHERE officer = $1", &[&o.0])
                    .await
            }
        }
        .map_err(db)
    }
}

impl CheckinStore for PgStore {
    async fn insert_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.inner.insert_checkins(batch).await
    }

    async fn load_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.inner.load_checkins(batch).await
    }

    async fn flush_checkins(&self) -> StoreResult<u64> {
        PgStore::flush_checkins(self).await
    }

    async fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT * FROM (SELECT DISTINCT ON (device, seq) device, seq, holder, venue, at, out FROM checkins
                  WHERE venue = $1 AND at >= $2 AND at < $3 ORDER BY device, seq) c ORDER BY at, device, seq",
                &[&venue.0, &from, &to],
            )
            .await
            .map_err(db)?;
        rows.iter().map(checkin_row).collect()
    }

    async fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT * FROM (SELECT DISTINCT ON (device, seq) device, seq, holder, venue, at, out FROM checkins
                  WHERE holder = $1 AND at >= $2 AND at < $3 ORDER BY device, seq) c ORDER BY at, device, seq",
                &[&holder.as_bytes(), &from, &to],
            )
            .await
            .map_err(db)?;
        rows.iter().map(checkin_row).collect()
    }

    async fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> StoreResult<u64> {
        checkins::scan(&self.inner, from, to, each).await
    }
}

impl CaseStore for PgStore {
    async fn add_fact(&self, holder: &HolderId, fact: &Fact) -> StoreResult<()> {
        let h = holder.as_bytes();
        let c = self.conn().await?;
        match fact {
            Fact::Health(d) => {
                let symptoms = serde_json::to_string(&d.symptoms).map_err(corrupt)?;
                c.execute(
                    "INSERT INTO health_declarations (holder, at, symptoms, temperature) VALUES ($1, $2, $3, $4)",
                    &[&h, &d.at, &symptoms, &d.temperature_c],
                )
                .await
            }
            Fact::Travel(t) => {
                c.execute(
                    "INSERT INTO travel_declarations (holder, at, region, date_from, date_until) VALUES ($1, $2, $3, $4, $5)",
                    &[&h, &t.at, &t.region.as_str(), &t.from, &t.until],
                )
                .await
            }
            Fact::Report(r) => c.execute("INSERT INTO daily_reports (holder, at, well) VALUES ($1, $2, $3)", &[&h, &r.at, &r.well]).await,
            Fact::Test(t) => {
                c.execute(
                    "INSERT INTO test_results (holder, positive, sampled_at, lab) VALUES ($1, $2, $3, $4)",
                    &[&h, &t.positive, &t.sampled_at, &t.lab],
                )
                .await
            }
        }
        .map_err(db)?;
        Ok(())
    }

    async fn add_case(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
    ) -> StoreResult<ConfirmedCase> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO cases (holder, onset, confirmed_at) VALUES ($1, $2, $3) RETURNING id",
                &[&holder.as_bytes(), &onset, &confirmed_at],
            )
            .await
            .map_err(db)?;
        Ok(ConfirmedCase {
            id: CaseId(row.get(0)),
            onset,
            confirmed_at,
        })
    }

    async fn case(&self, id: CaseId) -> StoreResult<Option<(HolderId, ConfirmedCase)>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT holder, onset, confirmed_at FROM cases WHERE id = $1",
                &[&id.0],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok((
                holder_id(r.get(0))?,
                ConfirmedCase {
                    id,
                    onset: r.get(1),
                    confirmed_at: r.get(2),
                },
            ))
        })
        .transpose()
    }

    async fn cases_by_id(&self, ids: &[CaseId]) -> StoreResult<Vec<Option<(HolderId, ConfirmedCase)>>> {
        let wanted: Vec<i64> = ids.iter().map(|c| c.0).collect();
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, holder, onset, confirmed_at FROM cases WHERE id = ANY($1)",
                &[&wanted],
            )
            .await
            .map_err(db)?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let id = CaseId(r.get(0));
            found.insert(
                id,
                (
                    holder_id(r.get(1))?,
                    ConfirmedCase {
                        id,
                        onset: r.get(2),
                        confirmed_at: r.get(3),
                    },
                ),
            );
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn cases(&self, since: OffsetDateTime) -> StoreResult<Vec<(HolderId, ConfirmedCase)>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, holder, onset, confirmed_at FROM cases WHERE confirmed_at >= $1 ORDER BY confirmed_at, id",
                &[&since],
            )
            .await
            .map_err(db)?;
        rows.iter().map(case_row).collect()
    }

    async fn holder_facts(&self, holder: &HolderId) -> StoreResult<HolderFacts> {
        let h = holder.as_bytes();
        let mut c = self.conn().await?;
        // One snapshot for all of a holder's facts.
        let tx = c
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(db)?;
        let mut f = HolderFacts::default();
        for r in tx
            .query(
                "SELECT id, onset, confirmed_at FROM cases WHERE holder = $1 ORDER BY id",
                &[&h],
            )
            .await
            .map_err(db)?
        {
            f.cases.push(ConfirmedCase {
                id: CaseId(r.get(0)),
                onset: r.get(1),
                confirmed_at: r.get(2),
            });
        }
        for r in tx
            .query(
                "SELECT positive, sampled_at, lab FROM test_results WHERE holder = $1 ORDER BY id",
                &[&h],
            )
            .await
            .map_err(db)?
        {
            f.tests.push(TestResult {
                positive: r.get(0),
                sampled_at: r.get(1),
                lab: r.get(2),
            });
        }
        for r in tx
            .query(
                "SELECT case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade FROM exposures WHERE holder = $1 AND state = 'applied' ORDER BY contact_start, case_id, venue",
                &[&h],
            )
            .await
            .map_err(db)?
        {
            let grade: &str = r.get(7);
            f.exposures.push(Exposure {
                case: CaseId(r.get(0)),
                venue: VenueId(r.get(1)),
                case_interval: (r.get(2), r.get(3)),
                contact_interval: (r.get(4), r.get(5)),
                overlap_minutes: r.get(6),
                grade: grade_of(grade)?,
            });
        }
        for r in tx.query("SELECT at, region, date_from, date_until FROM travel_declarations WHERE holder = $1 ORDER BY id", &[&h]).await.map_err(db)? {
            f.travels.push(TravelDeclaration { at: r.get(0), region: issuer(r.get(1))?, from: r.get(2), until: r.get(3) });
        }
        for r in tx
            .query(
                "SELECT at, symptoms, temperature FROM health_declarations WHERE holder = $1 ORDER BY id",
                &[&h],
            )
            .await
            .map_err(db)?
        {
            let symptoms: &str = r.get(1);
            f.declarations.push(HealthDeclaration {
                at: r.get(0),
                symptoms: serde_json::from_str(symptoms).map_err(corrupt)?,
                temperature_c: r.get(2),
            });
        }
        for r in tx
            .query(
                "SELECT at, well FROM daily_reports WHERE holder = $1 ORDER BY id",
                &[&h],
            )
            .await
            .map_err(db)?
        {
            f.reports.push(DailyReport {
                at: r.get(0),
                well: r.get(1),
            });
        }
        for r in tx
            .query(
                &format!("SELECT {OVERRIDE_COLS} FROM overrides WHERE holder = $1 ORDER BY id"),
                &[&h],
            )
            .await
            .map_err(db)?
        {
            f.overrides.push(override_row(&r)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(f)
    }

    async fn add_exposures_as(
        &self,
        exposures: &[(HolderId, Exposure)],
        state: ExposureState,
    ) -> StoreResult<u64> {
        if exposures.is_empty() {
            return Ok(0);
        }
        // One statement for the whole batch, column by column.
        let holders: Vec<&[u8]> = exposures.iter().map(|(h, _)| h.as_bytes()).collect();
        let cases: Vec<i64> = exposures.iter().map(|(_, e)| e.case.0).collect();
        let venues: Vec<i64> = exposures.iter().map(|(_, e)| e.venue.0).collect();
        let contact_starts: Vec<OffsetDateTime> =
            exposures.iter().map(|(_, e)| e.contact_interval.0).collect();
        let contact_ends: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.contact_interval.1).collect();
        let case_starts: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.case_interval.0).collect();
        let case_ends: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.case_interval.1).collect();
        let overlaps: Vec<i64> = exposures.iter().map(|(_, e)| e.overlap_minutes).collect();
        let grades: Vec<&str> = exposures.iter().map(|(_, e)| e.grade.as_str()).collect();
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state)
                 SELECT *, $10 FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[],
                                           $6::timestamptz[], $7::timestamptz[], $8::bigint[], $9::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(db)?;
        c.execute(
            &stmt,
            &[
                &holders,
                &cases,
                &venues,
                &contact_starts,
                &contact_ends,
                &case_starts,
                &case_ends,
                &overlaps,
                &grades,
                &state.as_str(),
            ],
        )
        .await
        .map_err(db)
    }

    async fn exposures_of_case(&self, case: CaseId) -> StoreResult<Vec<StoredExposure>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {EXPOSURE_COLS} FROM exposures WHERE case_id = $1 ORDER BY holder, venue, contact_start"
                ),
                &[&case.0],
            )
            .await
            .map_err(db)?;
        rows.iter().map(exposure_row).collect()
    }

    async fn pending_exposures(&self, limit: u32) -> StoreResult<Vec<StoredExposure>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {EXPOSURE_COLS} FROM exposures WHERE state = 'pending'
                     ORDER BY case_id, holder, venue, contact_start LIMIT $1"
                ),
                &[&i64::from(limit)],
            )
            .await
            .map_err(db)?;
        rows.iter().map(exposure_row).collect()
    }

    async fn set_exposure_state(
        &self,
        key: &ExposureKey,
        state: ExposureState,
    ) -> StoreResult<StoredExposure> {
        let review = rules::ExposureReview::new(key, state)?;
        let (h, case, venue, start) = (key.holder.as_bytes(), key.case.0, key.venue.0, key.contact_start);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {EXPOSURE_COLS} FROM exposures
                     WHERE holder = $1 AND case_id = $2 AND venue = $3 AND contact_start = $4 FOR UPDATE"
                ),
                &[&h, &case, &venue, &start],
            )
            .await
            .map_err(db)?;
        let e = review.apply(row.as_ref().map(exposure_row).transpose()?)?;
        tx.execute(
            "UPDATE exposures SET state = $5 WHERE holder = $1 AND case_id = $2 AND venue = $3 AND contact_start = $4",
            &[&h, &case, &venue, &start, &e.state.as_str()],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(e)
    }

    async fn add_risk_area(&self, area: &RiskArea) -> StoreResult<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO risk_areas (region, level, starts_at, ends_at) VALUES ($1, $2, $3, $4)",
            &[
                &area.region.as_str(),
                &area.level.as_str(),
                &area.from,
                &area.until,
            ],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn risk_areas(&self) -> StoreResult<Vec<RiskArea>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT region, level, starts_at, ends_at FROM risk_areas ORDER BY id",
                &[],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let level: &str = r.get(1);
                Ok(RiskArea {
                    region: issuer(r.get(0))?,
                    level: level_of(level)?,
                    from: r.get(2),
                    until: r.get(3),
                })
            })
            .collect()
    }

    async fn propose_override(&self, o: &NewOverride) -> StoreResult<Override> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO overrides (holder, colour, reason, proposed_by, proposed_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&o.holder.as_bytes(), &o.colour.as_str(), &o.reason, &o.proposed_by.0, &o.proposed_at, &o.expires_at],
            )
            .await
            .map_err(db)?;
        Ok(Override {
            id: OverrideId(row.get(0)),
            colour: o.colour,
            reason: o.reason.clone(),
            proposed_by: o.proposed_by,
            proposed_at: o.proposed_at,
            approval: None,
            expires_at: o.expires_at,
        })
    }

    async fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
    ) -> StoreResult<Override> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {OVERRIDE_COLS} FROM overrides WHERE id = $1 FOR UPDATE"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        let found = row.as_ref().map(override_row).transpose()?;
        let o = rules::approve_override(id, found, officer, at)?;
        tx.execute(
            "UPDATE overrides SET approved_by = $1, approved_at = $2 WHERE id = $3",
            &[&officer.0, &at, &id.0],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(o)
    }

    async fn override_by_id(&self, id: OverrideId) -> StoreResult<Option<(HolderId, Override)>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {OVERRIDE_COLS}, holder FROM overrides WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(holder_override_row).transpose()
    }

    async fn overrides(&self, pending_only: bool) -> StoreResult<Vec<(HolderId, Override)>> {
        let filter = if pending_only {
            "WHERE approved_by IS NULL"
        } else {
            ""
        };
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {OVERRIDE_COLS}, holder FROM overrides {filter} ORDER BY id"),
                &[],
            )
            .await
            .map_err(db)?;
        rows.iter().map(holder_override_row).collect()
    }

    async fn add_appeal(&self, holder: &HolderId, text: &str, at: OffsetDateTime) -> StoreResult<Appeal> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO appeals (holder, text, filed_at) VALUES ($1, $2, $3) RETURNING id",
                &[&holder.as_bytes(), &text, &at],
            )
            .await
            .map_err(db)?;
        Ok(Appeal {
            id: AppealId(row.get(0)),
            holder: holder.clone(),
            text: text.to_owned(),
            filed_at: at,
            decision: None,
        })
    }

    async fn appeals_of(&self, holder: &HolderId) -> StoreResult<Vec<Appeal>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {APPEAL_COLS} FROM appeals WHERE holder = $1 ORDER BY id"),
                &[&holder.as_bytes()],
            )
            .await
            .map_err(db)?;
        rows.iter().map(appeal_row).collect()
    }

    async fn appeals(&self, open_only: bool) -> StoreResult<Vec<Appeal>> {
        let filter = if open_only { "WHERE decided_by IS NULL" } else { "" };
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {APPEAL_COLS} FROM appeals {filter} ORDER BY id"),
                &[],
            )
            .await
            .map_err(db)?;
        rows.iter().map(appeal_row).collect()
    }

    async fn decide_appeal(
        &self,
        id: AppealId,
        officer: OfficerId,
        upheld: bool,
        note: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Appeal> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {APPEAL_COLS} FROM appeals WHERE id = $1 FOR UPDATE"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        let found = row.as_ref().map(appeal_row).transpose()?;
        let a = rules::decide_appeal(id, found, officer, upheld, note, at)?;
        tx.execute(
            "UPDATE appeals SET decided_by = $1, upheld = $2, note = $3, decided_at = $4 WHERE id = $5",
            &[&officer.0, &upheld, &note, &at, &id.0],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(a)
    }

    async fn activity(&self, since: OffsetDateTime, flagged_limit: u32) -> StoreResult<Activity> {
        let c = self.conn().await?;
        let holders: i64 = c
            .query_one("SELECT COUNT(*) FROM holders", &[])
            .await
            .map_err(db)?
            .get(0);
        let per_hour = |rows: Vec<tokio_postgres::Row>| -> Vec<(OffsetDateTime, u64)> {
            rows.iter()
                .map(|r| (r.get::<_, OffsetDateTime>(0), r.get::<_, i64>(1) as u64))
                .collect()
        };
        // Within the open hour a re-sent scan may be stored twice until the hour is closed:
        // counted once.
        let checkins_per_hour = per_hour(
            c.query(
                "SELECT date_trunc('hour', at), COUNT(DISTINCT (device, seq)) FROM checkins
                 WHERE at >= $1 GROUP BY 1 ORDER BY 1",
                &[&since],
            )
            .await
            .map_err(db)?,
        );
        let exposures_per_hour = per_hour(
            c.query(
                "SELECT date_trunc('hour', contact_start), COUNT(*) FROM exposures
                 WHERE contact_start >= $1 GROUP BY 1 ORDER BY 1",
                &[&since],
            )
            .await
            .map_err(db)?,
        );
        let flagged = c
            .query(
                "SELECT holder FROM test_results WHERE positive
                 UNION SELECT holder FROM cases
                 UNION SELECT holder FROM exposures WHERE state = 'applied'
                 UNION SELECT holder FROM travel_declarations
                 UNION SELECT holder FROM health_declarations
                 UNION SELECT holder FROM overrides WHERE approved_by IS NOT NULL
                 ORDER BY 1 LIMIT $1",
                &[&i64::from(flagged_limit)],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| holder_id(r.get(0)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Activity {
            holders: holders as u64,
            checkins_per_hour,
            exposures_per_hour,
            flagged,
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> StoreResult<PurgeReport> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock(7209412)", &[])
            .await
            .map_err(db)?;
        let mut report = PurgeReport::default();
        // Whole hours before the cutoff: drop their partitions. An open partition may hold a scan
        // twice, so scans are counted by (device, seq).
        let parts = tx
            .query(
                "SELECT name, starts_at FROM checkin_partitions WHERE starts_at + interval '1 hour' <= $1",
                &[&before],
            )
            .await
            .map_err(db)?;
        let mut dropped = Vec::new();
        for r in parts {
            let (name, start): (String, OffsetDateTime) = (r.get(0), r.get(1));
            let n: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM (SELECT DISTINCT device, seq FROM {name}) d"),
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            tx.batch_execute(&format!(
                "DROP TABLE {name}; DELETE FROM checkin_partitions WHERE name = '{name}';"
            ))
            .await
            .map_err(db)?;
            report.checkins += n as u64;
            dropped.push(start);
        }
        // What remains before the cutoff, in the partition of the cutoff's own hour.
        let n: i64 = tx
            .query_one(
                "WITH d AS (DELETE FROM checkins WHERE at < $1 RETURNING device, seq)
                 SELECT count(*) FROM (SELECT DISTINCT device, seq FROM d) x",
                &[&before],
            )
            .await
            .map_err(db)?
            .get(0);
        report.checkins += n as u64;
        report.declarations += tx
            .execute("DELETE FROM health_declarations WHERE at < $1", &[&before])
            .await
            .map_err(db)?;
        report.declarations += tx
            .execute("DELETE FROM travel_declarations WHERE at < $1", &[&before])
            .await
            .map_err(db)?;
        report.reports = tx
            .execute("DELETE FROM daily_reports WHERE at < $1", &[&before])
            .await
            .map_err(db)?;
        report.exposures = tx
            .execute("DELETE FROM exposures WHERE contact_end < $1", &[&before])
            .await
            .map_err(db)?;
        // Not retention, but housekeeping: sessions and codes that were dead by the cutoff.
        tx.execute("DELETE FROM sessions WHERE expires_at < $1", &[&before])
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM one_time_codes WHERE expires_at < $1", &[&before])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut known = self
            .partitions
            .lock()
            .map_err(|_| StoreError::backend("partition cache poisoned"))?;
        for h in dropped {
            known.remove(&h);
        }
        Ok(report)
    }
}

impl StaffStore for PgStore {
    async fn insert_venue(&self, v: &NewVenue) -> StoreResult<Venue> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO venues (name, category, region, admission) VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &v.name,
                    &v.category.as_str(),
                    &v.region.as_str(),
                    &v.admission.as_str(),
                ],
            )
            .await
            .map_err(db)?;
        Ok(Venue {
            id: VenueId(row.get(0)),
            name: v.name.clone(),
            category: v.category,
            region: v.region.clone(),
            admission: v.admission,
        })
    }

    async fn insert_venues(&self, batch: &[NewVenue]) -> StoreResult<Vec<Venue>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = i64::try_from(batch.len()).map_err(|_| StoreError::Refused("too many venues".into()))?;
        let names: Vec<&str> = batch.iter().map(|v| v.name.as_str()).collect();
        let categories: Vec<&str> = batch.iter().map(|v| v.category.as_str()).collect();
        let regions: Vec<&str> = batch.iter().map(|v| v.region.as_str()).collect();
        let admissions: Vec<&str> = batch.iter().map(|v| v.admission.as_str()).collect();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // The ids are taken from the identity's sequence first, so that each venue's id is known
        // by its place in the batch (the order of RETURNING rows is not promised).
        let ids: Vec<i64> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('venues', 'id')) FROM generate_series(1, $1::bigint)",
                &[&n],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "INSERT INTO venues (id, name, category, region, admission) OVERRIDING SYSTEM VALUE
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])",
            &[&ids, &names, &categories, &regions, &admissions],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(batch
            .iter()
            .zip(ids)
            .map(|(v, id)| Venue {
                id: VenueId(id),
                name: v.name.clone(),
                category: v.category,
                region: v.region.clone(),
                admission: v.admission,
            })
            .collect())
    }

    async fn venue(&self, id: VenueId) -> StoreResult<Option<Venue>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT id, name, category, region, admission FROM venues WHERE id = $1",
                &[&id.0],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(venue_row).transpose()
    }

    async fn venues(&self) -> StoreResult<Vec<Venue>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, name, category, region, admission FROM venues ORDER BY id",
                &[],
            )
            .await
            .map_err(db)?;
        rows.iter().map(venue_row).collect()
    }

    async fn insert_device(&self, venue: VenueId, label: &str, key_hash: &[u8; 32]) -> StoreResult<Device> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO devices (venue, label, key_hash) VALUES ($1, $2, $3) RETURNING id",
                &[&venue.0, &label, &&key_hash[..]],
            )
            .await
            .map_err(|e| match db(e) {
                StoreError::NotFound(_) => StoreError::NotFound(format!("venue {venue}")),
                other => other,
            })?;
        Ok(Device {
            id: DeviceId(row.get(0)),
            venue,
            label: label.to_owned(),
            key_hash: *key_hash,
        })
    }

    async fn device_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT id, venue, label, key_hash FROM devices WHERE key_hash = $1",
                &[&&key_hash[..]],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(device_row).transpose()
    }

    async fn devices(&self, venue: Option<VenueId>) -> StoreResult<Vec<Device>> {
        let c = self.conn().await?;
        let venue = venue.map(|v| v.0);
        let rows = c
            .query(
                "SELECT id, venue, label, key_hash FROM devices WHERE $1::bigint IS NULL OR venue = $1 ORDER BY id",
                &[&venue],
            )
            .await
            .map_err(db)?;
        rows.iter().map(device_row).collect()
    }

    async fn insert_officer(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        must_change_password: bool,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&username, &role.as_str(), &password_hash, &must_change_password, &at],
            )
            .await
            .map_err(db)?;
        Ok(Officer {
            id: OfficerId(row.get(0)),
            username: username.to_owned(),
            role,
            password_hash: password_hash.to_owned(),
            must_change_password,
            created_at: at,
        })
    }

    async fn officer(&self, id: OfficerId) -> StoreResult<Option<Officer>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {OFFICER_COLS} FROM officers WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(officer_row).transpose()
    }

    async fn officer_by_username(&self, username: &str) -> StoreResult<Option<Officer>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {OFFICER_COLS} FROM officers WHERE username = $1"),
                &[&username],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(officer_row).transpose()
    }

    async fn officers(&self) -> StoreResult<Vec<Officer>> {
        let c = self.conn().await?;
        let rows = c
            .query(&format!("SELECT {OFFICER_COLS} FROM officers ORDER BY id"), &[])
            .await
            .map_err(db)?;
        rows.iter().map(officer_row).collect()
    }

    async fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> StoreResult<()> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET password_hash = $1, must_change_password = $2 WHERE id = $3",
                &[&password_hash, &must_change_password, &id.0],
            )
            .await
            .map_err(db)?;
        rules::updated(n, || format!("officer {id}"))
    }
}

impl AuditStore for PgStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Appends are serialised so the chain has one head.
        tx.batch_execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let last = tx
            .query_opt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &[])
            .await
            .map_err(db)?;
        let head = match last {
            Some(r) => Some((r.get::<_, i64>(0), hash32(r.get(1))?)),
            None => None,
        };
        let record = AuditRecord::next(head, e);
        let subject = e.subject.as_ref().map(|s| s.as_bytes());
        tx.execute(
            &format!("INSERT INTO audit_log ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            &[
                &record.seq,
                &record.at_ns()?,
                &e.actor,
                &e.role,
                &e.action,
                &subject,
                &e.purpose,
                &&record.prev_hash[..],
                &&record.hash[..],
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &i64::from(limit)],
            )
            .await
            .map_err(db)?;
        rows.iter().map(audit_row).collect()
    }

    async fn audit_of_subject(&self, holder: &HolderId) -> StoreResult<Vec<AuditRecord>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {AUDIT_COLS} FROM audit_log WHERE subject = $1 ORDER BY seq"),
                &[&holder.as_bytes()],
            )
            .await
            .map_err(db)?;
        rows.iter().map(audit_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message in an error's chain of sources, the error's own first.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        std::iter::successors(Some(e), |e| e.source())
            .map(ToString::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_failed_connection_says_why() {
        let e = PgStore::connect(&DatabaseUrl::new("postgres://x@127.0.0.1:1/none"), None, 1)
            .await
            .unwrap_err();
        let said = chain(&e);
        assert_eq!(said[0], "cannot use PostgreSQL");
        assert!(
            said.iter().any(|m| m.to_lowercase().contains("connect")),
            "{said:?}"
        );
        let e = PgStore::connect(&DatabaseUrl::new("postgres://x@127.0.0.1/none?bogus=1"), None, 1)
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::Url(_)), "{e:?}");
        assert!(chain(&e).len() > 1, "{e:?}");
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
