//! The venue scanner page: set up once with the device's key, then it verifies codes in the
//! browser against a cached, root-signed trust list (so it keeps working with the network down),
//! shows the colour full screen with the venue's admit or deny, and uploads its queue of scans in
//! order whenever the server answers.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use healthcode_store::Store;

use super::{Ctx, render};
use crate::App;

pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new().route("/scan", get(scan::<S>))
}

#[derive(Template)]
#[template(path = "scan.html")]
struct Scan {
    ctx: Ctx,
    root_key: String,
}

/// The scanner page, with the root public key the trust list must be signed by.
async fn scan<S: Store>(State(app): State<Arc<App<S>>>, ctx: Ctx) -> Response {
    render(&Scan {
        ctx,
        root_key: app.keystore.root_public().to_owned(),
    })
}
