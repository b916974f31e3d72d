//! Registration of residents and visitors, sign-in and sign-out.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::IntoResponse;
use healthcode_domain::{HolderId, ResidentRegistration, VisitorInput, VisitorRegistration};
use healthcode_store::{HolderKind, PersonalData, Principal, Store};
use healthcode_token::NameHint;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::{secret_hash, start_session};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

use super::otp::{OtpGuess, accept_otp};
use super::{invalid, iso_date, parse_phone};
use crate::client::ClientAddr;

/// A registration: a resident (ID card) or a visitor (passport; the international version).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Registration {
    /// A resident.
    Resident {
        /// Full name.
        name: String,
        /// 18-character resident ID number.
        resident_id: String,
        /// Phone, international form.
        phone: String,
        /// The challenge `POST /otp` answered with.
        challenge: String,
        /// The one-time code sent to the phone.
        otp: String,
    },
    /// A foreign visitor.
    Visitor {
        /// Full name as in the passport.
        name: String,
        /// Passport number.
        passport: String,
        /// Nationality, ICAO alpha-3 (`SWE`).
        nationality: String,
        /// Date of birth.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        birth_date: Date,
        /// The passport's machine-readable zone (two lines of 44), checked when given.
        #[serde(default)]
        #[schema(min_items = 2, max_items = 2)]
        mrz: Option<[String; 2]>,
        /// Arrival flight (`SK997`).
        flight: String,
        /// Arrival date.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        arrival: Date,
        /// Phone, international form.
        phone: String,
        /// The challenge `POST /otp` answered with.
        challenge: String,
        /// The one-time code sent to the phone.
        otp: String,
    },
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session token: send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// The holder's pseudonymous id (hex).
    pub holder: String,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Registers a holder with a one-time code and signs them in.
#[utoipa::path(post, path = "/holders", tag = "holders", request_body = Registration, responses(
    (status = 201, description = "registered and signed in", body = SessionCreated),
    (status = 401, description = "one-time code refused", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "this identity or phone is registered already", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid (ID number check digit, MRZ, phone…)", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn register<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
    Json(req): Json<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    let t = now();
    let today = t.to_offset(app.policy.utc_offset()).date();
    let (kind, data, phone, challenge, otp) = match &req {
        Registration::Resident {
            name,
            resident_id,
            phone,
            challenge,
            otp,
        } => {
            let r = ResidentRegistration::parse(name, resident_id, phone, today).map_err(invalid)?;
            let data = PersonalData {
                name: r.name.as_str().to_owned(),
                birth_date: r
                    .id_number
                    .birth_date()
                    .ok_or_else(|| ApiError::InvalidField("resident_id: no birth date".into()))?,
                resident_id: Some(r.id_number.as_str().to_owned()),
                passport: None,
                nationality: None,
                phone: r.phone.as_str().to_owned(),
                arrival: None,
            };
            (HolderKind::Resident, data, r.phone, challenge, otp)
        }
        Registration::Visitor {
            name,
            passport,
            nationality,
            birth_date,
            mrz,
            flight,
            arrival,
            phone,
            challenge,
            otp,
        } => {
            let v = VisitorRegistration::parse(
                VisitorInput {
                    name,
                    passport,
                    nationality,
                    birth_date: *birth_date,
                    mrz: mrz.as_ref().map(|[a, b]| (a.as_str(), b.as_str())),
                    flight,
                    arrival: *arrival,
                    phone,
                },
                today,
            )
            .map_err(invalid)?;
            let data = PersonalData {
                name: v.name.as_str().to_owned(),
                birth_date: v.birth_date,
                resident_id: None,
                passport: Some(v.passport.as_str().to_owned()),
                nationality: Some(v.nationality.as_str().to_owned()),
                phone: v.phone.as_str().to_owned(),
                arrival: Some((v.flight.as_str().to_owned(), v.arrival)),
            };
            (HolderKind::Visitor, data, v.phone, challenge, otp)
        }
    };
    let hint = NameHint::mask(&data.name).map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
    // The code first: whether an identity is registered is told only to the phone's owner.
    let guess = OtpGuess { challenge, code: otp };
    accept_otp(&app, client, &phone, guess).await?;
    let id = HolderId::random().map_err(|e| ApiError::internal("no randomness", e))?;
    let sealed = app.vault.seal(id.clone(), kind, &data, hint.as_str(), t)?;
    app.store.insert_holder(&sealed).await.map_err(|e| match e {
        healthcode_store::StoreError::Conflict(_) => ApiError::Conflict(
            "this identity document or phone is registered already; sign in instead".into(),
        ),
        other => other.into(),
    })?;
    app.audit(
        format!("holder:{}", id.to_hex()),
        "holder",
        "register",
        Some(id.clone()),
        format!("registration as a {}", kind.as_str()),
    )
    .await?;
    let (token, expires_at) =
        start_session(&app, Principal::Holder(id.clone()), app.settings.holder_session).await?;
    Ok((
        StatusCode::CREATED,
        crate::auth::web_session(&headers, crate::auth::HOLDER_COOKIE, &token, expires_at),
        Json(SessionCreated {
            token,
            holder: id.to_hex(),
            expires_at,
        }),
    ))
}

/// Signs in with a phone and its one-time code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Phone, international form.
    pub phone: String,
    /// The challenge `POST /otp` answered with.
    pub challenge: String,
    /// The one-time code.
    pub otp: String,
}

/// Signs a registered holder in.
#[utoipa::path(post, path = "/sessions", tag = "holders", request_body = SignIn, responses(
    (status = 201, description = "signed in", body = SessionCreated),
    (status = 401, description = "one-time code refused", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no holder has this phone", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn sign_in<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
    Json(req): Json<SignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let phone = parse_phone(&req.phone)?;
    let guess = OtpGuess {
        challenge: &req.challenge,
        code: &req.otp,
    };
    accept_otp(&app, client, &phone, guess).await?;
    let holder = app
        .store
        .holder_by_phone(&app.vault.lookup_hash("phone", phone.as_str()))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound("no holder is registered with this phone; register first".into())
        })?;
    let (token, expires_at) = start_session(
        &app,
        Principal::Holder(holder.id.clone()),
        app.settings.holder_session,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        crate::auth::web_session(&headers, crate::auth::HOLDER_COOKIE, &token, expires_at),
        Json(SessionCreated {
            token,
            holder: holder.id.to_hex(),
            expires_at,
        }),
    ))
}

/// Any session (holder or officer), for signing out.
#[derive(Debug)]
pub struct AnySession([u8; 32]);

impl<S: Store> FromRequestParts<Arc<App<S>>> for AnySession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let token = crate::auth::bearer_in(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
        Ok(AnySession(secret_hash(token)))
    }
}

/// Ends the session presented (holder or officer).
#[utoipa::path(delete, path = "/sessions/current", tag = "holders", security(("holder" = []), ("officer" = [])), responses(
    (status = 204, description = "signed out"),
    (status = 401, description = "no such session", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn sign_out<S: Store>(
    State(app): State<Arc<App<S>>>,
    AnySession(hash): AnySession,
) -> Result<StatusCode, ApiError> {
    app.auth.forget_session(&hash);
    if app.store.revoke_session(&hash).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Unauthorized(
            "the session is unknown or has ended".into(),
        ))
    }
}
