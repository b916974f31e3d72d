//! `sslmode` in the URL, against the test database (`HEALTHCODE_TEST_POSTGRES_URL`) and against
//! a server that offers no TLS: `disable` connects in clear, `require` against a server without
//! TLS fails saying so, and where the test database offers TLS, `require` is encrypted,
//! `verify-full` with the public roots refuses its self-signed certificate, and `verify-ca` with
//! that certificate as `sslrootcert` accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_store::HealthStore;
use healthcode_store_postgres::testing::TestSchema;
use healthcode_store_postgres::{DatabaseUrl, PgStore};

/// `url` with `params` added to its query.
fn with(url: &DatabaseUrl, params: &str) -> DatabaseUrl {
    let u = url.expose();
    let sep = if u.contains('?') { '&' } else { '?' };
    DatabaseUrl::new(format!("{u}{sep}{params}"))
}

/// Whether this connection is encrypted, as the server sees it.
async fn encrypted(store: &PgStore) -> bool {
    let rows = store
        .raw_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    rows[0].get::<_, bool>(0)
}

/// Every message of an error's chain, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    healthcode_store::conformance::messages(e).join(": ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_connects_in_clear() {
    let Some(schema) = TestSchema::from_env("hc_tls") else {
        return;
    };
    let store = PgStore::connect(&with(schema.url(), "sslmode=disable"), Some(schema.name()), 2)
        .await
        .unwrap();
    store.check_writable().await.unwrap();
    assert!(!encrypted(&store).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_against_a_server_without_tls_fails_saying_so() {
    // A server that answers the TLS request "N", as PostgreSQL with ssl = off does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).await.is_ok() {
                let _ = s.write_all(b"N").await;
            }
        }
    });
    let url = DatabaseUrl::new(format!(
        "postgres://postgres@127.0.0.1:{port}/test?sslmode=require"
    ));
    let err = PgStore::connect(&url, None, 1).await.unwrap_err();
    let text = chain(&err);
    assert!(text.contains("TLS"), "{text}");
    assert!(text.contains("server does not support TLS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sslmode_is_refused_before_connecting() {
    let url = DatabaseUrl::new("postgres://postgres@127.0.0.1:1/test?sslmode=verify-everything");
    let err = PgStore::connect(&url, None, 1).await.unwrap_err();
    assert!(
        chain(&err).contains("sslmode=verify-everything"),
        "{}",
        chain(&err)
    );
}

/// The test server's certificate file, when it offers TLS with one readable here.
async fn server_certificate(schema: &TestSchema) -> Option<String> {
    let store = PgStore::connect(&with(schema.url(), "sslmode=disable"), Some(schema.name()), 1)
        .await
        .unwrap();
    let rows = store
        .raw_query("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
        .await
        .unwrap();
    let (on, file): (String, String) = (rows[0].get(0), rows[0].get(1));
    if on != "on" || !std::path::Path::new(&file).exists() {
        eprintln!("note: the test database offers no TLS here; the verified-TLS checks did not run");
        return None;
    }
    Some(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_server_offers_tls_require_encrypts_and_verification_checks_the_certificate() {
    let Some(schema) = TestSchema::from_env("hc_tls") else {
        return;
    };
    let Some(cert) = server_certificate(&schema).await else {
        return;
    };
    let store = PgStore::connect(&with(schema.url(), "sslmode=require"), Some(schema.name()), 2)
        .await
        .unwrap();
    store.check_writable().await.unwrap();
    assert!(encrypted(&store).await, "sslmode=require connected in clear");
    // A self-signed certificate is not signed by a public root.
    let err = PgStore::connect(&with(schema.url(), "sslmode=verify-full"), Some(schema.name()), 1)
        .await
        .unwrap_err();
    assert!(
        chain(&err).to_lowercase().contains("certificate"),
        "{}",
        chain(&err)
    );
    // With it as the root, verify-ca accepts it.
    let store = PgStore::connect(
        &with(schema.url(), &format!("sslmode=verify-ca&sslrootcert={cert}")),
        Some(schema.name()),
        2,
    )
    .await
    .unwrap();
    assert!(encrypted(&store).await);
}
