//! Holders, one-time codes and sessions on SQLite.

use healthcode_domain::HolderId;
use healthcode_store::rows::{
    HOLDER_COLS, OTP_SENDS_COLS, SESSION_COLS, holder_row, otp_sends_row, principal_columns, session_row,
    stored_otp_row,
};
use healthcode_store::rules;
use healthcode_store::{HolderStore, OtpCheck, OtpLimits, Principal, SealedHolder, Session, StoreResult};
use rusqlite::{Transaction, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{backend, query_first, ts};

/// Inserts holders in the caller's transaction: a taken identity or phone fails the insert.
fn insert_holders(tx: &Transaction<'_>, batch: &[SealedHolder]) -> StoreResult<()> {
    let mut s = tx
        .prepare_cached(&format!(
            "INSERT INTO holders ({HOLDER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))
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
    Ok(())
}

impl SqliteStore {
    /// The holder whose unique `column` (a fixed column name) equals `value`.
    fn holder_where(&self, column: &'static str, value: &[u8]) -> StoreResult<Option<SealedHolder>> {
        let sql = format!("SELECT {HOLDER_COLS} FROM holders WHERE {column} = ?1");
        self.read(|c| query_first(c, &sql, [value], holder_row))
    }
}

impl HolderStore for SqliteStore {
    async fn insert_holder(&self, h: &SealedHolder) -> StoreResult<()> {
        self.write(|tx| insert_holders(tx, std::slice::from_ref(h)))
    }

    async fn insert_holders(&self, batch: &[SealedHolder]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        // One transaction: a taken identity or phone fails the insert, and the error rolls back
        // every row before it.
        self.write(|tx| {
            insert_holders(tx, batch)?;
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

    async fn change_holder_phone(
        &self,
        id: &HolderId,
        phone_hash: &[u8; 32],
        sealed: &[u8],
    ) -> StoreResult<u64> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE holders SET phone_hash = ?1, sealed = ?2 WHERE id = ?3",
                    params![&phone_hash[..], sealed, id.as_bytes()],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(healthcode_store::StoreError::NotFound(format!(
                    "holder {}",
                    id.to_hex()
                )));
            }
            let ended = tx
                .execute("DELETE FROM sessions WHERE holder = ?1", [id.as_bytes()])
                .map_err(backend)?;
            Ok(ended as u64)
        })
    }

    async fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> StoreResult<Result<(), time::Duration>> {
        self.write(|tx| {
            let before = query_first(
                tx,
                &format!("SELECT {OTP_SENDS_COLS} FROM one_time_codes WHERE phone_hash = ?1"),
                [&phone_hash[..]],
                otp_sends_row,
            )?;
            let issue = match limits.issue(now, before.as_ref()) {
                Ok(issue) => issue,
                Err(wait) => return Ok(Err(wait)),
            };
            tx.execute(
                "INSERT INTO one_time_codes (phone_hash, code_hash, expires_at, attempts_left, last_sent_at, window_start, window_count, challenge_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (phone_hash) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at,
                   attempts_left = excluded.attempts_left, last_sent_at = excluded.last_sent_at,
                   window_start = excluded.window_start, window_count = excluded.window_count,
                   challenge_hash = excluded.challenge_hash",
                params![
                    &phone_hash[..],
                    &code_hash[..],
                    ts(issue.expires_at),
                    issue.attempts,
                    ts(issue.sends.last_sent),
                    ts(issue.sends.window_start),
                    issue.sends.window_count,
                    &challenge_hash[..]
                ],
            )
            .map_err(backend)?;
            Ok(Ok(()))
        })
    }

    async fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<OtpCheck> {
        self.write(|tx| {
            let stored = query_first(
                tx,
                "SELECT challenge_hash, code_hash, expires_at, attempts_left FROM one_time_codes WHERE phone_hash = ?1",
                [&phone_hash[..]],
                stored_otp_row,
            )?;
            let outcome = rules::check_otp(stored, challenge_hash, code_hash, now)?;
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
        let (kind, holder, officer) = principal_columns(&session.principal);
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO sessions (token_hash, {SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    &token_hash[..],
                    kind,
                    holder,
                    officer,
                    ts(session.created_at),
                    ts(session.expires_at)
                ],
            )
            .map_err(backend)?;
            if holder.is_some() {
                tx.execute(
                    "UPDATE holders SET last_active_at = ?1 WHERE id = ?2",
                    params![ts(session.created_at), holder],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
    }

    async fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = ?1");
        self.read(|c| query_first(c, &sql, [&token_hash[..]], session_row))
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

    async fn erase_holder(&self, holder: &HolderId) -> StoreResult<bool> {
        self.erase(holder)
    }

    async fn inactive_holders(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<HolderId>> {
        self.inactive(before, now, limit)
    }

    async fn purge_personal(
        &self,
        tests_before: OffsetDateTime,
        appeals_before: OffsetDateTime,
    ) -> StoreResult<(u64, u64)> {
        self.purge_personal_data(tests_before, appeals_before)
    }

    async fn scrub_erased(&self) -> StoreResult<()> {
        self.scrub()
    }
}
