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
mod tests;
