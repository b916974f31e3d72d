//! Proposals and their approval on SQLite: the approval rule and the act in one transaction.

use healthcode_domain::OfficerId;
use healthcode_store::rows::{
    LISTED_RISK_AREA_COLS, OFFICER_COLS, POLICY_COLS, PROPOSAL_COLS, listed_risk_area_row, officer_row,
    policy_row, proposal_row,
};
use healthcode_store::{
    AccountChange, Act, ApprovalPolicy, AuditEntry, FirstPolicy, ListedRiskArea, Officer, Proposal,
    ProposalState, ProposalStore, PublishedPolicy, StoreError, StoreResult, credentials, rules,
};
use rusqlite::{Transaction, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{backend, query_all, query_first, ts};

fn officer_in(tx: &Transaction<'_>, id: OfficerId) -> StoreResult<Option<Officer>> {
    let sql = format!("SELECT {OFFICER_COLS} FROM officers WHERE id = ?1");
    query_first(tx, &sql, [id.0], officer_row)
}

/// Reads both accounts in the transaction and applies the approval rule.
pub(crate) fn check_approver(
    tx: &Transaction<'_>,
    proposer: OfficerId,
    approver: OfficerId,
    needed: healthcode_store::Role,
    policy: ApprovalPolicy,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let p = officer_in(tx, proposer)?;
    let a = officer_in(tx, approver)?;
    rules::check_approver(p.as_ref(), a.as_ref(), needed, policy, at)
}

/// Does an approved proposal's act (`password_hash`: an account's one-time password).
fn apply(
    tx: &Transaction<'_>,
    p: &Proposal,
    at: OffsetDateTime,
    password_hash: Option<&str>,
) -> StoreResult<()> {
    let (approver, _) = p.decided.unwrap_or((p.proposed_by, at));
    let touched = |n: usize, what: &str| rules::updated(n as u64, || what.to_owned());
    match &p.act {
        Act::RiskAreaDeclare {
            region,
            level,
            from,
            until,
        } => {
            tx.execute(
                "INSERT INTO risk_areas (region, level, starts_at, ends_at) VALUES (?1, ?2, ?3, ?4)",
                params![region, level.as_str(), ts(*from), until.map(ts)],
            )
            .map_err(backend)?;
        }
        Act::RiskAreaLevel { area, level } => touched(
            tx.execute(
                "UPDATE risk_areas SET level = ?1 WHERE id = ?2 AND ended_at IS NULL",
                params![level.as_str(), area],
            )
            .map_err(backend)?,
            &format!("risk area {area} in force"),
        )?,
        Act::RiskAreaEnd { area } => touched(
            tx.execute(
                "UPDATE risk_areas SET ended_at = ?1 WHERE id = ?2 AND ended_at IS NULL",
                params![ts(at), area],
            )
            .map_err(backend)?,
            &format!("risk area {area} in force"),
        )?,
        Act::AccountCreate {
            username,
            role,
            phone,
        } => {
            let password_hash = rules::one_time_password_for(username, password_hash)?;
            let phone = rules::phone_for_account(username, phone.as_deref())?;
            let phone_taken: Option<i64> =
                query_first(tx, "SELECT id FROM officers WHERE phone = ?1", [phone], |r| {
                    r.int(0)
                })?;
            if phone_taken.is_some() {
                return Err(StoreError::Conflict(
                    "another staff account has this phone".into(),
                ));
            }
            let taken: Option<i64> = query_first(
                tx,
                "SELECT id FROM officers WHERE username = ?1",
                [username],
                |r| r.int(0),
            )?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("the username {username} is taken")));
            }
            tx.execute(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at, created_by, creation_approved_by, phone)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)",
                params![username, role.as_str(), password_hash, ts(at), p.proposed_by.0, approver.0, phone],
            )
            .map_err(backend)?;
        }
        Act::AccountEnable { officer } => {
            let id = OfficerId(*officer);
            let found = officer_in(tx, id)?;
            let o = credentials::change_account(found, id, p.proposed_by, 0, AccountChange::Enable, at)?;
            tx.execute(
                "UPDATE officers SET disabled_at = NULL, credentials_reset_by = ?1, credentials_reset_at = ?2 WHERE id = ?3",
                params![o.credentials_reset_by.map(|b| b.0), o.credentials_reset_at.map(ts), id.0],
            )
            .map_err(backend)?;
        }
        Act::RoleGrant { officer, role } => {
            let id = OfficerId(*officer);
            let found = officer_in(tx, id)?;
            let admins: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM officers WHERE role = 'admin' AND disabled_at IS NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let o = credentials::change_account(
                found,
                id,
                p.proposed_by,
                admins.max(0) as u64,
                AccountChange::Role(*role),
                at,
            )?;
            tx.execute(
                "UPDATE officers SET role = ?1 WHERE id = ?2",
                params![o.role.as_str(), id.0],
            )
            .map_err(backend)?;
        }
        Act::ExposureDecisions {
            case,
            apply,
            count,
            upto,
            ..
        } => {
            let state = if *apply { "applied" } else { "dismissed" };
            let n = tx
                .execute(
                    "UPDATE exposures SET state = ?1 WHERE case_id = ?2 AND state = 'pending' AND id <= ?3",
                    params![state, case, upto],
                )
                .map_err(backend)?;
            rules::bulk_decided(*case, n as u64, *count)?;
        }
        Act::PolicyPublish {
            version,
            replaces,
            sha256,
            source,
        } => {
            let newest: i64 = tx
                .query_row("SELECT coalesce(max(seq), 0) FROM policies", [], |r| r.get(0))
                .map_err(backend)?;
            rules::still_in_force(*replaces, newest)?;
            let n = tx
                .execute(
                    "INSERT INTO policies (version, sha256, source, published_at, proposal, proposed_by, approved_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (version) DO NOTHING",
                    params![version, sha256, source, ts(at), p.id, p.proposed_by.0, approver.0],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "policy version {version} is already published"
                )));
            }
        }
    }
    Ok(())
}

impl ProposalStore for SqliteStore {
    async fn propose(
        &self,
        act: &Act,
        by: OfficerId,
        at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Proposal> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO proposals (kind, act, proposed_by, proposed_at, expires_at, state) VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                params![act.kind(), act.to_stored(), by.0, ts(at), ts(expires_at)],
            )
            .map_err(backend)?;
            Ok(Proposal {
                id: tx.last_insert_rowid(),
                act: act.clone(),
                proposed_by: by,
                proposed_at: at,
                expires_at,
                state: ProposalState::Pending,
                decided: None,
            })
        })
    }

    async fn proposal(&self, id: i64) -> StoreResult<Option<Proposal>> {
        let sql = format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id], proposal_row))
    }

    async fn proposals(
        &self,
        pending_only: bool,
        now: OffsetDateTime,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Proposal>> {
        let filter = if pending_only {
            "AND state = 'pending' AND expires_at > ?2"
        } else {
            "AND ?2 = ?2"
        };
        let sql =
            format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id > ?1 {filter} ORDER BY id LIMIT ?3");
        self.read(|c| query_all(c, &sql, params![after, ts(now), limit], proposal_row))
    }

    async fn withdraw_proposal(&self, id: i64, by: OfficerId, at: OffsetDateTime) -> StoreResult<Proposal> {
        let sql = format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = ?1");
        self.write(|tx| {
            let p = rules::withdraw_proposal(id, query_first(tx, &sql, [id], proposal_row)?, by, at)?;
            tx.execute(
                "UPDATE proposals SET state = 'withdrawn', decided_by = ?1, decided_at = ?2 WHERE id = ?3",
                params![by.0, ts(at), id],
            )
            .map_err(backend)?;
            Ok(p)
        })
    }

    async fn approve_proposal(
        &self,
        id: i64,
        by: OfficerId,
        at: OffsetDateTime,
        policy: ApprovalPolicy,
        password_hash: Option<&str>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Proposal> {
        let sql = format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = ?1");
        self.write(|tx| {
            let p = rules::approve_proposal(id, query_first(tx, &sql, [id], proposal_row)?, by, at)?;
            check_approver(tx, p.proposed_by, by, p.act.role_needed(), policy, at)?;
            tx.execute(
                "UPDATE proposals SET state = 'approved', decided_by = ?1, decided_at = ?2 WHERE id = ?3",
                params![by.0, ts(at), id],
            )
            .map_err(backend)?;
            apply(tx, &p, at, password_hash)?;
            if let Some(e) = audit {
                crate::audit::append_in(tx, e)?;
            }
            Ok(p)
        })
    }

    async fn listed_risk_areas(&self) -> StoreResult<Vec<ListedRiskArea>> {
        let sql = format!("SELECT {LISTED_RISK_AREA_COLS} FROM risk_areas ORDER BY id");
        self.read(|c| query_all(c, &sql, [], listed_risk_area_row))
    }

    async fn published_policies(&self) -> StoreResult<Vec<PublishedPolicy>> {
        let sql = format!("SELECT {POLICY_COLS} FROM policies ORDER BY seq");
        self.read(|c| query_all(c, &sql, [], policy_row))
    }

    async fn publish_first_policy(
        &self,
        version: &str,
        sha256: &str,
        source: &str,
        at: OffsetDateTime,
        pinned: bool,
    ) -> StoreResult<FirstPolicy> {
        self.write(|tx| {
            let (any_policy, any_holder): (bool, bool) = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM policies), EXISTS (SELECT 1 FROM holders)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            let outcome = rules::first_policy(any_policy, any_holder, pinned);
            if outcome == FirstPolicy::Published {
                tx.execute(
                    "INSERT INTO policies (version, sha256, source, published_at) VALUES (?1, ?2, ?3, ?4)",
                    params![version, sha256, source, ts(at)],
                )
                .map_err(backend)?;
            }
            Ok(outcome)
        })
    }
}
