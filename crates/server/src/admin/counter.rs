//! The service counter: an officer, with the person and their document in front of them,
//! registers a holder or moves a holder to a new phone. The phone is proved as everywhere else:
//! the person reads out the one-time code `POST /otp` sent to it, so that an officer's typo, or a
//! dishonest officer, cannot bind a stranger's phone. When a real-name registry is connected it is
//! asked too, and a no-match is refused. The officer states that they saw the document and checked
//! its number; that, the document's kind and the officer are recorded in the audit log before
//! anything changes, and so is every refused attempt.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_domain::{FullName, IdentityDocument};
use healthcode_store::{HolderKind, Store};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;

use crate::access::Reader;
use crate::auth::{Officers, Staff};
use crate::client::ClientAddr;
use crate::holders::{
    NewHolder, OtpGuess, Registration, accept_otp, iso_date, move_to_phone, store_holder, text,
};
use crate::identity::{IdentityClaim, Verdict};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// The person at the counter, as their document says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CounterPerson {
    /// A resident, with their resident ID card.
    Resident {
        /// Full name.
        name: String,
        /// 18-character resident ID number.
        resident_id: String,
        /// Phone, international form.
        phone: String,
    },
    /// A foreign visitor, with their passport.
    Visitor {
        /// Full name as in the passport.
        name: String,
        /// Passport number.
        passport: String,
        /// Nationality, ICAO alpha-3.
        nationality: String,
        /// Date of birth.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        birth_date: Date,
        /// The passport's machine-readable zone, when read.
        #[serde(default)]
        mrz: Option<[String; 2]>,
        /// Arrival flight.
        flight: String,
        /// Arrival date.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        arrival: Date,
        /// Phone, international form.
        phone: String,
    },
}

impl From<CounterPerson> for Registration {
    fn from(p: CounterPerson) -> Registration {
        match p {
            CounterPerson::Resident {
                name,
                resident_id,
                phone,
            } => Registration::Resident {
                name,
                resident_id,
                phone,
                challenge: String::new(),
                otp: String::new(),
            },
            CounterPerson::Visitor {
                name,
                passport,
                nationality,
                birth_date,
                mrz,
                flight,
                arrival,
                phone,
            } => Registration::Visitor {
                name,
                passport,
                nationality,
                birth_date,
                mrz,
                flight,
                arrival,
                phone,
                challenge: String::new(),
                otp: String::new(),
            },
        }
    }
}

/// What the officer checked: both must be true.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentCheck {
    /// The officer holds the original document (resident ID card or passport) and it shows the
    /// person in front of them.
    #[serde(default)]
    pub document_seen: bool,
    /// The number and name typed are the document's, read back against it.
    #[serde(default)]
    pub number_checked: bool,
}

impl DocumentCheck {
    fn require(&self) -> Result<(), ApiError> {
        if self.document_seen && self.number_checked {
            Ok(())
        } else {
            Err(ApiError::InvalidField(
                "checked: a holder is registered at the counter only with the original document \
                 seen and its number checked (document_seen and number_checked true)"
                    .into(),
            ))
        }
    }
}

fn document_word(kind: HolderKind) -> &'static str {
    match kind {
        HolderKind::Resident => "resident ID card",
        HolderKind::Visitor => "passport",
    }
}

/// A registration at the counter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterRegistration {
    /// The person.
    pub person: CounterPerson,
    /// What the officer checked.
    pub checked: DocumentCheck,
    /// The challenge `POST /otp` answered with when the code was sent to the person's phone.
    pub challenge: String,
    /// The one-time code the person reads out from their phone.
    pub otp: String,
}

/// The audit log's action for a registration or phone change at the counter that was refused
/// (document or phone registered already, no holder, the registry's no-match): an officer cannot
/// probe documents or phones without trace.
pub const COUNTER_REFUSED: &str = "counter-refused";

/// Records a refused counter attempt (about `subject` when the refusal names a holder), then
/// answers `err`.
async fn refuse<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    subject: Option<healthcode_domain::HolderId>,
    what: String,
    err: ApiError,
) -> ApiError {
    match app
        .audit(me.actor(), me.role.as_str(), COUNTER_REFUSED, subject, what)
        .await
    {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// The registry's word on a person at the counter, when one is connected: a no-match is refused
/// (audited), no answer is a 503.
async fn registry_confirms<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    claim: IdentityClaim<'_>,
    what: &str,
) -> Result<(), ApiError> {
    if !app.identity.configured() {
        return Ok(());
    }
    match app.identity.verify(claim).await {
        Verdict::Match => Ok(()),
        Verdict::NoMatch => Err(refuse(
            app,
            me,
            None,
            format!("{what} refused: the real-name registry did not confirm the name, document and phone"),
            ApiError::Forbidden(
                "the real-name registry does not confirm that this name, document and phone belong \
                 to one person, so nothing was done. Check what was typed against the document; \
                 a registration the registry does not confirm cannot be made here"
                    .into(),
            ),
        )
        .await),
        Verdict::Unknown(why) => {
            tracing::warn!(target: "healthcode::identity", %why, "the real-name registry did not answer");
            Err(ApiError::Unavailable(
                "the real-name registry cannot answer now; send a new one-time code and retry later".into(),
                30,
            ))
        }
    }
}

/// A holder registered at the counter.
#[derive(Debug, Serialize, ToSchema)]
pub struct CounterRegistered {
    /// Pseudonymous id (hex).
    pub holder: String,
    /// The masked name codes show.
    pub name_hint: String,
    /// The phone the holder signs in with, masked.
    pub phone: String,
}

/// Registers a holder at a service counter (officers), with the original document seen and its
/// number checked, and the phone proved by its one-time code (sent with `POST /otp`, read out by
/// the person). When a real-name registry is connected it must confirm the name, document and
/// phone. Recorded in the audit log with the officer and the document's kind before the holder
/// is stored; refused attempts are recorded too. The holder then signs in with the phone.
#[utoipa::path(post, path = "/counter/holders", tag = "counter", security(("officer" = [])), request_body = CounterRegistration, responses(
    (status = 201, description = "registered; the holder signs in with the phone", body = CounterRegistered),
    (status = 401, description = "the phone's one-time code was refused", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the real-name registry does not confirm the name, document and phone", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the document or the phone holds a registration already (for a new phone, change it)", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the document was not seen and checked", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "the real-name registry cannot answer now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn counter_register<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    client: ClientAddr,
    Json(req): Json<CounterRegistration>,
) -> Result<(StatusCode, Json<CounterRegistered>), ApiError> {
    let t = now();
    let today = t.to_offset(app.policy().utc_offset()).date();
    let person = NewHolder::parse(req.person.into(), today)?;
    req.checked.require()?;
    // The phone first: only a phone the person holds is ever bound, whatever was typed.
    let guess = OtpGuess {
        challenge: &req.challenge,
        code: &req.otp,
    };
    accept_otp(&app, client, &person.phone, guess).await?;
    let word = document_word(person.kind);
    let claim = IdentityClaim {
        name: &person.name,
        document: &person.document,
        phone: &person.phone,
    };
    registry_confirms(
        &app,
        &me,
        claim,
        &format!("registration at a service counter with a {word}"),
    )
    .await?;
    if let Some(owner) = app
        .store()
        .holder_by_identity(&app.vault().identity_hash(&person.document))
        .await?
    {
        let what =
            format!("registration at a service counter refused: this holder's {word} was presented again");
        return Err(refuse(&app, &me, Some(owner.id), what, document_taken()).await);
    }
    if let Some(owner) = app
        .store()
        .holder_by_phone(&app.vault().lookup_hash("phone", person.phone.as_str()))
        .await?
    {
        let what = "registration at a service counter refused: this holder's phone was presented with another document".into();
        let err = ApiError::Conflict("this phone holds another registration; ask for another phone".into());
        return Err(refuse(&app, &me, Some(owner.id), what, err).await);
    }
    let id = healthcode_domain::HolderId::random().map_err(|e| ApiError::internal("no randomness", e))?;
    // Audited before it is stored, as every change of a holder is.
    app.audit(
        me.actor(),
        me.role.as_str(),
        "counter-register",
        Some(id.clone()),
        format!(
            "registration as a {} at a service counter: {word} seen, number checked, phone's one-time code read out{}",
            person.kind.as_str(),
            if app.identity.configured() {
                ", confirmed by the real-name registry"
            } else {
                ""
            }
        ),
    )
    .await?;
    store_holder(&app, &id, &person, t, document_taken).await?;
    text(
        &app,
        &person.phone,
        "Health code: you are registered. Sign in with a one-time code sent to this phone.",
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CounterRegistered {
            holder: id.to_hex(),
            name_hint: person.hint.as_str().to_owned(),
            phone: person.phone.masked(),
        }),
    ))
}

fn document_taken() -> ApiError {
    ApiError::Conflict(
        "this document holds a registration already; if its holder has a new phone, change the \
         phone instead"
            .into(),
    )
}

/// A phone change at the counter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterPhoneChange {
    /// Full name as on the document.
    pub name: String,
    /// A resident ID number…
    #[serde(default)]
    pub resident_id: Option<String>,
    /// …or a passport number with its nationality.
    #[serde(default)]
    pub passport: Option<String>,
    /// Nationality (alpha-3), with `passport`.
    #[serde(default)]
    pub nationality: Option<String>,
    /// The new phone.
    pub new_phone: String,
    /// The challenge `POST /otp` answered with when the code was sent to the new phone.
    pub new_challenge: String,
    /// The one-time code the person reads out from the new phone.
    pub new_otp: String,
    /// What the officer checked.
    pub checked: DocumentCheck,
}

/// A holder moved to a new phone.
#[derive(Debug, Serialize, ToSchema)]
pub struct CounterPhoneChanged {
    /// Pseudonymous id (hex).
    pub holder: String,
    /// The new phone, masked.
    pub phone: String,
    /// How many sessions ended.
    pub sessions_ended: u64,
}

/// Moves a holder to a new phone at a service counter (officers), with the original document
/// seen and its number checked, and the new phone proved by its one-time code; the name must be
/// the registered one, and a connected real-name registry must confirm the new phone. Audited
/// (refusals too); every session of the holder ends; both phones are texted.
#[utoipa::path(post, path = "/counter/phone-changes", tag = "counter", security(("officer" = [])), request_body = CounterPhoneChange, responses(
    (status = 200, description = "moved", body = CounterPhoneChanged),
    (status = 401, description = "the new phone's one-time code was refused", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the real-name registry does not confirm the name, document and new phone", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the new phone holds another registration", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the document was not seen and checked", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "the real-name registry cannot answer now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn counter_change_phone<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    client: ClientAddr,
    Json(req): Json<CounterPhoneChange>,
) -> Result<Json<CounterPhoneChanged>, ApiError> {
    let t = now();
    let name = FullName::parse(&req.name).map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
    let document = IdentityDocument::parse(
        req.resident_id.as_deref(),
        req.passport.as_deref(),
        req.nationality.as_deref(),
        healthcode_domain::latest_date_anywhere(t),
    )
    .map_err(|e| ApiError::InvalidField(e.to_string()))?;
    let new = crate::holders::parse_phone(&req.new_phone)?;
    req.checked.require()?;
    let guess = OtpGuess {
        challenge: &req.new_challenge,
        code: &req.new_otp,
    };
    accept_otp(&app, client, &new, guess).await?;
    let claim = IdentityClaim {
        name: &name,
        document: &document,
        phone: &new,
    };
    registry_confirms(&app, &me, claim, "phone change at a service counter").await?;
    let no_holder = || ApiError::NotFound("no holder is registered with this name and document".into());
    let Some(holder) = app
        .store()
        .holder_by_identity(&app.vault().identity_hash(&document))
        .await?
    else {
        let what = "phone change at a service counter refused: no holder has the document".into();
        return Err(refuse(&app, &me, None, what, no_holder()).await);
    };
    // The name before anything else is told about this holder, so that a document number alone
    // says nothing (not even, by a conflict on the phone, that it is registered); a refusal under
    // another name is in the holder's access log.
    if !app.vault().same_name(&holder, &name)? {
        let what =
            "phone change at a service counter refused: the document was presented under another name".into();
        return Err(refuse(&app, &me, Some(holder.id.clone()), what, no_holder()).await);
    }
    if let Some(owner) = app
        .store()
        .holder_by_phone(&app.vault().lookup_hash("phone", new.as_str()))
        .await?
    {
        let what = "phone change at a service counter refused: this holder's phone was presented as another's new phone".into();
        let err = ApiError::Conflict("the new phone holds another registration".into());
        return Err(refuse(&app, &me, Some(owner.id), what, err).await);
    }
    let reader = Reader {
        actor: me.actor(),
        role: me.role.as_str().into(),
    };
    let why = format!(
        "phone change at a service counter: {} seen, number checked",
        document_word(holder.kind)
    );
    let ended = move_to_phone(&app, &reader, &holder, &new, Some((&name, no_holder)), &why).await?;
    Ok(Json(CounterPhoneChanged {
        holder: holder.id.to_hex(),
        phone: new.masked(),
        sessions_ended: ended,
    }))
}
