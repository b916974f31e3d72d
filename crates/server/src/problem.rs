//! Errors as RFC 9457 problem details (`application/problem+json`), each kind with a stable `type`
//! (`urn:healthcode:problem:<kind>`). The client gets a safe message; the log gets the cause.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use healthcode_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:healthcode:problem:<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed: not JSON, or not the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// A field has a value the domain refuses (an ID number with a wrong check digit…).
    #[error("{0}")]
    InvalidField(String),
    /// A presented code failed verification.
    #[error("{0}")]
    InvalidToken(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the right.
    #[error("{0}")]
    Forbidden(String),
    /// The one-time code is wrong, expired or used up.
    #[error("{0}")]
    OneTimeCode(String),
    /// The thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// A rule refused the change (e.g. approving one's own proposal).
    #[error("{0}")]
    Refused(String),
    /// Too many requests; retry after this many seconds.
    #[error("{0}")]
    RateLimited(String, u64),
    /// Body too large.
    #[error("{0}")]
    TooLarge(String),
    /// Body not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A server fault: what failed, and the error that made it fail. Both are logged, with the
    /// cause's whole chain; the client is told neither.
    #[error("{0}")]
    Internal(String, #[source] Option<BoxError>),
    /// The server cannot take the request now; retry after this many seconds.
    #[error("{0}")]
    Unavailable(String, u64),
}

/// Any error, boxed, with its chain of sources.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl ApiError {
    /// A server fault caused by `cause`: `what` says what was being done.
    pub fn internal(what: impl Into<String>, cause: impl Into<BoxError>) -> ApiError {
        ApiError::Internal(what.into(), Some(cause.into()))
    }

    /// For a store that cannot be used for now: the 503 with Retry-After every caller answers
    /// (logged, at most every ten seconds); `None` for any other store error.
    pub fn unavailable_store(e: &StoreError) -> Option<ApiError> {
        matches!(e, StoreError::Unavailable(_)).then(|| {
            log_unavailable(e);
            ApiError::Unavailable("the database is unavailable; retry shortly".into(), 5)
        })
    }

    /// A server fault with no underlying error (a broken invariant).
    pub fn fault(what: impl Into<String>) -> ApiError {
        ApiError::Internal(what.into(), None)
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
            InvalidToken(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-token", "Invalid code"),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Not signed in"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            OneTimeCode(_) => (StatusCode::UNAUTHORIZED, "one-time-code", "One-time code refused"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Already exists"),
            Refused(_) => (StatusCode::CONFLICT, "refused", "Refused by a rule"),
            RateLimited(..) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request too large"),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Internal(..) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            Unavailable(..) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

/// Says that the database is unavailable at most once every ten seconds, with how many more
/// requests met it meanwhile: an outage under load is thousands of failing calls a second.
fn log_unavailable(e: &StoreError) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let last = LAST.load(Ordering::Relaxed);
    if now - last >= 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let more = SINCE.swap(0, Ordering::Relaxed);
        tracing::warn!(error = %ErrorChain(e), also_failed = more, "the database is unavailable");
    } else {
        SINCE.fetch_add(1, Ordering::Relaxed);
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if let Some(unavailable) = ApiError::unavailable_store(&e) {
            return unavailable;
        }
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Refused(m) => ApiError::Refused(m),
            // A database failure is a 500, never a 400 or a 404.
            other => ApiError::internal("the store failed", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            ApiError::Internal(..) => {
                tracing::error!(error = %ErrorChain(&self), "request failed");
                "the server failed to handle the request; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::RateLimited(_, s) | ApiError::Unavailable(_, s) => Some(*s),
            _ => None,
        };
        let mut resp = problem_response(status, kind, title, detail);
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A problem response of any status.
pub fn problem_response(status: StatusCode, kind: &str, title: &'static str, detail: String) -> Response {
    let body = Problem {
        kind: format!("urn:healthcode:problem:{kind}"),
        title,
        status: status.as_u16(),
        detail,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// A JSON body whose rejections are problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON, sent as Content-Type: application/json".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::TooLarge("the body is larger than the server accepts".into())
                }
                _ => ApiError::BadRequest(e.body_text()),
            })?;
        refuse_nul(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A body that may be left out: none (or only whitespace) is `T::default()`; anything else is
/// read as [`Json`] reads it (JSON content type, no NUL, the same refusals).
pub(crate) fn json_or_default<T: DeserializeOwned + Default>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !json_content_type(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON, sent as Content-Type: application/json".into(),
        ));
    }
    refuse_nul(body)?;
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(v)| v)
        .map_err(json_rejection)
}

/// Whether the request says its body is JSON (`application/json` or `application/…+json`).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Refuses text with a NUL character (`\u0000`) before anything reads it, naming the field:
/// PostgreSQL cannot keep it (the request used to fail there with a 500) and SQLite would, so the
/// two stores would disagree. Only a body that holds the escape at all is parsed twice.
fn refuse_nul(body: &[u8]) -> Result<(), ApiError> {
    let has_escape = body
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !has_escape {
        return Ok(());
    }
    // A body the generic parse refuses (a number out of range, say) is refused outright when it
    // holds the escape: nothing here can show it is clean.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(ApiError::InvalidField(
            "body: holds a NUL character (\\u0000), which cannot be stored, or is not JSON".into(),
        ));
    };
    match nul_path(&value, String::new()) {
        Some(path) => Err(ApiError::InvalidField(format!(
            "{path}: contains a NUL character (\\u0000), which cannot be stored"
        ))),
        None => Ok(()),
    }
}

/// Where in `v` a string (or an object's key) holds a NUL character, as `field`, `list[2]` or
/// `outer.inner`.
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    let name = |at: &str| {
        if at.is_empty() {
            "body".to_owned()
        } else {
            at.to_owned()
        }
    };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(name(&at)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{}[{i}]", name(&at)))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, item)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                return Some(name(&at));
            }
            nul_path(item, here)
        }),
        _ => None,
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON, sent as Content-Type: application/json".into(),
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::BadRequest(format!("unexpected JSON: {}", source_text(&e)))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge("the body is larger than the server accepts".into())
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Shows an error with every source after it, `outer: inner: innermost`, for the log (the
/// causes are what an operator needs: PostgreSQL's own message is a source, not the top error).
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first line of each: PostgreSQL puts DETAIL and HINT on lines after its message,
        // and DETAIL quotes the row's values, personal data among them.
        let first = |e: &dyn std::error::Error| e.to_string().lines().next().unwrap_or_default().to_owned();
        let mut last = first(self.0);
        f.write_str(&last)?;
        let mut cur = self.0.source();
        while let Some(s) = cur {
            let text = first(s);
            // Some errors repeat their source's text in their own; say each thing once.
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cur = s.source();
        }
        Ok(())
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

/// A query string whose rejections are problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts
            .uri
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("%00"))
        {
            return Err(ApiError::InvalidField(
                "the query contains a NUL character (%00), which cannot be stored".into(),
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// A path parameter whose rejections are problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Path(q.0))
            .map_err(|e: PathRejection| ApiError::NotFound(e.body_text()))
    }
}

/// Turns the framework's own bare error responses (405, 413 from a declared length, a time-out's
/// 503…) into problems, so that every error a client sees has the same shape.
pub async fn bare_errors_as_problems(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let (kind, title, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "Method not allowed",
            "this resource does not take that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too-large",
            "Request too large",
            "the body is larger than the server accepts",
        ),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => (
            "unavailable",
            "Service unavailable",
            "the request took too long; retry later",
        ),
        _ => ("http", "HTTP error", "the request could not be handled"),
    };
    let retry = resp.headers().get(header::RETRY_AFTER).cloned();
    let mut out = problem_response(status, kind, title, detail.to_owned());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        out.headers_mut().insert(
            header::RETRY_AFTER,
            retry.unwrap_or(HeaderValue::from_static("1")),
        );
    }
    out
}
