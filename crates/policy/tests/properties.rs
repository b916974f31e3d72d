//! Evaluation is deterministic, and adding a fact never lightens the colour unless the policy
//! names that kind of fact as clearing (negative tests, daily reports, approved overrides).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_domain::*;
use healthcode_policy::{Policy, evaluate};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-29 08:00:00 UTC);

fn at() -> impl Strategy<Value = OffsetDateTime> {
    (-24 * 20i64..24).prop_map(|h| NOW + Duration::hours(h) + Duration::minutes(h.rem_euclid(60)))
}

fn region() -> impl Strategy<Value = Issuer> {
    prop_oneof![Just("CN-ZJ"), Just("CN-GD"), Just("CN")].prop_map(|s| Issuer::parse(s).unwrap())
}

/// A fact that can only add to a colour.
#[derive(Debug, Clone)]
enum Adding {
    Case(ConfirmedCase),
    Positive(TestResult),
    Exposure(Exposure),
    Travel(TravelDeclaration),
    Declaration(HealthDeclaration),
}

fn adding() -> impl Strategy<Value = Adding> {
    prop_oneof![
        at().prop_map(|t| Adding::Case(ConfirmedCase {
            id: CaseId(1),
            onset: t - Duration::days(1),
            confirmed_at: t
        })),
        at().prop_map(|t| Adding::Positive(TestResult {
            positive: true,
            sampled_at: t,
            lab: "L".into()
        })),
        (at(), any::<bool>(), 1i64..240).prop_map(|(t, close, minutes)| Adding::Exposure(Exposure {
            case: CaseId(2),
            venue: VenueId(3),
            case_interval: (t - Duration::minutes(minutes), t),
            contact_interval: (t - Duration::minutes(minutes), t + Duration::minutes(5)),
            overlap_minutes: minutes,
            grade: if close {
                ExposureGrade::Close
            } else {
                ExposureGrade::SamePlace
            },
        })),
        (at(), region(), 0i64..5).prop_map(|(t, r, days)| Adding::Travel(TravelDeclaration {
            at: t,
            region: r,
            from: (t - Duration::days(days + 1)).date(),
            until: (t - Duration::days(1)).date(),
        })),
        (at(), 35.5f32..40.0, any::<bool>()).prop_map(|(t, temp, cough)| Adding::Declaration(
            HealthDeclaration {
                at: t,
                symptoms: if cough { vec![Symptom::Cough] } else { vec![] },
                temperature_c: Some(temp),
            }
        )),
    ]
}

fn add(facts: &mut HolderFacts, a: Adding) {
    match a {
        Adding::Case(c) => facts.cases.push(c),
        Adding::Positive(t) => facts.tests.push(t),
        Adding::Exposure(e) => facts.exposures.push(e),
        Adding::Travel(t) => facts.travels.push(t),
        Adding::Declaration(d) => facts.declarations.push(d),
    }
}

prop_compose! {
    fn facts()(
        adding in prop::collection::vec(adding(), 0..12),
        negatives in prop::collection::vec(at(), 0..4),
        reports in prop::collection::vec(at(), 0..6),
        override_colour in prop::option::of(prop_oneof![Just(Colour::Green), Just(Colour::Yellow), Just(Colour::Red)]),
        override_at in at(),
    ) -> HolderFacts {
        let mut f = HolderFacts::default();
        for a in adding { add(&mut f, a); }
        f.tests.extend(negatives.into_iter().map(|t| TestResult { positive: false, sampled_at: t, lab: "L".into() }));
        f.reports.extend(reports.into_iter().map(|t| DailyReport { at: t, well: true }));
        if let Some(colour) = override_colour {
            f.overrides.push(Override {
                id: OverrideId(1), colour, reason: "r".into(), proposed_by: OfficerId(1), proposed_at: override_at,
                approval: Some((OfficerId(2), override_at)), expires_at: override_at + Duration::days(3),
            });
        }
        f
    }
}

fn areas() -> Vec<RiskArea> {
    vec![
        RiskArea {
            region: Issuer::parse("CN-ZJ").unwrap(),
            level: RiskLevel::High,
            from: NOW - Duration::days(30),
            until: None,
        },
        RiskArea {
            region: Issuer::parse("CN-GD").unwrap(),
            level: RiskLevel::Medium,
            from: NOW - Duration::days(8),
            until: Some(NOW - Duration::days(2)),
        },
    ]
}

fn persistence() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: persistence(), ..ProptestConfig::default() })]

    #[test]
    fn evaluation_is_deterministic_and_order_free(f in facts(), h in -48i64..48) {
        let p = Policy::default_policy();
        let now = NOW + Duration::hours(h);
        let a = evaluate(&p, &f, &areas(), now);
        prop_assert_eq!(&a, &evaluate(&p, &f, &areas(), now));
        let mut reversed = f.clone();
        reversed.cases.reverse();
        reversed.tests.reverse();
        reversed.exposures.reverse();
        reversed.travels.reverse();
        reversed.declarations.reverse();
        reversed.reports.reverse();
        prop_assert_eq!(&a, &evaluate(&p, &reversed, &areas(), now));
        // Green has no green-from time; any other colour has one at or after now.
        match a.colour {
            Colour::Green => prop_assert!(a.green_at.is_none()),
            _ => prop_assert!(a.green_at.is_some_and(|g| g > now)),
        }
    }

    #[test]
    fn adding_a_non_clearing_fact_never_lightens(f in facts(), extra in adding(), h in -48i64..48) {
        let p = Policy::default_policy();
        let now = NOW + Duration::hours(h);
        let before = evaluate(&p, &f, &areas(), now);
        let mut more = f.clone();
        add(&mut more, extra);
        let after = evaluate(&p, &more, &areas(), now);
        // An override in force sets the colour outright, whatever else is added.
        if f.overrides.iter().any(|o| o.in_force(now)) {
            prop_assert_eq!(after.colour, before.colour);
        } else {
            prop_assert!(after.colour >= before.colour, "{:?} -> {:?}", before.colour, after.colour);
            if let (Some(b), Some(a)) = (before.green_at, after.green_at) {
                prop_assert!(a >= b);
            }
        }
    }
}
