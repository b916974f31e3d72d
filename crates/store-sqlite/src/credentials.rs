//! Staff credentials on SQLite: failed sign-ins, the second factor, account changes, staff
//! sessions, device key rotation.

use healthcode_domain::{DeviceId, OfficerId};
use healthcode_store::credentials::{
    FAILURE_COLS, SECOND_FACTOR_COLS, STAFF_SESSION_COLS, failures_row, second_factor_row, staff_session_row,
};
use healthcode_store::rows::{DEVICE_COLS, OFFICER_COLS, device_row, officer_row};
use healthcode_store::{
    AccountChange, CredentialStore, Device, Officer, SecondFactor, SignInFailures, StaffSession, StoreError,
    StoreResult, credentials, rules,
};
use rusqlite::params;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{backend, query_all, query_first, ts};

impl CredentialStore for SqliteStore {
    async fn sign_in_failures(&self, keys: &[String]) -> StoreResult<Vec<SignInFailures>> {
        let sql = format!("SELECT {FAILURE_COLS} FROM sign_in_failures WHERE key = ?1");
        self.read(|c| {
            let mut out = Vec::new();
            for k in keys {
                out.extend(query_first(c, &sql, [k], failures_row)?);
            }
            Ok(out)
        })
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        at: OffsetDateTime,
        lock_after: u32,
        forget_before: OffsetDateTime,
    ) -> StoreResult<SignInFailures> {
        let sql = format!("SELECT {FAILURE_COLS} FROM sign_in_failures WHERE key = ?1");
        self.write(|tx| {
            let found = query_first(tx, &sql, [key], failures_row)?;
            let f = credentials::next_failure(found, key, at, lock_after, forget_before);
            tx.execute(
                "INSERT INTO sign_in_failures (key, streak, unseen, last_failure_at, locked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET streak = excluded.streak, unseen = excluded.unseen,
                   last_failure_at = excluded.last_failure_at, locked_at = excluded.locked_at",
                params![
                    key,
                    f.streak,
                    f.unseen,
                    ts(f.last_failure_at),
                    f.locked_at.map(ts)
                ],
            )
            .map_err(backend)?;
            Ok(f)
        })
    }

    async fn sign_in_succeeded(&self, key: &str) -> StoreResult<Option<SignInFailures>> {
        let sql = format!("SELECT {FAILURE_COLS} FROM sign_in_failures WHERE key = ?1");
        self.write(|tx| {
            let found = query_first(tx, &sql, [key], failures_row)?;
            let n = tx
                .execute(
                    "DELETE FROM sign_in_failures WHERE key = ?1 AND locked_at IS NULL",
                    [key],
                )
                .map_err(backend)?;
            Ok(found.filter(|_| n > 0))
        })
    }

    async fn unlock_sign_in(&self, key: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE sign_in_failures SET streak = 0, locked_at = NULL
                     WHERE key = ?1 AND locked_at IS NOT NULL",
                    [key],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn forget_sign_in_failures(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM sign_in_failures WHERE locked_at IS NULL AND last_failure_at < ?1",
                    [ts(before)],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
    }

    async fn change_account(
        &self,
        id: OfficerId,
        by: OfficerId,
        change: AccountChange,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        let sql = format!("SELECT {OFFICER_COLS} FROM officers WHERE id = ?1");
        self.write(|tx| {
            let found = query_first(tx, &sql, [id.0], officer_row)?;
            let admins: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM officers WHERE role = 'admin' AND disabled_at IS NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let o = credentials::change_account(found, id, by, admins.max(0) as u64, change, at)?;
            tx.execute(
                "UPDATE officers SET role = ?1, disabled_at = ?2, credentials_reset_by = ?3, credentials_reset_at = ?4
                 WHERE id = ?5",
                params![
                    o.role.as_str(),
                    o.disabled_at.map(ts),
                    o.credentials_reset_by.map(|b| b.0),
                    o.credentials_reset_at.map(ts),
                    id.0
                ],
            )
            .map_err(backend)?;
            Ok(o)
        })
    }

    async fn second_factor(&self, id: OfficerId) -> StoreResult<Option<SecondFactor>> {
        let sql = format!(
            "SELECT {SECOND_FACTOR_COLS},
               (SELECT COUNT(*) FROM staff_recovery_codes WHERE officer = ?1 AND used_at IS NULL),
               (SELECT MAX(used_at) FROM staff_recovery_codes WHERE officer = ?1)
             FROM officers WHERE id = ?1"
        );
        self.read(|c| query_first(c, &sql, [id.0], second_factor_row))
    }

    async fn offer_second_factor(&self, id: OfficerId, sealed: &[u8]) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET totp_offered = ?1 WHERE id = ?2",
                    params![sealed, id.0],
                )
                .map_err(backend)?;
            rules::updated(n as u64, || format!("account {}", id.0))
        })
    }

    async fn confirm_second_factor(
        &self,
        id: OfficerId,
        offered: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
        session: &[u8; 32],
    ) -> StoreResult<u64> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET totp_secret = totp_offered, totp_offered = NULL, totp_last_step = ?1
                     WHERE id = ?2 AND totp_offered = ?3 AND totp_secret IS NULL
                       AND (totp_last_step IS NULL OR totp_last_step < ?1)",
                    params![step, id.0, offered],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Refused(
                    "no second factor is being enrolled, or that code was used already".into(),
                ));
            }
            tx.execute("DELETE FROM staff_recovery_codes WHERE officer = ?1", [id.0])
                .map_err(backend)?;
            let mut ins = tx
                .prepare_cached("INSERT INTO staff_recovery_codes (officer, code_hash) VALUES (?1, ?2)")
                .map_err(backend)?;
            for h in recovery {
                ins.execute(params![id.0, &h[..]]).map_err(backend)?;
            }
            tx.execute(
                "UPDATE sessions SET second_factor = 1 WHERE token_hash = ?1 AND officer = ?2",
                params![&session[..], id.0],
            )
            .map_err(backend)?;
            let ended = tx
                .execute(
                    "DELETE FROM sessions WHERE officer = ?1 AND token_hash <> ?2",
                    params![id.0, &session[..]],
                )
                .map_err(backend)?;
            Ok(ended as u64)
        })
    }

    async fn reset_second_factor(&self, id: OfficerId) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET totp_secret = NULL, totp_offered = NULL, totp_last_step = NULL
                     WHERE id = ?1 AND (totp_secret IS NOT NULL OR totp_offered IS NOT NULL)",
                    [id.0],
                )
                .map_err(backend)?;
            tx.execute("DELETE FROM staff_recovery_codes WHERE officer = ?1", [id.0])
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn reset_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        by: OfficerId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET password_hash = ?1, must_change_password = 1,
                            credentials_reset_by = ?2, credentials_reset_at = ?3
                     WHERE id = ?4",
                    params![password_hash, by.0, ts(at), id.0],
                )
                .map_err(backend)?;
            rules::updated(n as u64, || format!("account {}", id.0))
        })
    }

    async fn use_totp_step(&self, id: OfficerId, step: i64) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET totp_last_step = ?1
                     WHERE id = ?2 AND totp_secret IS NOT NULL
                       AND (totp_last_step IS NULL OR totp_last_step < ?1)",
                    params![step, id.0],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn use_recovery_code(
        &self,
        id: OfficerId,
        code_hash: &[u8; 32],
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE staff_recovery_codes SET used_at = ?1
                     WHERE officer = ?2 AND code_hash = ?3 AND used_at IS NULL",
                    params![ts(at), id.0, &code_hash[..]],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    async fn insert_staff_session(
        &self,
        token_hash: &[u8; 32],
        officer: OfficerId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        client: Option<&str>,
        second_factor: bool,
    ) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sessions
                   (token_hash, kind, officer, created_at, expires_at, last_used_at, client, second_factor)
                 VALUES (?1, 'officer', ?2, ?3, ?4, ?3, ?5, ?6)",
                params![
                    &token_hash[..],
                    officer.0,
                    ts(created_at),
                    ts(expires_at),
                    client,
                    second_factor
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn touch_session(
        &self,
        token_hash: &[u8; 32],
        at: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> StoreResult<Option<bool>> {
        self.write(|tx| {
            query_first(
                tx,
                "UPDATE sessions SET last_used_at = ?1
                 WHERE token_hash = ?2 AND COALESCE(last_used_at, created_at) >= ?3
                 RETURNING second_factor",
                params![ts(at), &token_hash[..], ts(idle_since)],
                |r| Ok(r.int(0)? != 0),
            )
        })
    }

    async fn staff_sessions(&self, id: OfficerId) -> StoreResult<Vec<StaffSession>> {
        let sql = format!(
            "SELECT {STAFF_SESSION_COLS} FROM sessions WHERE officer = ?1 ORDER BY created_at, token_hash"
        );
        self.read(|c| query_all(c, &sql, [id.0], staff_session_row))
    }

    async fn rotate_device_key(&self, id: DeviceId, new_hash: &[u8; 32]) -> StoreResult<([u8; 32], Device)> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1");
        self.write(|tx| {
            let (old, d) =
                credentials::rotate_device_key(id, query_first(tx, &sql, [id.0], device_row)?, new_hash)?;
            tx.execute(
                "UPDATE devices SET key_hash = ?1 WHERE id = ?2",
                params![&new_hash[..], id.0],
            )
            .map_err(backend)?;
            Ok((old, d))
        })
    }
}
