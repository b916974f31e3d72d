//! Two people for every act that changes colours or powers: an act is first a [`Proposal`] by
//! one staff member and is done only when a second, eligible one approves it
//! ([`rules::check_approver`](crate::rules::check_approver)), in the approving transaction.

use std::future::Future;

use healthcode_domain::{OfficerId, RiskArea, RiskLevel};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[cfg(doc)]
use crate::StoreError;
use crate::{Role, StoreResult};

/// What an approved proposal does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "act", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Act {
    /// Declares a risk area.
    RiskAreaDeclare {
        /// Region, ISO 3166-1 or 3166-2.
        region: String,
        /// Level.
        level: RiskLevel,
        /// Start.
        #[serde(with = "time::serde::rfc3339")]
        from: OffsetDateTime,
        /// End, if known.
        #[serde(with = "time::serde::rfc3339::option")]
        until: Option<OffsetDateTime>,
    },
    /// Changes the level of a declared risk area.
    RiskAreaLevel {
        /// The area's id.
        area: i64,
        /// The new level.
        level: RiskLevel,
    },
    /// Ends a risk area at the approval: it stays listed, with when it was ended, and no longer
    /// counts for anyone's colour.
    RiskAreaEnd {
        /// The area's id.
        area: i64,
    },
    /// Creates a staff account. Its one-time password is made at approval (the approving request
    /// brings its hash) and sent to `phone`, its owner's: neither admin knows it.
    AccountCreate {
        /// Username.
        username: String,
        /// Role.
        role: Role,
        /// The owner's phone (E.164). `None` only in proposals made before phones were
        /// recorded, which approval refuses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    /// Re-enables a disabled account (which restores its powers): recorded on it as a reset by
    /// the proposer, as [`crate::AccountChange::Enable`] does.
    AccountEnable {
        /// The account.
        officer: i64,
    },
    /// Changes the role of an account.
    RoleGrant {
        /// The account.
        officer: i64,
        /// The new role.
        role: Role,
    },
    /// Applies or dismisses the exposures of a case pending when proposed (more than a single
    /// officer may decide at once); exposures recorded since are left pending.
    ExposureDecisions {
        /// The case.
        case: i64,
        /// Apply (true) or dismiss.
        apply: bool,
        /// How many were pending when proposed; approval decides those still pending.
        count: u64,
        /// The highest id among them: approval decides only exposures up to it.
        upto: i64,
        /// Why.
        note: String,
    },
    /// Publishes a new colour policy version: from the approval on, every colour is computed by
    /// it. The text is the whole policy file, checked when proposed; its SHA-256 is what both
    /// officers signed off.
    PolicyPublish {
        /// The version the file names (unique: a published version is never replaced).
        version: String,
        /// The publication (`seq`) in force when proposed: approval publishes only while it still
        /// is, so an old proposal cannot roll back a newer version.
        replaces: i64,
        /// SHA-256 of `source`, hex.
        sha256: String,
        /// The policy file.
        source: String,
    },
}

impl Act {
    /// The stored kind, listed beside each proposal.
    pub fn kind(&self) -> &'static str {
        match self {
            Act::RiskAreaDeclare { .. } => "risk-area-declare",
            Act::RiskAreaLevel { .. } => "risk-area-level",
            Act::RiskAreaEnd { .. } => "risk-area-end",
            Act::AccountCreate { .. } => "account-create",
            Act::AccountEnable { .. } => "account-enable",
            Act::RoleGrant { .. } => "role-grant",
            Act::ExposureDecisions { .. } => "exposure-decisions",
            Act::PolicyPublish { .. } => "policy-publish",
        }
    }

    /// Who may propose it and approve it: admins for accounts and roles, officers (and admins,
    /// who do everything an officer does) for the rest.
    pub fn role_needed(&self) -> Role {
        match self {
            Act::AccountCreate { .. } | Act::AccountEnable { .. } | Act::RoleGrant { .. } => Role::Admin,
            _ => Role::Officer,
        }
    }

    /// The act as stored (JSON).
    pub fn to_stored(&self) -> String {
        // An enum of strings, numbers and times always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored act back; anything else is [`StoreError::Corrupt`]. An account proposed
    /// before passwords were made at approval carries the hash of a password its proposer was
    /// shown: it is dropped, and approval makes a new one.
    pub fn from_stored(s: &str) -> StoreResult<Act> {
        let corrupt = |e: serde_json::Error| crate::StoreError::Corrupt(format!("proposal act: {e}"));
        let mut v: serde_json::Value = serde_json::from_str(s).map_err(corrupt)?;
        if let Some(o) = v.as_object_mut()
            && o.get("act").and_then(serde_json::Value::as_str) == Some("account-create")
        {
            o.remove("password_hash");
        }
        serde_json::from_value(v).map_err(corrupt)
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalState {
    /// Awaiting a second person (or expired unapproved: see [`Proposal::expired`]).
    Pending,
    /// Approved and done.
    Approved,
    /// Withdrawn by its proposer.
    Withdrawn,
}

impl ProposalState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Withdrawn => "withdrawn",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<ProposalState> {
        [
            ProposalState::Pending,
            ProposalState::Approved,
            ProposalState::Withdrawn,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Id.
    pub id: i64,
    /// What approval does.
    pub act: Act,
    /// Who proposed it.
    pub proposed_by: OfficerId,
    /// When.
    pub proposed_at: OffsetDateTime,
    /// After this, it can no longer be approved.
    pub expires_at: OffsetDateTime,
    /// Where it stands.
    pub state: ProposalState,
    /// Who approved or withdrew it, and when.
    pub decided: Option<(OfficerId, OffsetDateTime)>,
}

impl Proposal {
    /// Pending but past its expiry at `now`: it can no longer be approved.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.state == ProposalState::Pending && now >= self.expires_at
    }
}

/// What an approval needs besides the approver: the rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// An approver's account must be at least this old (an account made for the purpose cannot
    /// approve anything in its first day by default).
    pub approver_min_age: Duration,
}

impl Default for ApprovalPolicy {
    fn default() -> ApprovalPolicy {
        ApprovalPolicy {
            approver_min_age: Duration::hours(24),
        }
    }
}

/// A risk area as listed, with the id proposals name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRiskArea {
    /// Id.
    pub id: i64,
    /// The area.
    pub area: RiskArea,
    /// When it was ended (by an approved proposal); an ended area counts for no colour.
    pub ended_at: Option<OffsetDateTime>,
}

/// What [`ProposalStore::publish_first_policy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPolicy {
    /// The file is now the first version.
    Published,
    /// A version was published before; nothing changed.
    Exists,
    /// The store holds holders but no published version (it predates versions): the file is
    /// published only when the operator names its hash.
    NeedsPin,
}

/// A colour policy version as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    /// The order of publication, 1 for the first.
    pub seq: i64,
    /// The version the file names.
    pub version: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The policy file.
    pub source: String,
    /// When it took effect.
    pub published_at: OffsetDateTime,
    /// The approved proposal that published it, with its proposer and approver; `None` for the
    /// configured policy the store first ran with.
    pub proposal: Option<(i64, OfficerId, OfficerId)>,
}

/// Proposals and their approval.
pub trait ProposalStore: Send + Sync + 'static {
    /// Records a proposal by `by` at `at`, open until `expires_at`.
    fn propose(
        &self,
        act: &Act,
        by: OfficerId,
        at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Proposal>> + Send;
    /// A proposal by id.
    fn proposal(&self, id: i64) -> impl Future<Output = StoreResult<Option<Proposal>>> + Send;
    /// Proposals by id after `after`, at most `limit`; only those pending and unexpired at `now`
    /// when `pending_only`.
    fn proposals(
        &self,
        pending_only: bool,
        now: OffsetDateTime,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Proposal>>> + Send;
    /// Withdraws a pending proposal, by its proposer only ([`StoreError::Refused`] otherwise, or
    /// when it is no longer pending; [`StoreError::NotFound`] for no such proposal).
    fn withdraw_proposal(
        &self,
        id: i64,
        by: OfficerId,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Proposal>> + Send;
    /// Approves a proposal as `by` and does its act, in one transaction: the approver must pass
    /// [`rules::check_approver`](crate::rules::check_approver) against the proposer, and the
    /// proposal be pending and unexpired ([`StoreError::Refused`] otherwise; a refusal of the
    /// act itself, e.g. demoting the last admin, too). `password_hash` is the argon2id hash of
    /// the one-time password an account created by the act gets (made for and shown to the
    /// approver only); an [`Act::AccountCreate`] without one is refused. `audit`, when given,
    /// is appended to the audit log in the same transaction, after the act: an approval is
    /// never done unrecorded, nor recorded undone.
    fn approve_proposal(
        &self,
        id: i64,
        by: OfficerId,
        at: OffsetDateTime,
        policy: ApprovalPolicy,
        password_hash: Option<&str>,
        audit: Option<&crate::AuditEntry>,
    ) -> impl Future<Output = StoreResult<Proposal>> + Send;
    /// Risk areas with their ids, ended ones too, by id.
    fn listed_risk_areas(&self) -> impl Future<Output = StoreResult<Vec<ListedRiskArea>>> + Send;
    /// Every published colour policy version, oldest first; the last is in force.
    fn published_policies(&self) -> impl Future<Output = StoreResult<Vec<PublishedPolicy>>> + Send;
    /// Records a policy file (no proposal) as the first published version when none is yet: on a
    /// store without holders, or when `pinned` (the operator named the file's hash). A store that
    /// has a published policy keeps it.
    fn publish_first_policy(
        &self,
        version: &str,
        sha256: &str,
        source: &str,
        at: OffsetDateTime,
        pinned: bool,
    ) -> impl Future<Output = StoreResult<FirstPolicy>> + Send;
}
