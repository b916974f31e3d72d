//! Lab reports, consents, the reach of a case and read digests on PostgreSQL.

use healthcode_domain::{CaseId, HolderId, OfficerId};
use healthcode_store::consent::{CONSENT_COLS, LAB_REPORT_COLS, READ_ACTION, consent_row, lab_report_row};
use healthcode_store::rows::holder_id;
use healthcode_store::{Consent, LabReport, NewConsent, PurposeStore, ReadCount, StoreError, StoreResult};
use time::{Date, OffsetDateTime};

use crate::PgStore;
use crate::rows::{db, each, one, returned_id};

fn ns(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl PurposeStore for PgStore {
    async fn add_lab_report(&self, r: &LabReport) -> StoreResult<()> {
        let c = self.conn().await?;
        c.execute(
            &format!("INSERT INTO lab_reports ({LAB_REPORT_COLS}) VALUES ($1, $2, $3, $4, $5)"),
            &[
                &r.reference,
                &r.lab,
                &&r.identity_hash[..],
                &r.recorded_by.0,
                &r.recorded_at,
            ],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn lab_report(&self, reference: &str) -> StoreResult<Option<LabReport>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {LAB_REPORT_COLS} FROM lab_reports WHERE reference = $1"),
                &[&reference],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), lab_report_row)
    }

    async fn case_reaches(&self, case: CaseId, holder: &HolderId) -> StoreResult<bool> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cases WHERE id = $1 AND holder = $2)
                     OR EXISTS (SELECT 1 FROM exposures WHERE case_id = $1 AND holder = $2)",
                &[&case.0, &holder.as_bytes()],
            )
            .await
            .map_err(db)?;
        row.try_get(0).map_err(db)
    }

    async fn case_recorded_by(&self, case: CaseId) -> StoreResult<Option<OfficerId>> {
        let c = self.conn().await?;
        let row = c
            .query_opt("SELECT recorded_by FROM cases WHERE id = $1", &[&case.0])
            .await
            .map_err(db)?;
        Ok(one(row.as_ref(), |r| r.opt_int(0))?.flatten().map(OfficerId))
    }

    async fn add_consent(&self, n: &NewConsent) -> StoreResult<Consent> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO consents (holder, scope, granted_to, given, obtained_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &n.holder.as_bytes(),
                    &n.scope.as_str(),
                    &n.granted_to.map(|o| o.0),
                    &n.given.as_str(),
                    &n.obtained_by.map(|o| o.0),
                    &n.created_at,
                    &n.expires_at,
                ],
            )
            .await
            .map_err(db)?;
        Ok(Consent {
            id: returned_id(&row)?,
            consent: n.clone(),
            revoked_at: None,
        })
    }

    async fn consent(&self, id: i64) -> StoreResult<Option<Consent>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {CONSENT_COLS} FROM consents WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), consent_row)
    }

    async fn consents_of(&self, holder: &HolderId) -> StoreResult<Vec<Consent>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {CONSENT_COLS} FROM consents WHERE holder = $1 ORDER BY id DESC"),
                &[&holder.as_bytes()],
            )
            .await
            .map_err(db)?;
        each(&rows, consent_row)
    }

    async fn revoke_consent(&self, holder: &HolderId, id: i64, at: OffsetDateTime) -> StoreResult<bool> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE consents SET revoked_at = $3 WHERE id = $1 AND holder = $2 AND revoked_at IS NULL",
                &[&id, &holder.as_bytes(), &at],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }

    async fn reads_between(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<ReadCount>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT subject, role, COUNT(*) FROM audit_log
                 WHERE action = $1 AND at_ns >= $2 AND at_ns < $3 AND subject IS NOT NULL
                   AND role NOT IN ('holder', 'system') AND actor NOT LIKE 'holder:%'
                 GROUP BY subject, role ORDER BY subject, role",
                &[&READ_ACTION, &ns(from), &ns(until)],
            )
            .await
            .map_err(db)?;
        each(&rows, |r| {
            Ok(ReadCount {
                holder: holder_id(r.blob(0)?)?,
                role: r.text(1)?.to_owned(),
                reads: u64::try_from(r.int(2)?)
                    .map_err(|_| StoreError::Corrupt("a negative count".into()))?,
            })
        })
    }

    async fn mark_digest_sent(&self, holder: &HolderId, day: Date) -> StoreResult<bool> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "INSERT INTO read_digests (holder, day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&holder.as_bytes(), &day],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}
