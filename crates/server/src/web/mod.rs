//! The web interface: pages rendered on the server from askama templates (which escape every
//! value unless told otherwise), and small JavaScript modules under `/static`. The front-end
//! libraries (QR drawing and decoding, CBOR, charts) are vendored under `static/vendor` and
//! compiled into the binary, so the server alone serves everything.
//!
//! Pages read through the same handlers as the JSON API, with the same authorization types, so a
//! page can show nothing the API would refuse; actions are taken by the pages' scripts through
//! the JSON API, with the browser's session cookie and the [`WEB_HEADER`](crate::auth::WEB_HEADER).
//!
//! Areas: [`holder`] (register, sign in, my code, declarations, access log, export, appeals),
//! [`scanner`] (a venue's door), [`console`] (officers, admins, auditors; printed codes and
//! posters).

mod accounts;
mod console;
mod holder;
pub mod i18n;
mod scanner;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use healthcode_store::Store;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::App;
use crate::problem::ApiError;
pub use i18n::Lang;

/// The files under `static/`, compiled in.
#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// The routes of every page and asset.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/static/{*path}", get(asset))
        .route("/sw.js", get(service_worker))
        .route("/lang", get(switch_language))
        .merge(holder::routes())
        .merge(scanner::routes())
        .merge(console::routes())
        .merge(accounts::routes())
}

/// What every page knows of its request: the language and where it is.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The page's language.
    pub lang: Lang,
    /// The zone of the policy's days, in which times are shown.
    pub offset: time::UtcOffset,
    /// The path and query, for the language switch to return to.
    pub here: String,
}

impl<S: Store> FromRequestParts<Arc<App<S>>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, Self::Rejection> {
        let chosen = crate::auth::cookie(parts, LANG_COOKIE).and_then(Lang::parse);
        let lang = chosen.unwrap_or_else(|| {
            Lang::from_accept_language(
                parts
                    .headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        });
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        Ok(Ctx {
            lang,
            offset: app.policy().utc_offset(),
            here,
        })
    }
}

impl Ctx {
    /// The string `key` in the page's language (English when it has none).
    pub fn t(&self, key: &str) -> &'static str {
        i18n::text(self.lang, key)
    }

    /// The string `prefix.value` (a category, state or grade named by data).
    pub fn tk(&self, prefix: &str, value: &str) -> &'static str {
        i18n::text(self.lang, &format!("{prefix}.{value}"))
    }

    /// A rule's text in the page's language: the translation made for this policy version and
    /// rule, else the policy's own text.
    pub fn rule_text<'a>(&self, version: &str, rule: &str, own: &'a str) -> &'a str {
        i18n::translation(self.lang, &format!("rule.{version}.{rule}")).unwrap_or(own)
    }

    /// The other language, for the switch.
    pub fn other(&self) -> Lang {
        self.lang.other()
    }

    /// The link that switches the language and comes back here.
    pub fn switch_href(&self) -> String {
        format!(
            "/lang?to={}&back={}",
            self.other().code(),
            urlencoding::encode(&self.here)
        )
    }

    /// The strings the page's scripts use (those under `js.`), as JSON for a data attribute.
    pub fn js_strings(&self) -> &'static str {
        i18n::script_strings(self.lang)
    }

    /// A time as people read it: in the zone of the policy's days, with the offset shown.
    pub fn when(&self, t: &OffsetDateTime) -> String {
        let local = t.to_offset(self.offset);
        let zone = self.zone();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} ({zone})",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute()
        )
    }

    /// The policy's zone as people read it: `UTC+8`.
    pub fn zone(&self) -> String {
        let (h, m, _) = self.offset.as_hms();
        if m == 0 {
            format!("UTC{h:+}")
        } else {
            format!("UTC{h:+}:{:02}", m.unsigned_abs())
        }
    }

    /// The policy's zone for scripts: `+08:00`.
    pub fn offset_iso(&self) -> String {
        let (h, m, _) = self.offset.as_hms();
        let sign = if h < 0 || m < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    }

    /// The translated name of a colour.
    pub fn colour(&self, c: &str) -> &'static str {
        match c {
            "green" => self.t("colour.green"),
            "yellow" => self.t("colour.yellow"),
            "red" => self.t("colour.red"),
            _ => self.t("colour.unknown"),
        }
    }
}

/// The cookie that keeps the chosen language.
const LANG_COOKIE: &str = "hc_lang";

#[derive(Debug, Deserialize)]
struct SwitchQuery {
    to: String,
    #[serde(default)]
    back: Option<String>,
}

/// Sets the language and returns to the page (only ever to a path on this site).
async fn switch_language(Query(q): Query<SwitchQuery>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or(Lang::En);
    let back = next_path(q.back.as_deref(), "/");
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// A compiled-in file, with its type, a validator and a cache lifetime.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return ApiError::NotFound(format!("no file /static/{path}")).into_response();
    };
    let etag = format!(
        "\"{}\"",
        data_encoding::HEXLOWER.encode(&file.metadata.sha256_hash()[..16])
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype();
    // Modules are served as JavaScript whatever the guesser says about .mjs.
    let mime = if path.ends_with(".js") || path.ends_with(".mjs") {
        "text/javascript; charset=utf-8"
    } else {
        mime
    };
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "public, max-age=300".to_owned()),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

/// A digest of every compiled-in file: changes with any script, style or library.
static ASSETS_DIGEST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let mut names: Vec<_> = Assets::iter().collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        if let Some(f) = Assets::get(&name) {
            h.update(name.as_bytes());
            h.update(f.metadata.sha256_hash());
        }
    }
    data_encoding::HEXLOWER.encode(&h.finalize()[..8])
});

/// The static files the offline pages (the scanner, my code) use: everything but the service
/// worker itself and the console's chart library.
static OFFLINE_FILES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut files: Vec<String> = Assets::iter()
        .filter(|n| n != "sw.js" && !n.starts_with("vendor/chart.js/"))
        .filter(|n| [".js", ".mjs", ".css", ".svg"].iter().any(|e| n.ends_with(e)))
        .map(|n| format!("/static/{n}"))
        .collect();
    files.sort();
    serde_json::to_string(&files).unwrap_or_else(|_| "[]".into())
});

/// The service worker, served from the root so that it may keep `/scan` and `/me`, named after
/// the digest of the static files it keeps.
async fn service_worker() -> Response {
    match Assets::get("sw.js") {
        Some(file) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            String::from_utf8_lossy(&file.data)
                .replace("__ASSETS__", &ASSETS_DIGEST)
                .replace("__FILES__", &OFFLINE_FILES),
        )
            .into_response(),
        None => ApiError::NotFound("no service worker".into()).into_response(),
    }
}

/// The headers every page carries: a strict content security policy (scripts, styles, images
/// and connections from this site only; no inline script), no framing, no referrer, no caching
/// (pages show personal data), and the camera for this site only (the scanner).
fn page_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(), geolocation=()"),
    );
}

/// Renders a page.
pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut resp = axum::response::Html(html).into_response();
            page_headers(&mut resp);
            resp
        }
        Err(e) => ApiError::internal("a page template failed", e).into_response(),
    }
}

/// A page that could not be shown: the error in the page's language, with a way on.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: Ctx,
    status: u16,
    detail: String,
}

/// Turns an API error met while building a page into a page: a missing or ended session sends
/// the browser to `signin`; anything else is shown as an error page with its status.
pub fn page_error(ctx: Ctx, signin: &str, e: ApiError) -> Response {
    // A staff session that must still enrol a second factor (an account from before it was
    // required, or one whose factor an admin reset) is taken to the enrolment, and back.
    if matches!(&e, ApiError::Forbidden(m) if m == crate::auth::MUST_ENROL) {
        let back = urlencoding::encode(&ctx.here).into_owned();
        return Redirect::to(&format!("/console/enrol?next={back}")).into_response();
    }
    // A session signed in without the second factor of an account that has one: sign in again.
    let again = matches!(&e, ApiError::Forbidden(m) if m == crate::auth::NEEDS_SECOND_FACTOR);
    let resp = e.into_response();
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED || again {
        let back = urlencoding::encode(&ctx.here).into_owned();
        return Redirect::to(&format!("{signin}?next={back}")).into_response();
    }
    // The detail shown is the problem's detail, already safe for clients.
    let detail = match status {
        StatusCode::FORBIDDEN => ctx.t("error.forbidden").to_owned(),
        StatusCode::NOT_FOUND => ctx.t("error.not_found").to_owned(),
        s if s.is_server_error() => ctx.t("error.server").to_owned(),
        _ => ctx.t("error.other").to_owned(),
    };
    let mut page = render(&ErrorPage {
        ctx,
        status: status.as_u16(),
        detail,
    });
    *page.status_mut() = status;
    page
}

/// Ends the browser's session: revokes the token the browser presents (its cookie, or a bearer
/// token) in the store and in this node's cache, whatever state the session is in, and clears
/// the cookie. Only the pages may ask (the web header): another site cannot sign a person out,
/// and a sign-out that only cleared the cookie would leave a copied token working. A store that
/// fails is a 500, not a sign-out that seemed to work.
pub(crate) async fn end_session<S: Store>(
    app: &App<S>,
    headers: &axum::http::HeaderMap,
    cookie: &str,
) -> Response {
    if !crate::auth::from_web(headers) {
        return ApiError::Forbidden(format!(
            "signing out a browser session needs the {} header",
            crate::auth::WEB_HEADER
        ))
        .into_response();
    }
    let token = crate::auth::bearer_in(headers)
        .or_else(|| crate::auth::cookie_in(headers, cookie))
        .filter(|t| !t.is_empty());
    if let Some(token) = token {
        let hash = crate::auth::secret_hash(token);
        app.auth.forget_session(&hash);
        if let Err(e) = app.store.revoke_session(&hash).await {
            return ApiError::from(e).into_response();
        }
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, crate::auth::clear_cookie(cookie))],
    )
        .into_response()
}

/// Where a sign-in page sends the browser afterwards: a path on this site, else `default`.
pub fn next_path(next: Option<&str>, default: &str) -> String {
    next.filter(|n| is_local_path(n)).unwrap_or(default).to_owned()
}

/// Whether `p` can only name a path on this site: it starts with one `/`, and holds only visible
/// ASCII other than `\` (browsers drop tabs and newlines from addresses, so `/\t/evil.example`
/// would become `//evil.example`, another site).
fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_paths_on_this_site_are_followed() {
        for ok in ["/", "/me", "/console/cases?x=1&y=%2F", "/me/access-log"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "me",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "https://evil.example",
            "/\u{ff0f}evil",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}

/// The `next` query parameter of sign-in pages.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    /// Where to go after signing in.
    #[serde(default)]
    pub next: Option<String>,
}
