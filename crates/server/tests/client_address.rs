//! The per-address limit on one-time codes keys on the client: the TCP peer, or behind a
//! configured reverse proxy the address it forwarded for. Without a trusted proxy the forwarding
//! headers are ignored, so a client cannot buy a fresh budget by naming another address; behind
//! one, one client's requests no longer shut out everyone else behind the same proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_server::Config;
use healthcode_server::sms::{SmsConfig, SmsKind};
use serde_json::json;

struct Running {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

async fn start(trusted_proxies: &[&str]) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        otp_per_address_per_hour: 2,
        trusted_proxies: trusted_proxies.iter().map(|p| p.parse().unwrap()).collect(),
        sms: SmsConfig {
            kind: SmsKind::Console,
            url: None,
            ..SmsConfig::default()
        },
        ..Config::default()
    };
    let bound = healthcode_server::bind(&config).await.unwrap();
    let url = format!("http://{}/api/v1/otp", bound.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop,
        task,
        _tmp: tmp,
    }
}

/// Asks for a code for phone number `n` (each a different phone, so only the address limit can
/// refuse), with an X-Forwarded-For header; returns the status.
async fn ask(r: &Running, n: u32, forwarded_for: &str) -> u16 {
    ask_with(r, n, forwarded_for, None).await
}

/// The same, with a `Forwarded` header the client wrote itself (a proxy that appends
/// X-Forwarded-For passes it through).
async fn ask_with(r: &Running, n: u32, forwarded_for: &str, forwarded: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().post(&r.url);
    if let Some(f) = forwarded {
        req = req.header("forwarded", f);
    }
    req.header("x-forwarded-for", forwarded_for)
        .json(&json!({"phone": format!("+861380013{n:04}")}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_escape_the_address_limit_by_naming_other_addresses() {
    let r = start(&[]).await;
    assert_eq!(ask(&r, 1, "203.0.113.1").await, 202);
    assert_eq!(ask(&r, 2, "203.0.113.2").await, 202);
    // Third from the same peer: the header is not believed.
    assert_eq!(ask(&r, 3, "203.0.113.3").await, 429);
    let _ = r.stop.send(());
    r.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() {
    let r = start(&["127.0.0.1/32"]).await;
    assert_eq!(ask(&r, 1, "203.0.113.1").await, 202);
    assert_eq!(ask(&r, 2, "203.0.113.1").await, 202);
    assert_eq!(ask(&r, 3, "203.0.113.1").await, 429);
    // What the client itself wrote stands left of what the proxy appended: no escape that way.
    assert_eq!(ask(&r, 4, "198.51.100.9, 203.0.113.1").await, 429);
    // Nor by a Forwarded header of its own: the proxy writes X-Forwarded-For, so only that counts.
    assert_eq!(
        ask_with(&r, 6, "203.0.113.1", Some("for=198.51.100.50")).await,
        429
    );
    // Everyone else behind the proxy is not shut out.
    assert_eq!(ask(&r, 5, "203.0.113.2").await, 202);
    let _ = r.stop.send(());
    r.task.await.unwrap().unwrap();
}
