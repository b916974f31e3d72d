//! The staff second factor: TOTP (RFC 6238) enrolled at the first sign-in, with ten single-use
//! recovery codes. The secret is shown once, at enrolment, and kept sealed under the data keys;
//! recovery codes are kept as SHA-256 (80 random bits each). A code is good once: the store
//! takes its time step only if it is after the last one used.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_domain::OfficerId;
use healthcode_store::{Officer, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Enrolling, Staff, secret_hash};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now, totp};

/// How many recovery codes an enrolment gives.
pub const RECOVERY_CODES: usize = 10;

/// What the sealed secret of an account is bound to.
fn aad(id: OfficerId) -> Vec<u8> {
    format!("totp:officer:{}", id.0).into_bytes()
}

/// How a second factor was given at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Given {
    /// A code from the authenticator app.
    Code,
    /// A recovery code; this many are left.
    Recovery(u32),
}

/// Checks the second factor sent with a sign-in for an account that has one enrolled: a code
/// of the current step (or one either side) not used before, or an unused recovery code.
/// `None` for anything else (the caller counts it as a failed sign-in).
pub(crate) async fn check<S: Store>(
    app: &App<S>,
    officer: &Officer,
    code: Option<&str>,
    recovery: Option<&str>,
) -> Result<Option<Given>, ApiError> {
    let Some(sf) = app.store().second_factor(officer.id).await? else {
        return Ok(None);
    };
    let Some(sealed) = sf.secret else {
        return Ok(None);
    };
    if let Some(code) = code {
        let secret = app.vault().open_secret(&aad(officer.id), &sealed)?;
        let Some(step) = totp::matching_step(&secret, code, OffsetDateTime::now_utc()) else {
            return Ok(None);
        };
        return Ok(app
            .store()
            .use_totp_step(officer.id, step)
            .await?
            .then_some(Given::Code));
    }
    if let Some(typed) = recovery {
        let hash = secret_hash(&totp::normalised_recovery_code(typed));
        if !app.store().use_recovery_code(officer.id, &hash, now()).await? {
            return Ok(None);
        }
        let left = sf.recovery_left.saturating_sub(1);
        app.audit(
            format!("officer:{}:{}", officer.id.0, officer.username),
            officer.role.as_str(),
            "recovery-code-use",
            None,
            format!("signed in with a recovery code; {left} left"),
        )
        .await?;
        return Ok(Some(Given::Recovery(left)));
    }
    Ok(None)
}

/// A secret to enter into an authenticator app. Shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolment {
    /// The secret in base32, to type in.
    pub secret: String,
    /// The same as an `otpauth://` URI, for a QR code.
    pub uri: String,
    /// That QR code, as SVG.
    pub qr_svg: String,
}

/// Starts enrolling a second factor for the signed-in account: a new secret, shown once, to be
/// confirmed with a code from the app. An account that has one enrolled must have an admin reset
/// it first (a stolen session cannot replace it).
#[utoipa::path(post, path = "/me/second-factor", tag = "officers", security(("officer" = [])), responses(
    (status = 201, description = "a secret to enter into an authenticator app, then confirm", body = Enrolment),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "a second factor is enrolled already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn begin_enrolment<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Enrolling>,
) -> Result<impl IntoResponse, ApiError> {
    let officer = app
        .store()
        .officer(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    if officer.second_factor {
        return Err(ApiError::Conflict(
            "a second factor is enrolled already; an admin can reset it".into(),
        ));
    }
    let secret = totp::new_secret()?;
    let sealed = app.vault().seal_secret(&aad(me.id), &secret)?;
    app.store().offer_second_factor(me.id, &sealed).await?;
    let uri = totp::uri(&secret, "healthcode", &me.username);
    let qr_svg = healthcode_qr::Qr::new(&uri)
        .map_err(|e| ApiError::internal("cannot draw the QR code", e))?
        .to_svg(4);
    Ok((
        StatusCode::CREATED,
        Json(Enrolment {
            secret: totp::secret_text(&secret),
            uri,
            qr_svg,
        }),
    ))
}

/// A code from the app, confirming the secret it was given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCode {
    /// The six digits the app shows now.
    pub code: String,
}

/// The recovery codes of a confirmed enrolment. Shown once: each signs in once in place of a
/// code, for when the app is lost.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten codes.
    pub recovery_codes: Vec<String>,
}

/// Confirms the secret offered by `POST /me/second-factor` with a code from the app; the account
/// then has a second factor, every later sign-in needs it, and ten recovery codes are shown
/// once. Audited.
#[utoipa::path(post, path = "/me/second-factor/confirm", tag = "officers", security(("officer" = [])), request_body = EnrolmentCode, responses(
    (status = 201, description = "enrolled; the recovery codes, shown once", body = RecoveryCodes),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "nothing is being enrolled, or that code was used already", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the code is not the app's code for now", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn confirm_enrolment<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Enrolling>,
    Json(req): Json<EnrolmentCode>,
) -> Result<impl IntoResponse, ApiError> {
    let sf = app
        .store()
        .second_factor(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    if sf.secret.is_some() {
        return Err(ApiError::Conflict("a second factor is enrolled already".into()));
    }
    let offered = sf.offered.ok_or_else(|| {
        ApiError::Refused("nothing is being enrolled: start with POST /api/v1/admin/me/second-factor".into())
    })?;
    let secret = app.vault().open_secret(&aad(me.id), &offered)?;
    let step = totp::matching_step(&secret, &req.code, OffsetDateTime::now_utc()).ok_or_else(|| {
        ApiError::InvalidField("code: not the code the app shows now; check the phone's clock".into())
    })?;
    let codes = (0..RECOVERY_CODES)
        .map(|_| totp::new_recovery_code())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<[u8; 32]> = codes
        .iter()
        .map(|c| secret_hash(&totp::normalised_recovery_code(c)))
        .collect();
    // The secret whose code was checked, and no other: an offer made again meanwhile refuses.
    let ended = app
        .store()
        .confirm_second_factor(me.id, &offered, step, &hashes, &me.token_hash)
        .await?;
    // This node forgets them at once; every node reads the store on each staff request.
    app.auth
        .forget_sessions_of(&healthcode_store::Principal::Officer(me.id));
    app.audit(
        me.actor(),
        me.role.as_str(),
        "second-factor-enrol",
        None,
        format!("TOTP enrolled with {RECOVERY_CODES} recovery codes; {ended} other sessions ended"),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryCodes {
            recovery_codes: codes,
        }),
    ))
}
