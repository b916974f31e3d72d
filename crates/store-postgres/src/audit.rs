//! The audit log on PostgreSQL.

use healthcode_domain::HolderId;
use healthcode_store::rows::{AUDIT_COLS, TREE_HEAD_COLS, audit_row, audit_time, hash32, tree_head_row};
use healthcode_store::{
    AuditEntry, AuditRecord, AuditStore, StoreError, StoreResult, StoredTreeHead, audit_ns,
};
use time::OffsetDateTime;

use tokio_postgres::GenericClient;

use crate::PgStore;
use crate::rows::{db, each, one};

impl AuditStore for PgStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let record = append_in(&*tx, e).await?;
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
        each(&rows, audit_row)
    }

    async fn audit_count(
        &self,
        actor: &str,
        action: &str,
        since: OffsetDateTime,
    ) -> StoreResult<(u64, Option<OffsetDateTime>)> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT COUNT(*), MIN(at_ns) FROM audit_log WHERE action = $1 AND at_ns >= $2 AND actor = $3",
                &[&action, &audit_ns(since)?, &actor],
            )
            .await
            .map_err(db)?;
        let n: i64 = row.try_get(0).map_err(db)?;
        let first: Option<i64> = row.try_get(1).map_err(db)?;
        Ok((n.max(0) as u64, first.map(audit_time).transpose()?))
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
        each(&rows, audit_row)
    }

    async fn save_tree_head(&self, h: &StoredTreeHead) -> StoreResult<()> {
        let size =
            i64::try_from(h.tree_size).map_err(|_| StoreError::Refused("tree size out of range".into()))?;
        let at =
            i64::try_from(h.signed_at_ms).map_err(|_| StoreError::Refused("time out of range".into()))?;
        let c = self.conn().await?;
        c.execute(
            &format!("INSERT INTO tree_heads ({TREE_HEAD_COLS}) VALUES ($1, $2, $3, $4, $5)"),
            &[&size, &&h.root_hash[..], &at, &&h.key_id[..], &&h.signature[..]],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn tree_heads(&self) -> StoreResult<Vec<StoredTreeHead>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {TREE_HEAD_COLS} FROM tree_heads ORDER BY id"),
                &[],
            )
            .await
            .map_err(db)?;
        each(&rows, tree_head_row)
    }

    async fn latest_tree_head(&self) -> StoreResult<Option<StoredTreeHead>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {TREE_HEAD_COLS} FROM tree_heads ORDER BY id DESC LIMIT 1"),
                &[],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), tree_head_row)
    }
}

/// Appends to the audit log inside the transaction `c` is in (an approval records itself in the
/// transaction that does it). Appends are serialised, so the chain has one head: the table's
/// lock is held until that transaction ends.
pub(crate) async fn append_in(c: &impl GenericClient, e: &AuditEntry) -> StoreResult<AuditRecord> {
    c.batch_execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(db)?;
    let last = c
        .query_opt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &[])
        .await
        .map_err(db)?;
    let head = one(last.as_ref(), |r| Ok((r.int(0)?, hash32(r.blob(1)?)?)))?;
    let record = AuditRecord::next(head, e);
    c.execute(
        &format!("INSERT INTO audit_log ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        &[
            &record.seq,
            &record.at_ns()?,
            &e.actor,
            &e.role,
            &e.action,
            &e.subject.as_ref().map(HolderId::as_bytes),
            &e.purpose,
            &&record.prev_hash[..],
            &&record.hash[..],
        ],
    )
    .await
    .map_err(db)?;
    Ok(record)
}
