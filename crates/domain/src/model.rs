//! The things the system records, and the facts the colour rules read.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

pub use healthcode_token::{ClaimError, Colour, HolderId, Issuer};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A venue.
    VenueId
);
id_type!(
    /// A scanner device, bound to one venue.
    DeviceId
);
id_type!(
    /// A confirmed case.
    CaseId
);
id_type!(
    /// An officer's account.
    OfficerId
);
id_type!(
    /// A manual colour change.
    OverrideId
);
id_type!(
    /// An appeal.
    AppealId
);

/// The kind of a venue; tracing grades contacts and estimates stays by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VenueCategory {
    /// Shopping mall.
    Mall,
    /// Hospital.
    Hospital,
    /// Clinic.
    Clinic,
    /// Station, bus, metro.
    Transport,
    /// Office.
    Office,
    /// School.
    School,
    /// Market.
    Market,
    /// Restaurant.
    Restaurant,
    /// Anything else.
    Other,
}

impl VenueCategory {
    /// Every category.
    pub const ALL: [VenueCategory; 9] = [
        VenueCategory::Mall,
        VenueCategory::Hospital,
        VenueCategory::Clinic,
        VenueCategory::Transport,
        VenueCategory::Office,
        VenueCategory::School,
        VenueCategory::Market,
        VenueCategory::Restaurant,
        VenueCategory::Other,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            VenueCategory::Mall => "mall",
            VenueCategory::Hospital => "hospital",
            VenueCategory::Clinic => "clinic",
            VenueCategory::Transport => "transport",
            VenueCategory::Office => "office",
            VenueCategory::School => "school",
            VenueCategory::Market => "market",
            VenueCategory::Restaurant => "restaurant",
            VenueCategory::Other => "other",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<VenueCategory> {
        VenueCategory::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which colours a venue lets in. A hospital admits every colour (a red holder may need care) and
/// records the visit; a mall admits green only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdmissionPolicy {
    /// Green only.
    GreenOnly,
    /// Green and yellow.
    GreenOrYellow,
    /// Every colour, recorded.
    All,
}

impl AdmissionPolicy {
    /// Whether a holder of `colour` may enter.
    pub fn admits(self, colour: Colour) -> bool {
        match self {
            AdmissionPolicy::GreenOnly => colour == Colour::Green,
            AdmissionPolicy::GreenOrYellow => colour != Colour::Red,
            AdmissionPolicy::All => true,
        }
    }

    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionPolicy::GreenOnly => "green-only",
            AdmissionPolicy::GreenOrYellow => "green-or-yellow",
            AdmissionPolicy::All => "all",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<AdmissionPolicy> {
        [
            AdmissionPolicy::GreenOnly,
            AdmissionPolicy::GreenOrYellow,
            AdmissionPolicy::All,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    /// Id.
    pub id: VenueId,
    /// Name shown on its poster.
    pub name: String,
    /// Category.
    pub category: VenueCategory,
    /// Region (ISO 3166-2).
    pub region: Issuer,
    /// Who may enter.
    pub admission: AdmissionPolicy,
}

/// One scan at a venue's door. `(device, seq)` identifies it, so an upload repeated after a lost
/// answer records it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    /// Who.
    pub holder: HolderId,
    /// Where.
    pub venue: VenueId,
    /// Which scanner.
    pub device: DeviceId,
    /// The scanner's own sequence number for the scan.
    pub seq: i64,
    /// When (the scanner's time, also for scans uploaded later).
    pub at: OffsetDateTime,
    /// When the holder left, if a scanner saw it.
    pub out: Option<OffsetDateTime>,
}

/// A symptom a holder may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symptom {
    /// Fever.
    Fever,
    /// Cough.
    Cough,
    /// Sore throat.
    SoreThroat,
    /// Loss of smell or taste.
    LossOfSmell,
    /// Difficulty breathing.
    ShortnessOfBreath,
    /// Tiredness.
    Fatigue,
}

/// A health declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthDeclaration {
    /// When.
    pub at: OffsetDateTime,
    /// Declared symptoms (may be empty).
    pub symptoms: Vec<Symptom>,
    /// Body temperature in °C, if measured.
    pub temperature_c: Option<f32>,
}

/// A travel declaration: the holder was in `region` between two dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TravelDeclaration {
    /// When declared.
    pub at: OffsetDateTime,
    /// Region visited (ISO 3166-2).
    pub region: Issuer,
    /// First day there.
    pub from: Date,
    /// Last day there.
    pub until: Date,
}

/// A daily health report ("I am well today"), as in Hangzhou's consecutive-reports rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyReport {
    /// When.
    pub at: OffsetDateTime,
    /// Whether the holder reported being well.
    pub well: bool,
}

/// A laboratory result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Positive or not.
    pub positive: bool,
    /// When the sample was taken.
    pub sampled_at: OffsetDateTime,
    /// The laboratory.
    pub lab: String,
}

/// A confirmed case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedCase {
    /// Id.
    pub id: CaseId,
    /// Onset of symptoms, or sample time when there were none.
    pub onset: OffsetDateTime,
    /// When an officer confirmed it.
    pub confirmed_at: OffsetDateTime,
}

/// Risk level of an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl RiskLevel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<RiskLevel> {
        [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// A region declared at risk for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskArea {
    /// Region.
    pub region: Issuer,
    /// Level.
    pub level: RiskLevel,
    /// Start.
    pub from: OffsetDateTime,
    /// End, if known.
    pub until: Option<OffsetDateTime>,
}

/// How close a contact was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureGrade {
    /// At the same place at an overlapping time.
    SamePlace,
    /// Long enough in a close setting.
    Close,
}

impl ExposureGrade {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureGrade::SamePlace => "same-place",
            ExposureGrade::Close => "close",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ExposureGrade> {
        [ExposureGrade::SamePlace, ExposureGrade::Close]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

/// A holder's presence overlapping a case's at a venue, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// The case.
    pub case: CaseId,
    /// Where.
    pub venue: VenueId,
    /// The case's presence.
    pub case_interval: (OffsetDateTime, OffsetDateTime),
    /// The holder's presence.
    pub contact_interval: (OffsetDateTime, OffsetDateTime),
    /// Minutes of overlap.
    pub overlap_minutes: i64,
    /// Grade.
    pub grade: ExposureGrade,
}

impl Exposure {
    /// When the exposure ended: the end of the overlap.
    pub fn ended_at(&self) -> OffsetDateTime {
        self.case_interval.1.min(self.contact_interval.1)
    }
}

/// A manual colour change: proposed by one officer, in force only once a different officer
/// approves it, and only until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Id.
    pub id: OverrideId,
    /// The colour it sets.
    pub colour: Colour,
    /// Why (shown to the holder).
    pub reason: String,
    /// Who proposed it.
    pub proposed_by: OfficerId,
    /// When.
    pub proposed_at: OffsetDateTime,
    /// The second officer, once approved.
    pub approval: Option<(OfficerId, OffsetDateTime)>,
    /// When it stops counting.
    pub expires_at: OffsetDateTime,
}

/// Why an approval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// The proposer tried to approve their own change.
    #[error("an override must be approved by a different officer than the one who proposed it")]
    SameOfficer,
    /// Already approved.
    #[error("this override is already approved")]
    AlreadyApproved,
    /// Expired before approval.
    #[error("this override expired before it was approved")]
    Expired,
}

impl Override {
    /// Approves the change as `officer` at `at`: refused for the proposer, twice, or after expiry.
    pub fn approve(&mut self, officer: OfficerId, at: OffsetDateTime) -> Result<(), ApprovalError> {
        if officer == self.proposed_by {
            return Err(ApprovalError::SameOfficer);
        }
        if self.approval.is_some() {
            return Err(ApprovalError::AlreadyApproved);
        }
        if at >= self.expires_at {
            return Err(ApprovalError::Expired);
        }
        self.approval = Some((officer, at));
        Ok(())
    }

    /// Whether it sets the colour at `now`: approved by a second officer, not expired.
    pub fn in_force(&self, now: OffsetDateTime) -> bool {
        matches!(self.approval, Some((by, at)) if by != self.proposed_by && at <= now)
            && now < self.expires_at
    }
}

/// Everything the colour rules read about one holder.
#[derive(Debug, Clone, Default)]
pub struct HolderFacts {
    /// Cases confirmed for the holder.
    pub cases: Vec<ConfirmedCase>,
    /// Laboratory results.
    pub tests: Vec<TestResult>,
    /// Contacts found by tracing and applied.
    pub exposures: Vec<Exposure>,
    /// Travel declarations.
    pub travels: Vec<TravelDeclaration>,
    /// Health declarations.
    pub declarations: Vec<HealthDeclaration>,
    /// Daily reports.
    pub reports: Vec<DailyReport>,
    /// Manual changes.
    pub overrides: Vec<Override>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_refused() {
        for l in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High] {
            assert_eq!(RiskLevel::parse(l.as_str()), Some(l));
        }
        for g in [ExposureGrade::SamePlace, ExposureGrade::Close] {
            assert_eq!(ExposureGrade::parse(g.as_str()), Some(g));
        }
        for c in VenueCategory::ALL {
            assert_eq!(VenueCategory::parse(c.as_str()), Some(c));
        }
        assert_eq!(RiskLevel::parse("severe"), None);
        assert_eq!(ExposureGrade::parse("far"), None);
    }
}
