//! One harness for the server's HTTP tests: [`TestApp`] starts the real server from the library on
//! 127.0.0.1:0 (on SQLite in a temporary directory, or on PostgreSQL in a schema of its own), with
//! a fake SMS gateway and a real-name registry (both real HTTP servers on random ports); its
//! request helpers hold every error answer to problem+json, and it signs in as each staff role and
//! registers holders the way a phone would, after telling the registry about them.

// Each test file uses a different part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use healthcode_server::Config;
use healthcode_server::identity::{DocumentJson, IdentityConfig, IdentityKind, RegistryRequest};
use healthcode_server::sms::{SmsConfig, SmsKind};
use healthcode_store::Role;
use healthcode_store_postgres::testing::TestSchema;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

/// Runs each named `async fn(&TestApp)` of the calling file on a fresh server on each backend, as
/// the tests `sqlite::name` and `postgres::name`, and stops the server after it. With
/// `configured by f;` first, `f: fn(&mut Config)` changes the configuration before the start.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    (configured by $configure:ident; $($name:ident),* $(,)?) => {
        mod sqlite {
            $crate::common::on_both_backends!(@on Sqlite, super::$configure; $($name),*);
        }
        mod postgres {
            $crate::common::on_both_backends!(@on Postgres, super::$configure; $($name),*);
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $crate::common::on_both_backends!(@on Sqlite, $crate::common::as_is; $($name),*);
        }
        mod postgres {
            $crate::common::on_both_backends!(@on Postgres, $crate::common::as_is; $($name),*);
        }
    };
    (@on $backend:ident, $configure:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $crate::common::Backend::$backend;
                let Some(mut app) = $crate::common::TestApp::start(backend, true, $configure).await else {
                    return;
                };
                super::$name(&app).await;
                app.stop().await;
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// The configuration as the harness makes it.
pub fn as_is(_: &mut Config) {}

/// Where the server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded database, in a temporary directory.
    Sqlite,
    /// A fresh schema in the database named by `HEALTHCODE_TEST_POSTGRES_URL`.
    Postgres,
}

/// A fake SMS gateway: keeps every message posted to it.
#[derive(Debug, Clone, Default)]
pub struct Gateway(Arc<Mutex<Vec<(String, String)>>>);

impl Gateway {
    /// Starts it; returns the URL to post to.
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

    /// Every text sent to a phone, oldest first.
    pub fn sent_to(&self, phone: &str) -> Vec<String> {
        let msgs = self.0.lock().unwrap();
        msgs.iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// The last code sent to a phone.
    pub fn code_for(&self, phone: &str) -> String {
        let msgs = self.0.lock().unwrap();
        let (_, text) = msgs
            .iter()
            .rev()
            .find(|(to, text)| to == phone && text.starts_with("one-time code"))
            .expect("no SMS to this phone");
        text.rsplit(' ').next().unwrap().to_owned()
    }

    /// The last staff one-time password (or half of one) sent to a phone.
    pub fn password_for(&self, phone: &str) -> String {
        let msgs = self.0.lock().unwrap();
        let (_, text) = msgs
            .iter()
            .rev()
            .find(|(to, text)| to == phone && text.contains("one-time password "))
            .expect("no password was sent to this phone");
        let after = text.split("one-time password ").nth(1).unwrap();
        after.split('.').next().unwrap().to_owned()
    }

    /// Every text sent to a phone, oldest first.
    pub fn texts_to(&self, phone: &str) -> Vec<String> {
        let msgs = self.0.lock().unwrap();
        msgs.iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// Waits (up to 5 s) for a text to a phone that contains `needle`, for texts the server
    /// sends after it has answered; false if none came.
    pub async fn wait_for_text(&self, phone: &str, needle: &str) -> bool {
        for _ in 0..250 {
            if self.texts_to(phone).iter().any(|t| t.contains(needle)) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }
}

/// How the fake registry behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryMode {
    /// Answers from what it knows.
    Up,
    /// Answers 503.
    Down,
    /// Answers 200 with a body that is not the registry's answer.
    Garbage,
    /// Answers after 3 s (the server's time-out is 1 s).
    Slow,
}

/// A fake real-name registry, over HTTP as the `http` adapter expects: knows people as (name,
/// document, phone) and answers `match` when all three are one person's.
#[derive(Debug, Clone)]
pub struct Registry {
    people: Arc<Mutex<Vec<RegistryRequest>>>,
    asked: Arc<Mutex<Vec<RegistryRequest>>>,
    mode: Arc<Mutex<RegistryMode>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            people: Arc::default(),
            asked: Arc::default(),
            mode: Arc::new(Mutex::new(RegistryMode::Up)),
        }
    }
}

impl Registry {
    /// Starts it; returns the URL to post to.
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/verify",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, axum::Json(q): axum::Json<RegistryRequest>| {
                    let me = me.clone();
                    async move {
                        use axum::response::IntoResponse;
                        me.asked.lock().unwrap().push(q.clone());
                        let mode = *me.mode.lock().unwrap();
                        // No token is configured for the tests' servers (the adapter's own tests
                        // send one).
                        assert!(headers.get("authorization").is_none());
                        match mode {
                            RegistryMode::Down => {
                                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
                            }
                            RegistryMode::Garbage => "<html>maintenance</html>".into_response(),
                            RegistryMode::Slow => {
                                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                                axum::Json(json!({"result": "match"})).into_response()
                            }
                            RegistryMode::Up => {
                                let found = me.people.lock().unwrap().iter().any(|p| same_person(p, &q));
                                let result = if found { "match" } else { "no-match" };
                                axum::Json(json!({"result": result})).into_response()
                            }
                        }
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/verify")
    }

    /// Makes it know a person: their name, document and the phone registered to them. Values are
    /// normalised as the server sends them (`x` upper-cased, phones in E.164).
    pub fn know(&self, name: &str, document: DocumentJson, phone: &str) {
        let document = match document {
            DocumentJson::ResidentId { number } => DocumentJson::ResidentId {
                number: number.trim().to_ascii_uppercase(),
            },
            DocumentJson::Passport { number, nationality } => DocumentJson::Passport {
                number: number.trim().to_ascii_uppercase(),
                nationality: nationality.trim().to_ascii_uppercase(),
            },
        };
        self.people.lock().unwrap().push(RegistryRequest {
            name: name.to_owned(),
            document,
            phone: healthcode_domain::Phone::parse(phone)
                .unwrap()
                .as_str()
                .to_owned(),
        });
    }

    /// Makes it know the person a registration (as posted to `/api/v1/holders`) names.
    pub fn know_registration(&self, r: &Value) {
        let document = if r["kind"] == "resident" {
            DocumentJson::ResidentId {
                number: r["resident_id"].as_str().unwrap().to_owned(),
            }
        } else {
            DocumentJson::Passport {
                number: r["passport"].as_str().unwrap().to_owned(),
                nationality: r["nationality"].as_str().unwrap().to_owned(),
            }
        };
        self.know(
            r["name"].as_str().unwrap(),
            document,
            r["phone"].as_str().unwrap(),
        );
    }

    /// Sets how it answers.
    pub fn set_mode(&self, mode: RegistryMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The questions it was asked, oldest first.
    pub fn asked(&self) -> Vec<RegistryRequest> {
        self.asked.lock().unwrap().clone()
    }
}

fn same_person(known: &RegistryRequest, asked: &RegistryRequest) -> bool {
    let name = healthcode_domain::FullName::parse(&asked.name).unwrap();
    known.document == asked.document && known.phone == asked.phone && name.same_as(&known.name)
}

/// What a test server is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The fake registry over HTTP (the default).
    Registry,
    /// No registry: self-registration closed.
    None,
    /// The demo adapter over a file in the data directory's parent.
    Demo,
}

/// Seconds before a phone may get another code, in the tests' servers.
pub const RESEND_SECONDS: u32 = 3;

/// The staff accounts every app is made with besides `root`, on the command line's path.
/// The phone of a staff account the tests make (E.164), from its username: where its one-time
/// passwords are sent.
pub fn staff_phone(username: &str) -> String {
    let h = username.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    format!("+86139{:08}", h % 100_000_000)
}

const STAFF: [(&str, Role); 4] = [
    ("admin-b", Role::Admin),
    ("officer-a", Role::Officer),
    ("officer-b", Role::Officer),
    ("auditor-a", Role::Auditor),
];

/// A one-time code sent, as its requester knows it.
#[derive(Debug, Clone)]
pub struct Otp {
    /// The challenge `POST /otp` answered with.
    pub challenge: String,
    /// The code the phone received.
    pub code: String,
}

impl Otp {
    /// Puts the challenge and the code into a registration or sign-in body.
    pub fn fill(&self, body: &mut Value) {
        body["challenge"] = self.challenge.clone().into();
        body["otp"] = self.code.clone().into();
    }
}

/// A signed-in staff account, with what its owner holds: the password, the authenticator app's
/// secret and the recovery codes.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The session token.
    pub token: String,
    /// How the audit log names it: `officer:<id>:<username>`.
    pub actor: String,
    /// The account's id.
    pub id: i64,
    /// Its username.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The TOTP secret its authenticator app holds (empty when none is enrolled).
    pub secret: Vec<u8>,
    /// The recovery codes it was given.
    pub recovery_codes: Vec<String>,
    /// The last time step whose code the harness sent, so that it never sends one twice.
    pub last_step: Arc<Mutex<i64>>,
}

impl Staff {
    /// A code the authenticator app would show that has not been sent yet: the current step's,
    /// or the next one's (which the server takes for a clock a little ahead), waiting for the
    /// step to come when both were sent already.
    pub async fn next_code(&self) -> String {
        loop {
            let now = healthcode_server::totp::step_at(OffsetDateTime::now_utc());
            {
                let mut last = self.last_step.lock().unwrap();
                let step = (*last + 1).max(now - 1);
                if step <= now + 1 {
                    *last = step;
                    return healthcode_server::totp::code(&self.secret, step);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Notes that the step of a code sent some other way was used.
    pub fn used_step(&self, step: i64) {
        let mut last = self.last_step.lock().unwrap();
        *last = (*last).max(step);
    }
}

/// A registered holder, signed in.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The session token.
    pub token: String,
    /// The holder id in hex.
    pub hex: String,
}

/// A venue with one scanning device.
#[derive(Debug, Clone)]
pub struct Venue {
    /// Its id.
    pub id: i64,
    /// The device's key.
    pub key: String,
}

#[derive(Debug)]
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The server, running, and what it needs. Dropped in field order: the server stops (its
/// shutdown channel closes) before the schema and the data directory go.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for the requests that need more than the helpers give.
    pub client: reqwest::Client,
    /// The configuration it runs with (its data directory stays until the app is dropped).
    pub config: Config,
    /// The SMS gateway one-time codes go to.
    pub gateway: Gateway,
    /// The real-name registry the server asks (when it is configured with it).
    pub registry: Registry,
    /// Sends the holders' read digest now, as the daily task does (set while the server runs).
    pub read_digest: Option<healthcode_server::consent::told::DigestTrigger>,
    server: Option<Running>,
    admin_password: String,
    /// One-time passwords of the staff accounts made with the app (back-dated, so that they may
    /// approve two-person acts at once), by username.
    staff_passwords: std::collections::HashMap<&'static str, String>,
    admin: OnceCell<Staff>,
    second_admin: OnceCell<Staff>,
    officer: OnceCell<Staff>,
    second_officer: OnceCell<Staff>,
    auditor: OnceCell<Staff>,
    _schema: Option<TestSchema>,
    _tmp: tempfile::TempDir,
}

impl TestApp {
    /// A server on a fresh data directory (and, for PostgreSQL, a fresh schema) with one admin
    /// account, sending one-time codes through the fake gateway. `None` (with a note) when
    /// PostgreSQL is asked for and no test database is configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::start_as(backend, true, Identity::Registry).await
    }

    /// [`TestApp::spawn`] with another real-name registry set-up.
    pub async fn spawn_with(backend: Backend, identity: Identity) -> Option<TestApp> {
        TestApp::start_as(backend, true, identity).await
    }

    /// [`TestApp::spawn`] on SQLite, which needs nothing from the environment.
    pub async fn sqlite() -> TestApp {
        TestApp::start_as(Backend::Sqlite, true, Identity::Registry)
            .await
            .expect("SQLite needs nothing from the environment")
    }

    /// A server on SQLite with no SMS gateway configured.
    pub async fn without_gateway() -> TestApp {
        TestApp::start_as(Backend::Sqlite, false, Identity::Registry)
            .await
            .expect("SQLite needs nothing from the environment")
    }

    /// A server on SQLite whose configuration `tweak` changes first (its data directory too).
    pub async fn sqlite_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_with(Backend::Sqlite, true, Identity::Registry, tweak)
            .await
            .expect("SQLite needs nothing from the environment")
    }

    /// A server as [`TestApp::spawn`] makes it, with its configuration changed by `configure`.
    pub async fn start(backend: Backend, with_gateway: bool, configure: fn(&mut Config)) -> Option<TestApp> {
        TestApp::start_with(backend, with_gateway, Identity::Registry, configure).await
    }

    async fn start_as(backend: Backend, with_gateway: bool, identity: Identity) -> Option<TestApp> {
        TestApp::start_with(backend, with_gateway, identity, as_is).await
    }

    async fn start_with(
        backend: Backend,
        with_gateway: bool,
        identity: Identity,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<TestApp> {
        let schema = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestSchema::from_env("hc_server")?),
        };
        let tmp = tempfile::tempdir().unwrap();
        let gateway = Gateway::default();
        let sms = if with_gateway {
            SmsConfig {
                kind: SmsKind::Http,
                url: Some(gateway.start().await),
                // The region's own numbers, and Sweden's for the visitor.
                countries: vec![86, 46],
                ..SmsConfig::default()
            }
        } else {
            SmsConfig::default()
        };
        let registry = Registry::default();
        let identity = match identity {
            Identity::Registry => IdentityConfig {
                kind: IdentityKind::Http,
                url: Some(registry.start().await),
                connect_timeout_ms: 500,
                timeout_ms: 1000,
                ..IdentityConfig::default()
            },
            Identity::None => IdentityConfig::default(),
            Identity::Demo => IdentityConfig {
                kind: IdentityKind::Demo,
                file: Some(tmp.path().join("registry.json")),
                ..IdentityConfig::default()
            },
        };
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: tmp.path().join("data"),
            sms,
            identity,
            database_url: schema.as_ref().map(|s| s.url().expose().to_owned()),
            database_schema: schema.as_ref().map(|s| s.name().to_owned()),
            // As behind a reverse proxy on this machine: a test names its clients' addresses with
            // X-Forwarded-For ([`TestApp::call_from`]); without the header the client is 127.0.0.1.
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            // Short, so that a test can send a phone a second code (after the counter used one)
            // with [`TestApp::after_resend_interval`].
            otp_resend_seconds: RESEND_SECONDS,
            ..Config::default()
        };
        tweak(&mut config);
        let admin_password = healthcode_server::ops::create_account_at(
            &config,
            "root",
            Role::Admin,
            Some(&staff_phone("root")),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        // The other staff the helpers sign in are made on the command line's path too, two days
        // ago: old enough to approve what needs two people (an account younger than a day
        // approves nothing; the tests of that rule make their accounts through the API).
        let mut staff_passwords = std::collections::HashMap::new();
        let two_days_ago = OffsetDateTime::now_utc() - time::Duration::days(2);
        for (name, role) in STAFF {
            let password = healthcode_server::ops::create_account_at(
                &config,
                name,
                role,
                Some(&staff_phone(name)),
                two_days_ago,
            )
            .await
            .unwrap();
            staff_passwords.insert(name, password);
        }
        let mut app = TestApp {
            base: String::new(),
            client: reqwest::Client::new(),
            config,
            gateway,
            registry,
            read_digest: None,
            server: None,
            admin_password,
            staff_passwords,
            admin: OnceCell::new(),
            second_admin: OnceCell::new(),
            officer: OnceCell::new(),
            second_officer: OnceCell::new(),
            auditor: OnceCell::new(),
            _schema: schema,
            _tmp: tmp,
        };
        app.run().await;
        Some(app)
    }

    /// Binds (the listener is ready once this returns: no waiting) and serves until stopped.
    async fn run(&mut self) {
        let bound = healthcode_server::bind(&self.config).await.unwrap();
        self.read_digest = Some(bound.read_digest());
        self.base = format!("http://{}", bound.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.run(async move {
            let _ = rx.await;
        }));
        self.server = Some(Running { stop, task });
    }

    /// Stops the server and checks that it stopped cleanly; the data stays until the app is dropped.
    pub async fn stop(&mut self) {
        let Running { stop, task } = self.server.take().expect("the server is not running");
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }

    /// Starts a stopped server again on the same data (and the configuration as it is now).
    pub async fn start_again(&mut self) {
        self.run().await;
    }

    /// Stops the server and starts it again on the same data, at a new address.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// The URL of a path on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with an optional bearer token and JSON body. Any error answer must be
    /// problem+json. Returns the status and the body (JSON, else the text as a string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
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

    /// [`TestApp::call`] from the client `addr`, as the trusted proxy in front names it.
    pub async fn call_from(&self, addr: &str, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("x-forwarded-for", addr)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// [`TestApp::call`] that must succeed; returns the body.
    pub async fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, token, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// A GET that must succeed.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Value {
        self.ok("GET", path, token, None).await
    }

    /// A POST that must succeed.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        self.ok("POST", path, token, Some(body)).await
    }

    // ---- Staff ----

    /// Signs in with a one-time password, which alone is refused: the first sign-in must replace
    /// it, and (when the configuration requires one) enrol a second factor, computing the
    /// authenticator app's code from the secret shown.
    pub async fn staff_sign_in(&self, username: &str, one_time: &str) -> Staff {
        let (s, p) = self
            .call(
                "POST",
                "/api/v1/admin/sessions",
                None,
                Some(json!({"username": username, "password": one_time})),
            )
            .await;
        assert_eq!(s, 403, "{p}");
        let password = "correct horse battery";
        let v = self
            .post(
                "/api/v1/admin/sessions",
                None,
                json!({"username": username, "password": one_time, "new_password": password}),
            )
            .await;
        let token = v["token"].as_str().unwrap().to_owned();
        let me = self.get("/api/v1/admin/me", Some(&token)).await;
        let mut staff = Staff {
            token,
            actor: format!("officer:{}:{username}", me["id"]),
            id: me["id"].as_i64().unwrap(),
            username: username.to_owned(),
            password: password.to_owned(),
            secret: Vec::new(),
            recovery_codes: Vec::new(),
            last_step: Arc::new(Mutex::new(0)),
        };
        if v["second_factor"] == "enrol" {
            self.enrol(&mut staff).await;
        }
        staff
    }

    /// Enrols a second factor for a signed-in account, as its owner with an authenticator app.
    pub async fn enrol(&self, staff: &mut Staff) {
        let offered = self
            .post("/api/v1/admin/me/second-factor", Some(&staff.token), json!({}))
            .await;
        let secret = data_encoding::BASE32_NOPAD
            .decode(offered["secret"].as_str().unwrap().as_bytes())
            .unwrap();
        assert!(
            offered["uri"].as_str().unwrap().starts_with("otpauth://totp/"),
            "{offered}"
        );
        staff.secret = secret;
        // The enrolment takes the previous step's code (a clock a little behind), which leaves
        // the current and the next step's for the sign-ins that follow without waiting.
        *staff.last_step.lock().unwrap() = healthcode_server::totp::step_at(OffsetDateTime::now_utc()) - 2;
        let code = staff.next_code().await;
        let done = self
            .post(
                "/api/v1/admin/me/second-factor/confirm",
                Some(&staff.token),
                json!({"code": code}),
            )
            .await;
        staff.recovery_codes = done["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
    }

    /// A new session for an account that has signed in before: its password and the next code.
    pub async fn sign_in_again(&self, staff: &Staff) -> String {
        let code = staff.next_code().await;
        let v = self
            .post(
                "/api/v1/admin/sessions",
                None,
                json!({"username": staff.username, "password": staff.password, "code": code}),
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    /// One of the staff accounts made with the app, signed in.
    async fn new_staff(&self, username: &'static str) -> Staff {
        self.staff_sign_in(username, &self.staff_passwords[username])
            .await
    }

    /// A staff account made through the API as two admins make one: `root` proposes it, with
    /// its owner's phone ([`staff_phone`]), and `admin-b` approves. Returns its one-time
    /// password: the first half from the text to that phone, the second from the approval's
    /// answer (neither admin sees both). The account is new, so it approves nothing in its
    /// first day; its phone is not proven until its owner proves it.
    pub async fn create_account(&self, username: &str, role: &str) -> String {
        let root = self.admin().await;
        let phone = staff_phone(username);
        let v = self
            .post(
                "/api/v1/admin/officers",
                Some(&root.token),
                json!({"username": username, "role": role, "phone": phone}),
            )
            .await;
        let id = v["proposal"]["id"].as_i64().unwrap();
        assert!(
            !v.to_string().contains(&phone[4..]),
            "the whole phone is shown: {v}"
        );
        let done = self.approve_account(self.second_admin().await, id, &phone).await;
        assert!(done.get("one_time_password").is_none(), "{done}");
        assert_eq!(done["password_sent_to"], json!(masked(&phone)), "{done}");
        let first = self.gateway.password_for(&phone);
        let second = done["second_half"].as_str().unwrap();
        assert!(
            !done.to_string().contains(&first) && !v.to_string().contains(&first),
            "an admin saw the texted half"
        );
        assert!(
            !self.gateway.texts_to(&phone).iter().any(|t| t.contains(second)),
            "the phone got the approver's half"
        );
        format!("{first}{second}")
    }

    /// Approves the account proposal `id` as `staff`, typing its owner's phone as the owner
    /// gave it (it must succeed); returns the answer.
    pub async fn approve_account(&self, staff: &Staff, id: i64, owner_phone: &str) -> Value {
        self.post(
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&staff.token),
            json!({"owner_phone": owner_phone}),
        )
        .await
    }

    /// Approves proposal `id` as `staff` (it must succeed); returns the proposal.
    pub async fn approve(&self, staff: &Staff, id: i64) -> Value {
        self.post(
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&staff.token),
            json!({}),
        )
        .await
    }

    /// The admin `root`, signed in (once per app).
    pub async fn admin(&self) -> &Staff {
        self.admin
            .get_or_init(|| self.staff_sign_in("root", &self.admin_password))
            .await
    }

    /// A second admin, `admin-b`, for what needs two.
    pub async fn second_admin(&self) -> &Staff {
        self.second_admin.get_or_init(|| self.new_staff("admin-b")).await
    }

    /// The officer `officer-a`, signed in (made once per app).
    pub async fn officer(&self) -> &Staff {
        self.officer.get_or_init(|| self.new_staff("officer-a")).await
    }

    /// Another officer, `officer-b`, for what needs two.
    pub async fn second_officer(&self) -> &Staff {
        self.second_officer
            .get_or_init(|| self.new_staff("officer-b"))
            .await
    }

    /// The auditor `auditor-a`.
    pub async fn auditor(&self) -> &Staff {
        self.auditor.get_or_init(|| self.new_staff("auditor-a")).await
    }

    // ---- Holders ----

    /// Waits until a phone that was just sent a code may be sent another.
    pub async fn after_resend_interval(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(
            u64::from(RESEND_SECONDS) * 1000 + 200,
        ))
        .await;
    }

    /// Asks for a one-time code for a phone; returns the challenge the answer carried and the
    /// code the gateway received.
    pub async fn otp(&self, phone: &str) -> Otp {
        let sent = self.post("/api/v1/otp", None, json!({"phone": phone})).await;
        Otp {
            challenge: sent["challenge"].as_str().unwrap().to_owned(),
            code: self.gateway.code_for(phone),
        }
    }

    /// Registers a holder: a one-time code to the registration's phone, then the registration
    /// with it (which must answer 201).
    pub async fn register(&self, mut registration: Value) -> Holder {
        self.registry.know_registration(&registration);
        let otp = self.otp(registration["phone"].as_str().unwrap()).await;
        otp.fill(&mut registration);
        let (st, reg) = self
            .call("POST", "/api/v1/holders", None, Some(registration))
            .await;
        assert_eq!(st, 201, "{reg}");
        Holder {
            token: reg["token"].as_str().unwrap().to_owned(),
            hex: reg["holder"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers the resident 张三丰 (ID [`resident_id_of_the_resident`], phone +8613800138001).
    pub async fn register_resident(&self) -> Holder {
        self.register(
            json!({"kind": "resident", "name": "张三丰", "resident_id": resident_id_of_the_resident(),
            "phone": "+8613800138001"}),
        )
        .await
    }

    /// Registers the visitor Anna Eriksson (passport L898902C3, phone +46701234567).
    pub async fn register_visitor(&self) -> Holder {
        self.register(
            json!({"kind": "visitor", "name": "Anna Eriksson", "passport": "L898902C3", "nationality": "SWE",
            "birth_date": "1974-08-12", "flight": "SK997", "arrival": "2026-11-18", "phone": "+46701234567"}),
        )
        .await
    }

    /// The holder's code (`/me/code`).
    pub async fn code(&self, holder: &Holder) -> Value {
        self.get("/api/v1/me/code", Some(&holder.token)).await
    }

    /// The signed code's text from the holder's code.
    pub async fn token(&self, holder: &Holder) -> String {
        self.code(holder).await["token"].as_str().unwrap().to_owned()
    }

    /// An expired code for the holder, signed with the server's own key.
    pub fn expired_token(&self, holder: &Holder) -> String {
        let keystore =
            healthcode_token::keystore::Keystore::open(&self.config.data_dir.join("keys")).unwrap();
        let t0 = healthcode_server::now();
        let signer = keystore.active_signer(t0, None).unwrap();
        signer
            .issue(&healthcode_token::CodeClaims {
                issuer: signer.issuer().clone(),
                subject: healthcode_token::HolderId::from_hex(&holder.hex).unwrap(),
                issued_at: t0 - time::Duration::hours(1),
                expires_at: t0 - time::Duration::minutes(30),
                colour: healthcode_token::Colour::Green,
                name_hint: None,
                green_from: None,
            })
            .unwrap()
            .to_text()
    }

    // ---- Venues, scans, cases ----

    /// A venue made by the admin, with one device.
    pub async fn venue(&self, name: &str, category: &str, admission: &str, device: &str) -> Venue {
        let admin = &self.admin().await.token;
        let v = self
            .post(
                "/api/v1/admin/venues",
                Some(admin),
                json!({"name": name, "category": category, "admission": admission}),
            )
            .await;
        let id = v["id"].as_i64().unwrap();
        let d = self
            .post(
                &format!("/api/v1/admin/venues/{id}/devices"),
                Some(admin),
                json!({"label": device}),
            )
            .await;
        Venue {
            id,
            key: d["key"].as_str().unwrap().to_owned(),
        }
    }

    /// West Lake Mall: green codes only.
    pub async fn mall(&self) -> Venue {
        self.venue("West Lake Mall", "mall", "green-only", "north gate")
            .await
    }

    /// Gongshu Clinic: admits every colour.
    pub async fn clinic(&self) -> Venue {
        self.venue("Gongshu Clinic", "clinic", "all", "door").await
    }

    /// Binjiang Office Park: green codes only.
    pub async fn office(&self) -> Venue {
        self.venue("Binjiang Office Park", "office", "green-only", "lobby")
            .await
    }

    /// A scan sent with a device key for a venue (not necessarily the device's own): the status
    /// and the body.
    pub async fn try_scan(&self, key: &str, venue: i64, token: &str, seq: i64) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/scans",
            Some(key),
            Some(json!({"venue": venue, "token": token, "seq": seq})),
        )
        .await
    }

    /// A scan at the venue by its device, which must be answered (admitted or not).
    pub async fn scan(&self, venue: &Venue, token: &str, seq: i64) -> Value {
        let (s, v) = self.try_scan(&venue.key, venue.id, token, seq).await;
        assert!(s.is_success(), "scan: {s} {v}");
        v
    }

    /// An offline queue uploaded by the venue's device: each `(token, seq)` scanned at `at`.
    pub async fn upload(&self, venue: &Venue, scans: &[(&str, i64)], at: OffsetDateTime) -> Value {
        let at = rfc3339(at);
        let scans: Vec<Value> = scans
            .iter()
            .map(|(token, seq)| json!({"token": token, "seq": seq, "at": at}))
            .collect();
        self.post(
            "/api/v1/scans/batch",
            Some(&venue.key),
            json!({"venue": venue.id, "scans": scans}),
        )
        .await
    }

    /// An officer records a positive test sampled a day ago and a confirmed case with its onset
    /// then; returns the case's id.
    pub async fn confirm_case(&self, officer: &Staff, holder: &Holder) -> i64 {
        let sampled = rfc3339(healthcode_server::now() - time::Duration::days(1));
        let (st, _) = self
            .call(
                "POST",
                "/api/v1/admin/tests",
                Some(&officer.token),
                Some(json!({"holder": holder.hex, "positive": true, "sampled_at": sampled, "lab": "Zhejiang CDC"})),
            )
            .await;
        assert_eq!(st, 201);
        let case = self
            .post(
                "/api/v1/admin/cases",
                Some(&officer.token),
                json!({"holder": holder.hex, "onset": sampled}),
            )
            .await;
        case["id"].as_i64().unwrap()
    }

    /// An officer reads the holder's record for a case they investigate.
    pub async fn read_for_case(&self, officer: &Staff, holder: &Holder, case_id: i64) -> Value {
        self.post(
            &format!("/api/v1/admin/holders/{}/read", holder.hex),
            Some(&officer.token),
            json!({"purpose": {"purpose": "case-investigation", "case": case_id}}),
        )
        .await
    }

    /// A risk area declared by the officers, taking effect from `from`.
    /// (One officer proposes, a second approves.)
    pub async fn declare_risk_area(&self, region: &str, level: &str, from: OffsetDateTime) {
        let officer = self.officer().await;
        let p = self
            .post(
                "/api/v1/admin/risk-areas",
                Some(&officer.token),
                json!({"region": region, "level": level, "from": rfc3339(from)}),
            )
            .await;
        self.approve(self.second_officer().await, p["id"].as_i64().unwrap())
            .await;
    }

    // ---- What the holder and the auditor see ----

    /// The holder's export (`/me/export`).
    pub async fn export(&self, holder: &Holder) -> Value {
        self.get("/api/v1/me/export", Some(&holder.token)).await
    }

    /// The whole audit log, as the auditor reads it.
    pub async fn audit_log(&self) -> Vec<Value> {
        let auditor = &self.auditor().await.token;
        let log = self.get("/api/v1/admin/audit?limit=1000", Some(auditor)).await;
        log.as_array().unwrap().clone()
    }

    /// The audit entries after the first `before`, leaving out the auditor's own reads of the log.
    pub async fn audit_entries_after(&self, before: usize) -> Vec<Value> {
        let auditor = self.auditor().await.actor.clone();
        self.audit_log().await[before..]
            .iter()
            .filter(|e| e["actor"] != auditor && !e["action"].as_str().unwrap().starts_with("audit-"))
            .cloned()
            .collect()
    }

    /// Runs SQL on the server's database behind its back (SQLite through a second connection to
    /// its file, PostgreSQL in its schema).
    pub async fn raw_sql(&self, sql: &str) {
        match &self.config.database_url {
            Some(url) => {
                let store = healthcode_store_postgres::PgStore::connect(
                    &healthcode_store_postgres::DatabaseUrl::new(url.clone()),
                    self.config.database_schema.as_deref(),
                    1,
                )
                .await
                .unwrap();
                store.raw_query(sql).await.unwrap();
            }
            None => {
                let db = self.config.data_dir.join("healthcode.db");
                let store = healthcode_store_sqlite::SqliteStore::open(
                    &db,
                    healthcode_store_sqlite::OpenMode::MustExist,
                )
                .unwrap();
                store.raw_execute(sql).unwrap();
            }
        }
    }

    /// Records a consent of the holder `hex` (given in the app, to any officer, for a day) behind
    /// the server's back, for tests whose subject is not consent; returns its id.
    pub async fn insert_consent(&self, hex: &str, scope: &str) -> i64 {
        static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(900_000);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sql = match self.config.database_url {
            Some(_) => format!(
                "INSERT INTO consents (id, holder, scope, given, created_at, expires_at) OVERRIDING SYSTEM VALUE \
                 VALUES ({id}, '\\x{hex}'::bytea, '{scope}', 'app', now(), now() + interval '1 day')"
            ),
            None => {
                let t = OffsetDateTime::now_utc().unix_timestamp();
                format!(
                    "INSERT INTO consents (id, holder, scope, given, created_at, expires_at) \
                     VALUES ({id}, X'{hex}', '{scope}', 'app', {t}, {})",
                    t + 86_400
                )
            }
        };
        self.raw_sql(&sql).await;
        id
    }

    /// The server's metrics in the Prometheus text format.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A problem's `type`.
/// A phone as the server shows it, masked.
pub fn masked(phone: &str) -> String {
    healthcode_domain::Phone::parse(phone).unwrap().masked()
}

pub fn problem_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// A resident ID number with a valid check character.
pub fn resident_id(seventeen: &str) -> String {
    let d: [u8; 17] = seventeen.as_bytes().try_into().unwrap();
    format!("{seventeen}{}", healthcode_domain::resident_id_check_char(&d))
}

/// The ID number [`TestApp::register_resident`] registers.
pub fn resident_id_of_the_resident() -> String {
    resident_id("33010619900307123")
}

/// A signed code with its last character changed.
pub fn forged(token: &str) -> String {
    let mut forged = token.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    forged
}

/// A time as the API takes it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}
