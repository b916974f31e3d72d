//! Staff phones: where an account's one-time passwords go.
//!
//! - A new account's first password is made at approval in two halves: the first is texted to
//!   the phone the proposing admin recorded, the second is given to the approving admin to hand
//!   over in person. Neither admin alone holds it (a proposer who typed their own phone has half;
//!   an approver of two honest colleagues' accounts has half of each), and an owner missing a
//!   half knows something is wrong.
//! - A reset sends the whole new password to the account's phone once its owner has proven it
//!   (with a one-time code, here); until then a reset is refused, since the proposer's word for
//!   a phone is not the owner's. No admin ever sees a reset's password.
//! - Only the owner records or changes their phone (their password and a code sent to the new
//!   phone by `POST /otp`); nobody else can. One phone serves one account.

use std::sync::Arc;

use axum::extract::State;
use healthcode_domain::{OfficerId, Phone};
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

/// Refuses a phone that another staff account already has: one phone, one account (an admin
/// cannot point a colleague's passwords at their own phone).
pub(crate) async fn not_anothers<S: Store>(
    app: &App<S>,
    phone: &Phone,
    mine: Option<OfficerId>,
) -> Result<(), ApiError> {
    let on_account = app
        .store()
        .officers()
        .await?
        .into_iter()
        .any(|o| Some(o.id) != mine && o.phone.as_deref() == Some(phone.as_str()));
    // An account still awaiting approval has it too (its approval checks again, in the store).
    let proposed = app
        .store()
        .proposals(true, crate::now(), 0, 1000)
        .await?
        .into_iter()
        .any(|p| matches!(&p.act, healthcode_store::Act::AccountCreate { phone: Some(q), .. } if q == phone.as_str()));
    let taken = on_account || proposed;
    if taken {
        return Err(ApiError::Conflict(
            "phone: another staff account has this phone; each account needs its owner's own".into(),
        ));
    }
    Ok(())
}

/// The proven phone an account's reset passwords are sent to, or 409 naming what to do.
pub(crate) fn phone_of(o: &Officer) -> Result<Phone, ApiError> {
    let phone = o.phone.as_deref().and_then(|p| Phone::parse(p).ok());
    match phone {
        Some(p) if o.phone_proven_at.is_some() => Ok(p),
        _ => Err(ApiError::Conflict(format!(
            "{} has no phone its owner has proven, so a new password cannot reach them alone: the owner confirms their phone on their account page, or the server's operator runs `healthcode admin reset-password {}`",
            o.username, o.username
        ))),
    }
}

/// Sends a reset's one-time password to its owner's proven phone; returns the phone, masked.
pub(crate) async fn send_password<S: Store>(
    app: &App<S>,
    phone: &Phone,
    username: &str,
    password: &str,
) -> Result<String, ApiError> {
    let text = format!(
        "healthcode staff account {username}: one-time password {password}. Sign in and replace it at once; if you did not expect this, tell your authority."
    );
    send(app, phone, &text).await
}

/// Sends the first half of a new account's one-time password to the phone its proposer
/// recorded; returns the phone, masked.
pub(crate) async fn send_first_half<S: Store>(
    app: &App<S>,
    phone: &Phone,
    username: &str,
    first: &str,
) -> Result<String, ApiError> {
    let text = format!(
        "healthcode staff account {username}: first half of your one-time password {first}. The approving admin gives you the second half in person; sign in with both and replace it. If you did not expect this, tell your authority."
    );
    send(app, phone, &text).await
}

async fn send<S: Store>(app: &App<S>, phone: &Phone, text: &str) -> Result<String, ApiError> {
    app.sms
        .send(phone.as_str(), &phone.masked(), text)
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

/// Records (or confirms) the signed-in staff member's phone, where one-time passwords from a
/// reset are sent (`POST /otp` sends the code first); a phone another account has is refused.
/// The password is checked before the code, and a wrong one ends the session, as a password
/// change does: a copied session cannot move the account's passwords to another phone.
/// Audited; the old phone, if any, is told.
#[utoipa::path(put, path = "/me/phone", tag = "officers", security(("officer" = [])), request_body = PhoneChange, responses(
    (status = 200, description = "recorded", body = PhoneRecorded),
    (status = 401, description = "the password is wrong (the session has ended), or the one-time code is", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "another staff account has this phone", body = Problem, content_type = "application/problem+json"),
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
    let officer = super::accounts::own_account_with_password(&app, &me, &req.current_password).await?;
    not_anothers(&app, &phone, Some(me.id)).await?;
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
    app.store()
        .set_officer_phone(me.id, phone.as_str(), crate::now())
        .await?;
    if let Some(old) = officer.phone.as_deref().and_then(|p| Phone::parse(p).ok())
        && old != phone
        && officer.phone_proven_at.is_some()
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
