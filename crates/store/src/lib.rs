//! The storage seam: one trait, [`Store`], implemented by `healthcode-store-sqlite` (the embedded
//! default) and `healthcode-store-postgres` (scale-out), both held to the same [`conformance`]
//! suite. Backends store and return rows; sealing personal data ([`crypto`]) and hashing the audit
//! chain ([`audit`]) are done here, once, for both.

use std::future::Future;

use healthcode_domain::{
    AdmissionPolicy, AppealId, CaseId, CheckIn, ConfirmedCase, DailyReport, DeviceId, Exposure,
    HealthDeclaration, HolderFacts, HolderId, IdentityDocument, Issuer, OfficerId, Override, OverrideId,
    RiskArea, TestResult, TravelDeclaration, Venue, VenueCategory, VenueId,
};
use time::{Date, OffsetDateTime};

pub mod audit;
pub mod conformance;
pub mod crypto;
pub mod rules;

pub use audit::{AuditEntry, AuditRecord, ChainBreak, verify_chain};
pub use crypto::{Crypto, CryptoError, KeyMaterial, identity_key};

/// What a storage call can fail with. A database failure is [`StoreError::Backend`] (a 500 to an
/// API client), never "not found" or "bad request".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value exists already (a registered identity or phone, a venue name).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A rule refused the change (e.g. an override approved by its proposer).
    #[error("refused: {0}")]
    Refused(String),
    /// Stored data could not be read back (corrupt, or sealed with a missing key).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database failed; what it said is the error's [`source`](std::error::Error::source).
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// A database failure caused by `e`, which stays readable as the error's source.
    pub fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> StoreError {
        StoreError::Backend(e.into())
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A holder is a resident (ID card) or a visitor (passport: the international version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HolderKind {
    /// Resident.
    Resident,
    /// Foreign visitor.
    Visitor,
}

impl HolderKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Resident => "resident",
            HolderKind::Visitor => "visitor",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<HolderKind> {
        match s {
            "resident" => Some(HolderKind::Resident),
            "visitor" => Some(HolderKind::Visitor),
            _ => None,
        }
    }
}

/// A holder's personal data: only ever stored sealed.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PersonalData {
    /// Full name.
    pub name: String,
    /// Resident ID number, for residents.
    pub resident_id: Option<String>,
    /// Passport number, for visitors.
    pub passport: Option<String>,
    /// Nationality (alpha-3), for visitors.
    pub nationality: Option<String>,
    /// Date of birth.
    pub birth_date: Date,
    /// Phone, E.164.
    pub phone: String,
    /// Arrival flight number and date, for visitors.
    pub arrival: Option<(String, Date)>,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalData(…)")
    }
}

/// A holder row: lookups by keyed hash, personal data sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHolder {
    /// Pseudonymous id (what codes carry).
    pub id: HolderId,
    /// Resident or visitor.
    pub kind: HolderKind,
    /// Keyed hash of the identity document number.
    pub identity_hash: [u8; 32],
    /// Keyed hash of the phone number.
    pub phone_hash: [u8; 32],
    /// The masked name codes show.
    pub name_hint: String,
    /// [`PersonalData`] as JSON, sealed with the record id as associated data.
    pub sealed: Vec<u8>,
    /// Registration time.
    pub created_at: OffsetDateTime,
}

impl Crypto {
    /// Seals a holder's personal data for storage, found by the identity hash of the document
    /// it names ([`Crypto::identity_hash`], the document checked as of `created_at`'s date):
    /// [`CryptoError::NoDocument`] when it names no valid document of the holder's kind.
    pub fn seal_holder(
        &self,
        id: HolderId,
        kind: HolderKind,
        data: &PersonalData,
        name_hint: &str,
        created_at: OffsetDateTime,
    ) -> Result<SealedHolder, CryptoError> {
        let doc = IdentityDocument::parse(
            data.resident_id.as_deref(),
            data.passport.as_deref(),
            data.nationality.as_deref(),
            created_at.date(),
        );
        let identity_hash = match (kind, doc) {
            (HolderKind::Resident, Ok(doc @ IdentityDocument::ResidentId(_)))
            | (HolderKind::Visitor, Ok(doc @ IdentityDocument::Passport { .. })) => self.identity_hash(&doc),
            (kind, doc) => {
                return Err(CryptoError::NoDocument {
                    kind: kind.as_str(),
                    source: doc.err(),
                });
            }
        };
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(data).map_err(|e| CryptoError::Encode(std::sync::Arc::new(e)))?,
        );
        Ok(SealedHolder {
            identity_hash,
            phone_hash: self.keyed_hash("phone", &data.phone),
            sealed: self.seal(id.as_bytes(), &json)?,
            id,
            kind,
            name_hint: name_hint.to_owned(),
            created_at,
        })
    }

    /// Opens a holder's personal data.
    pub fn open_holder(&self, h: &SealedHolder) -> Result<PersonalData, CryptoError> {
        let json = self.open(h.id.as_bytes(), &h.sealed)?;
        serde_json::from_slice(&json).map_err(|_| CryptoError::Tampered)
    }
}

/// A venue to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVenue {
    /// Name.
    pub name: String,
    /// Category.
    pub category: VenueCategory,
    /// Region.
    pub region: Issuer,
    /// Who may enter.
    pub admission: AdmissionPolicy,
}

/// A scanner device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Id.
    pub id: DeviceId,
    /// The venue it belongs to.
    pub venue: VenueId,
    /// A label ("north gate").
    pub label: String,
    /// SHA-256 of its key (the key itself is shown once and never stored).
    pub key_hash: [u8; 32],
}

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

/// How one-time codes are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpLimits {
    /// How long a code is valid (5 minutes).
    pub validity: time::Duration,
    /// Wrong guesses allowed before the code is void (5).
    pub attempts: u8,
    /// Least time between two codes to one phone (60 seconds).
    pub min_interval: time::Duration,
    /// Most codes to one phone in any window of `window` (5).
    pub per_window: u32,
    /// The window for `per_window` (1 hour).
    pub window: time::Duration,
}

impl Default for OtpLimits {
    fn default() -> OtpLimits {
        OtpLimits {
            validity: time::Duration::minutes(5),
            attempts: 5,
            min_interval: time::Duration::seconds(60),
            per_window: 5,
            window: time::Duration::hours(1),
        }
    }
}

/// What checking a one-time code found. Only [`OtpCheck::Accepted`] lets the caller go on; the
/// code is used up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    /// Right code, now used up.
    Accepted,
    /// Wrong code; this many guesses remain.
    Wrong {
        /// Guesses left.
        attempts_left: u8,
    },
    /// No guesses remain: a new code must be requested.
    Exhausted,
    /// The code has expired.
    Expired,
    /// No code was sent to this phone (or it was used already).
    Missing,
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A holder.
    Holder(HolderId),
    /// An officer.
    Officer(OfficerId),
}

/// A login session; its token is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose.
    pub principal: Principal,
    /// When made.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What an officer account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Records cases and tests, proposes and approves overrides, reviews appeals.
    Officer,
    /// Manages venues, devices, risk areas and accounts; everything an officer does.
    Admin,
    /// Reads and verifies the audit log; nothing else.
    Auditor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "officer" => Some(Role::Officer),
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// An officer account.
#[derive(Clone, PartialEq, Eq)]
pub struct Officer {
    /// Id.
    pub id: OfficerId,
    /// Login name, unique.
    pub username: String,
    /// Role.
    pub role: Role,
    /// argon2id hash in PHC string form.
    pub password_hash: String,
    /// The password was issued by someone else and must be changed at the next login.
    pub must_change_password: bool,
    /// When created.
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for Officer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Officer")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
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

/// The storage of everything the system knows. Implementations must be safe to share between
/// tasks; every method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Registers a holder; [`StoreError::Conflict`] if the identity or phone hash is taken.
    fn insert_holder(&self, h: &SealedHolder) -> impl Future<Output = StoreResult<()>> + Send;
    /// Registers many holders in one transaction, all or none: [`StoreError::Conflict`], and
    /// nothing stored, if any identity or phone hash (or id) is taken, in the store or twice in the
    /// batch. Returns how many were stored. Made for loading a city at once.
    fn insert_holders(&self, batch: &[SealedHolder]) -> impl Future<Output = StoreResult<u64>> + Send;
    /// A holder by id.
    fn holder(&self, id: &HolderId) -> impl Future<Output = StoreResult<Option<SealedHolder>>> + Send;
    /// A holder by phone hash.
    fn holder_by_phone(
        &self,
        phone_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<SealedHolder>>> + Send;
    /// A holder by identity-document hash.
    fn holder_by_identity(
        &self,
        identity_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<SealedHolder>>> + Send;

    /// Creates a venue.
    fn insert_venue(&self, v: &NewVenue) -> impl Future<Output = StoreResult<Venue>> + Send;
    /// Creates many venues in one transaction; returns them with their ids, in input order.
    fn insert_venues(&self, batch: &[NewVenue]) -> impl Future<Output = StoreResult<Vec<Venue>>> + Send;
    /// A venue by id.
    fn venue(&self, id: VenueId) -> impl Future<Output = StoreResult<Option<Venue>>> + Send;
    /// All venues.
    fn venues(&self) -> impl Future<Output = StoreResult<Vec<Venue>>> + Send;
    /// Registers a device for a venue.
    fn insert_device(
        &self,
        venue: VenueId,
        label: &str,
        key_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Device>> + Send;
    /// A device by the hash of its key.
    fn device_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<Device>>> + Send;

    /// Lists the devices of a venue, or all devices.
    fn devices(&self, venue: Option<VenueId>) -> impl Future<Output = StoreResult<Vec<Device>>> + Send;

    /// Stores a new one-time code for a phone, replacing any earlier one (its guesses count anew),
    /// unless `limits` refuse: then `Ok(Err(wait))` says how long until one may be sent, and
    /// nothing changes.
    fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> impl Future<Output = StoreResult<Result<(), time::Duration>>> + Send;
    /// Checks a guess at a phone's one-time code, in one transaction: a wrong guess uses up one
    /// attempt, the right one uses up the code.
    fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<OtpCheck>> + Send;

    /// Stores a session under the hash of its token.
    fn insert_session(
        &self,
        token_hash: &[u8; 32],
        session: &Session,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// A session by the hash of its token, expired or not (the caller checks).
    fn session(&self, token_hash: &[u8; 32]) -> impl Future<Output = StoreResult<Option<Session>>> + Send;
    /// Ends a session; false if there was none.
    fn revoke_session(&self, token_hash: &[u8; 32]) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Ends every session of a principal; returns how many.
    fn revoke_sessions_of(&self, principal: &Principal) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Creates an officer account; [`StoreError::Conflict`] if the username is taken.
    fn insert_officer(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        must_change_password: bool,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Officer>> + Send;
    /// An officer by id.
    fn officer(&self, id: OfficerId) -> impl Future<Output = StoreResult<Option<Officer>>> + Send;
    /// An officer by username.
    fn officer_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = StoreResult<Option<Officer>>> + Send;
    /// All officers, by id.
    fn officers(&self) -> impl Future<Output = StoreResult<Vec<Officer>>> + Send;
    /// Replaces an officer's password hash.
    fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Confirmed cases confirmed at or after `since`, by confirmation time, with whose they are.
    fn cases(
        &self,
        since: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<(HolderId, ConfirmedCase)>>> + Send;
    /// A manual change and whose colour it sets.
    fn override_by_id(
        &self,
        id: OverrideId,
    ) -> impl Future<Output = StoreResult<Option<(HolderId, Override)>>> + Send;
    /// Manual changes, only those awaiting approval when `pending_only`, by id.
    fn overrides(
        &self,
        pending_only: bool,
    ) -> impl Future<Output = StoreResult<Vec<(HolderId, Override)>>> + Send;
    /// Appeals, only those not yet decided when `open_only`, by id.
    fn appeals(&self, open_only: bool) -> impl Future<Output = StoreResult<Vec<Appeal>>> + Send;
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

    /// Records check-ins durably; a check-in whose `(device, seq)` is already stored is stored and
    /// read once. Returns how many were new, except that PostgreSQL counts a scan re-sent within its
    /// still-open hour again (its duplicates are removed when the hour closes).
    fn insert_checkins(&self, batch: &[CheckIn]) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Stores check-ins of any period in bulk, as loading a synthetic city or a restore does:
    /// what [`Store::insert_checkins`] does, except that a backend may keep them unindexed until
    /// [`Store::flush_checkins`] (PostgreSQL copies them into unindexed hour partitions, also
    /// past ones, and indexes each when it closes). Returns how many were taken.
    fn load_checkins(&self, batch: &[CheckIn]) -> impl Future<Output = StoreResult<u64>> + Send {
        self.insert_checkins(batch)
    }
    /// Moves every acknowledged check-in into its indexed place now (SQLite: the inbox merge;
    /// PostgreSQL: closing every open hour), as after a bulk load. Returns how many moved.
    fn flush_checkins(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Check-ins at a venue with `from <= at < to`, by time.
    fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<CheckIn>>> + Send;
    /// A holder's check-ins with `from <= at < to`, by time.
    fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<CheckIn>>> + Send;

    /// Every check-in with `from <= at < to`, each `(device, seq)` once, handed to `each` in
    /// batches as it is read (batches in no promised order): one pass over a period, for loading
    /// it whole (the tracing index). Returns how many were handed over.
    fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Records a declaration, report or test result.
    fn add_fact(&self, holder: &HolderId, fact: &Fact) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records a confirmed case.
    fn add_case(
        &self,
        holder: &HolderId,
        onset: OffsetDateTime,
        confirmed_at: OffsetDateTime,
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
    /// Records exposures in `state`; one already stored (same holder, case, venue and contact
    /// start) is skipped and keeps its state. Returns how many were new.
    fn add_exposures_as(
        &self,
        exposures: &[(HolderId, Exposure)],
        state: ExposureState,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Records exposures as applied: [`Store::add_exposures_as`] with [`ExposureState::Applied`].
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
    /// All risk areas.
    fn risk_areas(&self) -> impl Future<Output = StoreResult<Vec<RiskArea>>> + Send;
    /// Counts for the officers' dashboard since `since`; at most `flagged_limit` flagged holders.
    fn activity(
        &self,
        since: OffsetDateTime,
        flagged_limit: u32,
    ) -> impl Future<Output = StoreResult<Activity>> + Send;
    /// Everything the colour rules read about a holder; of the exposures, only applied ones.
    fn holder_facts(&self, holder: &HolderId) -> impl Future<Output = StoreResult<HolderFacts>> + Send;

    /// Records a proposed manual change.
    fn propose_override(&self, o: &NewOverride) -> impl Future<Output = StoreResult<Override>> + Send;
    /// Approves a change as a second officer, in one transaction with the check that the approver
    /// is not the proposer ([`StoreError::Refused`] otherwise).
    fn approve_override(
        &self,
        id: OverrideId,
        officer: OfficerId,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Override>> + Send;

    /// Files an appeal.
    fn add_appeal(
        &self,
        holder: &HolderId,
        text: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Appeal>> + Send;
    /// A holder's appeals.
    fn appeals_of(&self, holder: &HolderId) -> impl Future<Output = StoreResult<Vec<Appeal>>> + Send;

    /// Deletes check-ins, declarations, reports and exposures (whatever their state) from before
    /// `before`; also drops sessions and one-time codes that had expired by then (not counted).
    /// Officers are kept.
    fn purge(&self, before: OffsetDateTime) -> impl Future<Output = StoreResult<PurgeReport>> + Send;

    /// Appends to the audit log, chaining the entry to the last one.
    fn append_audit(&self, entry: &AuditEntry) -> impl Future<Output = StoreResult<AuditRecord>> + Send;
    /// Audit records with `seq > after`, in order, at most `limit`.
    fn audit_records(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
    /// Audit records whose subject is this holder, in order.
    fn audit_of_subject(
        &self,
        holder: &HolderId,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
}

/// Walks the whole audit chain of a store, page by page.
pub async fn verify_audit<S: Store>(store: &S) -> Result<Result<u64, ChainBreak>, StoreError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    Ok(verify_chain(all))
}
