//! Real-name proofing: does this name, this identity document and this phone belong to one
//! person? [`IdentityVerifier`] has two real adapters: [`HttpRegistry`] asks the authority's
//! real-name registry over HTTP (docs/identity.md has the request and the answer), [`DemoRegistry`]
//! looks the person up in a file of synthetic records that `healthcode demo` writes, for
//! demonstrations only. With neither configured ([`NoRegistry`]), holders cannot register
//! themselves: an officer registers them at a service counter with the document in hand.
//!
//! The phone is part of the question, as in the "three elements" check of Chinese carriers' real-name
//! registers: a SIM card registered to someone else does not match, even with the right name and
//! document number. A registry that cannot answer is [`Verdict::Unknown`], never a match.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use healthcode_domain::{FullName, IdentityDocument, Phone};
use serde::{Deserialize, Serialize};

/// The question: the name, the document and the phone a person gave.
#[derive(Debug, Clone, Copy)]
pub struct IdentityClaim<'a> {
    /// The full name as on the document.
    pub name: &'a FullName,
    /// The resident ID number, or the passport with its nationality.
    pub document: &'a IdentityDocument,
    /// The phone (E.164), confirmed by a one-time code before anyone asks.
    pub phone: &'a Phone,
}

/// The registry's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The three belong together.
    Match,
    /// They do not (or the registry does not know the document).
    NoMatch,
    /// No answer (unreachable, too slow, an answer that cannot be read): why, for the log.
    Unknown(String),
}

/// A boxed future of a verification.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// Something that can tell whether a name, a document and a phone belong to one person.
pub trait IdentityVerifier: Send + Sync + std::fmt::Debug {
    /// Asks.
    fn verify<'a>(&'a self, claim: IdentityClaim<'a>) -> VerifyFuture<'a>;

    /// Whether a registry is configured at all; without one, self-registration is closed.
    fn configured(&self) -> bool {
        true
    }
}

/// The `[identity]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// `none`, `demo` or `http`.
    pub kind: IdentityKind,
    /// For `http`: the registry's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `demo`: the file of synthetic records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// For `http`: how long connecting may take.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// For `http`: how long the whole request may take, answer included.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    2000
}

fn default_timeout() -> u64 {
    5000
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig {
            kind: IdentityKind::None,
            url: None,
            file: None,
            connect_timeout_ms: default_connect_timeout(),
            timeout_ms: default_timeout(),
        }
    }
}

/// Which adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// No registry: holders are registered at a service counter.
    None,
    /// Demonstrations only: a file of synthetic records.
    Demo,
    /// The authority's registry over HTTP.
    Http,
}

/// The environment variable with the registry's bearer token (or `…_FILE` naming a file with it).
pub const IDENTITY_TOKEN_ENV: &str = "HEALTHCODE_IDENTITY_TOKEN";

/// Checks the configuration without building anything.
pub fn check(c: &IdentityConfig) -> Result<(), String> {
    if !(100..=60_000).contains(&c.connect_timeout_ms) || !(100..=60_000).contains(&c.timeout_ms) {
        return Err("connect_timeout_ms and timeout_ms must be between 100 and 60000".into());
    }
    match c.kind {
        IdentityKind::None => Ok(()),
        IdentityKind::Demo => c
            .file
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| "identity.file must name the records when identity.kind = \"demo\"".into()),
        IdentityKind::Http => {
            registry_url(c)?;
            crate::config::secret(IDENTITY_TOKEN_ENV)?;
            Ok(())
        }
    }
}

/// The registry's URL: `https://`, or `http://` only to this machine (a local TLS proxy, a test),
/// since the requests carry names, document numbers, phones and the bearer token.
fn registry_url(c: &IdentityConfig) -> Result<String, String> {
    let raw = c
        .url
        .clone()
        .ok_or_else(|| "identity.url must name the registry when identity.kind = \"http\"".to_owned())?;
    let url = reqwest::Url::parse(&raw).map_err(|e| format!("identity.url is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(raw),
        "http" if is_loopback(&url) => Ok(raw),
        "http" => Err(
            "identity.url must be https:// (http:// only to a loopback address, such as a local TLS proxy): \
             the requests carry personal data and the registry's token"
                .into(),
        ),
        _ => Err("identity.url must be an https:// URL".into()),
    }
}

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A URL as a log or a `Debug` shows it: its origin only, so that a key in its path or query,
/// or credentials in it, are not printed.
pub(crate) fn origin_only(raw: &str) -> String {
    reqwest::Url::parse(raw).map_or_else(|_| "<not a URL>".into(), |u| u.origin().ascii_serialization())
}

/// Builds the configured verifier (reading the registry's token secret for `http`).
pub fn from_config(c: &IdentityConfig) -> Result<Box<dyn IdentityVerifier>, String> {
    check(c)?;
    match c.kind {
        IdentityKind::None => Ok(Box::new(NoRegistry)),
        IdentityKind::Demo => {
            tracing::warn!(target: "healthcode::identity",
                "the demo identity registry confirms whoever its file lists: development and demonstrations only");
            Ok(Box::new(DemoRegistry::new(c.file.clone().unwrap_or_default())))
        }
        IdentityKind::Http => Ok(Box::new(HttpRegistry::new(
            registry_url(c)?,
            crate::config::secret(IDENTITY_TOKEN_ENV)?,
            Duration::from_millis(c.connect_timeout_ms),
            Duration::from_millis(c.timeout_ms),
        )?)),
    }
}

/// No registry.
#[derive(Debug)]
pub struct NoRegistry;

impl IdentityVerifier for NoRegistry {
    fn verify<'a>(&'a self, _claim: IdentityClaim<'a>) -> VerifyFuture<'a> {
        Box::pin(async { Verdict::Unknown("no identity registry is configured".into()) })
    }

    fn configured(&self) -> bool {
        false
    }
}

/// The document as the registry's request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DocumentJson {
    /// A resident ID card.
    ResidentId {
        /// The 18-character number.
        number: String,
    },
    /// A passport.
    Passport {
        /// The passport number.
        number: String,
        /// The issuing nationality (ICAO alpha-3).
        nationality: String,
    },
}

impl From<&IdentityDocument> for DocumentJson {
    fn from(d: &IdentityDocument) -> DocumentJson {
        match d {
            IdentityDocument::ResidentId(n) => DocumentJson::ResidentId {
                number: n.as_str().to_owned(),
            },
            IdentityDocument::Passport { nationality, number } => DocumentJson::Passport {
                number: number.as_str().to_owned(),
                nationality: nationality.as_str().to_owned(),
            },
        }
    }
}

/// The registry's request body: `{"name": …, "document": {"type": "resident-id", "number": …},
/// "phone": "+86…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRequest {
    /// The full name.
    pub name: String,
    /// The document.
    pub document: DocumentJson,
    /// The phone, E.164.
    pub phone: String,
}

impl RegistryRequest {
    /// The request for a claim.
    pub fn of(claim: &IdentityClaim<'_>) -> RegistryRequest {
        RegistryRequest {
            name: claim.name.as_str().to_owned(),
            document: claim.document.into(),
            phone: claim.phone.as_str().to_owned(),
        }
    }
}

/// The registry's answer body: `{"result": "match"}` or `{"result": "no-match"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAnswer {
    /// `match` or `no-match`; anything else counts as no answer.
    pub result: String,
}

/// The largest answer read from a registry; a longer one is no answer.
const MAX_ANSWER: usize = 16 * 1024;

/// The authority's registry: `POST url` with a [`RegistryRequest`] as JSON and, when a token is
/// configured, `Authorization: Bearer <token>`; a 200 with a [`RegistryAnswer`] is the answer.
/// Anything else (another status, another body, a time-out) is [`Verdict::Unknown`].
pub struct HttpRegistry {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("url", &origin_only(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpRegistry {
    /// A registry adapter with its time-outs.
    pub fn new(
        url: String,
        token: Option<String>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<HttpRegistry, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpRegistry { url, token, client })
    }

    async fn ask(&self, claim: IdentityClaim<'_>) -> Result<Verdict, String> {
        let mut req = self.client.post(&self.url).json(&RegistryRequest::of(&claim));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("the registry answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER {
                return Err(format!("the registry's answer is longer than {MAX_ANSWER} bytes"));
            }
        }
        let answer: RegistryAnswer =
            serde_json::from_slice(&body).map_err(|e| format!("the registry's answer is unreadable: {e}"))?;
        match answer.result.as_str() {
            "match" => Ok(Verdict::Match),
            "no-match" => Ok(Verdict::NoMatch),
            other => Err(format!("the registry answered {other:?}")),
        }
    }
}

impl IdentityVerifier for HttpRegistry {
    fn verify<'a>(&'a self, claim: IdentityClaim<'a>) -> VerifyFuture<'a> {
        Box::pin(async move { self.ask(claim).await.unwrap_or_else(Verdict::Unknown) })
    }
}

/// One synthetic person in the demo's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoPerson {
    /// Full name.
    pub name: String,
    /// The document.
    pub document: DocumentJson,
    /// The phone registered to the person, E.164.
    pub phone: String,
}

/// The demo's file: `{"people": [DemoPerson, …]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoRecords {
    /// What the demo registry knows.
    pub people: Vec<DemoPerson>,
}

impl DemoRecords {
    /// Reads a file of records.
    pub fn read(path: &Path) -> Result<DemoRecords, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes them (replacing the file).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// What a registry would answer: a match when one record has the document, the name (compared
    /// as [`FullName::same_as`] does) and the phone; no match otherwise.
    pub fn answer(&self, claim: &IdentityClaim<'_>) -> Verdict {
        let wanted = DocumentJson::from(claim.document);
        let found = self.people.iter().any(|p| {
            p.document == wanted
                && claim.name.same_as(&p.name)
                && Phone::parse(&p.phone).ok().as_ref() == Some(claim.phone)
        });
        if found { Verdict::Match } else { Verdict::NoMatch }
    }
}

/// Demonstrations only: answers from a file of synthetic records, read at every question (so
/// records added to it count at once). It must never stand in for a real registry.
#[derive(Debug)]
pub struct DemoRegistry {
    file: PathBuf,
}

impl DemoRegistry {
    /// Over the records in `file`.
    pub fn new(file: PathBuf) -> DemoRegistry {
        DemoRegistry { file }
    }
}

impl IdentityVerifier for DemoRegistry {
    fn verify<'a>(&'a self, claim: IdentityClaim<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            let file = self.file.clone();
            let records = tokio::task::spawn_blocking(move || DemoRecords::read(&file))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match records {
                Ok(records) => records.answer(&claim),
                Err(e) => Verdict::Unknown(format!("the demo registry's records: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn resident(n: &str) -> IdentityDocument {
        IdentityDocument::ResidentId(
            healthcode_domain::ResidentIdNumber::parse(n, date!(2026 - 11 - 30)).unwrap(),
        )
    }

    #[test]
    fn the_demo_records_match_all_three_or_nothing() {
        let records = DemoRecords {
            people: vec![DemoPerson {
                name: "张三丰".into(),
                document: DocumentJson::ResidentId {
                    number: "11010519491231002X".into(),
                },
                phone: "+8613800138001".into(),
            }],
        };
        let name = FullName::parse(" 张三丰 ").unwrap();
        let other_name = FullName::parse("李四").unwrap();
        let doc = resident("11010519491231002x");
        let other_doc = resident("110105194912310038");
        let phone = Phone::parse("+86 138 0013 8001").unwrap();
        let spare_sim = Phone::parse("+8613900139000").unwrap();
        let ask = |name, document, phone| {
            records.answer(&IdentityClaim {
                name,
                document,
                phone,
            })
        };
        assert_eq!(ask(&name, &doc, &phone), Verdict::Match);
        assert_eq!(ask(&name, &doc, &spare_sim), Verdict::NoMatch);
        assert_eq!(ask(&other_name, &doc, &phone), Verdict::NoMatch);
        assert_eq!(ask(&name, &other_doc, &phone), Verdict::NoMatch);
    }

    #[test]
    fn the_request_has_the_documented_shape() {
        let name = FullName::parse("Anna Eriksson").unwrap();
        let doc =
            IdentityDocument::parse(None, Some("l898902c3"), Some("swe"), date!(2026 - 11 - 30)).unwrap();
        let phone = Phone::parse("+46701234567").unwrap();
        let v = serde_json::to_value(RegistryRequest::of(&IdentityClaim {
            name: &name,
            document: &doc,
            phone: &phone,
        }))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "Anna Eriksson",
                "document": {"type": "passport", "number": "L898902C3", "nationality": "SWE"},
                "phone": "+46701234567"})
        );
    }

    /// A registry on a random port with one route per behaviour.
    async fn registry() -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        use axum::routing::post;
        let answer = |result: &'static str| {
            move |headers: HeaderMap, axum::Json(q): axum::Json<RegistryRequest>| async move {
                let authorised =
                    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer s3cret");
                if !authorised || q.phone != "+8613800138001" {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(serde_json::json!({ "result": result })).into_response()
            }
        };
        let app = axum::Router::new()
            .route("/match", post(answer("match")))
            .route("/no-match", post(answer("no-match")))
            .route("/maybe", post(answer("maybe")))
            .route("/down", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/garbage", post(|| async { "<html>maintenance</html>" }))
            .route(
                "/huge",
                post(|| async {
                    format!(
                        "{{\"result\": \"match\", \"pad\": \"{}\"}}",
                        "x".repeat(MAX_ANSWER)
                    )
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    axum::Json(serde_json::json!({ "result": "match" }))
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn the_http_adapter_trusts_only_a_clear_answer_in_time() {
        let base = registry().await;
        let name = FullName::parse("张三丰").unwrap();
        let doc = resident("11010519491231002X");
        let phone = Phone::parse("+8613800138001").unwrap();
        let claim = IdentityClaim {
            name: &name,
            document: &doc,
            phone: &phone,
        };
        let ask = |path: &str, token: Option<&str>| {
            HttpRegistry::new(
                format!("{base}{path}"),
                token.map(str::to_owned),
                Duration::from_millis(500),
                Duration::from_millis(500),
            )
            .unwrap()
        };
        assert_eq!(ask("/match", Some("s3cret")).verify(claim).await, Verdict::Match);
        assert_eq!(
            ask("/no-match", Some("s3cret")).verify(claim).await,
            Verdict::NoMatch
        );
        // Without the token, the registry refuses: no answer, not a match.
        for (path, token) in [
            ("/match", None),
            ("/match", Some("wrong")),
            ("/maybe", Some("s3cret")),
            ("/down", Some("s3cret")),
            ("/garbage", Some("s3cret")),
            ("/huge", Some("s3cret")),
            ("/missing", Some("s3cret")),
        ] {
            let v = ask(path, token).verify(claim).await;
            assert!(matches!(v, Verdict::Unknown(_)), "{path}: {v:?}");
        }
        let started = std::time::Instant::now();
        let v = ask("/slow", Some("s3cret")).verify(claim).await;
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the time-out did not hold"
        );
        // Nobody listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let v = HttpRegistry::new(
            format!("http://{closed}/verify"),
            None,
            Duration::from_millis(500),
            Duration::from_millis(500),
        )
        .unwrap()
        .verify(claim)
        .await;
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
    }

    #[test]
    fn configuration_is_checked() {
        let mut c = IdentityConfig {
            kind: IdentityKind::Http,
            ..IdentityConfig::default()
        };
        assert!(check(&c).is_err(), "http without a URL");
        c.url = Some("ftp://registry".into());
        assert!(check(&c).is_err());
        // Plain HTTP only to this machine.
        for remote in [
            "http://registry.example/verify",
            "http://10.0.0.5/verify",
            "http://[2001:db8::1]/verify",
            "http://127.0.0.1.example/verify",
        ] {
            c.url = Some(remote.into());
            let e = check(&c).unwrap_err();
            assert!(e.contains("loopback"), "{remote}: {e}");
        }
        for local in [
            "http://127.0.0.1:8443/verify",
            "http://localhost/verify",
            "http://[::1]:9000/verify",
        ] {
            c.url = Some(local.into());
            assert!(check(&c).is_ok(), "{local}");
        }
        c.url = Some("https://registry.example/verify".into());
        c.timeout_ms = 0;
        assert!(check(&c).is_err(), "no time-out");
        c.kind = IdentityKind::Demo;
        c.timeout_ms = 5000;
        assert!(check(&c).is_err(), "demo without a file");
        assert!(!from_config(&IdentityConfig::default()).unwrap().configured());
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let r = HttpRegistry::new(
            "https://registry.example/v1/verify?key=abc123".into(),
            Some("s3cret-registry-token".into()),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        let shown = format!("{r:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(
            shown.contains("registry.example") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
