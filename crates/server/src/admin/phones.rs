//! Staff phones: where an account's one-time passwords go. An account proposed by one admin
//! and approved by another gets its first password by text message to the phone recorded with
//! the proposal, and a reset sends the new one to the phone on the account: no admin ever sees
//! another person's password, so no admin can hold two accounts' credentials and have them
//! approve each other. An owner records or changes their phone themselves, with their password
//! and a one-time code sent to the new phone (`POST /otp`); nobody else can.

use std::sync::Arc;

use axum::extract::State;
use healthcode_domain::Phone;
use healthcode_store::{Officer, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::auth::{AnyStaff, Staff};
use crate::client::ClientAddr;
use crate::holders::{OtpGuess, accept_otp, parse_phone};
use crate::problem::{ApiError, Json, Problem};

/// Parses a staff member's phone and checks that texts can be sent to it (the configured
/// countries, a gateway).
pub(crate) fn staff_phone<S: Store>(app: &App<S>, s: &str) -> Result<Phone, ApiError> {
    let phone = parse_phone(s)?;
    app.sms_budget
        .serves(&phone)
        .map_err(|e| ApiError::InvalidField(format!("phone: {e}")))?;
    if !app.sms.configured() {
        return Err(ApiError::Unavailable(
            "no SMS gateway is configured, so a staff password cannot reach its owner: create the account with `healthcode admin create` on the server".into(),
            3600,
        ));
    }
    Ok(phone)
}

/// The phone an account's passwords are sent to, or 409 naming what to do.
pub(crate) fn phone_of(o: &Officer) -> Result<Phone, ApiError> {
    o.phone
        .as_deref()
        .and_then(|p| Phone::parse(p).ok())
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "{} has no phone to send a password to: its owner adds one on their account page, or the server's operator runs `healthcode admin reset-password {}`",
                o.username, o.username
            ))
        })
}

/// Sends an account's one-time password to its owner's phone; returns the phone, masked.
pub(crate) async fn send_password<S: Store>(
    app: &App<S>,
    phone: &Phone,
    username: &str,
    password: &str,
) -> Result<String, ApiError> {
    let text = format!(
        "healthcode staff account {username}: one-time password {password}. Sign in and replace it at once; if you did not expect this, tell your authority."
    );
    app.sms
        .send(phone.as_str(), &phone.masked(), &text)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the password could not be sent: {e}"), 60))?;
    Ok(phone.masked())
}

/// A staff member's own phone, proven.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneChange {
    /// The phone, in international form (`+8613900139000`).
    pub phone: String,
    /// The challenge `POST /otp` returned when it sent the code to that phone.
    pub challenge: String,
    /// The six digits it sent.
    pub code: String,
    /// The account's password.
    pub current_password: String,
}

/// The phone recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneRecorded {
    /// The phone, masked.
    pub phone: String,
}

/// Records the signed-in staff member's phone, where one-time passwords from a reset are sent
/// (`POST /otp` sends the code first). The password is checked before the code, and a wrong one
/// ends the session, as a password change does: a copied session cannot move the account's
/// passwords to another phone. Audited; the old phone, if any, is told.
#[utoipa::path(put, path = "/me/phone", tag = "officers", security(("officer" = [])), request_body = PhoneChange, responses(
    (status = 200, description = "recorded", body = PhoneRecorded),
    (status = 401, description = "the password is wrong (the session has ended), or the one-time code is", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "not a phone texts can be sent to", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "too many guesses from this address", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn set_my_phone<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<AnyStaff>,
    client: ClientAddr,
    Json(req): Json<PhoneChange>,
) -> Result<Json<PhoneRecorded>, ApiError> {
    let phone = staff_phone(&app, &req.phone)?;
    let officer = app
        .store()
        .officer(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    let right = app
        .passwords
        .verify(req.current_password.clone(), officer.password_hash.clone())
        .await?;
    if !right {
        app.auth.forget_session(&me.token_hash);
        app.store().revoke_session(&me.token_hash).await?;
        return Err(ApiError::Unauthorized(
            "the password is wrong; this session has ended: sign in again".into(),
        ));
    }
    accept_otp(
        &app,
        client,
        &phone,
        OtpGuess {
            challenge: &req.challenge,
            code: &req.code,
        },
    )
    .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "staff-phone",
        None,
        format!("own phone recorded: {}", phone.masked()),
    )
    .await?;
    app.store().set_officer_phone(me.id, phone.as_str()).await?;
    if let Some(old) = officer.phone.as_deref().and_then(|p| Phone::parse(p).ok())
        && old != phone
    {
        let text = format!(
            "healthcode staff account {}: its passwords now go to {}. If you did not do this, tell your authority.",
            officer.username,
            phone.masked()
        );
        if let Err(e) = app.sms.send(old.as_str(), &old.masked(), &text).await {
            tracing::warn!(target: "healthcode::sms", error = %e, "the old phone of a staff account could not be told of the change");
        }
    }
    // Other sessions stay: the owner proved the password and the phone.
    Ok(Json(PhoneRecorded {
        phone: phone.masked(),
    }))
}
