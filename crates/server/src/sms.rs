//! Sending one-time codes by SMS. [`SmsSender`] has two real adapters: [`HttpSms`] posts to a
//! gateway (URL template, credentials from a secret), [`ConsoleSms`] writes the code to the log for
//! development and runs only where the configuration enables it explicitly (`sms.kind =
//! "console"`; `healthcode demo` does). With neither configured, codes cannot be sent and the API
//! says so.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// No gateway is configured.
    #[error("no SMS gateway is configured")]
    NotConfigured,
    /// The gateway refused or could not be reached.
    #[error("the SMS gateway failed: {0}")]
    Gateway(String),
}

/// A boxed future of a send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>>;

/// Something that delivers a text message to a phone.
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    /// Sends `text` to `phone` (E.164). `masked` is the phone as logs may show it.
    fn send<'a>(&'a self, phone: &'a str, masked: &'a str, text: &'a str) -> SendFuture<'a>;

    /// Whether codes can be sent at all (checked before a code is made, so that a server with
    /// no gateway neither stores a code nor counts a send against the phone).
    fn configured(&self) -> bool {
        true
    }
}

/// How one-time codes are sent: the `[sms]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `none`, `console` or `http`.
    pub kind: SmsKind,
    /// For `http`: the gateway URL; `{phone}` and `{text}` in it are replaced, URL-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Country calling codes that codes may be sent to (the region's own, 86, by default).
    #[serde(default = "own_country")]
    pub countries: Vec<u16>,
    /// Codes sent in a day (the region's day) to the numbers of one prefix, at most: the country
    /// code and the next three digits (`+86138`). Beyond it the prefix waits for the next day.
    #[serde(default = "default_daily_per_prefix")]
    pub daily_per_prefix: u32,
}

fn own_country() -> Vec<u16> {
    vec![86]
}

fn default_daily_per_prefix() -> u32 {
    50_000
}

impl Default for SmsConfig {
    fn default() -> SmsConfig {
        SmsConfig {
            kind: SmsKind::None,
            url: None,
            countries: own_country(),
            daily_per_prefix: default_daily_per_prefix(),
        }
    }
}

/// What may be spent on text messages: the countries they may go to and a daily budget per
/// number prefix, against SMS pumping (codes asked for many numbers of a premium range, which the
/// range's operator is paid for). The budget is counted by this server, in memory: a restart or
/// another node counts afresh.
#[derive(Debug)]
pub struct SmsBudget {
    countries: Vec<u16>,
    daily_per_prefix: u32,
    spent: std::sync::Mutex<(Option<time::Date>, std::collections::HashMap<String, u32>)>,
}

/// Why a code was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    /// The phone's country is not served.
    #[error("codes are not sent to numbers with country code +{0}")]
    Country(u16),
    /// Today's budget for the prefix is spent.
    #[error("too many codes went to numbers starting {0} today; retry tomorrow")]
    Spent(String),
}

impl SmsBudget {
    /// The budget a configuration sets.
    pub fn new(c: &SmsConfig) -> SmsBudget {
        SmsBudget {
            countries: c.countries.clone(),
            daily_per_prefix: c.daily_per_prefix,
            spent: std::sync::Mutex::new((None, std::collections::HashMap::new())),
        }
    }

    /// Whether the country of `phone` is served, without spending anything.
    pub fn serves(&self, phone: &healthcode_domain::Phone) -> Result<(), BudgetRefusal> {
        let cc = phone.country_code();
        if self.countries.contains(&cc) {
            Ok(())
        } else {
            Err(BudgetRefusal::Country(cc))
        }
    }

    /// Spends one code on `phone` on `day`, or says why not. The table holds one day's prefixes
    /// (at most a thousand per served country) and starts empty each day.
    pub fn spend(&self, phone: &healthcode_domain::Phone, day: time::Date) -> Result<(), BudgetRefusal> {
        self.serves(phone)?;
        let prefix = budget_prefix(phone);
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if spent.0 != Some(day) {
            *spent = (Some(day), std::collections::HashMap::new());
        }
        let count = spent.1.entry(prefix.clone()).or_insert(0);
        if *count >= self.daily_per_prefix {
            return Err(BudgetRefusal::Spent(prefix));
        }
        *count += 1;
        Ok(())
    }

    /// Gives back a code that was counted but not sent (the gateway failed).
    pub fn refund(&self, phone: &healthcode_domain::Phone, day: time::Date) {
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if spent.0 == Some(day)
            && let Some(c) = spent.1.get_mut(&budget_prefix(phone))
        {
            *c = c.saturating_sub(1);
        }
    }
}

/// The prefix a phone's codes are counted under: `+`, the country code and three more digits.
fn budget_prefix(phone: &healthcode_domain::Phone) -> String {
    let cc = phone.country_code().to_string();
    phone.as_str().chars().take(1 + cc.len() + 3).collect()
}

/// Which adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsKind {
    /// No gateway: registration and holder sign-in are closed.
    None,
    /// Development: codes go to the log.
    Console,
    /// A real gateway over HTTP.
    Http,
}

/// The environment variable with the gateway's bearer token (or `…_FILE` naming a file with it).
pub const SMS_TOKEN_ENV: &str = "HEALTHCODE_SMS_TOKEN";

/// Checks the configuration without building anything: for `http`, the gateway URL and that
/// its token secret, when given, can be read.
pub fn check(c: &SmsConfig) -> Result<(), String> {
    if c.countries.is_empty() {
        return Err("countries must name at least one country calling code, such as [86]".into());
    }
    if let Some(bad) = c.countries.iter().find(|cc| !(1..=999).contains(*cc)) {
        return Err(format!("countries: +{bad} is not a country calling code"));
    }
    if c.daily_per_prefix == 0 {
        return Err("daily_per_prefix must be at least 1".into());
    }
    if gateway_url(c)?.is_some() {
        crate::config::secret(SMS_TOKEN_ENV)?;
    }
    Ok(())
}

/// The gateway's URL: `https://`, or `http://` only to this machine (a local TLS proxy, a test),
/// since each request carries a one-time code and the gateway's token.
fn gateway_url(c: &SmsConfig) -> Result<Option<String>, String> {
    match c.kind {
        SmsKind::None | SmsKind::Console => Ok(None),
        SmsKind::Http => {
            let raw = c
                .url
                .clone()
                .ok_or_else(|| "sms.url must name the gateway when sms.kind = \"http\"".to_owned())?;
            let url = reqwest::Url::parse(&raw).map_err(|e| format!("sms.url is not a URL: {e}"))?;
            match url.scheme() {
                "https" => Ok(Some(raw)),
                "http" if crate::identity::is_loopback(&url) => Ok(Some(raw)),
                "http" => Err(
                    "sms.url must be https:// (http:// only to a loopback address, such as a local TLS proxy): \
                     the requests carry one-time codes and the gateway's token"
                        .into(),
                ),
                _ => Err("sms.url must be an https:// URL".into()),
            }
        }
    }
}

/// Builds the configured sender (reading the gateway's token secret for `http`).
pub fn from_config(c: &SmsConfig) -> Result<Box<dyn SmsSender>, String> {
    match (c.kind, gateway_url(c)?) {
        (SmsKind::None, _) => Ok(Box::new(NoSms)),
        (SmsKind::Console, _) => Ok(Box::new(ConsoleSms)),
        (SmsKind::Http, url) => {
            let url = url.unwrap_or_default();
            let token = crate::config::secret(SMS_TOKEN_ENV)?;
            Ok(Box::new(HttpSms::new(url, token)?))
        }
    }
}

/// No gateway.
#[derive(Debug)]
pub struct NoSms;

impl SmsSender for NoSms {
    fn send<'a>(&'a self, _phone: &'a str, _masked: &'a str, _text: &'a str) -> SendFuture<'a> {
        Box::pin(async { Err(SmsError::NotConfigured) })
    }

    fn configured(&self) -> bool {
        false
    }
}

/// Development only: logs `one-time code for <masked phone>: NNNNNN`.
#[derive(Debug)]
pub struct ConsoleSms;

impl SmsSender for ConsoleSms {
    fn send<'a>(&'a self, _phone: &'a str, masked: &'a str, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::warn!(target: "healthcode::sms", "{text} (to {masked}; console SMS adapter, development only)");
            Ok(())
        })
    }
}

/// A gateway reached by `POST url` with the JSON body `{"to": "+86…", "text": "…"}` and, when a
/// token is configured, `Authorization: Bearer <token>`. A non-2xx answer is a failure.
pub struct HttpSms {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSms")
            .field("url", &crate::identity::origin_only(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpSms {
    /// A gateway adapter.
    pub fn new(url: String, token: Option<String>) -> Result<HttpSms, String> {
        // No redirects: a 307 would send the code to wherever it pointed.
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpSms { url, token, client })
    }
}

impl SmsSender for HttpSms {
    fn send<'a>(&'a self, phone: &'a str, masked: &'a str, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let url = self
                .url
                .replace("{phone}", &urlencoding::encode(phone))
                .replace("{text}", &urlencoding::encode(text));
            let mut req = self
                .client
                .post(url)
                .json(&serde_json::json!({ "to": phone, "text": text }));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| SmsError::Gateway(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(SmsError::Gateway(format!(
                    "answered {} for {masked}",
                    resp.status()
                )));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_token() {
        let g = HttpSms::new(
            "https://sms.example/send?key=abc123&to={phone}".into(),
            Some("s3cret-sms-token".into()),
        )
        .unwrap();
        let shown = format!("{g:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(
            shown.contains("sms.example") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn a_gateway_is_https_or_on_this_machine() {
        let with = |url: &str| SmsConfig {
            kind: SmsKind::Http,
            url: Some(url.into()),
            ..SmsConfig::default()
        };
        assert!(gateway_url(&with("https://sms.example/send")).is_ok());
        assert!(gateway_url(&with("http://127.0.0.1:9000/send?to={phone}")).is_ok());
        assert!(gateway_url(&with("http://[::1]:9000/send")).is_ok());
        for bad in [
            "http://sms.example/send",
            "http://10.0.0.8/send",
            "ftp://sms.example/",
        ] {
            let e = gateway_url(&with(bad)).unwrap_err();
            assert!(e.contains("https"), "{bad}: {e}");
        }
    }
}
