//! Each rule of the default policy at its boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_domain::*;
use healthcode_policy::{Cause, Policy, evaluate};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const T: OffsetDateTime = datetime!(2026-11-20 10:00:00 UTC);

fn exposure(grade: ExposureGrade, end: OffsetDateTime) -> Exposure {
    Exposure {
        case: CaseId(1),
        venue: VenueId(7),
        case_interval: (end - Duration::hours(1), end),
        contact_interval: (end - Duration::minutes(30), end + Duration::hours(2)),
        overlap_minutes: 30,
        grade,
    }
}

fn colour_at(facts: &HolderFacts, at: OffsetDateTime) -> Colour {
    evaluate(&Policy::default_policy(), facts, &[], at).colour
}

fn negative(at: OffsetDateTime) -> TestResult {
    TestResult {
        positive: false,
        sampled_at: at,
        lab: "City Lab 1".into(),
    }
}

#[test]
fn same_place_is_yellow_for_exactly_seven_days() {
    let facts = HolderFacts {
        exposures: vec![exposure(ExposureGrade::SamePlace, T)],
        ..Default::default()
    };
    assert_eq!(colour_at(&facts, T - Duration::seconds(1)), Colour::Green);
    assert_eq!(colour_at(&facts, T), Colour::Yellow);
    // The last hour of day 7, and its last second.
    assert_eq!(
        colour_at(&facts, T + Duration::days(7) - Duration::hours(1)),
        Colour::Yellow
    );
    assert_eq!(
        colour_at(&facts, T + Duration::days(7) - Duration::seconds(1)),
        Colour::Yellow
    );
    assert_eq!(colour_at(&facts, T + Duration::days(7)), Colour::Green);
    let s = evaluate(&Policy::default_policy(), &facts, &[], T + Duration::days(1));
    assert_eq!(s.green_at, Some(T + Duration::days(7)));
    assert_eq!(s.policy_version, "default-2026.1");
    assert_eq!(s.reasons.len(), 1);
    let r = &s.reasons[0];
    assert_eq!(
        (r.colour, r.since, r.until),
        (Colour::Yellow, T, T + Duration::days(7))
    );
    match &r.cause {
        Cause::Rule { rule, fact } => {
            assert_eq!(rule, "same-place");
            assert!(fact.contains("venue 7") && fact.contains("case 1"), "{fact}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn close_contact_is_red_for_exactly_fourteen_days() {
    let facts = HolderFacts {
        exposures: vec![exposure(ExposureGrade::Close, T)],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&facts, T + Duration::days(14) - Duration::hours(1)),
        Colour::Red
    );
    assert_eq!(colour_at(&facts, T + Duration::days(14)), Colour::Green);
}

#[test]
fn a_new_exposure_extends_red() {
    let facts = HolderFacts {
        exposures: vec![
            exposure(ExposureGrade::Close, T),
            exposure(ExposureGrade::Close, T + Duration::days(5)),
        ],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&facts, T + Duration::days(14) + Duration::hours(1)),
        Colour::Red
    );
    let s = evaluate(&Policy::default_policy(), &facts, &[], T + Duration::days(6));
    assert_eq!(s.green_at, Some(T + Duration::days(19)));
    assert_eq!(colour_at(&facts, T + Duration::days(19)), Colour::Green);
}

#[test]
fn red_then_yellow_then_green() {
    let facts = HolderFacts {
        exposures: vec![
            exposure(ExposureGrade::Close, T),
            exposure(ExposureGrade::SamePlace, T + Duration::days(10)),
        ],
        ..Default::default()
    };
    assert_eq!(colour_at(&facts, T + Duration::days(13)), Colour::Red);
    assert_eq!(colour_at(&facts, T + Duration::days(15)), Colour::Yellow);
    assert_eq!(colour_at(&facts, T + Duration::days(17)), Colour::Green);
    let s = evaluate(&Policy::default_policy(), &facts, &[], T + Duration::days(13));
    assert_eq!(s.green_at, Some(T + Duration::days(17)));
    assert_eq!(s.reasons.len(), 2);
    assert_eq!(s.reasons[0].colour, Colour::Red);
}

#[test]
fn a_negative_test_ends_yellow_but_not_red_from_a_close_contact() {
    let after = T + Duration::days(2);
    let yellow = HolderFacts {
        exposures: vec![exposure(ExposureGrade::SamePlace, T)],
        tests: vec![negative(after)],
        ..Default::default()
    };
    assert_eq!(colour_at(&yellow, after - Duration::seconds(1)), Colour::Yellow);
    assert_eq!(colour_at(&yellow, after), Colour::Green);
    // A negative test taken before the exposure ended clears nothing.
    let early = HolderFacts {
        exposures: vec![exposure(ExposureGrade::SamePlace, T)],
        tests: vec![negative(T - Duration::hours(1))],
        ..Default::default()
    };
    assert_eq!(colour_at(&early, T + Duration::days(3)), Colour::Yellow);
    // The close-contact rule names no early end.
    let red = HolderFacts {
        exposures: vec![exposure(ExposureGrade::Close, T)],
        tests: vec![negative(after), negative(after + Duration::days(2))],
        ..Default::default()
    };
    assert_eq!(colour_at(&red, T + Duration::days(5)), Colour::Red);
}

#[test]
fn a_case_needs_two_negative_tests_a_day_apart() {
    let case = ConfirmedCase {
        id: CaseId(3),
        onset: T - Duration::days(1),
        confirmed_at: T,
    };
    let close_together = HolderFacts {
        cases: vec![case.clone()],
        tests: vec![
            negative(T + Duration::days(3)),
            negative(T + Duration::days(3) + Duration::hours(12)),
        ],
        ..Default::default()
    };
    assert_eq!(colour_at(&close_together, T + Duration::days(4)), Colour::Red);
    let apart = HolderFacts {
        cases: vec![case],
        tests: vec![negative(T + Duration::days(3)), negative(T + Duration::days(4))],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&apart, T + Duration::days(4) - Duration::seconds(1)),
        Colour::Red
    );
    assert_eq!(colour_at(&apart, T + Duration::days(4)), Colour::Green);
}

#[test]
fn three_consecutive_daily_reports_end_symptoms_yellow_and_a_gap_resets() {
    let decl = HealthDeclaration {
        at: T,
        symptoms: vec![],
        temperature_c: Some(37.8),
    };
    let report = |d: i64| DailyReport {
        at: T + Duration::days(d),
        well: true,
    };
    let consecutive = HolderFacts {
        declarations: vec![decl.clone()],
        reports: vec![report(1), report(2), report(3)],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&consecutive, T + Duration::days(3) - Duration::seconds(1)),
        Colour::Yellow
    );
    assert_eq!(colour_at(&consecutive, T + Duration::days(3)), Colour::Green);
    let gap = HolderFacts {
        declarations: vec![decl.clone()],
        reports: vec![report(1), report(2), report(4)],
        ..Default::default()
    };
    assert_eq!(colour_at(&gap, T + Duration::days(5)), Colour::Yellow);
    // 37.2 °C with no symptoms is not a fever.
    let normal = HolderFacts {
        declarations: vec![HealthDeclaration {
            at: T,
            symptoms: vec![],
            temperature_c: Some(37.2),
        }],
        ..Default::default()
    };
    assert_eq!(colour_at(&normal, T + Duration::hours(1)), Colour::Green);
    let cough = HolderFacts {
        declarations: vec![HealthDeclaration {
            at: T,
            symptoms: vec![Symptom::Cough],
            temperature_c: None,
        }],
        ..Default::default()
    };
    assert_eq!(colour_at(&cough, T + Duration::hours(1)), Colour::Yellow);
}

#[test]
fn travel_to_a_risk_area_counts_from_the_end_of_the_last_local_day() {
    let zj = Issuer::parse("CN-ZJ").unwrap();
    let area = RiskArea {
        region: zj.clone(),
        level: RiskLevel::High,
        from: T - Duration::days(10),
        until: None,
    };
    let facts = HolderFacts {
        travels: vec![TravelDeclaration {
            at: T,
            region: zj.clone(),
            from: date!(2026 - 11 - 17),
            until: date!(2026 - 11 - 18),
        }],
        ..Default::default()
    };
    // The stay ended at midnight after 18 November, Beijing time: 16:00 UTC on the 18th.
    let end = datetime!(2026-11-18 16:00:00 UTC);
    let s = evaluate(&Policy::default_policy(), &facts, std::slice::from_ref(&area), T);
    assert_eq!(s.colour, Colour::Red);
    assert_eq!(s.green_at, Some(end + Duration::days(14)));
    // A medium-risk area gives yellow; a low-risk or unrelated one nothing.
    let medium = RiskArea {
        level: RiskLevel::Medium,
        ..area.clone()
    };
    assert_eq!(
        evaluate(&Policy::default_policy(), &facts, &[medium], T).colour,
        Colour::Yellow
    );
    let elsewhere = RiskArea {
        region: Issuer::parse("CN-GD").unwrap(),
        ..area.clone()
    };
    assert_eq!(
        evaluate(&Policy::default_policy(), &facts, &[elsewhere], T).colour,
        Colour::Green
    );
    // A country-wide area covers its provinces.
    let country = RiskArea {
        region: Issuer::parse("CN").unwrap(),
        ..area
    };
    assert_eq!(
        evaluate(&Policy::default_policy(), &facts, &[country], T).colour,
        Colour::Red
    );
}

fn override_to(colour: Colour, expires: OffsetDateTime) -> Override {
    Override {
        id: OverrideId(1),
        colour,
        reason: "lab mix-up corrected".into(),
        proposed_by: OfficerId(10),
        proposed_at: T,
        approval: None,
        expires_at: expires,
    }
}

#[test]
fn an_override_needs_a_second_officer() {
    let mut o = override_to(Colour::Green, T + Duration::days(3));
    assert_eq!(o.approve(OfficerId(10), T), Err(ApprovalError::SameOfficer));
    let red = HolderFacts {
        exposures: vec![exposure(ExposureGrade::Close, T)],
        overrides: vec![o.clone()],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&red, T + Duration::hours(1)),
        Colour::Red,
        "an unapproved override changes nothing"
    );
    // Forged state: approved by the proposer is still not in force.
    let mut self_approved = o.clone();
    self_approved.approval = Some((OfficerId(10), T));
    let f = HolderFacts {
        overrides: vec![self_approved],
        ..red.clone()
    };
    assert_eq!(colour_at(&f, T + Duration::hours(1)), Colour::Red);
    o.approve(OfficerId(11), T + Duration::minutes(5)).unwrap();
    let f = HolderFacts {
        overrides: vec![o.clone()],
        ..red.clone()
    };
    let s = evaluate(&Policy::default_policy(), &f, &[], T + Duration::hours(1));
    assert_eq!(s.colour, Colour::Green);
    assert!(
        matches!(&s.reasons[0].cause, Cause::Override { reason, .. } if reason == "lab mix-up corrected")
    );
    assert_eq!(o.approve(OfficerId(12), T), Err(ApprovalError::AlreadyApproved));
}

#[test]
fn an_expired_override_stops_counting() {
    let mut o = override_to(Colour::Red, T + Duration::days(2));
    o.approve(OfficerId(11), T).unwrap();
    let f = HolderFacts {
        overrides: vec![o],
        ..Default::default()
    };
    assert_eq!(
        colour_at(&f, T + Duration::days(2) - Duration::seconds(1)),
        Colour::Red
    );
    assert_eq!(colour_at(&f, T + Duration::days(2)), Colour::Green);
    let s = evaluate(&Policy::default_policy(), &f, &[], T + Duration::days(1));
    assert_eq!(s.green_at, Some(T + Duration::days(2)));
    let mut late = override_to(Colour::Red, T + Duration::days(1));
    assert_eq!(
        late.approve(OfficerId(11), T + Duration::days(1)),
        Err(ApprovalError::Expired)
    );
}

#[test]
fn facts_in_the_future_do_not_count_yet() {
    let facts = HolderFacts {
        exposures: vec![exposure(ExposureGrade::Close, T + Duration::days(1))],
        ..Default::default()
    };
    assert_eq!(colour_at(&facts, T), Colour::Green);
}

#[test]
fn a_holder_still_in_a_risk_area_is_red_and_a_longer_stay_is_never_lighter() {
    let zj = Issuer::parse("CN-ZJ").unwrap();
    let area = RiskArea {
        region: zj.clone(),
        level: RiskLevel::High,
        from: T - Duration::days(30),
        until: None,
    };
    // Now is 5 December, 10:00 Beijing time.
    let now = datetime!(2026-12-05 02:00:00 UTC);
    let stay = |until| HolderFacts {
        travels: vec![TravelDeclaration {
            at: now - Duration::hours(1),
            region: zj.clone(),
            from: date!(2026 - 12 - 01),
            until,
        }],
        ..Default::default()
    };
    let short = evaluate(
        &Policy::default_policy(),
        &stay(date!(2026 - 12 - 04)),
        std::slice::from_ref(&area),
        now,
    );
    let longer = evaluate(
        &Policy::default_policy(),
        &stay(date!(2026 - 12 - 05)),
        std::slice::from_ref(&area),
        now,
    );
    assert_eq!(short.colour, Colour::Red);
    assert_eq!(longer.colour, Colour::Red);
    assert!(longer.green_at > short.green_at);
}

#[test]
fn the_latest_approved_override_wins_whoever_approved_it() {
    let mut red = override_to(Colour::Red, T + Duration::days(10));
    red.approve(OfficerId(99), T).unwrap();
    let mut green = Override {
        id: OverrideId(2),
        ..override_to(Colour::Green, T + Duration::days(10))
    };
    green.approve(OfficerId(2), T + Duration::days(1)).unwrap();
    let f = HolderFacts {
        overrides: vec![red, green],
        ..Default::default()
    };
    assert_eq!(colour_at(&f, T + Duration::days(2)), Colour::Green);
}
