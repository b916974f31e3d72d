//! Facts and cases, exposures, risk areas, overrides, appeals, the dashboard's counts and
//! retention on PostgreSQL.

use healthcode_domain::{
    AppealId, CaseId, ConfirmedCase, Exposure, HolderFacts, HolderId, OfficerId, Override, OverrideId,
    RiskArea,
};
use healthcode_store::rows::*;
use healthcode_store::{
    Activity, Appeal, CaseStore, ExposureKey, ExposureState, FLAGGED_HOLDERS, Fact, NewOverride, PURGES,
    PurgeReport, StoreResult, StoredExposure, rules,
};
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use crate::PgStore;
use crate::rows::{db, each, one, returned_id};

/// Counts by the hour from `sql`, which returns (hour, count) for `since`.
async fn per_hour(
    c: &impl GenericClient,
    sql: &str,
    since: OffsetDateTime,
) -> StoreResult<Vec<(OffsetDateTime, u64)>> {
    let rows = c.query(sql, &[&since]).await.map_err(db)?;
    each(&rows, |r| Ok((r.time(0)?, r.int(1)? as u64)))
}

/// Every row of a holder's facts of one kind: `cols` of `table` for `$1`, by `order`.
async fn of_holder<T>(
    c: &impl GenericClient,
    holder: &[u8],
    (cols, table, order): (&str, &str, &str),
    read: impl Fn(&dyn healthcode_store::rows::Columns) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let sql = format!("SELECT {cols} FROM {table} WHERE holder = $1 ORDER BY {order}");
    let rows = c.query(&sql, &[&holder]).await.map_err(db)?;
    each(&rows, read)
}

impl CaseStore for PgStore {
    async fn add_fact(&self, holder: &HolderId, fact: &Fact) -> StoreResult<()> {
        let h = holder.as_bytes();
        let c = self.conn().await?;
        match fact {
            Fact::Health(d) => {
                c.execute(
                    "INSERT INTO health_declarations (holder, at, symptoms, temperature) VALUES ($1, $2, $3, $4)",
                    &[&h, &d.at, &symptoms_text(&d.symptoms)?, &d.temperature_c],
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
            Fact::Report(r) => {
                c.execute(
                    "INSERT INTO daily_reports (holder, at, well) VALUES ($1, $2, $3)",
                    &[&h, &r.at, &r.well],
                )
                .await
            }
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

    async fn add_case_by(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
        recorded_by: Option<OfficerId>,
    ) -> StoreResult<ConfirmedCase> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO cases (holder, onset, confirmed_at, recorded_by) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&holder.as_bytes(), &onset, &confirmed_at, &recorded_by.map(|o| o.0)],
            )
            .await
            .map_err(db)?;
        Ok(ConfirmedCase {
            id: CaseId(returned_id(&row)?),
            onset,
            confirmed_at,
        })
    }

    async fn case(&self, id: CaseId) -> StoreResult<Option<(HolderId, ConfirmedCase)>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(&format!("SELECT {CASE_COLS} FROM cases WHERE id = $1"), &[&id.0])
            .await
            .map_err(db)?;
        one(row.as_ref(), case_row)
    }

    async fn cases_by_id(&self, ids: &[CaseId]) -> StoreResult<Vec<Option<(HolderId, ConfirmedCase)>>> {
        let wanted: Vec<i64> = ids.iter().map(|c| c.0).collect();
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {CASE_COLS} FROM cases WHERE id = ANY($1)"),
                &[&wanted],
            )
            .await
            .map_err(db)?;
        let found: std::collections::HashMap<CaseId, (HolderId, ConfirmedCase)> = each(&rows, case_row)?
            .into_iter()
            .map(|(holder, case)| (case.id, (holder, case)))
            .collect();
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn cases(&self, since: OffsetDateTime) -> StoreResult<Vec<(HolderId, ConfirmedCase)>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {CASE_COLS} FROM cases WHERE confirmed_at >= $1 ORDER BY confirmed_at, id"),
                &[&since],
            )
            .await
            .map_err(db)?;
        each(&rows, case_row)
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
        let applied = tx
            .query(
                &format!(
                    "SELECT {APPLIED_EXPOSURE_COLS} FROM exposures WHERE holder = $1 AND state = 'applied'
                     ORDER BY contact_start, case_id, venue"
                ),
                &[&h],
            )
            .await
            .map_err(db)?;
        let f = HolderFacts {
            cases: of_holder(&*tx, h, (HOLDER_CASE_COLS, "cases", "id"), holder_case_row).await?,
            tests: of_holder(&*tx, h, (TEST_COLS, "test_results", "id"), test_row).await?,
            exposures: each(&applied, applied_exposure_row)?,
            travels: of_holder(&*tx, h, (TRAVEL_COLS, "travel_declarations", "id"), travel_row).await?,
            declarations: of_holder(&*tx, h, (HEALTH_COLS, "health_declarations", "id"), health_row).await?,
            reports: of_holder(&*tx, h, (REPORT_COLS, "daily_reports", "id"), report_row).await?,
            overrides: of_holder(&*tx, h, (OVERRIDE_COLS, "overrides", "id"), override_row).await?,
        };
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
        let case_starts: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.case_interval.0).collect();
        let case_ends: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.case_interval.1).collect();
        let contact_starts: Vec<OffsetDateTime> =
            exposures.iter().map(|(_, e)| e.contact_interval.0).collect();
        let contact_ends: Vec<OffsetDateTime> = exposures.iter().map(|(_, e)| e.contact_interval.1).collect();
        let overlaps: Vec<i64> = exposures.iter().map(|(_, e)| e.overlap_minutes).collect();
        let grades: Vec<&str> = exposures.iter().map(|(_, e)| e.grade.as_str()).collect();
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "INSERT INTO exposures ({EXPOSURE_COLS})
                 SELECT *, $10 FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[],
                                           $6::timestamptz[], $7::timestamptz[], $8::bigint[], $9::text[])
                 ON CONFLICT DO NOTHING"
            ))
            .await
            .map_err(db)?;
        c.execute(
            &stmt,
            &[
                &holders,
                &cases,
                &venues,
                &case_starts,
                &case_ends,
                &contact_starts,
                &contact_ends,
                &overlaps,
                &grades,
                &state.as_str(),
            ],
        )
        .await
        .map_err(db)
    }

    async fn pending_exposure_mark(&self, case: CaseId) -> StoreResult<(u64, i64)> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT COUNT(*), COALESCE(MAX(id), 0)::bigint FROM exposures WHERE case_id = $1 AND state = 'pending'",
                &[&case.0],
            )
            .await
            .map_err(db)?;
        let n: i64 = row.try_get(0).map_err(db)?;
        Ok((n.max(0) as u64, row.try_get(1).map_err(db)?))
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
        each(&rows, exposure_row)
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
        each(&rows, exposure_row)
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
        let e = review.apply(one(row.as_ref(), exposure_row)?)?;
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
            &format!("INSERT INTO risk_areas ({RISK_AREA_COLS}) VALUES ($1, $2, $3, $4)"),
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

    async fn travellers_to(&self, region: &str, since: time::Date) -> StoreResult<u64> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT COUNT(DISTINCT holder) FROM travel_declarations WHERE region = $1 AND date_until >= $2",
                &[&region, &since],
            )
            .await
            .map_err(db)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn risk_areas(&self) -> StoreResult<Vec<RiskArea>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {RISK_AREA_COLS} FROM risk_areas WHERE ended_at IS NULL ORDER BY id"),
                &[],
            )
            .await
            .map_err(db)?;
        each(&rows, risk_area_row)
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
        Ok(o.stored(OverrideId(returned_id(&row)?)))
    }

    async fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
        policy: healthcode_store::ApprovalPolicy,
        audit: Option<&healthcode_store::AuditEntry>,
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
        let o = rules::approve_override(id, one(row.as_ref(), override_row)?, officer, at)?;
        crate::proposals::check_approver(
            &*tx,
            o.proposed_by,
            officer,
            healthcode_store::Role::Officer,
            policy,
            at,
        )
        .await?;
        tx.execute(
            "UPDATE overrides SET approved_by = $1, approved_at = $2 WHERE id = $3",
            &[&officer.0, &at, &id.0],
        )
        .await
        .map_err(db)?;
        if let Some(e) = audit {
            crate::audit::append_in(&*tx, e).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(o)
    }

    async fn override_by_id(&self, id: OverrideId) -> StoreResult<Option<(HolderId, Override)>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {HOLDER_OVERRIDE_COLS} FROM overrides WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), holder_override_row)
    }

    async fn overrides(
        &self,
        pending_only: bool,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(HolderId, Override)>> {
        let filter = if pending_only {
            "AND approved_by IS NULL"
        } else {
            ""
        };
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {HOLDER_OVERRIDE_COLS} FROM overrides WHERE id > $1 {filter} ORDER BY id LIMIT $2"
                ),
                &[&after, &i64::from(limit)],
            )
            .await
            .map_err(db)?;
        each(&rows, holder_override_row)
    }

    async fn add_appeal(
        &self,
        holder: &HolderId,
        text: &str,
        at: OffsetDateTime,
        max_open: u32,
    ) -> StoreResult<Appeal> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Filings by one holder take turns (a lock held until the commit), so two cannot both
        // see room.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('appeals:' || encode($1, 'hex'), 0))",
            &[&holder.as_bytes()],
        )
        .await
        .map_err(db)?;
        let open: i64 = tx
            .query_one(
                "SELECT count(*) FROM appeals WHERE holder = $1 AND decided_by IS NULL",
                &[&holder.as_bytes()],
            )
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        rules::may_file_appeal(u64::try_from(open).unwrap_or(0), max_open)?;
        let row = tx
            .query_one(
                "INSERT INTO appeals (holder, text, filed_at) VALUES ($1, $2, $3) RETURNING id",
                &[&holder.as_bytes(), &text, &at],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Appeal::filed(AppealId(returned_id(&row)?), holder, text, at))
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
        each(&rows, appeal_row)
    }

    async fn appeals(&self, open_only: bool, after: i64, limit: u32) -> StoreResult<Vec<Appeal>> {
        let filter = if open_only { "AND decided_by IS NULL" } else { "" };
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {APPEAL_COLS} FROM appeals WHERE id > $1 {filter} ORDER BY id LIMIT $2"),
                &[&after, &i64::from(limit)],
            )
            .await
            .map_err(db)?;
        each(&rows, appeal_row)
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
        let a = rules::decide_appeal(id, one(row.as_ref(), appeal_row)?, officer, upheld, note, at)?;
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
        let holders = c
            .query_one("SELECT COUNT(*) FROM holders", &[])
            .await
            .map_err(db)?
            .try_get::<_, i64>(0)
            .map_err(db)?;
        // Within the open hour a re-sent scan may be stored twice until the hour is closed:
        // counted once.
        let checkins_per_hour = per_hour(
            &**c,
            "SELECT date_trunc('hour', at), COUNT(DISTINCT (device, seq)) FROM checkins
             WHERE at >= $1 GROUP BY 1 ORDER BY 1",
            since,
        )
        .await?;
        let exposures_per_hour = per_hour(
            &**c,
            "SELECT date_trunc('hour', contact_start), COUNT(*) FROM exposures
             WHERE contact_start >= $1 GROUP BY 1 ORDER BY 1",
            since,
        )
        .await?;
        let flagged = c
            .query(FLAGGED_HOLDERS, &[&i64::from(flagged_limit)])
            .await
            .map_err(db)?;
        Ok(Activity {
            holders: holders as u64,
            checkins_per_hour,
            exposures_per_hour,
            flagged: each(&flagged, |r| holder_id(r.blob(0)?))?,
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> StoreResult<PurgeReport> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock(7209412)", &[])
            .await
            .map_err(db)?;
        // Check-ins: whole hours before the cutoff go with their partitions, the rest of the
        // cutoff's hour row by row.
        let (checkins, dropped) = self.purge_checkins(&*tx, before).await?;
        let mut report = PurgeReport {
            checkins,
            ..PurgeReport::default()
        };
        for (sql, what) in PURGES {
            report.count(what, tx.execute(sql, &[&before]).await.map_err(db)?);
        }
        // The keys of the check-ins gone (counted with them above).
        tx.execute("DELETE FROM checkin_keys WHERE at < $1", &[&before])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.forget_hours(dropped.into_iter())?;
        Ok(report)
    }
}
