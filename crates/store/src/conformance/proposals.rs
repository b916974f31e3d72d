//! Two people for every act that changes colours or powers: the approval rule in the store's
//! transaction, and each act done only on approval.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

const DAY: ApprovalPolicy = ApprovalPolicy {
    approver_min_age: Duration::hours(24),
};

fn refused<T: std::fmt::Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Refused(m)) => assert!(m.contains(what), "{m:?} does not say {what:?}"),
        other => panic!("expected a refusal saying {what:?}, got {other:?}"),
    }
}

async fn admin<S: Store>(s: &S, name: &str, at: OffsetDateTime) -> Officer {
    s.insert_officer(name, Role::Admin, "$argon2id$x", false, at)
        .await
        .unwrap()
}

pub async fn overrides_follow_the_approval_rule<H: Harness>(h: &H) {
    let s = h.store();
    let [a, _, _] = three_officers(s).await;
    let young = s
        .insert_officer(
            "new-officer",
            Role::Officer,
            "$argon2id$x",
            false,
            T - Duration::hours(2),
        )
        .await
        .unwrap();
    let auditor = s
        .insert_officer(
            "auditor",
            Role::Auditor,
            "$argon2id$x",
            false,
            T - Duration::days(9),
        )
        .await
        .unwrap();
    let o = s
        .propose_override(&NewOverride {
            holder: hid(1),
            colour: Colour::Green,
            reason: "turned green by one person".into(),
            proposed_by: a,
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    refused(
        s.approve_override(o.id, young.id, T, DAY, None).await,
        "younger than 24 hours",
    );
    refused(
        s.approve_override(o.id, auditor.id, T, DAY, None).await,
        "enabled officer",
    );
    refused(
        s.approve_override(o.id, OfficerId(999_999), T, DAY, None).await,
        "does not exist",
    );
    assert!(
        s.holder_facts(&hid(1)).await.unwrap().overrides[0]
            .approval
            .is_none()
    );
    // With no minimum age, the same young account may approve.
    let none = ApprovalPolicy {
        approver_min_age: Duration::ZERO,
    };
    let done = s.approve_override(o.id, young.id, T, none, None).await.unwrap();
    assert_eq!(done.approval, Some((young.id, T)));
}

pub async fn a_risk_area_is_declared_changed_and_ended_on_approval<H: Harness>(h: &H) {
    let s = h.store();
    let [a, b, _] = three_officers(s).await;
    let declare = Act::RiskAreaDeclare {
        region: "CN-SH".into(),
        level: RiskLevel::High,
        from: T - Duration::days(3),
        until: None,
    };
    let p = s.propose(&declare, a, T, T + Duration::hours(72)).await.unwrap();
    assert_eq!(p.state, ProposalState::Pending);
    assert!(
        s.risk_areas().await.unwrap().is_empty(),
        "declared by one officer alone"
    );
    refused(
        s.approve_proposal(p.id, a, T, DAY, None, None).await,
        "different person",
    );
    assert!(s.risk_areas().await.unwrap().is_empty());
    let done = s
        .approve_proposal(p.id, b, T + Duration::minutes(5), DAY, None, None)
        .await
        .unwrap();
    assert_eq!(done.state, ProposalState::Approved);
    assert_eq!(done.decided, Some((b, T + Duration::minutes(5))));
    assert_eq!(s.proposal(p.id).await.unwrap(), Some(done));
    let areas = s.listed_risk_areas().await.unwrap();
    assert_eq!(areas.len(), 1);
    let sh = areas[0].clone();
    assert_eq!(
        (sh.area.region.as_str(), sh.area.level, sh.area.until),
        ("CN-SH", RiskLevel::High, None)
    );
    refused(
        s.approve_proposal(p.id, b, T, DAY, None, None).await,
        "approved already",
    );
    assert_eq!(s.risk_areas().await.unwrap().len(), 1, "approved twice");

    // Its level changes, then it ends, each once approved; it stays listed with its end.
    let lower = Act::RiskAreaLevel {
        area: sh.id,
        level: RiskLevel::Low,
    };
    let p = s.propose(&lower, b, T, T + Duration::hours(72)).await.unwrap();
    assert_eq!(s.risk_areas().await.unwrap()[0].level, RiskLevel::High);
    s.approve_proposal(p.id, a, T + Duration::hours(1), DAY, None, None)
        .await
        .unwrap();
    assert_eq!(s.risk_areas().await.unwrap()[0].level, RiskLevel::Low);
    let end = Act::RiskAreaEnd { area: sh.id };
    let p = s.propose(&end, a, T, T + Duration::hours(72)).await.unwrap();
    assert_eq!(
        s.risk_areas().await.unwrap().len(),
        1,
        "ended by one officer alone"
    );
    s.approve_proposal(p.id, b, T + Duration::hours(2), DAY, None, None)
        .await
        .unwrap();
    assert!(
        s.risk_areas().await.unwrap().is_empty(),
        "an ended area still counts"
    );
    let listed = s.listed_risk_areas().await.unwrap();
    assert_eq!(listed.len(), 1, "an ended area keeps its history");
    assert_eq!(listed[0].ended_at, Some(T + Duration::hours(2)));
    assert_eq!(listed[0].area.level, RiskLevel::Low);
    // An ended area cannot be ended or changed again: the approval is refused and undone.
    let again = s.propose(&end, a, T, T + Duration::hours(72)).await.unwrap();
    assert!(matches!(
        s.approve_proposal(again.id, b, T + Duration::hours(3), DAY, None, None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.proposal(again.id).await.unwrap().unwrap().state,
        ProposalState::Pending,
        "a failed act left its proposal approved"
    );
    assert_eq!(
        s.listed_risk_areas().await.unwrap()[0].ended_at,
        Some(T + Duration::hours(2))
    );
    let missing = s
        .propose(&Act::RiskAreaEnd { area: 999_999 }, a, T, T + Duration::hours(72))
        .await
        .unwrap();
    assert!(matches!(
        s.approve_proposal(missing.id, b, T, DAY, None, None).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn accounts_and_roles_change_only_on_approval<H: Harness>(h: &H) {
    let s = h.store();
    let root = admin(s, "root", T - Duration::days(30)).await;
    let second = admin(s, "second", T - Duration::days(30)).await;
    let create = |name: &str, role| Act::AccountCreate {
        username: name.into(),
        role,
        phone: Some("+8613900139001".into()),
    };
    const ONE_TIME: Option<&str> = Some("$argon2id$one-time");
    // The puppet: proposed by root, approved by the second admin; it exists only then.
    let p = s
        .propose(
            &create("puppet", Role::Admin),
            root.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    assert!(s.officer_by_username("puppet").await.unwrap().is_none());
    refused(
        s.approve_proposal(p.id, root.id, T, DAY, None, None).await,
        "different person",
    );
    assert!(s.officer_by_username("puppet").await.unwrap().is_none());
    // The approval brings the one-time password (made for the approver): without one, nothing.
    refused(
        s.approve_proposal(p.id, second.id, T, DAY, None, None).await,
        "one-time password",
    );
    assert!(s.officer_by_username("puppet").await.unwrap().is_none());
    assert_eq!(
        s.proposal(p.id).await.unwrap().unwrap().state,
        ProposalState::Pending
    );
    s.approve_proposal(p.id, second.id, T, DAY, ONE_TIME, None)
        .await
        .unwrap();
    let puppet = s.officer_by_username("puppet").await.unwrap().unwrap();
    assert_eq!(Some(puppet.password_hash.as_str()), ONE_TIME);
    assert_eq!(
        (
            puppet.role,
            puppet.created_by,
            puppet.creation_approved_by,
            puppet.created_at
        ),
        (Role::Admin, Some(root.id), Some(second.id), T)
    );
    assert!(puppet.must_change_password);
    // The owner's phone, where the one-time password went, is the account's.
    assert_eq!(puppet.phone.as_deref(), Some("+8613900139001"));
    assert_eq!(
        puppet.phone_proven_at, None,
        "the proposer's word is not the owner's proof"
    );
    s.set_officer_phone(puppet.id, "+8613900139009", T + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        s.officer(puppet.id).await.unwrap().unwrap().phone_proven_at,
        Some(T + Duration::hours(1))
    );
    assert_eq!(
        s.officer(puppet.id).await.unwrap().unwrap().phone.as_deref(),
        Some("+8613900139009")
    );
    // An account proposed before phones were recorded is refused: nobody could be sent its
    // password but the approver.
    let phoneless = s
        .propose(
            &Act::from_stored(r#"{"act":"account-create","username":"old","role":"officer"}"#).unwrap(),
            root.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    refused(
        s.approve_proposal(phoneless.id, second.id, T, DAY, ONE_TIME, None)
            .await,
        "owner's phone",
    );
    assert!(s.officer_by_username("old").await.unwrap().is_none());
    // Root proposes; the puppet cannot approve, in its first day or ever after.
    let grant = s
        .propose(
            &Act::RoleGrant {
                officer: second.id.0,
                role: Role::Officer,
            },
            root.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    refused(
        s.approve_proposal(grant.id, puppet.id, T + Duration::days(2), DAY, None, None)
            .await,
        "created it",
    );
    // Nor the reverse: the puppet proposes, root approves.
    let by_puppet = s
        .propose(
            &create("another", Role::Officer),
            puppet.id,
            T + Duration::days(2),
            T + Duration::days(3),
        )
        .await
        .unwrap();
    refused(
        s.approve_proposal(by_puppet.id, root.id, T + Duration::days(2), DAY, None, None)
            .await,
        "created it",
    );
    assert!(s.officer_by_username("another").await.unwrap().is_none());
    // An account in its first day approves nothing, even what a stranger proposed.
    let third = admin(s, "third", T - Duration::days(30)).await;
    let p = s
        .propose(
            &create("fourth", Role::Officer),
            third.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    refused(
        s.approve_proposal(p.id, puppet.id, T + Duration::hours(23), DAY, None, None)
            .await,
        "younger than 24 hours",
    );
    // A taken username is a conflict at approval, and nothing changes.
    let dup = s
        .propose(
            &create("puppet", Role::Officer),
            third.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.approve_proposal(dup.id, root.id, T, DAY, ONE_TIME, None).await,
        Err(StoreError::Conflict(_))
    ));
    // The role takes effect only on approval by an eligible second admin.
    assert_eq!(s.officer(second.id).await.unwrap().unwrap().role, Role::Admin);
    s.approve_proposal(grant.id, third.id, T, DAY, None, None)
        .await
        .unwrap();
    assert_eq!(s.officer(second.id).await.unwrap().unwrap().role, Role::Officer);
    // A proposal to demote oneself is refused at approval, as a change made at once would be.
    let own = s
        .propose(
            &Act::RoleGrant {
                officer: third.id.0,
                role: Role::Auditor,
            },
            third.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    refused(s.approve_proposal(own.id, root.id, T, DAY, None, None).await, "");
    assert_eq!(s.officer(third.id).await.unwrap().unwrap().role, Role::Admin);
    // Re-enabling restores powers: only on approval, recorded as a reset by the proposer.
    let fourth = admin(s, "fifth", T - Duration::days(30)).await;
    s.change_account(fourth.id, root.id, AccountChange::Disable, T)
        .await
        .unwrap();
    let enable = s
        .propose(
            &Act::AccountEnable { officer: fourth.id.0 },
            root.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    assert!(s.officer(fourth.id).await.unwrap().unwrap().disabled_at.is_some());
    refused(
        s.approve_proposal(enable.id, root.id, T, DAY, None, None).await,
        "different person",
    );
    s.approve_proposal(enable.id, third.id, T, DAY, None, None)
        .await
        .unwrap();
    let back = s.officer(fourth.id).await.unwrap().unwrap();
    assert_eq!(
        (
            back.disabled_at,
            back.credentials_reset_by,
            back.credentials_reset_at
        ),
        (None, Some(root.id), Some(T))
    );
    // Enabling an active account is refused at approval.
    let again = s
        .propose(
            &Act::AccountEnable { officer: fourth.id.0 },
            root.id,
            T,
            T + Duration::hours(72),
        )
        .await
        .unwrap();
    refused(
        s.approve_proposal(again.id, third.id, T, DAY, None, None).await,
        "active already",
    );
}

pub async fn proposals_are_listed_paged_withdrawn_and_expire<H: Harness>(h: &H) {
    let s = h.store();
    let [a, b, _] = three_officers(s).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let act = Act::RiskAreaEnd { area: n };
        let expires = if n == 3 {
            T + Duration::hours(1)
        } else {
            T + Duration::hours(72)
        };
        ids.push(s.propose(&act, a, T, expires).await.unwrap().id);
    }
    let page = s.proposals(true, T, 0, 2).await.unwrap();
    assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), ids[..2]);
    let next = s.proposals(true, T, ids[1], 2).await.unwrap();
    assert_eq!(next.iter().map(|p| p.id).collect::<Vec<_>>(), ids[2..4]);
    // Withdrawn by its proposer only; then neither pending nor approvable.
    refused(s.withdraw_proposal(ids[0], b, T).await, "only the proposer");
    let w = s.withdraw_proposal(ids[0], a, T).await.unwrap();
    assert_eq!((w.state, w.decided), (ProposalState::Withdrawn, Some((a, T))));
    refused(
        s.approve_proposal(ids[0], b, T, DAY, None, None).await,
        "withdrawn",
    );
    refused(s.withdraw_proposal(ids[0], a, T).await, "withdrawn");
    assert!(matches!(
        s.withdraw_proposal(999_999, a, T).await,
        Err(StoreError::NotFound(_))
    ));
    // Expired: no longer listed as pending, and refused.
    let later = T + Duration::hours(2);
    let pending: Vec<i64> = s
        .proposals(true, later, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pending, vec![ids[1], ids[2], ids[4]]);
    refused(
        s.approve_proposal(ids[3], b, later, DAY, None, None).await,
        "expired",
    );
    assert_eq!(s.proposals(false, later, 0, 10).await.unwrap().len(), 5);
}

pub async fn bulk_exposure_decisions_wait_for_approval<H: Harness>(h: &H) {
    let s = h.store();
    let [a, b, _] = three_officers(s).await;
    let case = s.add_case(&hid(1), T - Duration::days(2), T).await.unwrap();
    let other = s.add_case(&hid(9), T - Duration::days(2), T).await.unwrap();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let mut found = Vec::new();
    for n in 2..6 {
        let start = T - Duration::hours(i64::from(n));
        found.push((hid(n), exposure(case.id, mall.id, start, ExposureGrade::Close)));
    }
    found.push((hid(7), exposure(other.id, mall.id, T, ExposureGrade::Close)));
    s.add_exposures_as(&found, ExposureState::Pending).await.unwrap();
    let (count, upto) = s.pending_exposure_mark(case.id).await.unwrap();
    assert_eq!(count, 4);
    assert_eq!(
        s.pending_exposure_mark(CaseId(case.id.0 + 1000)).await.unwrap(),
        (0, 0)
    );
    let act = Act::ExposureDecisions {
        case: case.id.0,
        apply: true,
        count,
        upto,
        note: "all at the mall".into(),
    };
    let p = s.propose(&act, a, T, T + Duration::hours(72)).await.unwrap();
    // Tracing records another contact of the case after the proposal: approval leaves it.
    let late = (
        hid(8),
        exposure(case.id, mall.id, T - Duration::hours(9), ExposureGrade::Close),
    );
    s.add_exposures_as(&[late], ExposureState::Pending).await.unwrap();
    assert_eq!(s.pending_exposure_mark(case.id).await.unwrap().0, 5);
    assert!(s.pending_exposure_mark(case.id).await.unwrap().1 > upto);
    assert_eq!(s.pending_exposures(100).await.unwrap().len(), 6);
    refused(
        s.approve_proposal(p.id, a, T, DAY, None, None).await,
        "different person",
    );
    assert!(s.holder_facts(&hid(2)).await.unwrap().exposures.is_empty());
    s.approve_proposal(p.id, b, T, DAY, None, None).await.unwrap();
    for n in 2..6 {
        assert_eq!(s.holder_facts(&hid(n)).await.unwrap().exposures.len(), 1);
    }
    let left = s.pending_exposures(100).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.holder.clone()).collect::<Vec<_>>(),
        vec![hid(8), hid(7)],
        "the exposure recorded after the proposal, or another case's, was decided"
    );
}

pub async fn an_account_whose_credentials_the_proposer_reset_approves_nothing_of_theirs<H: Harness>(h: &H) {
    let s = h.store();
    let root = admin(s, "root", T - Duration::days(30)).await;
    let victim = admin(s, "victim", T - Duration::days(30)).await;
    let third = admin(s, "third", T - Duration::days(30)).await;
    let fourth = admin(s, "fourth", T - Duration::days(30)).await;
    let declare = |region: &str| Act::RiskAreaDeclare {
        region: region.into(),
        level: RiskLevel::High,
        from: T - Duration::days(1),
        until: None,
    };
    let p = s
        .propose(&declare("CN-SH"), root.id, T, T + Duration::days(30))
        .await
        .unwrap();
    // Root resets the victim's password a week before, so knows it and signs in as the victim;
    // the victim's own change of password afterwards keeps the record.
    s.reset_officer_password(victim.id, "$argon2id$known", root.id, T - Duration::days(7))
        .await
        .unwrap();
    let v = s.officer(victim.id).await.unwrap().unwrap();
    assert_eq!(
        (
            v.password_hash.as_str(),
            v.must_change_password,
            v.credentials_reset_by,
            v.credentials_reset_at
        ),
        (
            "$argon2id$known",
            true,
            Some(root.id),
            Some(T - Duration::days(7))
        )
    );
    s.set_officer_password(victim.id, "$argon2id$chosen", false)
        .await
        .unwrap();
    refused(
        s.approve_proposal(p.id, victim.id, T, DAY, None, None).await,
        "reset",
    );
    // Nor the reverse: what the victim's account proposes, root does not approve.
    let q = s
        .propose(&declare("CN-BJ"), victim.id, T, T + Duration::days(30))
        .await
        .unwrap();
    refused(
        s.approve_proposal(q.id, root.id, T, DAY, None, None).await,
        "reset",
    );
    // Disabled and re-enabled by root: the same.
    s.change_account(third.id, root.id, AccountChange::Disable, T - Duration::days(3))
        .await
        .unwrap();
    s.change_account(third.id, root.id, AccountChange::Enable, T - Duration::days(2))
        .await
        .unwrap();
    refused(
        s.approve_proposal(p.id, third.id, T, DAY, None, None).await,
        "reset",
    );
    assert!(matches!(
        s.reset_officer_password(OfficerId(999_999), "$argon2id$x", root.id, T)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Another admin resets the victim's password again: a day long, the victim counts as new.
    s.reset_officer_password(victim.id, "$argon2id$again", fourth.id, T - Duration::hours(1))
        .await
        .unwrap();
    refused(
        s.approve_proposal(p.id, victim.id, T, DAY, None, None).await,
        "less than 24 hours ago",
    );
    assert!(s.risk_areas().await.unwrap().is_empty());
    // A day after that reset (root no longer knows the credentials), the victim may approve.
    s.approve_proposal(p.id, victim.id, T + Duration::hours(23), DAY, None, None)
        .await
        .unwrap();
    assert_eq!(s.risk_areas().await.unwrap().len(), 1);
}

pub async fn an_approval_is_recorded_in_the_transaction_that_does_it<H: Harness>(h: &H) {
    let s = h.store();
    let root = admin(s, "root", T - Duration::days(30)).await;
    let second = admin(s, "second", T - Duration::days(30)).await;
    let record = |what: &str| AuditEntry {
        at: T,
        actor: format!("officer:{}:second", second.id.0),
        role: "admin".into(),
        action: "approve-account-create".into(),
        subject: None,
        purpose: what.into(),
    };
    let recorded = || async { all_audit_records(s).await.unwrap() };
    let create = |name: &str| Act::AccountCreate {
        username: name.into(),
        role: Role::Officer,
        phone: Some("+8613900139002".into()),
    };
    const ONE_TIME: Option<&str> = Some("$argon2id$one-time");
    // The act fails (the name is taken): the approval is undone, and nothing is recorded.
    admin(s, "taken", T - Duration::days(30)).await;
    let dup = s
        .propose(&create("taken"), root.id, T, T + Duration::hours(72))
        .await
        .unwrap();
    assert!(matches!(
        s.approve_proposal(dup.id, second.id, T, DAY, ONE_TIME, Some(&record("dup")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A refused approver: nothing recorded either.
    refused(
        s.approve_proposal(dup.id, root.id, T, DAY, ONE_TIME, Some(&record("own")))
            .await,
        "different person",
    );
    assert!(recorded().await.is_empty());
    // Done: the account and its record, together.
    let p = s
        .propose(&create("fresh"), root.id, T, T + Duration::hours(72))
        .await
        .unwrap();
    s.approve_proposal(p.id, second.id, T, DAY, ONE_TIME, Some(&record("fresh")))
        .await
        .unwrap();
    assert!(s.officer_by_username("fresh").await.unwrap().is_some());
    let log = recorded().await;
    assert_eq!(
        log.iter().map(|r| r.entry.purpose.as_str()).collect::<Vec<_>>(),
        vec!["fresh"]
    );
    // An override's approval likewise, and the chain still verifies.
    let o = s
        .propose_override(&NewOverride {
            holder: hid(1),
            colour: Colour::Green,
            reason: "lab mix-up".into(),
            proposed_by: root.id,
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    let approve = AuditEntry {
        action: "override-approve".into(),
        subject: Some(hid(1)),
        ..record("override")
    };
    s.approve_override(o.id, second.id, T, DAY, Some(&approve))
        .await
        .unwrap();
    assert_eq!(recorded().await.len(), 2);
    assert_eq!(verify_audit(s).await.unwrap(), Ok(2));
}

pub async fn a_policy_version_is_published_only_on_approval<H: Harness>(h: &H) {
    let s = h.store();
    let [a, b, _] = three_officers(s).await;
    assert!(s.published_policies().await.unwrap().is_empty());
    // On a new store the configured file becomes the first version once; a second start keeps it.
    let first = |v: &'static str, pinned| s.publish_first_policy(v, "aa", "version = \"v\"", T, pinned);
    assert_eq!(first("v1", false).await.unwrap(), FirstPolicy::Published);
    assert_eq!(first("v9", true).await.unwrap(), FirstPolicy::Exists);
    let all = s.published_policies().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].version.as_str(), all[0].proposal), ("v1", None));

    let publish = |v: &str, replaces: i64| Act::PolicyPublish {
        version: v.into(),
        replaces,
        sha256: format!("sha-of-{v}"),
        source: format!("version = \"{v}\""),
    };
    let p = s
        .propose(&publish("v2", all[0].seq), a, T, T + Duration::hours(72))
        .await
        .unwrap();
    // Proposed in place of v1 too, but approved only after v2: it would roll v2 back.
    let stale = s
        .propose(&publish("v1b", all[0].seq), b, T, T + Duration::hours(72))
        .await
        .unwrap();
    assert_eq!(
        s.published_policies().await.unwrap().len(),
        1,
        "published by one officer"
    );
    refused(
        s.approve_proposal(p.id, a, T, DAY, None, None).await,
        "different person",
    );
    s.approve_proposal(p.id, b, T + Duration::minutes(1), DAY, None, None)
        .await
        .unwrap();
    let all = s.published_policies().await.unwrap();
    assert_eq!(all.len(), 2);
    let v2 = &all[1];
    assert_eq!(
        (v2.version.as_str(), v2.sha256.as_str(), v2.source.as_str()),
        ("v2", "sha-of-v2", "version = \"v2\"")
    );
    assert_eq!(v2.proposal, Some((p.id, a, b)));
    assert_eq!(v2.published_at, T + Duration::minutes(1));
    assert!(v2.seq > all[0].seq);
    match s
        .approve_proposal(stale.id, a, T + Duration::minutes(2), DAY, None, None)
        .await
    {
        Err(StoreError::Conflict(m)) => assert!(m.contains("in force now"), "{m}"),
        other => panic!("an old proposal rolled back a newer version: {other:?}"),
    }

    // A published version is never replaced: approving a second "v2" fails and undoes itself.
    let again = s
        .propose(&publish("v2", v2.seq), b, T, T + Duration::hours(72))
        .await
        .unwrap();
    match s
        .approve_proposal(again.id, a, T + Duration::minutes(2), DAY, None, None)
        .await
    {
        Err(StoreError::Conflict(m)) => assert!(m.contains("already published"), "{m}"),
        other => panic!("a second v2 was published: {other:?}"),
    }
    assert_eq!(
        s.proposal(again.id).await.unwrap().unwrap().state,
        ProposalState::Pending
    );
    assert_eq!(s.published_policies().await.unwrap().len(), 2);
}

pub async fn a_store_with_holders_publishes_a_first_policy_only_when_pinned<H: Harness>(h: &H) {
    let s = h.store();
    let (r, _) = resident(1);
    s.insert_holder(&r).await.unwrap();
    let first = |pinned| s.publish_first_policy("v1", "aa", "version = \"v1\"", T, pinned);
    assert_eq!(first(false).await.unwrap(), FirstPolicy::NeedsPin);
    assert!(s.published_policies().await.unwrap().is_empty());
    assert_eq!(first(true).await.unwrap(), FirstPolicy::Published);
    assert_eq!(s.published_policies().await.unwrap().len(), 1);
}
