//! Holders, one-time codes and sessions.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn holders_round_trip_and_stay_unique<H: Harness>(h: &H) {
    let s = h.store();
    let (r, rdata) = resident(1);
    let (v, vdata) = visitor(2);
    s.insert_holder(&r).await.unwrap();
    s.insert_holder(&v).await.unwrap();
    let back = s.holder(&r.id).await.unwrap().unwrap();
    assert_eq!(back, r);
    assert_eq!(crypto().open_holder(&back).unwrap(), rdata);
    let back = s.holder_by_phone(&v.phone_hash).await.unwrap().unwrap();
    assert_eq!(crypto().open_holder(&back).unwrap(), vdata);
    assert_eq!(
        s.holder_by_identity(&r.identity_hash).await.unwrap().unwrap().id,
        r.id
    );
    assert!(s.holder(&hid(9)).await.unwrap().is_none());
    assert!(s.holder_by_phone(&[0; 32]).await.unwrap().is_none());
    // The same identity, or the same phone, cannot register twice.
    let mut again = resident(3).0;
    again.identity_hash = r.identity_hash;
    assert!(matches!(
        s.insert_holder(&again).await,
        Err(StoreError::Conflict(_))
    ));
    let mut again = resident(4).0;
    again.phone_hash = r.phone_hash;
    assert!(matches!(
        s.insert_holder(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.holder(&hid(3)).await.unwrap().is_none(),
        "a refused registration left a row"
    );
}

pub async fn personal_data_is_never_stored_in_plaintext<H: Harness>(h: &H) {
    let s = h.store();
    let (r, rdata) = resident(5);
    let (v, vdata) = visitor(6);
    s.insert_holder(&r).await.unwrap();
    s.insert_holder(&v).await.unwrap();
    let raw = h.raw_holder_bytes().await;
    assert!(!raw.is_empty());
    let needles = [
        rdata.name.clone(),
        rdata.resident_id.clone().unwrap(),
        rdata.phone.clone(),
        rdata.phone.trim_start_matches('+').to_owned(),
        "1990-03-07".into(),
        "19900307".into(),
        vdata.name.clone(),
        vdata.passport.clone().unwrap(),
        vdata.phone.clone(),
        "1974-08-12".into(),
        "SK997".into(),
    ];
    for n in needles {
        assert!(
            !raw.windows(n.len()).any(|w| w == n.as_bytes()),
            "found {n:?} in the stored bytes"
        );
    }
}

pub async fn one_time_codes_limit_guesses_and_sends<H: Harness>(h: &H) {
    let s = h.store();
    // 5 minutes valid, 5 guesses, 60 s between sends, 5 sends an hour.
    let limits = OtpLimits::default();
    let sec = Duration::seconds;
    let phone = [1u8; 32];
    let (code1, code2, wrong) = ([11u8; 32], [12u8; 32], [99u8; 32]);
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code1, T).await.unwrap(),
        OtpCheck::Missing
    );
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T, &limits).await.unwrap(),
        Ok(())
    );
    // Too soon: the rest of the minute, and the code in force stays.
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code2, T + sec(20), &limits)
            .await
            .unwrap(),
        Err(sec(40))
    );
    // Another phone is not held back.
    assert_eq!(
        s.issue_otp(&[2; 32], &CHALLENGE, &code2, T + sec(20), &limits)
            .await
            .unwrap(),
        Ok(())
    );
    // Wrong guesses count down to nothing; then even the right code is refused.
    for left in (0..5u8).rev() {
        assert_eq!(
            s.check_otp(&phone, &CHALLENGE, &wrong, T + sec(30))
                .await
                .unwrap(),
            OtpCheck::Wrong { attempts_left: left }
        );
    }
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &wrong, T + sec(31))
            .await
            .unwrap(),
        OtpCheck::Exhausted
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code1, T + sec(32))
            .await
            .unwrap(),
        OtpCheck::Exhausted
    );
    // A new code after the interval replaces the old one and its guesses count anew.
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code2, T + sec(60), &limits)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code1, T + sec(61))
            .await
            .unwrap(),
        OtpCheck::Wrong { attempts_left: 4 },
        "the replaced code still works"
    );
    // The right code is accepted once, then is gone; the send limits still hold after it.
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code2, T + sec(62))
            .await
            .unwrap(),
        OtpCheck::Accepted
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code2, T + sec(63))
            .await
            .unwrap(),
        OtpCheck::Missing
    );
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T + sec(90), &limits)
            .await
            .unwrap(),
        Err(sec(30))
    );
    // Five sends in the hour (at 0, 60, 120, 180, 240 s): the sixth waits for the window's end,
    // however long ago the last send was.
    for i in 2..5 {
        let code = [20 + i as u8; 32];
        assert_eq!(
            s.issue_otp(&phone, &CHALLENGE, &code, T + sec(60 * i), &limits)
                .await
                .unwrap(),
            Ok(())
        );
    }
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T + sec(300), &limits)
            .await
            .unwrap(),
        Err(sec(3300))
    );
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T + sec(3599), &limits)
            .await
            .unwrap(),
        Err(sec(1))
    );
    // When both limits refuse, the wait is the longer one.
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T + sec(250), &limits)
            .await
            .unwrap(),
        Err(sec(3350))
    );
    // The last code sent (at 240 s) lasts five minutes to the second.
    let last = [24u8; 32];
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &wrong, T + sec(539))
            .await
            .unwrap(),
        OtpCheck::Wrong { attempts_left: 4 }
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &last, T + sec(540))
            .await
            .unwrap(),
        OtpCheck::Expired
    );
    // A new window: five more sends, then refused again, so the count started over.
    for i in 0..5 {
        let code = [30 + i as u8; 32];
        let at = T + sec(3600 + 60 * i);
        assert_eq!(
            s.issue_otp(&phone, &CHALLENGE, &code, at, &limits).await.unwrap(),
            Ok(()),
            "send {i}"
        );
    }
    assert_eq!(
        s.issue_otp(&phone, &CHALLENGE, &code1, T + sec(3900), &limits)
            .await
            .unwrap(),
        Err(sec(3300))
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &[34; 32], T + sec(3901))
            .await
            .unwrap(),
        OtpCheck::Accepted
    );

    concurrent_sends_and_guesses(s, &limits).await;
}

pub async fn a_guess_under_another_challenge_costs_nothing<H: Harness>(h: &H) {
    let s = h.store();
    let limits = OtpLimits::default();
    let (phone, code, wrong, stranger) = ([21u8; 32], [22u8; 32], [23u8; 32], [24u8; 32]);
    s.issue_otp(&phone, &CHALLENGE, &code, T, &limits)
        .await
        .unwrap()
        .unwrap();
    // A stranger guessing under another challenge, a hundred times, right code or wrong: no code.
    for guess in [wrong, code].iter().cycle().take(100) {
        assert_eq!(
            s.check_otp(&phone, &stranger, guess, T).await.unwrap(),
            OtpCheck::Missing
        );
    }
    // The owner's code still has every guess, and works.
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &wrong, T).await.unwrap(),
        OtpCheck::Wrong {
            attempts_left: limits.attempts - 1
        }
    );
    assert_eq!(
        s.check_otp(&phone, &CHALLENGE, &code, T).await.unwrap(),
        OtpCheck::Accepted
    );
}

/// Concurrent sends to one phone and concurrent guesses at its code, each taking its turn.
async fn concurrent_sends_and_guesses<S: Store>(s: &S, limits: &OtpLimits) {
    let sec = Duration::seconds;
    let wrong = [99u8; 32];
    // Concurrent sends to one phone: one passes.
    let other = [3u8; 32];
    let codes: Vec<[u8; 32]> = (0..8u8).map(|i| [40 + i; 32]).collect();
    let sent = futures_util::future::join_all(
        codes
            .iter()
            .map(|c| s.issue_otp(&other, &CHALLENGE, c, T, limits)),
    )
    .await;
    assert_eq!(
        sent.iter().filter(|r| matches!(r, Ok(Ok(())))).count(),
        1,
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|r| matches!(r, Ok(Ok(())) | Ok(Err(_)))),
        "{sent:?}"
    );
    // And again once a code is stored: still one.
    let sent = futures_util::future::join_all(
        codes
            .iter()
            .map(|c| s.issue_otp(&other, &CHALLENGE, c, T + sec(60), limits)),
    )
    .await;
    assert_eq!(
        sent.iter().filter(|r| matches!(r, Ok(Ok(())))).count(),
        1,
        "{sent:?}"
    );
    // Concurrent guesses: exactly five count, each seeing a different number left.
    let winner = codes
        .iter()
        .zip(&sent)
        .find(|(_, r)| matches!(r, Ok(Ok(()))))
        .map(|(c, _)| *c)
        .unwrap();
    let guesses =
        futures_util::future::join_all((0..10).map(|_| s.check_otp(&other, &CHALLENGE, &wrong, T + sec(61))))
            .await;
    let mut left: Vec<u8> = guesses
        .iter()
        .filter_map(|g| match g {
            Ok(OtpCheck::Wrong { attempts_left }) => Some(*attempts_left),
            _ => None,
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, vec![0, 1, 2, 3, 4], "{guesses:?}");
    assert_eq!(
        guesses
            .iter()
            .filter(|g| matches!(g, Ok(OtpCheck::Exhausted)))
            .count(),
        5
    );
    assert_eq!(
        s.check_otp(&other, &CHALLENGE, &winner, T + sec(62))
            .await
            .unwrap(),
        OtpCheck::Exhausted
    );
}

pub async fn sessions_are_found_and_revoked<H: Harness>(h: &H) {
    let s = h.store();
    let session = |principal: Principal, created_at: OffsetDateTime| Session {
        principal,
        created_at,
        expires_at: created_at + Duration::hours(12),
    };
    let phone = session(Principal::Holder(hid(1)), T);
    let tablet = session(Principal::Holder(hid(1)), T + Duration::minutes(5));
    // Long expired: still returned, the caller decides.
    let officer = session(Principal::Officer(OfficerId(7)), T - Duration::days(3));
    let colleague = session(Principal::Officer(OfficerId(8)), T);
    let other_holder = session(Principal::Holder(hid(2)), T);
    for (token, sess) in [
        ([1u8; 32], &phone),
        ([2; 32], &tablet),
        ([3; 32], &officer),
        ([4; 32], &colleague),
        ([5; 32], &other_holder),
    ] {
        s.insert_session(&token, sess).await.unwrap();
    }
    assert_eq!(s.session(&[1; 32]).await.unwrap().as_ref(), Some(&phone));
    assert_eq!(s.session(&[2; 32]).await.unwrap().as_ref(), Some(&tablet));
    assert_eq!(s.session(&[3; 32]).await.unwrap().as_ref(), Some(&officer));
    assert!(s.session(&[9; 32]).await.unwrap().is_none());
    assert!(matches!(
        s.insert_session(&[1; 32], &colleague).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.session(&[1; 32]).await.unwrap().as_ref(), Some(&phone));
    // One session ends.
    assert!(s.revoke_session(&[1; 32]).await.unwrap());
    assert!(!s.revoke_session(&[1; 32]).await.unwrap());
    assert!(s.session(&[1; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[2; 32]).await.unwrap().as_ref(), Some(&tablet));
    // All of a principal's sessions end, and only theirs.
    assert_eq!(s.revoke_sessions_of(&Principal::Holder(hid(1))).await.unwrap(), 1);
    assert!(s.session(&[2; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[5; 32]).await.unwrap().as_ref(), Some(&other_holder));
    assert_eq!(
        s.revoke_sessions_of(&Principal::Officer(OfficerId(7)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.revoke_sessions_of(&Principal::Officer(OfficerId(7)))
            .await
            .unwrap(),
        0
    );
    assert!(s.session(&[3; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[4; 32]).await.unwrap().as_ref(), Some(&colleague));
}

pub async fn bulk_inserts<H: Harness>(h: &H) {
    let s = h.store();
    let city = synthetic_holders(0, 1_000);
    assert_eq!(s.insert_holders(&city).await.unwrap(), 1_000);
    for i in [0, 1, 499, 998, 999] {
        assert_eq!(s.holder(&city[i].id).await.unwrap().as_ref(), Some(&city[i]));
    }
    let back = s.holder_by_phone(&city[123].phone_hash).await.unwrap().unwrap();
    assert_eq!(back, city[123]);
    assert_eq!(crypto().open_holder(&back).unwrap().phone, "+8613900000123");
    assert_eq!(
        s.holder_by_identity(&city[777].identity_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&city[777])
    );
    assert_eq!(s.insert_holders(&[]).await.unwrap(), 0);

    // All or nothing: a taken identity or phone, in the store or twice in the batch, refuses the
    // whole batch, wherever it is.
    let more = synthetic_holders(1_000, 10);
    let mut batches = Vec::new();
    let mut b = more.clone();
    b[7].identity_hash = city[3].identity_hash;
    batches.push(("an identity in the store", b));
    let mut b = more.clone();
    b[0].phone_hash = city[500].phone_hash;
    batches.push(("a phone in the store", b));
    let mut b = more.clone();
    b[9].identity_hash = b[2].identity_hash;
    batches.push(("an identity twice in the batch", b));
    let mut b = more.clone();
    b[6].phone_hash = b[5].phone_hash;
    batches.push(("a phone twice in the batch", b));
    let mut b = more.clone();
    b[8] = b[1].clone();
    batches.push(("a holder twice in the batch", b));
    for (what, batch) in &batches {
        assert!(
            matches!(s.insert_holders(batch).await, Err(StoreError::Conflict(_))),
            "{what}"
        );
        for m in &more {
            assert!(s.holder(&m.id).await.unwrap().is_none(), "{what}: a row was kept");
        }
    }
    assert_eq!(
        s.holder_by_identity(&city[3].identity_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&city[3])
    );
    // The refusals left nothing half-done: the batch goes in once its clashes are gone.
    assert_eq!(s.insert_holders(&more).await.unwrap(), 10);
    assert_eq!(s.holder(&more[7].id).await.unwrap().as_ref(), Some(&more[7]));

    // Venues come back with their ids, in input order.
    let region = Issuer::parse("CN-ZJ").unwrap();
    let before = venue(s, "Town Hall", VenueCategory::Office).await;
    let new: Vec<NewVenue> = (0..300)
        .map(|i| NewVenue {
            name: format!("Venue {i}"),
            category: VenueCategory::ALL[i % VenueCategory::ALL.len()],
            region: region.clone(),
            admission: [
                AdmissionPolicy::GreenOnly,
                AdmissionPolicy::GreenOrYellow,
                AdmissionPolicy::All,
            ][i % 3],
        })
        .collect();
    let made = s.insert_venues(&new).await.unwrap();
    assert_eq!(made.len(), new.len());
    for (v, n) in made.iter().zip(&new) {
        assert_eq!(
            (&v.name, v.category, &v.region, v.admission),
            (&n.name, n.category, &n.region, n.admission)
        );
        assert_eq!(s.venue(v.id).await.unwrap().as_ref(), Some(v));
    }
    let after = venue(s, "Station", VenueCategory::Transport).await;
    let ids: std::collections::HashSet<VenueId> =
        made.iter().map(|v| v.id).chain([before.id, after.id]).collect();
    assert_eq!(ids.len(), 302, "ids are unique");
    assert_eq!(s.venues().await.unwrap().len(), 302);
    assert!(s.insert_venues(&[]).await.unwrap().is_empty());
}
