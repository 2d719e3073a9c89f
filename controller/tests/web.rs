//! The operator's page through the API's axum router, against the in-memory backend of
//! `support/memory.rs`: its three files with their types and headers, and the page, its script
//! and the API agreeing (every element the script looks up is in the page; every route it polls
//! answers JSON). `tests/web_ui.rs` at the root drives the page in headless Chromium over HTTP.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, Response};
use controller::api::{self, web};
use tower::ServiceExt;

#[path = "support/memory.rs"]
mod memory;

use memory::Memory;

/// An answer: status, a header by name, and the body as text.
struct Answer {
    status: u16,
    response: Response<()>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("a header of text"))
    }
}

/// One request without a body to a fresh router.
async fn send(method: &str, path: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = api::router(Memory::new()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    Answer {
        status: parts.status.as_u16(),
        response: Response::from_parts(parts, ()),
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Every text between `open` and the next `close` in `s`.
fn between<'a>(s: &'a str, open: &str, close: char) -> BTreeSet<&'a str> {
    s.match_indices(open)
        .filter_map(|(i, _)| {
            let rest = &s[i + open.len()..];
            rest.find(close).map(|end| &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn test_page_script_and_style_are_served_with_their_types() {
    for (path, content_type, body) in [
        ("/", "text/html; charset=utf-8", web::INDEX_HTML),
        ("/index.html", "text/html; charset=utf-8", web::INDEX_HTML),
        ("/app.js", "text/javascript; charset=utf-8", web::APP_JS),
        ("/style.css", "text/css; charset=utf-8", web::STYLE_CSS),
    ] {
        let a = send("GET", path).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.header("content-type"), Some(content_type), "{path}");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(a.body, body, "{path}");
    }
    let page = send("GET", "/").await;
    let csp = page
        .header("content-security-policy")
        .expect("the page has a Content-Security-Policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(page
        .body
        .contains(r#"<script src="app.js" defer></script>"#));
    assert!(page
        .body
        .contains(r#"<link rel="stylesheet" href="style.css">"#));
    // Nothing from elsewhere: every src and href is this origin's.
    for attr in ["src=\"", "href=\""] {
        for url in between(&page.body, attr, '"') {
            assert!(!url.contains("//"), "the page loads {url} from elsewhere");
        }
    }

    // The page is only read: other methods and other files are the API's JSON refusals.
    let a = send("POST", "/").await;
    assert_eq!(a.status, 405);
    assert!(a.body.contains("does not take POST"), "{}", a.body);
    let a = send("GET", "/app.css").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("the operator's page is /"), "{}", a.body);
}

#[tokio::test]
async fn test_script_page_and_api_agree() {
    // Every element the script looks up by id is in the page.
    let ids = between(web::APP_JS, "$(\"", '"');
    assert!(ids.len() > 15, "{ids:?}");
    for id in ids {
        assert!(
            web::INDEX_HTML.contains(&format!("id=\"{id}\"")) || id == "error-message",
            "app.js looks up #{id}, which index.html lacks"
        );
    }
    // The ids the tests and users rely on.
    for id in [
        "volumes",
        "map",
        "real",
        "free",
        "peers",
        "io",
        "counters",
        "error",
        "notice",
        "build-form",
        "build-name",
        "build-type",
        "build-capacity",
        "build-unit",
        "build-submit",
        "delete-form",
        "delete-name",
        "delete-keep",
        "delete-submit",
    ] {
        assert!(
            web::INDEX_HTML.contains(&format!("id=\"{id}\"")),
            "index.html lacks #{id}"
        );
    }
    // Every route the script polls answers JSON (relative to the page at /).
    let routes = between(web::APP_JS, "getJson(\"", '"');
    assert_eq!(
        routes,
        BTreeSet::from(["v1/counters", "v1/peers", "v1/real-volumes", "v1/volumes"])
    );
    for route in routes {
        let a = send("GET", &format!("/{route}")).await;
        assert_eq!(a.status, 200, "{route}: {}", a.body);
        assert_eq!(
            a.header("content-type"),
            Some("application/json"),
            "{route}"
        );
    }
    assert!(web::APP_JS.contains("getJson(`v1/volumes/${encodeURIComponent(v.name)}/io`)"));
    let a = send("GET", "/v1/volumes/vol1/io").await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The build form's types are the API's.
    for media in ["ssd", "fast-hdd", "slow-hdd", "tape"] {
        assert!(web::INDEX_HTML.contains(&format!("<option value=\"{media}\">")));
    }
}
