//! Records of a holder: finding one by name and identity document, reading personal data with a purpose, printed codes, test results.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_domain::IdentityDocument;
use healthcode_domain::{HolderId, TestResult};
use healthcode_store::{Fact, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::access::{Purpose, Reader};
use crate::auth::{Officers, Staff};
use crate::holders::{ReasonView, reasons_view};
use crate::problem::{ApiError, Json, Path, Problem};

use super::holder_id;
use crate::{App, now};

/// Finds a holder by name and identity document together, for a stated purpose.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderSearch {
    /// Full name as on the document (or the lab's report): it must be the registered name, so a
    /// record made with someone's number under another name is not found.
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
    /// Why.
    pub purpose: Purpose,
}

/// The holder found: a pseudonymous id and the masked name.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderFound {
    /// Pseudonymous id (hex).
    pub holder: String,
    /// resident or visitor.
    pub kind: String,
    /// Masked name.
    pub name_hint: String,
}

/// Finds a holder by name and identity document together (officers): a record whose document
/// matches and whose name does not is not found. The purpose is checked before anyone is looked
/// up, as far as it can be without the holder. Every search is recorded in the audit log with its
/// purpose, found or not: a hit in the holder's access log, a miss without a subject (or, when the
/// document's holder has another name, in that holder's access log).
#[utoipa::path(post, path = "/holders/search", tag = "cases", security(("officer" = [])), request_body = HolderSearch, responses(
    (status = 200, description = "found", body = HolderFound),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the purpose's record does not bind the holder found (recorded)", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or the purpose names no record", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn find_holder<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<HolderSearch>,
) -> Result<Json<HolderFound>, ApiError> {
    let name = healthcode_domain::FullName::parse(&req.name)
        .map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
    let doc = parse_document(&req.resident_id, &req.passport, &req.nationality)?;
    req.purpose.check_before_lookup(app.store()).await?;
    let row = found_or_audited(
        &app,
        &me,
        named_holder(&app, &doc, &name).await?,
        &req.purpose.describe(),
        &doc,
    )
    .await?;
    purpose_holds(&app, &me, &req.purpose, &row, HOLDER_SEARCH).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        HOLDER_SEARCH,
        Some(row.id.clone()),
        req.purpose.describe(),
    )
    .await?;
    Ok(Json(HolderFound {
        holder: row.id.to_hex(),
        kind: row.kind.as_str().into(),
        name_hint: row.name_hint,
    }))
}

/// The audit log's action for a search by name and document, found or not (printed codes'
/// misses included).
pub const HOLDER_SEARCH: &str = "holder-search";

/// The audit log's action for a read or printed code refused because its purpose does not bind
/// the holder (the holder's access log shows it).
pub const READ_REFUSED: &str = "read-refused";
/// The audit log's action for a use of a holder's consent record.
pub const CONSENT_USE: &str = "consent-use";

/// Checks `purpose` against the records for `row` ([`Purpose::check`]). A refusal is recorded
/// as `refused_as` against the holder, with why; a consent record used is recorded as
/// [`CONSENT_USE`] against the holder, so that the holder sees each use.
pub(crate) async fn purpose_holds<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    purpose: &Purpose,
    row: &healthcode_store::SealedHolder,
    refused_as: &str,
) -> Result<(), ApiError> {
    match purpose.check(app.store(), row, me.id, now()).await {
        Err(e) => {
            if matches!(e, ApiError::Forbidden(_) | ApiError::InvalidField(_)) {
                app.audit(
                    me.actor(),
                    me.role.as_str(),
                    refused_as,
                    Some(row.id.clone()),
                    format!("{}: refused, {e}", purpose.describe()),
                )
                .await?;
            }
            Err(e)
        }
        Ok(Some(consent)) => {
            app.audit(
                me.actor(),
                me.role.as_str(),
                CONSENT_USE,
                Some(row.id.clone()),
                format!(
                    "consent {} ({}, given {}) used for {}",
                    consent.id,
                    consent.consent.scope.as_str(),
                    consent.consent.given.as_str(),
                    purpose.describe()
                ),
            )
            .await
        }
        Ok(None) => Ok(()),
    }
}

/// The holder a name and document found; a miss is audited (against the document's holder when
/// the name was another, without a subject when no one has the document) and answered with the
/// one 404. `why` is the purpose as the audit log states it.
pub(crate) async fn found_or_audited<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    named: Named,
    why: &str,
    doc: &IdentityDocument,
) -> Result<healthcode_store::SealedHolder, ApiError> {
    let (subject, what) = match named {
        Named::Found(row) => return Ok(row),
        Named::OtherName(row) => (
            Some(row.id),
            format!(
                "{why}: not found, this holder's {} was searched with another name",
                doc_word(doc)
            ),
        ),
        Named::Nobody => (
            None,
            format!("{why}: no holder with the name and {}", doc_word(doc)),
        ),
    };
    app.audit(me.actor(), me.role.as_str(), HOLDER_SEARCH, subject, what)
        .await?;
    Err(nobody())
}

/// The one answer to a name and document that find no one, whether no holder has the document
/// or its holder has another name.
fn nobody() -> ApiError {
    ApiError::NotFound("no holder is registered with this name and document".into())
}

fn doc_word(doc: &IdentityDocument) -> &'static str {
    match doc {
        IdentityDocument::ResidentId(_) => "resident ID number",
        IdentityDocument::Passport { .. } => "passport",
    }
}

/// A resident ID number, or a passport and its nationality, parsed by the domain's identity
/// types: a number typed in lower case or with spaces finds its holder, a mistyped one says why.
pub(crate) fn parse_document(
    resident_id: &Option<String>,
    passport: &Option<String>,
    nationality: &Option<String>,
) -> Result<IdentityDocument, ApiError> {
    IdentityDocument::parse(
        resident_id.as_deref(),
        passport.as_deref(),
        nationality.as_deref(),
        healthcode_domain::latest_date_anywhere(now()),
    )
    .map_err(|e| ApiError::InvalidField(e.to_string()))
}

/// What a name and a document find.
pub(crate) enum Named {
    /// The holder with the document, under that name.
    Found(healthcode_store::SealedHolder),
    /// The holder with the document has another name.
    OtherName(healthcode_store::SealedHolder),
    /// No holder has the document.
    Nobody,
}

/// The holder registered with `doc` (hashed by the one key registration uses), compared by name
/// as [`healthcode_domain::FullName::same_as`] does.
pub(crate) async fn named_holder<S: Store>(
    app: &App<S>,
    doc: &IdentityDocument,
    name: &healthcode_domain::FullName,
) -> Result<Named, ApiError> {
    let hash = app.vault.identity_hash(doc);
    Ok(match app.store.holder_by_identity(&hash).await? {
        None => Named::Nobody,
        Some(row) if app.vault.same_name(&row, name)? => Named::Found(row),
        Some(row) => Named::OtherName(row),
    })
}

/// How long a printed code is valid: a day, so that a colour that changes reaches paper by the
/// next issue (the format allows up to seven days).
pub const PRINTED_CODE_TTL: time::Duration = time::Duration::hours(24);

/// A printed code asked for: the holder's name and identity document and where the consent is
/// recorded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrintedCodeRequest {
    /// Full name as on the document: it must be the registered name, so a record made with
    /// someone's number under another name gets no code.
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
    /// The holder's consent record with the scope `printed-code` (its id).
    pub consent: i64,
}

/// A printed code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrintedCode {
    /// The signed code (`HC1:…`), to print as a QR code.
    pub token: String,
    /// green, yellow or red.
    pub colour: String,
    /// The masked name the code carries.
    pub name_hint: String,
    /// Issued at.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Valid until.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Issues a printed code, valid a day, for a holder without a smartphone (officers), found by
/// name and document together as the search finds them (a miss audited as the search's are).
/// The consent is checked and recorded in the audit log (and so in the holder's access log) before the code
/// is signed.
#[utoipa::path(post, path = "/printed-codes", tag = "cases", security(("officer" = [])), request_body = PrintedCodeRequest, responses(
    (status = 201, description = "the code", body = PrintedCode),
    (status = 404, description = "no holder with this name and document", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the consent record does not allow it (another holder's, another scope or staff account, expired, revoked)", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid, or no such consent record", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn printed_code<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<PrintedCodeRequest>,
) -> Result<(StatusCode, Json<PrintedCode>), ApiError> {
    let name = healthcode_domain::FullName::parse(&req.name)
        .map_err(|e| ApiError::InvalidField(format!("name: {e}")))?;
    let doc = parse_document(&req.resident_id, &req.passport, &req.nationality)?;
    let purpose = Purpose::PrintedCode { consent: req.consent };
    purpose.check_before_lookup(app.store()).await?;
    let row = found_or_audited(
        &app,
        &me,
        named_holder(&app, &doc, &name).await?,
        &purpose.describe(),
        &doc,
    )
    .await?;
    purpose_holds(&app, &me, &purpose, &row, READ_REFUSED).await?;
    let reader = Reader {
        actor: me.actor(),
        role: me.role.as_str().into(),
    };
    let t = now();
    app.vault
        .read(app.store(), &reader, &row, &purpose.describe(), t)
        .await?;
    let view = app.code_view(&row.id).await?;
    let (token, expires_at) = app.sign_code(&row.id, &view, PRINTED_CODE_TTL)?;
    Ok((
        StatusCode::CREATED,
        Json(PrintedCode {
            token: token.to_text(),
            colour: view.status.colour.as_str().into(),
            name_hint: view.name_hint.clone(),
            issued_at: t,
            expires_at,
        }),
    ))
}

/// Why the holder's personal data is read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderRead {
    /// The purpose.
    pub purpose: Purpose,
}

/// A holder's record as an officer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderRecord {
    /// Pseudonymous id.
    pub holder: String,
    /// resident or visitor.
    pub kind: String,
    /// Personal data.
    #[schema(value_type = Object)]
    pub personal_data: serde_json::Value,
    /// Colour now.
    pub colour: String,
    /// Reasons.
    pub reasons: Vec<ReasonView>,
}

/// Reads a holder's personal data for a stated, checked purpose (officers); recorded in the
/// audit log and shown in the holder's access log.
#[utoipa::path(post, path = "/holders/{id}/read", tag = "cases", security(("officer" = [])), request_body = HolderRead,
    params(("id" = String, Path, description = "holder id (hex)")), responses(
    (status = 200, description = "the record", body = HolderRecord),
    (status = 403, description = "the purpose's record does not bind this holder (a case that does not reach them, another holder's or an expired or revoked consent, a lab report naming someone else); recorded as a refused read", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such holder", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the purpose names no record (no such case, consent or lab report; not the holder's appeal)", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn read_holder<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<String>,
    Json(req): Json<HolderRead>,
) -> Result<Json<HolderRecord>, ApiError> {
    let id = holder_id(&id)?;
    let row = app
        .store
        .holder(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such holder".into()))?;
    purpose_holds(&app, &me, &req.purpose, &row, READ_REFUSED).await?;
    let reader = Reader {
        actor: me.actor(),
        role: me.role.as_str().into(),
    };
    let data = app
        .vault
        .read(app.store(), &reader, &row, &req.purpose.describe(), now())
        .await?;
    let view = app.code_view(&id).await?;
    Ok(Json(HolderRecord {
        holder: id.to_hex(),
        kind: row.kind.as_str().into(),
        personal_data: serde_json::to_value(&data)
            .map_err(|e| ApiError::internal("cannot encode personal data", e))?,
        colour: view.status.colour.as_str().into(),
        reasons: reasons_view(&app, &view.status),
    }))
}

pub(crate) async fn require_holder<S: Store>(app: &App<S>, hex: &str) -> Result<HolderId, ApiError> {
    let id = holder_id(hex)?;
    if app.store.holder(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no holder {hex}")));
    }
    Ok(id)
}

/// A laboratory result.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Holder id (hex).
    pub holder: String,
    /// Positive?
    pub positive: bool,
    /// When the sample was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub sampled_at: OffsetDateTime,
    /// The laboratory.
    pub lab: String,
}

/// Records a test result (officers).
#[utoipa::path(post, path = "/tests", tag = "cases", security(("officer" = [])), request_body = TestRequest, responses(
    (status = 201, description = "recorded"),
    (status = 404, description = "no such holder", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn add_test<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<TestRequest>,
) -> Result<StatusCode, ApiError> {
    let id = require_holder(&app, &req.holder).await?;
    let lab = req.lab.trim();
    if lab.is_empty() || lab.chars().count() > 200 {
        return Err(ApiError::InvalidField("lab: 1 to 200 characters".into()));
    }
    app.plausible("sampled_at", req.sampled_at, now(), false)?;
    app.store
        .add_fact(
            &id,
            &Fact::Test(TestResult {
                positive: req.positive,
                sampled_at: req.sampled_at,
                lab: lab.into(),
            }),
        )
        .await?;
    app.statuses.invalidate(&id);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "test-record",
        Some(id),
        format!(
            "{} result from {lab}",
            if req.positive { "positive" } else { "negative" }
        ),
    )
    .await?;
    Ok(StatusCode::CREATED)
}
