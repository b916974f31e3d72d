//! What real-name proofing answers, and the texts it sends: the one refusal that reveals nothing,
//! the alert to a document's holder, and moving a holder to a new phone by themselves (the
//! registry confirms the new phone, the old phone's one-time code confirms the holder).

use std::sync::Arc;

use axum::extract::State;
use healthcode_domain::{IdentityDocument, Phone};
use healthcode_store::{SealedHolder, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Reader;
use crate::identity::{IdentityClaim, Verdict};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

use super::otp::{OtpGuess, accept_otp};
use super::{invalid, parse_phone};
use crate::client::ClientAddr;

/// The audit log's action for a holder moved to a new phone (the holder's access log shows it,
/// whoever did it).
pub const PHONE_CHANGE: &str = "phone-change";
/// The audit log's action for a refused registration that named a registered holder's document.
pub const DOCUMENT_PRESENTED: &str = "document-presented";

/// The one answer to a registration or phone change the registry did not confirm, and to one
/// naming a document that holds a registration already: which of the two is not told.
pub(crate) fn not_confirmed() -> ApiError {
    ApiError::Forbidden(
        "the real-name registry did not confirm this name, document and phone together. If they \
         are yours, go to a service counter with the document"
            .into(),
    )
}

/// Goes on only for a registry's match of a document that binds no one yet. A registry that
/// cannot answer is a 503 (whatever else is true, so that it tells nothing either).
pub(crate) fn confirmed(verdict: Verdict, bound: bool) -> Result<(), ApiError> {
    match verdict {
        Verdict::Unknown(why) => {
            tracing::warn!(target: "healthcode::identity", %why, "the real-name registry did not answer");
            Err(ApiError::Unavailable(
                "the real-name registry cannot answer now; ask for a new one-time code and retry later"
                    .into(),
                30,
            ))
        }
        Verdict::Match if !bound => Ok(()),
        Verdict::Match | Verdict::NoMatch => Err(not_confirmed()),
    }
}

/// Texts `phone`; a failure is logged, not answered (the change it reports is done).
pub(crate) async fn text<S: Store>(app: &App<S>, phone: &Phone, text: &str) {
    if let Err(e) = app.sms.send(phone.as_str(), &phone.masked(), text).await {
        tracing::warn!(target: "healthcode::identity", error = %e, to = %phone.masked(), "a notice could not be sent");
    }
}

/// Tells a document's holder that someone presented it to register, in a task of its own: the
/// attempt is recorded in the holder's access log, and their phone gets a text (a few an hour at
/// most, so that attempts cannot flood it).
pub(crate) fn tell_document_owner<S: Store>(app: Arc<App<S>>, owner: SealedHolder) {
    tokio::spawn(async move {
        let t = now();
        let presented = app
            .audit(
                "system:registration".into(),
                "system",
                DOCUMENT_PRESENTED,
                Some(owner.id.clone()),
                "a registration naming this holder's identity document was refused".into(),
            )
            .await;
        if let Err(e) = presented {
            tracing::warn!(target: "healthcode::identity", error = %crate::problem::ErrorChain(&e), "cannot record a presented document");
            return;
        }
        if app.document_alerts.check_key(&owner.id).is_err() {
            return;
        }
        let reader = Reader {
            actor: "system:registration".into(),
            role: "system".into(),
        };
        let data = match app
            .vault
            .read(
                app.store(),
                &reader,
                &owner,
                "texting the holder that their identity document was presented in a registration",
                t,
            )
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(target: "healthcode::identity", error = %crate::problem::ErrorChain(&e), "cannot read a holder's phone");
                return;
            }
        };
        if let Ok(phone) = Phone::parse(&data.phone) {
            text(
                &app,
                &phone,
                "Health code: someone tried to register your identity document with another phone. \
                 It was refused. If this was not you, nothing needs doing; your code is unchanged.",
            )
            .await;
        }
    });
}

/// Moving to a new phone without an officer: both phones' one-time codes, and the holder's name
/// and document, which the registry must confirm with the new phone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneChange {
    /// The phone registered now, international form.
    pub old_phone: String,
    /// The challenge `POST /otp` answered with for the old phone.
    pub old_challenge: String,
    /// The one-time code sent to it.
    pub old_otp: String,
    /// The new phone.
    pub new_phone: String,
    /// The challenge `POST /otp` answered with for the new phone.
    pub new_challenge: String,
    /// The one-time code sent to the new phone.
    pub new_otp: String,
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
}

/// A holder moved to a new phone.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneChanged {
    /// The new phone, masked.
    pub phone: String,
    /// How many sessions ended (sign in again with the new phone).
    pub sessions_ended: u64,
}

/// Moves a holder to a new phone by themselves: the old phone's one-time code (so that whoever
/// holds only the new phone, or only the document, cannot), the new phone's, and the registry's
/// match of the name, the document and the new phone. Every session ends; both phones are told.
#[utoipa::path(post, path = "/phone-changes", tag = "holders", request_body = PhoneChange, responses(
    (status = 200, description = "moved; sign in with the new phone", body = PhoneChanged),
    (status = 401, description = "a one-time code was refused", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "not confirmed (the registry, the name or the document), or no registry is configured", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the new phone is registered already", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "the real-name registry cannot answer now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn change_phone<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    Json(req): Json<PhoneChange>,
) -> Result<Json<PhoneChanged>, ApiError> {
    let t = now();
    let old = parse_phone(&req.old_phone)?;
    let new = parse_phone(&req.new_phone)?;
    if old == new {
        return Err(ApiError::InvalidField(
            "new_phone: the same as the old phone".into(),
        ));
    }
    let name = healthcode_domain::FullName::parse(&req.name).map_err(invalid)?;
    let document = IdentityDocument::parse(
        req.resident_id.as_deref(),
        req.passport.as_deref(),
        req.nationality.as_deref(),
        healthcode_domain::latest_date_anywhere(t),
    )
    .map_err(invalid)?;
    if !app.identity.configured() {
        return Err(ApiError::Forbidden(
            "no real-name registry is connected: a phone is changed at a service counter".into(),
        ));
    }
    // Each code counts only under its own challenge, so a stranger's guesses here under a
    // challenge of their own cannot use up the owner's codes.
    let old_guess = OtpGuess {
        challenge: &req.old_challenge,
        code: &req.old_otp,
    };
    accept_otp(&app, client, &old, old_guess).await?;
    let new_guess = OtpGuess {
        challenge: &req.new_challenge,
        code: &req.new_otp,
    };
    accept_otp(&app, client, &new, new_guess).await?;
    let holder = app
        .store
        .holder_by_phone(&app.vault.lookup_hash("phone", old.as_str()))
        .await?;
    let new_hash = app.vault.lookup_hash("phone", new.as_str());
    if app.store.holder_by_phone(&new_hash).await?.is_some() {
        return Err(ApiError::Conflict(
            "the new phone is registered to a holder already".into(),
        ));
    }
    let verdict = app
        .identity
        .verify(IdentityClaim {
            name: &name,
            document: &document,
            phone: &new,
        })
        .await;
    // The document must be the old phone's holder's, or the answer is the registry's refusal.
    let holder = holder.filter(|h| h.identity_hash == app.vault.identity_hash(&document));
    confirmed(verdict, false)?;
    let holder = holder.ok_or_else(not_confirmed)?;
    let reader = Reader {
        actor: format!("holder:{}", holder.id.to_hex()),
        role: "holder".into(),
    };
    let ended = move_to_phone(
        &app,
        &reader,
        &holder,
        &new,
        Some((&name, not_confirmed)),
        "the holder's own phone change, confirmed by the old phone and the real-name registry",
    )
    .await?;
    Ok(Json(PhoneChanged {
        phone: new.masked(),
        sessions_ended: ended,
    }))
}

/// A name the record must have, and the error to answer when it has another.
pub(crate) type NameCheck<'a> = (&'a healthcode_domain::FullName, fn() -> ApiError);

/// Moves a holder to `new`: the change audited first (as `PHONE_CHANGE`, by `reader`, for
/// `why`), then the new phone and its sealed data stored with every session ended, then both
/// phones told. With `name`, the stored name must be the same, or the answer is the error its
/// function makes. Returns the sessions ended.
pub(crate) async fn move_to_phone<S: Store>(
    app: &App<S>,
    reader: &Reader,
    holder: &SealedHolder,
    new: &Phone,
    name: Option<NameCheck<'_>>,
    why: &str,
) -> Result<u64, ApiError> {
    let t = now();
    let mut data = app.vault.read(app.store(), reader, holder, why, t).await?;
    if let Some((name, differs)) = name
        && !name.same_as(&data.name)
    {
        return Err(differs());
    }
    let old = Phone::parse(&data.phone).ok();
    data.phone = new.as_str().to_owned();
    let moved = app.vault.seal(
        holder.id.clone(),
        holder.kind,
        &data,
        &holder.name_hint,
        holder.created_at,
    )?;
    app.audit(
        reader.actor.clone(),
        &reader.role,
        PHONE_CHANGE,
        Some(holder.id.clone()),
        format!("{why}; new phone {}", new.masked()),
    )
    .await?;
    let ended = app
        .store
        .change_holder_phone(&holder.id, &moved.phone_hash, &moved.sealed)
        .await
        .map_err(|e| match e {
            healthcode_store::StoreError::Conflict(_) => {
                ApiError::Conflict("the new phone is registered to a holder already".into())
            }
            other => other.into(),
        })?;
    app.auth
        .forget_sessions_of(&healthcode_store::Principal::Holder(holder.id.clone()));
    if let Some(old) = old {
        text(
            app,
            &old,
            &format!(
                "Health code: your code has moved from this phone to {}. If you did not ask for \
                 this, go to a service counter.",
                new.masked()
            ),
        )
        .await;
    }
    text(
        app,
        new,
        "Health code: this phone now holds your health code. Sign in with a one-time code.",
    )
    .await;
    Ok(ended)
}
