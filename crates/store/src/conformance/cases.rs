//! Facts and cases, overrides, appeals, retention and the dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn facts_come_back_for_the_colour_rules<H: Harness>(h: &H) {
    let s = h.store();
    let (r, _) = resident(1);
    s.insert_holder(&r).await.unwrap();
    let zj = Issuer::parse("CN-ZJ").unwrap();
    let health = HealthDeclaration {
        at: T,
        symptoms: vec![Symptom::Cough, Symptom::Fever],
        temperature_c: Some(38.2),
    };
    let travel = TravelDeclaration {
        at: T,
        region: zj.clone(),
        from: date!(2026 - 11 - 15),
        until: date!(2026 - 11 - 17),
    };
    let report = DailyReport {
        at: T + Duration::days(1),
        well: true,
    };
    let test = TestResult {
        positive: false,
        sampled_at: T + Duration::hours(5),
        lab: "City Lab".into(),
    };
    for f in [
        Fact::Health(health.clone()),
        Fact::Travel(travel.clone()),
        Fact::Report(report.clone()),
        Fact::Test(test.clone()),
    ] {
        s.add_fact(&r.id, &f).await.unwrap();
    }
    let case = s.add_case(&r.id, T - Duration::days(1), T).await.unwrap();
    assert_eq!(
        s.case(case.id).await.unwrap().unwrap(),
        (r.id.clone(), case.clone())
    );
    let area = RiskArea {
        region: zj,
        level: RiskLevel::High,
        from: T,
        until: Some(T + Duration::days(7)),
    };
    s.add_risk_area(&area).await.unwrap();
    assert_eq!(s.risk_areas().await.unwrap(), vec![area]);
    let f = s.holder_facts(&r.id).await.unwrap();
    assert_eq!(f.declarations, vec![health]);
    assert_eq!(f.travels, vec![travel]);
    assert_eq!(f.reports, vec![report]);
    assert_eq!(f.tests, vec![test]);
    assert_eq!(f.cases, vec![case]);
    // Another holder's facts are not mixed in.
    let other = s.holder_facts(&hid(2)).await.unwrap();
    assert!(other.declarations.is_empty() && other.cases.is_empty() && other.tests.is_empty());
}

pub async fn travellers_to_a_region_are_counted_once_each<H: Harness>(h: &H) {
    let s = h.store();
    let stay = |region: &str, from, until| {
        Fact::Travel(TravelDeclaration {
            at: T,
            region: Issuer::parse(region).unwrap(),
            from,
            until,
        })
    };
    // Holder 1 twice in Shanghai, holder 2 once (ended earlier), holder 3 in Beijing.
    s.add_fact(
        &hid(1),
        &stay("CN-SH", date!(2026 - 11 - 10), date!(2026 - 11 - 12)),
    )
    .await
    .unwrap();
    s.add_fact(
        &hid(1),
        &stay("CN-SH", date!(2026 - 11 - 20), date!(2026 - 11 - 21)),
    )
    .await
    .unwrap();
    s.add_fact(
        &hid(2),
        &stay("CN-SH", date!(2026 - 11 - 01), date!(2026 - 11 - 05)),
    )
    .await
    .unwrap();
    s.add_fact(
        &hid(3),
        &stay("CN-BJ", date!(2026 - 11 - 20), date!(2026 - 11 - 21)),
    )
    .await
    .unwrap();
    assert_eq!(s.travellers_to("CN-SH", date!(2026 - 11 - 01)).await.unwrap(), 2);
    assert_eq!(s.travellers_to("CN-SH", date!(2026 - 11 - 12)).await.unwrap(), 1);
    assert_eq!(s.travellers_to("CN-SH", date!(2026 - 11 - 22)).await.unwrap(), 0);
    assert_eq!(s.travellers_to("CN-BJ", date!(2026 - 11 - 01)).await.unwrap(), 1);
    assert_eq!(s.travellers_to("CN-HB", date!(2026 - 11 - 01)).await.unwrap(), 0);
}

pub async fn overrides_need_two_officers<H: Harness>(h: &H) {
    let s = h.store();
    let [a, b, c] = three_officers(s).await;
    let o = s
        .propose_override(&NewOverride {
            holder: hid(1),
            colour: Colour::Green,
            reason: "sample mix-up at the lab".into(),
            proposed_by: a,
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    assert!(o.approval.is_none());
    assert!(matches!(
        s.approve_override(o.id, a, T, ApprovalPolicy::default(), None)
            .await,
        Err(StoreError::Refused(_))
    ));
    let f = s.holder_facts(&hid(1)).await.unwrap();
    assert_eq!(f.overrides.len(), 1);
    assert!(f.overrides[0].approval.is_none(), "a refused approval was stored");
    let approved = s
        .approve_override(o.id, b, T + Duration::minutes(3), ApprovalPolicy::default(), None)
        .await
        .unwrap();
    assert_eq!(approved.approval, Some((b, T + Duration::minutes(3))));
    assert!(matches!(
        s.approve_override(o.id, c, T, ApprovalPolicy::default(), None)
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        s.approve_override(OverrideId(999_999), c, T, ApprovalPolicy::default(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.holder_facts(&hid(1)).await.unwrap().overrides, vec![approved]);
}

pub async fn appeals_are_kept<H: Harness>(h: &H) {
    let s = h.store();
    let a = s
        .add_appeal(&hid(1), "I was not at the mall that day; 我那天不在商场", T, 10)
        .await
        .unwrap();
    let b = s
        .add_appeal(&hid(1), "second", T + Duration::hours(1), 10)
        .await
        .unwrap();
    s.add_appeal(&hid(2), "other", T, 10).await.unwrap();
    assert_eq!(s.appeals_of(&hid(1)).await.unwrap(), vec![a, b]);
}

pub async fn listings_and_appeal_decisions<H: Harness>(h: &H) {
    let s = h.store();
    // Devices, all or by venue, by id.
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let clinic = venue(s, "Clinic", VenueCategory::Clinic).await;
    let d1 = s.insert_device(mall.id, "north", &[1; 32]).await.unwrap();
    let d2 = s.insert_device(clinic.id, "door", &[2; 32]).await.unwrap();
    let d3 = s.insert_device(mall.id, "south", &[3; 32]).await.unwrap();
    assert_eq!(
        s.devices(None).await.unwrap(),
        vec![d1.clone(), d2.clone(), d3.clone()]
    );
    assert_eq!(s.devices(Some(mall.id)).await.unwrap(), vec![d1, d3]);
    assert_eq!(s.devices(Some(clinic.id)).await.unwrap(), vec![d2]);
    assert!(s.devices(Some(VenueId(999_999))).await.unwrap().is_empty());

    // Cases since a time, by confirmation time, then id.
    let late = s.add_case(&hid(1), T, T + Duration::hours(2)).await.unwrap();
    let first = s.add_case(&hid(2), T - Duration::days(1), T).await.unwrap();
    s.add_case(&hid(3), T - Duration::days(3), T - Duration::days(1))
        .await
        .unwrap();
    let second = s.add_case(&hid(4), T - Duration::days(1), T).await.unwrap();
    assert_eq!(
        s.cases(T).await.unwrap(),
        vec![(hid(2), first), (hid(4), second), (hid(1), late.clone())]
    );
    assert_eq!(
        s.cases(T + Duration::hours(2)).await.unwrap(),
        vec![(hid(1), late)]
    );
    assert!(s.cases(T + Duration::hours(3)).await.unwrap().is_empty());
    assert_eq!(s.cases(T - Duration::days(5)).await.unwrap().len(), 4);

    // Overrides by id, all or pending.
    let [a, b, _] = three_officers(s).await;
    let propose = |holder: HolderId, reason: &str| NewOverride {
        holder,
        colour: Colour::Green,
        reason: reason.into(),
        proposed_by: a,
        proposed_at: T,
        expires_at: T + Duration::days(7),
    };
    let o1 = s.propose_override(&propose(hid(1), "lab mix-up")).await.unwrap();
    let o2 = s.propose_override(&propose(hid(2), "wrong venue")).await.unwrap();
    let o1 = s
        .approve_override(o1.id, b, T, ApprovalPolicy::default(), None)
        .await
        .unwrap();
    assert_eq!(s.override_by_id(o2.id).await.unwrap(), Some((hid(2), o2.clone())));
    assert_eq!(s.override_by_id(o1.id).await.unwrap(), Some((hid(1), o1.clone())));
    assert!(s.override_by_id(OverrideId(999_999)).await.unwrap().is_none());
    assert_eq!(
        s.overrides(false, 0, 100).await.unwrap(),
        vec![(hid(1), o1), (hid(2), o2.clone())]
    );
    assert_eq!(s.overrides(true, 0, 100).await.unwrap(), vec![(hid(2), o2)]);

    // Appeals, all or open; a decision is made once.
    let a1 = s.add_appeal(&hid(1), "not me", T, 10).await.unwrap();
    let a2 = s.add_appeal(&hid(2), "left before", T, 10).await.unwrap();
    let a3 = s
        .add_appeal(&hid(1), "again", T + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(
        s.appeals(true, 0, 100).await.unwrap(),
        vec![a1.clone(), a2.clone(), a3.clone()]
    );
    let at = T + Duration::hours(2);
    let decided = s
        .decide_appeal(a2.id, OfficerId(10), true, "scanner log agrees", at)
        .await
        .unwrap();
    assert_eq!(
        decided,
        Appeal {
            decision: Some((OfficerId(10), true, "scanner log agrees".into(), at)),
            ..a2.clone()
        }
    );
    assert_eq!(
        s.appeals(true, 0, 100).await.unwrap(),
        vec![a1.clone(), a3.clone()]
    );
    assert_eq!(
        s.appeals(false, 0, 100).await.unwrap(),
        vec![a1.clone(), decided.clone(), a3.clone()]
    );
    assert!(matches!(
        s.decide_appeal(a2.id, OfficerId(11), false, "no", at + Duration::hours(1))
            .await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(s.appeals_of(&hid(2)).await.unwrap(), vec![decided]);
    assert!(matches!(
        s.decide_appeal(AppealId(999_999), OfficerId(11), false, "no", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Officers deciding at once: one decision stands, the others are refused.
    let notes: Vec<String> = (0..8).map(|i| format!("decision {i}")).collect();
    let tries = futures_util::future::join_all(
        notes
            .iter()
            .enumerate()
            .map(|(i, n)| s.decide_appeal(a1.id, OfficerId(20 + i as i64), i % 2 == 0, n, at)),
    )
    .await;
    let mut won: Vec<Appeal> = tries.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
    assert_eq!(won.len(), 1, "{tries:?}");
    assert!(
        tries
            .iter()
            .all(|t| t.is_ok() || matches!(t, Err(StoreError::Refused(_)))),
        "{tries:?}"
    );
    let won = won.remove(0);
    assert_eq!(s.appeals(false, 0, 100).await.unwrap()[0], won);
    assert_eq!(s.appeals(true, 0, 100).await.unwrap(), vec![a3]);
}

pub async fn purge_deletes_what_is_older_than_retention<H: Harness>(h: &H) {
    let s = h.store();
    let v = venue(s, "Market", VenueCategory::Market).await;
    let d = s.insert_device(v.id, "gate", &[9; 32]).await.unwrap();
    let old = T - Duration::days(30);
    let batch: Vec<CheckIn> = (0..40i64)
        .map(|i| CheckIn {
            holder: hid(1),
            venue: v.id,
            device: d.id,
            seq: i,
            at: if i < 25 {
                old + Duration::hours(i)
            } else {
                T + Duration::hours(i)
            },
            out: None,
        })
        .collect();
    s.insert_checkins(&batch).await.unwrap();
    s.add_fact(
        &hid(1),
        &Fact::Health(HealthDeclaration {
            at: old,
            symptoms: vec![],
            temperature_c: Some(36.6),
        }),
    )
    .await
    .unwrap();
    s.add_fact(
        &hid(1),
        &Fact::Health(HealthDeclaration {
            at: T,
            symptoms: vec![],
            temperature_c: Some(36.6),
        }),
    )
    .await
    .unwrap();
    s.add_fact(&hid(1), &Fact::Report(DailyReport { at: old, well: true }))
        .await
        .unwrap();
    let case = s.add_case(&hid(5), old, old).await.unwrap();
    s.add_exposures(&[(hid(1), exposure(case.id, v.id, old, ExposureGrade::SamePlace))])
        .await
        .unwrap();
    let cutoff = T - Duration::days(28);
    let report = s.purge(cutoff).await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            checkins: 25,
            declarations: 1,
            reports: 1,
            exposures: 1
        }
    );
    assert_eq!(report.total(), 28);
    assert_eq!(
        s.checkins_of_holder(&hid(1), old - Duration::days(1), T + Duration::days(5))
            .await
            .unwrap()
            .len(),
        15
    );
    let f = s.holder_facts(&hid(1)).await.unwrap();
    assert_eq!(f.declarations.len(), 1);
    assert!(f.reports.is_empty() && f.exposures.is_empty());
    // Cases are kept: they are not among what retention deletes.
    assert!(s.case(case.id).await.unwrap().is_some());
    assert_eq!(s.purge(cutoff).await.unwrap(), PurgeReport::default());
}

pub async fn purge_keeps_officers_and_live_sessions<H: Harness>(h: &H) {
    let s = h.store();
    let old = T - Duration::days(40);
    let cutoff = T - Duration::days(28);
    let officer = s
        .insert_officer("admin", Role::Admin, "$argon2id$a", false, old)
        .await
        .unwrap();
    let session = |expires_at| Session {
        principal: Principal::Officer(officer.id),
        created_at: old,
        expires_at,
    };
    let live = session(T + Duration::days(1));
    let lately = session(cutoff + Duration::days(1));
    s.insert_session(&[1; 32], &session(old + Duration::hours(12)))
        .await
        .unwrap();
    s.insert_session(&[2; 32], &live).await.unwrap();
    s.insert_session(&[3; 32], &lately).await.unwrap();
    let limits = OtpLimits::default();
    s.issue_otp(&[1; 32], &CHALLENGE, &[11; 32], old, &limits)
        .await
        .unwrap()
        .unwrap();
    s.issue_otp(&[2; 32], &CHALLENGE, &[12; 32], T, &limits)
        .await
        .unwrap()
        .unwrap();
    // None of it is counted as retention.
    assert_eq!(s.purge(cutoff).await.unwrap(), PurgeReport::default());
    assert_eq!(s.officers().await.unwrap(), vec![officer]);
    assert_eq!(s.session(&[2; 32]).await.unwrap(), Some(live));
    assert_eq!(s.session(&[3; 32]).await.unwrap(), Some(lately));
    assert!(
        s.session(&[1; 32]).await.unwrap().is_none(),
        "a long-dead session is kept"
    );
    // The long-dead code is gone; the fresh one still works.
    assert_eq!(
        s.check_otp(&[1; 32], &CHALLENGE, &[11; 32], old + Duration::minutes(1))
            .await
            .unwrap(),
        OtpCheck::Missing
    );
    assert_eq!(
        s.check_otp(&[2; 32], &CHALLENGE, &[12; 32], T + Duration::minutes(1))
            .await
            .unwrap(),
        OtpCheck::Accepted
    );
}

pub async fn activity_counts_for_the_dashboard<H: Harness>(h: &H) {
    let s = h.store();
    let since = T - Duration::days(1);
    let empty = s.activity(since, 100).await.unwrap();
    assert_eq!(empty, Activity::default());

    let city = synthetic_holders(0, 10);
    s.insert_holders(&city).await.unwrap();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let gate = s.insert_device(mall.id, "gate", &[7; 32]).await.unwrap();
    let at = |seq: i64, t: OffsetDateTime| CheckIn {
        holder: city[seq as usize % 10].id.clone(),
        venue: mall.id,
        device: gate.id,
        seq,
        at: t,
        out: None,
    };
    let batch = vec![
        at(0, T - Duration::days(2)),
        at(1, T),
        at(2, T + Duration::minutes(10)),
        at(3, T + Duration::minutes(59)),
        at(4, T + Duration::minutes(60)),
        at(5, T + Duration::minutes(90)),
    ];
    s.insert_checkins(&batch).await.unwrap();
    // A re-sent scan is counted once.
    s.insert_checkins(&batch[1..2]).await.unwrap();

    s.add_fact(
        &city[1].id,
        &Fact::Test(TestResult {
            positive: true,
            sampled_at: T,
            lab: "City Lab".into(),
        }),
    )
    .await
    .unwrap();
    s.add_fact(
        &city[9].id,
        &Fact::Test(TestResult {
            positive: false,
            sampled_at: T,
            lab: "City Lab".into(),
        }),
    )
    .await
    .unwrap();
    let case = s.add_case(&city[2].id, T - Duration::days(1), T).await.unwrap();
    let applied = (
        city[3].id.clone(),
        exposure(case.id, mall.id, T - Duration::hours(5), ExposureGrade::SamePlace),
    );
    let pending = (
        city[4].id.clone(),
        exposure(case.id, mall.id, T - Duration::hours(5), ExposureGrade::SamePlace),
    );
    s.add_exposures_as(&[applied], ExposureState::Applied)
        .await
        .unwrap();
    s.add_exposures_as(&[pending], ExposureState::Pending)
        .await
        .unwrap();

    let a = s.activity(since, 100).await.unwrap();
    assert_eq!(a.holders, 10);
    assert_eq!(
        a.checkins_per_hour,
        vec![(T, 3), (T + Duration::hours(1), 2)],
        "the scan before `since` is left out, the re-sent one counted once"
    );
    assert_eq!(a.exposures_per_hour, vec![(T - Duration::hours(5), 2)]);
    let mut want = vec![city[1].id.clone(), city[2].id.clone(), city[3].id.clone()];
    want.sort();
    assert_eq!(
        a.flagged, want,
        "a negative test and a pending exposure flag no one"
    );
    assert_eq!(s.activity(since, 2).await.unwrap().flagged.len(), 2);
}
