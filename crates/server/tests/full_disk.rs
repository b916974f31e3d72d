//! A full disk under the SQLite store, on a small tmpfs mounted for the test (root only; elsewhere
//! the tests say so and pass): writes are answered 503 with Retry-After (never 500), `/readyz`
//! says not ready, the check-in merger backs off and logs once, and once space is freed the server
//! is ready again by itself and takes writes; every scan acknowledged is kept. With a floor of free
//! space the writes are refused before the disk is full.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{TestApp, Venue};
use healthcode_store::CheckinStore;
use serde_json::{Value, json};

/// Everything the server logs in this test binary.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    })
}

fn logged() -> String {
    String::from_utf8_lossy(&log().0.lock().unwrap()).into_owned()
}

/// A tmpfs of `mb` MiB, unmounted when dropped; `None` (with a note) where mounting is not allowed.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: cannot mount a tmpfs here (needs root); the full-disk test did not run");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free.
    fn free(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Writes a ballast file of `bytes` (or until the disk is full, if that comes first).
    fn ballast(&self, bytes: u64) -> PathBuf {
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x55u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn ready_status(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (at most `limit`) for `/readyz` to answer `want`.
async fn wait_ready_status(app: &TestApp, want: u16, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = ready_status(app).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "/readyz still {got} after {limit:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads `n` scans from `seq` on: the status, Retry-After, and the body.
async fn upload(app: &TestApp, venue: &Venue, token: &str, seq: i64, n: i64) -> (u16, bool, Value) {
    let at = common::rfc3339(healthcode_server::now());
    let scans: Vec<Value> = (seq..seq + n)
        .map(|s| json!({"token": token, "seq": s, "at": at}))
        .collect();
    let r = app
        .client
        .post(app.url("/api/v1/scans/batch"))
        .bearer_auth(&venue.key)
        .json(&json!({"venue": venue.id, "scans": scans}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").is_some();
    if status >= 400 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    (status, retry, r.json().await.unwrap())
}

/// The scans stored at the venue, read from the stopped server's files.
async fn stored(app: &TestApp, venue: &Venue) -> usize {
    let store = healthcode_store_sqlite::SqliteStore::open(
        &app.config.data_dir.join("healthcode.db"),
        healthcode_store_sqlite::OpenMode::MustExist,
    )
    .unwrap();
    let now = healthcode_server::now();
    store
        .checkins_at_venue(
            healthcode_domain::VenueId(venue.id),
            now - time::Duration::days(1),
            now + time::Duration::days(1),
        )
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_not_a_500_and_the_server_recovers_once_space_is_freed() {
    log();
    let Some(disk) = Tmpfs::mount(40) else { return };
    let mut app = TestApp::sqlite_with(|c| {
        c.data_dir = disk.path().join("data");
        c.storage.min_free_mb = 0;
        // The same code scanned again and again fills the disk: each scan is its own check-in.
        c.limits.same_visit_seconds = 0;
    })
    .await;
    let venue = app.clinic().await;
    let holder = app.register_resident().await;
    let token = app.token(&holder).await;
    let (s, _, v) = upload(&app, &venue, &token, 0, 100).await;
    assert_eq!(s, 200, "{v}");
    let mut acked = 100;
    let ballast = disk.ballast(u64::MAX);
    // Writes go on until the disk has no room left: then each is a 503 with Retry-After.
    let mut seq = 100;
    let mut refused = None;
    for _ in 0..200 {
        let (s, retry, v) = upload(&app, &venue, &token, seq, 500).await;
        match s {
            200 => acked += v["recorded"].as_u64().unwrap(),
            503 => {
                assert!(retry, "{v}");
                refused = Some(v);
                break;
            }
            other => panic!("a write on a full disk answered {other}: {v}"),
        }
        seq += 500;
    }
    let refused = refused.expect("100,000 scans on a full 40 MiB disk and none refused");
    assert_eq!(refused["type"], "urn:healthcode:problem:unavailable");
    wait_ready_status(&app, 503, Duration::from_secs(5)).await;
    // The merger (when it has check-ins to move) is failing too, and says so once, not every few
    // hundred milliseconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warnings = logged()
        .lines()
        .filter(|l| l.contains("moving check-ins from the inbox failed") && l.contains("disk is full"))
        .count();
    assert!(
        warnings <= 1,
        "the merger warned of a full disk {warnings} times in 3 s: {}",
        logged()
            .lines()
            .filter(|l| l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Space is freed: ready again by itself, and writes are taken.
    std::fs::remove_file(&ballast).unwrap();
    wait_ready_status(&app, 200, Duration::from_secs(15)).await;
    let (s, _, v) = upload(&app, &venue, &token, 1_000_000, 100).await;
    assert_eq!(s, 200, "{v}");
    acked += 100;
    if warnings == 1 {
        assert!(logged().contains("check-ins are moved from the inbox again"));
    }
    app.stop().await;
    assert_eq!(
        stored(&app, &venue).await as u64,
        acked,
        "acknowledged scans lost"
    );
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_floor_of_free_space_writes_are_refused_before_they_are_tried() {
    log();
    let Some(disk) = Tmpfs::mount(64) else { return };
    let mut app = TestApp::sqlite_with(|c| {
        c.data_dir = disk.path().join("data");
        c.storage.min_free_mb = 16;
        // The same code scanned again and again fills the disk: each scan is its own check-in.
        c.limits.same_visit_seconds = 0;
    })
    .await;
    let venue = app.clinic().await;
    let holder = app.register_resident().await;
    let token = app.token(&holder).await;
    assert_eq!(app.scan(&venue, &token, 1).await["recorded"], true);
    assert_eq!(ready_status(&app).await, 200);
    // Leave 8 MiB free: below the floor of 16, though writes would still fit.
    let ballast = disk.ballast(disk.free() - (8 << 20));
    wait_ready_status(&app, 503, Duration::from_secs(5)).await;
    let (s, v) = app.try_scan(&venue.key, venue.id, &token, 2).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["type"], "urn:healthcode:problem:unavailable");
    let free_then = disk.free();
    assert!(
        free_then > 7 << 20,
        "the refused writes took space: {free_then} bytes left"
    );
    // Reads still work.
    assert_eq!(app.code(&holder).await["colour"], "green");
    std::fs::remove_file(&ballast).unwrap();
    wait_ready_status(&app, 200, Duration::from_secs(15)).await;
    assert_eq!(app.scan(&venue, &token, 2).await["recorded"], true);
    app.stop().await;
    assert_eq!(stored(&app, &venue).await, 2);
    drop(app);
}
