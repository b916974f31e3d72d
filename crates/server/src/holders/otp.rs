//! One-time codes sent by SMS, and checking them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_domain::Phone;
use healthcode_store::{OtpCheck, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::client::ClientAddr;
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

use super::parse_phone;

/// Asks for a one-time code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    /// The phone, in international form (`+8613800138000`).
    pub phone: String,
}

/// A code was sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct OtpSent {
    /// Where to, masked.
    pub to: String,
    /// Send this back with the code: a guess counts only under the challenge of the request
    /// that sent the code, so nobody else can use up its attempts.
    pub challenge: String,
    /// How long the code is valid.
    pub expires_in_seconds: i64,
    /// Wrong guesses allowed.
    pub attempts: u8,
}

/// Sends a 6-digit one-time code to a phone (valid 5 minutes, 5 guesses under the challenge this
/// answer carries). Limited per phone (one a minute, five an hour), per client address, to the
/// configured countries, and by a daily budget per number prefix. Whether the phone is registered
/// is not told.
#[utoipa::path(post, path = "/otp", tag = "holders", request_body = OtpRequest, responses(
    (status = 202, description = "sent", body = OtpSent),
    (status = 422, description = "not a phone number, or one of a country codes are not sent to", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "too many codes (to this phone, from this address, or to this number prefix today); see Retry-After", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "no SMS gateway is configured, or it failed", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn send_otp<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    Json(req): Json<OtpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let phone = parse_phone(&req.phone)?;
    app.sms_budget
        .serves(&phone)
        .map_err(|e| ApiError::InvalidField(format!("phone: {e}")))?;
    if app.otp_by_address.check_key(&client.limit_key()).is_err() {
        return Err(ApiError::RateLimited(
            "too many one-time codes from this address; retry later".into(),
            600,
        ));
    }
    if !app.sms.configured() {
        return Err(ApiError::Unavailable(
            format!(
                "the code could not be sent: {}",
                crate::sms::SmsError::NotConfigured
            ),
            60,
        ));
    }
    let code = six_digits()?;
    let challenge = crate::auth::new_secret("otc_")?;
    let phone_hash = app.vault.lookup_hash("phone", phone.as_str());
    let challenge_hash = app.vault.lookup_hash("otp-challenge", &challenge);
    let code_hash = app
        .vault
        .lookup_hash("otp", &format!("{}:{code}", phone.as_str()));
    let t = now();
    let today = t.to_offset(app.policy().utc_offset()).date();
    // Counted before the store is asked, so that a spent budget stores no code and uses up none
    // of the phone's sends; given back below if the store or the gateway refuses.
    app.sms_budget.spend(&phone, today).map_err(|e| {
        tracing::warn!(target: "healthcode::sms", "{e}");
        ApiError::RateLimited(e.to_string(), seconds_to_next_day(t, app.policy().utc_offset()))
    })?;
    let issued = app
        .store
        .issue_otp(&phone_hash, &challenge_hash, &code_hash, t, &app.otp_limits)
        .await
        .inspect_err(|_| app.sms_budget.refund(&phone, today))?;
    if let Err(wait) = issued {
        app.sms_budget.refund(&phone, today);
        return Err(ApiError::RateLimited(
            format!(
                "a code was sent to this phone recently; retry in {} s",
                wait.whole_seconds().max(1)
            ),
            wait.whole_seconds().max(1) as u64,
        ));
    }
    let text = format!("one-time code for {}: {code}", phone.masked());
    app.sms
        .send(phone.as_str(), &phone.masked(), &text)
        .await
        .map_err(|e| {
            app.sms_budget.refund(&phone, today);
            ApiError::Unavailable(format!("the code could not be sent: {e}"), 60)
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(OtpSent {
            to: phone.masked(),
            challenge,
            expires_in_seconds: app.otp_limits.validity.whole_seconds(),
            attempts: app.otp_limits.attempts,
        }),
    ))
}

/// Seconds from `t` to the next midnight of the region.
fn seconds_to_next_day(t: time::OffsetDateTime, offset: time::UtcOffset) -> u64 {
    let local = t.to_offset(offset);
    let midnight = local
        .date()
        .next_day()
        .map(|d| d.midnight().assume_offset(offset));
    midnight.map_or(86_400, |m| (m - local).whole_seconds().max(1) as u64)
}

pub(crate) fn six_digits() -> Result<String, ApiError> {
    // Rejection sampling: uniform over 000000-999999.
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| ApiError::internal("no randomness", e))?;
        let v = u32::from_le_bytes(b);
        if v < 4_294_000_000 {
            return Ok(format!("{:06}", v % 1_000_000));
        }
    }
}

/// A guess at a one-time code: the code and the challenge it was sent under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtpGuess<'a> {
    /// The challenge from `POST /otp`.
    pub challenge: &'a str,
    /// The six digits.
    pub code: &'a str,
}

/// Checks a one-time code; anything but acceptance is an error that says what happened. Guesses
/// are limited per client address before the store is asked. A guess under another challenge
/// than the code's (a stranger's) finds no code and costs the code nothing, so the answers below
/// that tell more (attempts left, expiry) reach only the one who asked for the code.
pub(crate) async fn accept_otp<S: Store>(
    app: &App<S>,
    client: ClientAddr,
    phone: &Phone,
    guess: OtpGuess<'_>,
) -> Result<(), ApiError> {
    if app.otp_guesses_by_address.check_key(&client.limit_key()).is_err() {
        return Err(ApiError::RateLimited(
            "too many one-time code guesses from this address; retry later".into(),
            600,
        ));
    }
    let otp = guess.code.trim();
    if otp.len() != 6 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidField(
            "otp: the one-time code has 6 digits".into(),
        ));
    }
    let phone_hash = app.vault.lookup_hash("phone", phone.as_str());
    let challenge_hash = app.vault.lookup_hash("otp-challenge", guess.challenge.trim());
    let code_hash = app.vault.lookup_hash("otp", &format!("{}:{otp}", phone.as_str()));
    match app
        .store
        .check_otp(&phone_hash, &challenge_hash, &code_hash, now())
        .await?
    {
        OtpCheck::Accepted => Ok(()),
        OtpCheck::Wrong { attempts_left } => Err(ApiError::OneTimeCode(format!(
            "wrong one-time code; {attempts_left} attempts left"
        ))),
        OtpCheck::Exhausted => Err(ApiError::OneTimeCode(
            "too many wrong guesses; ask for a new one-time code".into(),
        )),
        OtpCheck::Expired => Err(ApiError::OneTimeCode(
            "the one-time code has expired; ask for a new one".into(),
        )),
        OtpCheck::Missing => Err(ApiError::OneTimeCode(
            "no one-time code is waiting under this challenge; ask for a new one".into(),
        )),
    }
}

/// Forgets, once a minute, the keys whose limit has refilled: the addresses that asked for or
/// guessed codes, and the holders whose document was presented (whose alert texts are limited),
/// so that clients naming many addresses or documents cannot grow the tables without end; off
/// the request path, which only counts.
pub(crate) async fn forget_quiet_addresses<S: Store>(app: std::sync::Weak<App<S>>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let Some(app) = app.upgrade() else { return };
        app.otp_by_address.retain_recent();
        app.otp_by_address.shrink_to_fit();
        app.otp_guesses_by_address.retain_recent();
        app.otp_guesses_by_address.shrink_to_fit();
        app.document_alerts.retain_recent();
        app.document_alerts.shrink_to_fit();
    }
}
