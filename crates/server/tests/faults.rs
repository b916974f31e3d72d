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

/// A TCP link to PostgreSQL that a test can cut and mend, so that the database goes away for one
/// server while the shared database keeps running for every other test.
struct Link {
    port: u16,
    target: std::net::SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Link {
    async fn open(target: std::net::SocketAddr) -> Link {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Link {
            port,
            target,
            tasks: Arc::default(),
        };
        link.serve(listener);
        link
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Every connection through the link breaks, and new ones are refused.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Connections go through again, on the same port.
    async fn mend(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_a_503_with_retry_after_and_the_server_recovers_by_itself() {
    let Some(schema) = TestSchema::from_env("hc_outage") else {
        return;
    };
    log();
    let pg: tokio_postgres::Config = schema.url().expose().parse().unwrap();
    let host = match &pg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".to_owned(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let link = Link::open(target).await;
    let user = pg.get_user().unwrap_or("postgres");
    let db = pg.get_dbname().unwrap_or("test");
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        database_url: Some(format!("postgres://{user}@127.0.0.1:{}/{db}", link.port)),
        database_schema: Some(schema.name().to_owned()),
        ..Config::default()
    };
    let bound = healthcode_server::bind(&config).await.unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    let c = reqwest::Client::new();
    let ready = async || c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready().await.status(), 200);
    link.cut();
    // Gone: every try is a 503 with Retry-After, in problem+json, never a 500.
    for _ in 0..3 {
        let r = ready().await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["type"], "urn:healthcode:problem:unavailable");
    }
    // Back: the server finds it again by itself.
    link.mend().await;
    let mut back = false;
    for _ in 0..50 {
        if ready().await.status() == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the server did not recover once the database was back");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    link.cut();
    drop(schema);
}
