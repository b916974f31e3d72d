//! A database that fails under the server: the client gets an opaque 500 in problem+json, and
//! the log gets the whole cause chain, the database's own message included (PostgreSQL's is a
//! source of the driver's error, not its text, and used to be lost).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use healthcode_server::Config;
use healthcode_store_postgres::testing::TestSchema;

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

/// Starts the server on `config`, breaks its database with `break_it`, asks for readiness (which
/// reads the risk areas), and returns the answer.
async fn ready_after(config: Config, break_it: impl AsyncFnOnce()) -> (u16, String, String) {
    log();
    let bound = healthcode_server::bind(&config).await.unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{base}/readyz")).send().await.unwrap().status(),
        200
    );
    break_it().await;
    let resp = c.get(format!("{base}/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.text().await.unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    (status, ct, body)
}

fn assert_opaque(status: u16, ct: &str, body: &str, secret: &str) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(ct, "application/problem+json");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "urn:healthcode:problem:internal");
    assert_eq!(
        v["detail"],
        "the server failed to handle the request; it has been logged"
    );
    assert!(!body.contains(secret), "the cause leaked to the client: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sqlite_database_is_an_opaque_500_and_its_message_is_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        ..Config::default()
    };
    let db = tmp.path().join("data").join("healthcode.db");
    let (status, ct, body) = ready_after(config, async || {
        // A second connection to the same file drops the table the server reads.
        let other =
            healthcode_store_sqlite::SqliteStore::open(&db, healthcode_store_sqlite::OpenMode::MustExist)
                .unwrap();
        other.raw_execute("DROP TABLE risk_areas").unwrap();
    })
    .await;
    assert_opaque(status, &ct, &body, "risk_areas");
    let log = logged();
    assert!(log.contains("no such table: risk_areas"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_postgres_database_is_an_opaque_500_and_its_own_message_is_logged() {
    let Some(schema) = TestSchema::from_env("hc_fault") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        database_url: Some(schema.url().expose().to_owned()),
        database_schema: Some(schema.name().to_owned()),
        ..Config::default()
    };
    let (status, ct, body) = ready_after(config, async || {
        let other = schema.connect(1).await.unwrap();
        other.raw_query("DROP TABLE risk_areas").await.unwrap();
    })
    .await;
    assert_opaque(status, &ct, &body, "risk_areas");
    let log = logged();
    // PostgreSQL's own words, which the driver keeps as the error's source.
    assert!(log.contains("relation \"risk_areas\" does not exist"), "{log}");
}
