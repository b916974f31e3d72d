//! Staff credentials on PostgreSQL: failed sign-ins, the second factor, account changes, staff
//! sessions, device key rotation. A row that a rule decides on is locked (`FOR UPDATE`) while
//! it decides, so that two nodes cannot both take the same step or both remove the last admin.

use healthcode_domain::{DeviceId, OfficerId};
use healthcode_store::credentials::{
    FAILURE_COLS, SECOND_FACTOR_COLS, STAFF_SESSION_COLS, failures_row, second_factor_row, staff_session_row,
};
use healthcode_store::rows::{DEVICE_COLS, OFFICER_COLS, device_row, officer_row};
use healthcode_store::{
    AccountChange, CredentialStore, Device, Officer, SecondFactor, SignInFailures, StaffSession, StoreError,
    StoreResult, credentials, rules,
};
use time::OffsetDateTime;

use crate::PgStore;
use crate::rows::{db, each, one};

/// Locks every active admin (in id order) and counts them: two admins removing each other at
/// once are decided one after the other.
pub(crate) async fn active_admins_locked(c: &impl tokio_postgres::GenericClient) -> StoreResult<u64> {
    let rows = c
        .query(
            "SELECT id FROM officers WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(rows.len() as u64)
}

/// An account, locked until the transaction ends.
pub(crate) async fn officer_locked(
    c: &impl tokio_postgres::GenericClient,
    id: OfficerId,
) -> StoreResult<Option<healthcode_store::Officer>> {
    let row = c
        .query_opt(
            &format!("SELECT {OFFICER_COLS} FROM officers WHERE id = $1 FOR UPDATE"),
            &[&id.0],
        )
        .await
        .map_err(db)?;
    one(row.as_ref(), officer_row)
}

impl CredentialStore for PgStore {
    async fn sign_in_failures(&self, keys: &[String]) -> StoreResult<Vec<SignInFailures>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {FAILURE_COLS} FROM sign_in_failures WHERE key = ANY($1) ORDER BY key"),
                &[&keys],
            )
            .await
            .map_err(db)?;
        each(&rows, failures_row)
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        at: OffsetDateTime,
        lock_after: u32,
        forget_before: OffsetDateTime,
    ) -> StoreResult<SignInFailures> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // The row exists before it is locked, so that two first failures do not both insert.
        tx.execute(
            "INSERT INTO sign_in_failures (key, streak, unseen, last_failure_at)
             VALUES ($1, 0, 0, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &at],
        )
        .await
        .map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {FAILURE_COLS} FROM sign_in_failures WHERE key = $1 FOR UPDATE"),
                &[&key],
            )
            .await
            .map_err(db)?;
        let found = one(row.as_ref(), failures_row)?;
        let f = credentials::next_failure(found, key, at, lock_after, forget_before);
        tx.execute(
            "UPDATE sign_in_failures SET streak = $2, unseen = $3, last_failure_at = $4, locked_at = $5
             WHERE key = $1",
            &[
                &key,
                &i64::from(f.streak),
                &i64::from(f.unseen),
                &f.last_failure_at,
                &f.locked_at,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(f)
    }

    async fn sign_in_succeeded(&self, key: &str) -> StoreResult<Option<SignInFailures>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("DELETE FROM sign_in_failures WHERE key = $1 AND locked_at IS NULL RETURNING {FAILURE_COLS}"),
                &[&key],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), failures_row)
    }

    async fn unlock_sign_in(&self, key: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE sign_in_failures SET streak = 0, locked_at = NULL
                 WHERE key = $1 AND locked_at IS NOT NULL",
                &[&key],
            )
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn forget_sign_in_failures(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM sign_in_failures WHERE locked_at IS NULL AND last_failure_at < $1",
                &[&before],
            )
            .await
            .map_err(db)
    }

    async fn change_account(
        &self,
        id: OfficerId,
        by: OfficerId,
        change: AccountChange,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Every active admin is locked, the target too: two admins removing each other at once
        // are decided one after the other, and the second sees the first's change.
        let admins = active_admins_locked(&*tx).await?;
        let found = officer_locked(&*tx, id).await?;
        let o = credentials::change_account(found, id, by, admins, change, at)?;
        tx.execute(
            "UPDATE officers SET role = $1, disabled_at = $2, credentials_reset_by = $3, credentials_reset_at = $4
             WHERE id = $5",
            &[
                &o.role.as_str(),
                &o.disabled_at,
                &o.credentials_reset_by.map(|b| b.0),
                &o.credentials_reset_at,
                &id.0,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(o)
    }

    async fn second_factor(&self, id: OfficerId) -> StoreResult<Option<SecondFactor>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {SECOND_FACTOR_COLS},
                       (SELECT COUNT(*) FROM staff_recovery_codes WHERE officer = $1 AND used_at IS NULL),
                       (SELECT MAX(used_at) FROM staff_recovery_codes WHERE officer = $1)
                     FROM officers WHERE id = $1"
                ),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), second_factor_row)
    }

    async fn offer_second_factor(&self, id: OfficerId, sealed: &[u8]) -> StoreResult<()> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET totp_offered = $1 WHERE id = $2",
                &[&sealed, &id.0],
            )
            .await
            .map_err(db)?;
        rules::updated(n, || format!("account {}", id.0))
    }

    async fn confirm_second_factor(
        &self,
        id: OfficerId,
        offered: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
        session: &[u8; 32],
    ) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let n = tx
            .execute(
                "UPDATE officers SET totp_secret = totp_offered, totp_offered = NULL, totp_last_step = $1
                 WHERE id = $2 AND totp_offered = $3 AND totp_secret IS NULL
                   AND (totp_last_step IS NULL OR totp_last_step < $1)",
                &[&step, &id.0, &offered],
            )
            .await
            .map_err(db)?;
        if n == 0 {
            return Err(StoreError::Refused(
                "no second factor is being enrolled, or that code was used already".into(),
            ));
        }
        tx.execute("DELETE FROM staff_recovery_codes WHERE officer = $1", &[&id.0])
            .await
            .map_err(db)?;
        let hashes: Vec<&[u8]> = recovery.iter().map(|h| &h[..]).collect();
        tx.execute(
            "INSERT INTO staff_recovery_codes (officer, code_hash) SELECT $1, UNNEST($2::bytea[])",
            &[&id.0, &hashes],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "UPDATE sessions SET second_factor = TRUE WHERE token_hash = $1 AND officer = $2",
            &[&&session[..], &id.0],
        )
        .await
        .map_err(db)?;
        let ended = tx
            .execute(
                "DELETE FROM sessions WHERE officer = $1 AND token_hash <> $2",
                &[&id.0, &&session[..]],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(ended)
    }

    async fn reset_second_factor(&self, id: OfficerId) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let n = tx
            .execute(
                "UPDATE officers SET totp_secret = NULL, totp_offered = NULL, totp_last_step = NULL
                 WHERE id = $1 AND (totp_secret IS NOT NULL OR totp_offered IS NOT NULL)",
                &[&id.0],
            )
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM staff_recovery_codes WHERE officer = $1", &[&id.0])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }

    async fn reset_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        by: OfficerId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET password_hash = $1, must_change_password = TRUE,
                        credentials_reset_by = $2, credentials_reset_at = $3
                 WHERE id = $4",
                &[&password_hash, &by.0, &at, &id.0],
            )
            .await
            .map_err(db)?;
        rules::updated(n, || format!("account {}", id.0))
    }

    async fn use_totp_step(&self, id: OfficerId, step: i64) -> StoreResult<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET totp_last_step = $1
                 WHERE id = $2 AND totp_secret IS NOT NULL
                   AND (totp_last_step IS NULL OR totp_last_step < $1)",
                &[&step, &id.0],
            )
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn use_recovery_code(
        &self,
        id: OfficerId,
        code_hash: &[u8; 32],
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE staff_recovery_codes SET used_at = $1
                 WHERE officer = $2 AND code_hash = $3 AND used_at IS NULL",
                &[&at, &id.0, &&code_hash[..]],
            )
            .await
            .map_err(db)?;
        Ok(n > 0)
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
        self.conn()
            .await?
            .execute(
                "INSERT INTO sessions
                   (token_hash, kind, officer, created_at, expires_at, last_used_at, client, second_factor)
                 VALUES ($1, 'officer', $2, $3, $4, $3, $5, $6)",
                &[
                    &&token_hash[..],
                    &officer.0,
                    &created_at,
                    &expires_at,
                    &client,
                    &second_factor,
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn touch_session(
        &self,
        token_hash: &[u8; 32],
        at: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> StoreResult<Option<bool>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "UPDATE sessions SET last_used_at = $1
                 WHERE token_hash = $2 AND COALESCE(last_used_at, created_at) >= $3
                 RETURNING second_factor",
                &[&at, &&token_hash[..], &idle_since],
            )
            .await
            .map_err(db)?;
        row.map(|r| r.try_get::<_, bool>(0).map_err(db)).transpose()
    }

    async fn staff_sessions(&self, id: OfficerId) -> StoreResult<Vec<StaffSession>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {STAFF_SESSION_COLS} FROM sessions WHERE officer = $1 ORDER BY created_at, token_hash"
                ),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        each(&rows, staff_session_row)
    }

    async fn rotate_device_key(&self, id: DeviceId, new_hash: &[u8; 32]) -> StoreResult<([u8; 32], Device)> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1 FOR UPDATE"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        let (old, d) = credentials::rotate_device_key(id, one(row.as_ref(), device_row)?, new_hash)?;
        tx.execute(
            "UPDATE devices SET key_hash = $1 WHERE id = $2",
            &[&&new_hash[..], &id.0],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((old, d))
    }
}
