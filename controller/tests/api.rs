//! The management API over real HTTP: every route's status and JSON, and every way a request can
//! be wrong, against the in-memory backend of `support/memory.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use controller::api::{self, ApiError};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/memory.rs"]
mod memory;

use memory::Memory;

/// An answer: status, headers (names lower-case) and the body as JSON (`Null` when empty).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_else(|| {
            panic!("no error message in {}", self.json);
        })
    }
}

async fn start() -> (SocketAddr, Arc<Memory>) {
    let backend = Memory::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(listener, backend.clone()));
    (addr, backend)
}

/// Sends one HTTP/1.1 request as raw bytes (so a test can send what no client library would)
/// and reads the answer to the end of the connection.
async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    if let Some(b) = body {
        s.write_all(b).await.unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "this reader does not undo chunking"
    );
    let json = if body.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            headers
                .iter()
                .find(|(n, _)| n == "content-type")
                .map(|(_, v)| v.as_str()),
            Some("application/json"),
            "{method} {path}: {body}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    };
    Answer {
        status,
        headers,
        json,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "GET", path, None).await
}

async fn post(addr: SocketAddr, body: &str) -> Answer {
    send(addr, "POST", "/v1/volumes", Some(body.as_bytes())).await
}

/// A 400 naming `field`, whose message contains `words`.
fn assert_bad(a: &Answer, field: &str, words: &str) {
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["field"], field, "{}", a.json);
    assert!(
        a.error().starts_with(&format!("{field}: ")) && a.error().contains(words),
        "{:?} should name {field} and say {words:?}",
        a.error()
    );
}

#[tokio::test]
async fn test_list_and_show_volumes() {
    let (addr, _) = start().await;
    let a = get(addr, "/v1/volumes").await;
    assert_eq!(a.status, 200);
    let list = a.json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0],
        json!({
            "name": "vol1", "owner": "ctl-a", "owner_wwpn": "20:00:00:25:b5:0a:00:01",
            "owner_fc_id": "010200", "site": "a", "local_name": "A-0001",
            "capacity": 8388608, "media": "fast-hdd", "state": "online",
            "generation": 1, "version": 3, "claimed_at": 1700000000000u64,
            "rows": [
                {"virtual_start": 0, "sectors": 16384, "array": "50:06:0e:80:00:00:0a:02",
                 "array_fc_id": "021a00", "lun": 3, "real_start": 0, "blocks": 16384,
                 "block_size": 512, "copy": 0},
                {"virtual_start": 0, "sectors": 16384, "array": "50:06:0e:80:00:00:0a:03",
                 "array_fc_id": "051c00", "lun": 8, "real_start": 0, "blocks": 2048,
                 "block_size": 4096, "copy": 1},
            ],
            "masking": [],
        })
    );
    assert_eq!(list[1]["name"], "vol2");
    assert_eq!(list[1]["state"], "degraded");
    assert_eq!(list[1]["masking"], json!(["21:00:00:24:ff:00:00:01"]));

    let a = get(addr, "/v1/volumes/vol2").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json, list[1]);

    let a = get(addr, "/v1/volumes/nope").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json, json!({"error": "no volume named nope"}));
}

#[tokio::test]
async fn test_bad_names_in_the_path() {
    let (addr, _) = start().await;
    assert_bad(&get(addr, "/v1/volumes/a%20b").await, "name", "not ' '");
    assert_bad(
        &get(addr, &format!("/v1/volumes/{}", "x".repeat(65))).await,
        "name",
        "at most 64 bytes, not 65",
    );
    assert_bad(
        &send(addr, "DELETE", "/v1/volumes/caf%C3%A9", None).await,
        "name",
        "not 'é'",
    );
    // Percent-encoding that is not UTF-8.
    assert_bad(&get(addr, "/v1/volumes/%FF").await, "path", "UTF-8");
}

#[tokio::test]
async fn test_build() {
    let (addr, _) = start().await;
    let a = post(
        addr,
        r#"{"name": "db1", "type": "ssd", "capacity": "16MiB"}"#,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.json);
    assert_eq!(a.header("location"), Some("/v1/volumes/db1"));
    assert_eq!(a.json["name"], "db1");
    assert_eq!(a.json["capacity"], 16 << 20);
    assert_eq!(a.json["media"], "ssd");
    assert_eq!(a.json["owner"], "ctl-a");
    assert_eq!(a.json["rows"][0]["array_fc_id"], "011300");
    assert_eq!(a.json["rows"][0]["sectors"], 32768);
    let shown = get(addr, "/v1/volumes/db1").await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json, a.json);

    // A number of bytes, no name: the backend picks one.
    let a = post(addr, r#"{"type": "fast-hdd", "capacity": 1048576}"#).await;
    assert_eq!(a.status, 201, "{}", a.json);
    assert_eq!(a.json["name"], "vol-3");
    assert_eq!(a.json["capacity"], 1 << 20);
    // Decimal units.
    let a = post(
        addr,
        r#"{"type": "ssd", "capacity": "512 KB", "name": null}"#,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.json);
    assert_eq!(a.json["capacity"], 512_000);

    let a = get(addr, "/v1/volumes").await;
    assert_eq!(a.json.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn test_build_refusals_of_the_backend() {
    let (addr, backend) = start().await;
    let a = post(addr, r#"{"name": "vol2", "type": "ssd", "capacity": 4096}"#).await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.json,
        json!({"error": "the name vol2 is held by controller ctl-b", "holder": "ctl-b"})
    );

    let a = post(addr, r#"{"type": "ssd", "capacity": "1GiB"}"#).await;
    assert_eq!(a.status, 507);
    assert_eq!(
        a.json["found"],
        json!([
            {"site": "a", "controller": "ctl-a", "media": "ssd", "bytes": 64 << 20},
            {"site": "b", "controller": "ctl-b", "media": "ssd", "bytes": 0},
        ])
    );
    assert_eq!(
        a.error(),
        "not enough free space of the type asked for: found 64 MiB in all \
         (64 MiB of ssd at ctl-a on site a, 0 B of ssd at ctl-b on site b)"
    );

    backend.fail_next(ApiError::NotReady);
    let a = post(addr, r#"{"type": "ssd", "capacity": 4096}"#).await;
    assert_eq!(a.status, 503);
    assert!(a.error().contains("not ready"), "{}", a.error());

    backend.fail_next(ApiError::Unreachable {
        peer: "ctl-b".into(),
    });
    let a = post(addr, r#"{"type": "ssd", "capacity": 4096}"#).await;
    assert_eq!(a.status, 504);
    assert_eq!(a.json, json!({"error": "controller ctl-b did not answer"}));

    backend.fail_next(ApiError::Internal("disk full".into()));
    let a = send(addr, "DELETE", "/v1/volumes/vol1", None).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json, json!({"error": "internal error: disk full"}));
    // Nothing was built or deleted by the failed calls.
    assert_eq!(
        get(addr, "/v1/volumes")
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn test_build_bad_requests() {
    let (addr, _) = start().await;
    for (body, field, words) in [
        ("", "body", "not valid JSON"),
        ("{\"type\": ", "body", "not valid JSON"),
        ("\"ssd\"", "body", "expected a JSON object"),
        (r#"[{"type": "ssd"}]"#, "body", "expected a JSON object"),
        (
            r#"{"type": "ssd", "capacity": 1, "size": 2}"#,
            "body",
            "unknown field \"size\"",
        ),
        (
            r#"{"name": "a/b", "type": "ssd", "capacity": 1}"#,
            "name",
            "not '/'",
        ),
        (
            r#"{"name": "", "type": "ssd", "capacity": 1}"#,
            "name",
            "may not be empty",
        ),
        (
            r#"{"name": 3, "type": "ssd", "capacity": 1}"#,
            "name",
            "expected a string, not a number",
        ),
        (r#"{"capacity": 1}"#, "type", "missing"),
        (
            r#"{"type": "floppy", "capacity": 1}"#,
            "type",
            "unknown media type \"floppy\"",
        ),
        (
            r#"{"type": ["ssd"], "capacity": 1}"#,
            "type",
            "expected a string, not an array",
        ),
        (r#"{"type": "ssd"}"#, "capacity", "missing"),
        (
            r#"{"type": "ssd", "capacity": 0}"#,
            "capacity",
            "more than 0",
        ),
        (
            r#"{"type": "ssd", "capacity": "0GiB"}"#,
            "capacity",
            "more than 0",
        ),
        (
            r#"{"type": "ssd", "capacity": -1}"#,
            "capacity",
            "not a whole number",
        ),
        (
            r#"{"type": "ssd", "capacity": 2.5}"#,
            "capacity",
            "not a whole number",
        ),
        (
            r#"{"type": "ssd", "capacity": "16 furlongs"}"#,
            "capacity",
            "unknown unit \"furlongs\"",
        ),
        (
            r#"{"type": "ssd", "capacity": "lots"}"#,
            "capacity",
            "not a size",
        ),
        (
            r#"{"type": "ssd", "capacity": "99999999TiB"}"#,
            "capacity",
            "64 bits",
        ),
        (
            r#"{"type": "ssd", "capacity": true}"#,
            "capacity",
            "not a boolean",
        ),
    ] {
        let a = post(addr, body).await;
        assert_bad(&a, field, words);
    }
    // Bytes that are not text at all.
    let a = send(addr, "POST", "/v1/volumes", Some(&[0xff, 0xfe, 0x00])).await;
    assert_bad(&a, "body", "not valid JSON");
    // A body over the limit keeps its status, in JSON.
    let big = vec![b' '; 3 << 20];
    let a = send(addr, "POST", "/v1/volumes", Some(&big)).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json["field"], "body");
}

#[tokio::test]
async fn test_delete() {
    let (addr, _) = start().await;
    let a = send(addr, "DELETE", "/v1/volumes/vol2?keep=vol1", None).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.json, Value::Null);
    assert_eq!(get(addr, "/v1/volumes/vol2").await.status, 404);

    let a = send(addr, "DELETE", "/v1/volumes/vol2", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json, json!({"error": "no volume named vol2"}));

    let a = send(addr, "DELETE", "/v1/volumes/vol1?keep=elsewhere", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json, json!({"error": "no volume named elsewhere"}));

    assert_bad(
        &send(addr, "DELETE", "/v1/volumes/vol1?keep=vol1", None).await,
        "keep",
        "in vol1 itself",
    );
    assert_bad(
        &send(addr, "DELETE", "/v1/volumes/vol1?keep=a%20b", None).await,
        "keep",
        "not ' '",
    );
    assert_bad(
        &send(addr, "DELETE", "/v1/volumes/vol1?keep=", None).await,
        "keep",
        "may not be empty",
    );
    assert_bad(
        &send(addr, "DELETE", "/v1/volumes/vol1?force=yes", None).await,
        "query",
        "unknown field `force`",
    );
    // Still there after all the refusals.
    assert_eq!(get(addr, "/v1/volumes/vol1").await.status, 200);
    let a = send(addr, "DELETE", "/v1/volumes/vol1", None).await;
    assert_eq!(a.status, 204);
    assert_eq!(get(addr, "/v1/volumes").await.json, json!([]));
}

#[tokio::test]
async fn test_real_volumes() {
    let (addr, _) = start().await;
    let a = get(addr, "/v1/real-volumes").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["controller"], "ctl-a");
    assert_eq!(a.json["site"], "a");
    let vols = a.json["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 3);
    assert_eq!(
        vols[1],
        json!({
            "array": "50:06:0e:80:00:00:0a:02", "array_fc_id": "021a00", "lun": 3,
            "media": "fast-hdd", "capacity": 120 << 20, "block_size": 512,
            "vendor": "FCSAN", "product": "DISK", "present": true,
            "used_by": [{"volume": "vol1", "start": 0, "blocks": 16384}],
        })
    );
    assert_eq!(
        a.json["free"][1],
        json!({
            "array": "50:06:0e:80:00:00:0a:02", "array_fc_id": "021a00",
            "media": "fast-hdd", "free_bytes": 112 << 20, "extents": 1,
        })
    );
}

#[tokio::test]
async fn test_peers_and_counters() {
    let (addr, _) = start().await;
    let a = get(addr, "/v1/peers").await;
    assert_eq!(a.status, 200);
    let peers = a.json.as_array().unwrap();
    assert_eq!(peers.len(), 3);
    assert_eq!(peers[0]["state"], "self");
    assert_eq!(peers[0]["last_heard_ms"], Value::Null);
    assert_eq!(
        peers[1],
        json!({
            "name": "ctl-b", "wwpn": "20:00:00:25:b5:0b:00:01", "fc_id": "020200",
            "site": "b", "state": "up", "api": "http://127.0.0.1:7801",
            "last_heard_ms": 420,
            "versions": [
                {"owner": "20:00:00:25:b5:0a:00:01", "owner_name": "ctl-a", "generation": 1, "version": 3},
                {"owner": "20:00:00:25:b5:0b:00:01", "owner_name": "ctl-b", "generation": 2, "version": 5},
            ],
        })
    );
    assert_eq!(peers[2]["state"], "down");
    assert_eq!(peers[2]["versions"][0]["owner_name"], Value::Null);

    let a = get(addr, "/v1/counters").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json,
        json!({"counters": {
            "messages_sent.heartbeat": 120, "messages_sent.update": 4, "rejected.bad-mac": 1,
        }})
    );
}

#[tokio::test]
async fn test_unknown_routes_and_wrong_methods() {
    let (addr, _) = start().await;
    // `/` is the operator's page (tests/web.rs).
    for path in [
        "/favicon.ico",
        "/v1",
        "/v2/volumes",
        "/v1/volumes/vol1/rows",
        "/v1/volumes/",
    ] {
        let a = get(addr, path).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.json["field"], "path");
        assert!(a.error().contains(path), "{}", a.error());
    }
    for (method, path, allow) in [
        ("PUT", "/v1/volumes", "GET,HEAD,POST"),
        ("DELETE", "/v1/volumes", "GET,HEAD,POST"),
        ("POST", "/v1/volumes/vol1", "GET,HEAD,DELETE"),
        ("POST", "/v1/peers", "GET,HEAD"),
        ("DELETE", "/v1/counters", "GET,HEAD"),
        ("PATCH", "/v1/real-volumes", "GET,HEAD"),
    ] {
        let a = send(addr, method, path, Some(b"{}")).await;
        assert_eq!(a.status, 405, "{method} {path}");
        assert_eq!(
            a.json,
            json!({"error": format!("method: {path} does not take {method}"), "field": "method"})
        );
        assert_eq!(a.header("allow"), Some(allow), "{method} {path}");
    }
    // The server is still there after all of it.
    assert_eq!(get(addr, "/v1/volumes").await.status, 200);
}

#[tokio::test]
async fn test_add_replica() {
    let (addr, _) = start().await;
    let path = "/v1/volumes/vol1/replicas";
    let a = get(addr, path).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["state"], "in-sync");
    assert_eq!(a.json["copies"], 2);
    assert_eq!(a.json["rows"][0]["copy"], 1);

    let a = send(addr, "POST", path, Some(br#"{"type": "ssd", "site": "b"}"#)).await;
    assert_eq!(a.status, 202, "{}", a.json);
    assert_eq!(a.header("location"), Some(path));
    assert_eq!(a.json["volume"], "vol1");
    assert_eq!(a.json["state"], "syncing");
    assert_eq!(a.json["copy"], 2);
    assert_eq!(a.json["total"], 8 << 20);
    assert_eq!(a.json["copied"], 4 << 20);
    assert_eq!(a.json["rate_limit"], 100 << 20);
    assert_eq!(a.json["reason"], Value::Null);
    assert_eq!(get(addr, path).await.json, a.json);

    // One replica at a time.
    let a = send(addr, "POST", path, None).await;
    assert_eq!(a.status, 409, "{}", a.json);
    assert_eq!(a.json["field"], "name");
    assert!(a.error().contains("being synchronized"), "{}", a.error());

    // Only the owner adds one.
    let a = send(addr, "POST", "/v1/volumes/vol2/replicas", None).await;
    assert_eq!(a.status, 409, "{}", a.json);
    assert_eq!(
        a.json,
        json!({
            "error": "volume vol2 is owned by controller ctl-b; ask that controller",
            "field": "name", "holder": "ctl-b",
        })
    );
    let a = get(addr, "/v1/volumes/vol2/replicas").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["state"], "none");
    assert_eq!(a.json["copies"], 1);

    let a = send(addr, "POST", "/v1/volumes/nope/replicas", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json, json!({"error": "no volume named nope"}));
    assert_eq!(get(addr, "/v1/volumes/nope/replicas").await.status, 404);
    assert_bad(
        &send(addr, "POST", "/v1/volumes/a%20b/replicas", None).await,
        "name",
        "not ' '",
    );
    assert_bad(
        &get(addr, "/v1/volumes/a%20b/replicas").await,
        "name",
        "not ' '",
    );
    let a = send(addr, "DELETE", path, None).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET,HEAD,POST"));
}

#[tokio::test]
async fn test_add_replica_bad_requests() {
    let (addr, backend) = start().await;
    let path = "/v1/volumes/vol1/replicas";
    for (body, field, words) in [
        ("{", "body", "not valid JSON"),
        ("[1]", "body", "expected a JSON object"),
        ("\"ssd\"", "body", "expected a JSON object"),
        (
            r#"{"type": "ssd", "copies": 2}"#,
            "body",
            "unknown field \"copies\"",
        ),
        (
            r#"{"type": "floppy"}"#,
            "type",
            "unknown media type \"floppy\"",
        ),
        (r#"{"type": 3}"#, "type", "expected a string, not a number"),
        (r#"{"type": "tape"}"#, "type", "tape"),
        (r#"{"site": ""}"#, "site", "1 to 64 bytes, not 0"),
        (
            r#"{"site": ["b"]}"#,
            "site",
            "expected a string, not an array",
        ),
        (r#"{"site": "zz"}"#, "site", "no controller of site \"zz\""),
    ] {
        let a = send(addr, "POST", path, Some(body.as_bytes())).await;
        assert_bad(&a, field, words);
    }
    let long = format!(r#"{{"site": "{}"}}"#, "s".repeat(65));
    assert_bad(
        &send(addr, "POST", path, Some(long.as_bytes())).await,
        "site",
        "not 65",
    );
    // A site whose controller is down.
    let a = send(addr, "POST", path, Some(br#"{"site": "c"}"#)).await;
    assert_eq!(a.status, 504, "{}", a.json);
    backend.fail_next(ApiError::NotReady);
    assert_eq!(send(addr, "POST", path, None).await.status, 503);
    // Nothing was started by any of them: a body of blanks is every field left out.
    assert_eq!(get(addr, path).await.json["state"], "in-sync");
    let a = send(addr, "POST", path, Some(b"  \n")).await;
    assert_eq!(a.status, 202, "{}", a.json);
    assert_eq!(a.json["state"], "syncing");
}

#[tokio::test]
async fn test_volume_io() {
    let (addr, _) = start().await;
    let a = get(addr, "/v1/volumes/vol1/io").await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["lun"], 5);
    assert_eq!(a.json["counters"]["replica_reads"], 3);
    assert_eq!(a.json["counters"]["route_changes"], 2);
    assert_eq!(a.json["counters"]["cache_hits"], 0);
    assert_eq!(a.json["replica"]["state"], "in-sync");
    assert_eq!(get(addr, "/v1/volumes/nope/io").await.status, 404);
    assert_bad(&get(addr, "/v1/volumes/a%20b/io").await, "name", "not ' '");
    let a = send(addr, "POST", "/v1/volumes/vol1/io", Some(b"{}")).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET,HEAD"));
}

#[tokio::test]
async fn test_masking() {
    let (addr, _) = start().await;
    let path = "/v1/volumes/vol1/masking";
    let a = send(
        addr,
        "PUT",
        path,
        Some(br#"{"hosts": ["21:00:00:24:ff:00:00:01", "21000024ff000002", "21-00-00-24-ff-00-00-01"]}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(
        a.json["masking"],
        json!(["21:00:00:24:ff:00:00:01", "21:00:00:24:ff:00:00:02"])
    );
    assert_eq!(get(addr, "/v1/volumes/vol1").await.json, a.json);
    let a = send(addr, "PUT", path, Some(br#"{"hosts": []}"#)).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["masking"], json!([]));

    let many: Vec<String> = (0..1025).map(|i| format!("21000024ff{i:06x}")).collect();
    let many = serde_json::to_string(&json!({ "hosts": many })).unwrap();
    for (body, field, words) in [
        ("", "body", "not valid JSON"),
        ("[]", "body", "expected a JSON object"),
        (
            r#"{"hosts": [], "lun": 3}"#,
            "body",
            "unknown field \"lun\"",
        ),
        ("{}", "hosts", "missing"),
        (r#"{"hosts": null}"#, "hosts", "missing"),
        (
            r#"{"hosts": "21:00:00:24:ff:00:00:01"}"#,
            "hosts",
            "not a string",
        ),
        (
            r#"{"hosts": [7]}"#,
            "hosts",
            "entry 0: expected a WWPN string, not a number",
        ),
        (
            r#"{"hosts": ["21:00:00:24:ff:00:00:01", "21:00"]}"#,
            "hosts",
            "entry 1",
        ),
        (many.as_str(), "hosts", "at most 1024 hosts, not 1025"),
    ] {
        let a = send(addr, "PUT", path, Some(body.as_bytes())).await;
        assert_bad(&a, field, words);
    }
    let a = send(
        addr,
        "PUT",
        "/v1/volumes/vol2/masking",
        Some(br#"{"hosts": []}"#),
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.json);
    assert_eq!(a.json["holder"], "ctl-b");
    assert_eq!(a.json["field"], "name");
    let a = send(
        addr,
        "PUT",
        "/v1/volumes/nope/masking",
        Some(br#"{"hosts": []}"#),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_bad(
        &send(addr, "PUT", "/v1/volumes/a%20b/masking", Some(b"{}")).await,
        "name",
        "not ' '",
    );
    let a = get(addr, path).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("PUT"));
}
