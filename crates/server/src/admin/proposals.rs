//! Two people for every act that changes colours or powers. Risk areas, staff accounts and role
//! grants, and bulk exposure decisions are proposed through their own endpoints
//! ([`propose`]); they are listed, approved by a second eligible person and withdrawn here. The
//! store decides each approval in its transaction (`healthcode_store::rules::check_approver`)
//! and does the act there. Every proposal, approval, refusal and withdrawal is audited.

use std::sync::Arc;

use axum::extract::State;
use healthcode_store::{Act, AuditEntry, Proposal, ProposalState, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Officers, Staff, one_time_password};
use crate::problem::{ApiError, Json, Path, Problem, Query};
use crate::{App, now};

use super::rfc;

/// A proposal awaiting (or past) a second person's approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    /// Id.
    pub id: i64,
    /// risk-area-declare, risk-area-level, risk-area-end, account-create, role-grant,
    /// exposure-decisions or policy-publish.
    pub kind: String,
    /// What approval does (an account's one-time password is not part of it: it is made at
    /// approval and sent to the owner's phone, shown here masked).
    #[schema(value_type = Object)]
    pub act: serde_json::Value,
    /// Who may approve: "officer" (officers and admins) or "admin".
    pub approver_role: String,
    /// The proposer's id.
    pub proposed_by: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub proposed_at: OffsetDateTime,
    /// After this it can no longer be approved.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// pending, approved, withdrawn or expired.
    pub state: String,
    /// Who approved or withdrew it.
    pub decided_by: Option<i64>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

impl ProposalView {
    pub(crate) fn of(p: &Proposal, at: OffsetDateTime) -> ProposalView {
        let mut act = serde_json::to_value(&p.act).unwrap_or_default();
        if let Some(o) = act.as_object_mut() {
            o.remove("act");
            // A staff member's phone is theirs: the admins see where the password goes, masked.
            if let Some(phone) = o.get_mut("phone")
                && let Some(masked) = phone
                    .as_str()
                    .and_then(|p| healthcode_domain::Phone::parse(p).ok())
                    .map(|p| p.masked())
            {
                *phone = serde_json::Value::String(masked);
            }
        }
        let state = if p.expired(at) {
            "expired"
        } else {
            p.state.as_str()
        };
        ProposalView {
            id: p.id,
            kind: p.act.kind().into(),
            act,
            approver_role: p.act.role_needed().as_str().into(),
            proposed_by: p.proposed_by.0,
            proposed_at: p.proposed_at,
            expires_at: p.expires_at,
            state: state.into(),
            decided_by: p.decided.map(|(by, _)| by.0),
            decided_at: p.decided.map(|(_, at)| at),
        }
    }
}

/// Records a proposal by `me` and audits it (`proposal-<kind>`, what it would do in words).
pub(crate) async fn propose<S: Store, R>(
    app: &App<S>,
    me: &Staff<R>,
    act: Act,
    what: String,
) -> Result<ProposalView, ApiError> {
    let t = now();
    let p = app
        .store
        .propose(&act, me.id, t, t + app.governance.proposal_expiry())
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        &format!("propose-{}", act.kind()),
        None,
        format!(
            "proposal {}: {what}, awaiting a second {}",
            p.id,
            act.role_needed().as_str()
        ),
    )
    .await?;
    Ok(ProposalView::of(&p, t))
}

/// Which proposals, a page at a time.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProposalQuery {
    /// Only those awaiting approval (pending, not expired).
    #[serde(default)]
    pub(crate) pending: bool,
    /// The last id of the previous page (0 or absent: from the first).
    #[serde(default)]
    pub(crate) after: i64,
    /// At most this many (1-200, 50 by default).
    #[serde(default)]
    pub(crate) limit: Option<u32>,
}

/// A page of proposals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalPage {
    /// Proposals by id.
    pub proposals: Vec<ProposalView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

/// Proposals by id, a page at a time (`?pending=true`: those awaiting a second person).
#[utoipa::path(get, path = "/proposals", tag = "governance", security(("officer" = [])),
    params(ProposalQuery), responses(
    (status = 200, description = "a page of proposals", body = ProposalPage),
))]
pub(crate) async fn list_proposals<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
    Query(q): Query<ProposalQuery>,
) -> Result<Json<ProposalPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::InvalidField("limit: 1 to 200".into()));
    }
    let t = now();
    let found = app.store.proposals(q.pending, t, q.after.max(0), limit).await?;
    let next_after = (found.len() == limit as usize)
        .then(|| found.last().map(|p| p.id))
        .flatten();
    Ok(Json(ProposalPage {
        proposals: found.iter().map(|p| ProposalView::of(p, t)).collect(),
        next_after,
    }))
}

/// The proposals awaiting a second person, oldest first, at most `limit` (for the console's
/// pages, behind the same role check as [`list_proposals`]).
pub(crate) async fn pending<S: Store>(
    app: &App<S>,
    _me: &Staff<Officers>,
    limit: u32,
) -> Result<Vec<ProposalView>, ApiError> {
    let t = now();
    Ok(app
        .store
        .proposals(true, t, 0, limit)
        .await?
        .iter()
        .map(|p| ProposalView::of(p, t))
        .collect())
}

/// An approved proposal, and for an account it created, how its one-time password reaches its
/// owner: split in two, the first half texted to the phone the proposer recorded, the second in
/// this answer for the approver to hand over in person. Neither admin alone holds it; an owner
/// whose phone the proposer got wrong (or made their own) is missing half, and says so.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    /// The proposal, approved.
    #[serde(flatten)]
    pub proposal: ProposalView,
    /// For an account created by the approval: the phone, masked, the first half of its
    /// one-time password was texted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_sent_to: Option<String>,
    /// For an account created by the approval: the second half of its one-time password, for
    /// the approver to give the owner in person (never by the channel the first half took). The
    /// owner signs in with the texted half followed by this one, and replaces the whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_half: Option<String>,
    /// For an account created by the approval whose first half could not be sent: why, and what
    /// to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_not_sent: Option<String>,
}

/// Approves a proposal as a second person and does it. Refused (409) for the proposer, for an
/// account the proposer made (or that made the proposer), for one whose credentials the
/// proposer last reset or re-enabled (or the reverse), for an account younger than
/// `[governance] approver_min_age_hours` or reset more recently, for one without the role, and
/// once it is no longer pending or has expired; every refusal is audited. The approval is
/// recorded in the audit log in the same transaction that does it. The approver of an account
/// types its owner's phone, as the owner gives it (`owner_phone`), which must be the one the
/// proposal recorded (409 and audited otherwise). Approving an account makes
/// its one-time password in two halves: the first is texted to the phone recorded with the
/// proposal, the second is in this answer for the approver to hand over in person (an account
/// proposed without a phone is refused).
#[utoipa::path(post, path = "/proposals/{id}/approve", tag = "governance", security(("officer" = [])),
    params(("id" = i64, Path, description = "proposal id")), request_body(content = Option<ApprovalRequest>, description = "for a staff account, its owner's phone"), responses(
    (status = 200, description = "approved and done (for an account: where the first half of its one-time password was texted, and the second half)", body = Approved),
    (status = 404, description = "no such proposal", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "this person may not approve it, it is no longer pending, or the owner's phone is not the proposal's", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "an account's approval without its owner's phone", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn approve_proposal<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Approved>, ApiError> {
    let said: ApprovalRequest = crate::problem::json_or_default(&headers, &body)?;
    let found = app.store.proposal(id).await?;
    if let Some(Proposal {
        act: Act::AccountCreate { phone, .. },
        ..
    }) = &found
    {
        owner_phone_matches(&app, &me, id, phone.as_deref(), said.owner_phone.as_deref()).await?;
    }
    // An account made by this approval gets its one-time password now, for its owner's phone.
    let (password, phone) = match &found {
        Some(Proposal {
            act: Act::AccountCreate { phone, .. },
            ..
        }) => (
            Some(one_time_password()?),
            phone
                .as_deref()
                .and_then(|p| healthcode_domain::Phone::parse(p).ok()),
        ),
        _ => (None, None),
    };
    let hash = match &password {
        Some(p) => Some(app.passwords.hash(p.clone()).await?),
        None => None,
    };
    let t = now();
    // The approval's record, written by the store in the transaction that approves and does it.
    let record = found.as_ref().map(|p| AuditEntry {
        at: t,
        actor: me.actor(),
        role: me.role.as_str().to_owned(),
        action: format!("approve-{}", p.act.kind()),
        subject: None,
        purpose: approval_words(id, p),
    });
    let result = app
        .store
        .approve_proposal(
            id,
            me.id,
            t,
            app.governance.approval(),
            hash.as_deref(),
            record.as_ref(),
        )
        .await;
    let p = match result {
        Ok(p) => p,
        Err(e @ (StoreError::Refused(_) | StoreError::Conflict(_) | StoreError::NotFound(_))) => {
            app.audit(
                me.actor(),
                me.role.as_str(),
                "approve-refused",
                None,
                format!("proposal {id}: {e}"),
            )
            .await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    // The act and its record are committed together; what this node forgets after is logged if
    // it fails (the other nodes catch up on their own).
    if let Err(e) = after_approval(&app, &p).await {
        tracing::error!(proposal = id, error = %e, "an approved act is done, but this node could not catch up with it");
    }
    // The account exists: the first half of its password goes to the phone the proposer
    // recorded, the second to the approver. A failed text leaves an account whose password
    // nobody holds whole: once the owner has a proven phone, a reset sends a new one.
    let (mut password_sent_to, mut password_not_sent, mut second_half) = (None, None, None);
    if let (Some(password), Some(phone), Act::AccountCreate { username, .. }) = (password, phone, &p.act) {
        let (first, second) = password.split_at(password.len() / 2);
        second_half = Some(second.to_owned());
        match super::phones::send_first_half(&app, &phone, username, first).await {
            Ok(to) => password_sent_to = Some(to),
            Err(e) => {
                tracing::warn!(proposal = id, error = %e, "a new staff account's password could not be sent");
                password_not_sent = Some(format!(
                    "{e}; the owner cannot sign in until the server's operator runs `healthcode admin reset-password {username}`"
                ));
            }
        }
    }
    Ok(Json(Approved {
        proposal: ProposalView::of(&p, t),
        password_sent_to,
        second_half,
        password_not_sent,
    }))
}

/// What an approver says with an approval.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// For a staff account: its owner's phone, as the owner gave it to the approver (not read
    /// off the proposal, which shows it masked). It must be the phone the proposer recorded:
    /// otherwise the proposer could have recorded a phone of their own.
    pub owner_phone: Option<String>,
}

/// Checks the phone the approver of an account typed (from its owner) against the proposal's;
/// a mismatch is audited and refused, and nothing is approved.
async fn owner_phone_matches<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    id: i64,
    recorded: Option<&str>,
    typed: Option<&str>,
) -> Result<(), ApiError> {
    let typed = typed.ok_or_else(|| {
        ApiError::InvalidField(
            "owner_phone: ask the account's owner for their phone and type it; approval checks it against the proposal".into(),
        )
    })?;
    let typed = crate::holders::parse_phone(typed)
        .map_err(|_| ApiError::InvalidField("owner_phone: not a phone number".into()))?;
    if recorded == Some(typed.as_str()) {
        return Ok(());
    }
    app.audit(
        me.actor(),
        me.role.as_str(),
        "approve-refused",
        None,
        format!(
            "proposal {id}: the owner's phone the approver typed ({}) is not the one proposed",
            typed.masked()
        ),
    )
    .await?;
    Err(ApiError::Conflict(
        "the owner's phone is not the one the proposal recorded: check it with the owner in person; if the proposer's is wrong, let it expire and have it proposed again".into(),
    ))
}

/// What an approval did, as the audit log says it, in the words the alerts read (`CN-SH high
/// from …`).
fn approval_words(id: i64, p: &Proposal) -> String {
    match &p.act {
        Act::RiskAreaDeclare {
            region, level, from, ..
        } => format!(
            "proposal {id} by staff:{}, done: {region} {} from {}",
            p.proposed_by.0,
            level.as_str(),
            super::rfc(*from)
        ),
        Act::PolicyPublish { version, sha256, .. } => format!(
            "proposal {id} by staff:{}, done: colour policy {version} (sha256 {sha256}) in force",
            p.proposed_by.0
        ),
        _ => format!("proposal {id} by staff:{}, done", p.proposed_by.0),
    }
}

/// What this node forgets once an act is done.
async fn after_approval<S: Store>(app: &App<S>, p: &Proposal) -> Result<(), ApiError> {
    match &p.act {
        Act::RiskAreaDeclare { .. }
        | Act::RiskAreaLevel { .. }
        | Act::RiskAreaEnd { .. }
        | Act::ExposureDecisions { .. } => app.statuses.invalidate_all(),
        Act::AccountCreate { username, .. } => {
            // Failures counted against the name before it existed are not the account's.
            app.store
                .sign_in_succeeded(&crate::signin::user_key(username))
                .await?;
        }
        Act::RoleGrant { .. } | Act::AccountEnable { .. } => {}
        Act::PolicyPublish { .. } => {
            // In force here at once; other nodes follow within seconds.
            crate::policies::follow_once(app).await?;
        }
    }
    debug_assert_eq!(p.state, ProposalState::Approved);
    Ok(())
}

/// Withdraws one's own pending proposal.
#[utoipa::path(post, path = "/proposals/{id}/withdraw", tag = "governance", security(("officer" = [])),
    params(("id" = i64, Path, description = "proposal id")), responses(
    (status = 200, description = "withdrawn", body = ProposalView),
    (status = 404, description = "no such proposal", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "not the proposer, or no longer pending", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn withdraw_proposal<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
) -> Result<Json<ProposalView>, ApiError> {
    let t = now();
    let p = app.store.withdraw_proposal(id, me.id, t).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        &format!("withdraw-{}", p.act.kind()),
        None,
        format!("proposal {id} proposed {}", rfc(p.proposed_at)),
    )
    .await?;
    Ok(Json(ProposalView::of(&p, t)))
}
