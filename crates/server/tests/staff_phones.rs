//! No admin alone holds another person's password. Tried as a dishonest admin would, against
//! the version where the approver of a new account (or the admin who reset one) was shown its
//! one-time password: one admin who approved two honest accounts' creation could sign in as
//! both before their owners did, and later have them approve each other; and, once passwords
//! were texted, a proposer could type their own phone. Now a new account's password is split:
//! the first half is texted to the phone the proposer recorded, the second is in the approval's
//! answer for the approver to hand over. A reset texts the whole password to the account's
//! phone only once its owner has proven that phone; an account without one cannot be reset
//! through the API; only the owner records or changes their phone (their password and a code
//! sent to the new phone), and one phone serves one account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, masked, problem_type, staff_phone};
use serde_json::{Value, json};

common::on_both_backends!(
    neither_admin_alone_holds_a_new_accounts_password,
    a_proposer_cannot_point_a_new_account_at_their_own_phone,
    a_proposal_needs_a_phone_texts_reach,
    a_reset_texts_the_owner_and_tells_the_admin_only_where,
    a_proposed_phone_receives_no_reset_until_its_owner_proves_it,
    an_account_without_a_phone_is_not_reset_through_the_api,
    only_the_owner_records_their_phone_with_password_and_code,
);

/// Proposes an account as root; returns the answer's status and body.
async fn propose(app: &TestApp, body: Value) -> (u16, Value) {
    let root = app.admin().await;
    let (st, v) = app
        .call("POST", "/api/v1/admin/officers", Some(&root.token), Some(body))
        .await;
    (st.as_u16(), v)
}

/// Signs in with a username and a password (and a new password, as the first sign-in asks).
async fn first_sign_in(app: &TestApp, username: &str, password: &str) -> u16 {
    let body =
        json!({"username": username, "password": password, "new_password": "lantern orbit mango vessel"});
    app.call("POST", "/api/v1/admin/sessions", None, Some(body))
        .await
        .0
        .as_u16()
}

async fn neither_admin_alone_holds_a_new_accounts_password(app: &TestApp) {
    // The attack: root proposes two accounts for honest colleagues; admin-b approves both and,
    // knowing both passwords, signs in first as each.
    let second = app.second_admin().await;
    let before = app.audit_log().await.len();
    for name in ["chen.honest", "zhou.honest"] {
        let phone = staff_phone(name);
        let (st, v) = propose(app, json!({"username": name, "role": "admin", "phone": phone})).await;
        assert_eq!(st, 202, "{v}");
        assert_eq!(v["phone"], json!(masked(&phone)), "{v}");
        assert_eq!(v["proposal"]["act"]["phone"], json!(masked(&phone)), "{v}");
        let id = v["proposal"]["id"].as_i64().unwrap();
        // The approver types the owner's phone as the owner gave it: without it, or with
        // another, nothing is approved (and a mismatch is audited).
        let url = format!("/api/v1/admin/proposals/{id}/approve");
        let (st, p) = app.call("POST", &url, Some(&second.token), None).await;
        assert_eq!(st, 422, "{p}");
        // A NUL in the typed phone is refused at the edge, as in every other body.
        let (st, p) = app
            .call(
                "POST",
                &url,
                Some(&second.token),
                Some(json!({"owner_phone": "+86139\u{0}"})),
            )
            .await;
        assert_eq!(st, 422, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("owner_phone"), "{p}");
        let (st, p) = app
            .call(
                "POST",
                &url,
                Some(&second.token),
                Some(json!({"owner_phone": "+8613900139444"})),
            )
            .await;
        assert_eq!(st, 409, "{p}");
        assert_eq!(first_sign_in(app, name, "anything at all").await, 401);
        let done = app.approve_account(second, id, &phone).await;
        assert_eq!(done["password_sent_to"], json!(masked(&phone)), "{done}");
        assert!(done.get("one_time_password").is_none(), "{done}");
        let first = app.gateway.password_for(&phone);
        let second_half = done["second_half"].as_str().unwrap().to_owned();
        assert!(
            !done.to_string().contains(&first),
            "the approver saw the texted half: {done}"
        );
        assert!(
            !app.gateway
                .texts_to(&phone)
                .iter()
                .any(|t| t.contains(&second_half)),
            "the phone got the approver's half"
        );
        // Listed to the admins with the phone masked; the whole number is nowhere.
        let listed = app
            .get("/api/v1/admin/proposals?pending=false", Some(&second.token))
            .await;
        assert!(!listed.to_string().contains(&phone), "{listed}");
        let officers = app.get("/api/v1/admin/officers", Some(&second.token)).await;
        assert!(!officers.to_string().contains(&phone), "{officers}");
        // The approver's half alone, or the phone's alone, signs nobody in; both do.
        assert_eq!(first_sign_in(app, name, &second_half).await, 401);
        assert_eq!(first_sign_in(app, name, &first).await, 401);
        assert_eq!(
            first_sign_in(app, name, &format!("{first}{second_half}")).await,
            201
        );
    }
    // Nothing the audit log holds carries a password or a whole phone number.
    let log = Value::from(app.audit_entries_after(before).await).to_string();
    for name in ["chen.honest", "zhou.honest"] {
        assert!(!log.contains(&staff_phone(name)), "{log}");
        assert!(log.contains(&masked(&staff_phone(name))), "{log}");
    }
}

async fn a_proposer_cannot_point_a_new_account_at_their_own_phone(app: &TestApp) {
    // Root types their own phone for a colleague's account: refused, it is another account's.
    let (st, v) = propose(
        app,
        json!({"username": "liu.honest", "role": "admin", "phone": staff_phone("root")}),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("phone"), "{v}");
    // A spare phone of root's that no account has: an approver who asks the real owner for
    // their phone refuses it.
    let spare = "+8613900139888";
    let (st, v) = propose(
        app,
        json!({"username": "liu.honest", "role": "admin", "phone": spare}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let id = v["proposal"]["id"].as_i64().unwrap();
    let (st, p) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&app.second_admin().await.token),
            Some(json!({"owner_phone": staff_phone("liu.honest")})),
        )
        .await;
    assert_eq!(st, 409, "{p}");
    assert!(
        app.audit_log()
            .await
            .iter()
            .any(|e| e["action"] == "approve-refused"
                && e["purpose"].as_str().unwrap().contains("not the one proposed"))
    );
    // A careless approver who takes the proposer's word for it: root gets the texted half and
    // nothing more.
    app.approve_account(app.second_admin().await, id, spare).await;
    let texted = app.gateway.password_for(spare);
    assert_eq!(first_sign_in(app, "liu.honest", &texted).await, 401);
    // Nor can root later have it reset to that phone: the owner never proved it.
    let officers = app
        .get("/api/v1/admin/officers", Some(&app.admin().await.token))
        .await;
    let id = officers
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["username"] == "liu.honest")
        .map(|o| o["id"].as_i64().unwrap());
    assert_eq!(
        officers
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["username"] == "liu.honest")
            .unwrap()["phone_proven"],
        false
    );
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/password-reset", id.unwrap()),
            Some(&app.second_admin().await.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("proven"), "{v}");
}

async fn a_proposal_needs_a_phone_texts_reach(app: &TestApp) {
    let before = app.audit_log().await.len();
    for (body, status) in [
        (json!({"username": "no.phone", "role": "officer"}), 400),
        (
            json!({"username": "bad.phone", "role": "officer", "phone": "12345"}),
            422,
        ),
        // A country the region's gateway does not send to.
        (
            json!({"username": "far.phone", "role": "officer", "phone": "+12025550123"}),
            422,
        ),
    ] {
        let (st, v) = propose(app, body).await;
        assert_eq!(st, status, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("phone"), "{v}");
    }
    // Nothing was proposed.
    assert!(
        app.audit_entries_after(before)
            .await
            .iter()
            .all(|e| e["action"] != "propose-account-create")
    );
}

async fn a_reset_texts_the_owner_and_tells_the_admin_only_where(app: &TestApp) {
    let root = app.admin().await;
    let mut officer = app.officer().await.clone();
    let phone = staff_phone(&officer.username);
    for path in ["password-reset", "second-factor"] {
        let method = if path == "second-factor" { "DELETE" } else { "POST" };
        let (st, v) = app
            .call(
                method,
                &format!("/api/v1/admin/officers/{}/{path}", officer.id),
                Some(&root.token),
                if method == "POST" { Some(json!({})) } else { None },
            )
            .await;
        assert!(st.is_success(), "{path}: {st} {v}");
        assert_eq!(v["sent_to"], json!(masked(&phone)), "{v}");
        let password = app.gateway.password_for(&phone);
        assert!(!v.to_string().contains(&password), "the admin saw it: {v}");
        let text = app.gateway.texts_to(&phone).pop().unwrap();
        assert!(text.contains(&officer.username), "{text}");
        // The old password no longer works; the texted one does (with the second factor's
        // code while one is enrolled: a password reset keeps it).
        let old = json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await});
        let (st, _) = app.call("POST", "/api/v1/admin/sessions", None, Some(old)).await;
        assert_eq!(st, 401, "{path}");
        if path == "password-reset" {
            let body = json!({"username": officer.username, "password": password, "code": officer.next_code().await, "new_password": "quiet harbour lemon tractor"});
            let (st, v) = app.call("POST", "/api/v1/admin/sessions", None, Some(body)).await;
            assert_eq!(st, 201, "{v}");
            officer.password = "quiet harbour lemon tractor".into();
        } else {
            assert_eq!(
                first_sign_in(app, &officer.username, &password).await,
                201,
                "{path}"
            );
        }
    }
}

async fn a_proposed_phone_receives_no_reset_until_its_owner_proves_it(app: &TestApp) {
    let password = app.create_account("ma.new", "officer").await;
    let owner = app.staff_sign_in("ma.new", &password).await;
    let root = app.admin().await;
    let path = format!("/api/v1/admin/officers/{}/password-reset", owner.id);
    let reset = async || app.call("POST", &path, Some(&root.token), Some(json!({}))).await;
    let (st, v) = reset().await;
    assert_eq!(st, 409, "{v}");
    // The owner proves the phone the proposer recorded; from then on a reset reaches it.
    let phone = staff_phone("ma.new");
    let otp = app.otp(&phone).await;
    let v = app
        .ok(
            "PUT",
            "/api/v1/admin/me/phone",
            Some(&owner.token),
            Some(json!({"phone": phone, "challenge": otp.challenge, "code": otp.code, "current_password": owner.password})),
        )
        .await;
    assert_eq!(v["phone"], json!(masked(&phone)));
    let (st, v) = reset().await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["sent_to"], json!(masked(&phone)));
}

async fn an_account_without_a_phone_is_not_reset_through_the_api(app: &TestApp) {
    let root = app.admin().await;
    let auditor = app.auditor().await.clone();
    app.raw_sql(&format!(
        "UPDATE officers SET phone = NULL WHERE id = {}",
        auditor.id
    ))
    .await;
    let texts = app.gateway.texts_to(&staff_phone(&auditor.username)).len();
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/password-reset", auditor.id),
            Some(&root.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("no phone"), "{v}");
    // Nothing changed: the owner's session and password still work, and no text went out.
    app.get("/api/v1/admin/me", Some(&auditor.token)).await;
    app.sign_in_again(&auditor).await;
    assert_eq!(app.gateway.texts_to(&staff_phone(&auditor.username)).len(), texts);
    // The accounts page says the account has no phone.
    let officers = app.get("/api/v1/admin/officers", Some(&root.token)).await;
    let row = officers
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == auditor.id)
        .unwrap();
    assert_eq!(row["phone"], Value::Null, "{row}");
}

async fn only_the_owner_records_their_phone_with_password_and_code(app: &TestApp) {
    let root = app.admin().await.clone();
    let officer = app.second_officer().await.clone();
    let old_phone = staff_phone(&officer.username);
    let new_phone = "+8613900139777";
    // No admin can move another account's passwords to a phone of theirs: there is no such
    // endpoint, and the owner's endpoint acts on the caller's own account only.
    let (st, _) = app
        .call(
            "PUT",
            &format!("/api/v1/admin/officers/{}/phone", officer.id),
            Some(&root.token),
            Some(json!({"phone": new_phone})),
        )
        .await;
    assert!(st == 404 || st == 405, "{st}");
    // Another account's phone is refused.
    let taken = staff_phone("root");
    let otp = app.otp(&taken).await;
    let (st, v) = app
        .call(
            "PUT",
            "/api/v1/admin/me/phone",
            Some(&officer.token),
            Some(json!({"phone": taken, "challenge": otp.challenge, "code": otp.code, "current_password": officer.password})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    // A wrong password ends the session that sent it (a copied session cannot move the phone).
    let otp = app.otp(new_phone).await;
    let body = |password: &str, code: &str| json!({"phone": new_phone, "challenge": otp.challenge, "code": code, "current_password": password});
    let (st, v) = app
        .call(
            "PUT",
            "/api/v1/admin/me/phone",
            Some(&officer.token),
            Some(body("wrong password!", &otp.code)),
        )
        .await;
    assert_eq!(st, 401, "{v}");
    let (st, _) = app
        .call("GET", "/api/v1/admin/me", Some(&officer.token), None)
        .await;
    assert_eq!(st, 401, "the session survived a wrong password");
    let token = app.sign_in_again(&officer).await;
    // A wrong code: refused, nothing recorded.
    let wrong = if otp.code == "000000" { "111111" } else { "000000" };
    let (st, v) = app
        .call(
            "PUT",
            "/api/v1/admin/me/phone",
            Some(&token),
            Some(body(&officer.password, wrong)),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&v)),
        (401, "urn:healthcode:problem:one-time-code"),
        "{v}"
    );
    let me = app.get("/api/v1/admin/me", Some(&token)).await;
    assert_eq!(me["phone"], json!(masked(&old_phone)));
    // The right password and code: recorded, and the old phone is told.
    let v = app
        .ok(
            "PUT",
            "/api/v1/admin/me/phone",
            Some(&token),
            Some(body(&officer.password, &otp.code)),
        )
        .await;
    assert_eq!(v["phone"], json!(masked(new_phone)), "{v}");
    assert!(
        app.gateway
            .texts_to(&old_phone)
            .iter()
            .any(|t| t.contains(&masked(new_phone))),
        "the old phone was not told"
    );
    // A reset now reaches the new phone only.
    let before_old = app.gateway.texts_to(&old_phone).len();
    let v = app
        .post(
            &format!("/api/v1/admin/officers/{}/password-reset", officer.id),
            Some(&root.token),
            json!({}),
        )
        .await;
    assert_eq!(v["sent_to"], json!(masked(new_phone)), "{v}");
    app.gateway.password_for(new_phone);
    assert_eq!(app.gateway.texts_to(&old_phone).len(), before_old);
    let log = app.audit_log().await;
    assert!(
        log.iter()
            .any(|e| e["action"] == "staff-phone" && e["actor"] == json!(officer.actor)),
        "not audited"
    );
}

/// With no SMS gateway, an account cannot be proposed or reset through the API (the command
/// line stays), and a failed reset changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_no_password_is_made_that_nobody_could_receive() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(mut app) = TestApp::start(backend, false, common::as_is).await else {
            continue;
        };
        let (st, v) = propose(
            &app,
            json!({"username": "lonely", "role": "officer", "phone": staff_phone("lonely")}),
        )
        .await;
        assert_eq!(st, 503, "{v}");
        let root = app.admin().await;
        let officer = app.officer().await.clone();
        let (st, v) = app
            .call(
                "POST",
                &format!("/api/v1/admin/officers/{}/password-reset", officer.id),
                Some(&root.token),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, 503, "{v}");
        // The officer's session and password are untouched.
        app.get("/api/v1/admin/me", Some(&officer.token)).await;
        app.sign_in_again(&officer).await;
        app.stop().await;
    }
}
