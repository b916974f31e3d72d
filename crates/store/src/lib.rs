//! The storage seam: [`Store`], the traits every backend implements (holders and sessions,
//! check-ins, cases and exposures, staff and devices, audit, staff credentials, health), implemented by
//! `healthcode-store-sqlite` (the embedded default) and `healthcode-store-postgres` (scale-out),
//! both held to the same [`conformance`] suite. Backends read and write rows; the decisions taken
//! in a transaction ([`rules`]), reading rows and stored names back ([`rows`]), sealing personal
//! data ([`crypto`]) and hashing the audit chain ([`audit`]) are done here, once, for both.

pub mod audit;
mod cases;
mod checkins;
pub mod conformance;
pub mod consent;
pub mod credentials;
pub mod crypto;
mod erasure;
mod health;
mod holders;
pub mod proposals;
pub mod rows;
pub mod rules;
mod staff;
pub mod transparency;

pub use audit::{
    AuditEntry, AuditRecord, AuditStore, ChainBreak, HeadMismatch, all_audit_records, audit_ns, verify_audit,
    verify_chain, verify_tree_heads,
};
pub use cases::{
    Activity, Appeal, CaseStore, DEFAULT_RETENTION, ExposureKey, ExposureState, FLAGGED_HOLDERS, Fact,
    NewOverride, PURGES, PurgeReport, Purged, StoredExposure,
};
pub use checkins::{CheckinStore, Recorded};
pub use consent::{
    Consent, ConsentGiven, ConsentRefusal, ConsentScope, LabReport, MAX_CONSENT, NewConsent, PurposeStore,
    ReadCount,
};
pub use credentials::{AccountChange, CredentialStore, SecondFactor, SignInFailures, StaffSession};
pub use crypto::{Crypto, CryptoError, KeyMaterial, identity_key};
pub use erasure::{
    ERASE, INACTIVE_HOLDERS, PURGE_DECIDED_APPEALS, PURGE_TESTS, PersonalPurge, erased_tables,
};
pub use health::HealthStore;
pub use holders::{
    HolderKind, HolderStore, OtpCheck, OtpLimits, PersonalData, Principal, SealedHolder, Session,
};
pub use proposals::{
    Act, ApprovalPolicy, FirstPolicy, ListedRiskArea, Proposal, ProposalState, ProposalStore, PublishedPolicy,
};
pub use staff::{Device, NewVenue, Officer, Role, StaffStore};
pub use transparency::{LogTree, StoredTreeHead};

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
    /// The database cannot be used for now: unreachable, restarting, out of connections, out of
    /// disk, or busy. Retrying later may succeed (an API client gets 503 with Retry-After).
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// A database failure caused by `e`, which stays readable as the error's source.
    pub fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> StoreError {
        StoreError::Backend(e.into())
    }

    /// The database cannot be used for now, because of `e`.
    pub fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> StoreError {
        StoreError::Unavailable(e.into())
    }
}

/// The store traits at once, for code that calls a concrete store's methods
/// (`use healthcode_store::prelude::*;`); code generic over `S: Store` needs none of them.
pub mod prelude {
    pub use crate::{
        AuditStore, CaseStore, CheckinStore, CredentialStore, HealthStore, HolderStore, ProposalStore,
        PurposeStore, StaffStore, Store,
    };
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage of everything the system knows, as one bound: every store implements the six
/// traits, and anything that does is a `Store`. Implementations must be safe to share between
/// tasks; every method is one transaction.
pub trait Store:
    HolderStore
    + CheckinStore
    + CaseStore
    + StaffStore
    + AuditStore
    + CredentialStore
    + HealthStore
    + ProposalStore
    + PurposeStore
{
}

impl<T> Store for T where
    T: HolderStore
        + CheckinStore
        + CaseStore
        + StaffStore
        + AuditStore
        + CredentialStore
        + HealthStore
        + ProposalStore
        + PurposeStore
{
}
