//! What reaches the server's front door that is not a well-formed request: a body declared and
//! never sent, and a browser sign-out that did not come from the pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_server::Config;
use healthcode_store::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running {
    base: String,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    one_time: String,
    _tmp: tempfile::TempDir,
}

async fn start(request_timeout_seconds: u64) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        request_timeout_seconds,
        ..Config::default()
    };
    // Accounts are made before the server starts: it holds the data directory while it runs.
    let one_time = healthcode_server::ops::create_account_now(&config, "officer-zhao", Role::Officer)
        .await
        .unwrap();
    let bound = healthcode_server::bind(&config).await.unwrap();
    let addr = bound.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        addr,
        stop,
        task,
        one_time,
        _tmp: tmp,
    }
}

impl Running {
    /// Stops the server; the data directory stays until the returned handle is dropped.
    async fn stop(self) -> tempfile::TempDir {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self._tmp
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_and_never_sent_times_out_as_problem_json_with_retry_after() {
    let r = start(1).await;
    let mut s = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"pho",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer comes after the time-out; the connection then closes or stays open: read what
    // came within a few seconds.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("content-type: application/problem+json"), "{text}");
    assert!(text.contains("retry-after:"), "{text}");
    assert!(text.contains("urn:healthcode:problem:unavailable"), "{text}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sign_out_needs_the_pages_header_and_then_revokes_the_session() {
    let r = start(10).await;
    let c = reqwest::Client::new();
    let one_time = r.one_time.clone();
    // Signed in from the pages: the session comes as a cookie (and in the answer).
    let resp = c
        .post(format!("{}/api/v1/admin/sessions", r.base))
        .header("x-healthcode-web", "1")
        .json(&json!({"username": "officer-zhao", "password": one_time, "new_password": "lantern orbit mango vessel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-hc_staff="), "{cookie}");
    let token = cookie.trim_start_matches("__Host-hc_staff=").to_owned();
    let whoami = async || {
        c.get(format!("{}/api/v1/admin/me", r.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(whoami().await, 200);
    // Another site's form posts the cookie without the header: refused, and the session lives.
    let resp = c
        .post(format!("{}/console/signout", r.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(whoami().await, 200);
    // From the pages: the cookie is cleared and the session revoked, so a copy of the token is
    // worth nothing.
    let resp = c
        .post(format!("{}/console/signout", r.base))
        .header("cookie", &cookie)
        .header("x-healthcode-web", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(whoami().await, 401);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_or_command_on_the_same_directory_is_refused_naming_the_first() {
    let r = start(10).await;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: r._tmp.path().join("data"),
        ..Config::default()
    };
    let chain = |e: &healthcode_server::StartError| healthcode_server::problem::ErrorChain(e).to_string();
    let e = healthcode_server::bind(&config).await.unwrap_err();
    let pid = format!("process {}", std::process::id());
    assert!(chain(&e).contains(&pid), "{}", chain(&e));
    let e = healthcode_server::ops::create_account_now(&config, "officer-qian", Role::Officer)
        .await
        .unwrap_err();
    assert!(chain(&e).contains("in use by"), "{}", chain(&e));
    let e = healthcode_server::ops::purge_now(&config).await.unwrap_err();
    assert!(chain(&e).contains("in use by"), "{}", chain(&e));
    // Reading the audit chain is allowed beside the server (an auditor's check).
    assert!(
        healthcode_server::ops::verify_audit_now(&config)
            .await
            .unwrap()
            .is_ok()
    );
    let _dir = r.stop().await;
    // Once it has stopped, the directory is free again.
    healthcode_server::ops::create_account_now(&config, "officer-qian", Role::Officer)
        .await
        .unwrap();
}
