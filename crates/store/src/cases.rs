//! What the colour rules read and officers decide: facts and cases, exposures and their review,
//! risk areas, manual overrides, appeals, the dashboard's counts, and retention.

use std::future::Future;

use healthcode_domain::{
    AppealId, CaseId, ConfirmedCase, DailyReport, Exposure, HealthDeclaration, HolderFacts, HolderId,
    OfficerId, Override, OverrideId, RiskArea, TestResult, TravelDeclaration, VenueId,
};
use time::OffsetDateTime;

#[cfg(doc)]
use crate::StoreError;
use crate::StoreResult;

/// A fact about a holder, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Health declaration.
    Health(HealthDeclaration),
    /// Travel declaration.
    Travel(TravelDeclaration),
    /// Daily report.
    Report(DailyReport),
    /// Laboratory result.
    Test(TestResult),
}

/// A manual change as proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOverride {
    /// Whose colour.
    pub holder: HolderId,
    /// The colour it sets.
    pub colour: healthcode_domain::Colour,
    /// Why.
    pub reason: String,
    /// Proposer.
    pub proposed_by: OfficerId,
    /// When.
    pub proposed_at: OffsetDateTime,
    /// End.
    pub expires_at: OffsetDateTime,
}

impl NewOverride {
    /// The change as stored under `id`, awaiting approval.
    pub fn stored(&self, id: OverrideId) -> Override {
        Override {
            id,
            colour: self.colour,
            reason: self.reason.clone(),
            proposed_by: self.proposed_by,
            proposed_at: self.proposed_at,
            approval: None,
            expires_at: self.expires_at,
        }
    }
}

/// An appeal by a holder against their colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appeal {
    /// Id.
    pub id: AppealId,
    /// Whose.
    pub holder: HolderId,
    /// The holder's text.
    pub text: String,
    /// When filed.
    pub filed_at: OffsetDateTime,
    /// Decision, once reviewed: (officer, upheld?, note, when).
    pub decision: Option<(OfficerId, bool, String, OffsetDateTime)>,
}

impl Appeal {
    /// An appeal as filed under `id`, not yet decided.
    pub fn filed(id: AppealId, holder: &HolderId, text: &str, at: OffsetDateTime) -> Appeal {
        Appeal {
            id,
            holder: holder.clone(),
            text: text.to_owned(),
            filed_at: at,
            decision: None,
        }
    }
}

/// Whether an exposure counts for the colour rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExposureState {
    /// Counts.
    Applied,
    /// Waits for an officer.
    Pending,
    /// An officer set it aside.
    Dismissed,
}

impl ExposureState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureState::Applied => "applied",
            ExposureState::Pending => "pending",
            ExposureState::Dismissed => "dismissed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<ExposureState> {
        match s {
            "applied" => Some(ExposureState::Applied),
            "pending" => Some(ExposureState::Pending),
            "dismissed" => Some(ExposureState::Dismissed),
            _ => None,
        }
    }
}

/// Names one stored exposure: the exposures table's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureKey {
    /// Who was exposed.
    pub holder: HolderId,
    /// To which case.
    pub case: CaseId,
    /// Where.
    pub venue: VenueId,
    /// When the holder's presence began.
    pub contact_start: OffsetDateTime,
}

/// An exposure as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExposure {
    /// Who was exposed.
    pub holder: HolderId,
    /// The exposure.
    pub exposure: Exposure,
    /// Whether it counts for the colour rules.
    pub state: ExposureState,
}

impl StoredExposure {
    /// The key that names it.
    pub fn key(&self) -> ExposureKey {
        ExposureKey {
            holder: self.holder.clone(),
            case: self.exposure.case,
            venue: self.exposure.venue,
            contact_start: self.exposure.contact_interval.0,
        }
    }
}

/// How long check-ins, declarations, reports and exposures are kept unless configured otherwise:
/// 28 days, two incubation periods.
pub const DEFAULT_RETENTION: time::Duration = time::Duration::days(28);

/// What a retention purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Check-ins.
    pub checkins: u64,
    /// Health and travel declarations.
    pub declarations: u64,
    /// Daily reports.
    pub reports: u64,
    /// Exposures.
    pub exposures: u64,
}

impl PurgeReport {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.checkins + self.declarations + self.reports + self.exposures
    }
}

/// Which part of a [`PurgeReport`] a retention statement counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purged {
    /// Health and travel declarations.
    Declarations,
    /// Daily reports.
    Reports,
    /// Exposures.
    Exposures,
    /// Sessions and one-time codes that had expired: housekeeping, not counted.
    Expired,
}

impl PurgeReport {
    /// Counts `n` rows deleted as `what`.
    pub fn count(&mut self, what: Purged, n: u64) {
        match what {
            Purged::Declarations => self.declarations += n,
            Purged::Reports => self.reports += n,
            Purged::Exposures => self.exposures += n,
            Purged::Expired => {}
        }
    }
}

/// What a purge deletes besides check-ins (which each backend keeps its own way), as statements
/// both backends run as written: `$1` is the cut-off.
pub const PURGES: [(&str, Purged); 6] = [
    (
        "DELETE FROM health_declarations WHERE at < $1",
        Purged::Declarations,
    ),
    (
        "DELETE FROM travel_declarations WHERE at < $1",
        Purged::Declarations,
    ),
    ("DELETE FROM daily_reports WHERE at < $1", Purged::Reports),
    ("DELETE FROM exposures WHERE contact_end < $1", Purged::Exposures),
    ("DELETE FROM sessions WHERE expires_at < $1", Purged::Expired),
    (
        "DELETE FROM one_time_codes WHERE expires_at < $1",
        Purged::Expired,
    ),
];

/// The holders [`Activity::flagged`] lists, as a statement both backends run as written: every
/// holder with a fact that can make a colour other than green, by id, at most `$1`.
pub const FLAGGED_HOLDERS: &str = "SELECT holder FROM test_results WHERE positive
     UNION SELECT holder FROM cases
     UNION SELECT holder FROM exposures WHERE state = 'applied'
     UNION SELECT holder FROM travel_declarations
     UNION SELECT holder FROM health_declarations
     UNION SELECT holder FROM overrides WHERE approved_by IS NOT NULL
     ORDER BY 1 LIMIT $1";

/// What the officers' dashboard shows, counted by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Holders registered.
    pub holders: u64,
    /// Check-ins by the hour they began (hours without any are left out), oldest first.
    pub checkins_per_hour: Vec<(OffsetDateTime, u64)>,
    /// Exposures (in any review state) by the hour the contact arrived, oldest first.
    pub exposures_per_hour: Vec<(OffsetDateTime, u64)>,
    /// Holders with a fact that can make a colour other than green (a positive test, a case, an
    /// applied exposure, a declaration, an approved override), whatever its age; the colour
    /// rules decide what each means now. Every other holder is green.
    pub flagged: Vec<HolderId>,
}

/// Facts, cases and exposures, risk areas, overrides and appeals, the dashboard's counts, and
/// retention.
pub trait CaseStore: Send + Sync + 'static {
    /// Records a declaration, report or test result.
    fn add_fact(&self, holder: &HolderId, fact: &Fact) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records a confirmed case, by nobody in particular (tracing's tests, the command line, the
    /// demo): [`CaseStore::add_case_by`] with no recorder.
    fn add_case(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<ConfirmedCase>> + Send {
        self.add_case_by(holder, onset, confirmed_at, None)
    }
    /// Records a confirmed case, and the staff member who recorded it (a case opens no personal
    /// data to them: [`crate::PurposeStore::case_recorded_by`]).
    fn add_case_by(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
        recorded_by: Option<OfficerId>,
    ) -> impl Future<Output = StoreResult<ConfirmedCase>> + Send;
    /// A case and whose it is.
    fn case(&self, id: CaseId)
    -> impl Future<Output = StoreResult<Option<(HolderId, ConfirmedCase)>>> + Send;
    /// Many cases and whose they are, in the order of `ids` (`None` for no such case). The
    /// default reads them one by one; a backend with a round trip a query reads them at once.
    fn cases_by_id(
        &self,
        ids: &[CaseId],
    ) -> impl Future<Output = StoreResult<Vec<Option<(HolderId, ConfirmedCase)>>>> + Send {
        async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(self.case(*id).await?);
            }
            Ok(out)
        }
    }
    /// Confirmed cases confirmed at or after `since`, by confirmation time, with whose they are.
    fn cases(
        &self,
        since: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<(HolderId, ConfirmedCase)>>> + Send;
    /// Everything the colour rules read about a holder; of the exposures, only applied ones.
    fn holder_facts(&self, holder: &HolderId) -> impl Future<Output = StoreResult<HolderFacts>> + Send;
    /// Records exposures in `state`; one already stored (same holder, case, venue and contact
    /// start) is skipped and keeps its state. Returns how many were new.
    fn add_exposures_as(
        &self,
        exposures: &[(HolderId, Exposure)],
        state: ExposureState,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Records exposures as applied: [`CaseStore::add_exposures_as`] with [`ExposureState::Applied`].
    fn add_exposures(
        &self,
        exposures: &[(HolderId, Exposure)],
    ) -> impl Future<Output = StoreResult<u64>> + Send {
        self.add_exposures_as(exposures, ExposureState::Applied)
    }
    /// The exposures to a case, whatever their state, by holder (bytes), venue and contact start.
    fn exposures_of_case(
        &self,
        case: CaseId,
    ) -> impl Future<Output = StoreResult<Vec<StoredExposure>>> + Send;
    /// How many of a case's exposures wait for review, and the highest id among them (0 when
    /// none): what a bulk decision proposed now covers ([`crate::Act::ExposureDecisions`]).
    fn pending_exposure_mark(&self, case: CaseId) -> impl Future<Output = StoreResult<(u64, i64)>> + Send;
    /// Exposures waiting for review, by case, holder, venue and contact start, at most `limit`.
    fn pending_exposures(&self, limit: u32) -> impl Future<Output = StoreResult<Vec<StoredExposure>>> + Send;
    /// Records the review of a pending exposure, in one transaction, and returns it in its new
    /// state: [`StoreError::Refused`] when `state` is [`ExposureState::Pending`] (checked first) or
    /// the exposure is not pending (it was decided already), [`StoreError::NotFound`] for no such
    /// exposure.
    fn set_exposure_state(
        &self,
        key: &ExposureKey,
        state: ExposureState,
    ) -> impl Future<Output = StoreResult<StoredExposure>> + Send;
    /// Declares a risk area.
    fn add_risk_area(&self, area: &RiskArea) -> impl Future<Output = StoreResult<()>> + Send;
    /// The risk areas that count for colours: all but those ended.
    fn risk_areas(&self) -> impl Future<Output = StoreResult<Vec<RiskArea>>> + Send;
    /// Records a proposed manual change.
    fn propose_override(&self, o: &NewOverride) -> impl Future<Output = StoreResult<Override>> + Send;
    /// Approves a change as a second officer, in one transaction with the approval rule
    /// ([`rules::check_approver`](crate::rules::check_approver): not the proposer, not an account
    /// the proposer made, old enough, an enabled officer or admin; [`StoreError::Refused`]
    /// otherwise). `audit`, when given, is appended to the audit log in the same transaction.
    fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
        policy: crate::ApprovalPolicy,
        audit: Option<&crate::AuditEntry>,
    ) -> impl Future<Output = StoreResult<Override>> + Send;
    /// A manual change and whose colour it sets.
    fn override_by_id(
        &self,
        id: OverrideId,
    ) -> impl Future<Output = StoreResult<Option<(HolderId, Override)>>> + Send;
    /// Manual changes, only those awaiting approval when `pending_only`, by id: at most `limit`
    /// of those with an id above `after` (a page; the next starts after the last id).
    fn overrides(
        &self,
        pending_only: bool,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(HolderId, Override)>>> + Send;
    /// Files an appeal, unless the holder has `max_open` undecided appeals already
    /// ([`StoreError::Refused`], decided in the same transaction as the insert, so concurrent
    /// filings cannot pass the cap together).
    fn add_appeal(
        &self,
        holder: &HolderId,
        text: &str,
        at: OffsetDateTime,
        max_open: u32,
    ) -> impl Future<Output = StoreResult<Appeal>> + Send;
    /// A holder's appeals.
    fn appeals_of(&self, holder: &HolderId) -> impl Future<Output = StoreResult<Vec<Appeal>>> + Send;
    /// Appeals, only those not yet decided when `open_only`, by id: at most `limit` of those with
    /// an id above `after` (a page; the next starts after the last id).
    fn appeals(
        &self,
        open_only: bool,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Appeal>>> + Send;
    /// Records the decision on an appeal: [`StoreError::NotFound`] for no such appeal,
    /// [`StoreError::Refused`] when it was decided already.
    fn decide_appeal(
        &self,
        id: AppealId,
        officer: OfficerId,
        upheld: bool,
        note: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Appeal>> + Send;
    /// Counts for the officers' dashboard since `since`; at most `flagged_limit` flagged holders.
    fn activity(
        &self,
        since: OffsetDateTime,
        flagged_limit: u32,
    ) -> impl Future<Output = StoreResult<Activity>> + Send;
    /// Deletes check-ins, declarations, reports and exposures (whatever their state) from before
    /// `before`; also drops sessions and one-time codes that had expired by then (not counted).
    /// Officers are kept.
    fn purge(&self, before: OffsetDateTime) -> impl Future<Output = StoreResult<PurgeReport>> + Send;
    /// How many holders declared travel to `region` with a stay ending on or after `since`: the
    /// holders a risk area declared there can turn yellow or red (the auditors' alerts count them).
    fn travellers_to(&self, region: &str, since: time::Date)
    -> impl Future<Output = StoreResult<u64>> + Send;
}
