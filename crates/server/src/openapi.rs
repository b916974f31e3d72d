//! The answers every operation of a kind can give, added to the OpenAPI document in one place so
//! that no handler's annotation can forget one: the extractors, the body limit, the time-out and
//! load shedding answer them before or around any handler.
//!
//! - every operation: 500 (a fault, logged with its cause) and 503 (shed, timed out, or the store
//!   unavailable; with Retry-After);
//! - with a security requirement: 401 (no or unknown credential);
//! - for staff (`officer` security, the admin API): 403 (the role does not allow it); for devices:
//!   403 (another venue's device);
//! - with a request body: 400 (malformed body), 413 (too large), 415 (not JSON), 422 (a field
//!   refused, NUL in text included);
//! - with path or query parameters: 400 (a parameter that does not parse); with path
//!   parameters: 404 (nothing there).
//!
//! A status an operation documents itself keeps its own description.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds the shared statuses to every operation.
#[derive(Debug)]
pub(crate) struct SharedStatuses;

impl utoipa::Modify for SharedStatuses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let staff = path.starts_with("/api/v1/admin/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_shared(op, staff);
            }
        }
    }
}

fn add_shared(op: &mut Operation, staff_path: bool) {
    let schemes = security_schemes(op);
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    add(
        "500",
        "a fault on the server (logged with its cause; nothing is changed)",
    );
    add(
        "503",
        "overloaded, timed out, or the store unavailable for now; see Retry-After",
    );
    if !schemes.is_empty() {
        add("401", "no credential, or one that is unknown, expired or revoked");
    }
    if staff_path && schemes.iter().any(|s| s == "officer") {
        add("403", "the account's roles do not allow this");
    }
    if schemes.iter().any(|s| s == "device") {
        add("403", "the device belongs to another venue");
    }
    if op.request_body.is_some() {
        add("400", "the body is not well-formed JSON of the expected shape");
        add("413", "the body is larger than the server accepts");
        add("415", "the body is not application/json");
        add("422", "a field is refused (the detail names it)");
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    if !params.is_empty() {
        add("400", "a parameter does not parse (the detail names it)");
    }
    if params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path)) {
        add("404", "nothing is at this path");
    }
}

/// The names of the security schemes an operation accepts.
fn security_schemes(op: &Operation) -> Vec<String> {
    op.security
        .iter()
        .flatten()
        .filter_map(|req| serde_json::to_value(req).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect()
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build(),
    )
}
