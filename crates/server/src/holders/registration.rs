//! Registration of residents and visitors, sign-in and sign-out.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::IntoResponse;
use healthcode_domain::{
    FullName, HolderId, IdentityDocument, Phone, ResidentRegistration, VisitorInput, VisitorRegistration,
};
use healthcode_store::{HolderKind, PersonalData, Principal, Store};
use healthcode_token::NameHint;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::{secret_hash, start_session};
use crate::identity::IdentityClaim;
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

/// Registers a holder with a one-time code and signs them in, once the real-name registry
/// confirms that the name, the document and the phone belong to one person. A document that
/// holds a registration already is refused with the same answer as a registry's no-match (and
/// its holder is told by SMS); without a registry, holders register at a service counter.
#[utoipa::path(post, path = "/holders", tag = "holders", request_body = Registration, responses(
    (status = 201, description = "registered and signed in", body = SessionCreated),
    (status = 401, description = "one-time code refused", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "not confirmed by the real-name registry, or self-registration is closed (no registry: register at a service counter)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "this phone is registered already", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid (ID number check digit, MRZ, phone…)", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "the real-name registry cannot answer now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn register<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
    Json(req): Json<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    let t = now();
    let today = t.to_offset(app.policy().utc_offset()).date();
    let (challenge, otp) = match &req {
        Registration::Resident { challenge, otp, .. } | Registration::Visitor { challenge, otp, .. } => {
            (challenge.clone(), otp.clone())
        }
    };
    let person = NewHolder::parse(req, today)?;
    if !app.identity.configured() {
        return Err(self_registration_closed());
    }
    // The code first: only the phone's owner learns anything from what follows, and the
    // registry is asked only about a phone its asker holds.
    let guess = OtpGuess {
        challenge: &challenge,
        code: &otp,
    };
    accept_otp(&app, client, &person.phone, guess).await?;
    let phone_hash = app.vault.lookup_hash("phone", person.phone.as_str());
    if app.store.holder_by_phone(&phone_hash).await?.is_some() {
        return Err(ApiError::Conflict(
            "this phone is registered already; sign in instead".into(),
        ));
    }
    let verdict = app
        .identity
        .verify(IdentityClaim {
            name: &person.name,
            document: &person.document,
            phone: &person.phone,
        })
        .await;
    let bound = app
        .store
        .holder_by_identity(&app.vault.identity_hash(&person.document))
        .await?;
    if let Some(owner) = &bound {
        // Told from a task of its own, so that the answer takes no longer than a no-match.
        super::proofing::tell_document_owner(app.clone(), owner.clone());
    }
    super::proofing::confirmed(verdict, bound.is_some())?;
    // Registered meanwhile: the same answer as any refusal.
    let id = HolderId::random().map_err(|e| ApiError::internal("no randomness", e))?;
    store_holder(&app, &id, &person, t, super::proofing::not_confirmed).await?;
    app.audit(
        format!("holder:{}", id.to_hex()),
        "holder",
        "register",
        Some(id.clone()),
        format!(
            "registration as a {}, confirmed by the real-name registry",
            person.kind.as_str()
        ),
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

/// The answer when no registry is configured.
pub(crate) fn self_registration_closed() -> ApiError {
    ApiError::Forbidden(
        "registration here is closed: no real-name registry is connected. Register at a service \
         counter with your resident ID card or passport; then sign in with your phone"
            .into(),
    )
}

/// A person to register, every field parsed: what self-registration and the counter share.
#[derive(Debug, Clone)]
pub(crate) struct NewHolder {
    pub kind: HolderKind,
    pub name: FullName,
    pub document: IdentityDocument,
    pub phone: Phone,
    pub data: PersonalData,
    pub hint: NameHint,
}

impl NewHolder {
    /// Parses a registration; `today` bounds birth dates.
    pub fn parse(req: Registration, today: Date) -> Result<NewHolder, ApiError> {
        let (kind, name, document, data, phone) = match &req {
            Registration::Resident {
                name,
                resident_id,
                phone,
                ..
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
                (
                    HolderKind::Resident,
                    r.name,
                    IdentityDocument::ResidentId(r.id_number),
                    data,
                    r.phone,
                )
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
                ..
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
                (
                    HolderKind::Visitor,
                    v.name,
                    IdentityDocument::Passport {
                        nationality: v.nationality,
                        number: v.passport,
                    },
                    data,
                    v.phone,
                )
            }
        };
        let hint = NameHint::mask(&data.name).map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
        Ok(NewHolder {
            kind,
            name,
            document,
            phone,
            data,
            hint,
        })
    }
}

/// Stores a holder, as `id`, whose identity is confirmed (by the registry, or by an officer who
/// saw the document); a document or phone taken meanwhile is answered with `taken()`.
pub(crate) async fn store_holder<S: Store>(
    app: &App<S>,
    id: &HolderId,
    person: &NewHolder,
    t: OffsetDateTime,
    taken: impl FnOnce() -> ApiError,
) -> Result<(), ApiError> {
    let sealed = app
        .vault
        .seal(id.clone(), person.kind, &person.data, person.hint.as_str(), t)?;
    match app.store.insert_holder(&sealed).await {
        Ok(()) => Ok(()),
        Err(healthcode_store::StoreError::Conflict(_)) => Err(taken()),
        Err(other) => Err(other.into()),
    }
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
