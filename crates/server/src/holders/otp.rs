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
    /// How long the code is valid.
    pub expires_in_seconds: i64,
    /// Wrong guesses allowed.
    pub attempts: u8,
}

/// Sends a 6-digit one-time code to a phone (valid 5 minutes, 5 guesses). Limited per phone (one
/// a minute, five an hour) and per client address. Whether the phone is registered is not told.
#[utoipa::path(post, path = "/otp", tag = "holders", request_body = OtpRequest, responses(
    (status = 202, description = "sent", body = OtpSent),
    (status = 422, description = "not a phone number", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "too many codes; see Retry-After", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "no SMS gateway is configured, or it failed", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn send_otp<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    Json(req): Json<OtpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let phone = parse_phone(&req.phone)?;
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
    let phone_hash = app.vault.lookup_hash("phone", phone.as_str());
    let code_hash = app
        .vault
        .lookup_hash("otp", &format!("{}:{code}", phone.as_str()));
    let t = now();
    if let Err(wait) = app
        .store
        .issue_otp(&phone_hash, &code_hash, t, &app.otp_limits)
        .await?
    {
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
        .map_err(|e| ApiError::Unavailable(format!("the code could not be sent: {e}"), 60))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(OtpSent {
            to: phone.masked(),
            expires_in_seconds: app.otp_limits.validity.whole_seconds(),
            attempts: app.otp_limits.attempts,
        }),
    ))
}

fn six_digits() -> Result<String, ApiError> {
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

/// Checks a one-time code; anything but acceptance is an error that says what happened.
pub(crate) async fn accept_otp<S: Store>(app: &App<S>, phone: &Phone, otp: &str) -> Result<(), ApiError> {
    let otp = otp.trim();
    if otp.len() != 6 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidField(
            "otp: the one-time code has 6 digits".into(),
        ));
    }
    let phone_hash = app.vault.lookup_hash("phone", phone.as_str());
    let code_hash = app.vault.lookup_hash("otp", &format!("{}:{otp}", phone.as_str()));
    match app.store.check_otp(&phone_hash, &code_hash, now()).await? {
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
            "no one-time code is waiting for this phone; ask for one first".into(),
        )),
    }
}

/// Forgets, once a minute, the addresses whose limit has refilled, so that clients naming many
/// addresses cannot grow the table without end; off the request path, which only counts.
pub(crate) async fn forget_quiet_addresses<S: Store>(app: std::sync::Weak<App<S>>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let Some(app) = app.upgrade() else { return };
        app.otp_by_address.retain_recent();
        app.otp_by_address.shrink_to_fit();
    }
}
