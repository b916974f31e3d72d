//! Consent obtained by an officer: the holder reads out a one-time code texted to their phone
//! (the code is bound to the holder, the scope, the days and the officer who asked), or gives it
//! in person, with the document seen and attested by the officer by name (and the holder is
//! texted at once). Either way the consent is given to that officer only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_domain::FullName;
use healthcode_store::{ConsentGiven, NewConsent, OtpCheck, SealedHolder, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CONSENT_RECORD, ConsentView, Scope, consent_days, told};
use crate::admin::{found_or_audited, named_holder, parse_document, require_holder};
use crate::auth::{Officers, Staff};
use crate::holders::six_digits;
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// An officer asks a holder for consent by a one-time code: the holder is found by name and
/// document together, as a search finds them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentCodeRequest {
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
    /// What the consent is for.
    pub scope: Scope,
    /// For how many days (1-30).
    pub days: u16,
}

/// A consent code was texted to the holder.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentCodeSent {
    /// The holder (hex), to send back with the code.
    pub holder: String,
    /// Where to, masked.
    pub to: String,
    /// Send this back with the code: the code counts only under it.
    pub challenge: String,
    /// How long the code is valid.
    pub expires_in_seconds: i64,
}

/// The code the holder read out, with what it was asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentCodeConfirm {
    /// The holder (hex), as the request answered.
    pub holder: String,
    /// The scope asked for.
    pub scope: Scope,
    /// The days asked for.
    pub days: u16,
    /// The challenge the request answered.
    pub challenge: String,
    /// The six digits the holder read out.
    pub code: String,
}

/// A consent given in person, the identity document seen by the officer who attests it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InPersonConsent {
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
    /// What the consent is for.
    pub scope: Scope,
    /// For how many days (1-30).
    pub days: u16,
    /// The officer saw the document and the person: must be true.
    pub document_seen: bool,
}

fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::Proxy => "let someone act for you (read your record)",
        Scope::PrintedCode => "issue you a printed health code",
    }
}

/// The holder found by a name and a document; a miss is audited as a search's is.
async fn holder_named<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    name: &str,
    resident_id: &Option<String>,
    passport: &Option<String>,
    nationality: &Option<String>,
    why: &str,
) -> Result<SealedHolder, ApiError> {
    let name = FullName::parse(name).map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
    let doc = parse_document(resident_id, passport, nationality)?;
    found_or_audited(app, me, named_holder(app, &doc, &name).await?, why, &doc).await
}

/// The keys a consent code is stored under: per holder and scope (so its limits, one a minute and
/// five an hour, hold whoever asks), and the code bound to the officer and the days.
fn code_keys<S: Store>(
    app: &App<S>,
    holder: &str,
    scope: Scope,
    officer: i64,
    days: u16,
    challenge: &str,
    code: &str,
) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let scope = healthcode_store::ConsentScope::from(scope).as_str();
    (
        app.vault.lookup_hash("consent-otp", &format!("{holder}:{scope}")),
        app.vault.lookup_hash("otp-challenge", challenge.trim()),
        app.vault.lookup_hash(
            "otp",
            &format!("consent:{holder}:{scope}:{officer}:{days}:{}", code.trim()),
        ),
    )
}

/// Asks a holder for consent (officers): a one-time code is texted to the holder's phone saying
/// who asks, for what and how long; the holder reads it out to the officer if they agree. The
/// phone is opened only to send the text (recorded as the system's read). Limited per holder and
/// scope (one a minute, five an hour), and recorded against the holder.
#[utoipa::path(post, path = "/admin/consents/code-requests", tag = "consent", security(("officer" = [])), request_body = ConsentCodeRequest, responses(
    (status = 202, description = "the code was texted to the holder", body = ConsentCodeSent),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "a consent code was sent to this holder recently", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn request_consent_code<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<ConsentCodeRequest>,
) -> Result<(StatusCode, Json<ConsentCodeSent>), ApiError> {
    consent_days(req.days)?;
    let row = holder_named(
        &app,
        &me,
        &req.name,
        &req.resident_id,
        &req.passport,
        &req.nationality,
        "consent request",
    )
    .await?;
    if !app.sms.configured() {
        return Err(ApiError::Unavailable(
            "no SMS gateway is configured: ask for the consent in person".into(),
            60,
        ));
    }
    let hex = row.id.to_hex();
    let code = six_digits()?;
    let challenge = crate::auth::new_secret("otc_")?;
    let (key, challenge_hash, code_hash) =
        code_keys(&app, &hex, req.scope, me.id.0, req.days, &challenge, &code);
    let t = now();
    if let Err(wait) = app
        .store()
        .issue_otp(&key, &challenge_hash, &code_hash, t, &app.otp_limits)
        .await?
    {
        return Err(ApiError::RateLimited(
            format!(
                "a consent code was sent to this holder recently; retry in {} s",
                wait.whole_seconds().max(1)
            ),
            wait.whole_seconds().max(1) as u64,
        ));
    }
    app.audit(
        me.actor(),
        me.role.as_str(),
        "consent-code-sent",
        Some(row.id.clone()),
        format!(
            "a code asking consent for {} for {} days",
            healthcode_store::ConsentScope::from(req.scope).as_str(),
            req.days
        ),
    )
    .await?;
    let text = format!(
        "Health code: officer staff:{} asks your consent to {} for {} days. Read this code to them only if you agree: {code}",
        me.id.0,
        scope_words(req.scope),
        req.days
    );
    let to = told::text_holder(&app, &row, "texting the holder a consent code", &text)
        .await?
        .ok_or_else(|| ApiError::Unavailable("the code could not be sent; retry later".into(), 60))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ConsentCodeSent {
            holder: hex,
            to,
            challenge,
            expires_in_seconds: app.otp_limits.validity.whole_seconds(),
        }),
    ))
}

/// Records the consent the holder gave by reading out the code (officers): only with the code
/// sent to that holder for that scope and days at this officer's request, under its challenge,
/// once. The consent is given to this officer only.
#[utoipa::path(post, path = "/admin/consents/code-confirmations", tag = "consent", security(("officer" = [])), request_body = ConsentCodeConfirm, responses(
    (status = 201, description = "the consent", body = ConsentView),
    (status = 404, description = "no such holder", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "the code is wrong, expired, used, or was not sent for this holder, scope, days and officer", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn confirm_consent_code<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<ConsentCodeConfirm>,
) -> Result<(StatusCode, Json<ConsentView>), ApiError> {
    let days = consent_days(req.days)?;
    let holder = require_holder(&app, &req.holder).await?;
    let code = req.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidField(
            "code: the one-time code has 6 digits".into(),
        ));
    }
    let (key, challenge_hash, code_hash) = code_keys(
        &app,
        &holder.to_hex(),
        req.scope,
        me.id.0,
        req.days,
        &req.challenge,
        code,
    );
    let t = now();
    match app
        .store()
        .check_otp(&key, &challenge_hash, &code_hash, t)
        .await?
    {
        OtpCheck::Accepted => {}
        OtpCheck::Wrong { attempts_left } => {
            return Err(ApiError::OneTimeCode(format!(
                "wrong consent code; {attempts_left} attempts left"
            )));
        }
        OtpCheck::Exhausted => {
            return Err(ApiError::OneTimeCode(
                "too many wrong guesses; ask for a new consent code".into(),
            ));
        }
        OtpCheck::Expired => {
            return Err(ApiError::OneTimeCode(
                "the consent code has expired; ask for a new one".into(),
            ));
        }
        OtpCheck::Missing => {
            return Err(ApiError::OneTimeCode(
                "no consent code is waiting under this challenge for this holder and scope".into(),
            ));
        }
    }
    let consent = app
        .store()
        .add_consent(&NewConsent {
            holder: holder.clone(),
            scope: req.scope.into(),
            granted_to: Some(me.id),
            given: ConsentGiven::OneTimeCode,
            obtained_by: Some(me.id),
            created_at: t,
            expires_at: t + days,
        })
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        CONSENT_RECORD,
        Some(holder),
        format!(
            "consent {} ({}) given by the one-time code read out to staff:{}, for {} days",
            consent.id,
            consent.consent.scope.as_str(),
            me.id.0,
            req.days
        ),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ConsentView::of(&consent, t))))
}

/// Records a consent given in person (officers): the officer saw the person and the document
/// and attests it by name. The consent is given to this officer only, recorded against the
/// holder, and the holder is texted at once, so that a consent made up without them shows.
#[utoipa::path(post, path = "/admin/consents/in-person", tag = "consent", security(("officer" = [])), request_body = InPersonConsent, responses(
    (status = 201, description = "the consent", body = ConsentView),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the document was not seen", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn attest_consent<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<InPersonConsent>,
) -> Result<(StatusCode, Json<ConsentView>), ApiError> {
    let days = consent_days(req.days)?;
    if !req.document_seen {
        return Err(ApiError::InvalidField(
            "document_seen: a consent in person needs the person and their document seen".into(),
        ));
    }
    let row = holder_named(
        &app,
        &me,
        &req.name,
        &req.resident_id,
        &req.passport,
        &req.nationality,
        "consent in person",
    )
    .await?;
    let t = now();
    let consent = app
        .store()
        .add_consent(&NewConsent {
            holder: row.id.clone(),
            scope: req.scope.into(),
            granted_to: Some(me.id),
            given: ConsentGiven::InPerson,
            obtained_by: Some(me.id),
            created_at: t,
            expires_at: t + days,
        })
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        CONSENT_RECORD,
        Some(row.id.clone()),
        format!(
            "consent {} ({}) given in person, document seen, attested by staff:{}, for {} days",
            consent.id,
            consent.consent.scope.as_str(),
            me.id.0,
            req.days
        ),
    )
    .await?;
    let text = format!(
        "Health code: officer staff:{} recorded that you consented in person to {} for {} days. If you did not, revoke it on your page (Consents) and tell the health authority.",
        me.id.0,
        scope_words(req.scope),
        req.days
    );
    told::text_holder_later(
        app.clone(),
        row,
        "texting the holder a consent given in person",
        text,
    );
    Ok((StatusCode::CREATED, Json(ConsentView::of(&consent, t))))
}
