//! Personal data, behind a purpose. The data-encryption keys live only inside [`Vault`]; the one
//! way to open a holder's personal data is [`Vault::read`], which takes who is reading and a
//! [`Purpose`], and appends that to the audit log before it opens anything. A handler cannot read
//! personal data without leaving that record: there is no other path to the keys. (The one
//! exception, [`Vault::same_name`], answers only whether a name is the registered one.)

use healthcode_domain::{AppealId, CaseId, HolderId};
use healthcode_store::{AuditEntry, Crypto, HolderKind, PersonalData, SealedHolder, Store};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::problem::ApiError;

/// Why someone other than the holder reads the holder's personal data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "purpose", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Purpose {
    /// Investigating a confirmed case (the holder is the case or one of its contacts).
    CaseInvestigation {
        /// The case.
        case: i64,
    },
    /// Reviewing the holder's appeal.
    AppealReview {
        /// The appeal.
        appeal: i64,
    },
    /// Acting for the holder (a family member or community worker) with the holder's consent.
    ProxyWithConsent {
        /// Where the consent is recorded (form number, call reference).
        consent: String,
    },
    /// Issuing a printed code for someone without a smartphone, with their consent.
    PrintedCode {
        /// Where the consent is recorded.
        consent: String,
    },
    /// Recording a laboratory result for the holder, found by the identity document on the
    /// lab's report.
    LabResult {
        /// The lab's reference for the report.
        reference: String,
    },
}

impl Purpose {
    /// How the audit log states it.
    pub fn describe(&self) -> String {
        match self {
            Purpose::CaseInvestigation { case } => format!("case investigation (case {case})"),
            Purpose::AppealReview { appeal } => format!("appeal review (appeal {appeal})"),
            Purpose::ProxyWithConsent { consent } => format!("proxy with consent ({consent})"),
            Purpose::PrintedCode { consent } => format!("printed code with consent ({consent})"),
            Purpose::LabResult { reference } => format!("lab result (report {reference})"),
        }
    }

    /// Checks what does not depend on the holder (the case exists, a consent or a report is
    /// named), so that a search can refuse a purpose that cannot hold before it looks anyone up.
    pub async fn check_before_lookup<S: Store>(&self, store: &S) -> Result<(), ApiError> {
        match self {
            Purpose::AppealReview { .. } => Ok(()),
            _ => self.check_with(store, None).await,
        }
    }

    /// Checks the purpose against the record: the case exists, the appeal is the holder's, a
    /// consent reference is given.
    pub async fn check<S: Store>(&self, store: &S, holder: &HolderId) -> Result<(), ApiError> {
        self.check_with(store, Some(holder)).await
    }

    async fn check_with<S: Store>(&self, store: &S, holder: Option<&HolderId>) -> Result<(), ApiError> {
        match self {
            Purpose::CaseInvestigation { case } => {
                if store.case(CaseId(*case)).await?.is_none() {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: there is no case {case}"
                    )));
                }
            }
            Purpose::AppealReview { appeal } => {
                let Some(holder) = holder else {
                    return Ok(());
                };
                let mine = store.appeals_of(holder).await?;
                if !mine.iter().any(|a| a.id == AppealId(*appeal)) {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: appeal {appeal} is not this holder's"
                    )));
                }
            }
            Purpose::ProxyWithConsent { consent } | Purpose::PrintedCode { consent } => {
                let c = consent.trim();
                if c.is_empty() || c.len() > 200 {
                    return Err(ApiError::InvalidField(
                        "purpose: consent must name where the consent is recorded (1-200 characters)".into(),
                    ));
                }
            }
            Purpose::LabResult { reference } => {
                let r = reference.trim();
                if r.is_empty() || r.len() > 200 {
                    return Err(ApiError::InvalidField(
                        "purpose: reference must name the lab's report (1-200 characters)".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Who reads: recorded with every read.
#[derive(Debug, Clone)]
pub struct Reader {
    /// `officer:<id>:<name>`, or `holder:<id>`.
    pub actor: String,
    /// officer, admin, auditor, holder.
    pub role: String,
}

/// The keys to personal data.
pub struct Vault {
    crypto: Crypto,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(…)")
    }
}

impl Vault {
    /// Holds the keys.
    pub fn new(crypto: Crypto) -> Vault {
        Vault { crypto }
    }

    /// Seals a new holder's data (registration writes; it reads nothing).
    pub fn seal(
        &self,
        id: HolderId,
        kind: HolderKind,
        data: &PersonalData,
        name_hint: &str,
        at: OffsetDateTime,
    ) -> Result<SealedHolder, ApiError> {
        self.crypto
            .seal_holder(id, kind, data, name_hint, at)
            .map_err(|e| ApiError::internal("cannot seal holder data", e))
    }

    /// Seals a staff member's secret (a TOTP key) under the data keys, bound to `aad` (whose
    /// it is), so that the store never holds it in clear.
    pub fn seal_secret(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.crypto
            .seal(aad, secret)
            .map_err(|e| ApiError::internal("cannot seal a secret", e))
    }

    /// Opens a secret [`Vault::seal_secret`] sealed with the same `aad`.
    pub fn open_secret(&self, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError> {
        self.crypto
            .open(aad, sealed)
            .map_err(|e| ApiError::internal("cannot open a sealed secret", e))
    }

    /// The lookup hash of a value (phone, identity number): finds a row, reveals nothing.
    pub fn lookup_hash(&self, domain: &str, value: &str) -> [u8; 32] {
        self.crypto.keyed_hash(domain, value)
    }

    /// The lookup hash of an identity document: the same key registration sealed the holder
    /// under (`healthcode_store::identity_key`), so a search finds whom registration stored.
    pub fn identity_hash(&self, doc: &healthcode_domain::IdentityDocument) -> [u8; 32] {
        self.crypto.identity_hash(doc)
    }

    /// Whether the holder's registered name is `name` (as [`FullName::same_as`] compares). The
    /// data is opened only to compare and nothing of it leaves: the answer is one bit, for a
    /// search by name and document that its caller records.
    ///
    /// [`FullName::same_as`]: healthcode_domain::FullName::same_as
    pub fn same_name(
        &self,
        holder: &SealedHolder,
        name: &healthcode_domain::FullName,
    ) -> Result<bool, ApiError> {
        let data = self
            .crypto
            .open_holder(holder)
            .map_err(|e| ApiError::internal("cannot open holder data", e))?;
        Ok(name.same_as(&data.name))
    }

    /// Opens a holder's personal data for `reader`, for `purpose`, after recording the read.
    pub async fn read<S: Store>(
        &self,
        store: &S,
        reader: &Reader,
        holder: &SealedHolder,
        purpose: &str,
        at: OffsetDateTime,
    ) -> Result<PersonalData, ApiError> {
        store
            .append_audit(&AuditEntry {
                at,
                actor: reader.actor.clone(),
                role: reader.role.clone(),
                action: "read-personal-data".into(),
                subject: Some(holder.id.clone()),
                purpose: purpose.to_owned(),
            })
            .await?;
        self.crypto
            .open_holder(holder)
            .map_err(|e| ApiError::internal("cannot open holder data", e))
    }
}
