//! Limits and erasure: appeals capped per holder (also when filed at once), lists in pages, a
//! reused `(device, seq)` refused and never reported stored, a holder erased down to the bytes,
//! retention of inactive holders, tests and decided appeals.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn appeals_are_capped_per_holder<H: Harness>(h: &H) {
    let s = h.store();
    for i in 0..3 {
        s.add_appeal(&hid(1), &format!("appeal {i}"), T, 3).await.unwrap();
    }
    let over = s.add_appeal(&hid(1), "one more", T, 3).await;
    assert!(matches!(over, Err(StoreError::Refused(_))), "{over:?}");
    // Another holder has their own room.
    s.add_appeal(&hid(2), "mine", T, 3).await.unwrap();
    // A decision makes room for one more.
    let first = s.appeals_of(&hid(1)).await.unwrap()[0].clone();
    s.decide_appeal(first.id, OfficerId(10), false, "no", T)
        .await
        .unwrap();
    s.add_appeal(&hid(1), "after the decision", T, 3).await.unwrap();
    assert!(matches!(
        s.add_appeal(&hid(1), "and another", T, 3).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(s.appeals_of(&hid(1)).await.unwrap().len(), 4);
    // Sixty filed at once by one holder: at most the cap is stored.
    let texts: Vec<String> = (0..60).map(|i| format!("flood {i}")).collect();
    let flooder = hid(3);
    let tries = futures_util::future::join_all(texts.iter().map(|t| s.add_appeal(&flooder, t, T, 3))).await;
    let stored = tries.iter().filter(|t| t.is_ok()).count();
    assert_eq!(stored, 3, "{tries:?}");
    assert!(
        tries
            .iter()
            .all(|t| t.is_ok() || matches!(t, Err(StoreError::Refused(_))))
    );
    assert_eq!(s.appeals_of(&hid(3)).await.unwrap().len(), 3);
}

pub async fn lists_come_in_pages<H: Harness>(h: &H) {
    let s = h.store();
    let mut filed = Vec::new();
    for i in 0..25u8 {
        filed.push(
            s.add_appeal(&hid(i % 5), &format!("appeal {i}"), T, 100)
                .await
                .unwrap(),
        );
    }
    for a in filed.iter().step_by(4) {
        s.decide_appeal(a.id, OfficerId(10), true, "ok", T).await.unwrap();
    }
    let walk = |open: bool| async move {
        let (mut after, mut all, mut pages) = (0i64, Vec::new(), 0);
        loop {
            let page = s.appeals(open, after, 10).await.unwrap();
            assert!(page.len() <= 10);
            pages += 1;
            let Some(last) = page.last() else { break };
            after = last.id.0;
            let full = page.len() == 10;
            all.extend(page);
            if !full {
                break;
            }
        }
        (all, pages)
    };
    let (all, pages) = walk(false).await;
    assert_eq!(
        all.iter().map(|a| a.id).collect::<Vec<_>>(),
        filed.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    assert_eq!(pages, 3);
    let (open, _) = walk(true).await;
    assert_eq!(open.len(), 25 - 7);
    assert!(open.iter().all(|a| a.decision.is_none()));
    assert!(open.windows(2).all(|w| w[0].id < w[1].id));

    // Overrides the same way.
    for i in 0..12u8 {
        s.propose_override(&NewOverride {
            holder: hid(i),
            colour: Colour::Green,
            reason: format!("reason {i}"),
            proposed_by: OfficerId(10),
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    }
    let first = s.overrides(false, 0, 5).await.unwrap();
    assert_eq!(first.len(), 5);
    let rest = s.overrides(false, first[4].1.id.0, 100).await.unwrap();
    assert_eq!(rest.len(), 7);
    assert!(rest[0].1.id.0 > first[4].1.id.0);
}

fn scan_at(device: DeviceId, seq: i64, holder: u8, at: OffsetDateTime) -> CheckIn {
    CheckIn {
        holder: hid(holder),
        venue: VenueId(1),
        device,
        seq,
        at,
        out: None,
    }
}

pub async fn a_reused_sequence_number_is_refused<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let d = s.insert_device(mall.id, "gate", &[1; 32]).await.unwrap();
    // The current hour (PostgreSQL's unindexed partition, SQLite's inbox) and a past one.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    for at in [now, T] {
        let base = if at == T { 1000 } else { 0 };
        let first = scan_at(d.id, base + 1, 1, at);
        assert_eq!(
            s.record_checkins(std::slice::from_ref(&first)).await.unwrap(),
            vec![Recorded::New]
        );
        // Re-sent: recognised, stored once.
        assert_eq!(
            s.record_checkins(std::slice::from_ref(&first)).await.unwrap(),
            vec![Recorded::Again]
        );
        // The same number with another person's code: refused, nothing stored.
        let other = scan_at(d.id, base + 1, 2, at + Duration::seconds(5));
        assert_eq!(
            s.record_checkins(std::slice::from_ref(&other)).await.unwrap(),
            vec![Recorded::Taken]
        );
        // Within one batch (one group commit): the first of a key wins.
        let batch = [
            scan_at(d.id, base + 2, 1, at),
            scan_at(d.id, base + 2, 3, at),
            scan_at(d.id, base + 2, 1, at),
            scan_at(d.id, base + 3, 3, at),
        ];
        assert_eq!(
            s.record_checkins(&batch).await.unwrap(),
            vec![Recorded::New, Recorded::Taken, Recorded::Again, Recorded::New]
        );
    }
    let window = (T - Duration::hours(1), now + Duration::hours(1));
    let of = |n: u8| async move { s.checkins_of_holder(&hid(n), window.0, window.1).await.unwrap() };
    assert_eq!(of(1).await.len(), 4);
    assert!(of(2).await.is_empty());
    assert_eq!(
        of(3).await.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![1003, 3]
    );
    // Still refused once moved into the indexed place.
    h.flush_checkins().await;
    let again = [
        scan_at(d.id, 1, 2, now),
        scan_at(d.id, 1001, 2, T),
        scan_at(d.id, 1, 1, now),
    ];
    assert_eq!(
        s.record_checkins(&again).await.unwrap(),
        vec![Recorded::Taken, Recorded::Taken, Recorded::Again]
    );
    assert!(of(2).await.is_empty());
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 0);
}

pub async fn an_erased_holder_is_gone_down_to_the_bytes<H: Harness>(h: &H) {
    let s = h.store();
    let (gone, _) = resident(1);
    let (kept, _) = resident(2);
    s.insert_holder(&gone).await.unwrap();
    s.insert_holder(&kept).await.unwrap();
    for (n, holder) in [&gone, &kept].into_iter().enumerate() {
        // A lab report names each by the identity hash of their document.
        s.add_lab_report(&LabReport {
            reference: format!("LAB-{n}"),
            lab: "Zhejiang CDC".into(),
            identity_hash: holder.identity_hash,
            recorded_by: OfficerId(1),
            recorded_at: T,
        })
        .await
        .unwrap();
    }
    for id in [&gone.id, &kept.id] {
        s.add_fact(id, &Fact::Report(DailyReport { at: T, well: true }))
            .await
            .unwrap();
        s.add_appeal(id, "the scanner was wrong", T, 3).await.unwrap();
        s.insert_session(
            &[id.as_bytes()[0]; 32],
            &Session {
                principal: Principal::Holder(id.clone()),
                created_at: T,
                expires_at: T + Duration::days(30),
            },
        )
        .await
        .unwrap();
    }
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let d = s.insert_device(mall.id, "gate", &[1; 32]).await.unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    s.record_checkins(&[
        scan_at(d.id, 1, 1, now),
        scan_at(d.id, 2, 2, now),
        scan_at(d.id, 3, 1, T),
    ])
    .await
    .unwrap();

    assert!(s.erase_holder(&gone.id).await.unwrap());
    assert!(!s.erase_holder(&gone.id).await.unwrap(), "erased twice");
    s.scrub_erased().await.unwrap();

    assert!(s.holder(&gone.id).await.unwrap().is_none());
    assert!(s.holder_by_phone(&gone.phone_hash).await.unwrap().is_none());
    assert!(s.holder_by_identity(&gone.identity_hash).await.unwrap().is_none());
    assert!(s.appeals_of(&gone.id).await.unwrap().is_empty());
    assert_eq!(
        s.lab_report("LAB-0").await.unwrap(),
        None,
        "the lab report naming them stays"
    );
    assert!(s.lab_report("LAB-1").await.unwrap().is_some());
    assert!(s.holder_facts(&gone.id).await.unwrap().reports.is_empty());
    assert!(s.session(&[gone.id.as_bytes()[0]; 32]).await.unwrap().is_none());
    let window = (T - Duration::hours(1), now + Duration::hours(1));
    assert!(
        s.checkins_of_holder(&gone.id, window.0, window.1)
            .await
            .unwrap()
            .is_empty()
    );
    // The key of an erased check-in is free again.
    assert_eq!(
        s.record_checkins(&[scan_at(d.id, 1, 3, now)]).await.unwrap(),
        vec![Recorded::New]
    );
    // The other holder keeps everything.
    assert_eq!(s.holder(&kept.id).await.unwrap(), Some(kept.clone()));
    assert_eq!(s.appeals_of(&kept.id).await.unwrap().len(), 1);
    assert!(s.session(&[kept.id.as_bytes()[0]; 32]).await.unwrap().is_some());
    assert_eq!(
        s.checkins_of_holder(&kept.id, window.0, window.1)
            .await
            .unwrap()
            .len(),
        1
    );

    // The bytes as stored: the erased holder's sealed data, lookup hashes and appeal are not
    // there; the kept holder's are (so the reading sees what it should). A database keeps a
    // deleted row while a transaction that began before could still read it (on PostgreSQL any
    // other in the database, such as concurrent tests'), so the scrub is repeated as retention
    // repeats it, for at most a few seconds.
    let mut raw = Vec::new();
    for _ in 0..40 {
        s.scrub_erased().await.unwrap();
        raw = h.raw_erasure_bytes().await;
        let gone_left = [&gone.sealed[..32], &gone.identity_hash[..], &gone.phone_hash[..]]
            .iter()
            .any(|n| raw.windows(n.len()).any(|w| w == *n));
        if !gone_left {
            break;
        }
        // No timer in this crate: a blocking pause, in a test.
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let found = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(found(&kept.sealed[..32]) && found(&kept.identity_hash) && found(&kept.phone_hash));
    assert!(!found(&gone.sealed[..32]), "sealed personal data left");
    assert!(!found(&gone.identity_hash), "identity hash left");
    assert!(!found(&gone.phone_hash), "phone hash left");
}

pub async fn retention_finds_inactive_holders_and_old_records<H: Harness>(h: &H) {
    let s = h.store();
    let long_ago = T - Duration::days(400);
    let cut = T - Duration::days(365);
    let mut ids = Vec::new();
    for n in 1..=5u8 {
        let (mut holder, _) = resident(n);
        holder.created_at = long_ago;
        s.insert_holder(&holder).await.unwrap();
        ids.push(holder.id);
    }
    // 2 signed in since; 3 has a recent case; 4 an override in force; 5 a check-in stored.
    s.insert_session(
        &[9; 32],
        &Session {
            principal: Principal::Holder(ids[1].clone()),
            created_at: T - Duration::days(10),
            expires_at: T + Duration::days(20),
        },
    )
    .await
    .unwrap();
    s.add_case(&ids[2], T - Duration::days(20), T - Duration::days(19))
        .await
        .unwrap();
    let [proposer, approver, _] = super::three_officers(s).await;
    let o = s
        .propose_override(&NewOverride {
            holder: ids[3].clone(),
            colour: Colour::Red,
            reason: "isolation".into(),
            proposed_by: proposer,
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    s.approve_override(o.id, approver, T, ApprovalPolicy::default(), None)
        .await
        .unwrap();
    s.record_checkins(&[scan_at(DeviceId(1), 1, 5, T - Duration::days(3))])
        .await
        .unwrap();
    assert_eq!(
        s.inactive_holders(cut, T, 100).await.unwrap(),
        vec![ids[0].clone()]
    );
    assert!(s.inactive_holders(cut, T, 0).await.unwrap().is_empty());

    // Tests and decided appeals past their retention go; open appeals stay whatever their age.
    s.add_fact(
        &ids[0],
        &Fact::Test(TestResult {
            positive: false,
            sampled_at: T - Duration::days(100),
            lab: "A".into(),
        }),
    )
    .await
    .unwrap();
    s.add_fact(
        &ids[0],
        &Fact::Test(TestResult {
            positive: false,
            sampled_at: T - Duration::days(5),
            lab: "B".into(),
        }),
    )
    .await
    .unwrap();
    let old = s
        .add_appeal(&ids[0], "old", T - Duration::days(200), 10)
        .await
        .unwrap();
    s.decide_appeal(old.id, OfficerId(10), false, "no", T - Duration::days(199))
        .await
        .unwrap();
    s.add_appeal(&ids[0], "old but open", T - Duration::days(200), 10)
        .await
        .unwrap();
    let recent = s
        .add_appeal(&ids[0], "recent", T - Duration::days(2), 10)
        .await
        .unwrap();
    s.decide_appeal(recent.id, OfficerId(10), true, "yes", T - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        s.purge_personal(T - Duration::days(90), T - Duration::days(180))
            .await
            .unwrap(),
        (1, 1)
    );
    let left: Vec<String> = s
        .appeals_of(&ids[0])
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.text)
        .collect();
    assert_eq!(left, vec!["old but open".to_owned(), "recent".to_owned()]);
    let tests = s.holder_facts(&ids[0]).await.unwrap().tests;
    assert_eq!(
        tests.iter().map(|t| t.lab.as_str()).collect::<Vec<_>>(),
        vec!["B"]
    );
}
