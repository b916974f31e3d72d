//! One-time codes cannot be turned against their owner: a guess counts only under the challenge
//! of the request that sent the code, guessing is limited per client, the answer to a stranger is
//! the same whether or not a code is waiting, and codes go only to served countries, within a
//! daily budget per number prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type, resident_id};
use serde_json::{Value, json};

common::on_both_backends!(
    a_stranger_cannot_use_up_someone_elses_code,
    a_stranger_is_told_the_same_whether_or_not_a_code_waits,
);

fn registration(phone: &str) -> Value {
    json!({"kind": "resident", "name": "赵六", "resident_id": resident_id("11010119900307002"), "phone": phone})
}

async fn a_stranger_cannot_use_up_someone_elses_code(app: &TestApp) {
    let phone = "+8613800138055";
    // The owner asks for a code from their phone's address.
    let (st, sent) = app
        .call_from("10.1.0.1", "POST", "/api/v1/otp", json!({"phone": phone}))
        .await;
    assert_eq!(st, 202, "{sent}");
    let challenge = sent["challenge"].as_str().unwrap().to_owned();
    let code = app.gateway.code_for(phone);
    assert!(
        !sent.to_string().contains(&code),
        "the answer shows the code: {sent}"
    );

    // A stranger guesses from another address, 300 times as fast as it can, under a challenge of
    // its own (one of the guesses is even the right code): every answer the same refusal, and
    // after the per-client limit 429 before the store is asked.
    let mut answers = Vec::new();
    for i in 0..300u32 {
        let guess = if i == 7 {
            code.clone()
        } else {
            format!("{:06}", i * 3331 % 1_000_000)
        };
        let mut body = registration(phone);
        body["challenge"] = "otc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
        body["otp"] = guess.into();
        answers.push(app.call_from("10.2.0.9", "POST", "/api/v1/holders", body).await);
    }
    let refused = answers.iter().take_while(|(st, _)| *st == 401).count();
    assert_eq!(refused, 60, "{:?}", &answers[..3]);
    let details: std::collections::BTreeSet<&str> = answers[..refused]
        .iter()
        .map(|(_, p)| p["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        answers[refused..]
            .iter()
            .all(|(st, p)| *st == 429 && problem_type(p) == "urn:healthcode:problem:rate-limited")
    );

    // The owner's code kept every one of its guesses: a wrong one says four are left, then the
    // right one registers.
    let mut body = registration(phone);
    body["challenge"] = challenge.clone().into();
    body["otp"] = if code == "000000" { "111111" } else { "000000" }.into();
    let (st, p) = app
        .call_from("10.1.0.1", "POST", "/api/v1/holders", body.clone())
        .await;
    assert_eq!(st, 401, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("4 attempts left"), "{p}");
    body["otp"] = code.into();
    let (st, p) = app.call_from("10.1.0.1", "POST", "/api/v1/holders", body).await;
    assert_eq!(st, 201, "{p}");
}

async fn a_stranger_is_told_the_same_whether_or_not_a_code_waits(app: &TestApp) {
    let (waiting, idle) = ("+8613800138066", "+8613800138067");
    app.call_from("10.1.0.2", "POST", "/api/v1/otp", json!({"phone": waiting}))
        .await;
    let mut seen = Vec::new();
    for phone in [waiting, idle] {
        let body = json!({"phone": phone, "challenge": "otc_guessed", "otp": "123456"});
        let (st, p) = app.call_from("10.2.0.2", "POST", "/api/v1/sessions", body).await;
        seen.push((st, p["type"].clone(), p["detail"].clone()));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_go_only_to_the_served_countries() {
    let mut app = TestApp::sqlite().await;
    // The test server serves +86 and +46; a US number is refused before anything is sent.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/otp",
            None,
            Some(json!({"phone": "+1 202 555 0143"})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("+1"), "{p}");
    assert!(app.gateway.sent_to("+12025550143").is_empty());
    // The region's own numbers are served.
    app.otp("+8613800138088").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_prefix_has_a_daily_budget_against_sms_pumping() {
    let mut app = TestApp::sqlite().await;
    app.config.sms.daily_per_prefix = 3;
    app.restart().await;
    // Codes to many numbers of one premium range, each from another address: three go, the
    // fourth waits for tomorrow; another prefix is not held back.
    for n in 0..3 {
        let (st, p) = app
            .call_from(
                &format!("10.3.0.{n}"),
                "POST",
                "/api/v1/otp",
                json!({"phone": format!("+86139001380{n:02}")}),
            )
            .await;
        assert_eq!(st, 202, "{p}");
    }
    let (st, p) = app
        .call_from(
            "10.3.1.1",
            "POST",
            "/api/v1/otp",
            json!({"phone": "+8613900138099"}),
        )
        .await;
    assert_eq!(st, 429, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("+86139"), "{p}");
    assert!(app.gateway.sent_to("+8613900138099").is_empty());
    let (st, p) = app
        .call_from(
            "10.3.1.2",
            "POST",
            "/api/v1/otp",
            json!({"phone": "+8613800138099"}),
        )
        .await;
    assert_eq!(st, 202, "{p}");
    app.stop().await;
}
