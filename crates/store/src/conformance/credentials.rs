//! Staff credentials: failed sign-ins and locks, account changes, the second factor, staff
//! sessions, device key rotation.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn sign_in_failures_grow_lock_and_are_forgotten<H: Harness>(h: &H) {
    let s = h.store();
    let key = "user:li.na".to_owned();
    let forget = T - Duration::days(1);
    for n in 1..=3u32 {
        let f = s
            .record_sign_in_failure(&key, T + Duration::seconds(n.into()), 3, forget)
            .await
            .unwrap();
        assert_eq!((f.streak, f.unseen, f.locked_at.is_some()), (n, n, n == 3));
    }
    let client = "client:192.0.2.7".to_owned();
    s.record_sign_in_failure(&client, T, 0, forget).await.unwrap();
    let both = s
        .sign_in_failures(&[key.clone(), client.clone(), "user:nobody".into()])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    let locked = both.iter().find(|f| f.key == key).unwrap();
    assert_eq!(locked.locked_at, Some(T + Duration::seconds(3)));
    assert_eq!(locked.last_failure_at, T + Duration::seconds(3));

    // A success (one that raced the locking failure) does not erase a lock.
    assert!(s.sign_in_succeeded(&key).await.unwrap().is_none());
    assert!(
        s.sign_in_failures(std::slice::from_ref(&key)).await.unwrap()[0]
            .locked_at
            .is_some()
    );

    // Old unlocked rows go; a locked one stays until unlocked, and unlocking keeps what the
    // owner has not seen.
    assert_eq!(s.forget_sign_in_failures(T + Duration::days(2)).await.unwrap(), 1);
    assert!(s.unlock_sign_in(&key).await.unwrap());
    assert!(!s.unlock_sign_in(&key).await.unwrap());
    let after = s.sign_in_failures(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(
        (after[0].streak, after[0].unseen, after[0].locked_at),
        (0, 3, None)
    );
    let seen = s.sign_in_succeeded(&key).await.unwrap().unwrap();
    assert_eq!(seen.unseen, 3);
    assert!(s.sign_in_succeeded(&key).await.unwrap().is_none());
    assert!(s.sign_in_failures(&[key]).await.unwrap().is_empty());
}

pub async fn the_last_active_admin_cannot_be_removed<H: Harness>(h: &H) {
    let s = h.store();
    let root = s
        .insert_officer("root", Role::Admin, "$a", false, T)
        .await
        .unwrap();
    let li = s
        .insert_officer("li", Role::Officer, "$b", false, T)
        .await
        .unwrap();
    assert!(matches!(
        s.change_account(root.id, li.id, AccountChange::Disable, T).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        s.change_account(root.id, root.id, AccountChange::Role(Role::Officer), T)
            .await,
        Err(StoreError::Refused(_))
    ));
    let promoted = s
        .change_account(li.id, root.id, AccountChange::Role(Role::Admin), T)
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Admin);
    // With two admins, one may disable the other; the one left cannot then be disabled.
    let off = s
        .change_account(root.id, li.id, AccountChange::Disable, T + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(off.disabled_at, Some(T + Duration::minutes(1)));
    assert_eq!(
        s.officer(root.id).await.unwrap().unwrap().disabled_at,
        off.disabled_at
    );
    assert!(matches!(
        s.change_account(li.id, root.id, AccountChange::Disable, T).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        s.change_account(root.id, li.id, AccountChange::Disable, T).await,
        Err(StoreError::Refused(_))
    ));
    let back = s
        .change_account(root.id, li.id, AccountChange::Enable, T)
        .await
        .unwrap();
    assert_eq!(back.disabled_at, None);
    assert!(matches!(
        s.change_account(OfficerId(999_999), li.id, AccountChange::Enable, T)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn second_factor_steps_and_recovery_codes_are_single_use<H: Harness>(h: &H) {
    let s = h.store();
    let li = s
        .insert_officer("li", Role::Officer, "$b", false, T)
        .await
        .unwrap();
    let none = s.second_factor(li.id).await.unwrap().unwrap();
    assert_eq!((none.secret, none.offered, none.recovery_left), (None, None, 0));
    assert!(s.second_factor(OfficerId(999_999)).await.unwrap().is_none());
    // Nothing to confirm before an offer; steps are refused while nothing is enrolled.
    assert!(matches!(
        s.confirm_second_factor(li.id, b"sealed-one", 100, &[[1; 32]], &[7; 32])
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(!s.use_totp_step(li.id, 100).await.unwrap());
    s.offer_second_factor(li.id, b"sealed-one").await.unwrap();
    s.offer_second_factor(li.id, b"sealed-two").await.unwrap();
    assert!(!s.officer(li.id).await.unwrap().unwrap().second_factor);
    let codes: Vec<[u8; 32]> = (1..=10).map(|n| [n; 32]).collect();
    let end = T + Duration::hours(12);
    s.insert_staff_session(&[7; 32], li.id, T, end, None, false)
        .await
        .unwrap();
    s.insert_staff_session(&[8; 32], li.id, T, end, None, false)
        .await
        .unwrap();
    // The code was checked against the first offer, and the secret was offered again since:
    // refused, and nothing is enrolled.
    assert!(matches!(
        s.confirm_second_factor(li.id, b"sealed-one", 100, &codes, &[7; 32])
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(!s.officer(li.id).await.unwrap().unwrap().second_factor);
    // Confirmed in session 7: it has given the second factor, and every other session ended.
    assert_eq!(
        s.confirm_second_factor(li.id, b"sealed-two", 100, &codes, &[7; 32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.touch_session(&[7; 32], T, T).await.unwrap(), Some(true));
    assert_eq!(s.touch_session(&[8; 32], T, T).await.unwrap(), None);
    let sf = s.second_factor(li.id).await.unwrap().unwrap();
    assert_eq!(sf.secret.as_deref(), Some(&b"sealed-two"[..]));
    assert_eq!(
        (sf.offered, sf.last_step, sf.recovery_left),
        (None, Some(100), 10)
    );
    assert!(s.officer(li.id).await.unwrap().unwrap().second_factor);
    // An enrolled secret is not replaced by a later offer, whatever the caller checked.
    s.offer_second_factor(li.id, b"sealed-three").await.unwrap();
    assert!(matches!(
        s.confirm_second_factor(li.id, b"sealed-three", 150, &codes, &[7; 32])
            .await,
        Err(StoreError::Refused(_))
    ));
    let sf = s.second_factor(li.id).await.unwrap().unwrap();
    assert_eq!(sf.secret.as_deref(), Some(&b"sealed-two"[..]));
    assert_eq!(sf.last_step, Some(100));
    // A step is good once, and only after the last one.
    assert!(!s.use_totp_step(li.id, 100).await.unwrap());
    assert!(!s.use_totp_step(li.id, 99).await.unwrap());
    assert!(s.use_totp_step(li.id, 101).await.unwrap());
    assert!(!s.use_totp_step(li.id, 101).await.unwrap());
    // A recovery code is good once; an unknown one never.
    assert!(s.use_recovery_code(li.id, &[3; 32], T).await.unwrap());
    assert!(!s.use_recovery_code(li.id, &[3; 32], T).await.unwrap());
    assert!(!s.use_recovery_code(li.id, &[99; 32], T).await.unwrap());
    let root = s
        .insert_officer("root", Role::Admin, "$a", false, T)
        .await
        .unwrap();
    assert!(!s.use_recovery_code(root.id, &[4; 32], T).await.unwrap());
    let sf = s.second_factor(li.id).await.unwrap().unwrap();
    assert_eq!((sf.recovery_left, sf.recovery_last_used), (9, Some(T)));
    // A reset removes all of it.
    assert!(s.reset_second_factor(li.id).await.unwrap());
    assert!(!s.reset_second_factor(li.id).await.unwrap());
    let gone = s.second_factor(li.id).await.unwrap().unwrap();
    assert_eq!((gone.secret, gone.recovery_left), (None, 0));
    assert!(!s.use_recovery_code(li.id, &[5; 32], T).await.unwrap());
    assert!(!s.officer(li.id).await.unwrap().unwrap().second_factor);
}

pub async fn staff_sessions_are_listed_and_expire_when_idle<H: Harness>(h: &H) {
    let s = h.store();
    let li = s
        .insert_officer("li", Role::Officer, "$b", false, T)
        .await
        .unwrap();
    let other = s
        .insert_officer("wang", Role::Officer, "$c", false, T)
        .await
        .unwrap();
    let end = T + Duration::hours(12);
    s.insert_staff_session(&[1; 32], li.id, T, end, Some("192.0.2.1"), false)
        .await
        .unwrap();
    s.insert_staff_session(&[2; 32], li.id, T + Duration::minutes(1), end, None, true)
        .await
        .unwrap();
    s.insert_staff_session(&[3; 32], other.id, T, end, Some("192.0.2.9"), false)
        .await
        .unwrap();
    let listed = s.staff_sessions(li.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (
            listed[0].token_hash,
            listed[0].client.as_deref(),
            listed[0].last_used_at
        ),
        ([1; 32], Some("192.0.2.1"), T)
    );
    assert_eq!((listed[1].client.as_deref(), listed[1].expires_at), (None, end));
    // The usual session lookup sees a staff session too.
    assert_eq!(
        s.session(&[1; 32]).await.unwrap().unwrap().principal,
        Principal::Officer(li.id)
    );
    // Used within the idle limit: kept and marked; idle longer: refused and unchanged.
    let later = T + Duration::minutes(20);
    assert_eq!(
        s.touch_session(&[1; 32], later, later - Duration::minutes(30))
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        s.touch_session(&[2; 32], later, later - Duration::minutes(30))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(s.staff_sessions(li.id).await.unwrap()[0].last_used_at, later);
    let much_later = later + Duration::minutes(31);
    assert_eq!(
        s.touch_session(&[1; 32], much_later, much_later - Duration::minutes(30))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.staff_sessions(li.id).await.unwrap()[0].last_used_at, later);
    assert_eq!(s.touch_session(&[9; 32], later, T).await.unwrap(), None);
    assert_eq!(s.revoke_sessions_of(&Principal::Officer(li.id)).await.unwrap(), 2);
    assert!(s.staff_sessions(li.id).await.unwrap().is_empty());
    assert_eq!(s.staff_sessions(other.id).await.unwrap().len(), 1);
}

pub async fn a_rotated_device_key_replaces_the_old_one<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "West Lake Mall", VenueCategory::Mall).await;
    let d = s.insert_device(mall.id, "north gate", &[5; 32]).await.unwrap();
    let (old, rotated) = s.rotate_device_key(d.id, &[6; 32]).await.unwrap();
    assert_eq!((old, rotated.key_hash, rotated.id), ([5; 32], [6; 32], d.id));
    assert!(s.device_by_key_hash(&[5; 32]).await.unwrap().is_none());
    assert_eq!(s.device_by_key_hash(&[6; 32]).await.unwrap().unwrap(), rotated);
    s.revoke_device(d.id, T).await.unwrap();
    assert!(matches!(
        s.rotate_device_key(d.id, &[7; 32]).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        s.rotate_device_key(DeviceId(999_999), &[8; 32]).await,
        Err(StoreError::NotFound(_))
    ));
}
