//! Staff sign-in against someone guessing: guesses get 429s and then a lock instead of answers,
//! an unknown username answers as a wrong password does, a second factor is enrolled before
//! anything else and its codes are good once, and recovery codes are single-use and shown to
//! their owner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, masked, problem_type, staff_phone};
use healthcode_server::Config;
use serde_json::{Value, json};

common::on_both_backends!(
    guesses_at_sign_in_get_429s_not_answers,
    an_unknown_username_answers_as_a_wrong_password,
    a_second_factor_is_enrolled_before_anything_else,
    a_totp_code_is_good_once_and_wrong_codes_count_as_failures,
    a_recovery_code_signs_in_once_and_its_owner_sees_it,
    an_admin_resets_a_second_factor_and_its_owner_enrols_again,
    a_session_without_the_second_factor_stays_limited_after_enrolment_elsewhere,
);

/// A sign-in attempt: the status, the Retry-After header, the body.
async fn attempt(app: &TestApp, body: Value) -> (u16, Option<u64>, Value) {
    let resp = app
        .client
        .post(app.url("/api/v1/admin/sessions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: Value = resp.json().await.unwrap();
    if status >= 400 {
        assert!(body["type"].is_string(), "{body}");
    }
    (status, retry, body)
}

/// Sends 201 wrong passwords for `username` as fast as answers come; the count of each status.
async fn guess_201_times(app: &TestApp, username: &str) -> std::collections::BTreeMap<u16, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..201 {
        let (st, retry, body) = attempt(
            app,
            json!({"username": username, "password": format!("guess number {i}")}),
        )
        .await;
        assert_ne!(st, 201, "guess {i} signed in");
        if st == 429 {
            assert!(retry.is_some_and(|r| r >= 1), "{body}");
            assert_eq!(problem_type(&body), "urn:healthcode:problem:rate-limited");
        }
        *seen.entry(st).or_default() += 1;
    }
    seen
}

async fn guesses_at_sign_in_get_429s_not_answers(app: &TestApp) {
    let officer = app.officer().await.clone();
    let seen = guess_201_times(app, &officer.username).await;
    // A few guesses are checked; then each must wait longer than the last, and those sent
    // meanwhile are refused before any password is checked.
    let answered = seen.get(&401).copied().unwrap_or(0);
    assert!((3..=6).contains(&answered), "{seen:?}");
    assert_eq!(answered + seen.get(&429).copied().unwrap_or(0), 201, "{seen:?}");
    // The owner, meanwhile, waits like everyone else: the delay is the account's.
    let (st, _, _) = attempt(
        app,
        json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
    )
    .await;
    assert_eq!(st, 429);
}

async fn an_unknown_username_answers_as_a_wrong_password(app: &TestApp) {
    let officer = app.officer().await.clone();
    // The same answer, byte for byte.
    let (st_known, _, known) = attempt(
        app,
        json!({"username": officer.username, "password": "not the password"}),
    )
    .await;
    let (st_unknown, _, unknown) = attempt(
        app,
        json!({"username": "nobody.here", "password": "not the password"}),
    )
    .await;
    assert_eq!((st_known, st_unknown), (401, 401));
    assert_eq!(known, unknown);
    // The same delays and the same refusals after them.
    let a = guess_201_times(app, &officer.username).await;
    let b = guess_201_times(app, "nobody.here").await;
    assert!(
        a.get(&401)
            .copied()
            .unwrap_or(0)
            .abs_diff(b.get(&401).copied().unwrap_or(0))
            <= 2,
        "{a:?} {b:?}"
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
}

async fn a_second_factor_is_enrolled_before_anything_else(app: &TestApp) {
    let one_time = &app.create_account("officer-new", "officer").await;
    let (st, _, v) = attempt(
        app,
        json!({"username": "officer-new", "password": one_time, "new_password": "lantern orbit mango vessel"}),
    )
    .await;
    assert_eq!((st, v["second_factor"].as_str()), (201, Some("enrol")), "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // Nothing but enrolment until then.
    let (st, p) = app.call("GET", "/api/v1/admin/cases", Some(&token), None).await;
    assert_eq!(st, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("second factor"), "{p}");
    let me = app.get("/api/v1/admin/me", Some(&token)).await;
    assert_eq!(
        (me["must_enrol"].as_bool(), me["second_factor"].as_bool()),
        (Some(true), Some(false))
    );
    // Confirming before a secret was offered, or with a wrong code, enrols nothing.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/me/second-factor/confirm",
            Some(&token),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(st, 409);
    let offered = app
        .post("/api/v1/admin/me/second-factor", Some(&token), json!({}))
        .await;
    assert!(offered["qr_svg"].as_str().unwrap().contains("<svg"), "no QR code");
    let secret = data_encoding::BASE32_NOPAD
        .decode(offered["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let step = healthcode_server::totp::step_at(time::OffsetDateTime::now_utc());
    let wrong = healthcode_server::totp::code(&secret, step + 5);
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/me/second-factor/confirm",
            Some(&token),
            Some(json!({"code": wrong})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = app.call("GET", "/api/v1/admin/cases", Some(&token), None).await;
    assert_eq!(st, 403);
    let right = healthcode_server::totp::code(&secret, step);
    let done = app
        .post(
            "/api/v1/admin/me/second-factor/confirm",
            Some(&token),
            json!({"code": right}),
        )
        .await;
    let codes = done["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    // Enrolled: the session works; the secret is not shown again, and a session cannot
    // replace the factor (someone who stole one would).
    app.get("/api/v1/admin/cases", Some(&token)).await;
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/me/second-factor",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409);
    let me = app.get("/api/v1/admin/me", Some(&token)).await;
    assert_eq!(
        (me["must_enrol"].as_bool(), me["second_factor"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(me["recovery_codes_left"], 10);
    // The password alone no longer signs in; with the code it does (not the one used to enrol).
    let (st, _, _) = attempt(
        app,
        json!({"username": "officer-new", "password": "lantern orbit mango vessel"}),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = attempt(
        app,
        json!({"username": "officer-new", "password": "lantern orbit mango vessel", "code": right}),
    )
    .await;
    assert_eq!(st, 401, "the enrolment's code was taken twice");
    let next = healthcode_server::totp::code(&secret, step + 1);
    let (st, _, v) = attempt(
        app,
        json!({"username": "officer-new", "password": "lantern orbit mango vessel", "code": next}),
    )
    .await;
    assert_eq!((st, v["second_factor"].as_str()), (201, Some("enrolled")), "{v}");
    assert_eq!(v["failed_sign_ins"], 2, "{v}");
    let log = app.audit_log().await;
    assert!(
        log.iter().any(|e| e["action"] == "second-factor-enrol"
            && e["actor"].as_str().unwrap().ends_with(":officer-new"))
    );
}

async fn a_totp_code_is_good_once_and_wrong_codes_count_as_failures(app: &TestApp) {
    let officer = app.officer().await.clone();
    let code = officer.next_code().await;
    let with = |code: Option<&str>| {
        let mut body = json!({"username": officer.username, "password": officer.password});
        if let Some(c) = code {
            body["code"] = c.into();
        }
        body
    };
    let (st, _, first) = attempt(app, with(Some(&code))).await;
    assert_eq!(st, 201, "{first}");
    // The same code again, as someone who watched it typed would send it: refused.
    let (st, _, replay) = attempt(app, with(Some(&code))).await;
    assert_eq!(st, 401, "{replay}");
    let (st, _, missing) = attempt(app, with(None)).await;
    assert_eq!(st, 401);
    // Every refusal reads the same as a wrong password.
    assert_eq!(replay, missing);
    let (st, _, _) = attempt(app, with(Some("000000"))).await;
    assert!(st == 401 || st == 429, "{st}");
    // Three wrong second factors: the delay has started, and the owner is told at the next
    // sign-in.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, _, ok) = attempt(app, with(Some(&officer.next_code().await))).await;
    assert_eq!(st, 201, "{ok}");
    assert_eq!(ok["failed_sign_ins"], 3, "{ok}");
    assert!(ok["last_failed_sign_in_at"].is_string(), "{ok}");
    let (_, _, again) = attempt(app, with(Some(&officer.next_code().await))).await;
    assert_eq!(again["failed_sign_ins"], 0, "{again}");
}

async fn a_recovery_code_signs_in_once_and_its_owner_sees_it(app: &TestApp) {
    let officer = app.officer().await.clone();
    let recovery = officer.recovery_codes[3].clone();
    let body = json!({"username": officer.username, "password": officer.password, "recovery_code": recovery.to_uppercase()});
    let (st, _, v) = attempt(app, body.clone()).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["recovery_codes_left"], 9);
    let token = v["token"].as_str().unwrap().to_owned();
    // Used once: refused after, like a wrong password.
    let (st, _, _) = attempt(app, body).await;
    assert_eq!(st, 401);
    // Another account's recovery code opens nothing.
    let other = app.second_officer().await.clone();
    let (st, _, _) = attempt(
        app,
        json!({"username": officer.username, "password": officer.password, "recovery_code": other.recovery_codes[0]}),
    )
    .await;
    assert_eq!(st, 401);
    let me = app.get("/api/v1/admin/me", Some(&token)).await;
    assert_eq!(me["recovery_codes_left"], 9);
    assert!(me["recovery_code_last_used_at"].is_string(), "{me}");
    let log = app.audit_log().await;
    let used: Vec<_> = log
        .iter()
        .filter(|e| e["action"] == "recovery-code-use")
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["actor"], officer.actor.as_str());
}

async fn an_admin_resets_a_second_factor_and_its_owner_enrols_again(app: &TestApp) {
    let admin = app.admin().await.token.clone();
    let mut officer = app.officer().await.clone();
    let path = format!("/api/v1/admin/officers/{}/second-factor", officer.id);
    // Not by the owner, not by another officer.
    let other = app.second_officer().await.token.clone();
    let (st, _) = app.call("DELETE", &path, Some(&other), None).await;
    assert_eq!(st, 403);
    let reset = app.ok("DELETE", &path, Some(&admin), None).await;
    // The new password went to the owner's phone, not to the admin.
    assert!(reset.get("one_time_password").is_none(), "{reset}");
    assert_eq!(reset["sent_to"], json!(masked(&staff_phone(&officer.username))));
    let one_time = app.gateway.password_for(&staff_phone(&officer.username));
    assert_eq!(reset["officer"]["second_factor"], false, "{reset}");
    // Its sessions ended.
    let (st, _) = app
        .call("GET", "/api/v1/admin/me", Some(&officer.token), None)
        .await;
    assert_eq!(st, 401);
    // The old password went with the factor: whoever noted it with the lost phone cannot enrol
    // first.
    let (st, _, p) = attempt(
        app,
        json!({"username": officer.username, "password": officer.password}),
    )
    .await;
    assert_eq!(st, 401, "{p}");
    // The one-time password the admin handed over signs in once replaced, to enrol again and
    // nothing else.
    let (st, _, p) = attempt(app, json!({"username": officer.username, "password": one_time})).await;
    assert_eq!(st, 403, "{p}");
    officer.password = "quartz meadow lantern pivot".into();
    let (st, _, v) = attempt(
        app,
        json!({"username": officer.username, "password": one_time, "new_password": officer.password}),
    )
    .await;
    assert_eq!((st, v["second_factor"].as_str()), (201, Some("enrol")), "{v}");
    officer.token = v["token"].as_str().unwrap().to_owned();
    let old_recovery = officer.recovery_codes[0].clone();
    app.enrol(&mut officer).await;
    app.get("/api/v1/admin/cases", Some(&officer.token)).await;
    // The old recovery codes went with the old factor.
    let (st, _, _) = attempt(
        app,
        json!({"username": officer.username, "password": officer.password, "recovery_code": old_recovery}),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _) = app.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(st, 200);
    let (st, p) = app.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(st, 409, "{p}");
    // Two resets and the refused third, each in the log.
    let log = app.audit_log().await;
    let resets: Vec<&str> = log
        .iter()
        .filter(|e| e["action"] == "second-factor-reset")
        .map(|e| e["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(resets.len(), 3, "{resets:?}");
    assert!(resets[2].contains("refused"), "{resets:?}");
}

/// No delays, so that reaching the lock takes no waiting.
fn lock_without_delays(c: &mut Config) {
    c.staff.delay_after_failures = 1000;
    c.staff.client_delay_after_failures = 1000;
    c.staff.lock_after_code_failures = 10;
}

mod lock {
    use super::*;

    common::on_both_backends!(configured by lock_without_delays;
        repeated_failures_lock_an_account_until_an_admin_unlocks_it,
        a_new_account_does_not_inherit_a_lock_on_its_name,
        wrong_second_factors_lock_too,
    );

    async fn repeated_failures_lock_an_account_until_an_admin_unlocks_it(app: &TestApp) {
        let officer = app.officer().await.clone();
        // Wrong passwords never lock: an anonymous guesser cannot lock anyone out, an admin
        // included (with delays on, they only make each attempt wait, up to max_delay_ms).
        let seen = guess_201_times(app, &officer.username).await;
        assert_eq!(seen.get(&401), Some(&201), "{seen:?}");
        let admin_name = app.admin().await.username.clone();
        let seen = guess_201_times(app, &admin_name).await;
        assert_eq!(seen.get(&401), Some(&201), "{seen:?}");
        let (st, _, v) = attempt(
            app,
            json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["failed_sign_ins"], 201, "{v}");
        // Wrong codes sent with the right password (a strong sign that it is known) lock.
        for i in 0..10 {
            let (st, _, _) = attempt(
                app,
                json!({"username": officer.username, "password": officer.password, "code": format!("{:06}", 100_000 + i)}),
            )
            .await;
            assert_eq!(st, 401);
        }
        // Locked: the right password and code are refused too, before any check.
        let (st, _, p) = attempt(
            app,
            json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
        )
        .await;
        assert_eq!(st, 403, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("locked"), "{p}");
        // An unknown name is never locked, and answers as a known one.
        let nobody = guess_201_times(app, "nobody.here").await;
        assert_eq!(nobody.get(&401), Some(&201), "{nobody:?}");
        // The admins' list shows it; an officer cannot lift it; an admin can, once.
        let admin = app.admin().await.token.clone();
        let list = app.get("/api/v1/admin/officers", Some(&admin)).await;
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == officer.id)
            .unwrap()
            .clone();
        assert_eq!(row["locked"], true, "{row}");
        let unlock = format!("/api/v1/admin/officers/{}/unlock", officer.id);
        let other = app.second_officer().await.token.clone();
        assert_eq!(app.call("POST", &unlock, Some(&other), None).await.0, 403);
        app.ok("POST", &unlock, Some(&admin), None).await;
        assert_eq!(app.call("POST", &unlock, Some(&admin), None).await.0, 409);
        // The owner signs in and is told of the ten failures.
        let (st, _, v) = attempt(
            app,
            json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["failed_sign_ins"], 10, "{v}");
        let log = app.audit_log().await;
        assert!(
            log.iter().any(|e| e["action"] == "sign-in-lock"),
            "the lock is not audited"
        );
        assert!(log.iter().any(|e| e["action"] == "sign-in-unlock"));
        // Nothing an anonymous guesser sent reached the audit log.
        assert!(
            !log.iter().any(|e| e.to_string().contains("nobody.here")),
            "a guessed name is in the audit log"
        );
    }

    async fn a_new_account_does_not_inherit_a_lock_on_its_name(app: &TestApp) {
        // Someone guesses at a name the authority is likely to give next.
        let seen = guess_201_times(app, "officer-zhang").await;
        assert_eq!(seen.get(&401), Some(&201), "{seen:?}");
        let one_time = app.create_account("officer-zhang", "officer").await;
        let (st, _, v) = attempt(
            app,
            json!({"username": "officer-zhang", "password": one_time, "new_password": "lantern orbit mango vessel"}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["failed_sign_ins"], 0, "{v}");
    }

    async fn wrong_second_factors_lock_too(app: &TestApp) {
        let officer = app.officer().await.clone();
        // The password is known (stolen); the code is guessed.
        for i in 0..10 {
            let (st, _, _) = attempt(
                app,
                json!({"username": officer.username, "password": officer.password, "code": format!("{:06}", 100_000 + i)}),
            )
            .await;
            assert_eq!(st, 401);
        }
        let (st, _, _) = attempt(
            app,
            json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
        )
        .await;
        assert_eq!(st, 403);
        // A locked-out last admin, or anyone, is unlocked from the command line too; audited.
        assert!(
            healthcode_server::ops::unlock_account_now(&app.config, &officer.username)
                .await
                .unwrap()
        );
        assert!(
            !healthcode_server::ops::unlock_account_now(&app.config, &officer.username)
                .await
                .unwrap()
        );
        let (st, _, v) = attempt(
            app,
            json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let log = app.audit_log().await;
        assert!(
            log.iter().any(|e| e["action"] == "sign-in-unlock"
                && e["purpose"].as_str().unwrap().contains("command line")),
            "the unlock is not audited"
        );
    }
}

/// The delays and the lock are kept in the store: a restart does not forget them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_forget_failed_sign_ins() {
    let mut app = TestApp::start(common::Backend::Sqlite, true, lock_without_delays)
        .await
        .unwrap();
    let officer = app.officer().await.clone();
    for i in 0..10 {
        let (st, _, _) = attempt(
            &app,
            json!({"username": officer.username, "password": officer.password, "code": format!("{:06}", 200_000 + i)}),
        )
        .await;
        assert_eq!(st, 401);
    }
    app.restart().await;
    let (st, _, p) = attempt(
        &app,
        json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await}),
    )
    .await;
    assert_eq!(st, 403, "{p}");
    app.stop().await;
}

/// The answer for an unknown name takes as long as for a wrong password: the server checks the
/// password against a stand-in hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_username_takes_as_long_as_a_wrong_password() {
    let app = TestApp::start(common::Backend::Sqlite, true, lock_without_delays)
        .await
        .unwrap();
    let officer = app.officer().await.clone();
    let median = async |username: &str| {
        let mut times = Vec::new();
        for i in 0..7 {
            let t = Instant::now();
            let (st, _, _) = attempt(
                &app,
                json!({"username": username, "password": format!("wrong {i}")}),
            )
            .await;
            times.push(t.elapsed());
            assert_eq!(st, 401);
        }
        times.sort();
        times[3]
    };
    let known = median(&officer.username).await;
    let unknown = median("nobody.here").await;
    assert!(
        unknown * 3 > known && known * 3 > unknown,
        "known {known:?}, unknown {unknown:?}"
    );
}

/// A session signed in with the password alone, while the account had no second factor, does
/// not become a full session when its owner (or whoever else has the password) enrols in another
/// session: the enrolment ends it, and what counts is the session, not the account.
async fn a_session_without_the_second_factor_stays_limited_after_enrolment_elsewhere(app: &TestApp) {
    let one_time = &app.create_account("officer-two-sessions", "officer").await;
    let password = "lantern orbit mango vessel";
    let (st, _, a) = attempt(
        app,
        json!({"username": "officer-two-sessions", "password": one_time, "new_password": password}),
    )
    .await;
    assert_eq!((st, a["second_factor"].as_str()), (201, Some("enrol")), "{a}");
    let session_a = a["token"].as_str().unwrap().to_owned();
    let (st, _, b) = attempt(
        app,
        json!({"username": "officer-two-sessions", "password": password}),
    )
    .await;
    assert_eq!((st, b["second_factor"].as_str()), (201, Some("enrol")), "{b}");
    let me = app.get("/api/v1/admin/me", Some(&session_a)).await;
    let mut owner = common::Staff {
        token: b["token"].as_str().unwrap().to_owned(),
        actor: format!("officer:{}:officer-two-sessions", me["id"]),
        id: me["id"].as_i64().unwrap(),
        username: "officer-two-sessions".into(),
        password: password.into(),
        secret: Vec::new(),
        recovery_codes: Vec::new(),
        last_step: Default::default(),
    };
    app.enrol(&mut owner).await;
    // Session B, where the enrolment was confirmed, is a full session.
    let (st, p) = app
        .call("GET", "/api/v1/admin/cases", Some(&owner.token), None)
        .await;
    assert_eq!(st, 200, "{p}");
    // Session A never gave the second factor: it cannot reach an officer endpoint (it has
    // ended), nor enrol again.
    let (st, p) = app
        .call("GET", "/api/v1/admin/cases", Some(&session_a), None)
        .await;
    assert!(st == 401 || st == 403, "{st} {p}");
    assert!(!problem_type(&p).is_empty(), "{p}");
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/me/second-factor",
            Some(&session_a),
            Some(json!({})),
        )
        .await;
    assert!(st == 401 || st == 409, "{st}");
    // A new sign-in needs the code, and with it the session is full.
    let token = app.sign_in_again(&owner).await;
    let (st, _) = app.call("GET", "/api/v1/admin/cases", Some(&token), None).await;
    assert_eq!(st, 200);
}
