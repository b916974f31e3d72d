//! Staff and their equipment: venues, scanner devices and officer accounts.

use std::future::Future;

use healthcode_domain::{AdmissionPolicy, DeviceId, Issuer, OfficerId, Venue, VenueCategory, VenueId};
use time::OffsetDateTime;

#[cfg(doc)]
use crate::StoreError;
use crate::StoreResult;

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

impl NewVenue {
    /// The venue as stored under `id`.
    pub fn stored(&self, id: VenueId) -> Venue {
        Venue {
            id,
            name: self.name.clone(),
            category: self.category,
            region: self.region.clone(),
            admission: self.admission,
        }
    }
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
    /// When an admin revoked its key; a revoked key is refused.
    pub revoked_at: Option<OffsetDateTime>,
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
    /// When an admin disabled the account; a disabled account cannot sign in.
    pub disabled_at: Option<OffsetDateTime>,
    /// Whether a second factor (TOTP) is enrolled.
    pub second_factor: bool,
    /// The admin who proposed the account (`None`: made on the command line, the bootstrap path).
    pub created_by: Option<OfficerId>,
    /// The second admin who approved it.
    pub creation_approved_by: Option<OfficerId>,
    /// The admin who last reset its password or second factor, or re-enabled it (and so knew,
    /// or could have set, its credentials); `None` when nobody has.
    pub credentials_reset_by: Option<OfficerId>,
    /// When that was.
    pub credentials_reset_at: Option<OffsetDateTime>,
    /// The owner's phone (E.164), where one-time passwords are sent: recorded with the proposal
    /// that made the account, or by the owner (proven with a one-time code). `None` for accounts
    /// made before phones were recorded, until their owner adds one.
    pub phone: Option<String>,
    /// When the owner proved `phone` with a one-time code (or the server's operator recorded
    /// it); `None` while it is only what the proposing admin typed.
    pub phone_proven_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Officer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Officer")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled_at", &self.disabled_at)
            .field("second_factor", &self.second_factor)
            .field("created_by", &self.created_by)
            .field("creation_approved_by", &self.creation_approved_by)
            .field("credentials_reset_by", &self.credentials_reset_by)
            .field("credentials_reset_at", &self.credentials_reset_at)
            .field("phone", &self.phone.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// Venues, their scanner devices, and officer accounts.
pub trait StaffStore: Send + Sync + 'static {
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
    /// Lists the devices of a venue, or all devices, revoked ones included.
    fn devices(&self, venue: Option<VenueId>) -> impl Future<Output = StoreResult<Vec<Device>>> + Send;
    /// Revokes a device's key at `at`, in one transaction with the check: [`StoreError::NotFound`]
    /// for no such device, [`StoreError::Refused`] when it was revoked already.
    fn revoke_device(
        &self,
        id: DeviceId,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Device>> + Send;
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
    /// Replaces an officer's password hash (its owner's change: who last reset it stays recorded).
    fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records the phone an account's one-time passwords are sent to, proven by its owner `at`.
    fn set_officer_phone(
        &self,
        id: OfficerId,
        phone: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
