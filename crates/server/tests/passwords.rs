//! Staff passwords are checked a bounded number at a time: a flood of bogus sign-ins is refused
//! with 503 and Retry-After before any hashing, instead of queueing argon2 work without end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_server::Config;
use healthcode_store::Role;
use serde_json::{Value, json};

/// A server with one officer account, `username`, on `config` (its address and directory are
/// filled in); the sign-in URL and the officer's one-time password.
struct Running {
    url: String,
    one_time: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

async fn start(config: Config, username: &str) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        ..config
    };
    let one_time = healthcode_server::ops::create_account_now(&config, username, Role::Officer)
        .await
        .unwrap();
    let bound = healthcode_server::bind(&config).await.unwrap();
    let url = format!("http://{}/api/v1/admin/sessions", bound.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        one_time,
        stop,
        server,
        _tmp: tmp,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bogus_sign_ins_is_shed_before_hashing_and_a_real_one_gets_through_after() {
    // One check at a time, none waiting: every sign-in that overlaps another is refused. The
    // flood comes from many clients (through a trusted proxy) for many names, so that neither
    // the per-client nor the per-name limit refuses it first.
    let config = Config {
        password_checks_at_once: 1,
        password_queue_ms: 0,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Config::default()
    };
    let r = start(config, "officer-li").await;
    let (url, one_time) = (r.url.clone(), r.one_time.clone());
    let c = reqwest::Client::new();
    let mut flood = Vec::new();
    for i in 0..24 {
        let (c, url) = (c.clone(), url.clone());
        flood.push(tokio::spawn(async move {
            let resp = c
                .post(&url)
                .header("x-forwarded-for", format!("198.51.100.{i}"))
                .json(&json!({"username": format!("officer-{i}"), "password": format!("guess-{i}")}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            let body: Value = resp.json().await.unwrap();
            (status, retry, ct, body)
        }));
    }
    let (mut refused, mut shed) = (0, 0);
    for f in flood {
        let (status, retry, ct, body) = f.await.unwrap();
        assert_eq!(ct, "application/problem+json", "{body}");
        match status {
            401 => refused += 1,
            503 => {
                shed += 1;
                assert_eq!(body["type"], "urn:healthcode:problem:unavailable");
                assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1), "{body}");
            }
            other => panic!("a bogus sign-in answered {other}: {body}"),
        }
    }
    assert!(refused >= 1, "no guess was checked at all");
    assert!(
        shed >= 1,
        "24 overlapping sign-ins were all hashed: nothing bounds the work"
    );
    // The flood is over: the owner signs in (and replaces the issued password). On a busy
    // machine the last guesses may still be hashing, so the owner does what a 503 asks: waits
    // for Retry-After and tries again, a few times at most.
    let mut status = 0;
    for _ in 0..5 {
        let resp = c
            .post(&url)
            .json(&json!({"username": "officer-li", "password": one_time, "new_password": "a long and unusual passphrase"}))
            .send()
            .await
            .unwrap();
        status = resp.status().as_u16();
        if status != 503 {
            break;
        }
        let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    assert_eq!(status, 201);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessable_new_password_is_refused_and_changes_nothing() {
    let r = start(Config::default(), "officer-wang").await;
    let (url, one_time) = (r.url.clone(), r.one_time.clone());
    let c = reqwest::Client::new();
    let sign_in = async |body: Value| {
        let resp = c.post(&url).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap())
    };
    // Twelve characters used to be enough.
    for weak in ["111111111111", "officer-wang1", "password1234"] {
        let (s, v) =
            sign_in(json!({"username": "officer-wang", "password": one_time, "new_password": weak})).await;
        assert_eq!(s, 422, "{weak}: {v}");
        assert_eq!(v["type"], "urn:healthcode:problem:invalid-field");
        assert!(v["detail"].as_str().unwrap().contains("too easy to guess"), "{v}");
    }
    // Nothing changed: the issued password still has to be replaced, and a strong one is taken.
    let (s, _) = sign_in(json!({"username": "officer-wang", "password": one_time})).await;
    assert_eq!(s, 403);
    let (s, v) = sign_in(json!({"username": "officer-wang", "password": one_time, "new_password": "lantern orbit mango vessel"})).await;
    assert_eq!(s, 201, "{v}");
    r.stop().await;
}
