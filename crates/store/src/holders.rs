//! Holders and their sign-in: registration rows (personal data sealed, found by keyed hash),
//! one-time codes and their limits, and sessions.

use std::future::Future;

use healthcode_domain::{HolderId, IdentityDocument, OfficerId};
use time::{Date, OffsetDateTime};

#[cfg(doc)]
use crate::StoreError;
use crate::{Crypto, CryptoError, StoreResult};

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
            // Registration checked the birth date against its own local day; any day up to the
            // latest anywhere is one that some registration could have accepted.
            healthcode_domain::latest_date_anywhere(created_at),
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
    /// No code was sent to this phone under this challenge (or it was used already).
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

/// Holders, their one-time codes and their sessions.
pub trait HolderStore: Send + Sync + 'static {
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
    /// Moves a holder to a new phone in one transaction: the phone hash and the sealed personal
    /// data (sealed anew with the new phone) change together, and every session of the holder
    /// ends. Returns how many sessions ended. [`StoreError::NotFound`] if there is no such
    /// holder, [`StoreError::Conflict`] (and nothing changed) if another holder has the phone.
    fn change_holder_phone(
        &self,
        id: &HolderId,
        phone_hash: &[u8; 32],
        sealed: &[u8],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Stores a new one-time code for a phone with the hash of the challenge its requester was
    /// given, replacing any earlier one (its guesses count anew), unless `limits` refuse: then
    /// `Ok(Err(wait))` says how long until one may be sent, and nothing changes.
    fn issue_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
        limits: &OtpLimits,
    ) -> impl Future<Output = StoreResult<Result<(), time::Duration>>> + Send;
    /// Checks a guess at a phone's one-time code, in one transaction: a guess under another
    /// challenge than the code's is [`OtpCheck::Missing`] and changes nothing (a stranger cannot
    /// use up someone else's code); a wrong guess uses up one attempt, the right one the code.
    fn check_otp(
        &self,
        phone_hash: &[u8; 32],
        challenge_hash: &[u8; 32],
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<OtpCheck>> + Send;
    /// Stores a session under the hash of its token; a holder's session also marks the holder
    /// active at its start (inactive holders are erased by retention).
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
    /// Erases a holder in one transaction ([`crate::ERASE`] and the holder's check-ins): the
    /// sealed personal data, the lookup hashes, sessions, facts, cases, exposures, overrides,
    /// appeals and check-ins. Returns whether there was such a holder. The bytes are unreadable
    /// in the database's files once [`HolderStore::scrub_erased`] has run.
    fn erase_holder(&self, holder: &HolderId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Holders inactive since `before` with nothing holding a colour ([`crate::INACTIVE_HOLDERS`],
    /// and no check-in stored), by id, at most `limit`.
    fn inactive_holders(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<HolderId>>> + Send;
    /// Deletes test results sampled before `tests_before` and appeals decided before
    /// `appeals_before`; returns how many of each.
    fn purge_personal(
        &self,
        tests_before: OffsetDateTime,
        appeals_before: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<(u64, u64)>> + Send;
    /// Makes what erasures and purges deleted unreadable in the database's files: SQLite deletes
    /// with `secure_delete` (freed space is zeroed) and this truncates the write-ahead logs;
    /// PostgreSQL rewrites the holders table and its indexes (`VACUUM FULL`, an exclusive lock
    /// for the rewrite's duration) and vacuums the other tables erasure touches.
    fn scrub_erased(&self) -> impl Future<Output = StoreResult<()>> + Send;
}
