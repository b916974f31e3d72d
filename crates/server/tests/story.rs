//! The whole story over HTTP, on SQLite and on PostgreSQL: registration with one-time codes sent
//! through the HTTP SMS adapter (to a gateway this test runs), codes, scans, an officer's case
//! and test, a two-officer override, the holder's access log and export, the audit chain, and bad
//! input answered with problem+json and no change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use healthcode_server::Config;
use healthcode_server::sms::{SmsConfig, SmsKind};
use healthcode_store::Role;
use healthcode_store_postgres::testing::TestSchema;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fake SMS gateway: keeps every message posted to it.
#[derive(Clone, Default)]
struct Gateway(Arc<Mutex<Vec<(String, String)>>>);

impl Gateway {
    async fn start(&self) -> String {
        let inbox = self.0.clone();
        let app = axum::Router::new().route(
            "/send",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let inbox = inbox.clone();
                async move {
                    inbox.lock().unwrap().push((
                        v["to"].as_str().unwrap().to_owned(),
                        v["text"].as_str().unwrap().to_owned(),
                    ));
                    "queued"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/send")
    }

    /// The last code sent to a phone.
    fn code_for(&self, phone: &str) -> String {
        let msgs = self.0.lock().unwrap();
        let (_, text) = msgs
            .iter()
            .rev()
            .find(|(to, _)| to == phone)
            .expect("no SMS to this phone");
        text.rsplit(' ').next().unwrap().to_owned()
    }
}

struct Server {
    base: String,
    c: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    admin_password: String,
    pg: Option<TestSchema>,
    gateway: Gateway,
}

async fn start(pg: bool) -> Option<Server> {
    let tmp = tempfile::tempdir().unwrap();
    let gateway = Gateway::default();
    let sms_url = gateway.start().await;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        sms: SmsConfig {
            kind: SmsKind::Http,
            url: Some(sms_url),
        },
        ..Config::default()
    };
    let mut pg_info = None;
    if pg {
        let schema = TestSchema::from_env("hc_story")?;
        config.database_url = Some(schema.url().expose().to_owned());
        config.database_schema = Some(schema.name().to_owned());
        pg_info = Some(schema);
    }
    let admin_password = healthcode_server::ops::create_account_now(&config, "root", Role::Admin)
        .await
        .unwrap();
    let bound = healthcode_server::bind(&config).await.unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = rx.await;
    }));
    Some(Server {
        base,
        c: reqwest::Client::new(),
        stop: Some(tx),
        task,
        data_dir: config.data_dir.clone(),
        _tmp: tmp,
        admin_password,
        pg: pg_info,
        gateway,
    })
}

impl Server {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .c
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(ct, "application/problem+json", "{method} {path}: {status} {text}");
        }
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, token, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    async fn staff_sign_in(&self, username: &str, one_time: &str) -> String {
        // A one-time password alone is refused: it must be replaced.
        let (s, p) = self
            .call(
                "POST",
                "/api/v1/admin/sessions",
                None,
                Some(json!({"username": username, "password": one_time})),
            )
            .await;
        assert_eq!(s, 403, "{p}");
        let v = self
            .ok(
                "POST",
                "/api/v1/admin/sessions",
                None,
                Some(json!({"username": username, "password": one_time, "new_password": "correct horse battery"})),
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    async fn otp(&self, phone: &str) -> String {
        self.ok("POST", "/api/v1/otp", None, Some(json!({"phone": phone})))
            .await;
        self.gateway.code_for(phone)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        // The schema goes after the server has stopped.
        drop(self.pg.take());
    }
}

fn problem_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// A resident ID number with a valid check character.
fn resident_id(seventeen: &str) -> String {
    let d: [u8; 17] = seventeen.as_bytes().try_into().unwrap();
    format!("{seventeen}{}", healthcode_domain::resident_id_check_char(&d))
}

async fn story(pg: bool) {
    let Some(s) = start(pg).await else { return };
    // Staff.
    let admin = s.staff_sign_in("root", &s.admin_password.clone()).await;
    let mut officers = Vec::new();
    for (name, role) in [
        ("officer-a", "officer"),
        ("officer-b", "officer"),
        ("auditor-a", "auditor"),
    ] {
        let v = s
            .ok(
                "POST",
                "/api/v1/admin/officers",
                Some(&admin),
                Some(json!({"username": name, "role": role})),
            )
            .await;
        officers.push(
            s.staff_sign_in(name, v["one_time_password"].as_str().unwrap())
                .await,
        );
    }
    let (officer_a, officer_b, auditor) = (&officers[0], &officers[1], &officers[2]);
    // Venues and devices: a key is shown once.
    let mall = s
        .ok(
            "POST",
            "/api/v1/admin/venues",
            Some(&admin),
            Some(json!({"name": "West Lake Mall", "category": "mall", "admission": "green-only"})),
        )
        .await;
    let mall_id = mall["id"].as_i64().unwrap();
    let dev = s
        .ok(
            "POST",
            &format!("/api/v1/admin/venues/{mall_id}/devices"),
            Some(&admin),
            Some(json!({"label": "north gate"})),
        )
        .await;
    let mall_key = dev["key"].as_str().unwrap().to_owned();
    let clinic = s
        .ok(
            "POST",
            "/api/v1/admin/venues",
            Some(&admin),
            Some(json!({"name": "Gongshu Clinic", "category": "clinic", "admission": "all"})),
        )
        .await;
    let clinic_id = clinic["id"].as_i64().unwrap();
    let office = s
        .ok(
            "POST",
            "/api/v1/admin/venues",
            Some(&admin),
            Some(json!({"name": "Binjiang Office Park", "category": "office", "admission": "green-only"})),
        )
        .await;
    let office_id = office["id"].as_i64().unwrap();
    let office_key = s
        .ok(
            "POST",
            &format!("/api/v1/admin/venues/{office_id}/devices"),
            Some(&admin),
            Some(json!({"label": "lobby"})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let clinic_key = s
        .ok(
            "POST",
            &format!("/api/v1/admin/venues/{clinic_id}/devices"),
            Some(&admin),
            Some(json!({"label": "door"})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // A resident registers.
    let rid = resident_id("33010619900307123");
    let phone_r = "+8613800138001";
    let code = s.otp(phone_r).await;
    let (st, reg) = s
        .call(
            "POST",
            "/api/v1/holders",
            None,
            Some(json!({"kind": "resident", "name": "张三丰", "resident_id": rid, "phone": phone_r, "otp": code})),
        )
        .await;
    assert_eq!(st, 201, "{reg}");
    let resident = reg["token"].as_str().unwrap().to_owned();
    let resident_hex = reg["holder"].as_str().unwrap().to_owned();
    // A visitor registers (international version).
    let phone_v = "+46701234567";
    let code = s.otp(phone_v).await;
    let reg = s
        .ok(
            "POST",
            "/api/v1/holders",
            None,
            Some(json!({"kind": "visitor", "name": "Anna Eriksson", "passport": "L898902C3", "nationality": "SWE",
                "birth_date": "1974-08-12", "flight": "SK997", "arrival": "2026-11-18", "phone": phone_v, "otp": code})),
        )
        .await;
    let visitor = reg["token"].as_str().unwrap().to_owned();
    let visitor_hex = reg["holder"].as_str().unwrap().to_owned();

    // Both fetch green codes; the token verifies offline against the published trust list.
    let root = std::fs::read_to_string(s.data_dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let list = s.ok("GET", "/api/v1/trust-list", None, None).await;
    let verifier = healthcode_token::Verifier::new(
        healthcode_token::TrustList::from_text(list.as_str().unwrap(), &root).unwrap(),
    );
    let mut tokens = Vec::new();
    for (who, hint) in [(&resident, "张**"), (&visitor, "A*** E.")] {
        let c = s.ok("GET", "/api/v1/me/code", Some(who), None).await;
        assert_eq!(c["colour"], "green");
        assert_eq!(c["name_hint"], hint);
        let token = c["token"].as_str().unwrap().to_owned();
        let v = verifier.verify_text(&token, healthcode_server::now()).unwrap();
        assert_eq!(v.colour(), healthcode_token::Colour::Green);
        tokens.push(token);
    }
    let svg =
        s.c.get(format!("{}/api/v1/me/code.svg", s.base))
            .bearer_auth(&resident)
            .send()
            .await
            .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<?xml"));

    // The mall's device scans both: admitted and recorded; a retry of the same seq is stored once.
    // (The resident at the mall, the visitor at an office: they never meet, so the resident's
    // case below makes no contact of the visitor, whatever the clock.)
    for (i, t) in tokens.iter().enumerate() {
        let (key, venue) = if i == 0 {
            (&mall_key, mall_id)
        } else {
            (&office_key, office_id)
        };
        let r = s
            .ok(
                "POST",
                "/api/v1/scans",
                Some(key),
                Some(json!({"venue": venue, "token": t, "seq": i})),
            )
            .await;
        assert_eq!(r["decision"], "admit", "{r}");
        assert_eq!(r["recorded"], true);
        assert!(
            r.get("holder").is_none() && r.get("name").is_none(),
            "a device learns no more: {r}"
        );
    }
    s.ok(
        "POST",
        "/api/v1/scans",
        Some(&mall_key),
        Some(json!({"venue": mall_id, "token": tokens[0], "seq": 0})),
    )
    .await;
    // An offline queue from the clinic, uploaded later with its original times (here: moments ago;
    // the code must have been valid then).
    let earlier = healthcode_server::now() - time::Duration::seconds(2);
    let at = earlier
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let b = s
        .ok(
            "POST",
            "/api/v1/scans/batch",
            Some(&clinic_key),
            Some(json!({"venue": clinic_id, "scans": [
                {"token": tokens[0], "seq": 1, "at": at},
                {"token": "HC1:NOTACODE", "seq": 2, "at": at},
            ]})),
        )
        .await;
    assert_eq!(
        (b["recorded"].as_u64(), b["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );

    // An officer records a positive test and a confirmed case for the resident.
    let sampled = (healthcode_server::now() - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (st, _) = s
        .call(
            "POST",
            "/api/v1/admin/tests",
            Some(officer_a),
            Some(json!({"holder": resident_hex, "positive": true, "sampled_at": sampled, "lab": "Zhejiang CDC"})),
        )
        .await;
    assert_eq!(st, 201);
    let case = s
        .ok(
            "POST",
            "/api/v1/admin/cases",
            Some(officer_a),
            Some(json!({"holder": resident_hex, "onset": sampled})),
        )
        .await;
    let case_id = case["id"].as_i64().unwrap();
    // Tracing ran in the background; running it again adds nothing, and finds no contact (the
    // resident met no one).
    let tr = s
        .ok(
            "POST",
            &format!("/api/v1/admin/cases/{case_id}/trace"),
            Some(officer_a),
            None,
        )
        .await;
    assert_eq!(
        (tr["cases"].as_u64(), tr["new_exposures"].as_u64()),
        (Some(1), Some(0)),
        "{tr}"
    );
    let ex = s
        .ok(
            "GET",
            &format!("/api/v1/admin/cases/{case_id}/exposures"),
            Some(officer_a),
            None,
        )
        .await;
    assert_eq!(ex.as_array().unwrap().len(), 0, "{ex}");
    let c = s.ok("GET", "/api/v1/me/code", Some(&resident), None).await;
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
    // A red code is turned away at the mall, but the clinic admits and records it.
    let red_token = c["token"].as_str().unwrap().to_owned();
    let r = s
        .ok(
            "POST",
            "/api/v1/scans",
            Some(&mall_key),
            Some(json!({"venue": mall_id, "token": red_token, "seq": 10})),
        )
        .await;
    assert_eq!(
        (r["decision"].as_str(), r["recorded"].as_bool()),
        (Some("deny"), Some(false)),
        "{r}"
    );

    // The officer reads the resident's record for the case: the holder sees it in the access log.
    let rec = s
        .ok(
            "POST",
            &format!("/api/v1/admin/holders/{resident_hex}/read"),
            Some(officer_a),
            Some(json!({"purpose": {"purpose": "case-investigation", "case": case_id}})),
        )
        .await;
    assert_eq!(rec["personal_data"]["name"], "张三丰");
    // A purpose that does not hold is refused and leaves no record.
    let (st, p) = s
        .call(
            "POST",
            &format!("/api/v1/admin/holders/{visitor_hex}/read"),
            Some(officer_a),
            Some(json!({"purpose": {"purpose": "case-investigation", "case": 999_999}})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field")
    );
    let log = s.ok("GET", "/api/v1/me/access-log", Some(&resident), None).await;
    let reads: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "read-personal-data")
        .collect();
    assert_eq!(reads.len(), 1, "{log}");
    assert!(reads[0]["actor"].as_str().unwrap().contains("officer-a"));
    assert_eq!(
        reads[0]["purpose"],
        format!("case investigation (case {case_id})")
    );
    let vlog = s.ok("GET", "/api/v1/me/access-log", Some(&visitor), None).await;
    assert!(
        vlog.as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "read-personal-data"),
        "{vlog}"
    );

    // An override needs a second officer.
    let until = (healthcode_server::now() + time::Duration::days(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let o = s
        .ok(
            "POST",
            "/api/v1/admin/overrides",
            Some(officer_a),
            Some(json!({"holder": visitor_hex, "colour": "yellow", "reason": "shared a taxi with a case", "expires_at": until})),
        )
        .await;
    let oid = o["id"].as_i64().unwrap();
    assert_eq!(
        s.ok("GET", "/api/v1/me/code", Some(&visitor), None).await["colour"],
        "green"
    );
    let (st, p) = s
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
    assert_eq!(
        s.ok("GET", "/api/v1/me/code", Some(&visitor), None).await["colour"],
        "green"
    );
    s.ok(
        "POST",
        &format!("/api/v1/admin/overrides/{oid}/approve"),
        Some(officer_b),
        None,
    )
    .await;
    let c = s.ok("GET", "/api/v1/me/code", Some(&visitor), None).await;
    assert_eq!(c["colour"], "yellow");
    assert_eq!(c["reasons"][0]["rule"], "override");
    assert_eq!(c["reasons"][0]["description"], "shared a taxi with a case");

    // The holder exports everything: personal data, check-ins, facts, the access log.
    let ex = s.ok("GET", "/api/v1/me/export", Some(&resident), None).await;
    assert_eq!(ex["personal_data"]["resident_id"], rid);
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 2, "{ex}");
    assert_eq!(ex["facts"]["cases"].as_array().unwrap().len(), 1);
    assert_eq!(
        ex["access_log"].as_array().unwrap().len(),
        log.as_array().unwrap().len()
    );

    // Declarations, reports and appeals.
    let d = s
        .ok(
            "POST",
            "/api/v1/me/declarations",
            Some(&visitor),
            Some(json!({"kind": "health", "symptoms": ["cough"], "temperature_c": 37.9})),
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
    s.ok(
        "POST",
        "/api/v1/me/reports",
        Some(&visitor),
        Some(json!({"well": true})),
    )
    .await;
    let a = s
        .ok(
            "POST",
            "/api/v1/me/appeals",
            Some(&visitor),
            Some(json!({"text": "I was not in that taxi."})),
        )
        .await;
    let open = s
        .ok("GET", "/api/v1/admin/appeals?open=true", Some(officer_b), None)
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    s.ok(
        "POST",
        &format!("/api/v1/admin/appeals/{}/decision", a["id"]),
        Some(officer_b),
        Some(json!({"upheld": false, "note": "The taxi company's records place you there."})),
    )
    .await;
    let mine = s.ok("GET", "/api/v1/me/appeals", Some(&visitor), None).await;
    assert_eq!(mine[0]["state"], "rejected");

    // ---- Bad input: a clear problem, and nothing changes. ----
    let audit_before = s
        .ok("GET", "/api/v1/admin/audit?limit=1000", Some(auditor), None)
        .await;
    let n_audit = audit_before.as_array().unwrap().len();
    // An invalid ID number (wrong check character).
    let phone_x = "+8613800138099";
    let code = s.otp(phone_x).await;
    let mut bad = resident_id("11010519491231002");
    bad.replace_range(17..18, if bad.ends_with('0') { "1" } else { "0" });
    let (st, p) = s
        .call(
            "POST",
            "/api/v1/holders",
            None,
            Some(json!({"kind": "resident", "name": "李四", "resident_id": bad, "phone": phone_x, "otp": code})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    // The code was not used up by the refused registration, and no holder exists for the phone.
    let (st, p) = s
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"phone": phone_x, "otp": code})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (404, "urn:healthcode:problem:not-found"),
        "{p}"
    );
    // A wrong one-time code six times: five guesses, then none; the right code no longer works.
    let phone_w = "+8613800138077";
    let right = s.otp(phone_w).await;
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let reg = |otp: &str| json!({"kind": "resident", "name": "王五", "resident_id": resident_id("11010119800101001"), "phone": phone_w, "otp": otp});
    for left in (0..5).rev() {
        let (st, p) = s.call("POST", "/api/v1/holders", None, Some(reg(wrong))).await;
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
    let (st, p) = s.call("POST", "/api/v1/holders", None, Some(reg(wrong))).await;
    assert_eq!(st, 401);
    assert!(p["detail"].as_str().unwrap().contains("too many"), "{p}");
    let (st, _) = s.call("POST", "/api/v1/holders", None, Some(reg(&right))).await;
    assert_eq!(st, 401, "the right code after five wrong guesses must fail");
    // A second code to the same phone at once is rate-limited.
    let (st, p) = s
        .call("POST", "/api/v1/otp", None, Some(json!({"phone": phone_w})))
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (429, "urn:healthcode:problem:rate-limited")
    );
    // A forged token (one character changed) and an expired one.
    let mut forged = tokens[1].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (st, p) = s
        .call(
            "POST",
            "/api/v1/scans",
            Some(&mall_key),
            Some(json!({"venue": mall_id, "token": forged, "seq": 20})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-token"),
        "{p}"
    );
    let keystore = healthcode_token::keystore::Keystore::open(&s.data_dir.join("keys")).unwrap();
    let t0 = healthcode_server::now();
    let signer = keystore.active_signer(t0, None).unwrap();
    let expired = signer
        .issue(&healthcode_token::CodeClaims {
            issuer: signer.issuer().clone(),
            subject: healthcode_token::HolderId::from_hex(&visitor_hex).unwrap(),
            issued_at: t0 - time::Duration::hours(1),
            expires_at: t0 - time::Duration::minutes(30),
            colour: healthcode_token::Colour::Green,
            name_hint: None,
            green_from: None,
        })
        .unwrap()
        .to_text();
    let (st, p) = s
        .call(
            "POST",
            "/api/v1/scans",
            Some(&mall_key),
            Some(json!({"venue": mall_id, "token": expired, "seq": 21})),
        )
        .await;
    // (The test's key is seconds old, so the verifier names the key's start before the expiry.)
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-token"),
        "{p}"
    );
    // A device key from another venue.
    let (st, p) = s
        .call(
            "POST",
            "/api/v1/scans",
            Some(&clinic_key),
            Some(json!({"venue": mall_id, "token": tokens[1], "seq": 22})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden"),
        "{p}"
    );
    // A holder session on an officer endpoint, an officer on the auditors' log, no session at all.
    let (st, p) = s.call("GET", "/api/v1/admin/venues", Some(&resident), None).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (403, "urn:healthcode:problem:forbidden")
    );
    let (st, _) = s.call("GET", "/api/v1/admin/audit", Some(officer_a), None).await;
    assert_eq!(st, 403);
    let (st, _) = s.call("GET", "/api/v1/me/code", None, None).await;
    assert_eq!(st, 401);
    // An oversized body, a wrong content type, malformed JSON.
    let big = "x".repeat(2 << 20);
    // A client of its own for each refused body: the server answers without reading the body
    // and may close that connection, which must not be handed to the requests after it.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/me/appeals", s.base))
        .bearer_auth(&visitor)
        .header("content-type", "application/json")
        .body(format!("{{\"text\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/me/appeals", s.base))
        .bearer_auth(&visitor)
        .header("content-type", "text/plain")
        .body("{\"text\": \"hello there\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r =
        s.c.post(format!("{}/api/v1/me/appeals", s.base))
            .bearer_auth(&visitor)
            .header("content-type", "application/json")
            .body("{\"text\": ")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(problem_type(&p), "urn:healthcode:problem:bad-request");
    // Nothing of that changed the store: no new appeal, no new check-in, no new audit record but
    // the auditor's own reads.
    assert_eq!(
        s.ok("GET", "/api/v1/me/appeals", Some(&visitor), None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ex = s.ok("GET", "/api/v1/me/export", Some(&visitor), None).await;
    assert_eq!(ex["checkins"].as_array().unwrap().len(), 1, "{ex}");
    let audit_after = s
        .ok("GET", "/api/v1/admin/audit?limit=1000", Some(auditor), None)
        .await;
    let new: Vec<&Value> = audit_after.as_array().unwrap()[n_audit..]
        .iter()
        .filter(|e| {
            e["actor"] != "officer:4:auditor-a" && !e["action"].as_str().unwrap().starts_with("audit-")
        })
        .collect();
    assert!(
        new.iter()
            .all(|e| e["action"] == "read-personal-data" || e["action"] == "register"),
        "{new:?}"
    );
    assert!(new.iter().all(|e| e["subject"] == visitor_hex), "{new:?}");

    // The audit chain verifies; metrics count what happened.
    let v = s
        .ok("GET", "/api/v1/admin/audit/verify", Some(auditor), None)
        .await;
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["records"].as_u64().unwrap() > 10);
    let m =
        s.c.get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
    // Signing out ends the session.
    s.ok("DELETE", "/api/v1/sessions/current", Some(&resident), None)
        .await;
    let (st, _) = s.call("GET", "/api/v1/me/code", Some(&resident), None).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_story() {
    story(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_story() {
    story(true).await;
}
