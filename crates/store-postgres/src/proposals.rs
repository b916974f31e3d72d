//! Proposals and their approval on PostgreSQL: the approval rule and the act in one
//! transaction, the proposal's row locked.

use healthcode_domain::OfficerId;
use healthcode_store::rows::{
    LISTED_RISK_AREA_COLS, OFFICER_COLS, POLICY_COLS, PROPOSAL_COLS, listed_risk_area_row, officer_row,
    policy_row, proposal_row,
};
use healthcode_store::{
    AccountChange, Act, ApprovalPolicy, AuditEntry, FirstPolicy, ListedRiskArea, Officer, Proposal,
    ProposalState, ProposalStore, PublishedPolicy, StoreError, StoreResult, credentials, rules,
};
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use crate::PgStore;
use crate::rows::{db, each, one, returned_id};

async fn officer_in(c: &impl GenericClient, id: OfficerId) -> StoreResult<Option<Officer>> {
    let row = c
        .query_opt(
            &format!("SELECT {OFFICER_COLS} FROM officers WHERE id = $1"),
            &[&id.0],
        )
        .await
        .map_err(db)?;
    one(row.as_ref(), officer_row)
}

/// Reads both accounts in the transaction and applies the approval rule.
pub(crate) async fn check_approver(
    c: &impl GenericClient,
    proposer: OfficerId,
    approver: OfficerId,
    needed: healthcode_store::Role,
    policy: ApprovalPolicy,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let p = officer_in(c, proposer).await?;
    let a = officer_in(c, approver).await?;
    rules::check_approver(p.as_ref(), a.as_ref(), needed, policy, at)
}

fn touched(n: u64, what: String) -> StoreResult<()> {
    rules::updated(n, || what)
}

/// Does an approved proposal's act (`password_hash`: an account's one-time password).
async fn apply(
    c: &impl GenericClient,
    p: &Proposal,
    at: OffsetDateTime,
    password_hash: Option<&str>,
) -> StoreResult<()> {
    let (approver, _) = p.decided.unwrap_or((p.proposed_by, at));
    match &p.act {
        Act::RiskAreaDeclare {
            region,
            level,
            from,
            until,
        } => {
            c.execute(
                "INSERT INTO risk_areas (region, level, starts_at, ends_at) VALUES ($1, $2, $3, $4)",
                &[region, &level.as_str(), from, until],
            )
            .await
            .map_err(db)?;
        }
        Act::RiskAreaLevel { area, level } => touched(
            c.execute(
                "UPDATE risk_areas SET level = $1 WHERE id = $2 AND ended_at IS NULL",
                &[&level.as_str(), area],
            )
            .await
            .map_err(db)?,
            format!("risk area {area} in force"),
        )?,
        Act::RiskAreaEnd { area } => touched(
            c.execute(
                "UPDATE risk_areas SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
                &[&at, area],
            )
            .await
            .map_err(db)?,
            format!("risk area {area} in force"),
        )?,
        Act::AccountCreate {
            username,
            role,
            phone,
        } => {
            let password_hash = rules::one_time_password_for(username, password_hash)?;
            let phone = rules::phone_for_account(username, phone.as_deref())?;
            let phone_taken = c
                .query_opt("SELECT id FROM officers WHERE phone = $1", &[&phone])
                .await
                .map_err(db)?;
            if phone_taken.is_some() {
                return Err(StoreError::Conflict(
                    "another staff account has this phone".into(),
                ));
            }
            let taken = c
                .query_opt("SELECT id FROM officers WHERE username = $1", &[username])
                .await
                .map_err(db)?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("the username {username} is taken")));
            }
            c.execute(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at, created_by, creation_approved_by, phone)
                 VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7)",
                &[username, &role.as_str(), &password_hash, &at, &p.proposed_by.0, &approver.0, &phone],
            )
            .await
            .map_err(|e| match e.code() {
                Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    StoreError::Conflict(format!("the username {username} is taken"))
                }
                _ => db(e),
            })?;
        }
        Act::AccountEnable { officer } => {
            let id = OfficerId(*officer);
            let found = crate::credentials::officer_locked(c, id).await?;
            let o = credentials::change_account(found, id, p.proposed_by, 0, AccountChange::Enable, at)?;
            c.execute(
                "UPDATE officers SET disabled_at = NULL, credentials_reset_by = $1, credentials_reset_at = $2 WHERE id = $3",
                &[&o.credentials_reset_by.map(|b| b.0), &o.credentials_reset_at, &id.0],
            )
            .await
            .map_err(db)?;
        }
        Act::RoleGrant { officer, role } => {
            let id = OfficerId(*officer);
            // As a role change made at once: every active admin locked, the target too.
            let admins = crate::credentials::active_admins_locked(c).await?;
            let found = crate::credentials::officer_locked(c, id).await?;
            let o = credentials::change_account(
                found,
                id,
                p.proposed_by,
                admins,
                AccountChange::Role(*role),
                at,
            )?;
            c.execute(
                "UPDATE officers SET role = $1 WHERE id = $2",
                &[&o.role.as_str(), &id.0],
            )
            .await
            .map_err(db)?;
        }
        Act::ExposureDecisions {
            case,
            apply,
            count,
            upto,
            ..
        } => {
            let state = if *apply { "applied" } else { "dismissed" };
            let n = c
                .execute(
                    "UPDATE exposures SET state = $1 WHERE case_id = $2 AND state = 'pending' AND id <= $3",
                    &[&state, case, upto],
                )
                .await
                .map_err(db)?;
            rules::bulk_decided(*case, n, *count)?;
        }
        Act::PolicyPublish {
            version,
            replaces,
            sha256,
            source,
        } => {
            // Approvals of two versions wait for each other here: each checks what is in force.
            c.execute("LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE", &[])
                .await
                .map_err(db)?;
            let newest: i64 = c
                .query_one("SELECT coalesce(max(seq), 0) FROM policies", &[])
                .await
                .map_err(db)?
                .get(0);
            rules::still_in_force(*replaces, newest)?;
            let n = c
                .execute(
                    "INSERT INTO policies (version, sha256, source, published_at, proposal, proposed_by, approved_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (version) DO NOTHING",
                    &[version, sha256, source, &at, &p.id, &p.proposed_by.0, &approver.0],
                )
                .await
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "policy version {version} is already published"
                )));
            }
        }
    }
    Ok(())
}

impl ProposalStore for PgStore {
    async fn propose(
        &self,
        act: &Act,
        by: OfficerId,
        at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Proposal> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO proposals (kind, act, proposed_by, proposed_at, expires_at, state) VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING id",
                &[&act.kind(), &act.to_stored(), &by.0, &at, &expires_at],
            )
            .await
            .map_err(db)?;
        Ok(Proposal {
            id: returned_id(&row)?,
            act: act.clone(),
            proposed_by: by,
            proposed_at: at,
            expires_at,
            state: ProposalState::Pending,
            decided: None,
        })
    }

    async fn proposal(&self, id: i64) -> StoreResult<Option<Proposal>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), proposal_row)
    }

    async fn proposals(
        &self,
        pending_only: bool,
        now: OffsetDateTime,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Proposal>> {
        let c = self.conn().await?;
        let sql = format!(
            "SELECT {PROPOSAL_COLS} FROM proposals WHERE id > $1
             AND (NOT $2 OR (state = 'pending' AND expires_at > $3)) ORDER BY id LIMIT $4"
        );
        let rows = c
            .query(&sql, &[&after, &pending_only, &now, &i64::from(limit)])
            .await
            .map_err(db)?;
        each(&rows, proposal_row)
    }

    async fn withdraw_proposal(&self, id: i64, by: OfficerId, at: OffsetDateTime) -> StoreResult<Proposal> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(db)?;
        let p = rules::withdraw_proposal(id, one(row.as_ref(), proposal_row)?, by, at)?;
        tx.execute(
            "UPDATE proposals SET state = 'withdrawn', decided_by = $1, decided_at = $2 WHERE id = $3",
            &[&by.0, &at, &id],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(p)
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
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {PROPOSAL_COLS} FROM proposals WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(db)?;
        let p = rules::approve_proposal(id, one(row.as_ref(), proposal_row)?, by, at)?;
        check_approver(&*tx, p.proposed_by, by, p.act.role_needed(), policy, at).await?;
        tx.execute(
            "UPDATE proposals SET state = 'approved', decided_by = $1, decided_at = $2 WHERE id = $3",
            &[&by.0, &at, &id],
        )
        .await
        .map_err(db)?;
        apply(&*tx, &p, at, password_hash).await?;
        if let Some(e) = audit {
            crate::audit::append_in(&*tx, e).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(p)
    }

    async fn listed_risk_areas(&self) -> StoreResult<Vec<ListedRiskArea>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {LISTED_RISK_AREA_COLS} FROM risk_areas ORDER BY id"),
                &[],
            )
            .await
            .map_err(db)?;
        each(&rows, listed_risk_area_row)
    }

    async fn published_policies(&self) -> StoreResult<Vec<PublishedPolicy>> {
        let c = self.conn().await?;
        let rows = c
            .query(&format!("SELECT {POLICY_COLS} FROM policies ORDER BY seq"), &[])
            .await
            .map_err(db)?;
        each(&rows, policy_row)
    }

    async fn publish_first_policy(
        &self,
        version: &str,
        sha256: &str,
        source: &str,
        at: OffsetDateTime,
        pinned: bool,
    ) -> StoreResult<FirstPolicy> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Nodes starting together: one publishes, the others find it.
        tx.execute("LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE", &[])
            .await
            .map_err(db)?;
        let row = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM policies), EXISTS (SELECT 1 FROM holders)",
                &[],
            )
            .await
            .map_err(db)?;
        let outcome = rules::first_policy(row.get(0), row.get(1), pinned);
        if outcome == FirstPolicy::Published {
            tx.execute(
                "INSERT INTO policies (version, sha256, source, published_at) VALUES ($1, $2, $3, $4)",
                &[&version, &sha256, &source, &at],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(outcome)
    }
}
