//! Facts and cases, exposures, risk areas, overrides, appeals, the dashboard's counts and
//! retention on SQLite.

use healthcode_domain::{
    AppealId, CaseId, ConfirmedCase, Exposure, HolderFacts, HolderId, OfficerId, Override, OverrideId,
    RiskArea,
};
use healthcode_store::rows::*;
use healthcode_store::{
    Activity, Appeal, CaseStore, ExposureKey, ExposureState, FLAGGED_HOLDERS, Fact, NewOverride, PURGES,
    PurgeReport, StoreResult, StoredExposure, rules,
};
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::rows::{backend, date_text, from_ts, query_all, query_first, ts};
use crate::{SqliteStore, lock};

/// Counts by the hour from `sql`, which returns (hours since 1970, count) for `since`.
fn per_hour(c: &Connection, sql: &str, since: OffsetDateTime) -> StoreResult<Vec<(OffsetDateTime, u64)>> {
    query_all(c, sql, [ts(since)], |r| {
        Ok((from_ts(r.int(0)? * 3600)?, r.int(1)? as u64))
    })
}

impl CaseStore for SqliteStore {
    async fn add_fact(&self, holder: &HolderId, fact: &Fact) -> StoreResult<()> {
        let h = holder.as_bytes();
        self.write(|tx| {
            match fact {
                Fact::Health(d) => tx.execute(
                    "INSERT INTO health_declarations (holder, at, symptoms, temperature) VALUES (?1, ?2, ?3, ?4)",
                    params![h, ts(d.at), symptoms_text(&d.symptoms)?, d.temperature_c.map(f64::from)],
                ),
                Fact::Travel(t) => tx.execute(
                    "INSERT INTO travel_declarations (holder, at, region, date_from, date_until) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![h, ts(t.at), t.region.as_str(), date_text(t.from), date_text(t.until)],
                ),
                Fact::Report(r) => tx.execute(
                    "INSERT INTO daily_reports (holder, at, well) VALUES (?1, ?2, ?3)",
                    params![h, ts(r.at), r.well],
                ),
                Fact::Test(t) => tx.execute(
                    "INSERT INTO test_results (holder, positive, sampled_at, lab) VALUES (?1, ?2, ?3, ?4)",
                    params![h, t.positive, ts(t.sampled_at), t.lab],
                ),
            }
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn add_case_by(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
        recorded_by: Option<OfficerId>,
    ) -> StoreResult<ConfirmedCase> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO cases (holder, onset, confirmed_at, recorded_by) VALUES (?1, ?2, ?3, ?4)",
                params![
                    holder.as_bytes(),
                    ts(onset),
                    ts(confirmed_at),
                    recorded_by.map(|o| o.0)
                ],
            )
            .map_err(backend)?;
            Ok(ConfirmedCase {
                id: CaseId(tx.last_insert_rowid()),
                onset,
                confirmed_at,
            })
        })
    }

    async fn case(&self, id: CaseId) -> StoreResult<Option<(HolderId, ConfirmedCase)>> {
        let sql = format!("SELECT {CASE_COLS} FROM cases WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id.0], case_row))
    }

    async fn cases(&self, since: OffsetDateTime) -> StoreResult<Vec<(HolderId, ConfirmedCase)>> {
        let sql = format!("SELECT {CASE_COLS} FROM cases WHERE confirmed_at >= ?1 ORDER BY confirmed_at, id");
        self.read(|c| query_all(c, &sql, [ts(since)], case_row))
    }

    async fn holder_facts(&self, holder: &HolderId) -> StoreResult<HolderFacts> {
        let h = holder.as_bytes();
        self.read(|c| {
            let of_holder = |cols: &str, table: &str, order: &str| {
                format!("SELECT {cols} FROM {table} WHERE holder = ?1 ORDER BY {order}")
            };
            Ok(HolderFacts {
                cases: query_all(
                    c,
                    &of_holder(HOLDER_CASE_COLS, "cases", "id"),
                    [h],
                    holder_case_row,
                )?,
                tests: query_all(c, &of_holder(TEST_COLS, "test_results", "id"), [h], test_row)?,
                exposures: query_all(
                    c,
                    &format!(
                        "SELECT {APPLIED_EXPOSURE_COLS} FROM exposures WHERE holder = ?1 AND state = 'applied'
                         ORDER BY contact_start, case_id, venue"
                    ),
                    [h],
                    applied_exposure_row,
                )?,
                travels: query_all(
                    c,
                    &of_holder(TRAVEL_COLS, "travel_declarations", "id"),
                    [h],
                    travel_row,
                )?,
                declarations: query_all(
                    c,
                    &of_holder(HEALTH_COLS, "health_declarations", "id"),
                    [h],
                    health_row,
                )?,
                reports: query_all(c, &of_holder(REPORT_COLS, "daily_reports", "id"), [h], report_row)?,
                overrides: query_all(c, &of_holder(OVERRIDE_COLS, "overrides", "id"), [h], override_row)?,
            })
        })
    }

    async fn add_exposures_as(
        &self,
        exposures: &[(HolderId, Exposure)],
        state: ExposureState,
    ) -> StoreResult<u64> {
        self.write(|tx| {
            // Numbered in the order recorded: the one writer takes the next numbers.
            let mut next: i64 = tx
                .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM exposures", [], |r| r.get(0))
                .map_err(backend)?;
            let mut s = tx
                .prepare_cached(&format!(
                    "INSERT INTO exposures ({EXPOSURE_COLS}, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT DO NOTHING"
                ))
                .map_err(backend)?;
            let mut n = 0u64;
            for (h, e) in exposures {
                let added = s
                    .execute(params![
                        h.as_bytes(),
                        e.case.0,
                        e.venue.0,
                        ts(e.case_interval.0),
                        ts(e.case_interval.1),
                        ts(e.contact_interval.0),
                        ts(e.contact_interval.1),
                        e.overlap_minutes,
                        e.grade.as_str(),
                        state.as_str(),
                        next
                    ])
                    .map_err(backend)? as u64;
                next += added as i64;
                n += added;
            }
            Ok(n)
        })
    }

    async fn pending_exposure_mark(&self, case: CaseId) -> StoreResult<(u64, i64)> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM exposures WHERE case_id = ?1 AND state = 'pending'",
                [case.0],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?)),
            )
            .map_err(backend)
        })
    }

    async fn exposures_of_case(&self, case: CaseId) -> StoreResult<Vec<StoredExposure>> {
        let sql = format!(
            "SELECT {EXPOSURE_COLS} FROM exposures WHERE case_id = ?1 ORDER BY holder, venue, contact_start"
        );
        self.read(|c| query_all(c, &sql, [case.0], exposure_row))
    }

    async fn pending_exposures(&self, limit: u32) -> StoreResult<Vec<StoredExposure>> {
        let sql = format!(
            "SELECT {EXPOSURE_COLS} FROM exposures WHERE state = 'pending'
             ORDER BY case_id, holder, venue, contact_start LIMIT ?1"
        );
        self.read(|c| query_all(c, &sql, [limit], exposure_row))
    }

    async fn set_exposure_state(
        &self,
        key: &ExposureKey,
        state: ExposureState,
    ) -> StoreResult<StoredExposure> {
        let review = rules::ExposureReview::new(key, state)?;
        let (h, case, venue, start) = (
            key.holder.as_bytes(),
            key.case.0,
            key.venue.0,
            ts(key.contact_start),
        );
        let sql = format!(
            "SELECT {EXPOSURE_COLS} FROM exposures WHERE holder = ?1 AND case_id = ?2 AND venue = ?3 AND contact_start = ?4"
        );
        self.write(|tx| {
            let found = query_first(tx, &sql, params![h, case, venue, start], exposure_row)?;
            let e = review.apply(found)?;
            tx.execute(
                "UPDATE exposures SET state = ?5 WHERE holder = ?1 AND case_id = ?2 AND venue = ?3 AND contact_start = ?4",
                params![h, case, venue, start, e.state.as_str()],
            )
            .map_err(backend)?;
            Ok(e)
        })
    }

    async fn add_risk_area(&self, area: &RiskArea) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO risk_areas ({RISK_AREA_COLS}) VALUES (?1, ?2, ?3, ?4)"),
                params![
                    area.region.as_str(),
                    area.level.as_str(),
                    ts(area.from),
                    area.until.map(ts)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    async fn travellers_to(&self, region: &str, since: time::Date) -> StoreResult<u64> {
        let since = date_text(since);
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(DISTINCT holder) FROM travel_declarations WHERE region = ?1 AND date_until >= ?2",
                params![region, since],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(backend)
        })
    }

    async fn risk_areas(&self) -> StoreResult<Vec<RiskArea>> {
        let sql = format!("SELECT {RISK_AREA_COLS} FROM risk_areas WHERE ended_at IS NULL ORDER BY id");
        self.read(|c| query_all(c, &sql, [], risk_area_row))
    }

    async fn propose_override(&self, o: &NewOverride) -> StoreResult<Override> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO overrides (holder, colour, reason, proposed_by, proposed_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![o.holder.as_bytes(), o.colour.as_str(), o.reason, o.proposed_by.0, ts(o.proposed_at), ts(o.expires_at)],
            )
            .map_err(backend)?;
            Ok(o.stored(OverrideId(tx.last_insert_rowid())))
        })
    }

    async fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
        policy: healthcode_store::ApprovalPolicy,
        audit: Option<&healthcode_store::AuditEntry>,
    ) -> StoreResult<Override> {
        let sql = format!("SELECT {OVERRIDE_COLS} FROM overrides WHERE id = ?1");
        self.write(|tx| {
            let found = query_first(tx, &sql, [id.0], override_row)?;
            let o = rules::approve_override(id, found, officer, at)?;
            crate::proposals::check_approver(
                tx,
                o.proposed_by,
                officer,
                healthcode_store::Role::Officer,
                policy,
                at,
            )?;
            tx.execute(
                "UPDATE overrides SET approved_by = ?1, approved_at = ?2 WHERE id = ?3",
                params![officer.0, ts(at), id.0],
            )
            .map_err(backend)?;
            if let Some(e) = audit {
                crate::audit::append_in(tx, e)?;
            }
            Ok(o)
        })
    }

    async fn override_by_id(&self, id: OverrideId) -> StoreResult<Option<(HolderId, Override)>> {
        let sql = format!("SELECT {HOLDER_OVERRIDE_COLS} FROM overrides WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id.0], holder_override_row))
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
        let sql = format!(
            "SELECT {HOLDER_OVERRIDE_COLS} FROM overrides WHERE id > ?1 {filter} ORDER BY id LIMIT ?2"
        );
        self.read(|c| query_all(c, &sql, params![after, limit], holder_override_row))
    }

    async fn add_appeal(
        &self,
        holder: &HolderId,
        text: &str,
        at: OffsetDateTime,
        max_open: u32,
    ) -> StoreResult<Appeal> {
        self.write(|tx| {
            let open: i64 = tx
                .query_row(
                    "SELECT count(*) FROM appeals WHERE holder = ?1 AND decided_by IS NULL",
                    [holder.as_bytes()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            rules::may_file_appeal(u64::try_from(open).unwrap_or(0), max_open)?;
            tx.execute(
                "INSERT INTO appeals (holder, text, filed_at) VALUES (?1, ?2, ?3)",
                params![holder.as_bytes(), text, ts(at)],
            )
            .map_err(backend)?;
            Ok(Appeal::filed(AppealId(tx.last_insert_rowid()), holder, text, at))
        })
    }

    async fn appeals_of(&self, holder: &HolderId) -> StoreResult<Vec<Appeal>> {
        let sql = format!("SELECT {APPEAL_COLS} FROM appeals WHERE holder = ?1 ORDER BY id");
        self.read(|c| query_all(c, &sql, [holder.as_bytes()], appeal_row))
    }

    async fn appeals(&self, open_only: bool, after: i64, limit: u32) -> StoreResult<Vec<Appeal>> {
        let filter = if open_only { "AND decided_by IS NULL" } else { "" };
        let sql = format!("SELECT {APPEAL_COLS} FROM appeals WHERE id > ?1 {filter} ORDER BY id LIMIT ?2");
        self.read(|c| query_all(c, &sql, params![after, limit], appeal_row))
    }

    async fn decide_appeal(
        &self,
        id: AppealId,
        officer: OfficerId,
        upheld: bool,
        note: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Appeal> {
        let sql = format!("SELECT {APPEAL_COLS} FROM appeals WHERE id = ?1");
        self.write(|tx| {
            let found = query_first(tx, &sql, [id.0], appeal_row)?;
            let a = rules::decide_appeal(id, found, officer, upheld, note, at)?;
            tx.execute(
                "UPDATE appeals SET decided_by = ?1, upheld = ?2, note = ?3, decided_at = ?4 WHERE id = ?5",
                params![officer.0, upheld, note, ts(at), id.0],
            )
            .map_err(backend)?;
            Ok(a)
        })
    }

    async fn activity(&self, since: OffsetDateTime, flagged_limit: u32) -> StoreResult<Activity> {
        self.read(|c| {
            let holders: i64 = c
                .query_row("SELECT COUNT(*) FROM holders", [], |r| r.get(0))
                .map_err(backend)?;
            // A check-in can be in the inbox and the indexed file for a moment during a merge:
            // UNION counts it once.
            let checkins_per_hour = per_hour(
                c,
                "SELECT at / 3600, COUNT(*) FROM (
                    SELECT device, seq, at FROM ix.checkins WHERE at >= ?1
                    UNION SELECT device, seq, at FROM checkin_inbox WHERE at >= ?1)
                 GROUP BY 1 ORDER BY 1",
                since,
            )?;
            let exposures_per_hour = per_hour(
                c,
                "SELECT contact_start / 3600, COUNT(*) FROM exposures WHERE contact_start >= ?1 GROUP BY 1 ORDER BY 1",
                since,
            )?;
            let flagged = query_all(c, FLAGGED_HOLDERS, [flagged_limit], |r| holder_id(r.blob(0)?))?;
            Ok(Activity {
                holders: holders as u64,
                checkins_per_hour,
                exposures_per_hour,
                flagged,
            })
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> StoreResult<PurgeReport> {
        let b = ts(before);
        // No merge may run meanwhile: a chunk copied into the check-ins file between the inbox
        // delete and the indexed delete would be counted twice, or come back after the purge.
        let _no_merge = lock(&self.inner.merge_lock)?;
        // Inbox rows already copied into the check-ins file are counted there.
        let (_, inbox_only) = tokio::task::block_in_place(|| {
            self.inner.delete_from_inbox(
                "DELETE FROM checkin_inbox WHERE at < ?1 RETURNING device, seq",
                b,
                true,
            )
        })?;
        let mut report = self.write(|tx| {
            let mut report = PurgeReport {
                checkins: inbox_only,
                ..PurgeReport::default()
            };
            for (sql, what) in PURGES {
                report.count(what, tx.execute(sql, [b]).map_err(backend)? as u64);
            }
            Ok(report)
        })?;
        report.checkins += self.ix_write(|tx| {
            Ok(tx
                .execute("DELETE FROM main.checkins WHERE at < ?1", [b])
                .map_err(backend)? as u64)
        })?;
        Ok(report)
    }
}
