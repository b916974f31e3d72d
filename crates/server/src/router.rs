//! The router: every route, the layers around them (body limit, problem+json for the framework's
//! own errors, time-out, metrics, load shedding), the small public endpoints (health, readiness,
//! trust list, policy, metrics) and the OpenAPI document that gathers each area's part.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use healthcode_store::Store;
use utoipa::OpenApi;

use crate::openapi::SharedStatuses;
use crate::problem::{ApiError, Problem};
use crate::{App, Config, admin, front, holders, metrics, problem, scans, transparency, web};

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "healthcode",
        description = "Signed three-colour health codes, verified offline. Holders sign in with a \
one-time code sent by SMS; venue devices with a device key; officers with a password. Every error \
is RFC 9457 problem+json with a stable `type`."
    ),
    paths(
        healthz,
        readyz,
        trust_list,
        crate::policies::policy,
        crate::policies::list,
        crate::policies::one,
        metrics_text
    ),
    nest(
        (path = "/api/v1", api = holders::HolderApi),
        (path = "/api/v1", api = scans::ScanApi),
        (path = "/api/v1", api = transparency::TransparencyApi),
        (path = "/api/v1/admin", api = admin::AdminApi),
        (path = "/api/v1", api = crate::consent::ConsentApi),
    ),
    components(schemas(
        Problem,
        crate::policies::PolicyDocument,
        crate::policies::PublishedVersion,
        crate::policies::PublishedPolicyText
    )),
    modifiers(&SecuritySchemes, &SharedStatuses),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("holder", "a holder's session token (hcs_…)"),
            ("officer", "an officer's session token (hcs_…)"),
            ("device", "a venue device's key (hcd_…)"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

/// The router, with limits, time-outs, load shedding and metrics.
pub fn router<S: Store>(app: Arc<App<S>>, config: &Config) -> Router {
    let metrics = app.metrics.clone();
    let shedder = front::Shedder::start(
        config.max_in_flight,
        StdDuration::from_millis(config.max_queue_ms),
        metrics.clone(),
    );
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics_text::<S>))
        .route("/api/v1/trust-list", get(trust_list::<S>))
        .route("/api/v1/policy", get(crate::policies::policy::<S>))
        .route("/api/v1/policies", get(crate::policies::list::<S>))
        .route("/api/v1/policies/{version}", get(crate::policies::one::<S>))
        .route("/api/v1/transparency/head", get(transparency::head::<S>))
        .route(
            "/api/v1/transparency/consistency",
            get(transparency::consistency::<S>),
        )
        .route(
            "/api/v1/transparency/inclusion",
            get(transparency::inclusion::<S>),
        )
        .route("/api/openapi.json", get(openapi))
        .merge(holders::routes())
        .merge(scans::routes())
        .merge(admin::routes())
        .merge(crate::consent::routes())
        .merge(web::routes())
        .fallback(not_found)
        .with_state(app)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            StdDuration::from_secs(config.request_timeout_seconds),
        ))
        // Outside the time-out, so that its bare 503 (a slow handler, or a body declared and
        // never sent) also becomes problem+json with Retry-After.
        .layer(axum::middleware::from_fn(problem::bare_errors_as_problems))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(shedder, front::shed))
}

/// Prometheus metrics. When `HEALTHCODE_METRICS_TOKEN` is set, only with that bearer token.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "OpenMetrics text format", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    (status = 401, description = "a metrics token is configured and was not sent", body = Problem, content_type = "application/problem+json"),
))]
async fn metrics_text<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(want) = &app.settings.metrics_token {
        let given = crate::auth::bearer_in(&headers).map(crate::auth::secret_hash);
        if given.as_ref() != Some(want) {
            return Err(ApiError::Unauthorized(
                "the metrics need the configured token: send Authorization: Bearer <token>".into(),
            ));
        }
    }
    app.metrics.queue_depth.set(app.committer.depth());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers and takes writes (a small write each time: not while the
/// database is unreachable or full, SQLite's free space is below its floor, or its check-in merger
/// cannot write).
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = String),
    (status = 500, description = "the store failed", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "the database is unavailable for now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Result<&'static str, ApiError> {
    app.store.risk_areas().await?;
    app.store.check_writable().await?;
    Ok("ready")
}

/// The signed trust list (`HCTL1:…`, docs/token-format.md §5) that offline verifiers cache.
#[utoipa::path(get, path = "/api/v1/trust-list", responses(
    (status = 200, description = "the trust list, signed by the root key", body = String, content_type = "text/plain"),
))]
async fn trust_list<S: Store>(State(app): State<Arc<App<S>>>) -> Result<impl IntoResponse, ApiError> {
    let list = app.current_trust_list()?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        list,
    ))
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no resource at {}", uri.path()))
}
