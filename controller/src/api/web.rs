//! The operator's page: one HTML page, its script and its style sheet, served by the management
//! API itself at `/` (and `/index.html`), `/app.js` and `/style.css`. No front-end build step and
//! no outside resource: the three files under `web/` are compiled into the binary.
//!
//! The script polls the JSON routes of [`super`] once a second and draws what `fcsan volume`
//! prints, with the same columns: figure 4 (a) (`GET /v1/volumes`) and (b) (the volumes' `rows`),
//! figure 3 (a) and (b) (`GET /v1/real-volumes`), the controllers (`GET /v1/peers`), each volume's
//! I/O at this controller (`GET /v1/volumes/{name}/io`) and the counters (`GET /v1/counters`). Its
//! forms build (`POST /v1/volumes`) and delete (`DELETE /v1/volumes/{name}[?keep=OTHER]`) and show
//! the API's error message when it refuses.
//!
//! Every answer says `Cache-Control: no-store` (a page from an older binary is never shown
//! against a newer API) and `X-Content-Type-Options: nosniff`; the page's Content-Security-Policy
//! allows only this origin's script, style and requests, so nothing a volume or peer name holds
//! can run as code (the script also only ever inserts text).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page.
pub const INDEX_HTML: &str = include_str!("web/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("web/app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("web/style.css");

/// What the page may load and where it may send requests: its own origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes, to merge into the API's router (whatever its state).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
}

async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX_HTML);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    r
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// A static file with its type, never cached.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
