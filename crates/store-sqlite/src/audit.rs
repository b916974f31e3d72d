//! The audit log on SQLite.

use healthcode_domain::HolderId;
use healthcode_store::rows::{AUDIT_COLS, TREE_HEAD_COLS, audit_row, audit_time, hash32, tree_head_row};
use healthcode_store::{
    AuditEntry, AuditRecord, AuditStore, StoreError, StoreResult, StoredTreeHead, audit_ns,
};
use rusqlite::params;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{backend, query_all, query_first};

impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        // The one writer connection serialises appends: the chain has one head.
        self.write(|tx| append_in(tx, e))
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        self.read(|c| query_all(c, &sql, params![after, limit], audit_row))
    }

    async fn audit_count(
        &self,
        actor: &str,
        action: &str,
        since: OffsetDateTime,
    ) -> StoreResult<(u64, Option<OffsetDateTime>)> {
        let since = audit_ns(since)?;
        let (n, first) = self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(at_ns) FROM audit_log WHERE action = ?1 AND at_ns >= ?2 AND actor = ?3",
                params![action, since, actor],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .map_err(backend)
        })?;
        Ok((n.max(0) as u64, first.map(audit_time).transpose()?))
    }

    async fn audit_of_subject(&self, holder: &HolderId) -> StoreResult<Vec<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE subject = ?1 ORDER BY seq");
        self.read(|c| query_all(c, &sql, [holder.as_bytes()], audit_row))
    }

    async fn save_tree_head(&self, h: &StoredTreeHead) -> StoreResult<()> {
        let (size, at) = head_numbers(h)?;
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO tree_heads ({TREE_HEAD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![size, h.root_hash, at, h.key_id, h.signature],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn tree_heads(&self) -> StoreResult<Vec<StoredTreeHead>> {
        let sql = format!("SELECT {TREE_HEAD_COLS} FROM tree_heads ORDER BY id");
        self.read(|c| query_all(c, &sql, [], tree_head_row))
    }

    async fn latest_tree_head(&self) -> StoreResult<Option<StoredTreeHead>> {
        let sql = format!("SELECT {TREE_HEAD_COLS} FROM tree_heads ORDER BY id DESC LIMIT 1");
        self.read(|c| query_first(c, &sql, [], tree_head_row))
    }
}

/// A head's size and time as the database's signed integers.
pub(crate) fn head_numbers(h: &StoredTreeHead) -> StoreResult<(i64, i64)> {
    let size =
        i64::try_from(h.tree_size).map_err(|_| StoreError::Refused("tree size out of range".into()))?;
    let at = i64::try_from(h.signed_at_ms).map_err(|_| StoreError::Refused("time out of range".into()))?;
    Ok((size, at))
}

/// Appends to the audit log inside the writer's transaction `tx` (an approval records itself in
/// the transaction that does it).
pub(crate) fn append_in(tx: &rusqlite::Transaction<'_>, e: &AuditEntry) -> StoreResult<AuditRecord> {
    let head = query_first(
        tx,
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.int(0)?, hash32(r.blob(1)?)?)),
    )?;
    let record = AuditRecord::next(head, e);
    tx.execute(
        &format!("INSERT INTO audit_log ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            record.seq,
            record.at_ns()?,
            e.actor,
            e.role,
            e.action,
            e.subject.as_ref().map(HolderId::as_bytes),
            e.purpose,
            record.prev_hash,
            record.hash
        ],
    )
    .map_err(backend)?;
    Ok(record)
}
