//! The front door under slow and many clients: a request head trickled byte by byte, a
//! connection that never sends one, a kept-alive connection left idle, more connections than the
//! cap, and more requests at once than the server handles (shed with 503 and Retry-After, counted
//! in `requests_shed_total`). Every wait is bounded in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's address.
fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); returns what was read and
/// when the close came, if it came.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn with_timeouts(header: u64, idle: u64) -> TestApp {
    TestApp::sqlite_with(|c| {
        c.header_read_timeout_seconds = header;
        c.idle_timeout_seconds = idle;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_slower_than_the_time_out_is_closed() {
    let mut app = with_timeouts(1, 30).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let start = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = None;
    for b in head.iter() {
        if s.write_all(&[*b]).await.is_err() {
            closed = Some(Instant::now());
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = Some(Instant::now());
                break;
            }
            Ok(Ok(_)) => panic!("the trickled request was answered"),
            Err(_) => {}
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still open after 5 s");
    }
    let closed = closed.expect("the whole head was sent and nothing closed the connection");
    let after = closed - start;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}; the time-out is 1 s"
    );
    // A client that sends its head at once is served as before.
    assert_eq!(app.get("/healthz", None).await, "ok");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_a_request_is_closed_after_the_header_time_out() {
    let mut app = with_timeouts(1, 30).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let start = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let closed = closed.expect("a silent connection was still open after 5 s");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(
        closed - start >= Duration::from_millis(900),
        "{:?}",
        closed - start
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_time_out_and_not_before() {
    let mut app = with_timeouts(1, 2).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let answered = Instant::now();
    // Kept alive past the header time-out (1 s): a second request after 1.5 s is still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "after {:?}",
        answered.elapsed()
    );
    let answered = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(6)).await;
    let idle = closed.expect("an idle connection was still open after 6 s") - answered;
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_secs(4),
        "closed after {idle:?} idle; the time-out is 2 s"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_answered_503_with_retry_after_and_closed() {
    let mut app = TestApp::sqlite_with(|c| {
        c.max_connections = 4;
        c.header_read_timeout_seconds = 10;
    })
    .await;
    // Four connections that send nothing hold the cap.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(addr(&app)).await.unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut fifth, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the refused connection was not closed");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{text}");
    assert!(lower.contains("content-type: application/problem+json"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    // The length it declares is the body's (a longer one left clients waiting for bytes).
    let declared = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse::<usize>()
        .unwrap();
    assert_eq!(declared, body.len(), "{text}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], 503);
    assert_eq!(v["type"], "urn:healthcode:problem:unavailable");
    // One held connection goes: a new one is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = TcpStream::connect(addr(&app)).await.unwrap();
    next.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut next, Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("healthcode_connections_refused_total 1"), "{text}");
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_at_once_are_shed_quickly_with_503_and_counted() {
    let mut app = TestApp::sqlite_with(|c| {
        c.max_in_flight = 2;
        c.max_queue_ms = 5;
    })
    .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (client, url) = (reqwest::Client::new(), app.url("/readyz"));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").is_some();
                let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
                let body = r.text().await.unwrap();
                out.push((status, retry, ct, body, t.elapsed()));
            }
            out
        }));
    }
    let mut shed = 0;
    let mut ready = 0;
    for t in tasks {
        for (status, retry, ct, body, took) in t.await.unwrap() {
            match status {
                200 => ready += 1,
                503 => {
                    assert!(retry, "a shed request without Retry-After");
                    assert_eq!(ct, "application/problem+json");
                    assert!(body.contains("at capacity"), "{body}");
                    assert!(took < Duration::from_secs(2), "a shed answer took {took:?}");
                    shed += 1;
                }
                other => panic!("{other}: {body}"),
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(ready > 0, "nothing was admitted");
    assert!(
        shed > 0,
        "600 requests on two turns with 5 ms of queue and none shed"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!("healthcode_requests_shed_total {shed}\n")),
        "{shed} shed; {metrics}"
    );
    // Once the burst is over the server admits again.
    assert_eq!(app.get("/readyz", None).await, "ready");
    app.stop().await;
}

/// Sends `head` on `s` and reads one whole answer (its head and `content-length` bytes of body).
async fn ask(s: &mut TcpStream, head: &str) -> String {
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|n| n.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("no answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed after {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_admitted_connections_new_ones_that_queue_get_503_and_close_while_admitted_ones_are_served()
{
    // K is the floor, 2, with so few requests completed; a new connection counts as queueing
    // when its first bytes come 500 ms or more after its accept.
    let mut app = TestApp::sqlite_with(|c| {
        c.admitted_wait_ms = 1000;
        c.admitted_floor = 2;
        c.request_timeout_seconds = 60;
        c.header_read_timeout_seconds = 30;
    })
    .await;
    let policy = "GET /api/v1/trust-list HTTP/1.1\r\nHost: x\r\n\r\n";
    // One connection admitted by a request answered, one by a request that stays in flight (its
    // body never comes).
    let mut admitted = TcpStream::connect(addr(&app)).await.unwrap();
    let first = ask(&mut admitted, policy).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut held = TcpStream::connect(addr(&app)).await.unwrap();
    held.write_all(b"POST /api/v1/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"pho")
        .await
        .unwrap();
    // Connections that wait before their request, as each does in a queue of sockets; one after
    // another, so that the door has seen the first ones' wait when the later ones ask.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..8u64 {
        let (tx, to) = (tx.clone(), addr(&app));
        tokio::spawn(async move {
            let mut s = TcpStream::connect(to).await.unwrap();
            tokio::time::sleep(Duration::from_millis(700 + i * 150)).await;
            s.write_all(b"GET /api/v1/trust-list HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
            let _ = tx.send((String::from_utf8_lossy(&got).into_owned(), closed.is_some()));
        });
    }
    drop(tx);
    let mut refused = 0;
    let mut served = 0;
    while let Some((text, closed)) = rx.recv().await {
        if text.starts_with("HTTP/1.1 200") {
            served += 1;
            continue;
        }
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        let lower = text.to_ascii_lowercase();
        // Refused clients are told 1, 2 or 3 seconds in turn, so that they do not all come back
        // together.
        assert!(
            ["retry-after: 1\r", "retry-after: 2\r", "retry-after: 3\r"]
                .iter()
                .any(|h| lower.contains(h)),
            "{text}"
        );
        assert!(lower.contains("connection: close"), "{text}");
        assert!(lower.contains("content-type: application/problem+json"), "{text}");
        assert!(text.contains("urn:healthcode:problem:unavailable"), "{text}");
        assert!(closed, "a refused connection was left open");
        if refused == 0 {
            // While others are refused, the admitted connection is served and liveness answers
            // on a new connection.
            let again = ask(&mut admitted, policy).await;
            assert!(again.starts_with("HTTP/1.1 200"), "{again}");
            assert_eq!(app.get("/healthz", None).await, "ok");
        }
        refused += 1;
    }
    assert!(
        refused > 0,
        "8 queued connections past K = 2 and none refused ({served} served)"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!("healthcode_requests_not_admitted_total {refused}\n")),
        "{refused} refused; {metrics}"
    );
    assert!(metrics.contains("healthcode_admission_limit "), "{metrics}");
    assert!(metrics.contains("healthcode_admitted_connections "), "{metrics}");
    assert!(
        metrics.contains("healthcode_first_read_wait_seconds "),
        "{metrics}"
    );
    drop(held);
    app.stop().await;
}
