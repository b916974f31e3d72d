//! Holders, one-time codes and sessions on PostgreSQL.

use healthcode_domain::HolderId;
use healthcode_store::rows::{
    HOLDER_COLS, OTP_SENDS_COLS, SESSION_COLS, holder_row, otp_sends_row, principal_columns, session_row,
    stored_otp_row,
};
use healthcode_store::rules;
use healthcode_store::{HolderStore, OtpCheck, OtpLimits, Principal, SealedHolder, Session, StoreResult};
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::PgStore;
use crate::rows::{db, one};

impl PgStore {
    /// The holder whose unique `column` (a fixed column name) equals `value`.
    async fn holder_where(&self, column: &'static str, value: &[u8]) -> StoreResult<Option<SealedHolder>> {
        let c = self.conn().await?;
        let sql = format!("SELECT {HOLDER_COLS} FROM holders WHERE {column} = $1");
        let row = c.query_opt(&sql, &[&value]).await.map_err(db)?;
        one(row.as_ref(), holder_row)
    }
}

impl HolderStore for PgStore {
    async fn insert_holder(&self, h: &SealedHolder) -> StoreResult<()> {
        self.conn()
            .await?
            .execute(
                &format!("INSERT INTO holders ({HOLDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[
                    &h.id.as_bytes(),
                    &h.kind.as_str(),
                    &&h.identity_hash[..],
                    &&h.phone_hash[..],
                    &h.name_hint,
                    &h.sealed,
                    &h.created_at,
                ],
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
            .copy_in(&format!("COPY holders ({HOLDER_COLS}) FROM STDIN BINARY"))
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

    async fn change_holder_phone(
        &self,
        id: &HolderId,
        phone_hash: &[u8; 32],
        sealed: &[u8],
    ) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE holders SET phone_hash = $1, sealed = $2 WHERE id = $3",
                &[&&phone_hash[..], &sealed, &id.as_bytes()],
            )
            .await
            .map_err(db)?;
        if changed == 0 {
            return Err(healthcode_store::StoreError::NotFound(format!(
                "holder {}",
                id.to_hex()
            )));
        }
        let ended = tx
            .execute("DELETE FROM sessions WHERE holder = $1", &[&id.as_bytes()])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(ended)
    }

    async fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> StoreResult<Result<(), time::Duration>> {
        let (phone, code, challenge) = (&phone_hash[..], &code_hash[..], &challenge_hash[..]);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        loop {
            // The row stays locked to the commit: concurrent sends to one phone take turns.
            let row = tx
                .query_opt(
                    &format!("SELECT {OTP_SENDS_COLS} FROM one_time_codes WHERE phone_hash = $1 FOR UPDATE"),
                    &[&phone],
                )
                .await
                .map_err(db)?;
            let before = one(row.as_ref(), otp_sends_row)?;
            let issue = match limits.issue(now, before.as_ref()) {
                Ok(issue) => issue,
                Err(wait) => return Ok(Err(wait)),
            };
            let sql = if before.is_none() {
                // A first code. If a concurrent send inserted the row meanwhile, this waits for it
                // and inserts nothing; the next round then reads (and locks) that row.
                "INSERT INTO one_time_codes (phone_hash, code_hash, expires_at, attempts_left, last_sent_at, window_start, window_count, challenge_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (phone_hash) DO NOTHING"
            } else {
                "UPDATE one_time_codes SET code_hash = $2, expires_at = $3, attempts_left = $4, last_sent_at = $5,
                   window_start = $6, window_count = $7, challenge_hash = $8 WHERE phone_hash = $1"
            };
            let values: [&(dyn ToSql + Sync); 8] = [
                &phone,
                &code,
                &issue.expires_at,
                &i16::from(issue.attempts),
                &issue.sends.last_sent,
                &issue.sends.window_start,
                &issue.sends.window_count,
                &challenge,
            ];
            if tx.execute(sql, &values).await.map_err(db)? > 0 {
                break;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(Ok(()))
    }

    async fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<OtpCheck> {
        let phone = &phone_hash[..];
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                "SELECT challenge_hash, code_hash, expires_at, attempts_left::bigint FROM one_time_codes WHERE phone_hash = $1 FOR UPDATE",
                &[&phone],
            )
            .await
            .map_err(db)?;
        let outcome = rules::check_otp(one(row.as_ref(), stored_otp_row)?, challenge_hash, code_hash, now)?;
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
        let (kind, holder, officer) = principal_columns(&session.principal);
        // One statement: a holder's session marks the holder active at its start.
        self.conn()
            .await?
            .execute(
                &format!(
                    "WITH s AS (INSERT INTO sessions (token_hash, {SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6) RETURNING holder)
                     UPDATE holders SET last_active_at = $5 WHERE id = (SELECT holder FROM s)"
                ),
                &[
                    &&token_hash[..],
                    &kind,
                    &holder,
                    &officer,
                    &session.created_at,
                    &session.expires_at,
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"),
                &[&&token_hash[..]],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), session_row)
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

    async fn erase_holder(&self, holder: &HolderId) -> StoreResult<bool> {
        self.erase(holder).await
    }

    async fn inactive_holders(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<HolderId>> {
        self.inactive(before, now, limit).await
    }

    async fn purge_personal(
        &self,
        tests_before: OffsetDateTime,
        appeals_before: OffsetDateTime,
    ) -> StoreResult<(u64, u64)> {
        self.purge_personal_data(tests_before, appeals_before).await
    }

    async fn scrub_erased(&self) -> StoreResult<()> {
        self.scrub().await
    }
}
