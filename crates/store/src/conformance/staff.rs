//! Venues, devices and officer accounts.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn venues_and_devices<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "West Lake Mall", VenueCategory::Mall).await;
    let hospital = venue(s, "No. 1 Hospital", VenueCategory::Hospital).await;
    assert_ne!(mall.id, hospital.id);
    assert_eq!(s.venue(mall.id).await.unwrap().unwrap(), mall);
    assert_eq!(s.venues().await.unwrap().len(), 2);
    assert!(s.venue(VenueId(999_999)).await.unwrap().is_none());
    let d = s.insert_device(mall.id, "north gate", &[5; 32]).await.unwrap();
    assert_eq!(d.venue, mall.id);
    assert_eq!(s.device_by_key_hash(&[5; 32]).await.unwrap().unwrap(), d);
    assert!(s.device_by_key_hash(&[6; 32]).await.unwrap().is_none());
    assert!(matches!(
        s.insert_device(VenueId(999_999), "x", &[7; 32]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.insert_device(hospital.id, "dup", &[5; 32]).await,
        Err(StoreError::Conflict(_))
    ));
    // Revoked once, at one time; the key still finds the device, which says it is revoked.
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let revoked = s.revoke_device(d.id, at).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(s.device_by_key_hash(&[5; 32]).await.unwrap().unwrap(), revoked);
    assert_eq!(s.devices(Some(mall.id)).await.unwrap(), vec![revoked.clone()]);
    assert!(matches!(
        s.revoke_device(d.id, at + time::Duration::hours(1)).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(
        s.device_by_key_hash(&[5; 32]).await.unwrap().unwrap().revoked_at,
        Some(at)
    );
    assert!(matches!(
        s.revoke_device(DeviceId(999_999), at).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn officers_are_unique_and_keep_roles<H: Harness>(h: &H) {
    let s = h.store();
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    let admin = s
        .insert_officer("admin", Role::Admin, phc, true, T)
        .await
        .unwrap();
    let li = s
        .insert_officer(
            "li.na",
            Role::Officer,
            "$argon2id$li",
            false,
            T + Duration::minutes(1),
        )
        .await
        .unwrap();
    let audit = s
        .insert_officer("auditor", Role::Auditor, "$argon2id$au", false, T)
        .await
        .unwrap();
    assert_eq!(
        (
            admin.role,
            admin.username.as_str(),
            admin.password_hash.as_str(),
            admin.must_change_password
        ),
        (Role::Admin, "admin", phc, true)
    );
    assert!(admin.id != li.id && li.id != audit.id && admin.id != audit.id);
    assert_eq!(s.officer(admin.id).await.unwrap().as_ref(), Some(&admin));
    assert_eq!(s.officer(audit.id).await.unwrap().unwrap().role, Role::Auditor);
    assert_eq!(s.officer_by_username("li.na").await.unwrap().as_ref(), Some(&li));
    assert!(s.officer_by_username("li.n").await.unwrap().is_none());
    assert!(s.officer(OfficerId(999_999)).await.unwrap().is_none());
    assert_eq!(
        s.officers().await.unwrap(),
        vec![admin.clone(), li.clone(), audit.clone()]
    );
    // A username is taken once, whatever the role.
    assert!(matches!(
        s.insert_officer("li.na", Role::Auditor, "$argon2id$x", false, T)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.officers().await.unwrap().len(), 3);
    // A new password replaces the old, and whether it must change; nothing else moves.
    s.set_officer_password(admin.id, "$argon2id$new", false)
        .await
        .unwrap();
    let back = s.officer(admin.id).await.unwrap().unwrap();
    assert_eq!(back.password_hash, "$argon2id$new");
    assert!(!back.must_change_password);
    assert_eq!(
        (back.id, back.username.as_str(), back.role, back.created_at),
        (admin.id, "admin", Role::Admin, T)
    );
    assert_eq!(s.officer(li.id).await.unwrap().as_ref(), Some(&li));
    s.set_officer_password(li.id, "$argon2id$reset", true)
        .await
        .unwrap();
    assert!(s.officer(li.id).await.unwrap().unwrap().must_change_password);
    assert!(matches!(
        s.set_officer_password(OfficerId(999_999), "$argon2id$x", false)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// For the backends' own tests of damaged data: stores one officer (`li.na`) and returns it.
pub async fn add_one_officer<S: Store>(s: &S) -> Officer {
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    s.insert_officer("li.na", Role::Officer, "$argon2id$x", false, at)
        .await
        .unwrap()
}

/// After a backend's test damaged the role of `officer` to one this version does not know: it is
/// unreadable data, not a database failure, and never some other role.
pub async fn an_unknown_role_reads_as_corrupt<S: Store>(s: &S, officer: &Officer) {
    assert!(matches!(s.officer(officer.id).await, Err(StoreError::Corrupt(_))));
    assert!(matches!(
        s.officer_by_username(&officer.username).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(s.officers().await, Err(StoreError::Corrupt(_))));
}
