//! The service counter: an officer, with the person and their document in front of them,
//! registers a holder (who then signs in with their phone's one-time code) or moves a holder to
//! a new phone. The officer states that they saw the document and checked its number; that, the
//! document's kind and the officer are recorded in the audit log before anything changes.

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
use crate::holders::{NewHolder, Registration, iso_date, move_to_phone, store_holder, text};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// The person at the counter, as their document says (no one-time code: they sign in later with
/// their phone's).
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
/// number checked; recorded in the audit log with the officer and the document's kind. The
/// holder then signs in with a one-time code sent to the phone, and is texted to say so.
#[utoipa::path(post, path = "/counter/holders", tag = "counter", security(("officer" = [])), request_body = CounterRegistration, responses(
    (status = 201, description = "registered; the holder signs in with the phone", body = CounterRegistered),
    (status = 409, description = "the document or the phone holds a registration already (for a new phone, change it)", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the document was not seen and checked", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn counter_register<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<CounterRegistration>,
) -> Result<(StatusCode, Json<CounterRegistered>), ApiError> {
    let t = now();
    let today = t.to_offset(app.policy().utc_offset()).date();
    let person = NewHolder::parse(req.person.into(), today)?;
    req.checked.require()?;
    if app
        .store()
        .holder_by_identity(&app.vault().identity_hash(&person.document))
        .await?
        .is_some()
    {
        return Err(document_taken());
    }
    if app
        .store()
        .holder_by_phone(&app.vault().lookup_hash("phone", person.phone.as_str()))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(
            "this phone holds another registration; ask for another phone".into(),
        ));
    }
    let id = store_holder(&app, &person, t, document_taken).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "counter-register",
        Some(id.clone()),
        format!(
            "registration as a {} at a service counter: {} seen, number checked",
            person.kind.as_str(),
            document_word(person.kind)
        ),
    )
    .await?;
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
/// seen and its number checked; the name must be the registered one. Audited; every session of
/// the holder ends; both phones are texted.
#[utoipa::path(post, path = "/counter/phone-changes", tag = "counter", security(("officer" = [])), request_body = CounterPhoneChange, responses(
    (status = 200, description = "moved", body = CounterPhoneChanged),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the new phone holds another registration", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the document was not seen and checked", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn counter_change_phone<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
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
    let no_holder = || ApiError::NotFound("no holder is registered with this name and document".into());
    let holder = app
        .store()
        .holder_by_identity(&app.vault().identity_hash(&document))
        .await?
        .ok_or_else(no_holder)?;
    if app
        .store()
        .holder_by_phone(&app.vault().lookup_hash("phone", new.as_str()))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(
            "the new phone holds another registration".into(),
        ));
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
