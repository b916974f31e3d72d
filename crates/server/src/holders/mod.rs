//! The holder's side, one file an area: `otp` (one-time codes), `registration` (residents and
//! visitors, sign-in and sign-out), `proofing` (the registry's answers, alerts to a document's
//! holder, phone changes by the holder), `me` (the holder's own resources under `/api/v1/me`) and
//! `erasure` (the holder's request to erase their account and data). This file names the routes
//! and the OpenAPI part.

pub(crate) mod erasure;
mod me;
mod otp;
mod proofing;
mod registration;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use healthcode_domain::Phone;
use healthcode_store::Store;
use utoipa::OpenApi;

use crate::App;
use crate::problem::ApiError;

pub(crate) use erasure::{__path_erase_me, erase_me};
pub use erasure::{Erased, ErasureRequest};
pub use me::*;
pub use otp::*;
pub use proofing::*;
pub use registration::*;

/// The holder endpoints' part of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(
        send_otp,
        register,
        change_phone,
        sign_in,
        sign_out,
        my_code,
        my_code_svg,
        declare,
        report,
        access_log,
        export,
        appeal,
        my_appeals,
        erase_me
    ),
    components(schemas(
        OtpRequest,
        OtpSent,
        Registration,
        PhoneChange,
        PhoneChanged,
        SessionCreated,
        SignIn,
        CodeResponse,
        ReasonView,
        Declaration,
        ReportRequest,
        FactRecorded,
        AccessEntry,
        Export,
        AppealRequest,
        AppealView,
        ExportedCheckIn,
        ErasureRequest,
        Erased
    ))
)]
pub struct HolderApi;

/// The routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/v1/otp", post(send_otp::<S>))
        .route("/api/v1/holders", post(register::<S>))
        .route("/api/v1/phone-changes", post(change_phone::<S>))
        .route("/api/v1/sessions", post(sign_in::<S>))
        .route("/api/v1/sessions/current", delete(sign_out::<S>))
        .route("/api/v1/me/code", get(my_code::<S>))
        .route("/api/v1/me/code.svg", get(my_code_svg::<S>))
        .route("/api/v1/me/declarations", post(declare::<S>))
        .route("/api/v1/me/reports", post(report::<S>))
        .route("/api/v1/me/access-log", get(access_log::<S>))
        .route("/api/v1/me/export", get(export::<S>))
        .route("/api/v1/me/appeals", post(appeal::<S>).get(my_appeals::<S>))
        .route("/api/v1/me/erasure", post(erase_me::<S>))
}

time::serde::format_description!(pub(crate) iso_date, Date, "[year]-[month]-[day]");

pub(crate) fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidField(e.to_string())
}

pub(crate) fn parse_phone(s: &str) -> Result<Phone, ApiError> {
    Phone::parse(s).map_err(|e| ApiError::InvalidField(format!("phone: {e}")))
}
