//! The holder's pages, mobile first: the start page, registration (resident or visitor) and
//! sign-in with a one-time code, my code, declarations and the daily report, my access log,
//! what happened (colour changes, reads, consent uses), my consents, appeals and export. Every page reads through the holder API's own handlers.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use healthcode_store::Store;

use super::{Ctx, NextQuery, end_session, next_path, page_error, render};
use crate::App;
use crate::auth::{HOLDER_COOKIE, HolderAuth};
use crate::consent::{ConsentView, Notification};
use crate::holders::{self, AccessEntry, AppealView, CodeResponse};
use crate::problem::ApiError;

pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/", get(index))
        .route("/register", get(register::<S>))
        .route("/signin", get(signin))
        .route("/signout", post(signout::<S>))
        .route("/policy", get(policy::<S>))
        .route("/me", get(code::<S>))
        .route("/me/reports", get(reports))
        .route("/me/access-log", get(access_log::<S>))
        .route("/me/appeals", get(appeals::<S>))
        .route("/me/consents", get(consents::<S>))
        .route("/me/notifications", get(notifications::<S>))
        .route("/me/export", get(export))
}

const SIGNIN: &str = "/signin";

#[derive(Template)]
#[template(path = "index.html")]
struct Index {
    ctx: Ctx,
}

/// The start page; a signed-in holder goes straight to the code.
async fn index(ctx: Ctx, me: Result<HolderAuth, ApiError>) -> Response {
    if me.is_ok() {
        return Redirect::to("/me").into_response();
    }
    render(&Index { ctx })
}

#[derive(Template)]
#[template(path = "register.html")]
struct Register {
    ctx: Ctx,
    next: String,
    /// Whether a real-name registry is connected; without one, the page sends people to a
    /// service counter.
    open: bool,
}

async fn register<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = next_path(q.next.as_deref(), "/me");
    let open = app.identity.configured();
    render(&Register { ctx, next, open })
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    ctx: Ctx,
    next: String,
}

async fn signin(ctx: Ctx, Query(q): Query<NextQuery>) -> Response {
    let next = next_path(q.next.as_deref(), "/me");
    render(&SignIn { ctx, next })
}

/// Ends the browser's holder session (the page's script posts here with the web header).
async fn signout<S: Store>(State(app): State<Arc<App<S>>>, headers: axum::http::HeaderMap) -> Response {
    end_session(&app, &headers, HOLDER_COOKIE).await
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    ctx: Ctx,
    shown: crate::policies::PublishedPolicyText,
    versions: Vec<crate::policies::PublishedVersion>,
}

/// Which published version to show.
#[derive(Debug, serde::Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

/// The colour rules: the version in force (or the one asked for, e.g. the version that decided
/// a holder's colour), and every published version with its SHA-256 and the two officers who
/// published it.
async fn policy<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    Query(q): Query<VersionQuery>,
) -> Response {
    let version = q.version.unwrap_or_else(|| app.policy().version().to_owned());
    let shown = match crate::policies::published(&app, &version).await {
        Ok(p) => p,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let versions = match crate::policies::versions(&app).await {
        Ok(v) => v,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    render(&PolicyPage { ctx, shown, versions })
}

#[derive(Template)]
#[template(path = "me.html")]
struct CodePage {
    ctx: Ctx,
    section: &'static str,
    code: CodeResponse,
    expires_unix: i64,
}

/// My code: the colour as colour, text and shape, the reasons, and a freshly signed code that
/// the page draws as a QR and renews before it expires.
async fn code<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<HolderAuth, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    match holders::my_code(State(app), me).await {
        Ok(crate::problem::Json(code)) => render(&CodePage {
            expires_unix: code.expires_at.unix_timestamp(),
            ctx,
            section: "code",
            code,
        }),
        Err(e) => page_error(ctx, SIGNIN, e),
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct Reports {
    ctx: Ctx,
    section: &'static str,
    symptoms: &'static [&'static str],
}

async fn reports(ctx: Ctx, me: Result<HolderAuth, ApiError>) -> Response {
    if let Err(e) = me {
        return page_error(ctx, SIGNIN, e);
    }
    render(&Reports {
        ctx,
        section: "reports",
        symptoms: &[
            "fever",
            "cough",
            "sore-throat",
            "loss-of-smell",
            "shortness-of-breath",
            "fatigue",
        ],
    })
}

#[derive(Template)]
#[template(path = "access.html")]
struct Access {
    ctx: Ctx,
    section: &'static str,
    entries: Vec<AccessEntry>,
    /// The trust list's root key, which the page checks the audit-log key with.
    root_key: String,
}

/// Who read my data, when and why.
async fn access_log<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<HolderAuth, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let root_key = app.keystore.root_public().to_owned();
    match holders::access_log(State(app), me).await {
        Ok(crate::problem::Json(entries)) => render(&Access {
            ctx,
            section: "access",
            entries,
            root_key,
        }),
        Err(e) => page_error(ctx, SIGNIN, e),
    }
}

#[derive(Template)]
#[template(path = "appeals.html")]
struct Appeals {
    ctx: Ctx,
    section: &'static str,
    appeals: Vec<AppealView>,
}

async fn appeals<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<HolderAuth, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    match holders::my_appeals(State(app), me).await {
        Ok(crate::problem::Json(appeals)) => render(&Appeals {
            ctx,
            section: "appeals",
            appeals,
        }),
        Err(e) => page_error(ctx, SIGNIN, e),
    }
}

#[derive(Template)]
#[template(path = "export.html")]
struct Export {
    ctx: Ctx,
    section: &'static str,
}

async fn export(ctx: Ctx, me: Result<HolderAuth, ApiError>) -> Response {
    if let Err(e) = me {
        return page_error(ctx, SIGNIN, e);
    }
    render(&Export {
        ctx,
        section: "export",
    })
}

#[derive(Template)]
#[template(path = "consents.html")]
struct Consents {
    ctx: Ctx,
    section: &'static str,
    consents: Vec<ConsentView>,
}

/// My consents: give one, see each, revoke one.
async fn consents<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<HolderAuth, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    match crate::consent::my_consents(State(app), me).await {
        Ok(crate::problem::Json(consents)) => render(&Consents {
            ctx,
            section: "consents",
            consents,
        }),
        Err(e) => page_error(ctx, SIGNIN, e),
    }
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct Notifications {
    ctx: Ctx,
    section: &'static str,
    items: Vec<Notification>,
}

/// What happened: colour changes, reads, consent uses.
async fn notifications<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<HolderAuth, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    match crate::consent::my_notifications(State(app), me).await {
        Ok(crate::problem::Json(items)) => render(&Notifications {
            ctx,
            section: "told",
            items,
        }),
        Err(e) => page_error(ctx, SIGNIN, e),
    }
}
