//! The console's account pages: enrolling the second factor (after the first sign-in), one's
//! own account (sessions, password, second factor), and for admins every staff account with
//! its lifecycle (create, role, disable, unlock, resets, sessions). Each page reads through the
//! API's handlers, with the role the API needs.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use healthcode_store::{Role, Store};

use super::console::{Who, who};
use super::{Ctx, NextQuery, next_path, page_error, render};
use crate::App;
use crate::admin::{self, MeView, SessionView, StaffView};
use crate::auth::{Admins, AnyStaff, Enrolling, Staff};
use crate::problem::{ApiError, Path};

const SIGNIN: &str = "/console/signin";

pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/console/enrol", get(enrol))
        .route("/console/account", get(account::<S>))
        .route("/console/accounts", get(accounts::<S>))
}

#[derive(Template)]
#[template(path = "console/enrol.html")]
struct Enrol {
    ctx: Ctx,
    next: String,
}

/// Enrolling the second factor: for a signed-in account, before anything else.
async fn enrol(ctx: Ctx, me: Result<Staff<Enrolling>, ApiError>, Query(q): Query<NextQuery>) -> Response {
    if let Err(e) = me {
        return page_error(ctx, SIGNIN, e);
    }
    let next = next_path(q.next.as_deref(), "/console");
    render(&Enrol { ctx, next })
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct Account {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    me: MeView,
    sessions: Vec<SessionView>,
}

/// One's own account: the second factor, the sessions (each can be ended), a password change.
async fn account<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<AnyStaff>, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let who = who(&me);
    let sessions = match admin::my_sessions(State(app.clone()), me.duplicate()).await {
        Ok(crate::problem::Json(s)) => s,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let view = match app.store().officer(me.id).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            return page_error(
                ctx,
                SIGNIN,
                ApiError::Unauthorized("the account no longer exists".into()),
            );
        }
        Err(e) => return page_error(ctx, SIGNIN, e.into()),
    };
    let sf = match app.store().second_factor(me.id).await {
        Ok(sf) => sf,
        Err(e) => return page_error(ctx, SIGNIN, e.into()),
    };
    render(&Account {
        ctx,
        section: "account",
        who,
        me: MeView {
            account: StaffView::of(&view, false),
            must_enrol: false,
            recovery_codes_left: sf.as_ref().map_or(0, |f| f.recovery_left),
            recovery_code_last_used_at: sf.and_then(|f| f.recovery_last_used),
        },
        sessions,
    })
}

/// An account and its live sessions, as the admins' page lists it.
struct AccountRow {
    account: StaffView,
    sessions: Vec<SessionView>,
}

/// A proposed account awaiting a second admin.
struct ProposedAccount {
    id: i64,
    username: String,
    role: String,
    /// Where its password goes, masked.
    phone: String,
    proposed_by: i64,
    /// Proposed by the signed-in admin (who may withdraw it, not approve it).
    mine: bool,
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct Accounts {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    roles: Vec<&'static str>,
    accounts: Vec<AccountRow>,
    proposed: Vec<ProposedAccount>,
}

/// Every staff account with its state and sessions, and what admins do with them.
async fn accounts<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Admins>, ApiError>,
) -> Response {
    let me = match me {
        Ok(m) => m,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let who = who(&me);
    let list = match admin::list_officers(State(app.clone()), me.duplicate()).await {
        Ok(crate::problem::Json(l)) => l,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let mut accounts = Vec::with_capacity(list.len());
    for account in list {
        let sessions =
            match admin::account_sessions(State(app.clone()), me.duplicate(), Path(account.id)).await {
                Ok(crate::problem::Json(s)) => s,
                Err(e) => return page_error(ctx, SIGNIN, e),
            };
        accounts.push(AccountRow { account, sessions });
    }
    // Proposed accounts, approved here by a second admin; approval texts the password to the owner.
    let mut proposed = Vec::new();
    if let Some(officer) = me.narrowed::<crate::auth::Officers>() {
        let pending = match admin::pending(&app, &officer, 200).await {
            Ok(p) => p,
            Err(e) => return page_error(ctx, SIGNIN, e),
        };
        for p in pending.into_iter().filter(|p| p.kind == "account-create") {
            let field = |k: &str| {
                p.act
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            proposed.push(ProposedAccount {
                id: p.id,
                username: field("username"),
                role: field("role"),
                phone: field("phone"),
                proposed_by: p.proposed_by,
                mine: p.proposed_by == me.id.0,
            });
        }
    }
    render(&Accounts {
        ctx,
        section: "accounts",
        who,
        roles: [Role::Officer, Role::Admin, Role::Auditor]
            .iter()
            .map(|r| r.as_str())
            .collect(),
        accounts,
        proposed,
    })
}
