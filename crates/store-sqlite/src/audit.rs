//! The audit log on SQLite.

use healthcode_domain::HolderId;
use healthcode_store::rows::{AUDIT_COLS, audit_row, hash32};
use healthcode_store::{AuditEntry, AuditRecord, AuditStore, StoreResult};
use rusqlite::params;

use crate::SqliteStore;
use crate::rows::{backend, query_all, query_first};

impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        // The one writer connection serialises appends: the chain has one head.
        self.write(|tx| {
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
        })
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        self.read(|c| query_all(c, &sql, params![after, limit], audit_row))
    }

    async fn audit_of_subject(&self, holder: &HolderId) -> StoreResult<Vec<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE subject = ?1 ORDER BY seq");
        self.read(|c| query_all(c, &sql, [holder.as_bytes()], audit_row))
    }
}
