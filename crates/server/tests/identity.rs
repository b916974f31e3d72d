//! Real-name proofing, tried as an attacker would: a spare SIM with an invented ID number, a
//! squatted ID number, a registry that is down, garbled or slow, a holder calling the counter, a
//! phone change without the old phone; and the legitimate paths: registration through the
//! registry, at the counter, and phone changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    Backend, Holder, Identity, Otp, RegistryMode, TestApp, problem_type, resident_id,
    resident_id_of_the_resident,
};
use healthcode_server::identity::DocumentJson;
use serde_json::{Value, json};

/// A resident's registration, as a phone posts it (without the code).
fn resident(name: &str, id: &str, phone: &str) -> Value {
    json!({"kind": "resident", "name": name, "resident_id": id, "phone": phone})
}

/// Posts a registration with a fresh one-time code for its phone: the status and the body.
async fn try_register(app: &TestApp, mut registration: Value) -> (u16, Value) {
    let otp = app.otp(registration["phone"].as_str().unwrap()).await;
    otp.fill(&mut registration);
    let (st, v) = app
        .call("POST", "/api/v1/holders", None, Some(registration))
        .await;
    (st.as_u16(), v)
}

/// The officer's search for a lab result by name and resident ID number, under a lab report
/// recorded for that number (once, by a second officer: a report opens nothing to its recorder).
async fn lab_search(app: &TestApp, name: &str, id: &str) -> (u16, Value) {
    let officer = app.officer().await.token.clone();
    let recorder = app.second_officer().await.token.clone();
    let reference = format!("LAB-{}", id.trim());
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/admin/lab-reports",
            Some(&recorder),
            Some(json!({"reference": reference, "lab": "Zhejiang CDC", "resident_id": id})),
        )
        .await;
    assert!(st == 201 || st == 409, "{v}");
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/admin/holders/search",
            Some(&officer),
            Some(json!({"name": name, "resident_id": id,
                "purpose": {"purpose": "lab-result", "reference": reference}})),
        )
        .await;
    (st.as_u16(), v)
}

/// The actions in the holder's access log.
async fn access_actions(app: &TestApp, holder: &Holder) -> Vec<Value> {
    app.get("/api/v1/me/access-log", Some(&holder.token))
        .await
        .as_array()
        .unwrap()
        .clone()
}

const CHECKED: &str = r#"{"document_seen": true, "number_checked": true}"#;

/// A registration at the counter as the officer posts it: the person's phone is sent a code first,
/// which they read out, and the registry knows the person. The status and the body.
async fn counter_register(app: &TestApp, officer: &str, person: Value) -> (u16, Value) {
    app.registry.know_registration(&person);
    let otp = app.otp(person["phone"].as_str().unwrap()).await;
    let body = json!({"person": person, "checked": serde_json::from_str::<Value>(CHECKED).unwrap(),
        "challenge": otp.challenge, "otp": otp.code});
    let (st, v) = app
        .call("POST", "/api/v1/admin/counter/holders", Some(officer), Some(body))
        .await;
    (st.as_u16(), v)
}

/// A phone change at the counter (`name`, `resident_id`, `new_phone`) as the officer posts it:
/// the new phone is sent a code first, which the person reads out, and the registry knows the
/// name and document with the new phone. The status and the body.
async fn counter_change(app: &TestApp, officer: &str, mut change: Value) -> (u16, Value) {
    let new_phone = change["new_phone"].as_str().unwrap().to_owned();
    app.registry.know(
        change["name"].as_str().unwrap(),
        DocumentJson::ResidentId {
            number: change["resident_id"].as_str().unwrap().to_owned(),
        },
        &new_phone,
    );
    let otp = app.otp(&new_phone).await;
    change["checked"] = serde_json::from_str::<Value>(CHECKED).unwrap();
    change["new_challenge"] = otp.challenge.into();
    change["new_otp"] = otp.code.into();
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/admin/counter/phone-changes",
            Some(officer),
            Some(change),
        )
        .await;
    (st.as_u16(), v)
}

/// The refusal that tells nothing: what a registry's no-match answers.
async fn no_match_detail(app: &TestApp) -> String {
    let invented = resident_id("44030119851212345");
    let (st, p) = try_register(app, resident("赵六", &invented, "+8613700137000")).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    p["detail"].as_str().unwrap().to_owned()
}

async fn a_red_holder_with_a_spare_sim_and_an_invented_id_is_refused(app: &TestApp) {
    let owner = app.register_resident().await;
    let officer = app.officer().await.clone();
    app.confirm_case(&officer, &owner).await;
    assert_eq!(app.code(&owner).await["colour"], "red");
    // Same name, an invented number with a valid check character, a spare SIM.
    let spare = "+8613900139099";
    let invented = resident_id("33010619900307999");
    let (st, p) = try_register(app, resident("张三丰", &invented, spare)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    // The registry was asked about the spare SIM, and said no.
    let asked = app.registry.asked();
    assert_eq!(asked.last().unwrap().phone, spare);
    // No holder was made with the invented number.
    let (st, _) = lab_search(app, "张三丰", &invented).await;
    assert_eq!(st, 404);
    // The real number with the spare SIM (a SIM in someone else's name): refused the same way.
    let (st, p2) = try_register(
        app,
        resident("张三丰", &resident_id_of_the_resident(), "+8613900139097"),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(p2["detail"], p["detail"]);
    assert_eq!(app.code(&owner).await["colour"], "red");
}

async fn a_squatted_id_is_refused_without_saying_why_and_its_owner_is_told(app: &TestApp) {
    let owner = app.register_resident().await;
    let detail = no_match_detail(app).await;
    // The squatter's phone and name, the owner's number: even if the registry knew the squatter
    // with this number, the document binds its holder.
    let squatter_phone = "+8613600136000";
    app.registry.know(
        "李鬼",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        squatter_phone,
    );
    let (st, p) = try_register(
        app,
        resident("李鬼", &resident_id_of_the_resident(), squatter_phone),
    )
    .await;
    assert_eq!(st, 403, "{p}");
    assert_eq!(
        p["detail"].as_str().unwrap(),
        detail,
        "the refusal must not tell that the document is taken"
    );
    // The owner's phone is told, and their access log shows it.
    assert!(
        app.gateway
            .wait_for_text(
                "+8613800138001",
                "someone tried to register your identity document"
            )
            .await,
        "{:?}",
        app.gateway.texts_to("+8613800138001")
    );
    let log = access_actions(app, &owner).await;
    assert!(log.iter().any(|e| e["action"] == "document-presented"), "{log:?}");
    // The squatter's phone got nothing but its one-time code.
    assert!(
        app.gateway
            .texts_to(squatter_phone)
            .iter()
            .all(|t| t.starts_with("one-time code")),
        "{:?}",
        app.gateway.texts_to(squatter_phone)
    );
    // A lab-result search with the number and another name finds nothing; with the owner's name,
    // the owner.
    let (st, p) = lab_search(app, "李鬼", &resident_id_of_the_resident()).await;
    assert_eq!(
        (st, problem_type(&p)),
        (404, "urn:healthcode:problem:not-found"),
        "{p}"
    );
    let (st, unknown) = lab_search(app, "李鬼", &resident_id("44030119851212345")).await;
    assert_eq!(st, 404);
    assert_eq!(
        unknown["detail"], p["detail"],
        "a wrong name reads as no holder at all"
    );
    let (st, found) = lab_search(app, " 张三丰 ", &resident_id_of_the_resident()).await;
    assert_eq!(st, 200, "{found}");
    assert_eq!(found["holder"], owner.hex.as_str());
}

async fn the_owner_registering_again_gets_the_same_refusal(app: &TestApp) {
    let owner = app.register_resident().await;
    let detail = no_match_detail(app).await;
    // The owner, with a new phone the registry knows as theirs: the document binds the first
    // registration (a new phone is a phone change), so the answer is the same refusal.
    let new_phone = "+8613800138002";
    app.registry.know(
        "张三丰",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        new_phone,
    );
    let (st, p) = try_register(app, resident("张三丰", &resident_id_of_the_resident(), new_phone)).await;
    assert_eq!(st, 403);
    assert_eq!(p["detail"].as_str().unwrap(), detail);
    // A replay of the owner's own registration, with the code it used, is refused, too.
    let mut replay = resident("张三丰", &resident_id_of_the_resident(), "+8613800138001");
    // (Its challenge went to the owner's phone's page; a replay has at best the code.)
    replay["challenge"] = "otc_replayed".into();
    replay["otp"] = app.gateway.code_for("+8613800138001").into();
    let (st, p) = app.call("POST", "/api/v1/holders", None, Some(replay)).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (401, "urn:healthcode:problem:one-time-code")
    );
    assert_eq!(app.code(&owner).await["colour"], "green");
}

async fn a_registry_that_is_down_garbled_or_slow_is_a_503_not_a_pass(app: &TestApp) {
    for (mode, phone, n) in [
        (RegistryMode::Down, "+8613500135001", "11010519491231011"),
        (RegistryMode::Garbage, "+8613500135002", "11010519491231012"),
        (RegistryMode::Slow, "+8613500135003", "11010519491231013"),
    ] {
        let id = resident_id(n);
        let registration = resident("钱七", &id, phone);
        app.registry.know_registration(&registration);
        app.registry.set_mode(mode);
        let started = std::time::Instant::now();
        let otp = app.otp(phone).await;
        let mut body = registration.clone();
        otp.fill(&mut body);
        let resp = app
            .client
            .post(app.url("/api/v1/holders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "{mode:?}");
        assert!(resp.headers().get("retry-after").is_some(), "{mode:?}");
        let p: Value = resp.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains("registry"), "{p}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{mode:?} took too long"
        );
        // Nobody was registered.
        app.registry.set_mode(RegistryMode::Up);
        let (st, _) = lab_search(app, "钱七", &id).await;
        assert_eq!(st, 404, "{mode:?}");
    }
}

async fn a_holder_cannot_use_the_counter(app: &TestApp) {
    let holder = app.register_resident().await;
    let auditor = app.auditor().await.token.clone();
    let sent = app.otp("+8613400134001").await;
    let body = json!({"person": {"kind": "resident", "name": "孙八", "resident_id": resident_id("11010519491231021"),
        "phone": "+8613400134001"}, "checked": {"document_seen": true, "number_checked": true},
        "challenge": sent.challenge, "otp": sent.code});
    let change = json!({"name": "张三丰", "resident_id": resident_id_of_the_resident(), "new_phone": "+8613400134002",
        "new_challenge": "otc_none", "new_otp": "000000", "checked": {"document_seen": true, "number_checked": true}});
    for (path, body) in [
        ("/api/v1/admin/counter/holders", &body),
        ("/api/v1/admin/counter/phone-changes", &change),
    ] {
        let (st, _) = app.call("POST", path, None, Some(body.clone())).await;
        assert_eq!(st, 401, "{path}");
        let (st, _) = app
            .call("POST", path, Some(&holder.token), Some(body.clone()))
            .await;
        assert!(st == 401 || st == 403, "{path}: {st}");
        let (st, _) = app.call("POST", path, Some(&auditor), Some(body.clone())).await;
        assert_eq!(st, 403, "{path}");
    }
    // Nothing changed: the holder keeps the phone and the session, and no one else exists.
    assert_eq!(app.code(&holder).await["colour"], "green");
    let (st, _) = lab_search(app, "孙八", &resident_id("11010519491231021")).await;
    assert_eq!(st, 404);
    // An officer who does not state that the document was seen and checked registers no one.
    let officer = app.officer().await.token.clone();
    let mut unchecked = body.clone();
    unchecked["checked"] = json!({"document_seen": true});
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/counter/holders",
            Some(&officer),
            Some(unchecked),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field")
    );
    let (st, _) = lab_search(app, "孙八", &resident_id("11010519491231021")).await;
    assert_eq!(st, 404);
}

async fn a_holder_registered_at_the_counter_signs_in_with_the_phone(app: &TestApp) {
    let officer = app.officer().await.clone();
    let id = resident_id("11010519491231031");
    let phone = "+8613300133001";
    let (st, made) = counter_register(
        app,
        &officer.token,
        json!({"kind": "resident", "name": "周九", "resident_id": id, "phone": phone}),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let hex = made["holder"].as_str().unwrap().to_owned();
    assert!(
        app.gateway
            .texts_to(phone)
            .iter()
            .any(|t| t.contains("you are registered"))
    );
    // The holder signs in with the phone's one-time code (a new one, once a phone may be sent
    // another) and has a code.
    app.after_resend_interval().await;
    let code = app.otp(phone).await;
    let session = app
        .post(
            "/api/v1/sessions",
            None,
            json!({"phone": phone, "challenge": code.challenge, "otp": code.code}),
        )
        .await;
    assert_eq!(session["holder"], hex.as_str());
    let holder = Holder {
        token: session["token"].as_str().unwrap().to_owned(),
        hex: hex.clone(),
    };
    assert_eq!(app.code(&holder).await["colour"], "green");
    // The audit log names the officer, the document seen and checked.
    let log = app.audit_log().await;
    let entry = log
        .iter()
        .find(|e| e["action"] == "counter-register")
        .expect("no counter registration in the audit log");
    assert_eq!(entry["actor"], officer.actor.as_str());
    assert_eq!(entry["subject"], hex.as_str());
    assert!(
        entry["purpose"]
            .as_str()
            .unwrap()
            .contains("resident ID card seen, number checked, phone's one-time code read out"),
        "{entry}"
    );
    // The same document again at the counter: refused, and recorded against its holder.
    let (st, _) = counter_register(
        app,
        &officer.token,
        json!({"kind": "resident", "name": "周九", "resident_id": id, "phone": "+8613300133002"}),
    )
    .await;
    assert_eq!(st, 409);
    // A visitor, with a passport.
    let (st, visitor) = counter_register(
        app,
        &officer.token,
        json!({"kind": "visitor", "name": "Lukas Weber", "passport": "C01X00T47", "nationality": "SWE",
            "birth_date": "1980-02-01", "flight": "LH720", "arrival": "2026-11-28", "phone": "+46701234599"}),
    )
    .await;
    assert_eq!(st, 201, "{visitor}");
    assert!(visitor["holder"].as_str().is_some());
}

async fn a_phone_change_at_the_counter_ends_old_sessions_and_tells_both_phones(app: &TestApp) {
    let holder = app.register_resident().await;
    let officer = app.officer().await.clone();
    let new_phone = "+8613800138055";
    let change = |name: &str| json!({"name": name, "resident_id": resident_id_of_the_resident(), "new_phone": new_phone});
    // Another name with the number: not this holder.
    let (st, _) = counter_change(app, &officer.token, change("李鬼")).await;
    assert_eq!(st, 404);
    assert_eq!(
        app.code(&holder).await["colour"],
        "green",
        "a refused change ended the session"
    );
    // Another name, with a new phone that holds another registration: the same 404, not a
    // conflict (the number alone tells nothing), and the holder sees the refused attempt.
    app.register_visitor().await;
    app.after_resend_interval().await;
    let taken =
        json!({"name": "李鬼", "resident_id": resident_id_of_the_resident(), "new_phone": "+46701234567"});
    let (st, p) = counter_change(app, &officer.token, taken).await;
    assert_eq!(st, 404, "{p}");
    let seen = access_actions(app, &holder).await;
    assert!(seen.iter().any(|e| e["action"] == "counter-refused"), "{seen:?}");
    app.after_resend_interval().await;
    let (st, done) = counter_change(app, &officer.token, change("张三丰")).await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["holder"], holder.hex.as_str());
    assert_eq!(done["sessions_ended"], 1);
    // The old session is over, at once.
    let (st, _) = app
        .call("GET", "/api/v1/me/code", Some(&holder.token), None)
        .await;
    assert_eq!(st, 401);
    assert!(
        app.gateway
            .texts_to("+8613800138001")
            .iter()
            .any(|t| t.contains("has moved"))
    );
    assert!(
        app.gateway
            .texts_to(new_phone)
            .iter()
            .any(|t| t.contains("now holds your health code"))
    );
    // The new phone signs in; the old one no longer finds the holder.
    app.after_resend_interval().await;
    let code = app.otp(new_phone).await;
    let session = app
        .post(
            "/api/v1/sessions",
            None,
            json!({"phone": new_phone, "challenge": code.challenge, "otp": code.code}),
        )
        .await;
    assert_eq!(session["holder"], holder.hex.as_str());
    let moved = Holder {
        token: session["token"].as_str().unwrap().to_owned(),
        hex: holder.hex.clone(),
    };
    // The old phone no longer finds the holder (its last code was the registration's, so a new
    // one must wait a minute: the record says it).
    assert_eq!(phone_on_record(app, &moved.hex).await, new_phone);
    // The holder's access log shows the change and who made it.
    let log = access_actions(app, &moved).await;
    let entry = log
        .iter()
        .find(|e| e["action"] == "phone-change")
        .expect("no phone change in the access log");
    assert_eq!(entry["actor"], as_holders_see(&officer.actor));
    // The export has the new phone.
    assert_eq!(app.export(&moved).await["personal_data"]["phone"], new_phone);
}

/// A resident registered at the counter with a phone (whose code the counter used: a new one may
/// be sent once the resend interval is over, which this waits for).
async fn counter_resident(app: &TestApp, phone: &str) -> String {
    let officer = app.officer().await.token.clone();
    let (st, made) = counter_register(
        app,
        &officer,
        json!({"kind": "resident", "name": "张三丰", "resident_id": resident_id_of_the_resident(), "phone": phone}),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    app.after_resend_interval().await;
    made["holder"].as_str().unwrap().to_owned()
}

/// The phone in a holder's record, as an officer reads it (with a consent of the holder's,
/// made behind the server's back for the test).
async fn phone_on_record(app: &TestApp, hex: &str) -> String {
    let officer = app.officer().await.token.clone();
    let consent = app.insert_consent(hex, "proxy").await;
    let record = app
        .post(
            &format!("/api/v1/admin/holders/{hex}/read"),
            Some(&officer),
            json!({"purpose": {"purpose": "proxy-with-consent", "consent": consent}}),
        )
        .await;
    record["personal_data"]["phone"].as_str().unwrap().to_owned()
}

fn self_change(old: &Otp, new_phone: &str, new: &Otp) -> Value {
    json!({"old_phone": "+8613800138001", "old_challenge": old.challenge, "old_otp": old.code,
        "new_phone": new_phone, "new_challenge": new.challenge, "new_otp": new.code,
        "name": "张三丰", "resident_id": resident_id_of_the_resident()})
}

async fn a_phone_change_without_the_old_phone_is_refused(app: &TestApp) {
    let hex = counter_resident(app, "+8613800138001").await;
    let new_phone = "+8613800138066";
    app.registry.know(
        "张三丰",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        new_phone,
    );
    // Someone with the new phone and the document, but not the old phone, guesses its code.
    let new_code = app.otp(new_phone).await;
    let guessed = Otp {
        challenge: "otc_guessed".into(),
        code: "123456".into(),
    };
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/phone-changes",
            None,
            Some(self_change(&guessed, new_phone, &new_code)),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (401, "urn:healthcode:problem:one-time-code"),
        "{p}"
    );
    assert_eq!(phone_on_record(app, &hex).await, "+8613800138001");
    // With the old phone's code, but a new SIM the registry does not know as the holder's.
    let spare = "+8613800138067";
    let old_code = app.otp("+8613800138001").await;
    let spare_code = app.otp(spare).await;
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/phone-changes",
            None,
            Some(self_change(&old_code, spare, &spare_code)),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert_eq!(phone_on_record(app, &hex).await, "+8613800138001");
    assert!(
        app.gateway
            .texts_to(spare)
            .iter()
            .all(|t| t.starts_with("one-time code"))
    );
    // Another holder, with both of their own phones, naming this holder's document (even with a
    // registry that wrongly confirms it): the old phone is not this holder's, so nothing moves.
    let (theirs, theirs_new) = ("+8613800138068", "+8613800138069");
    let officer = app.officer().await.token.clone();
    let (st, made) = counter_register(
        app,
        &officer,
        json!({"kind": "resident", "name": "王五", "resident_id": resident_id("11010119800101001"), "phone": theirs}),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    app.after_resend_interval().await;
    app.registry.know(
        "张三丰",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        theirs_new,
    );
    let (old_code, new_code) = (app.otp(theirs).await, app.otp(theirs_new).await);
    let mut other = self_change(&old_code, theirs_new, &new_code);
    other["old_phone"] = theirs.into();
    let (st, p) = app.call("POST", "/api/v1/phone-changes", None, Some(other)).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert_eq!(phone_on_record(app, &hex).await, "+8613800138001");
    let log = app.audit_log().await;
    assert!(log.iter().all(|e| e["action"] != "phone-change"), "{log:?}");
}

async fn a_phone_change_by_the_holder_with_both_phones_and_the_registry(app: &TestApp) {
    let hex = counter_resident(app, "+8613800138001").await;
    let new_phone = "+8613800138077";
    app.registry.know(
        "张三丰",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        new_phone,
    );
    let old_code = app.otp("+8613800138001").await;
    let new_code = app.otp(new_phone).await;
    // The right codes with another name: refused, nothing changed.
    let mut wrong_name = self_change(&old_code, new_phone, &new_code);
    wrong_name["name"] = "李鬼".into();
    app.registry.know(
        "李鬼",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        new_phone,
    );
    let (st, _) = app
        .call("POST", "/api/v1/phone-changes", None, Some(wrong_name))
        .await;
    assert_eq!(st, 403);
    assert_eq!(phone_on_record(app, &hex).await, "+8613800138001");
    // That attempt used up both codes, and a phone gets one code a minute: the change that
    // succeeds is a second holder's.
    let other_old = "+8613800138078";
    let other_new = "+8613800138079";
    let officer = app.officer().await.token.clone();
    let (st, made) = counter_register(
        app,
        &officer,
        json!({"kind": "resident", "name": "王五", "resident_id": resident_id("11010119800101001"), "phone": other_old}),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let other = made["holder"].as_str().unwrap().to_owned();
    app.after_resend_interval().await;
    app.registry.know(
        "王五",
        DocumentJson::ResidentId {
            number: resident_id("11010119800101001"),
        },
        other_new,
    );
    let old_code = app.otp(other_old).await;
    let new_code = app.otp(other_new).await;
    let done = app
        .post(
            "/api/v1/phone-changes",
            None,
            json!({"old_phone": other_old, "old_challenge": old_code.challenge, "old_otp": old_code.code,
                "new_phone": other_new, "new_challenge": new_code.challenge, "new_otp": new_code.code,
                "name": "王五", "resident_id": resident_id("11010119800101001")}),
        )
        .await;
    assert_eq!(done["phone"], "+86*******8079");
    // The same request again (its codes used): refused.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/phone-changes",
            None,
            Some(
                json!({"old_phone": other_old, "old_challenge": old_code.challenge, "old_otp": old_code.code,
                "new_phone": other_new, "new_challenge": new_code.challenge, "new_otp": new_code.code,
                "name": "王五", "resident_id": resident_id("11010119800101001")}),
            ),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (401, "urn:healthcode:problem:one-time-code"),
        "{p}"
    );
    assert_eq!(phone_on_record(app, &other).await, other_new);
    assert!(
        app.gateway
            .texts_to(other_old)
            .iter()
            .any(|t| t.contains("has moved"))
    );
    assert!(
        app.gateway
            .texts_to(other_new)
            .iter()
            .any(|t| t.contains("now holds your health code"))
    );
    // The audit log shows the change, by the holder, and the holder's access log includes it.
    let log = app.audit_log().await;
    let entry = log
        .iter()
        .find(|e| e["action"] == "phone-change")
        .expect("no phone change in the audit log");
    assert_eq!(entry["actor"], format!("holder:{other}"));
    assert_eq!(entry["subject"], other.as_str());
}

async fn a_strangers_guesses_at_a_phone_change_leave_the_owners_code(app: &TestApp) {
    let hex = counter_resident(app, "+8613800138001").await;
    let new_phone = "+8613800138088";
    app.registry.know(
        "张三丰",
        DocumentJson::ResidentId {
            number: resident_id_of_the_resident(),
        },
        new_phone,
    );
    // The owner asks for codes for both phones from their own address.
    let old_code = {
        let (st, sent) = app
            .call_from(
                "10.1.0.1",
                "POST",
                "/api/v1/otp",
                json!({"phone": "+8613800138001"}),
            )
            .await;
        assert_eq!(st, 202, "{sent}");
        Otp {
            challenge: sent["challenge"].as_str().unwrap().to_owned(),
            code: app.gateway.code_for("+8613800138001"),
        }
    };
    let new_code = {
        let (st, sent) = app
            .call_from("10.1.0.1", "POST", "/api/v1/otp", json!({"phone": new_phone}))
            .await;
        assert_eq!(st, 202, "{sent}");
        Otp {
            challenge: sent["challenge"].as_str().unwrap().to_owned(),
            code: app.gateway.code_for(new_phone),
        }
    };
    // A stranger, from another address and under a challenge of its own, guesses the old phone's
    // code at /phone-changes (once even the right code): the same refusal every time, then 429.
    let mut answers = Vec::new();
    for i in 0..70u32 {
        let code = if i == 7 {
            old_code.code.clone()
        } else {
            format!("{:06}", i * 3331 % 1_000_000)
        };
        let stranger = Otp {
            challenge: "otc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            code,
        };
        let body = self_change(&stranger, new_phone, &new_code);
        answers.push(
            app.call_from("10.2.0.9", "POST", "/api/v1/phone-changes", body)
                .await,
        );
    }
    let refused = answers.iter().take_while(|(st, _)| *st == 401).count();
    assert_eq!(refused, 60, "{:?}", &answers[..3]);
    let details: std::collections::BTreeSet<&str> = answers[..refused]
        .iter()
        .map(|(_, p)| p["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(answers[refused..].iter().all(|(st, _)| *st == 429));
    assert_eq!(phone_on_record(app, &hex).await, "+8613800138001");
    // The owner's old-phone code kept every guess: a wrong one says four are left (and leaves the
    // new phone's code untouched), then both right codes move the holder.
    let wrong = Otp {
        challenge: old_code.challenge.clone(),
        code: if old_code.code == "000000" {
            "111111"
        } else {
            "000000"
        }
        .into(),
    };
    let (st, p) = app
        .call_from(
            "10.1.0.1",
            "POST",
            "/api/v1/phone-changes",
            self_change(&wrong, new_phone, &new_code),
        )
        .await;
    assert_eq!(st, 401, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("4 attempts left"), "{p}");
    let (st, p) = app
        .call_from(
            "10.1.0.1",
            "POST",
            "/api/v1/phone-changes",
            self_change(&old_code, new_phone, &new_code),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(phone_on_record(app, &hex).await, new_phone);
}

async fn the_counter_binds_only_a_phone_the_person_holds_and_records_refusals(app: &TestApp) {
    let officer = app.officer().await.clone();
    let id = resident_id("11010519491231061");
    let person = json!({"kind": "resident", "name": "冯十二", "resident_id": id, "phone": "+8613300133061"});
    app.registry.know_registration(&person);
    // The officer mistypes the phone: the code goes to a stranger's phone, so the person in front
    // of them has none to read out, and a guess (or the right code under another challenge) binds
    // nothing.
    let mut typo = person.clone();
    typo["phone"] = "+8613300133016".into();
    let sent = app.otp("+8613300133016").await;
    for (challenge, code) in [
        (sent.challenge.clone(), "123456".to_owned()),
        (
            "otc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            sent.code.clone(),
        ),
    ] {
        let (st, p) = app
            .call(
                "POST",
                "/api/v1/admin/counter/holders",
                Some(&officer.token),
                Some(
                    json!({"person": typo, "checked": {"document_seen": true, "number_checked": true},
                    "challenge": challenge, "otp": code}),
                ),
            )
            .await;
        assert_eq!(
            (st.as_u16(), problem_type(&p)),
            (401, "urn:healthcode:problem:one-time-code"),
            "{p}"
        );
    }
    let (st, _) = lab_search(app, "冯十二", &id).await;
    assert_eq!(st, 404);
    assert!(
        app.gateway
            .texts_to("+8613300133016")
            .iter()
            .all(|t| t.starts_with("one-time code"))
    );
    // A person the registry does not confirm (a SIM registered to someone else): refused, said
    // plainly, and recorded.
    let stranger =
        json!({"kind": "resident", "name": "冯十二", "resident_id": id, "phone": "+8613300133062"});
    let otp = app.otp("+8613300133062").await;
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/counter/holders",
            Some(&officer.token),
            Some(
                json!({"person": stranger, "checked": {"document_seen": true, "number_checked": true},
                "challenge": otp.challenge, "otp": otp.code}),
            ),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("does not confirm"), "{p}");
    let (st, _) = lab_search(app, "冯十二", &id).await;
    assert_eq!(st, 404);
    let refused = |log: &[Value]| {
        log.iter()
            .filter(|e| e["action"] == "counter-refused" && e["actor"] == officer.actor.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    let log = app.audit_log().await;
    assert_eq!(refused(&log).len(), 1, "{log:?}");
    assert!(refused(&log)[0]["purpose"].as_str().unwrap().contains("registry"));
    // A document that is registered already, and a phone that is: refused, and each recorded
    // against the holder it named, who sees it in their access log.
    let owner = app.register_resident().await;
    let (st, _) = counter_register(
        app,
        &officer.token,
        json!({"kind": "resident", "name": "张三丰", "resident_id": resident_id_of_the_resident(), "phone": "+8613300133063"}),
    )
    .await;
    assert_eq!(st, 409);
    app.after_resend_interval().await;
    let (st, _) = counter_register(
        app,
        &officer.token,
        json!({"kind": "resident", "name": "冯十二", "resident_id": id, "phone": "+8613800138001"}),
    )
    .await;
    assert_eq!(st, 409);
    let log = app.audit_log().await;
    let about_owner: Vec<Value> = refused(&log)
        .into_iter()
        .filter(|e| e["subject"] == owner.hex.as_str())
        .collect();
    assert_eq!(about_owner.len(), 2, "{log:?}");
    assert!(log.iter().all(|e| e["action"] != "counter-register"), "{log:?}");
    let access = access_actions(app, &owner).await;
    assert_eq!(
        access.iter().filter(|e| e["action"] == "counter-refused").count(),
        2,
        "{access:?}"
    );
    // The person, with their own phone and its code: registered.
    let (st, made) = counter_register(app, &officer.token, person).await;
    assert_eq!(st, 201, "{made}");
}

async fn every_holder_search_is_checked_first_and_audited_found_or_not(app: &TestApp) {
    let owner = app.register_resident().await;
    let officer = app.officer().await.clone();
    let search =
        |name: &str, id: &str, purpose: Value| json!({"name": name, "resident_id": id, "purpose": purpose});
    let lab = json!({"purpose": "lab-result", "reference": "LAB-2026-1130-02"});
    app.post(
        "/api/v1/admin/lab-reports",
        Some(&app.second_officer().await.token),
        json!({"reference": "LAB-2026-1130-02", "lab": "Zhejiang CDC", "resident_id": resident_id_of_the_resident()}),
    )
    .await;
    // A purpose that cannot hold for anyone is refused before anyone is looked up: the same 422
    // for a registered document and an unknown one, and nothing to record.
    let before = app.audit_log().await.len();
    for id in [resident_id_of_the_resident(), resident_id("44030119851212345")] {
        for purpose in [
            json!({"purpose": "case-investigation", "case": 999_999}),
            json!({"purpose": "lab-result", "reference": " "}),
        ] {
            let (st, p) = app
                .call(
                    "POST",
                    "/api/v1/admin/holders/search",
                    Some(&officer.token),
                    Some(search("张三丰", &id, purpose)),
                )
                .await;
            assert_eq!(
                (st.as_u16(), problem_type(&p)),
                (422, "urn:healthcode:problem:invalid-field"),
                "{p}"
            );
        }
    }
    assert_eq!(app.audit_entries_after(before).await, Vec::<Value>::new());
    // A miss (no holder has the number), a miss (the holder has another name) and a hit: each
    // recorded with the officer and the purpose.
    for (name, id) in [
        ("张三丰", resident_id("44030119851212345")),
        ("李鬼", resident_id_of_the_resident()),
    ] {
        let (st, _) = app
            .call(
                "POST",
                "/api/v1/admin/holders/search",
                Some(&officer.token),
                Some(search(name, &id, lab.clone())),
            )
            .await;
        assert_eq!(st, 404);
    }
    let (st, found) = app
        .call(
            "POST",
            "/api/v1/admin/holders/search",
            Some(&officer.token),
            Some(search("张三丰", &resident_id_of_the_resident(), lab.clone())),
        )
        .await;
    assert_eq!(st, 200, "{found}");
    let new = app.audit_entries_after(before).await;
    let searches: Vec<&Value> = new.iter().filter(|e| e["action"] == "holder-search").collect();
    assert_eq!(searches.len(), 3, "{new:?}");
    assert!(searches.iter().all(|e| e["actor"] == officer.actor.as_str()));
    assert!(
        searches
            .iter()
            .all(|e| e["purpose"].as_str().unwrap().contains("LAB-2026-1130-02"))
    );
    assert_eq!(searches[0]["subject"], Value::Null);
    assert_eq!(searches[1]["subject"], owner.hex.as_str());
    assert!(searches[1]["purpose"].as_str().unwrap().contains("another name"));
    assert_eq!(searches[2]["subject"], owner.hex.as_str());
    // The holder sees both: the hit and the search of their number under another name.
    let access = access_actions(app, &owner).await;
    assert_eq!(
        access.iter().filter(|e| e["action"] == "holder-search").count(),
        2,
        "{access:?}"
    );
}

async fn a_printed_code_needs_the_name_with_the_document(app: &TestApp) {
    let owner = app.register_resident().await;
    let officer = app.officer().await.token.clone();
    let consent = app
        .post(
            "/api/v1/me/consents",
            Some(&owner.token),
            json!({"scope": "printed-code", "days": 1}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let before = app.audit_log().await.len();
    let print = |name: &str, id: &str| json!({"name": name, "resident_id": id, "consent": consent});
    // The number alone is not enough: a name is required, and another name is the same 404 as an
    // unknown number.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer),
            Some(json!({"resident_id": resident_id_of_the_resident(), "consent": consent})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (400, "urn:healthcode:problem:bad-request"),
        "{p}"
    );
    let (st, other) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer),
            Some(print("李鬼", &resident_id_of_the_resident())),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&other)),
        (404, "urn:healthcode:problem:not-found"),
        "{other}"
    );
    let (st, unknown) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer),
            Some(print("张三丰", &resident_id("44030119851212345"))),
        )
        .await;
    assert_eq!(st, 404);
    assert_eq!(unknown["detail"], other["detail"]);
    // Both misses are recorded: the other name against the number's holder, the unknown number
    // without a subject.
    let misses: Vec<Value> = app
        .audit_entries_after(before)
        .await
        .into_iter()
        .filter(|e| e["action"] == "holder-search")
        .collect();
    assert_eq!(misses.len(), 2, "{misses:?}");
    assert_eq!(misses[0]["subject"], owner.hex.as_str());
    assert_eq!(misses[1]["subject"], Value::Null);
    assert!(misses.iter().all(|e| {
        e["purpose"]
            .as_str()
            .unwrap()
            .contains(&format!("consent {consent}"))
    }));
    // A consent that names no record is refused before the lookup, for any number.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer),
            Some(
                json!({"name": "李鬼", "resident_id": resident_id("44030119851212345"), "consent": 987_654}),
            ),
        )
        .await;
    assert_eq!(st, 422);
    // With the registered name (compared as the search compares it): the code.
    let (st, code) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer),
            Some(print(" 张三丰 ", &resident_id_of_the_resident())),
        )
        .await;
    assert_eq!(st, 201, "{code}");
    assert!(code["token"].as_str().unwrap().starts_with("HC1:"), "{code}");
}

common::on_both_backends!(
    a_red_holder_with_a_spare_sim_and_an_invented_id_is_refused,
    a_squatted_id_is_refused_without_saying_why_and_its_owner_is_told,
    the_owner_registering_again_gets_the_same_refusal,
    a_registry_that_is_down_garbled_or_slow_is_a_503_not_a_pass,
    a_holder_cannot_use_the_counter,
    a_holder_registered_at_the_counter_signs_in_with_the_phone,
    a_phone_change_at_the_counter_ends_old_sessions_and_tells_both_phones,
    a_phone_change_without_the_old_phone_is_refused,
    a_phone_change_by_the_holder_with_both_phones_and_the_registry,
    a_strangers_guesses_at_a_phone_change_leave_the_owners_code,
    the_counter_binds_only_a_phone_the_person_holds_and_records_refusals,
    every_holder_search_is_checked_first_and_audited_found_or_not,
    a_printed_code_needs_the_name_with_the_document,
);

/// Without a registry, self-registration is closed and says where to go; the counter works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registry_holders_register_at_the_counter() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(mut app) = TestApp::spawn_with(backend, Identity::None).await else {
            continue;
        };
        let phone = "+8613200132001";
        let id = resident_id("11010519491231041");
        let code = app.otp(phone).await;
        let mut body = resident("吴十", &id, phone);
        code.fill(&mut body);
        let (st, p) = app.call("POST", "/api/v1/holders", None, Some(body)).await;
        assert_eq!(
            (st.as_u16(), problem_type(&p)),
            (403, "urn:healthcode:problem:forbidden")
        );
        assert!(p["detail"].as_str().unwrap().contains("service counter"), "{p}");
        let page = app
            .client
            .get(app.url("/register"))
            .header("accept-language", "en")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Register at a service counter"), "{page}");
        assert!(
            !page.contains("id=\"register\""),
            "the form is shown while registration is closed"
        );
        // The phone change without an officer is closed too.
        let (st, _) = app
            .call(
                "POST",
                "/api/v1/phone-changes",
                None,
                Some(
                    json!({"old_phone": phone, "old_challenge": code.challenge, "old_otp": code.code,
                    "new_phone": "+8613200132002", "new_challenge": "otc_none", "new_otp": "000000",
                    "name": "吴十", "resident_id": id}),
                ),
            )
            .await;
        assert_eq!(st, 403);
        // An officer registers the person at the counter with the code the phone received (the
        // registry is not asked: there is none); the holder then signs in with a new code.
        let officer = app.officer().await.token.clone();
        let (st, made) = app
            .call(
                "POST",
                "/api/v1/admin/counter/holders",
                Some(&officer),
                Some(
                    json!({"person": {"kind": "resident", "name": "吴十", "resident_id": id, "phone": phone},
                    "checked": {"document_seen": true, "number_checked": true},
                    "challenge": code.challenge, "otp": code.code}),
                ),
            )
            .await;
        assert_eq!(st, 201, "{made}");
        app.after_resend_interval().await;
        let code = app.otp(phone).await;
        let (st, v) = app
            .call(
                "POST",
                "/api/v1/sessions",
                None,
                Some(json!({"phone": phone, "challenge": code.challenge, "otp": code.code})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        app.stop().await;
    }
}

/// The demo adapter confirms exactly the people its file lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_registry_confirms_what_its_file_lists() {
    let mut app = TestApp::spawn_with(Backend::Sqlite, Identity::Demo)
        .await
        .unwrap();
    let file = app.config.identity.file.clone().unwrap();
    let id = resident_id("11010519491231051");
    let records = healthcode_server::identity::DemoRecords {
        people: vec![healthcode_server::identity::DemoPerson {
            name: "郑十一".into(),
            document: DocumentJson::ResidentId { number: id.clone() },
            phone: "+8613100131001".into(),
        }],
    };
    records.write(&file).unwrap();
    let (st, p) = try_register(&app, resident("郑十一", &id, "+8613100131002")).await;
    assert_eq!(st, 403, "{p}");
    let (st, p) = try_register(&app, resident("郑十", &id, "+8613100131003")).await;
    assert_eq!(st, 403, "{p}");
    let (st, v) = try_register(&app, resident("郑十一", &id, "+8613100131001")).await;
    assert_eq!(st, 201, "{v}");
    // A file that cannot be read is no answer: 503.
    std::fs::write(&file, "not json").unwrap();
    let (st, _) = try_register(
        &app,
        resident("郑十二", &resident_id("11010519491231061"), "+8613100131004"),
    )
    .await;
    assert_eq!(st, 503);
    app.stop().await;
}

/// A staff actor (`officer:<id>:<username>`) as a holder's access log names it: `staff:<id>`,
/// without the username.
fn as_holders_see(actor: &str) -> String {
    format!("staff:{}", actor.split(':').nth(1).unwrap())
}
