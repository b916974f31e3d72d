//! Purposes bound to records and what the holder is told, on both stores: an insider's read
//! citing an unrelated case or a free-text consent is refused and recorded; a case reaches its
//! holder and exposed contacts; a lab report reaches the person it names; consents are given in
//! the app, by a code read out or in person, used, revoked and expire; the holder sees every
//! colour change, read and consent use at once, and gets one text a day of the reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Holder, TestApp, problem_type, resident_id_of_the_resident};
use healthcode_server::now;
use serde_json::{Value, json};

/// An officer's read of a holder's record for a purpose: the status and the body.
async fn read(app: &TestApp, officer: &str, holder: &Holder, purpose: Value) -> (u16, Value) {
    let (st, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/holders/{}/read", holder.hex),
            Some(officer),
            Some(json!({ "purpose": purpose })),
        )
        .await;
    (st.as_u16(), v)
}

/// The holder gives a consent in the app; its id.
async fn give(app: &TestApp, holder: &Holder, scope: &str, days: u16) -> i64 {
    let v = app
        .post(
            "/api/v1/me/consents",
            Some(&holder.token),
            json!({"scope": scope, "days": days}),
        )
        .await;
    assert_eq!(v["given"], "app", "{v}");
    assert_eq!(v["state"], "active", "{v}");
    v["id"].as_i64().unwrap()
}

fn proxy(consent: i64) -> Value {
    json!({"purpose": "proxy-with-consent", "consent": consent})
}

async fn told(app: &TestApp, holder: &Holder) -> Vec<Value> {
    app.get("/api/v1/me/notifications", Some(&holder.token))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The actions the holder is told of, with their kind.
async fn told_actions(app: &TestApp, holder: &Holder) -> Vec<(String, String)> {
    told(app, holder)
        .await
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Reads of personal data in the audit log against a holder.
async fn reads_of(app: &TestApp, holder: &Holder) -> usize {
    app.audit_log()
        .await
        .iter()
        .filter(|e| e["action"] == "read-personal-data" && e["subject"] == holder.hex.as_str())
        .count()
}

// ---- The insider's attacks, replayed ----

async fn a_case_that_does_not_reach_the_holder_opens_nothing_and_is_recorded(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let officer = app.officer().await.clone();
    // A real case, of the visitor's; the resident is green and unrelated to it.
    let case = app.confirm_case(app.second_officer().await, &visitor).await;
    let before = reads_of(app, &resident).await;
    let (st, p) = read(
        app,
        &officer.token,
        &resident,
        json!({"purpose": "case-investigation", "case": case}),
    )
    .await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    let body = p.to_string();
    assert!(
        !body.contains("张三丰")
            && !body.contains("13800138001")
            && !body.contains(&resident_id_of_the_resident()),
        "personal data in a refusal: {body}"
    );
    // Nothing was opened; the refusal is recorded against the resident, who sees it.
    assert_eq!(reads_of(app, &resident).await, before);
    let log = app.audit_log().await;
    let refused: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "read-refused" && e["subject"] == resident.hex.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{log:?}");
    assert_eq!(refused[0]["actor"], officer.actor.as_str());
    assert!(
        told_actions(app, &resident)
            .await
            .contains(&("read".to_owned(), "read-refused".to_owned()))
    );
    // The case's own holder is readable for it.
    let (st, record) = read(
        app,
        &officer.token,
        &visitor,
        json!({"purpose": "case-investigation", "case": case}),
    )
    .await;
    assert_eq!(st, 200, "{record}");
    assert_eq!(record["personal_data"]["name"], "Anna Eriksson");
}

async fn an_exposed_contact_is_readable_for_the_case_it_came_from(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let officer = app.officer().await.clone();
    let mall = app.mall().await;
    let case = app.confirm_case(app.second_officer().await, &visitor).await;
    // Not reached before an exposure from the case is recorded.
    let (st, _) = read(
        app,
        &officer.token,
        &resident,
        json!({"purpose": "case-investigation", "case": case}),
    )
    .await;
    assert_eq!(st, 403);
    // The resident was at the mall with the visitor yesterday: an exposure waiting for review, as
    // tracing records it (written behind the server's back: tracing needs hours of overlap that a
    // test cannot wait for).
    let hex = &resident.hex;
    let venue = mall.id;
    let insert = match app.config.database_url {
        Some(_) => format!(
            "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state) \
             VALUES ('\\x{hex}'::bytea, {case}, {venue}, now() - interval '1 day', now() - interval '23 hours', now() - interval '1 day', now() - interval '23 hours', 60, 'same-place', 'pending')"
        ),
        None => {
            let t = now().unix_timestamp() - 86_400;
            format!(
                "INSERT INTO exposures (holder, case_id, venue, contact_start, contact_end, case_start, case_end, overlap_minutes, grade, state) \
                 VALUES (X'{hex}', {case}, {venue}, {t}, {}, {t}, {}, 60, 'same-place', 'pending')",
                t + 3600,
                t + 3600
            )
        }
    };
    app.raw_sql(&insert).await;
    let ex = app
        .get(
            &format!("/api/v1/admin/cases/{case}/exposures"),
            Some(&officer.token),
        )
        .await;
    assert!(
        ex.as_array()
            .unwrap()
            .iter()
            .any(|e| e["holder"] == resident.hex.as_str()),
        "{ex}"
    );
    let (st, record) = read(
        app,
        &officer.token,
        &resident,
        json!({"purpose": "case-investigation", "case": case}),
    )
    .await;
    assert_eq!(st, 200, "{record}");
    assert_eq!(record["personal_data"]["name"], "张三丰");
    // A case of the resident's own does not reach the visitor through the resident's exposure.
    let own = app.confirm_case(app.second_officer().await, &resident).await;
    let (st, _) = read(
        app,
        &officer.token,
        &visitor,
        json!({"purpose": "case-investigation", "case": own}),
    )
    .await;
    assert_eq!(st, 403);
}

async fn a_free_text_consent_opens_nothing(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    let before = reads_of(app, &resident).await;
    for consent in [json!("x"), json!("counter form 7"), json!(""), json!(null)] {
        let (st, p) = read(
            app,
            &officer.token,
            &resident,
            json!({"purpose": "proxy-with-consent", "consent": consent}),
        )
        .await;
        assert!(st == 422 || st == 400, "{consent}: {st} {p}");
        assert!(problem_type(&p).starts_with("urn:healthcode:problem:"), "{p}");
        let (st, _) = app
            .call(
                "POST",
                "/api/v1/admin/printed-codes",
                Some(&officer.token),
                Some(json!({"name": "张三丰", "resident_id": resident_id_of_the_resident(), "consent": consent})),
            )
            .await;
        assert!(st == 422 || st == 400, "{consent}: {st}");
    }
    // A number that is no consent record: 422, before anyone is looked up.
    let (st, p) = read(app, &officer.token, &resident, proxy(987_654)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    assert_eq!(reads_of(app, &resident).await, before);
}

// ---- Consents ----

async fn a_consent_given_in_the_app_is_used_seen_and_revoked(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    let id = give(app, &resident, "proxy", 7).await;
    let (st, record) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(st, 200, "{record}");
    assert_eq!(record["personal_data"]["phone"], "+8613800138001");
    // The holder sees the use at once, with who used it.
    let uses: Vec<Value> = told(app, &resident)
        .await
        .into_iter()
        .filter(|n| n["action"] == "consent-use")
        .collect();
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert_eq!(uses[0]["kind"], "consent");
    assert_eq!(uses[0]["actor"], format!("staff:{}", officer.id));
    assert!(
        uses[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("consent {id}"))
    );
    // A proxy consent is not one for a printed code.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer.token),
            Some(json!({"name": "张三丰", "resident_id": resident_id_of_the_resident(), "consent": id})),
        )
        .await;
    assert_eq!(st, 403, "{p}");
    // Revoked by the holder: the next use is refused, and the list says so.
    let v = app
        .post(
            &format!("/api/v1/me/consents/{id}/revoke"),
            Some(&resident.token),
            json!({}),
        )
        .await;
    assert_eq!(v["state"], "revoked", "{v}");
    let (st, p) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/me/consents/{id}/revoke"),
            Some(&resident.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409, "revoked twice");
    let list = app.get("/api/v1/me/consents", Some(&resident.token)).await;
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["state"], "revoked");
    // The page shows it, in both languages.
    for (lang, word) in [("en", "Revoked"), ("zh", "已撤销")] {
        let page = app
            .client
            .get(app.url("/me/consents"))
            .header(
                "cookie",
                format!("__Host-hc_session={}; hc_lang={lang}", resident.token),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(word), "{lang}: {page}");
    }
}

async fn a_consent_of_one_holder_opens_no_other(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let officer = app.officer().await.clone();
    let id = give(app, &resident, "proxy", 7).await;
    let before = reads_of(app, &visitor).await;
    let (st, p) = read(app, &officer.token, &visitor, proxy(id)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert!(!p.to_string().contains("Anna"), "{p}");
    assert_eq!(reads_of(app, &visitor).await, before);
    // Nor can the other holder see or revoke it.
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/me/consents/{id}/revoke"),
            Some(&visitor.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 404);
    let theirs = app.get("/api/v1/me/consents", Some(&visitor.token)).await;
    assert_eq!(theirs.as_array().unwrap().len(), 0, "{theirs}");
    let (st, _) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(st, 200, "still the resident's");
}

async fn an_expired_consent_is_refused(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    let id = give(app, &resident, "proxy", 1).await;
    let (st, _) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(st, 200);
    // Two days pass for this consent.
    let back = match app.config.database_url {
        Some(_) => format!(
            "UPDATE consents SET created_at = created_at - interval '2 days', expires_at = expires_at - interval '2 days' WHERE id = {id}"
        ),
        None => format!(
            "UPDATE consents SET created_at = created_at - 172800, expires_at = expires_at - 172800 WHERE id = {id}"
        ),
    };
    app.raw_sql(&back).await;
    let (st, p) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    let list = app.get("/api/v1/me/consents", Some(&resident.token)).await;
    assert_eq!(list[0]["state"], "expired", "{list}");
    // Longer than 30 days cannot be given.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/me/consents",
            Some(&resident.token),
            Some(json!({"scope": "proxy", "days": 31})),
        )
        .await;
    assert_eq!(st, 422);
}

/// The last word of the last text to a phone (the consent code).
fn last_code(app: &TestApp, phone: &str) -> String {
    let texts = app.gateway.texts_to(phone);
    let t = texts.last().expect("no text");
    assert!(t.contains("asks your consent"), "{t}");
    t.rsplit(' ').next().unwrap().to_owned()
}

async fn a_consent_by_a_code_read_out_binds_the_holder_the_officer_and_is_used_once(app: &TestApp) {
    let resident = app.register_resident().await;
    app.register_visitor().await;
    let officer = app.officer().await.clone();
    let ask = |name: &str, doc: Value| {
        let mut body = json!({"name": name, "scope": "proxy", "days": 3});
        for (k, v) in doc.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let sent = app
        .post(
            "/api/v1/admin/consents/code-requests",
            Some(&officer.token),
            ask("张三丰", json!({"resident_id": resident_id_of_the_resident()})),
        )
        .await;
    assert_eq!(sent["holder"], resident.hex.as_str(), "{sent}");
    let code = last_code(app, "+8613800138001");
    let other = app
        .post(
            "/api/v1/admin/consents/code-requests",
            Some(&officer.token),
            ask(
                "Anna Eriksson",
                json!({"passport": "L898902C3", "nationality": "SWE"}),
            ),
        )
        .await;
    let visitors_code = last_code(app, "+46701234567");
    let confirm = |holder: &str, challenge: &Value, code: &str| json!({"holder": holder, "scope": "proxy", "days": 3, "challenge": challenge, "code": code});
    let token = officer.token.clone();
    let post = |body: Value| {
        let token = token.clone();
        async move {
            let (st, v) = app
                .call(
                    "POST",
                    "/api/v1/admin/consents/code-confirmations",
                    Some(&token),
                    Some(body),
                )
                .await;
            (st.as_u16(), v)
        }
    };
    // A wrong code; the visitor's code under the resident; the resident's code for other days.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (st, p) = post(confirm(&resident.hex, &sent["challenge"], wrong)).await;
    assert_eq!(
        (st, problem_type(&p)),
        (401, "urn:healthcode:problem:one-time-code"),
        "{p}"
    );
    if visitors_code != code {
        let (st, _) = post(confirm(&resident.hex, &sent["challenge"], &visitors_code)).await;
        assert_eq!(st, 401);
    }
    let (st, _) = post(confirm(&resident.hex, &other["challenge"], &visitors_code)).await;
    assert_eq!(st, 401, "another holder's challenge");
    let (st, _) = post(json!({"holder": resident.hex, "scope": "proxy", "days": 30,
        "challenge": sent["challenge"], "code": code}))
    .await;
    assert_eq!(st, 401, "more days than the holder was asked");
    assert_eq!(
        app.get("/api/v1/me/consents", Some(&resident.token)).await,
        json!([]),
        "nothing recorded yet"
    );
    // The right one: a consent to this officer only.
    let (st, c) = post(confirm(&resident.hex, &sent["challenge"], &code)).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["given"], "one-time-code");
    assert_eq!(c["granted_to"], format!("staff:{}", officer.id));
    // Replayed: refused, and still one consent.
    let (st, _) = post(confirm(&resident.hex, &sent["challenge"], &code)).await;
    assert_eq!(st, 401);
    let list = app.get("/api/v1/me/consents", Some(&resident.token)).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = c["id"].as_i64().unwrap();
    // Another officer cannot use it; the one it was given to can.
    let second = app.second_officer().await.clone();
    let (st, _) = read(app, &second.token, &resident, proxy(id)).await;
    assert_eq!(st, 403);
    let (st, _) = read(app, &officer.token, &resident, proxy(id)).await;
    assert_eq!(st, 200);
}

async fn an_in_person_consent_is_attested_and_told_to_the_holder(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    let body = |seen: bool| {
        json!({"name": "张三丰", "resident_id": resident_id_of_the_resident(), "scope": "printed-code",
            "days": 1, "document_seen": seen})
    };
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/consents/in-person",
            Some(&officer.token),
            Some(body(false)),
        )
        .await;
    assert_eq!(st, 422);
    let c = app
        .post(
            "/api/v1/admin/consents/in-person",
            Some(&officer.token),
            body(true),
        )
        .await;
    assert_eq!(c["given"], "in-person", "{c}");
    assert_eq!(c["obtained_by"], format!("staff:{}", officer.id));
    // Listed on the holder's side, told at once on the page and by text.
    let list = app.get("/api/v1/me/consents", Some(&resident.token)).await;
    assert_eq!(list[0]["id"], c["id"]);
    assert!(
        told_actions(app, &resident)
            .await
            .contains(&("consent".to_owned(), "consent-record".to_owned()))
    );
    assert!(
        app.gateway
            .wait_for_text("+8613800138001", "consented in person")
            .await
    );
    // It opens a printed code, once used recorded.
    let (st, code) = app
        .call(
            "POST",
            "/api/v1/admin/printed-codes",
            Some(&officer.token),
            Some(json!({"name": "张三丰", "resident_id": resident_id_of_the_resident(), "consent": c["id"]})),
        )
        .await;
    assert_eq!(st, 201, "{code}");
    assert!(
        told_actions(app, &resident)
            .await
            .contains(&("consent".to_owned(), "consent-use".to_owned()))
    );
}

// ---- Lab reports ----

async fn a_lab_report_reaches_only_the_person_it_names(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let officer = app.officer().await.clone();
    // The report is recorded by a second officer: a record opens nothing to whoever made it.
    let recorder = app.second_officer().await.clone();
    let lab = json!({"purpose": "lab-result", "reference": "LAB-2026-1130-07"});
    let search = |name: &str, doc: Value| {
        let mut body = json!({"name": name, "purpose": lab.clone()});
        for (k, v) in doc.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // Not recorded yet: refused before anyone is looked up.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/holders/search",
            Some(&officer.token),
            Some(search(
                "张三丰",
                json!({"resident_id": resident_id_of_the_resident()}),
            )),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    let report = app
        .post(
            "/api/v1/admin/lab-reports",
            Some(&recorder.token),
            json!({"reference": "LAB-2026-1130-07", "lab": "Zhejiang CDC", "resident_id": resident_id_of_the_resident()}),
        )
        .await;
    assert_eq!(
        report["recorded_by"],
        format!("staff:{}", recorder.id),
        "{report}"
    );
    // The same reference again, naming the visitor: refused, the report unchanged.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/lab-reports",
            Some(&recorder.token),
            Some(json!({"reference": "LAB-2026-1130-07", "lab": "Zhejiang CDC", "passport": "L898902C3", "nationality": "SWE"})),
        )
        .await;
    assert_eq!(st, 409);
    // The visitor is not reached by it, searched or read.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/holders/search",
            Some(&officer.token),
            Some(search(
                "Anna Eriksson",
                json!({"passport": "L898902C3", "nationality": "SWE"}),
            )),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = read(app, &officer.token, &visitor, lab.clone()).await;
    assert_eq!(st, 403);
    // The resident is, and the result is recorded for them.
    let found = app
        .post(
            "/api/v1/admin/holders/search",
            Some(&officer.token),
            search("张三丰", json!({"resident_id": resident_id_of_the_resident()})),
        )
        .await;
    assert_eq!(found["holder"], resident.hex.as_str(), "{found}");
    let sampled = (now() - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/tests",
            Some(&officer.token),
            Some(json!({"holder": found["holder"], "positive": false, "sampled_at": sampled, "lab": "Zhejiang CDC"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = read(app, &officer.token, &resident, lab.clone()).await;
    assert_eq!(st, 200);
    assert!(
        told_actions(app, &resident)
            .await
            .contains(&("other".to_owned(), "lab-report-record".to_owned()))
    );
    // The officer who recorded the report cannot read under it, nor find the person by it: a
    // 403, recorded against the resident.
    let before = reads_of(app, &resident).await;
    let (st, p) = read(app, &recorder.token, &resident, lab.clone()).await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert!(
        p["detail"].as_str().unwrap().contains("recorded by this account"),
        "{p}"
    );
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/holders/search",
            Some(&recorder.token),
            Some(search(
                "张三丰",
                json!({"resident_id": resident_id_of_the_resident()}),
            )),
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(reads_of(app, &resident).await, before);
    let refused = app
        .audit_log()
        .await
        .iter()
        .filter(|e| e["action"] == "read-refused" && e["actor"] == recorder.actor.as_str())
        .count();
    assert_eq!(refused, 1);
}

// ---- One officer makes the record and reads under it ----

async fn a_case_opens_nothing_to_the_officer_who_recorded_it(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    // The officer confirms a case for the resident (a positive test first), then cites it.
    let case = app.confirm_case(&officer, &resident).await;
    let before = reads_of(app, &resident).await;
    let (st, p) = read(
        app,
        &officer.token,
        &resident,
        json!({"purpose": "case-investigation", "case": case}),
    )
    .await;
    assert_eq!(
        (st, problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    assert!(
        !p.to_string().contains("张三丰"),
        "personal data in a refusal: {p}"
    );
    assert_eq!(
        reads_of(app, &resident).await,
        before,
        "opened by the case's recorder"
    );
    let log = app.audit_log().await;
    assert!(
        log.iter().any(|e| e["action"] == "read-refused"
            && e["actor"] == officer.actor.as_str()
            && e["subject"] == resident.hex.as_str()),
        "the refusal is not recorded"
    );
    assert!(
        told_actions(app, &resident)
            .await
            .contains(&("read".to_owned(), "read-refused".to_owned()))
    );
    // A second officer investigates the case: the read is allowed and recorded.
    let record = app
        .read_for_case(app.second_officer().await, &resident, case)
        .await;
    assert_eq!(record["personal_data"]["name"], "张三丰");
    assert_eq!(reads_of(app, &resident).await, before + 1);
}

// ---- What the holder is told ----

async fn the_holder_is_told_of_a_colour_change_and_a_read_at_once(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await.clone();
    assert_eq!(told(app, &resident).await, Vec::<Value>::new());
    let case = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(&officer, &resident, case).await;
    let list = told(app, &resident).await;
    let kinds: Vec<(&str, &str)> = list
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["action"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("colour", "test-record")), "{kinds:?}");
    assert!(kinds.contains(&("colour", "case-record")), "{kinds:?}");
    assert!(kinds.contains(&("read", "read-personal-data")), "{kinds:?}");
    // Newest first: the read came last.
    assert_eq!(kinds[0], ("read", "read-personal-data"), "{kinds:?}");
    let read = &list[0];
    assert_eq!(read["actor"], format!("staff:{}", officer.id));
    assert!(read["detail"].as_str().unwrap().contains(&format!("case {case}")));
    // The page shows them, in both languages.
    for (lang, word) in [("en", "What happened"), ("zh", "动态")] {
        let page = app
            .client
            .get(app.url("/me/notifications"))
            .header(
                "cookie",
                format!("__Host-hc_session={}; hc_lang={lang}", resident.token),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(word) && page.contains("read-personal-data"),
            "{lang}: {page}"
        );
    }
}

async fn reads_are_texted_to_the_holder_once_a_day(app: &TestApp) {
    let resident = app.register_resident().await;
    let visitor = app.register_visitor().await;
    let officer = app.officer().await.clone();
    let case = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(&officer, &resident, case).await;
    app.read_for_case(&officer, &resident, case).await;
    let digest = app.read_digest.clone().unwrap();
    let phone = "+8613800138001";
    let texts_before = app.gateway.texts_to(phone).len();
    let until = now() + time::Duration::seconds(1);
    assert_eq!(digest.send(until).await.unwrap(), 1);
    let texts = app.gateway.texts_to(phone);
    assert_eq!(texts.len(), texts_before + 1, "{texts:?}");
    let text = texts.last().unwrap();
    assert!(
        text.contains("read 2 times") && text.contains("2 by officer"),
        "{text}"
    );
    // The visitor, whom nobody read, gets nothing.
    assert!(
        app.gateway
            .texts_to("+46701234567")
            .iter()
            .all(|t| !t.contains("was read")),
        "{:?}",
        app.gateway.texts_to("+46701234567")
    );
    // Again the same day: no second text, even after another read.
    app.read_for_case(&officer, &resident, case).await;
    assert_eq!(digest.send(until + time::Duration::seconds(2)).await.unwrap(), 0);
    assert_eq!(app.gateway.texts_to(phone).len(), texts_before + 1);
    let _ = visitor;
}

common::on_both_backends!(
    a_case_that_does_not_reach_the_holder_opens_nothing_and_is_recorded,
    an_exposed_contact_is_readable_for_the_case_it_came_from,
    a_free_text_consent_opens_nothing,
    a_consent_given_in_the_app_is_used_seen_and_revoked,
    a_consent_of_one_holder_opens_no_other,
    an_expired_consent_is_refused,
    a_consent_by_a_code_read_out_binds_the_holder_the_officer_and_is_used_once,
    an_in_person_consent_is_attested_and_told_to_the_holder,
    a_lab_report_reaches_only_the_person_it_names,
    a_case_opens_nothing_to_the_officer_who_recorded_it,
    the_holder_is_told_of_a_colour_change_and_a_read_at_once,
    reads_are_texted_to_the_holder_once_a_day,
);
