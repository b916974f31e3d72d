//! Lab reports, consents, the reach of a case and read digests on SQLite.

use healthcode_domain::{CaseId, HolderId, OfficerId};
use healthcode_store::consent::{CONSENT_COLS, LAB_REPORT_COLS, READ_ACTION, consent_row, lab_report_row};
use healthcode_store::rows::holder_id;
use healthcode_store::{Consent, LabReport, NewConsent, PurposeStore, ReadCount, StoreError, StoreResult};
use rusqlite::params;
use time::{Date, OffsetDateTime};

use crate::SqliteStore;
use crate::rows::{backend, date_text, query_all, query_first, ts};

fn ns(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl PurposeStore for SqliteStore {
    async fn add_lab_report(&self, r: &LabReport) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO lab_reports ({LAB_REPORT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![
                    r.reference,
                    r.lab,
                    &r.identity_hash[..],
                    r.recorded_by.0,
                    ts(r.recorded_at)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn lab_report(&self, reference: &str) -> StoreResult<Option<LabReport>> {
        let sql = format!("SELECT {LAB_REPORT_COLS} FROM lab_reports WHERE reference = ?1");
        self.read(|c| query_first(c, &sql, [reference], lab_report_row))
    }

    async fn case_reaches(&self, case: CaseId, holder: &HolderId) -> StoreResult<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM cases WHERE id = ?1 AND holder = ?2)
                     OR EXISTS (SELECT 1 FROM exposures WHERE case_id = ?1 AND holder = ?2)",
                params![case.0, holder.as_bytes()],
                |r| r.get(0),
            )
            .map_err(backend)
        })
    }

    async fn case_recorded_by(&self, case: CaseId) -> StoreResult<Option<OfficerId>> {
        self.read(|c| {
            query_first(c, "SELECT recorded_by FROM cases WHERE id = ?1", [case.0], |r| {
                r.opt_int(0)
            })
        })
        .map(|o| o.flatten().map(OfficerId))
    }

    async fn add_consent(&self, n: &NewConsent) -> StoreResult<Consent> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO consents (holder, scope, granted_to, given, obtained_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    n.holder.as_bytes(),
                    n.scope.as_str(),
                    n.granted_to.map(|o| o.0),
                    n.given.as_str(),
                    n.obtained_by.map(|o| o.0),
                    ts(n.created_at),
                    ts(n.expires_at)
                ],
            )
            .map_err(backend)?;
            Ok(Consent {
                id: tx.last_insert_rowid(),
                consent: n.clone(),
                revoked_at: None,
            })
        })
    }

    async fn consent(&self, id: i64) -> StoreResult<Option<Consent>> {
        let sql = format!("SELECT {CONSENT_COLS} FROM consents WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id], consent_row))
    }

    async fn consents_of(&self, holder: &HolderId) -> StoreResult<Vec<Consent>> {
        let sql = format!("SELECT {CONSENT_COLS} FROM consents WHERE holder = ?1 ORDER BY id DESC");
        self.read(|c| query_all(c, &sql, [holder.as_bytes()], consent_row))
    }

    async fn revoke_consent(&self, holder: &HolderId, id: i64, at: OffsetDateTime) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE consents SET revoked_at = ?3 WHERE id = ?1 AND holder = ?2 AND revoked_at IS NULL",
                    params![id, holder.as_bytes(), ts(at)],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    async fn reads_between(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<ReadCount>> {
        self.read(|c| {
            query_all(
                c,
                "SELECT subject, role, COUNT(*) FROM audit_log
                 WHERE action = ?1 AND at_ns >= ?2 AND at_ns < ?3 AND subject IS NOT NULL
                   AND role NOT IN ('holder', 'system') AND actor NOT LIKE 'holder:%'
                 GROUP BY subject, role ORDER BY subject, role",
                params![READ_ACTION, ns(from), ns(until)],
                |r| {
                    Ok(ReadCount {
                        holder: holder_id(r.blob(0)?)?,
                        role: r.text(1)?.to_owned(),
                        reads: u64::try_from(r.int(2)?)
                            .map_err(|_| StoreError::Corrupt("a negative count".into()))?,
                    })
                },
            )
        })
    }

    async fn mark_digest_sent(&self, holder: &HolderId, day: Date) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO read_digests (holder, day) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![holder.as_bytes(), date_text(day)],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
    }
}
