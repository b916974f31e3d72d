//! The decisions a store takes inside its transactions, made once for every backend: a backend
//! reads the row(s), calls the rule here, and writes what the rule returned. Nothing here does
//! I/O, so each rule is tested with plain values.

use std::collections::HashMap;

use healthcode_domain::{AppealId, CheckIn, DeviceId, HolderId, OfficerId, Override, OverrideId};
use time::{Duration, OffsetDateTime};

use crate::proposals::{ApprovalPolicy, Proposal, ProposalState};
use crate::{
    Appeal, Device, ExposureKey, ExposureState, Officer, OtpCheck, OtpLimits, Recorded, Role, StoreError,
    StoreResult, StoredExposure,
};

/// A phone's send counters, as stored beside its one-time code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpSends {
    /// When the last code went.
    pub last_sent: OffsetDateTime,
    /// When the current rate window opened.
    pub window_start: OffsetDateTime,
    /// Codes sent in that window.
    pub window_count: i64,
}

/// What to store for a code about to be sent: the phone's row after the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpIssue {
    /// When the new code stops working.
    pub expires_at: OffsetDateTime,
    /// Guesses it allows.
    pub attempts: u8,
    /// The send counters after this send.
    pub sends: OtpSends,
}

impl OtpLimits {
    /// Whether a code may go at `now` to a phone whose counters are `before` (`None` for a phone
    /// never sent one): the row to store, or how long until one may be sent (the longer wait
    /// when both the interval and the window refuse).
    pub fn issue(&self, now: OffsetDateTime, before: Option<&OtpSends>) -> Result<OtpIssue, Duration> {
        let (window_start, window_count) = match before {
            None => (now, 1),
            Some(b) => {
                let since = now - b.last_sent;
                let interval_wait = (since < self.min_interval).then(|| self.min_interval - since);
                let window_end = b.window_start + self.window;
                let open = now < window_end;
                let window_wait =
                    (open && b.window_count >= i64::from(self.per_window)).then(|| window_end - now);
                match interval_wait.max(window_wait) {
                    Some(wait) => return Err(wait),
                    None if open => (b.window_start, b.window_count + 1),
                    None => (now, 1),
                }
            }
        };
        Ok(OtpIssue {
            expires_at: now + self.validity,
            attempts: self.attempts,
            sends: OtpSends {
                last_sent: now,
                window_start,
                window_count,
            },
        })
    }
}

/// A phone's one-time code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOtp {
    /// The keyed hash of the challenge the code was sent under.
    pub challenge_hash: Vec<u8>,
    /// The code's keyed hash; `None` once the code was used.
    pub code_hash: Option<Vec<u8>>,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// Guesses left.
    pub attempts_left: i64,
}

/// Checks a guess, made under `challenge`, at a phone's code (`None`: no row for the phone). The
/// backend then writes what the answer says: [`OtpCheck::Accepted`] clears the code (the send
/// counters stay), [`OtpCheck::Wrong`] stores its `attempts_left`; any other answer changes
/// nothing. A guess under another challenge finds no code, so it cannot use up the owner's.
pub fn check_otp(
    stored: Option<StoredOtp>,
    challenge: &[u8; 32],
    guess: &[u8; 32],
    now: OffsetDateTime,
) -> StoreResult<OtpCheck> {
    let Some(StoredOtp {
        challenge_hash,
        code_hash: Some(code_hash),
        expires_at,
        attempts_left,
    }) = stored
    else {
        return Ok(OtpCheck::Missing);
    };
    if challenge_hash != challenge[..] {
        return Ok(OtpCheck::Missing);
    }
    if now >= expires_at {
        return Ok(OtpCheck::Expired);
    }
    if attempts_left <= 0 {
        return Ok(OtpCheck::Exhausted);
    }
    if code_hash == guess[..] {
        return Ok(OtpCheck::Accepted);
    }
    let left = attempts_left - 1;
    Ok(OtpCheck::Wrong {
        attempts_left: u8::try_from(left)
            .map_err(|_| StoreError::Corrupt(format!("{attempts_left} attempts left")))?,
    })
}

/// An officer's review of a pending exposure: refused at once when it would set
/// [`ExposureState::Pending`], then [`ExposureReview::apply`] decides on the stored exposure.
#[derive(Debug, Clone, Copy)]
pub struct ExposureReview<'a> {
    key: &'a ExposureKey,
    to: ExposureState,
}

impl<'a> ExposureReview<'a> {
    /// A review setting the exposure named by `key` to `to`; [`StoreError::Refused`] when `to` is
    /// [`ExposureState::Pending`].
    pub fn new(key: &'a ExposureKey, to: ExposureState) -> StoreResult<ExposureReview<'a>> {
        if to == ExposureState::Pending {
            return Err(StoreError::Refused(
                "a reviewed exposure cannot be pending".into(),
            ));
        }
        Ok(ExposureReview { key, to })
    }

    /// The exposure it reviews.
    pub fn key(&self) -> &ExposureKey {
        self.key
    }

    /// The state it sets.
    pub fn state(&self) -> ExposureState {
        self.to
    }

    /// The exposure in its new state, to be written: [`StoreError::NotFound`] when `found` is
    /// `None`, [`StoreError::Refused`] when it is not pending (it was decided already).
    pub fn apply(&self, found: Option<StoredExposure>) -> StoreResult<StoredExposure> {
        let named = || {
            format!(
                "exposure to case {} at venue {} from {}",
                self.key.case, self.key.venue, self.key.contact_start
            )
        };
        let mut e = found.ok_or_else(|| StoreError::NotFound(named()))?;
        if e.state != ExposureState::Pending {
            return Err(StoreError::Refused(format!(
                "{} is {} already",
                named(),
                e.state.as_str()
            )));
        }
        e.state = self.to;
        Ok(e)
    }
}

/// The device `id` (as `found`) with its key revoked at `at`, to be written:
/// [`StoreError::NotFound`] for no such device, [`StoreError::Refused`] when it was revoked
/// already (the first revocation's time stands).
pub fn revoke_device(id: DeviceId, found: Option<Device>, at: OffsetDateTime) -> StoreResult<Device> {
    let mut d = found.ok_or_else(|| StoreError::NotFound(format!("device {}", id.0)))?;
    if let Some(when) = d.revoked_at {
        return Err(StoreError::Refused(format!(
            "device {} was revoked already, at {when}",
            id.0
        )));
    }
    d.revoked_at = Some(at);
    Ok(d)
}

/// Sorts a batch of scans against what is stored: `stored(device, seq)` gives the holder whose
/// check-in holds that key already, if any. Returns each scan's outcome (in the batch's order)
/// and the positions of those to store. Within the batch the first scan of a key wins: a later
/// one with the same holder is [`Recorded::Again`], with another holder [`Recorded::Taken`].
pub fn sort_checkins(
    batch: &[CheckIn],
    mut stored: impl FnMut(i64, i64) -> StoreResult<Option<HolderId>>,
) -> StoreResult<(Vec<Recorded>, Vec<usize>)> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    let mut first: HashMap<(i64, i64), usize> = HashMap::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        let key = (c.device.0, c.seq);
        let holder = match first.get(&key) {
            Some(&j) => Some(batch[j].holder.clone()),
            None => stored(key.0, key.1)?,
        };
        outcomes.push(match holder {
            None => {
                first.insert(key, i);
                fresh.push(i);
                Recorded::New
            }
            Some(h) if h == c.holder => Recorded::Again,
            Some(_) => Recorded::Taken,
        });
    }
    Ok((outcomes, fresh))
}

/// Whether a holder with `open` undecided appeals may file another under a cap of `max_open`:
/// [`StoreError::Refused`], saying so, when not.
pub fn may_file_appeal(open: u64, max_open: u32) -> StoreResult<()> {
    if open >= u64::from(max_open) {
        return Err(StoreError::Refused(format!(
            "{open} appeals are still open; at most {max_open} may wait for a decision at once"
        )));
    }
    Ok(())
}

/// The appeal `id` (as `found`) with its decision, to be written: [`StoreError::NotFound`] for no
/// such appeal, [`StoreError::Refused`] when it was decided already.
pub fn decide_appeal(
    id: AppealId,
    found: Option<Appeal>,
    officer: OfficerId,
    upheld: bool,
    note: &str,
    at: OffsetDateTime,
) -> StoreResult<Appeal> {
    let mut a = found.ok_or_else(|| StoreError::NotFound(format!("appeal {id}")))?;
    if a.decision.is_some() {
        return Err(StoreError::Refused(format!("appeal {id} is decided already")));
    }
    a.decision = Some((officer, upheld, note.to_owned(), at));
    Ok(a)
}

/// The override `id` (as `found`) approved by `officer`, to be written:
/// [`StoreError::NotFound`] for no such override, [`StoreError::Refused`] when
/// [`Override::approve`] refuses (the proposer, twice, or after expiry).
pub fn approve_override(
    id: OverrideId,
    found: Option<Override>,
    officer: OfficerId,
    at: OffsetDateTime,
) -> StoreResult<Override> {
    let mut o = found.ok_or_else(|| StoreError::NotFound(format!("override {id}")))?;
    o.approve(officer, at)
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    Ok(o)
}

/// The one approval rule for every two-person act (overrides, risk areas, accounts and roles,
/// bulk exposure decisions), called inside the approving transaction with both accounts as
/// stored: the approver is not the proposer; neither account was proposed or approved into
/// being by the other (an admin cannot make a second self); neither had its credentials last
/// reset (password, second factor) or was last re-enabled by the other (who then knew them);
/// the approver's account is at least `policy.approver_min_age` old at `at`, and so is its last
/// reset (a freshly reset account counts as new); both are enabled and hold `needed` (an admin
/// holds the officer's role too). Every refusal is [`StoreError::Refused`] saying which rule.
pub fn check_approver(
    proposer: Option<&Officer>,
    approver: Option<&Officer>,
    needed: Role,
    policy: ApprovalPolicy,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let refuse = |m: &str| Err(StoreError::Refused(m.to_owned()));
    let (Some(proposer), Some(approver)) = (proposer, approver) else {
        return refuse("the proposer's or the approver's account does not exist");
    };
    let holds = |o: &Officer| match needed {
        Role::Admin => o.role == Role::Admin,
        Role::Officer => matches!(o.role, Role::Officer | Role::Admin),
        Role::Auditor => o.role == Role::Auditor,
    };
    if approver.id == proposer.id {
        return refuse("the approver must be a different person than the proposer");
    }
    let made_by = |o: &Officer, by: OfficerId| o.created_by == Some(by) || o.creation_approved_by == Some(by);
    if made_by(approver, proposer.id) || made_by(proposer, approver.id) {
        return refuse("an account cannot approve what the admin who created it proposed, nor the reverse");
    }
    let reset_by = |o: &Officer, by: OfficerId| o.credentials_reset_by == Some(by);
    if reset_by(approver, proposer.id) || reset_by(proposer, approver.id) {
        return refuse(
            "an account whose credentials the proposer reset (or that the proposer re-enabled) cannot approve the proposer's acts, nor the reverse",
        );
    }
    // One admin who may hold both accounts' credentials: who last reset one also reset the
    // other, or approved the other's creation (and so was shown its first password).
    let may_hold = |o: &Officer| [o.credentials_reset_by, o.creation_approved_by];
    if approver
        .credentials_reset_by
        .is_some_and(|r| may_hold(proposer).contains(&Some(r)))
        || proposer
            .credentials_reset_by
            .is_some_and(|r| may_hold(approver).contains(&Some(r)))
    {
        return refuse(
            "one admin may hold both the proposer's and the approver's credentials (reset one, and reset the other or approved its creation)",
        );
    }
    if approver.disabled_at.is_some() || !holds(approver) {
        return refuse(&format!(
            "the approver must be an enabled {} account",
            needed.as_str()
        ));
    }
    if proposer.disabled_at.is_some() || !holds(proposer) {
        return refuse(&format!(
            "the proposer is no longer an enabled {} account",
            needed.as_str()
        ));
    }
    if at - approver.created_at < policy.approver_min_age {
        return refuse(&format!(
            "the approver's account is younger than {} hours",
            policy.approver_min_age.whole_hours()
        ));
    }
    if approver
        .credentials_reset_at
        .is_some_and(|r| at - r < policy.approver_min_age)
    {
        return refuse(&format!(
            "the approver's credentials were reset (or the account re-enabled) less than {} hours ago",
            policy.approver_min_age.whole_hours()
        ));
    }
    Ok(())
}

/// Approves a proposal as `by` at `at` (after [`check_approver`]): refused when it is no longer
/// pending, has expired, or `by` proposed it.
pub fn approve_proposal(
    id: i64,
    found: Option<Proposal>,
    by: OfficerId,
    at: OffsetDateTime,
) -> StoreResult<Proposal> {
    let mut p = found.ok_or_else(|| StoreError::NotFound(format!("proposal {id}")))?;
    if p.proposed_by == by {
        return Err(StoreError::Refused(
            "the approver must be a different person than the proposer".into(),
        ));
    }
    if p.state != ProposalState::Pending {
        return Err(StoreError::Refused(format!(
            "proposal {id} is {} already",
            p.state.as_str()
        )));
    }
    if p.expired(at) {
        return Err(StoreError::Refused(format!(
            "proposal {id} expired before it was approved"
        )));
    }
    p.state = ProposalState::Approved;
    p.decided = Some((by, at));
    Ok(p)
}

/// Checks a bulk decision's approval: it decided `decided` exposures numbered up to the
/// proposal's mark, of `count` pending when proposed. More means exposures recorded after the
/// proposal came in under the mark (PostgreSQL numbers rows before they commit):
/// [`StoreError::Refused`], and the approval is undone.
pub fn bulk_decided(case: i64, decided: u64, count: u64) -> StoreResult<()> {
    if decided > count {
        return Err(StoreError::Refused(format!(
            "case {case} has exposures recorded since the proposal among those it covers; propose again"
        )));
    }
    Ok(())
}

/// The one-time password hash an account created at approval gets: the one the approving
/// request brought (made for the approver, never shown to the proposer); [`StoreError::Refused`]
/// when it brought none.
pub fn one_time_password_for<'a>(username: &str, brought: Option<&'a str>) -> StoreResult<&'a str> {
    brought.filter(|h| !h.is_empty()).ok_or_else(|| {
        StoreError::Refused(format!(
            "the account {username} is created with a one-time password made at approval; none was given"
        ))
    })
}

/// The phone a new account's one-time password is sent to: an account proposed before phones
/// were recorded is refused (proposed again with one, nobody but its owner learns the password).
pub fn phone_for_account<'a>(username: &str, phone: Option<&'a str>) -> StoreResult<&'a str> {
    phone.ok_or_else(|| {
        StoreError::Refused(format!(
            "the account {username} was proposed without its owner's phone, where its one-time password is sent: withdraw it and propose it again"
        ))
    })
}

/// Withdraws a proposal as `by` at `at`: only its proposer, only while pending.
pub fn withdraw_proposal(
    id: i64,
    found: Option<Proposal>,
    by: OfficerId,
    at: OffsetDateTime,
) -> StoreResult<Proposal> {
    let mut p = found.ok_or_else(|| StoreError::NotFound(format!("proposal {id}")))?;
    if p.proposed_by != by {
        return Err(StoreError::Refused(
            "only the proposer can withdraw a proposal".into(),
        ));
    }
    if p.state != ProposalState::Pending {
        return Err(StoreError::Refused(format!(
            "proposal {id} is {} already",
            p.state.as_str()
        )));
    }
    p.state = ProposalState::Withdrawn;
    p.decided = Some((by, at));
    Ok(p)
}

/// Counts what an update touched: [`StoreError::NotFound`] naming `what` when it was nothing.
pub fn updated(rows: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if rows == 0 {
        return Err(StoreError::NotFound(what()));
    }
    Ok(())
}

/// Whether a proposed policy version may still be published: only while the publication it was
/// proposed in place of (`replaces`, a `seq`) is the newest, so that an old proposal cannot roll
/// back a newer version.
pub fn still_in_force(replaces: i64, newest: i64) -> StoreResult<()> {
    if replaces == newest {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "this version was proposed in place of publication {replaces}, but publication {newest} is in force now; propose it again"
        )))
    }
}

/// Whether a policy file becomes the first published version: only when none is published, and
/// then on a store without holders (a new installation) or when the operator pinned its hash.
pub fn first_policy(any_policy: bool, any_holder: bool, pinned: bool) -> crate::FirstPolicy {
    if any_policy {
        crate::FirstPolicy::Exists
    } else if !any_holder || pinned {
        crate::FirstPolicy::Published
    } else {
        crate::FirstPolicy::NeedsPin
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use healthcode_domain::{CaseId, Colour, Exposure, ExposureGrade, HolderId, VenueId};
    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

    fn sec(n: i64) -> Duration {
        Duration::seconds(n)
    }

    fn sends(last: i64, window: i64, count: i64) -> OtpSends {
        OtpSends {
            last_sent: T + sec(last),
            window_start: T + sec(window),
            window_count: count,
        }
    }

    #[test]
    fn a_first_code_opens_a_window() {
        let limits = OtpLimits::default();
        assert_eq!(
            limits.issue(T, None),
            Ok(OtpIssue {
                expires_at: T + Duration::minutes(5),
                attempts: 5,
                sends: sends(0, 0, 1)
            })
        );
    }

    #[test]
    fn codes_are_a_minimum_interval_apart() {
        let limits = OtpLimits::default();
        let before = sends(0, 0, 1);
        assert_eq!(limits.issue(T + sec(20), Some(&before)), Err(sec(40)));
        assert_eq!(limits.issue(T + sec(59), Some(&before)), Err(sec(1)));
        // Exactly the interval later: allowed, in the same window.
        let at = T + sec(60);
        assert_eq!(
            limits.issue(at, Some(&before)).map(|i| i.sends),
            Ok(OtpSends {
                last_sent: at,
                window_start: T,
                window_count: 2
            })
        );
    }

    #[test]
    fn a_full_window_waits_for_its_end() {
        let limits = OtpLimits::default();
        let full = sends(240, 0, 5);
        assert_eq!(limits.issue(T + sec(300), Some(&full)), Err(sec(3300)));
        assert_eq!(limits.issue(T + sec(3599), Some(&full)), Err(sec(1)));
        // Both limits refuse: the longer wait.
        assert_eq!(limits.issue(T + sec(250), Some(&full)), Err(sec(3350)));
        // At the window's end a new one opens, counting from one.
        let at = T + sec(3600);
        assert_eq!(
            limits.issue(at, Some(&full)).map(|i| i.sends),
            Ok(OtpSends {
                last_sent: at,
                window_start: at,
                window_count: 1
            })
        );
        // One short of full: the fifth still goes.
        assert_eq!(
            limits
                .issue(T + sec(300), Some(&sends(240, 0, 4)))
                .map(|i| i.sends.window_count),
            Ok(5)
        );
    }

    const CH: [u8; 32] = [7; 32];

    fn stored(code: &[u8; 32], expires_in: i64, attempts_left: i64) -> Option<StoredOtp> {
        Some(StoredOtp {
            challenge_hash: CH.to_vec(),
            code_hash: Some(code.to_vec()),
            expires_at: T + sec(expires_in),
            attempts_left,
        })
    }

    #[test]
    fn a_guess_is_checked_in_order() {
        let (code, wrong) = ([1u8; 32], [2u8; 32]);
        assert_eq!(check_otp(None, &CH, &code, T).unwrap(), OtpCheck::Missing);
        let used = StoredOtp {
            challenge_hash: CH.to_vec(),
            code_hash: None,
            expires_at: T + sec(300),
            attempts_left: 5,
        };
        assert_eq!(check_otp(Some(used), &CH, &code, T).unwrap(), OtpCheck::Missing);
        // Under another challenge the right code is no code at all, and a wrong one costs nothing.
        assert_eq!(
            check_otp(stored(&code, 300, 5), &[8; 32], &code, T).unwrap(),
            OtpCheck::Missing
        );
        assert_eq!(
            check_otp(stored(&code, 300, 1), &[8; 32], &wrong, T).unwrap(),
            OtpCheck::Missing
        );
        assert_eq!(
            check_otp(stored(&code, 300, 5), &CH, &code, T).unwrap(),
            OtpCheck::Accepted
        );
        assert_eq!(
            check_otp(stored(&code, 300, 5), &CH, &wrong, T).unwrap(),
            OtpCheck::Wrong { attempts_left: 4 }
        );
        // Expired before exhausted, exhausted before right or wrong.
        assert_eq!(
            check_otp(stored(&code, 300, 0), &CH, &code, T + sec(300)).unwrap(),
            OtpCheck::Expired
        );
        assert_eq!(
            check_otp(stored(&code, 300, 0), &CH, &code, T).unwrap(),
            OtpCheck::Exhausted
        );
    }

    #[test]
    fn a_code_expires_at_its_second() {
        let code = [1u8; 32];
        assert_eq!(
            check_otp(stored(&code, 300, 5), &CH, &code, T + sec(299)).unwrap(),
            OtpCheck::Accepted
        );
        assert_eq!(
            check_otp(stored(&code, 300, 5), &CH, &code, T + sec(300)).unwrap(),
            OtpCheck::Expired
        );
    }

    #[test]
    fn the_last_attempt_counts_to_zero() {
        let (code, wrong) = ([1u8; 32], [2u8; 32]);
        assert_eq!(
            check_otp(stored(&code, 300, 1), &CH, &wrong, T).unwrap(),
            OtpCheck::Wrong { attempts_left: 0 }
        );
        assert_eq!(
            check_otp(stored(&code, 300, 1), &CH, &code, T).unwrap(),
            OtpCheck::Accepted
        );
        assert_eq!(
            check_otp(stored(&code, 300, 0), &CH, &code, T).unwrap(),
            OtpCheck::Exhausted
        );
        assert!(matches!(
            check_otp(stored(&code, 300, 1000), &CH, &wrong, T),
            Err(StoreError::Corrupt(m)) if m == "1000 attempts left"
        ));
    }

    fn exposure(state: ExposureState) -> StoredExposure {
        StoredExposure {
            holder: HolderId::from_bytes(&[1; 8]).unwrap(),
            exposure: Exposure {
                case: CaseId(3),
                venue: VenueId(4),
                case_interval: (T, T + Duration::hours(1)),
                contact_interval: (T, T + Duration::hours(1)),
                overlap_minutes: 60,
                grade: ExposureGrade::Close,
            },
            state,
        }
    }

    #[test]
    fn only_pending_exposures_are_reviewed_and_never_back_to_pending() {
        use ExposureState::{Applied, Dismissed, Pending};
        let key = exposure(Pending).key();
        assert!(matches!(
            ExposureReview::new(&key, Pending),
            Err(StoreError::Refused(m)) if m == "a reviewed exposure cannot be pending"
        ));
        let review = ExposureReview::new(&key, Applied).unwrap();
        assert_eq!(review.apply(Some(exposure(Pending))).unwrap(), exposure(Applied));
        let named = format!("exposure to case 3 at venue 4 from {T}");
        assert!(matches!(
            review.apply(Some(exposure(Dismissed))),
            Err(StoreError::Refused(m)) if m == format!("{named} is dismissed already")
        ));
        assert!(matches!(review.apply(None), Err(StoreError::NotFound(m)) if m == named));
    }

    fn appeal(decided: bool) -> Appeal {
        Appeal {
            id: AppealId(7),
            holder: HolderId::from_bytes(&[1; 8]).unwrap(),
            text: "not me".into(),
            filed_at: T,
            decision: decided.then(|| (OfficerId(1), false, "no".into(), T)),
        }
    }

    #[test]
    fn an_appeal_is_decided_once() {
        let at = T + Duration::hours(1);
        let decided = decide_appeal(AppealId(7), Some(appeal(false)), OfficerId(2), true, "yes", at).unwrap();
        assert_eq!(decided.decision, Some((OfficerId(2), true, "yes".into(), at)));
        assert!(matches!(
            decide_appeal(AppealId(7), Some(appeal(true)), OfficerId(2), true, "yes", at),
            Err(StoreError::Refused(m)) if m == "appeal 7 is decided already"
        ));
        assert!(matches!(
            decide_appeal(AppealId(8), None, OfficerId(2), true, "yes", at),
            Err(StoreError::NotFound(m)) if m == "appeal 8"
        ));
    }

    #[test]
    fn an_override_needs_a_second_officer() {
        let o = Override {
            id: OverrideId(5),
            colour: Colour::Green,
            reason: "lab mix-up".into(),
            proposed_by: OfficerId(1),
            proposed_at: T,
            approval: None,
            expires_at: T + Duration::days(1),
        };
        assert!(matches!(
            approve_override(OverrideId(5), Some(o.clone()), OfficerId(1), T),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            approve_override(OverrideId(6), None, OfficerId(2), T),
            Err(StoreError::NotFound(m)) if m == "override 6"
        ));
        let approved = approve_override(OverrideId(5), Some(o), OfficerId(2), T).unwrap();
        assert_eq!(approved.approval, Some((OfficerId(2), T)));
    }

    #[test]
    fn an_update_of_nothing_is_not_found() {
        assert!(updated(1, || "officer 1".into()).is_ok());
        assert!(
            matches!(updated(0, || "officer 1".into()), Err(StoreError::NotFound(m)) if m == "officer 1")
        );
    }

    fn staff(id: i64, role: Role, age_hours: i64) -> Officer {
        Officer {
            id: OfficerId(id),
            username: format!("u{id}"),
            role,
            password_hash: String::new(),
            must_change_password: false,
            created_at: T - Duration::hours(age_hours),
            disabled_at: None,
            second_factor: true,
            created_by: None,
            creation_approved_by: None,
            credentials_reset_by: None,
            credentials_reset_at: None,
            phone: None,
            phone_proven_at: None,
        }
    }

    fn refused(r: StoreResult<()>) -> String {
        match r {
            Err(StoreError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_approval_rule_refuses_oneself_a_puppet_a_young_account_and_the_wrong_role() {
        let policy = ApprovalPolicy::default();
        let admin = staff(1, Role::Admin, 100);
        let other = staff(2, Role::Admin, 100);
        let check = |p: &Officer, a: &Officer, role| check_approver(Some(p), Some(a), role, policy, T);
        assert!(check(&admin, &other, Role::Admin).is_ok());
        assert!(
            check(&admin, &other, Role::Officer).is_ok(),
            "an admin does what an officer does"
        );
        assert!(refused(check(&admin, &admin, Role::Admin)).contains("different person"));
        // The puppet: proposed by the admin (or approved into being by them), old enough.
        let mut puppet = staff(3, Role::Admin, 100);
        puppet.created_by = Some(admin.id);
        assert!(refused(check(&admin, &puppet, Role::Admin)).contains("created it"));
        assert!(refused(check(&puppet, &admin, Role::Admin)).contains("created it"));
        puppet.created_by = Some(other.id);
        puppet.creation_approved_by = Some(admin.id);
        assert!(refused(check(&admin, &puppet, Role::Admin)).contains("created it"));
        // A day is the default minimum age: one second less is refused, exactly a day is not.
        let young = Officer {
            created_at: T - Duration::hours(24) + Duration::seconds(1),
            ..staff(4, Role::Admin, 0)
        };
        assert!(refused(check(&admin, &young, Role::Admin)).contains("younger than 24 hours"));
        assert!(check(&admin, &staff(5, Role::Admin, 24), Role::Admin).is_ok());
        let none = ApprovalPolicy {
            approver_min_age: Duration::ZERO,
        };
        assert!(check_approver(Some(&admin), Some(&young), Role::Admin, none, T).is_ok());
        // Roles and disabled accounts.
        let officer = staff(6, Role::Officer, 100);
        assert!(refused(check(&admin, &officer, Role::Admin)).contains("enabled admin"));
        assert!(
            refused(check(&officer, &staff(7, Role::Auditor, 100), Role::Officer))
                .contains("enabled officer")
        );
        let disabled = Officer {
            disabled_at: Some(T - Duration::hours(1)),
            ..staff(8, Role::Officer, 100)
        };
        assert!(refused(check(&officer, &disabled, Role::Officer)).contains("enabled officer"));
        assert!(refused(check(&disabled, &officer, Role::Officer)).contains("proposer"));
        assert!(check_approver(None, Some(&officer), Role::Officer, policy, T).is_err());
    }

    #[test]
    fn the_approval_rule_refuses_an_account_whose_credentials_the_other_reset() {
        let policy = ApprovalPolicy::default();
        let admin = staff(1, Role::Admin, 100);
        let check = |p: &Officer, a: &Officer| check_approver(Some(p), Some(a), Role::Admin, policy, T);
        // Reset (or re-enabled) by the proposer long ago: refused, in either direction.
        let victim = Officer {
            credentials_reset_by: Some(admin.id),
            credentials_reset_at: Some(T - Duration::days(30)),
            ..staff(2, Role::Admin, 100)
        };
        assert!(refused(check(&admin, &victim)).contains("reset"));
        assert!(refused(check(&victim, &admin)).contains("reset"));
        // Reset by a third admin: fine for the first admin once a day has passed since.
        let other = staff(3, Role::Admin, 100);
        let by_other = |ago: Duration| Officer {
            credentials_reset_by: Some(other.id),
            credentials_reset_at: Some(T - ago),
            ..staff(2, Role::Admin, 100)
        };
        assert!(check(&admin, &by_other(Duration::hours(24))).is_ok());
        let fresh = by_other(Duration::hours(24) - Duration::seconds(1));
        assert!(refused(check(&admin, &fresh)).contains("less than 24 hours ago"));
        // The proposer's own recent reset does not stop a second person approving.
        assert!(check(&fresh, &admin).is_ok());
        // Two accounts the same admin reset (or one reset, the other's creation approved) may
        // both be that admin's: neither approves the other, long after.
        let old_reset = |n: i64, by: OfficerId| Officer {
            credentials_reset_by: Some(by),
            credentials_reset_at: Some(T - Duration::days(30)),
            ..staff(n, Role::Admin, 100)
        };
        let (x, y) = (old_reset(4, other.id), old_reset(5, other.id));
        assert!(refused(check(&x, &y)).contains("one admin may hold both"));
        let made = Officer {
            creation_approved_by: Some(other.id),
            ..staff(6, Role::Admin, 100)
        };
        assert!(refused(check(&made, &x)).contains("one admin may hold both"));
        assert!(refused(check(&x, &made)).contains("one admin may hold both"));
        // Two accounts whose creations one admin approved, never reset: not refused here (the
        // first password goes to the approver; see docs/governance.md).
        let made_too = Officer {
            creation_approved_by: Some(other.id),
            ..staff(7, Role::Admin, 100)
        };
        assert!(check(&made, &made_too).is_ok());
    }

    #[test]
    fn a_proposal_is_approved_once_before_expiry_and_withdrawn_only_by_its_proposer() {
        let p = Proposal {
            id: 9,
            act: crate::proposals::Act::RiskAreaEnd { area: 1 },
            proposed_by: OfficerId(1),
            proposed_at: T,
            expires_at: T + Duration::hours(72),
            state: ProposalState::Pending,
            decided: None,
        };
        assert!(matches!(
            approve_proposal(9, Some(p.clone()), OfficerId(1), T),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            approve_proposal(9, Some(p.clone()), OfficerId(2), T + Duration::hours(72)),
            Err(StoreError::Refused(m)) if m.contains("expired")
        ));
        let done = approve_proposal(9, Some(p.clone()), OfficerId(2), T).unwrap();
        assert_eq!(
            (done.state, done.decided),
            (ProposalState::Approved, Some((OfficerId(2), T)))
        );
        assert!(
            matches!(approve_proposal(9, Some(done), OfficerId(3), T), Err(StoreError::Refused(m)) if m.contains("approved already"))
        );
        assert!(matches!(
            approve_proposal(9, None, OfficerId(2), T),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            withdraw_proposal(9, Some(p.clone()), OfficerId(2), T),
            Err(StoreError::Refused(_))
        ));
        let w = withdraw_proposal(9, Some(p), OfficerId(1), T).unwrap();
        assert_eq!(w.state, ProposalState::Withdrawn);
        assert!(
            matches!(approve_proposal(9, Some(w), OfficerId(2), T), Err(StoreError::Refused(m)) if m.contains("withdrawn"))
        );
    }
}
