//! The officers' side under `/api/v1/admin`, one file an area: `accounts` (sign-in, staff
//! accounts), `second_factor` (TOTP enrolment and its check at sign-in), `phones` (where staff passwords are
//! sent), `lifecycle` (disable,
//! roles, resets, unlock, sessions, device key rotation), `counter` (registration and phone
//! changes at a service counter, the document seen), `venues` (venues, devices, risk areas),
//! `records` (finding a holder, personal data with a purpose, printed codes, test results),
//! `cases` (cases, tracing, exposure review),
//! `overrides` (two-officer changes, appeals), `policies` (proposing a colour policy version),
//! `proposals` (two people for risk areas, accounts and roles, bulk exposure decisions, policy
//! versions: listing, approval, withdrawal), `audit` (the log, its verification, purge). This
//! file names the routes and the OpenAPI part. Every change and every read of personal data is
//! audited.

mod accounts;
mod audit;
mod cases;
mod counter;
mod lifecycle;
mod overrides;
mod phones;
mod policies;
mod proposals;
mod records;
mod second_factor;
mod venues;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use healthcode_domain::HolderId;
use healthcode_store::Store;
use time::OffsetDateTime;
use utoipa::OpenApi;

use crate::App;
use crate::access::Purpose;
use crate::problem::ApiError;

pub use accounts::*;
pub use audit::*;
pub use cases::*;
pub use counter::*;
pub use lifecycle::*;
pub use overrides::*;
pub use phones::{PhoneChange, PhoneRecorded};
pub use policies::*;
pub use proposals::*;
pub use records::*;
pub use second_factor::*;
pub use venues::*;

/// The officer endpoints' part of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(
        sign_in,
        whoami,
        change_password,
        phones::set_my_phone,
        create_officer,
        list_officers,
        begin_enrolment,
        confirm_enrolment,
        disable_account,
        enable_account,
        change_role,
        reset_password,
        reset_second_factor,
        unlock_account,
        my_sessions,
        end_my_session,
        account_sessions,
        end_account_session,
        end_account_sessions,
        rotate_device_key,
        create_venue,
        list_venues,
        create_device,
        list_devices,
        revoke_device,
        add_risk_area,
        change_risk_level,
        end_risk_area,
        list_risk_areas,
        propose_policy,
        list_proposals,
        approve_proposal,
        withdraw_proposal,
        counter_register,
        counter_change_phone,
        find_holder,
        read_holder,
        printed_code,
        add_test,
        add_case,
        list_cases,
        trace_case,
        case_exposures,
        pending_exposures,
        decide_exposure,
        decide_case_exposures,
        propose_override,
        list_overrides,
        approve_override,
        list_appeals,
        decide_appeal,
        audit_log,
        audit_verify,
        audit_alerts,
        purge
    ),
    components(schemas(
        StaffSignIn,
        StaffSession,
        StaffView,
        PasswordChange,
        PhoneChange,
        PhoneRecorded,
        NewOfficer,
        AccountProposed,
        MeView,
        Enrolment,
        EnrolmentCode,
        RecoveryCodes,
        RoleChange,
        PasswordReset,
        SessionView,
        SessionsEnded,
        VenueRequest,
        VenueView,
        DeviceRequest,
        DeviceCreated,
        DeviceView,
        RiskAreaRequest,
        RiskAreaView,
        RiskLevelChange,
        PolicyProposal,
        ProposalView,
        ProposalPage,
        Approved,
        ApprovalRequest,
        BulkExposureDecision,
        BulkExposureOutcome,
        CounterPerson,
        DocumentCheck,
        CounterRegistration,
        CounterRegistered,
        CounterPhoneChange,
        CounterPhoneChanged,
        HolderSearch,
        HolderRead,
        HolderFound,
        HolderRecord,
        PrintedCodeRequest,
        PrintedCode,
        TestRequest,
        CaseRequest,
        CaseView,
        OverrideRequest,
        OverrideView,
        Decision,
        AuditView,
        ChainReport,
        AlertsReport,
        crate::alerts::Alert,
        crate::alerts::AlertKind,
        PurgeView,
        Purpose,
        TraceView,
        ExposureView,
        ExposureDecision
    ))
)]
pub struct AdminApi;

/// The routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/v1/admin/sessions", post(sign_in::<S>))
        .route("/api/v1/admin/me", get(whoami::<S>))
        .route("/api/v1/admin/me/password", post(change_password::<S>))
        .route("/api/v1/admin/me/phone", put(phones::set_my_phone::<S>))
        .route("/api/v1/admin/me/second-factor", post(begin_enrolment::<S>))
        .route(
            "/api/v1/admin/me/second-factor/confirm",
            post(confirm_enrolment::<S>),
        )
        .route("/api/v1/admin/me/sessions", get(my_sessions::<S>))
        .route("/api/v1/admin/me/sessions/{session}", delete(end_my_session::<S>))
        .route("/api/v1/admin/officers/{id}/disable", post(disable_account::<S>))
        .route("/api/v1/admin/officers/{id}/enable", post(enable_account::<S>))
        .route("/api/v1/admin/officers/{id}/role", put(change_role::<S>))
        .route(
            "/api/v1/admin/officers/{id}/password-reset",
            post(reset_password::<S>),
        )
        .route(
            "/api/v1/admin/officers/{id}/second-factor",
            delete(reset_second_factor::<S>),
        )
        .route("/api/v1/admin/officers/{id}/unlock", post(unlock_account::<S>))
        .route(
            "/api/v1/admin/officers/{id}/sessions",
            get(account_sessions::<S>).delete(end_account_sessions::<S>),
        )
        .route(
            "/api/v1/admin/officers/{id}/sessions/{session}",
            delete(end_account_session::<S>),
        )
        .route(
            "/api/v1/admin/venues/{id}/devices/{device}/key",
            post(rotate_device_key::<S>),
        )
        .route(
            "/api/v1/admin/officers",
            post(create_officer::<S>).get(list_officers::<S>),
        )
        .route(
            "/api/v1/admin/venues",
            post(create_venue::<S>).get(list_venues::<S>),
        )
        .route(
            "/api/v1/admin/venues/{id}/devices",
            post(create_device::<S>).get(list_devices::<S>),
        )
        .route(
            "/api/v1/admin/venues/{id}/devices/{device}",
            axum::routing::delete(revoke_device::<S>),
        )
        .route(
            "/api/v1/admin/risk-areas",
            post(add_risk_area::<S>).get(list_risk_areas::<S>),
        )
        .route(
            "/api/v1/admin/risk-areas/{id}/level",
            post(change_risk_level::<S>),
        )
        .route("/api/v1/admin/risk-areas/{id}/end", post(end_risk_area::<S>))
        .route("/api/v1/admin/policies", post(propose_policy::<S>))
        .route("/api/v1/admin/proposals", get(list_proposals::<S>))
        .route(
            "/api/v1/admin/proposals/{id}/approve",
            post(approve_proposal::<S>),
        )
        .route(
            "/api/v1/admin/proposals/{id}/withdraw",
            post(withdraw_proposal::<S>),
        )
        .route("/api/v1/admin/counter/holders", post(counter_register::<S>))
        .route(
            "/api/v1/admin/counter/phone-changes",
            post(counter_change_phone::<S>),
        )
        .route("/api/v1/admin/holders/search", post(find_holder::<S>))
        .route("/api/v1/admin/holders/{id}/read", post(read_holder::<S>))
        .route("/api/v1/admin/printed-codes", post(printed_code::<S>))
        .route("/api/v1/admin/tests", post(add_test::<S>))
        .route("/api/v1/admin/cases", post(add_case::<S>).get(list_cases::<S>))
        .route("/api/v1/admin/cases/{id}/trace", post(trace_case::<S>))
        .route("/api/v1/admin/cases/{id}/exposures", get(case_exposures::<S>))
        .route(
            "/api/v1/admin/cases/{id}/exposures/decision",
            post(decide_case_exposures::<S>),
        )
        .route("/api/v1/admin/exposures/pending", get(pending_exposures::<S>))
        .route("/api/v1/admin/exposures/decision", post(decide_exposure::<S>))
        .route(
            "/api/v1/admin/overrides",
            post(propose_override::<S>).get(list_overrides::<S>),
        )
        .route(
            "/api/v1/admin/overrides/{id}/approve",
            post(approve_override::<S>),
        )
        .route("/api/v1/admin/appeals", get(list_appeals::<S>))
        .route("/api/v1/admin/appeals/{id}/decision", post(decide_appeal::<S>))
        .route("/api/v1/admin/audit", get(audit_log::<S>))
        .route("/api/v1/admin/audit/verify", get(audit_verify::<S>))
        .route("/api/v1/admin/audit/alerts", get(audit_alerts::<S>))
        .route("/api/v1/admin/purge", post(purge::<S>))
}

pub(crate) fn holder_id(hex: &str) -> Result<HolderId, ApiError> {
    HolderId::from_hex(hex)
        .map_err(|_| ApiError::InvalidField("holder: not a holder id (16-32 hex digits)".into()))
}

pub(crate) fn rfc(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
