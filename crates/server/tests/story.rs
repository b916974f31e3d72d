//! What holders, venues, officers and auditors notice, over HTTP, each test on a server of its own
//! on SQLite and on PostgreSQL: registration with one-time codes sent through the HTTP SMS adapter,
//! codes, scans, cases and tests, a two-officer override, the holder's access log and export, the
//! audit chain, and bad input answered with problem+json and no change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, forged, problem_type, resident_id, resident_id_of_the_resident, rfc3339};
use healthcode_server::now;
use serde_json::{Value, json};

common::on_both_backends!(
    a_holder_registers_with_a_one_time_code_and_sees_a_green_code,
    a_green_code_is_admitted_and_a_retried_scan_is_stored_once,
    a_confirmed_case_turns_the_code_red_and_a_green_only_venue_turns_it_away,
    a_holder_sees_who_read_their_data,
    a_read_for_a_purpose_that_does_not_hold_is_refused_and_leaves_no_record,
    an_override_needs_a_second_officer,
    a_holder_exports_everything_kept_about_them,
    a_declared_symptom_shows_in_the_code_at_once,
    an_appeal_is_decided_by_another_officer_and_the_holder_sees_the_answer,
    a_refused_registration_creates_no_holder_and_keeps_the_code,
    five_wrong_one_time_codes_use_up_the_code_and_a_new_one_must_wait,
    bad_input_is_refused_and_changes_nothing,
    each_role_reaches_only_its_own_endpoints,
    the_audit_chain_verifies,
    scans_are_counted_in_the_metrics,
    signing_out_ends_the_session,
);

async fn a_holder_registers_with_a_one_time_code_and_sees_a_green_code(app: &TestApp) {
    // A resident and a visitor (international version) each register with the code sent to
    // their phone.
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    // Both fetch green codes; the token verifies offline against the published trust list.
    let root = std::fs::read_to_string(app.config.data_dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let list = app.get("/api/v1/trust-list", None).await;
    let verifier = healthcode_token::Verifier::new(
        healthcode_token::TrustList::from_text(list.as_str().unwrap(), &root).unwrap(),
    );
    for (who, hint) in [(&resident, "张**"), (&visitor, "A*** E.")] {
        let c = app.code(who).await;
        assert_eq!(c["colour"], "green");
        assert_eq!(c["name_hint"], hint);
        let v = verifier.verify_text(c["token"].as_str().unwrap(), now()).unwrap();
        assert_eq!(v.colour(), healthcode_token::Colour::Green);
    }
    let svg = app
        .client
        .get(app.url("/api/v1/me/code.svg"))
        .bearer_auth(&resident.token)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<?xml"));
}

async fn a_green_code_is_admitted_and_a_retried_scan_is_stored_once(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let (mall, office, clinic) = (app.mall().await, app.office().await, app.clinic().await);
    let resident_token = app.token(&resident).await;
    let visitor_token = app.token(&visitor).await;
    // The mall's device scans the resident, the office's the visitor: admitted and recorded.
    for (seq, venue, token) in [(0, &mall, &resident_token), (1, &office, &visitor_token)] {
        let r = app.scan(venue, token, seq).await;
        assert_eq!(r["decision"], "admit", "{r}");
        assert_eq!(r["recorded"], true);
        assert!(
            r.get("holder").is_none() && r.get("name").is_none(),
            "a device learns no more: {r}"
        );
    }
    // A retry of the same seq.
    app.scan(&mall, &resident_token, 0).await;
    // An offline queue from the clinic, uploaded later with its original times (here: moments
    // ago; the code must have been valid then).
    let earlier = now() - time::Duration::seconds(2);
    let b = app
        .upload(&clinic, &[(&resident_token, 1), ("HC1:NOTACODE", 2)], earlier)
        .await;
    assert_eq!(
        (b["recorded"].as_u64(), b["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    // The retry was stored once: the resident has the mall and the clinic, the visitor the office.
    let ex = app.export(&resident).await;
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 2, "{ex}");
    let ex = app.export(&visitor).await;
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 1, "{ex}");
}

async fn a_confirmed_case_turns_the_code_red_and_a_green_only_venue_turns_it_away(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let (mall, office) = (app.mall().await, app.office().await);
    // The resident at the mall, the visitor at an office: they never meet, so the resident's case
    // makes no contact of the visitor, whatever the clock.
    app.scan(&mall, &app.token(&resident).await, 0).await;
    app.scan(&office, &app.token(&visitor).await, 1).await;
    // An officer records a positive test and a confirmed case for the resident.
    let officer = app.officer().await;
    let case_id = app.confirm_case(officer, &resident).await;
    // Tracing ran in the background; running it again adds nothing, and finds no contact (the
    // resident met no one).
    let tr = app
        .ok(
            "POST",
            &format!("/api/v1/admin/cases/{case_id}/trace"),
            Some(&officer.token),
            None,
        )
        .await;
    assert_eq!(
        (tr["cases"].as_u64(), tr["new_exposures"].as_u64()),
        (Some(1), Some(0)),
        "{tr}"
    );
    let ex = app
        .get(
            &format!("/api/v1/admin/cases/{case_id}/exposures"),
            Some(&officer.token),
        )
        .await;
    assert_eq!(ex.as_array().unwrap().len(), 0, "{ex}");
    let c = app.code(&resident).await;
    assert_eq!(c["colour"], "red", "{c}");
    let rules: Vec<&str> = c["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"confirmed-case") && rules.contains(&"positive-test"),
        "{rules:?}"
    );
    assert!(c["green_at"].is_string());
    // A red code is turned away at the mall, and not recorded.
    let r = app.scan(&mall, c["token"].as_str().unwrap(), 10).await;
    assert_eq!(
        (r["decision"].as_str(), r["recorded"].as_bool()),
        (Some("deny"), Some(false)),
        "{r}"
    );
}

async fn a_holder_sees_who_read_their_data(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await;
    let case_id = app.confirm_case(app.second_officer().await, &resident).await;
    // The officer reads the resident's record for the case: the holder sees it in the access log.
    let rec = app.read_for_case(officer, &resident, case_id).await;
    assert_eq!(rec["personal_data"]["name"], "张三丰");
    let log = app.get("/api/v1/me/access-log", Some(&resident.token)).await;
    let reads: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "read-personal-data")
        .collect();
    assert_eq!(reads.len(), 1, "{log}");
    // The role and a stable staff id; never the officer's username.
    assert_eq!(reads[0]["actor"], format!("staff:{}", officer.id), "{log}");
    assert_eq!(reads[0]["role"], "officer");
    assert!(!log.to_string().contains(&officer.username), "{log}");
    assert_eq!(
        reads[0]["purpose"],
        format!("case investigation (case {case_id})")
    );
}

async fn a_read_for_a_purpose_that_does_not_hold_is_refused_and_leaves_no_record(app: &TestApp) {
    let visitor = app.register_visitor().await;
    let officer = app.officer().await;
    let (st, p) = app
        .call(
            "POST",
            &format!("/api/v1/admin/holders/{}/read", visitor.hex),
            Some(&officer.token),
            Some(json!({"purpose": {"purpose": "case-investigation", "case": 999_999}})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field")
    );
    let vlog = app.get("/api/v1/me/access-log", Some(&visitor.token)).await;
    assert!(
        vlog.as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "read-personal-data"),
        "{vlog}"
    );
}

async fn an_override_needs_a_second_officer(app: &TestApp) {
    let visitor = app.register_visitor().await;
    let officer_a = &app.officer().await.token;
    let officer_b = &app.second_officer().await.token;
    let until = rfc3339(now() + time::Duration::days(3));
    let o = app
        .post(
            "/api/v1/admin/overrides",
            Some(officer_a),
            json!({"holder": visitor.hex, "colour": "yellow", "reason": "shared a taxi with a case", "expires_at": until}),
        )
        .await;
    let oid = o["id"].as_i64().unwrap();
    assert_eq!(app.code(&visitor).await["colour"], "green");
    // The proposer cannot approve it.
    let (st, p) = app
        .call(
            "POST",
            &format!("/api/v1/admin/overrides/{oid}/approve"),
            Some(officer_a),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (409, "urn:healthcode:problem:refused"),
        "{p}"
    );
    assert_eq!(app.code(&visitor).await["colour"], "green");
    app.ok(
        "POST",
        &format!("/api/v1/admin/overrides/{oid}/approve"),
        Some(officer_b),
        None,
    )
    .await;
    let c = app.code(&visitor).await;
    assert_eq!(c["colour"], "yellow");
    assert_eq!(c["reasons"][0]["rule"], "override");
    assert_eq!(c["reasons"][0]["description"], "shared a taxi with a case");
}

async fn a_holder_exports_everything_kept_about_them(app: &TestApp) {
    let resident = app.register_resident().await;
    let (mall, clinic) = (app.mall().await, app.clinic().await);
    let token = app.token(&resident).await;
    app.scan(&mall, &token, 0).await;
    app.scan(&clinic, &token, 1).await;
    let officer = app.officer().await;
    let case_id = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(officer, &resident, case_id).await;
    let log = app.get("/api/v1/me/access-log", Some(&resident.token)).await;
    // Personal data, check-ins, facts, the access log.
    let ex = app.export(&resident).await;
    assert_eq!(ex["personal_data"]["resident_id"], resident_id_of_the_resident());
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 2, "{ex}");
    assert_eq!(ex["facts"]["cases"].as_array().unwrap().len(), 1);
    assert_eq!(
        ex["access_log"].as_array().unwrap().len(),
        log.as_array().unwrap().len()
    );
}

async fn a_declared_symptom_shows_in_the_code_at_once(app: &TestApp) {
    let visitor = app.register_visitor().await;
    let d = app
        .post(
            "/api/v1/me/declarations",
            Some(&visitor.token),
            json!({"kind": "health", "symptoms": ["cough"], "temperature_c": 37.9}),
        )
        .await;
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "symptoms"),
        "{d}"
    );
    app.post("/api/v1/me/reports", Some(&visitor.token), json!({"well": true}))
        .await;
}

async fn an_appeal_is_decided_by_another_officer_and_the_holder_sees_the_answer(app: &TestApp) {
    let visitor = app.register_visitor().await;
    let officer_b = &app.second_officer().await.token;
    let a = app
        .post(
            "/api/v1/me/appeals",
            Some(&visitor.token),
            json!({"text": "I was not in that taxi."}),
        )
        .await;
    let open = app.get("/api/v1/admin/appeals?open=true", Some(officer_b)).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    app.post(
        &format!("/api/v1/admin/appeals/{}/decision", a["id"]),
        Some(officer_b),
        json!({"upheld": false, "note": "The taxi company's records place you there."}),
    )
    .await;
    let mine = app.get("/api/v1/me/appeals", Some(&visitor.token)).await;
    assert_eq!(mine[0]["state"], "rejected");
}

async fn a_refused_registration_creates_no_holder_and_keeps_the_code(app: &TestApp) {
    let before = app.audit_log().await.len();
    // An invalid ID number (wrong check character).
    let phone = "+8613800138099";
    let otp = app.otp(phone).await;
    let mut bad = resident_id("11010519491231002");
    bad.replace_range(17..18, if bad.ends_with('0') { "1" } else { "0" });
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/holders",
            None,
            Some(
                json!({"kind": "resident", "name": "李四", "resident_id": bad, "phone": phone,
                    "challenge": otp.challenge, "otp": otp.code}),
            ),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    // The code was not used up by the refused registration, and no holder exists for the phone.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"phone": phone, "challenge": otp.challenge, "otp": otp.code})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (404, "urn:healthcode:problem:not-found"),
        "{p}"
    );
    let new = app.audit_entries_after(before).await;
    assert!(new.is_empty(), "{new:?}");
}

async fn five_wrong_one_time_codes_use_up_the_code_and_a_new_one_must_wait(app: &TestApp) {
    let before = app.audit_log().await.len();
    // A wrong one-time code six times: five guesses, then none; the right code no longer works.
    let phone = "+8613800138077";
    let right = app.otp(phone).await;
    let wrong = if right.code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let reg = |otp: &str| {
        json!({"kind": "resident", "name": "王五", "resident_id": resident_id("11010119800101001"),
        "phone": phone, "challenge": right.challenge, "otp": otp})
    };
    for left in (0..5).rev() {
        let (st, p) = app.call("POST", "/api/v1/holders", None, Some(reg(wrong))).await;
        assert_eq!(
            (st.as_u16(), problem_type(&p)),
            (401, "urn:healthcode:problem:one-time-code")
        );
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} attempts left")),
            "{p}"
        );
    }
    let (st, p) = app.call("POST", "/api/v1/holders", None, Some(reg(wrong))).await;
    assert_eq!(st, 401);
    assert!(p["detail"].as_str().unwrap().contains("too many"), "{p}");
    let (st, _) = app
        .call("POST", "/api/v1/holders", None, Some(reg(&right.code)))
        .await;
    assert_eq!(st, 401, "the right code after five wrong guesses must fail");
    // A second code to the same phone at once is rate-limited.
    let (st, p) = app
        .call("POST", "/api/v1/otp", None, Some(json!({"phone": phone})))
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (429, "urn:healthcode:problem:rate-limited")
    );
    let new = app.audit_entries_after(before).await;
    assert!(new.is_empty(), "{new:?}");
}

async fn bad_input_is_refused_and_changes_nothing(app: &TestApp) {
    // The visitor has one check-in (at the office) and one appeal.
    let visitor = app.register_visitor().await;
    let (mall, office, clinic) = (app.mall().await, app.office().await, app.clinic().await);
    let token = app.token(&visitor).await;
    app.scan(&office, &token, 1).await;
    app.post(
        "/api/v1/me/appeals",
        Some(&visitor.token),
        json!({"text": "I was not in that taxi."}),
    )
    .await;
    let before = app.audit_log().await.len();

    // A forged token (one character changed) and an expired one.
    let (st, p) = app.try_scan(&mall.key, mall.id, &forged(&token), 20).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-token"),
        "{p}"
    );
    let expired = app.expired_token(&visitor);
    let (st, p) = app.try_scan(&mall.key, mall.id, &expired, 21).await;
    // (The test's key is seconds old, so the verifier names the key's start before the expiry.)
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-token"),
        "{p}"
    );
    // A device key from another venue.
    let (st, p) = app.try_scan(&clinic.key, mall.id, &token, 22).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    // An oversized body, a wrong content type, malformed JSON.
    let big = "x".repeat(2 << 20);
    // A client of its own for each refused body: the server answers without reading the body
    // and may close that connection, which must not be handed to the requests after it.
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/me/appeals"))
        .bearer_auth(&visitor.token)
        .header("content-type", "application/json")
        .body(format!("{{\"text\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/me/appeals"))
        .bearer_auth(&visitor.token)
        .header("content-type", "text/plain")
        .body("{\"text\": \"hello there\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(app.url("/api/v1/me/appeals"))
        .bearer_auth(&visitor.token)
        .header("content-type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(problem_type(&p), "urn:healthcode:problem:bad-request");

    // Nothing of that changed the store: no new appeal, no new check-in, no new audit record but
    // the holder's own export and the auditor's reads.
    assert_eq!(
        app.get("/api/v1/me/appeals", Some(&visitor.token))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ex = app.export(&visitor).await;
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 1, "{ex}");
    let new = app.audit_entries_after(before).await;
    assert!(
        new.iter()
            .all(|e| e["action"] == "read-personal-data" || e["action"] == "register"),
        "{new:?}"
    );
    assert!(new.iter().all(|e| e["subject"] == visitor.hex), "{new:?}");
}

async fn each_role_reaches_only_its_own_endpoints(app: &TestApp) {
    // A holder session on an officer endpoint, an officer on the auditors' log, no session at all.
    let resident = app.register_resident().await;
    let officer = app.officer().await;
    let (st, p) = app
        .call("GET", "/api/v1/admin/venues", Some(&resident.token), None)
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden")
    );
    let (st, _) = app
        .call("GET", "/api/v1/admin/audit", Some(&officer.token), None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = app.call("GET", "/api/v1/me/code", None, None).await;
    assert_eq!(st, 401);
}

async fn the_audit_chain_verifies(app: &TestApp) {
    // A morning's work: staff accounts, a holder, a case, a read of the record.
    let resident = app.register_resident().await;
    let officer = app.officer().await;
    let case_id = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(officer, &resident, case_id).await;
    let auditor = &app.auditor().await.token;
    let v = app.get("/api/v1/admin/audit/verify", Some(auditor)).await;
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["records"].as_u64().unwrap() > 10, "{v}");
}

async fn scans_are_counted_in_the_metrics(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let (mall, office, clinic) = (app.mall().await, app.office().await, app.clinic().await);
    let resident_token = app.token(&resident).await;
    let visitor_token = app.token(&visitor).await;
    // Four admitted green codes: two scans, a retry, and one good scan of an offline batch ...
    app.scan(&mall, &resident_token, 0).await;
    app.scan(&office, &visitor_token, 1).await;
    app.scan(&mall, &resident_token, 0).await;
    let earlier = now() - time::Duration::seconds(2);
    app.upload(&clinic, &[(&resident_token, 1), ("HC1:NOTACODE", 2)], earlier)
        .await;
    // ... and three invalid ones: the batch's other, a forged code and an expired one.
    for (token, seq) in [(forged(&visitor_token), 20), (app.expired_token(&visitor), 21)] {
        let (st, p) = app.try_scan(&mall.key, mall.id, &token, seq).await;
        assert_eq!(st, 422, "{p}");
    }
    let m = app.metrics().await;
    assert!(
        m.contains("healthcode_scans_total{decision=\"admit\",colour=\"green\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("healthcode_scans_total{decision=\"invalid\",colour=\"none\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("healthcode_http_request_duration_seconds_bucket"),
        "{m}"
    );
}

async fn signing_out_ends_the_session(app: &TestApp) {
    let resident = app.register_resident().await;
    app.code(&resident).await;
    app.ok("DELETE", "/api/v1/sessions/current", Some(&resident.token), None)
        .await;
    let (st, _) = app
        .call("GET", "/api/v1/me/code", Some(&resident.token), None)
        .await;
    assert_eq!(st, 401);
}
