//! Personal data, behind a purpose. The data-encryption keys live only inside [`Vault`]; the one
//! way to open a holder's personal data is [`Vault::read`], which takes who is reading and a
//! [`Purpose`], and appends that to the audit log before it opens anything. A handler cannot read
//! personal data without leaving that record: there is no other path to the keys. (The one
//! exception, [`Vault::same_name`], answers only whether a name is the registered one.)

use healthcode_domain::{AppealId, CaseId, HolderId, OfficerId};
use healthcode_store::{
    AuditEntry, Consent, ConsentScope, Crypto, HolderKind, PersonalData, SealedHolder, Store,
};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::problem::ApiError;

/// Why someone other than the holder reads the holder's personal data. Each purpose names a
/// record that must bind it to the holder (see [`Purpose::check`]): free text opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "purpose", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Purpose {
    /// Investigating a confirmed case: reaches the case's holder and the holders with an
    /// exposure recorded from it (in any state), nobody else.
    CaseInvestigation {
        /// The case.
        case: i64,
    },
    /// Reviewing the holder's appeal.
    AppealReview {
        /// The appeal.
        appeal: i64,
    },
    /// Acting for the holder (a family member or community worker): a consent record of the
    /// holder's with the scope `proxy`.
    ProxyWithConsent {
        /// The consent record's id.
        consent: i64,
    },
    /// Issuing a printed code for someone without a smartphone: a consent record of the
    /// holder's with the scope `printed-code`.
    PrintedCode {
        /// The consent record's id.
        consent: i64,
    },
    /// Recording a laboratory result: reaches only the holder whose identity document the
    /// recorded lab report names.
    LabResult {
        /// The lab's reference for the report, as recorded (`POST /api/v1/admin/lab-reports`).
        reference: String,
    },
}

impl Purpose {
    /// How the audit log states it.
    pub fn describe(&self) -> String {
        match self {
            Purpose::CaseInvestigation { case } => format!("case investigation (case {case})"),
            Purpose::AppealReview { appeal } => format!("appeal review (appeal {appeal})"),
            Purpose::ProxyWithConsent { consent } => format!("proxy with consent (consent {consent})"),
            Purpose::PrintedCode { consent } => format!("printed code with consent (consent {consent})"),
            Purpose::LabResult { reference } => format!("lab result (report {reference})"),
        }
    }

    /// The consent scope a purpose needs, if it rests on a consent record.
    fn consent(&self) -> Option<(i64, ConsentScope)> {
        match self {
            Purpose::ProxyWithConsent { consent } => Some((*consent, ConsentScope::Proxy)),
            Purpose::PrintedCode { consent } => Some((*consent, ConsentScope::PrintedCode)),
            _ => None,
        }
    }

    /// Checks what does not depend on the holder (the case, the consent record or the lab
    /// report exists), so that a search can refuse a purpose that cannot hold before it looks
    /// anyone up.
    pub async fn check_before_lookup<S: Store>(&self, store: &S) -> Result<(), ApiError> {
        match self {
            Purpose::AppealReview { .. } => Ok(()),
            Purpose::CaseInvestigation { case } => {
                if store.case(CaseId(*case)).await?.is_none() {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: there is no case {case}"
                    )));
                }
                Ok(())
            }
            Purpose::ProxyWithConsent { consent } | Purpose::PrintedCode { consent } => {
                if store.consent(*consent).await?.is_none() {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: there is no consent record {consent}"
                    )));
                }
                Ok(())
            }
            Purpose::LabResult { reference } => lab_report(store, reference).await.map(|_| ()),
        }
    }

    /// Checks the purpose against the records, for `staff` reading `holder` at `at`: the case
    /// reaches the holder, the appeal is the holder's, the consent record is the holder's, of the
    /// scope, given to this staff account or any officer, unexpired and unrevoked; the lab report
    /// names the holder's document. A case or a lab report opens nothing to the staff member who
    /// recorded it (one person would otherwise make the record and read under it): another
    /// reads. Returns the consent record used, when there is one. A record that does not exist
    /// is a 422; one that exists and does not bind this holder, or was recorded by the reader, a
    /// 403.
    pub async fn check<S: Store>(
        &self,
        store: &S,
        holder: &SealedHolder,
        staff: OfficerId,
        at: OffsetDateTime,
    ) -> Result<Option<Consent>, ApiError> {
        self.check_before_lookup(store).await?;
        match self {
            Purpose::CaseInvestigation { case } => {
                if store.case_recorded_by(CaseId(*case)).await? == Some(staff) {
                    return Err(ApiError::Forbidden(format!(
                        "purpose: case {case} was recorded by this account; another officer investigates it"
                    )));
                }
                if !store.case_reaches(CaseId(*case), &holder.id).await? {
                    return Err(ApiError::Forbidden(format!(
                        "purpose: case {case} does not reach this holder (neither the case nor an exposure from it)"
                    )));
                }
            }
            Purpose::AppealReview { appeal } => {
                let mine = store.appeals_of(&holder.id).await?;
                if !mine.iter().any(|a| a.id == AppealId(*appeal)) {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: appeal {appeal} is not this holder's"
                    )));
                }
            }
            Purpose::ProxyWithConsent { .. } | Purpose::PrintedCode { .. } => {
                let Some((id, scope)) = self.consent() else {
                    return Ok(None);
                };
                let Some(consent) = store.consent(id).await? else {
                    return Err(ApiError::InvalidField(format!(
                        "purpose: there is no consent record {id}"
                    )));
                };
                consent
                    .opens(&holder.id, scope, staff, at)
                    .map_err(|why| ApiError::Forbidden(format!("purpose: {why}")))?;
                return Ok(Some(consent));
            }
            Purpose::LabResult { reference } => {
                let report = lab_report(store, reference).await?;
                if report.recorded_by == staff {
                    return Err(ApiError::Forbidden(format!(
                        "purpose: lab report {reference} was recorded by this account; another officer reads under it"
                    )));
                }
                if report.identity_hash != holder.identity_hash {
                    return Err(ApiError::Forbidden(format!(
                        "purpose: lab report {reference} names another person"
                    )));
                }
            }
        }
        Ok(None)
    }
}

/// The recorded lab report with this reference (a 422 when there is none).
async fn lab_report<S: Store>(store: &S, reference: &str) -> Result<healthcode_store::LabReport, ApiError> {
    let r = reference.trim();
    if r.is_empty() || r.chars().count() > 200 {
        return Err(ApiError::InvalidField(
            "purpose: reference must name the lab's report (1-200 characters)".into(),
        ));
    }
    store.lab_report(r).await?.ok_or_else(|| {
        ApiError::InvalidField(format!(
            "purpose: no lab report {r} is recorded; record it first (POST /api/v1/admin/lab-reports)"
        ))
    })
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
