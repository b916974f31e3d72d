//! Policy evaluation for a holder with 50 facts (target ≤ 5 µs).
//!
//! cargo bench -p healthcode-policy --bench evaluate

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use healthcode_domain::*;
use healthcode_policy::{Policy, evaluate};
use time::Duration;
use time::macros::datetime;

fn bench(c: &mut Criterion) {
    let now = datetime!(2026-11-29 08:00:00 UTC);
    let h = |n: i64| now - Duration::hours(n);
    let zj = Issuer::parse("CN-ZJ").unwrap();
    let mut f = HolderFacts::default();
    // 50 facts of every kind, spread over 20 days, several of them in force.
    for i in 0..10 {
        f.exposures.push(Exposure {
            case: CaseId(i),
            venue: VenueId(i),
            case_interval: (h(30 * i + 2), h(30 * i)),
            contact_interval: (h(30 * i + 1), h(30 * i)),
            overlap_minutes: 60,
            grade: if i % 3 == 0 {
                ExposureGrade::Close
            } else {
                ExposureGrade::SamePlace
            },
        });
    }
    for i in 0..10 {
        f.tests.push(TestResult {
            positive: i == 9,
            sampled_at: h(40 * i + 5),
            lab: "City Lab".into(),
        });
    }
    for i in 0..15 {
        f.reports.push(DailyReport {
            at: h(24 * i + 3),
            well: true,
        });
    }
    for i in 0..6 {
        f.declarations.push(HealthDeclaration {
            at: h(50 * i + 7),
            symptoms: vec![],
            temperature_c: Some(36.5 + i as f32 * 0.3),
        });
    }
    for i in 0..5 {
        f.travels.push(TravelDeclaration {
            at: h(60 * i),
            region: zj.clone(),
            from: h(60 * i + 72).date(),
            until: h(60 * i + 24).date(),
        });
    }
    f.cases.push(ConfirmedCase {
        id: CaseId(99),
        onset: h(400),
        confirmed_at: h(380),
    });
    f.overrides.push(Override {
        id: OverrideId(1),
        colour: Colour::Yellow,
        reason: "review".into(),
        proposed_by: OfficerId(1),
        proposed_at: h(500),
        approval: Some((OfficerId(2), h(499))),
        expires_at: h(400),
    });
    f.overrides.push(Override {
        id: OverrideId(2),
        expires_at: h(300),
        ..f.overrides[0].clone()
    });
    f.overrides.push(Override {
        id: OverrideId(3),
        expires_at: h(200),
        ..f.overrides[0].clone()
    });
    let count = f.exposures.len()
        + f.tests.len()
        + f.reports.len()
        + f.declarations.len()
        + f.travels.len()
        + f.cases.len()
        + f.overrides.len();
    assert_eq!(count, 50);
    let areas = [RiskArea {
        region: zj,
        level: RiskLevel::Medium,
        from: h(24 * 30),
        until: None,
    }];
    let policy = Policy::default_policy();
    let s = evaluate(&policy, &f, &areas, now);
    eprintln!("status: {} with {} reasons", s.colour, s.reasons.len());
    c.bench_function("evaluate_50_facts", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&f), &areas, now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
