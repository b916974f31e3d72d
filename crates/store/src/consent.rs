//! What binds a purpose to a holder: lab reports (a lab's report names one identity document),
//! consent records (a holder's consent, with its scope, whom it is given to, how it was given and
//! its expiry), whether a case reaches a holder, and the days a holder's read digest was sent.
//! The decision whether a consent opens a holder is [`Consent::opens`], a plain function both
//! backends' callers use.

use std::future::Future;

use healthcode_domain::{CaseId, HolderId, OfficerId};
use time::{Date, Duration, OffsetDateTime};

use crate::rows::{Columns, hash32, holder_id};
use crate::{StoreError, StoreResult};

/// The longest a consent can be given for.
pub const MAX_CONSENT: Duration = Duration::days(30);

/// What a consent allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentScope {
    /// Someone (a family member, a community worker) acts for the holder through an officer: the
    /// officer reads the holder's record.
    Proxy,
    /// An officer issues a printed code for the holder.
    PrintedCode,
}

impl ConsentScope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentScope::Proxy => "proxy",
            ConsentScope::PrintedCode => "printed-code",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<ConsentScope> {
        match s {
            "proxy" => Some(ConsentScope::Proxy),
            "printed-code" => Some(ConsentScope::PrintedCode),
            _ => None,
        }
    }
}

/// How a consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentGiven {
    /// By the holder, signed in to the app.
    App,
    /// By the holder reading out a one-time code texted to their phone to the officer who asked.
    OneTimeCode,
    /// In person, attested by the officer (who is named).
    InPerson,
}

impl ConsentGiven {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentGiven::App => "app",
            ConsentGiven::OneTimeCode => "one-time-code",
            ConsentGiven::InPerson => "in-person",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<ConsentGiven> {
        match s {
            "app" => Some(ConsentGiven::App),
            "one-time-code" => Some(ConsentGiven::OneTimeCode),
            "in-person" => Some(ConsentGiven::InPerson),
            _ => None,
        }
    }
}

/// A consent to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// Whose.
    pub holder: HolderId,
    /// What it allows.
    pub scope: ConsentScope,
    /// The one staff account it is given to, or any officer (`None`).
    pub granted_to: Option<OfficerId>,
    /// How it was given.
    pub given: ConsentGiven,
    /// The officer who obtained it (asked for the code, or attests the person's word).
    pub obtained_by: Option<OfficerId>,
    /// When.
    pub created_at: OffsetDateTime,
    /// Until when (at most [`MAX_CONSENT`] after `created_at`).
    pub expires_at: OffsetDateTime,
}

/// A stored consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Its id (what a purpose names).
    pub id: i64,
    /// What was given.
    pub consent: NewConsent,
    /// When the holder revoked it.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why a consent does not open a holder's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRefusal {
    /// It is another holder's.
    #[error("the consent is another holder's")]
    OtherHolder,
    /// It allows something else.
    #[error("the consent does not cover this use")]
    OtherScope,
    /// It is given to another staff account.
    #[error("the consent is given to another staff account")]
    OtherStaff,
    /// It has expired.
    #[error("the consent has expired")]
    Expired,
    /// The holder revoked it.
    #[error("the holder revoked the consent")]
    Revoked,
}

impl Consent {
    /// Whether this consent lets `staff` act on `holder`'s record for `scope` at `at`: it must be
    /// the holder's, of that scope, given to that staff account or to any officer, unexpired and
    /// unrevoked.
    pub fn opens(
        &self,
        holder: &HolderId,
        scope: ConsentScope,
        staff: OfficerId,
        at: OffsetDateTime,
    ) -> Result<(), ConsentRefusal> {
        let c = &self.consent;
        if &c.holder != holder {
            return Err(ConsentRefusal::OtherHolder);
        }
        if c.scope != scope {
            return Err(ConsentRefusal::OtherScope);
        }
        if c.granted_to.is_some_and(|g| g != staff) {
            return Err(ConsentRefusal::OtherStaff);
        }
        if self.revoked_at.is_some_and(|r| r <= at) {
            return Err(ConsentRefusal::Revoked);
        }
        if c.expires_at <= at {
            return Err(ConsentRefusal::Expired);
        }
        Ok(())
    }
}

/// A lab's report as an officer records it when it arrives: the person it names is kept only as
/// the identity hash of their document ([`crate::Crypto::identity_hash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabReport {
    /// The lab's reference for the report (unique).
    pub reference: String,
    /// The lab.
    pub lab: String,
    /// The identity hash of the document the report names.
    pub identity_hash: [u8; 32],
    /// The officer who recorded it.
    pub recorded_by: OfficerId,
    /// When.
    pub recorded_at: OffsetDateTime,
}

/// How many reads of one holder's data one role made in a digest's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCount {
    /// Whose data.
    pub holder: HolderId,
    /// By which role (officer, admin, auditor…).
    pub role: String,
    /// How many.
    pub reads: u64,
}

/// The columns [`consent_row`] reads.
pub const CONSENT_COLS: &str =
    "id, holder, scope, granted_to, given, obtained_by, created_at, expires_at, revoked_at";

/// A consent, from [`CONSENT_COLS`].
pub fn consent_row(r: &dyn Columns) -> StoreResult<Consent> {
    let scope = r.text(2)?;
    let given = r.text(4)?;
    Ok(Consent {
        id: r.int(0)?,
        consent: NewConsent {
            holder: holder_id(r.blob(1)?)?,
            scope: ConsentScope::parse(scope)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown consent scope {scope:?}")))?,
            granted_to: r.opt_int(3)?.map(OfficerId),
            given: ConsentGiven::parse(given)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown consent kind {given:?}")))?,
            obtained_by: r.opt_int(5)?.map(OfficerId),
            created_at: r.time(6)?,
            expires_at: r.time(7)?,
        },
        revoked_at: r.opt_time(8)?,
    })
}

/// The columns [`lab_report_row`] reads.
pub const LAB_REPORT_COLS: &str = "reference, lab, identity_hash, recorded_by, recorded_at";

/// A lab report, from [`LAB_REPORT_COLS`].
pub fn lab_report_row(r: &dyn Columns) -> StoreResult<LabReport> {
    Ok(LabReport {
        reference: r.text(0)?.to_owned(),
        lab: r.text(1)?.to_owned(),
        identity_hash: hash32(r.blob(2)?)?,
        recorded_by: OfficerId(r.int(3)?),
        recorded_at: r.time(4)?,
    })
}

/// The audit log's action for a read of personal data (what the read digest counts).
pub const READ_ACTION: &str = "read-personal-data";

/// Lab reports, consents, the reach of a case, and read digests.
pub trait PurposeStore: Send + Sync {
    /// Records a lab report; [`StoreError::Conflict`] when its reference is recorded already.
    fn add_lab_report(&self, report: &LabReport) -> impl Future<Output = StoreResult<()>> + Send;
    /// The report with this reference.
    fn lab_report(&self, reference: &str) -> impl Future<Output = StoreResult<Option<LabReport>>> + Send;
    /// Whether `holder` is case `case`'s holder or has an exposure (in any state) from it.
    fn case_reaches(&self, case: CaseId, holder: &HolderId)
    -> impl Future<Output = StoreResult<bool>> + Send;
    /// The staff member who recorded case `case` (`None`: no such case, or nobody recorded it
    /// through the API).
    fn case_recorded_by(&self, case: CaseId) -> impl Future<Output = StoreResult<Option<OfficerId>>> + Send;
    /// Records a consent; returns it with its id.
    fn add_consent(&self, consent: &NewConsent) -> impl Future<Output = StoreResult<Consent>> + Send;
    /// The consent with this id.
    fn consent(&self, id: i64) -> impl Future<Output = StoreResult<Option<Consent>>> + Send;
    /// A holder's consents, newest first.
    fn consents_of(&self, holder: &HolderId) -> impl Future<Output = StoreResult<Vec<Consent>>> + Send;
    /// Revokes the holder's consent `id` at `at`, in one statement that names the holder: false
    /// when it is not theirs or was revoked already.
    fn revoke_consent(
        &self,
        holder: &HolderId,
        id: i64,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Reads of personal data in `[from, until)` by anyone but the holder and the system, by
    /// holder and role.
    fn reads_between(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<ReadCount>>> + Send;
    /// Marks the read digest of `day` sent to `holder`: false when it was marked already (on this
    /// node or another), so that each holder gets one a day.
    fn mark_digest_sent(
        &self,
        holder: &HolderId,
        day: Date,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn consent(granted_to: Option<OfficerId>) -> Consent {
        Consent {
            id: 1,
            consent: NewConsent {
                holder: HolderId::from_bytes(&[1; 8]).unwrap_or_else(|_| unreachable!()),
                scope: ConsentScope::Proxy,
                granted_to,
                given: ConsentGiven::App,
                obtained_by: None,
                created_at: datetime!(2026-11-20 08:00 UTC),
                expires_at: datetime!(2026-11-27 08:00 UTC),
            },
            revoked_at: None,
        }
    }

    #[test]
    fn a_consent_opens_only_its_holder_scope_staff_and_time() {
        let at = datetime!(2026-11-21 08:00 UTC);
        let me = HolderId::from_bytes(&[1; 8]).unwrap_or_else(|_| unreachable!());
        let other = HolderId::from_bytes(&[2; 8]).unwrap_or_else(|_| unreachable!());
        let any = consent(None);
        assert_eq!(any.opens(&me, ConsentScope::Proxy, OfficerId(5), at), Ok(()));
        assert_eq!(
            any.opens(&other, ConsentScope::Proxy, OfficerId(5), at),
            Err(ConsentRefusal::OtherHolder)
        );
        assert_eq!(
            any.opens(&me, ConsentScope::PrintedCode, OfficerId(5), at),
            Err(ConsentRefusal::OtherScope)
        );
        assert_eq!(
            any.opens(
                &me,
                ConsentScope::Proxy,
                OfficerId(5),
                datetime!(2026-11-27 08:00 UTC)
            ),
            Err(ConsentRefusal::Expired)
        );
        let named = consent(Some(OfficerId(5)));
        assert_eq!(named.opens(&me, ConsentScope::Proxy, OfficerId(5), at), Ok(()));
        assert_eq!(
            named.opens(&me, ConsentScope::Proxy, OfficerId(6), at),
            Err(ConsentRefusal::OtherStaff)
        );
        let revoked = Consent {
            revoked_at: Some(datetime!(2026-11-21 07:00 UTC)),
            ..any
        };
        assert_eq!(
            revoked.opens(&me, ConsentScope::Proxy, OfficerId(5), at),
            Err(ConsentRefusal::Revoked)
        );
    }
}
