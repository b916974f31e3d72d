//! Two people for every act that changes colours or powers, tried as a dishonest insider would:
//! one officer declaring a region red, an admin approving their own change through an account
//! they made (the puppet), an account in its first day approving, one admin making an account
//! or granting a role, one officer deciding a crowd's exposures; and the legitimate paths with a
//! second, eligible person. Every test runs with the real 24-hour rule for approvers: the
//! harness's own staff accounts were made two days ago on the command line's path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Holder, Staff, TestApp, masked, problem_type, rfc3339, staff_phone};
use healthcode_server::{Config, now};
use serde_json::{Value, json};
use time::Duration;

common::on_both_backends!(
    one_officer_alone_turns_no_region_red,
    the_puppet_cannot_approve_its_makers_change,
    an_account_in_its_first_day_approves_nothing,
    one_admin_alone_makes_no_account_and_grants_no_role,
    proposals_are_paged_withdrawn_only_by_their_proposer_and_audited,
    an_admin_who_reset_an_account_cannot_approve_through_it,
);

const REFUSED: &str = "urn:healthcode:problem:refused";

async fn colour(app: &TestApp, holder: &Holder) -> String {
    app.code(holder).await["colour"].as_str().unwrap().to_owned()
}

/// Tries to approve proposal `id` as `staff`: the status and the body.
async fn try_approve(app: &TestApp, staff: &Staff, id: i64) -> (u16, Value) {
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&staff.token),
            None,
        )
        .await;
    (st.as_u16(), v)
}

/// [`try_approve`] of a staff account, with its owner's phone as the owner gave it.
async fn try_approve_account(app: &TestApp, staff: &Staff, id: i64, owner: &str) -> (u16, Value) {
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&staff.token),
            Some(json!({"owner_phone": staff_phone(owner)})),
        )
        .await;
    (st.as_u16(), v)
}

/// Asserts a refusal (409) whose detail says `why`.
fn refused(answer: (u16, Value), why: &str) {
    let (st, p) = answer;
    assert_eq!((st, problem_type(&p)), (409, REFUSED), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains(why),
        "{p} does not say {why:?}"
    );
}

/// A holder who declared a stay in Shanghai two and three days ago.
async fn traveller(app: &TestApp) -> Holder {
    let holder = app.register_resident().await;
    let day = |n: i64| (now() - Duration::days(n)).date().to_string();
    app.post(
        "/api/v1/me/declarations",
        Some(&holder.token),
        json!({"kind": "travel", "region": "CN-SH", "from": day(3), "until": day(2)}),
    )
    .await;
    holder
}

/// A staff account made through the API by root and the second admin, signed in: new, so it
/// approves nothing in its first day.
async fn new_account(app: &TestApp, username: &str, role: &str) -> Staff {
    let one_time = app.create_account(username, role).await;
    app.staff_sign_in(username, &one_time).await
}

async fn one_officer_alone_turns_no_region_red(app: &TestApp) {
    let (a, b) = (app.officer().await, app.second_officer().await);
    let holder = traveller(app).await;
    assert_eq!(colour(app, &holder).await, "green");
    // Officer A declares Shanghai high-risk, alone.
    let from = rfc3339(now() - Duration::days(5));
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/risk-areas",
            Some(&a.token),
            Some(json!({"region": "CN-SH", "level": "high", "from": from})),
        )
        .await;
    assert_eq!(st, 202, "{p}");
    assert_eq!(
        (p["kind"].as_str(), p["state"].as_str()),
        (Some("risk-area-declare"), Some("pending"))
    );
    let id = p["id"].as_i64().unwrap();
    assert_eq!(
        colour(app, &holder).await,
        "green",
        "one officer turned a region red"
    );
    let areas = app.get("/api/v1/admin/risk-areas", Some(&a.token)).await;
    assert_eq!(areas, json!([]), "declared by one officer alone");
    // A approving their own proposal, and an officer made this morning, are refused.
    refused(try_approve(app, a, id).await, "different person");
    let fresh = new_account(app, "officer-fresh", "officer").await;
    refused(try_approve(app, &fresh, id).await, "younger than 24 hours");
    // An auditor is no approver at all.
    let (st, _) = try_approve(app, app.auditor().await, id).await;
    assert_eq!(st, 403);
    assert_eq!(colour(app, &holder).await, "green");
    // The second officer approves: the holder is red at once.
    let done = app.approve(b, id).await;
    assert_eq!(
        (done["state"].as_str(), done["decided_by"].as_i64()),
        (Some("approved"), Some(b.id))
    );
    assert_eq!(colour(app, &holder).await, "red");
    refused(try_approve(app, &fresh, id).await, "approved already");
    let areas = app.get("/api/v1/admin/risk-areas", Some(&a.token)).await;
    let area = areas[0]["id"].as_i64().unwrap();
    assert_eq!(
        (areas[0]["region"].as_str(), areas[0]["level"].as_str()),
        (Some("CN-SH"), Some("high"))
    );

    // Lowering it to medium: yellow once approved.
    let p = app
        .call(
            "POST",
            &format!("/api/v1/admin/risk-areas/{area}/level"),
            Some(&b.token),
            Some(json!({"level": "medium"})),
        )
        .await;
    assert_eq!(p.0, 202, "{}", p.1);
    assert_eq!(colour(app, &holder).await, "red");
    app.approve(a, p.1["id"].as_i64().unwrap()).await;
    assert_eq!(colour(app, &holder).await, "yellow");

    // Ending it: proposed by one, nothing changes; approved by the other, the holder is green
    // and the area stays listed with when it ended.
    let (st, p) = app
        .call(
            "POST",
            &format!("/api/v1/admin/risk-areas/{area}/end"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(st, 202, "{p}");
    refused(
        try_approve(app, a, p["id"].as_i64().unwrap()).await,
        "different person",
    );
    assert_eq!(colour(app, &holder).await, "yellow");
    app.approve(b, p["id"].as_i64().unwrap()).await;
    assert_eq!(colour(app, &holder).await, "green");
    let areas = app.get("/api/v1/admin/risk-areas", Some(&a.token)).await;
    assert!(areas[0]["ended_at"].is_string(), "{areas}");
    // An ended area cannot be ended again, nor changed; a missing one is 404.
    for path in [format!("{area}/end"), "999999/end".to_owned()] {
        let (st, _) = app
            .call(
                "POST",
                &format!("/api/v1/admin/risk-areas/{path}"),
                Some(&a.token),
                None,
            )
            .await;
        assert_eq!(st, 404);
    }
    // Every step is in the audit log, the refusals too.
    let log = app.audit_log().await;
    let count = |action: &str| log.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("propose-risk-area-declare"), 1);
    assert_eq!(count("approve-risk-area-declare"), 1);
    assert_eq!(count("approve-risk-area-level"), 1);
    assert_eq!(count("approve-risk-area-end"), 1);
    assert!(count("approve-refused") >= 4, "refusals are not audited");
}

/// Confirms a case for a new holder (red) and has `proposer` propose turning them green.
async fn red_holder_and_green_proposal(app: &TestApp, proposer: &Staff) -> (Holder, i64) {
    let holder = app.register_resident().await;
    app.confirm_case(app.officer().await, &holder).await;
    assert_eq!(colour(app, &holder).await, "red");
    let until = rfc3339(now() + Duration::days(3));
    let o = app
        .post(
            "/api/v1/admin/overrides",
            Some(&proposer.token),
            json!({"holder": holder.hex, "colour": "green", "reason": "nothing to see here", "expires_at": until}),
        )
        .await;
    (holder, o["id"].as_i64().unwrap())
}

async fn try_approve_override(app: &TestApp, staff: &Staff, id: i64) -> (u16, Value) {
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/overrides/{id}/approve"),
            Some(&staff.token),
            None,
        )
        .await;
    (st.as_u16(), v)
}

async fn the_puppet_cannot_approve_its_makers_change(app: &TestApp) {
    let root = app.admin().await;
    // Root proposes turning a confirmed case green, then makes `puppet` (a careless second
    // admin approves the account) and signs in as it.
    let (holder, id) = red_holder_and_green_proposal(app, root).await;
    let puppet = new_account(app, "puppet", "admin").await;
    refused(try_approve_override(app, &puppet, id).await, "created it");
    refused(try_approve_override(app, root, id).await, "different");
    assert_eq!(
        colour(app, &holder).await,
        "red",
        "the puppet turned a case green"
    );
    // Nor can the puppet approve root's proposals of any other kind, nor root the puppet's.
    let p = app
        .post(
            "/api/v1/admin/risk-areas",
            Some(&root.token),
            json!({"region": "CN-SH", "level": "high", "from": rfc3339(now())}),
        )
        .await;
    refused(
        try_approve(app, &puppet, p["id"].as_i64().unwrap()).await,
        "created it",
    );
    let q = app
        .post(
            "/api/v1/admin/risk-areas",
            Some(&puppet.token),
            json!({"region": "CN-BJ", "level": "high", "from": rfc3339(now())}),
        )
        .await;
    refused(
        try_approve(app, root, q["id"].as_i64().unwrap()).await,
        "created it",
    );
    // A second, unrelated and older officer approves: the change is in force.
    app.ok(
        "POST",
        &format!("/api/v1/admin/overrides/{id}/approve"),
        Some(&app.second_officer().await.token),
        None,
    )
    .await;
    assert_eq!(colour(app, &holder).await, "green");
}

async fn an_account_in_its_first_day_approves_nothing(app: &TestApp) {
    // The override comes from officer A; the new account was made by the two admins, not by A.
    let (holder, id) = red_holder_and_green_proposal(app, app.officer().await).await;
    let newbie = new_account(app, "officer-newbie", "officer").await;
    refused(
        try_approve_override(app, &newbie, id).await,
        "younger than 24 hours",
    );
    assert_eq!(colour(app, &holder).await, "red");
    let list = app
        .get("/api/v1/admin/overrides?pending=true", Some(&newbie.token))
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "a refused approval was recorded"
    );
}

async fn one_admin_alone_makes_no_account_and_grants_no_role(app: &TestApp) {
    let (root, second) = (app.admin().await, app.second_admin().await);
    let officer = app.officer().await;
    // Root proposes an admin account: it does not exist, and cannot sign in.
    let created = app
        .call(
            "POST",
            "/api/v1/admin/officers",
            Some(&root.token),
            Some(json!({"username": "shadow", "role": "admin", "phone": staff_phone("shadow")})),
        )
        .await;
    assert_eq!(created.0, 202, "{}", created.1);
    let v = created.1;
    let id = v["proposal"]["id"].as_i64().unwrap();
    assert!(v["proposal"]["act"].get("password_hash").is_none(), "{v}");
    // The proposer is not told the account's password: it is made at approval.
    assert!(
        !v.to_string().contains("password"),
        "the proposer learns the new account's credentials: {v}"
    );
    let listed = app
        .get("/api/v1/admin/proposals?pending=true", Some(&root.token))
        .await;
    assert!(!listed.to_string().contains("password"), "{listed}");
    let guess = json!({"username": "shadow", "password": "anything at all", "new_password": "lantern orbit mango vessel"});
    let (st, _) = app
        .call("POST", "/api/v1/admin/sessions", None, Some(guess))
        .await;
    assert_eq!(st, 401, "an account proposed by one admin signed in");
    let listed = app.get("/api/v1/admin/officers", Some(&root.token)).await;
    assert!(!listed.to_string().contains("shadow"));
    // Root cannot approve it; an officer (not an admin) cannot either.
    refused(
        try_approve_account(app, root, id, "shadow").await,
        "different person",
    );
    refused(
        try_approve_account(app, officer, id, "shadow").await,
        "enabled admin",
    );
    // The second admin approves: the account exists, the first half of its one-time password
    // goes by text to the owner's phone recorded with the proposal and the second half is in
    // the approval's answer; neither admin holds both. The owner signs in with both.
    let done = app.approve_account(second, id, &staff_phone("shadow")).await;
    assert_eq!(done["state"], "approved");
    assert_eq!(
        done["password_sent_to"],
        json!(masked(&staff_phone("shadow"))),
        "{done}"
    );
    let first = app.gateway.password_for(&staff_phone("shadow"));
    assert!(
        !done.to_string().contains(&first),
        "the approver saw the texted half"
    );
    let password = &format!("{first}{}", done["second_half"].as_str().unwrap());
    assert!(password.len() >= 12, "{done}");
    let sign_in =
        json!({"username": "shadow", "password": password, "new_password": "lantern orbit mango vessel"});
    let (st, body) = app
        .call("POST", "/api/v1/admin/sessions", None, Some(sign_in))
        .await;
    assert_eq!(st, 201, "{body}");
    // A taken name is refused at once.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/officers",
            Some(&root.token),
            Some(json!({"username": "shadow", "role": "officer", "phone": staff_phone("shadow")})),
        )
        .await;
    assert_eq!(st, 409);

    // A role grant: proposed by root, not in force until the second admin approves.
    let grant = app
        .ok(
            "PUT",
            &format!("/api/v1/admin/officers/{}/role", officer.id),
            Some(&root.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    let gid = grant["id"].as_i64().unwrap();
    refused(try_approve(app, root, gid).await, "different person");
    // The officer cannot approve their own promotion (not an admin).
    refused(try_approve(app, officer, gid).await, "enabled admin");
    let (st, _) = app
        .call("GET", "/api/v1/admin/officers", Some(&officer.token), None)
        .await;
    assert_eq!(st, 403, "a role granted by one admin alone");
    let granted = app.approve(second, gid).await;
    assert!(granted.get("one_time_password").is_none(), "{granted}");
    app.get("/api/v1/admin/officers", Some(&officer.token)).await;
    let log = app.audit_log().await;
    assert!(log.iter().any(
        |e| e["action"] == "propose-account-create" && e["purpose"].as_str().unwrap().contains("shadow")
    ));
    assert!(log.iter().any(|e| e["action"] == "approve-account-create"));
    assert!(log.iter().any(|e| e["action"] == "approve-role-grant"));
    assert!(
        !Value::from(log).to_string().contains("argon2"),
        "a password hash reached the audit log"
    );
}

async fn proposals_are_paged_withdrawn_only_by_their_proposer_and_audited(app: &TestApp) {
    let (a, b) = (app.officer().await, app.second_officer().await);
    let mut ids = Vec::new();
    for region in ["CN-SH", "CN-BJ", "CN-GD"] {
        let p = app
            .post(
                "/api/v1/admin/risk-areas",
                Some(&a.token),
                json!({"region": region, "level": "medium", "from": rfc3339(now())}),
            )
            .await;
        ids.push(p["id"].as_i64().unwrap());
    }
    let page = app
        .get("/api/v1/admin/proposals?pending=true&limit=2", Some(&b.token))
        .await;
    let got: Vec<i64> = page["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[..2]);
    let next = page["next_after"].as_i64().unwrap();
    let rest = app
        .get(
            &format!("/api/v1/admin/proposals?pending=true&limit=2&after={next}"),
            Some(&b.token),
        )
        .await;
    assert_eq!(rest["proposals"].as_array().unwrap().len(), 1);
    assert!(rest["next_after"].is_null());
    for bad in ["limit=0", "limit=201", "limit=x", "bogus=1"] {
        let (st, p) = app
            .call(
                "GET",
                &format!("/api/v1/admin/proposals?{bad}"),
                Some(&b.token),
                None,
            )
            .await;
        assert!(st == 400 || st == 422, "{bad}: {st} {p}");
    }
    // Another officer cannot withdraw A's proposal; A can, and then nobody can approve it.
    let withdraw = |id: i64| format!("/api/v1/admin/proposals/{id}/withdraw");
    let (st, p) = app.call("POST", &withdraw(ids[0]), Some(&b.token), None).await;
    assert_eq!((st.as_u16(), problem_type(&p)), (409, REFUSED), "{p}");
    let w = app.post(&withdraw(ids[0]), Some(&a.token), json!({})).await;
    assert_eq!(w["state"], "withdrawn");
    refused(try_approve(app, b, ids[0]).await, "withdrawn");
    let (st, _) = app.call("POST", &withdraw(999_999), Some(&a.token), None).await;
    assert_eq!(st, 404);
    let (st, _) = try_approve(app, b, 999_999).await;
    assert_eq!(st, 404);
    let pending = app
        .get("/api/v1/admin/proposals?pending=true", Some(&b.token))
        .await;
    assert_eq!(pending["proposals"].as_array().unwrap().len(), 2);
    let all = app.get("/api/v1/admin/proposals", Some(&b.token)).await;
    assert_eq!(all["proposals"][0]["state"], "withdrawn");
    // Nothing of it reached anyone's colour: no area was declared.
    assert_eq!(
        app.get("/api/v1/admin/risk-areas", Some(&a.token)).await,
        json!([])
    );
    let log = app.audit_log().await;
    assert!(log.iter().any(|e| e["action"] == "withdraw-risk-area-declare"));
}

mod bulk {
    use super::*;

    common::on_both_backends!(configured by review_with_small_bulk;
        one_officer_alone_decides_no_crowd_of_exposures,
        single_decisions_cannot_be_looped_past_the_bulk_threshold,
    );

    /// Records a pending exposure of `holder` to `case` at `venue` from `start` (seconds since
    /// 1970) for an hour, behind the server's back, numbered as tracing numbers them: tracing
    /// needs hours of overlap that a test cannot wait for.
    async fn raw_pending_exposure(app: &TestApp, holder: &Holder, case: i64, venue: i64, start: i64) {
        let (hex, end) = (&holder.hex, start + 3600);
        let sql = match app.config.database_url {
            Some(_) => format!(
                "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state) \
                 VALUES ('\\x{hex}'::bytea, {case}, {venue}, to_timestamp({start}), to_timestamp({end}), to_timestamp({start}), to_timestamp({end}), 60, 'same-place', 'pending')"
            ),
            None => format!(
                "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state, id) \
                 VALUES (X'{hex}', {case}, {venue}, {start}, {end}, {start}, {end}, 60, 'same-place', 'pending', (SELECT COALESCE(MAX(id), 0) + 1 FROM exposures))"
            ),
        };
        app.raw_sql(&sql).await;
    }

    /// Exposures wait for an officer's review, and more than two at once need a second officer.
    fn review_with_small_bulk(c: &mut Config) {
        let policy = healthcode_policy::DEFAULT_POLICY.replace("apply = \"automatic\"", "apply = \"review\"");
        assert_ne!(policy, healthcode_policy::DEFAULT_POLICY);
        let path = c.data_dir.with_file_name("policy.toml");
        std::fs::write(&path, policy).unwrap();
        c.policy_file = Some(path);
        c.governance.bulk_exposure_two_person_above = 2;
    }

    async fn one_officer_alone_decides_no_crowd_of_exposures(app: &TestApp) {
        let (a, b) = (app.officer().await, app.second_officer().await);
        let mall = app.mall().await;
        let mut people = Vec::new();
        for (n, name) in ["李四", "王五", "赵六", "钱七"].into_iter().enumerate() {
            let registration = json!({"kind": "resident", "name": name,
                "resident_id": common::resident_id(&format!("33010619850101{:03}", 100 + n)),
                "phone": format!("+861380013{:04}", 8100 + n)});
            people.push(app.register(registration).await);
        }
        let case_holder = people.remove(0);
        let contacts = people;
        // The case and three others scanned in at the mall together.
        let mut seq = 0;
        for h in std::iter::once(&case_holder).chain(&contacts) {
            seq += 1;
            app.scan(&mall, &app.token(h).await, seq).await;
        }
        // Confirmed a little later: the case's infectious window ends then, and check-ins are
        // kept to the second, so the overlap is at least a second.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let case = app.confirm_case(a, &case_holder).await;
        app.ok(
            "POST",
            &format!("/api/v1/admin/cases/{case}/trace"),
            Some(&a.token),
            None,
        )
        .await;
        let exposures = app
            .get(&format!("/api/v1/admin/cases/{case}/exposures"), Some(&a.token))
            .await;
        assert_eq!(exposures.as_array().unwrap().len(), 3, "{exposures}");
        for c in &contacts {
            assert_eq!(colour(app, c).await, "green", "a pending exposure counted");
        }
        // Three at once is more than the configured two: a proposal, nobody's colour changes.
        let decide = format!("/api/v1/admin/cases/{case}/exposures/decision");
        let (st, v) = app
            .call(
                "POST",
                &decide,
                Some(&a.token),
                Some(json!({"apply": true, "note": "all at the mall"})),
            )
            .await;
        assert_eq!(st, 202, "{v}");
        assert_eq!((v["pending"].as_u64(), v["decided"].as_u64()), (Some(3), Some(0)));
        let id = v["proposal"]["id"].as_i64().unwrap();
        refused(try_approve(app, a, id).await, "different person");
        for c in &contacts {
            assert_eq!(colour(app, c).await, "green");
        }
        // After the proposal, another contact of the case is recorded: the approval, proposed
        // for three, does not decide it.
        let late = app.register_resident().await;
        let start = now().unix_timestamp() - 7200;
        raw_pending_exposure(app, &late, case, mall.id, start).await;
        app.approve(b, id).await;
        for c in &contacts {
            assert_ne!(
                colour(app, c).await,
                "green",
                "an approved exposure did not count"
            );
        }
        assert_eq!(
            colour(app, &late).await,
            "green",
            "decided without being proposed"
        );
        let exposures = app
            .get(&format!("/api/v1/admin/cases/{case}/exposures"), Some(&a.token))
            .await;
        let states: Vec<(&str, &str)> = exposures
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["holder"].as_str().unwrap(), e["state"].as_str().unwrap()))
            .collect();
        assert!(states.contains(&(late.hex.as_str(), "pending")), "{exposures}");
        assert_eq!(
            states.iter().filter(|(_, s)| *s == "applied").count(),
            3,
            "{exposures}"
        );
        // The late one is decided on its own.
        app.post(
            "/api/v1/admin/exposures/decision",
            Some(&b.token),
            json!({"holder": late.hex, "case": case, "venue": mall.id, "contact_from": rfc3339(time::OffsetDateTime::from_unix_timestamp(start).unwrap()), "apply": false, "note": "was elsewhere"}),
        )
        .await;
        // Nothing is pending now; a decision on nothing is refused.
        let (st, p) = app
            .call(
                "POST",
                &decide,
                Some(&a.token),
                Some(json!({"apply": false, "note": "again"})),
            )
            .await;
        assert_eq!((st.as_u16(), problem_type(&p)), (409, REFUSED), "{p}");
        let (st, _) = app
            .call(
                "POST",
                "/api/v1/admin/cases/999999/exposures/decision",
                Some(&a.token),
                Some(json!({"apply": true, "note": "x"})),
            )
            .await;
        assert_eq!(st, 404);
    }

    async fn single_decisions_cannot_be_looped_past_the_bulk_threshold(app: &TestApp) {
        let (a, b) = (app.officer().await, app.second_officer().await);
        let mall = app.mall().await;
        let case_holder = app.register_visitor().await;
        let contact = app.register_resident().await;
        let case = app.confirm_case(b, &case_holder).await;
        // Four visits of one contact, each a pending exposure: more than the configured two.
        let first = now().unix_timestamp() - 86_400;
        let starts: Vec<i64> = (0..4).map(|n| first + n * 7200).collect();
        for s in &starts {
            raw_pending_exposure(app, &contact, case, mall.id, *s).await;
        }
        let decide = |s: i64| {
            json!({"holder": contact.hex, "case": case, "venue": mall.id,
                "contact_from": rfc3339(time::OffsetDateTime::from_unix_timestamp(s).unwrap()),
                "apply": false, "note": "one at a time"})
        };
        // Officer A decides two, one at a time: the most one officer may in an hour.
        for s in &starts[..2] {
            app.post("/api/v1/admin/exposures/decision", Some(&a.token), decide(*s))
                .await;
        }
        // The third is refused, saying why and when to retry; nothing is decided.
        let resp = app
            .client
            .post(app.url("/api/v1/admin/exposures/decision"))
            .bearer_auth(&a.token)
            .json(&decide(starts[2]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 429);
        let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(problem_type(&p), "urn:healthcode:problem:rate-limited", "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("propose a bulk decision"),
            "{p}"
        );
        let exposures = app
            .get(&format!("/api/v1/admin/cases/{case}/exposures"), Some(&b.token))
            .await;
        let pending = exposures
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "pending")
            .count();
        assert_eq!(pending, 2, "{exposures}");
        // Another officer's count is their own.
        app.post(
            "/api/v1/admin/exposures/decision",
            Some(&b.token),
            decide(starts[2]),
        )
        .await;
        // Nor can officer A go on with a decision on the case, however few are left: it counts
        // against the same hour.
        let (st, v) = app
            .call(
                "POST",
                &format!("/api/v1/admin/cases/{case}/exposures/decision"),
                Some(&a.token),
                Some(json!({"apply": false, "note": "the rest"})),
            )
            .await;
        assert_eq!(st.as_u16(), 429, "{v}");
        // Officer B, who decided one, may decide the one left.
        let (st, v) = app
            .call(
                "POST",
                &format!("/api/v1/admin/cases/{case}/exposures/decision"),
                Some(&b.token),
                Some(json!({"apply": false, "note": "the rest"})),
            )
            .await;
        assert_eq!((st.as_u16(), v["decided"].as_u64()), (200, Some(1)), "{v}");
    }
}

/// Proposes declaring `region` high-risk as `staff`; returns the proposal's id.
async fn propose_area(app: &TestApp, staff: &Staff, region: &str) -> i64 {
    let p = app
        .post(
            "/api/v1/admin/risk-areas",
            Some(&staff.token),
            json!({"region": region, "level": "high", "from": rfc3339(now())}),
        )
        .await;
    p["id"].as_i64().unwrap()
}

async fn an_admin_who_reset_an_account_cannot_approve_through_it(app: &TestApp) {
    let root = app.admin().await;
    let officer_a = app.officer().await;
    let b = app.second_officer().await;
    let id = propose_area(app, root, "CN-SH").await;
    // An admin cannot reset their own account (which would clear who last held it).
    for (method, path) in [
        (
            "POST",
            format!("/api/v1/admin/officers/{}/password-reset", root.id),
        ),
        (
            "DELETE",
            format!("/api/v1/admin/officers/{}/second-factor", root.id),
        ),
    ] {
        let (st, v) = app.call(method, &path, Some(&root.token), None).await;
        assert_eq!((st.as_u16(), problem_type(&v)), (409, REFUSED), "{v}");
    }
    // Root resets officer B's second factor (and with it the password). The new password goes
    // to B's phone, not to root; but say root has that phone in hand too: root signs in as B,
    // chooses B's new password and enrols a factor of root's own.
    let reset = app
        .ok(
            "DELETE",
            &format!("/api/v1/admin/officers/{}/second-factor", b.id),
            Some(&root.token),
            None,
        )
        .await;
    assert!(reset.get("one_time_password").is_none(), "{reset}");
    let one_time = app.gateway.password_for(&staff_phone(&b.username));
    let hijacked = app.staff_sign_in(&b.username, &one_time).await;
    assert_eq!(hijacked.id, b.id);
    refused(try_approve(app, &hijacked, id).await, "reset");
    // A reset less than a day old makes the account new for anyone's proposal, too.
    let other = propose_area(app, officer_a, "CN-BJ").await;
    refused(try_approve(app, &hijacked, other).await, "less than 24 hours ago");
    // Disabling and re-enabling an account counts as a reset by the admin who proposed the
    // re-enabling (a second admin approves it).
    let mut enabling = Value::Null;
    for path in ["disable", "enable"] {
        enabling = app
            .ok(
                "POST",
                &format!("/api/v1/admin/officers/{}/{path}", officer_a.id),
                Some(&root.token),
                None,
            )
            .await;
    }
    app.approve(app.second_admin().await, enabling["id"].as_i64().unwrap())
        .await;
    let officer_a_now = Staff {
        token: app.sign_in_again(officer_a).await,
        ..officer_a.clone()
    };
    refused(try_approve(app, &officer_a_now, id).await, "reset");
    let areas = app.get("/api/v1/admin/risk-areas", Some(&root.token)).await;
    assert_eq!(areas, json!([]), "approved through an account its proposer reset");
    let log = app.audit_log().await;
    let refusals = log
        .iter()
        .filter(|e| e["action"] == "approve-refused")
        .filter(|e| e["purpose"].as_str().unwrap().contains("reset"))
        .count();
    assert_eq!(refusals, 3, "the refusals are not audited");
    // An eligible admin nobody reset approves: the area is in force.
    let done = app.approve(app.second_admin().await, id).await;
    assert_eq!(done["state"], "approved", "{done}");
    let areas = app.get("/api/v1/admin/risk-areas", Some(&root.token)).await;
    assert_eq!(areas.as_array().unwrap().len(), 1, "{areas}");
}
