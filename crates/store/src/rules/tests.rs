//! The rules' own tests: each decision the stores share, checked without a database.

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
    assert!(matches!(updated(0, || "officer 1".into()), Err(StoreError::NotFound(m)) if m == "officer 1"));
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
        refused(check(&officer, &staff(7, Role::Auditor, 100), Role::Officer)).contains("enabled officer")
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
