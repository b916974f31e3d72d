//! Reading rows back, once for every backend: the columns a backend selects (`*_COLS`, in the
//! order the readers here expect them), a reader for each kind of row, and the parse of every
//! stored name. A backend shows its driver's row as [`Columns`] and hands it to a reader. A value
//! that cannot be read back (an unknown name, a hash of the wrong length) is
//! [`StoreError::Corrupt`]; a column the driver cannot read at all is [`StoreError::Backend`].

use healthcode_domain::{
    AdmissionPolicy, AppealId, CaseId, CheckIn, Colour, ConfirmedCase, DailyReport, DeviceId, Exposure,
    ExposureGrade, HealthDeclaration, HolderId, Issuer, OfficerId, Override, OverrideId, RiskArea, RiskLevel,
    Symptom, TestResult, TravelDeclaration, Venue, VenueCategory, VenueId,
};
use time::{Date, OffsetDateTime};

use crate::rules::{OtpSends, StoredOtp};
use crate::{
    Appeal, AuditEntry, AuditRecord, Device, ExposureState, HolderKind, Officer, Principal, Role,
    SealedHolder, Session, StoreError, StoreResult, StoredExposure,
};

/// One row as a backend's driver returns it, read column by column (from 0). Each backend
/// implements it for its driver's row type.
pub trait Columns {
    /// A 64-bit integer.
    fn int(&self, i: usize) -> StoreResult<i64>;
    /// A 64-bit integer, or NULL.
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    /// A boolean.
    fn boolean(&self, i: usize) -> StoreResult<bool>;
    /// A floating-point number, or NULL.
    fn opt_real(&self, i: usize) -> StoreResult<Option<f32>>;
    /// Text.
    fn text(&self, i: usize) -> StoreResult<&str>;
    /// Text, or NULL.
    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>>;
    /// Bytes.
    fn blob(&self, i: usize) -> StoreResult<&[u8]>;
    /// Bytes, or NULL.
    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>>;
    /// A point in time.
    fn time(&self, i: usize) -> StoreResult<OffsetDateTime>;
    /// A point in time, or NULL.
    fn opt_time(&self, i: usize) -> StoreResult<Option<OffsetDateTime>>;
    /// A calendar date.
    fn date(&self, i: usize) -> StoreResult<Date>;
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// A stored holder id.
pub fn holder_id(b: &[u8]) -> StoreResult<HolderId> {
    HolderId::from_bytes(b).map_err(|e| corrupt(e.0))
}

/// A stored SHA-256 or HMAC-SHA256 value.
pub fn hash32(b: &[u8]) -> StoreResult<[u8; 32]> {
    b.try_into().map_err(|_| corrupt("hash is not 32 bytes"))
}

/// A stored region code.
pub fn issuer(s: &str) -> StoreResult<Issuer> {
    Issuer::parse(s).map_err(|e| corrupt(e.0))
}

/// A stored colour name.
pub fn colour_of(s: &str) -> StoreResult<Colour> {
    s.parse()
        .map_err(|e: healthcode_domain::ClaimError| corrupt(e.to_string()))
}

/// A stored risk level name.
pub fn level_of(s: &str) -> StoreResult<RiskLevel> {
    RiskLevel::parse(s).ok_or_else(|| corrupt(format!("unknown risk level {s}")))
}

/// A stored exposure grade name.
pub fn grade_of(s: &str) -> StoreResult<ExposureGrade> {
    ExposureGrade::parse(s).ok_or_else(|| corrupt(format!("unknown exposure grade {s}")))
}

/// A stored holder kind name.
pub fn holder_kind_of(s: &str) -> StoreResult<HolderKind> {
    HolderKind::parse(s).ok_or_else(|| corrupt(format!("unknown holder kind {s}")))
}

/// A stored venue category name.
pub fn category_of(s: &str) -> StoreResult<VenueCategory> {
    VenueCategory::parse(s).ok_or_else(|| corrupt(format!("unknown category {s}")))
}

/// A stored admission policy name.
pub fn admission_of(s: &str) -> StoreResult<AdmissionPolicy> {
    AdmissionPolicy::parse(s).ok_or_else(|| corrupt(format!("unknown admission {s}")))
}

/// The stored role name of officer `id`.
pub fn role_of(s: &str, id: OfficerId) -> StoreResult<Role> {
    Role::parse(s).ok_or_else(|| corrupt(format!("unknown role {s} of officer {id}")))
}

/// The stored review state of `exposure`.
pub fn exposure_state_of(s: &str, exposure: &Exposure) -> StoreResult<ExposureState> {
    ExposureState::parse(s).ok_or_else(|| {
        corrupt(format!(
            "unknown state {s} of the exposure to case {} at venue {}",
            exposure.case, exposure.venue
        ))
    })
}

/// A session's principal from its stored kind and the holder or officer column it names.
pub fn principal_of(kind: &str, holder: Option<&[u8]>, officer: Option<i64>) -> StoreResult<Principal> {
    match (kind, holder, officer) {
        ("holder", Some(h), _) => Ok(Principal::Holder(holder_id(h)?)),
        ("officer", _, Some(o)) => Ok(Principal::Officer(OfficerId(o))),
        _ => Err(corrupt(format!("unknown principal kind {kind}"))),
    }
}

/// How a session's principal is stored: its kind, and the holder or officer column.
pub fn principal_columns(p: &Principal) -> (&'static str, Option<&[u8]>, Option<i64>) {
    match p {
        Principal::Holder(h) => ("holder", Some(h.as_bytes()), None),
        Principal::Officer(o) => ("officer", None, Some(o.0)),
    }
}

/// A health declaration's symptoms as stored (JSON).
pub fn symptoms_text(symptoms: &[Symptom]) -> StoreResult<String> {
    serde_json::to_string(symptoms).map_err(StoreError::backend)
}

/// A health declaration's symptoms from their stored JSON.
pub fn symptoms_of(s: &str) -> StoreResult<Vec<Symptom>> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("symptoms: {e}")))
}

/// An audit entry's stored time (nanoseconds since 1970).
pub fn audit_time(ns: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).map_err(|e| corrupt(e.to_string()))
}

/// The columns [`holder_row`] reads.
pub const HOLDER_COLS: &str = "id, kind, identity_hash, phone_hash, name_hint, sealed, created_at";

/// A holder, from [`HOLDER_COLS`].
pub fn holder_row(r: &dyn Columns) -> StoreResult<SealedHolder> {
    Ok(SealedHolder {
        id: holder_id(r.blob(0)?)?,
        kind: holder_kind_of(r.text(1)?)?,
        identity_hash: hash32(r.blob(2)?)?,
        phone_hash: hash32(r.blob(3)?)?,
        name_hint: r.text(4)?.to_owned(),
        sealed: r.blob(5)?.to_vec(),
        created_at: r.time(6)?,
    })
}

/// The columns [`venue_row`] reads.
pub const VENUE_COLS: &str = "id, name, category, region, admission";

/// A venue, from [`VENUE_COLS`].
pub fn venue_row(r: &dyn Columns) -> StoreResult<Venue> {
    Ok(Venue {
        id: VenueId(r.int(0)?),
        name: r.text(1)?.to_owned(),
        category: category_of(r.text(2)?)?,
        region: issuer(r.text(3)?)?,
        admission: admission_of(r.text(4)?)?,
    })
}

/// The columns [`checkin_row`] reads.
pub const CHECKIN_COLS: &str = "device, seq, holder, venue, at, out";

/// A check-in, from [`CHECKIN_COLS`].
pub fn checkin_row(r: &dyn Columns) -> StoreResult<CheckIn> {
    Ok(CheckIn {
        device: DeviceId(r.int(0)?),
        seq: r.int(1)?,
        holder: holder_id(r.blob(2)?)?,
        venue: VenueId(r.int(3)?),
        at: r.time(4)?,
        out: r.opt_time(5)?,
    })
}

/// The columns [`device_row`] reads.
pub const DEVICE_COLS: &str = "id, venue, label, key_hash, revoked_at";

/// A scanner device, from [`DEVICE_COLS`].
pub fn device_row(r: &dyn Columns) -> StoreResult<Device> {
    Ok(Device {
        id: DeviceId(r.int(0)?),
        venue: VenueId(r.int(1)?),
        label: r.text(2)?.to_owned(),
        key_hash: hash32(r.blob(3)?)?,
        revoked_at: r.opt_time(4)?,
    })
}

/// The columns [`session_row`] reads.
pub const SESSION_COLS: &str = "kind, holder, officer, created_at, expires_at";

/// A session, from [`SESSION_COLS`].
pub fn session_row(r: &dyn Columns) -> StoreResult<Session> {
    Ok(Session {
        principal: principal_of(r.text(0)?, r.opt_blob(1)?, r.opt_int(2)?)?,
        created_at: r.time(3)?,
        expires_at: r.time(4)?,
    })
}

/// The columns [`officer_row`] reads.
pub const OFFICER_COLS: &str = "id, username, role, password_hash, must_change_password, created_at, \
     disabled_at, totp_secret IS NOT NULL, created_by, creation_approved_by, credentials_reset_by, \
     credentials_reset_at, phone, phone_proven_at";

/// An officer account, from [`OFFICER_COLS`]; an unknown role is [`StoreError::Corrupt`], never
/// some other role.
pub fn officer_row(r: &dyn Columns) -> StoreResult<Officer> {
    let id = OfficerId(r.int(0)?);
    Ok(Officer {
        id,
        username: r.text(1)?.to_owned(),
        role: role_of(r.text(2)?, id)?,
        password_hash: r.text(3)?.to_owned(),
        must_change_password: r.boolean(4)?,
        created_at: r.time(5)?,
        disabled_at: r.opt_time(6)?,
        second_factor: r.boolean(7)?,
        created_by: r.opt_int(8)?.map(OfficerId),
        creation_approved_by: r.opt_int(9)?.map(OfficerId),
        credentials_reset_by: r.opt_int(10)?.map(OfficerId),
        credentials_reset_at: r.opt_time(11)?,
        phone: r.opt_text(12)?.map(str::to_owned),
        phone_proven_at: r.opt_time(13)?,
    })
}

/// The columns [`proposal_row`] reads.
pub const PROPOSAL_COLS: &str =
    "id, act, proposed_by, proposed_at, expires_at, state, decided_by, decided_at";

/// A proposal, from [`PROPOSAL_COLS`]; an unreadable act or state is [`StoreError::Corrupt`].
pub fn proposal_row(r: &dyn Columns) -> StoreResult<crate::Proposal> {
    let state = r.text(5)?;
    Ok(crate::Proposal {
        id: r.int(0)?,
        act: crate::Act::from_stored(r.text(1)?)?,
        proposed_by: OfficerId(r.int(2)?),
        proposed_at: r.time(3)?,
        expires_at: r.time(4)?,
        state: crate::ProposalState::parse(state)
            .ok_or_else(|| corrupt(format!("proposal state {state:?}")))?,
        decided: match (r.opt_int(6)?, r.opt_time(7)?) {
            (Some(by), Some(at)) => Some((OfficerId(by), at)),
            _ => None,
        },
    })
}

/// The columns [`policy_row`] reads.
pub const POLICY_COLS: &str =
    "seq, version, sha256, source, published_at, proposal, proposed_by, approved_by";

/// A published policy, from [`POLICY_COLS`].
pub fn policy_row(r: &dyn Columns) -> StoreResult<crate::PublishedPolicy> {
    Ok(crate::PublishedPolicy {
        seq: r.int(0)?,
        version: r.text(1)?.to_owned(),
        sha256: r.text(2)?.to_owned(),
        source: r.text(3)?.to_owned(),
        published_at: r.time(4)?,
        proposal: match (r.opt_int(5)?, r.opt_int(6)?, r.opt_int(7)?) {
            (Some(p), Some(by), Some(approver)) => Some((p, OfficerId(by), OfficerId(approver))),
            _ => None,
        },
    })
}

/// The columns [`case_row`] reads.
pub const CASE_COLS: &str = "id, holder, onset, confirmed_at";

/// A confirmed case and whose it is, from [`CASE_COLS`].
pub fn case_row(r: &dyn Columns) -> StoreResult<(HolderId, ConfirmedCase)> {
    Ok((
        holder_id(r.blob(1)?)?,
        ConfirmedCase {
            id: CaseId(r.int(0)?),
            onset: r.time(2)?,
            confirmed_at: r.time(3)?,
        },
    ))
}

/// The columns [`override_row`] reads.
pub const OVERRIDE_COLS: &str =
    "id, colour, reason, proposed_by, proposed_at, approved_by, approved_at, expires_at";

/// A manual change, from [`OVERRIDE_COLS`].
pub fn override_row(r: &dyn Columns) -> StoreResult<Override> {
    Ok(Override {
        id: OverrideId(r.int(0)?),
        colour: colour_of(r.text(1)?)?,
        reason: r.text(2)?.to_owned(),
        proposed_by: OfficerId(r.int(3)?),
        proposed_at: r.time(4)?,
        approval: match (r.opt_int(5)?, r.opt_time(6)?) {
            (Some(by), Some(at)) => Some((OfficerId(by), at)),
            _ => None,
        },
        expires_at: r.time(7)?,
    })
}

/// The columns [`holder_override_row`] reads: [`OVERRIDE_COLS`], then the holder.
pub const HOLDER_OVERRIDE_COLS: &str =
    "id, colour, reason, proposed_by, proposed_at, approved_by, approved_at, expires_at, holder";

/// A manual change and whose colour it sets, from [`HOLDER_OVERRIDE_COLS`].
pub fn holder_override_row(r: &dyn Columns) -> StoreResult<(HolderId, Override)> {
    Ok((holder_id(r.blob(8)?)?, override_row(r)?))
}

/// The columns [`appeal_row`] reads.
pub const APPEAL_COLS: &str = "id, holder, text, filed_at, decided_by, upheld, note, decided_at";

/// An appeal, from [`APPEAL_COLS`].
pub fn appeal_row(r: &dyn Columns) -> StoreResult<Appeal> {
    let decision = match r.opt_int(4)? {
        Some(by) => Some((OfficerId(by), r.boolean(5)?, r.text(6)?.to_owned(), r.time(7)?)),
        None => None,
    };
    Ok(Appeal {
        id: AppealId(r.int(0)?),
        holder: holder_id(r.blob(1)?)?,
        text: r.text(2)?.to_owned(),
        filed_at: r.time(3)?,
        decision,
    })
}

/// The columns [`audit_row`] reads (and an append writes).
pub const AUDIT_COLS: &str = "seq, at_ns, actor, role, action, subject, purpose, prev_hash, hash";

/// The columns [`tree_head_row`] reads, in order.
pub const TREE_HEAD_COLS: &str = "tree_size, root_hash, signed_at_ms, key_id, signature";

/// A stored tree head, from [`TREE_HEAD_COLS`].
pub fn tree_head_row(r: &dyn Columns) -> StoreResult<crate::StoredTreeHead> {
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| corrupt("negative tree head number"));
    Ok(crate::StoredTreeHead {
        tree_size: unsigned(r.int(0)?)?,
        root_hash: hash32(r.blob(1)?)?,
        signed_at_ms: unsigned(r.int(2)?)?,
        key_id: r
            .blob(3)?
            .try_into()
            .map_err(|_| corrupt("key id is not 8 bytes"))?,
        signature: r
            .blob(4)?
            .try_into()
            .map_err(|_| corrupt("signature is not 64 bytes"))?,
    })
}

/// An audit record, from [`AUDIT_COLS`].
pub fn audit_row(r: &dyn Columns) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: r.int(0)?,
        entry: AuditEntry {
            at: audit_time(r.int(1)?)?,
            actor: r.text(2)?.to_owned(),
            role: r.text(3)?.to_owned(),
            action: r.text(4)?.to_owned(),
            subject: r.opt_blob(5)?.map(holder_id).transpose()?,
            purpose: r.text(6)?.to_owned(),
        },
        prev_hash: hash32(r.blob(7)?)?,
        hash: hash32(r.blob(8)?)?,
    })
}

/// The columns [`exposure_row`] reads.
pub const EXPOSURE_COLS: &str =
    "holder, case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade, state";

/// An exposure as stored, from [`EXPOSURE_COLS`]; an unknown state is [`StoreError::Corrupt`],
/// never some other state.
pub fn exposure_row(r: &dyn Columns) -> StoreResult<StoredExposure> {
    let exposure = exposure_of(r, 1)?;
    Ok(StoredExposure {
        holder: holder_id(r.blob(0)?)?,
        state: exposure_state_of(r.text(9)?, &exposure)?,
        exposure,
    })
}

/// The columns [`applied_exposure_row`] reads: an exposure without its holder and state.
pub const APPLIED_EXPOSURE_COLS: &str =
    "case_id, venue, case_start, case_end, contact_start, contact_end, overlap_minutes, grade";

/// One of a holder's exposures, from [`APPLIED_EXPOSURE_COLS`].
pub fn applied_exposure_row(r: &dyn Columns) -> StoreResult<Exposure> {
    exposure_of(r, 0)
}

/// The exposure in the eight columns from `at` (case id to grade, as [`APPLIED_EXPOSURE_COLS`]).
fn exposure_of(r: &dyn Columns, at: usize) -> StoreResult<Exposure> {
    Ok(Exposure {
        case: CaseId(r.int(at)?),
        venue: VenueId(r.int(at + 1)?),
        case_interval: (r.time(at + 2)?, r.time(at + 3)?),
        contact_interval: (r.time(at + 4)?, r.time(at + 5)?),
        overlap_minutes: r.int(at + 6)?,
        grade: grade_of(r.text(at + 7)?)?,
    })
}

/// The columns [`holder_case_row`] reads: a case of a known holder.
pub const HOLDER_CASE_COLS: &str = "id, onset, confirmed_at";

/// One of a holder's cases, from [`HOLDER_CASE_COLS`].
pub fn holder_case_row(r: &dyn Columns) -> StoreResult<ConfirmedCase> {
    Ok(ConfirmedCase {
        id: CaseId(r.int(0)?),
        onset: r.time(1)?,
        confirmed_at: r.time(2)?,
    })
}

/// The columns [`test_row`] reads.
pub const TEST_COLS: &str = "positive, sampled_at, lab";

/// A laboratory result, from [`TEST_COLS`].
pub fn test_row(r: &dyn Columns) -> StoreResult<TestResult> {
    Ok(TestResult {
        positive: r.boolean(0)?,
        sampled_at: r.time(1)?,
        lab: r.text(2)?.to_owned(),
    })
}

/// The columns [`travel_row`] reads.
pub const TRAVEL_COLS: &str = "at, region, date_from, date_until";

/// A travel declaration, from [`TRAVEL_COLS`].
pub fn travel_row(r: &dyn Columns) -> StoreResult<TravelDeclaration> {
    Ok(TravelDeclaration {
        at: r.time(0)?,
        region: issuer(r.text(1)?)?,
        from: r.date(2)?,
        until: r.date(3)?,
    })
}

/// The columns [`health_row`] reads.
pub const HEALTH_COLS: &str = "at, symptoms, temperature";

/// A health declaration, from [`HEALTH_COLS`].
pub fn health_row(r: &dyn Columns) -> StoreResult<HealthDeclaration> {
    Ok(HealthDeclaration {
        at: r.time(0)?,
        symptoms: symptoms_of(r.text(1)?)?,
        temperature_c: r.opt_real(2)?,
    })
}

/// The columns [`report_row`] reads.
pub const REPORT_COLS: &str = "at, well";

/// A daily report, from [`REPORT_COLS`].
pub fn report_row(r: &dyn Columns) -> StoreResult<DailyReport> {
    Ok(DailyReport {
        at: r.time(0)?,
        well: r.boolean(1)?,
    })
}

/// The columns [`risk_area_row`] reads.
pub const RISK_AREA_COLS: &str = "region, level, starts_at, ends_at";

/// A risk area, from [`RISK_AREA_COLS`].
pub fn risk_area_row(r: &dyn Columns) -> StoreResult<RiskArea> {
    Ok(RiskArea {
        region: issuer(r.text(0)?)?,
        level: level_of(r.text(1)?)?,
        from: r.time(2)?,
        until: r.opt_time(3)?,
    })
}

/// The columns [`listed_risk_area_row`] reads.
pub const LISTED_RISK_AREA_COLS: &str = "id, region, level, starts_at, ends_at, ended_at";

/// A risk area with its id, from [`LISTED_RISK_AREA_COLS`].
pub fn listed_risk_area_row(r: &dyn Columns) -> StoreResult<crate::ListedRiskArea> {
    Ok(crate::ListedRiskArea {
        id: r.int(0)?,
        area: RiskArea {
            region: issuer(r.text(1)?)?,
            level: level_of(r.text(2)?)?,
            from: r.time(3)?,
            until: r.opt_time(4)?,
        },
        ended_at: r.opt_time(5)?,
    })
}

/// The columns [`otp_sends_row`] reads.
pub const OTP_SENDS_COLS: &str = "last_sent_at, window_start, window_count";

/// A phone's send counters, from [`OTP_SENDS_COLS`].
pub fn otp_sends_row(r: &dyn Columns) -> StoreResult<OtpSends> {
    Ok(OtpSends {
        last_sent: r.time(0)?,
        window_start: r.time(1)?,
        window_count: r.int(2)?,
    })
}

/// A phone's code from its challenge, hash, expiry and guesses left (`challenge_hash, code_hash,
/// expires_at, attempts_left`).
pub fn stored_otp_row(r: &dyn Columns) -> StoreResult<StoredOtp> {
    Ok(StoredOtp {
        challenge_hash: r.opt_blob(0)?.map(<[u8]>::to_vec).unwrap_or_default(),
        code_hash: r.opt_blob(1)?.map(<[u8]>::to_vec),
        expires_at: r.time(2)?,
        attempts_left: r.int(3)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unknown_stored_names_are_corrupt() {
        let o = OfficerId(3);
        assert!(
            matches!(role_of("superuser", o), Err(StoreError::Corrupt(m)) if m == "unknown role superuser of officer 3")
        );
        assert_eq!(role_of("auditor", o).unwrap(), Role::Auditor);
        assert!(matches!(colour_of("purple"), Err(StoreError::Corrupt(_))));
        assert!(matches!(level_of("extreme"), Err(StoreError::Corrupt(_))));
        assert!(matches!(grade_of("far"), Err(StoreError::Corrupt(_))));
        assert!(matches!(holder_kind_of("alien"), Err(StoreError::Corrupt(_))));
        assert!(matches!(category_of("moon"), Err(StoreError::Corrupt(_))));
        assert!(matches!(admission_of("nobody"), Err(StoreError::Corrupt(_))));
        assert!(matches!(hash32(&[0; 31]), Err(StoreError::Corrupt(_))));
        assert!(matches!(holder_id(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(issuer("nowhere"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            symptoms_of("[\"sneezing\"]"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            principal_of("device", None, Some(1)),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_principal_is_stored_and_read_back() {
        for p in [
            Principal::Holder(HolderId::from_bytes(&[4; 8]).unwrap()),
            Principal::Officer(OfficerId(9)),
        ] {
            let (kind, holder, officer) = principal_columns(&p);
            assert_eq!(principal_of(kind, holder, officer).unwrap(), p);
        }
    }
}
