//! The decisions a store takes inside its transactions, made once for every backend: a backend
//! reads the row(s), calls the rule here, and writes what the rule returned. Nothing here does
//! I/O, so each rule is tested with plain values.

use std::collections::HashMap;

use healthcode_domain::{AppealId, CheckIn, DeviceId, HolderId, OfficerId, Override, OverrideId};
use time::{Duration, OffsetDateTime};

use crate::{
    Appeal, Device, ExposureKey, ExposureState, OtpCheck, OtpLimits, Recorded, StoreError, StoreResult,
    StoredExposure,
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

/// Counts what an update touched: [`StoreError::NotFound`] naming `what` when it was nothing.
pub fn updated(rows: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if rows == 0 {
        return Err(StoreError::NotFound(what()));
    }
    Ok(())
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
}
