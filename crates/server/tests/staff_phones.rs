//! Staff passwords go to their owners' phones, never to an admin. Tried as a dishonest admin
//! would, against the version where the approver of a new account (or the admin who reset one)
//! was shown its one-time password: one admin who approved two honest accounts' creation could
//! sign in as both before their owners did, and later have them approve each other. Now the
//! approval and every reset text the password to the phone recorded for the account, the
//! admins' answers say only where it went, an account with no phone cannot be reset through
//! the API, and only the owner records or changes their phone (with their password and a code
//! sent to the new phone).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, masked, problem_type, staff_phone};
use serde_json::{Value, json};

common::on_both_backends!(
    an_approver_never_sees_a_new_accounts_password,
    a_proposal_needs_a_phone_texts_reach,
    a_reset_texts_the_owner_and_tells_the_admin_only_where,
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

async fn an_approver_never_sees_a_new_accounts_password(app: &TestApp) {
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
        let done = app.approve(second, v["proposal"]["id"].as_i64().unwrap()).await;
        assert_eq!(done["password_sent_to"], json!(masked(&phone)), "{done}");
        assert!(done.get("one_time_password").is_none(), "{done}");
        let password = app.gateway.password_for(&phone);
        assert!(
            !done.to_string().contains(&password),
            "the approver saw it: {done}"
        );
        // Listed to the admins with the phone masked; the whole number is nowhere.
        let listed = app
            .get("/api/v1/admin/proposals?pending=false", Some(&second.token))
            .await;
        assert!(!listed.to_string().contains(&phone), "{listed}");
        let officers = app.get("/api/v1/admin/officers", Some(&second.token)).await;
        assert!(!officers.to_string().contains(&phone), "{officers}");
        // The owner signs in with what the text says.
        assert_eq!(first_sign_in(app, name, &password).await, 201);
    }
    // Nothing the audit log holds carries a password or a whole phone number.
    let log = Value::from(app.audit_entries_after(before).await).to_string();
    for name in ["chen.honest", "zhou.honest"] {
        assert!(!log.contains(&staff_phone(name)), "{log}");
        assert!(log.contains(&masked(&staff_phone(name))), "{log}");
    }
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
