//! `portcullis serve` in front of real upstreams started by the tests: streaming both ways, what is forwarded and
//! what is not, an upstream that is down, public paths, logs, and graceful shutdown.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_token::token_digest;
use serde_json::{Map, Value, json};
use support::{
    PATIENCE, Running, TempDir, TestBody, channel_body, client, closed_port, empty, full, send,
    start_upstream, terminate,
};
use tokio::sync::oneshot;

/// The service-account key every test request carries.
const KEY: &str = "pcsa_gateway_test_key";

/// A gateway process, its base URL, and the directory holding its files.
struct Gateway {
    process: Running,
    base: String,
    _dir: TempDir,
}

impl Gateway {
    /// Starts `portcullis serve` in front of `upstream`, with `sites` as the body of the `[sites]` table. The key
    /// [`KEY`] belongs to org-test, whose policy allows service-account keys.
    async fn start(upstream: SocketAddr, sites: &str) -> Self {
        Self::start_with(upstream, sites, "").await
    }

    /// As [`start`](Self::start), with `more` at the end of the file (more `[gateway]` keys, then other tables).
    async fn start_with(upstream: SocketAddr, sites: &str, more: &str) -> Self {
        let dir = TempDir::new("serve");
        dir.write(
            "tokens.toml",
            &format!(
                "[[service_account]]\naccount_id = \"svc-test\"\norganization = \"org-test\"\nkey_sha256 = \"{}\"\n",
                token_digest(KEY)
            ),
        );
        dir.write(
            "policy.toml",
            "[organization.org-test]\nservice_account_keys = true\n",
        );
        // Relative file names: resolved against the configuration file's directory, not the working directory.
        let config = dir.write(
            "portcullis.toml",
            &format!(
                r#"
resource = "http://127.0.0.1/mcp"
authorization_servers = ["https://auth.example.com"]
service_account_prefix = "pcsa_"

[api_tokens]
file = "tokens.toml"

[policy]
file = "policy.toml"

[sites]
{sites}

[gateway]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
connect_timeout_ms = 1000
request_timeout_ms = 10000
shutdown_timeout_ms = 10000
log_format = "json"
{more}
"#
            ),
        );
        let mut process = Running::spawn(&["serve", "--config", config.to_str().expect("utf-8")]);
        let lines = process
            .read_until(|line| line.starts_with("portcullis listening on "))
            .await;
        let base = lines
            .last()
            .and_then(|l| l.strip_prefix("portcullis listening on "))
            .expect("the listening line")
            .to_owned();
        Self {
            process,
            base,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the test key.
    fn authed(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {KEY}"))
    }

    /// Waits until standard error contains `needle`.
    async fn stderr_contains(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stderr = self.process.stderr();
            if stderr.contains(needle) {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn response(status: StatusCode, body: TestBody) -> Response<TestBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// An upstream whose `/sse` answers with one event at once and a second one only after `release` fires.
async fn sse_upstream() -> (SocketAddr, oneshot::Sender<()>) {
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    let addr = start_upstream(move |req: Request<Incoming>| {
        let released = released.lock().expect("lock").take();
        async move {
            assert_eq!(req.uri().path(), "/sse");
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx
                    .send(Bytes::from_static(b"event: message\ndata: one\n\n"))
                    .await;
                if let Some(released) = released {
                    let _ = released.await;
                }
                let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
            });
            let mut response = response(StatusCode::OK, body);
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/event-stream"),
            );
            response
        }
    })
    .await;
    (addr, release)
}

/// Reads frames of `body` until the text so far contains `needle`.
async fn read_until(body: &mut Incoming, seen: &mut String, needle: &str) {
    let read = async {
        while !seen.contains(needle) {
            let frame = body
                .frame()
                .await
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never arrived; so far: {seen:?}"));
}

#[tokio::test]
async fn sse_events_reach_the_client_before_the_upstream_finishes() {
    let (upstream, release) = sse_upstream().await;
    let gateway = Gateway::start(upstream, "").await;

    let req = gateway
        .authed("GET", "/sse")
        .header("accept", "text/event-stream")
        .body(empty())
        .expect("request");
    let response = tokio::time::timeout(PATIENCE, client().request(req))
        .await
        .expect("the head arrives in time")
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut seen = String::new();
    // The upstream holds the second event until we release it, so the first one can only have arrived here if
    // the gateway passed it on without waiting for the end of the body.
    read_until(&mut body, &mut seen, "data: one\n\n").await;
    assert!(!seen.contains("two"), "{seen:?}");
    release.send(()).expect("the upstream waits");
    read_until(&mut body, &mut seen, "data: two\n\n").await;
    let rest = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("the stream ends")
        .expect("body")
        .to_bytes();
    assert!(rest.is_empty(), "{rest:?}");
}

/// An upstream whose `/upload` counts the bytes it receives and reports its first chunk on `first`.
async fn counting_upstream() -> (SocketAddr, oneshot::Receiver<()>, Arc<AtomicUsize>) {
    let (first, first_seen) = oneshot::channel::<()>();
    let first = Arc::new(Mutex::new(Some(first)));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let addr = start_upstream(move |req: Request<Incoming>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut first = first.lock().expect("lock").take();
        async move {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return response(StatusCode::BAD_REQUEST, empty());
                };
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    if let Some(first) = first.take() {
                        let _ = first.send(());
                    }
                }
            }
            response(StatusCode::OK, full(total.to_string()))
        }
    })
    .await;
    (addr, first_seen, calls)
}

#[tokio::test]
async fn a_body_over_the_site_limit_streams_through_when_bodies_are_not_read() {
    let (upstream, first_seen, _calls) = counting_upstream().await;
    let gateway = Gateway::start(upstream, "read_body = false\nbody_limit = 1024").await;

    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 32;
    let (tx, body) = channel_body();
    let req = gateway
        .authed("POST", "/upload")
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let exchange = tokio::spawn(send(req));
    tx.send(Bytes::from(vec![b'x'; CHUNK]))
        .await
        .expect("send the first chunk");
    // The upstream has the first chunk while the client still holds the other 31: nothing buffered the body.
    tokio::time::timeout(PATIENCE, first_seen)
        .await
        .expect("the first chunk reaches the upstream before the body ends")
        .expect("reported");
    for _ in 1..CHUNKS {
        tx.send(Bytes::from(vec![b'x'; CHUNK]))
            .await
            .expect("send a chunk");
    }
    drop(tx);
    let reply = exchange.await.expect("the exchange");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), (CHUNK * CHUNKS).to_string());
}

#[tokio::test]
async fn the_same_body_is_refused_with_413_where_bodies_are_read() {
    let (upstream, _first_seen, calls) = counting_upstream().await;
    let gateway = Gateway::start(upstream, "body_limit = 1024").await;

    let req = gateway
        .authed("POST", "/upload")
        .header("content-type", "application/json")
        .body(full(format!("{{\"pad\":\"{}\"}}", "x".repeat(4096))))
        .expect("request");
    let reply = send(req).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["reason"], "payload_too_large");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn mirrored_mcp_headers_that_disagree_with_the_body_are_400_and_never_reach_the_upstream() {
    let (upstream, calls) = echo_upstream().await;
    let gateway = Gateway::start(
        upstream,
        r#"param_headers = { "Mcp-Param-CloudId" = "/params/arguments/cloudId" }"#,
    )
    .await;
    let call = |cloud_id: Option<&str>| {
        let mut arguments = json!({"query": "q"});
        if let Some(site) = cloud_id {
            arguments["cloudId"] = json!(site);
        }
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "list_sites", "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}})
        .to_string()
    };
    let post = |body: String, headers: &[(&str, &str)]| {
        let mut req = gateway
            .authed("POST", "/echo")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(full(body)).expect("request")
    };

    // Agreeing headers pass, and reach the upstream as they were sent.
    let reply = send(post(call(None), &[("mcp-name", "list_sites")])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json()["headers"].clone();
    assert_eq!(seen["mcp-name"], "list_sites");
    assert_eq!(seen["mcp-method"], "tools/call");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    for (case, body, headers) in [
        (
            "Mcp-Name differs",
            call(None),
            vec![("mcp-name", "delete_all")],
        ),
        ("Mcp-Name missing", call(None), vec![]),
        (
            "the site header names another site than the body",
            call(Some("site-a")),
            vec![("mcp-name", "list_sites"), ("mcp-param-cloudid", "site-b")],
        ),
    ] {
        let reply = send(post(body, &headers)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            reply.text()
        );
        let answer = reply.json();
        assert_eq!(answer["jsonrpc"], "2.0", "{case}");
        assert_eq!(answer["id"], 5, "{case}");
        assert_eq!(answer["error"]["code"], -32020, "{case}");
        assert_eq!(
            answer["error"]["data"]["reason"], "header_mismatch",
            "{case}"
        );
        assert!(reply.headers.get("www-authenticate").is_none(), "{case}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{case}: reached the upstream"
        );
    }
}

#[tokio::test]
async fn origins_are_checked_before_the_credential_and_cors_follows_the_same_list() {
    let (upstream, calls) = echo_upstream().await;
    let gateway = Gateway::start_with(
        upstream,
        r#"param_headers = { "Mcp-Param-CloudId" = "/params/arguments/cloudId" }"#,
        "cors = true\n[origins]\nallowed = [\"https://app.example.com\"]\n",
    )
    .await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(gateway.url("/mcp"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,mcp-method,mcp-name,mcp-param-cloudid",
            )
            .body(empty())
            .expect("request")
    };

    // An allowed origin: the preflight names it and the MCP headers; the request itself passes with the key.
    let reply = send(preflight("https://app.example.com")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let header = |reply: &support::Reply, name: &str| {
        reply
            .headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_ascii_lowercase())
    };
    assert_eq!(
        header(&reply, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let allowed = header(&reply, "access-control-allow-headers").expect("allowed headers");
    for name in [
        "authorization",
        "mcp-method",
        "mcp-name",
        "mcp-param-cloudid",
        "mcp-protocol-version",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    let req = gateway
        .authed("GET", "/echo")
        .header("origin", "https://app.example.com")
        .body(empty())
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        header(&reply, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another origin: no CORS headers on its preflight, and 403 for the request, with a valid key or without.
    let reply = send(preflight("https://evil.example")).await;
    assert_eq!(header(&reply, "access-control-allow-origin"), None);
    for authed in [true, false] {
        let req = if authed {
            gateway.authed("GET", "/echo")
        } else {
            Request::builder().method("GET").uri(gateway.url("/echo"))
        };
        let reply = send(
            req.header("origin", "https://evil.example")
                .body(empty())
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["error"]["data"]["reason"], "origin_not_allowed");
        assert_eq!(answer["id"], Value::Null);
        assert!(reply.headers.get("www-authenticate").is_none());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "refused requests reached the upstream"
    );
}

#[tokio::test]
async fn the_scope_hierarchy_and_challenge_scopes_of_the_file_decide_at_the_gateway() {
    use portcullis_test_support::{MockAuthServer, jwt};

    let key = jwt::rsa1("k1");
    let auth = MockAuthServer::with_keys(&[&key]).await;
    let (upstream, calls) = echo_upstream().await;
    let gateway = Gateway::start_with(
        upstream,
        "",
        &format!(
            "[[issuer]]\nissuer = \"{}\"\njwks_uri = \"{}\"\n\
             [scopes.routes]\n\"/echo\" = [\"mcp:read\"]\n\
             [scopes.implies]\n\"mcp:write\" = [\"mcp:read\"]\n\"mcp:admin\" = [\"mcp:write\"]\n",
            auth.issuer(),
            auth.jwks_uri()
        ),
    )
    .await;
    let token = |scope: &str| {
        let now = jwt::now();
        jwt::sign(
            &key,
            jwt::header(&key),
            json!({"iss": auth.issuer(), "sub": "user-1", "aud": "http://127.0.0.1/mcp",
                "scope": scope, "iat": now, "exp": now + 300}),
        )
    };
    let get = |scope: &str| {
        Request::builder()
            .method("GET")
            .uri(gateway.url("/echo"))
            .header("authorization", format!("Bearer {}", token(scope)))
            .body(empty())
            .expect("request")
    };
    for (scope, passes) in [
        ("mcp:read", true),
        ("mcp:write", true),
        ("mcp:admin", true),
        ("other", false),
    ] {
        let before = calls.load(Ordering::SeqCst);
        let reply = send(get(scope)).await;
        assert_eq!(
            reply.status == StatusCode::OK,
            passes,
            "{scope}: {}",
            reply.text()
        );
        assert_eq!(
            calls.load(Ordering::SeqCst) - before,
            usize::from(passes),
            "{scope}"
        );
        if !passes {
            assert_eq!(reply.status, StatusCode::FORBIDDEN);
            let challenge = reply.headers["www-authenticate"].to_str().expect("ascii");
            // The scope the route needs, not the broader ones that would also do.
            assert!(challenge.contains("scope=\"mcp:read\""), "{challenge}");
            assert!(!challenge.contains("mcp:admin"), "{challenge}");
        }
    }
}

#[tokio::test]
async fn a_post_that_is_not_one_jsonrpc_message_never_reaches_the_upstream() {
    let (upstream, calls) = echo_upstream().await;
    let gateway = Gateway::start(upstream, "").await;
    for body in ["", "   ", "null", "\"x\"", "7", "{\"jsonrpc\":\"2.0\"} {}"] {
        let req = gateway
            .authed("POST", "/echo")
            .header("content-type", "application/json")
            .body(full(body))
            .expect("request");
        let reply = send(req).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            reply.text()
        );
        let answer = reply.json();
        assert_eq!(answer["error"]["code"], -32700, "{body:?}");
        assert_eq!(answer["error"]["data"]["reason"], "parse_error", "{body:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_upstream_that_is_down_is_answered_502_at_once() {
    let gateway = Gateway::start(closed_port().await, "").await;

    let started = Instant::now();
    let req = gateway
        .authed("POST", "/mcp")
        .header("content-type", "application/json")
        .body(full(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#))
        .expect("request");
    let reply = tokio::time::timeout(Duration::from_secs(5), send(req))
        .await
        .expect("answered within 5 seconds, not left hanging");
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(reply.json()["error"], "bad_gateway");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The gateway's own answers do not need the upstream.
    let health = send(
        Request::get(gateway.url("/health"))
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    gateway
        .stderr_contains("the upstream could not be reached")
        .await;
}

/// An upstream whose `/echo` answers with the headers, path and query it received, sets a session id, and
/// names a hop-by-hop header of its own.
async fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let addr = start_upstream(move |req: Request<Incoming>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut headers = Map::new();
            for (name, value) in req.headers() {
                headers.insert(
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("").to_owned()),
                );
            }
            let echo = json!({
                "path": req.uri().path(),
                "query": req.uri().query(),
                "headers": headers,
            });
            let mut response = response(StatusCode::OK, full(echo.to_string()));
            let headers = response.headers_mut();
            headers.insert(
                "mcp-session-id",
                http::HeaderValue::from_static("from-upstream"),
            );
            headers.insert(
                "connection",
                http::HeaderValue::from_static("x-upstream-hop"),
            );
            headers.insert("x-upstream-hop", http::HeaderValue::from_static("1"));
            response
        }
    })
    .await;
    (addr, calls)
}

#[tokio::test]
async fn authorization_is_not_forwarded_and_spoofed_identity_headers_are_stripped() {
    let (upstream, _calls) = echo_upstream().await;
    let gateway = Gateway::start(upstream, "").await;

    let req = gateway
        .authed("GET", "/echo?q=secret-query")
        .header("x-portcullis-account-id", "attacker")
        .header("X-Portcullis-Site-Id", "site-evil")
        .header("x_portcullis_scopes", "admin")
        .header("x-portcullis-extra", "1")
        .header("proxy-authorization", "Basic YTpi")
        .body(empty())
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let echo = reply.json();
    let seen = echo["headers"].as_object().expect("headers");
    assert!(!seen.contains_key("authorization"), "{seen:?}");
    assert!(!seen.contains_key("proxy-authorization"), "{seen:?}");
    assert_eq!(seen["x-portcullis-account-id"], "svc-test");
    assert_eq!(seen["x-portcullis-auth-method"], "service_account_key");
    for spoofed in [
        "x-portcullis-site-id",
        "x_portcullis_scopes",
        "x-portcullis-extra",
    ] {
        assert!(!seen.contains_key(spoofed), "{spoofed}: {seen:?}");
    }
    assert_eq!(seen["host"], upstream.to_string());
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "q=secret-query");

    // The request was logged, without the token or the query.
    let stderr = gateway.stderr_contains("\"path\":\"/echo\"").await;
    assert!(!stderr.contains(KEY), "{stderr}");
    assert!(!stderr.contains("secret-query"), "{stderr}");
}

#[tokio::test]
async fn the_session_header_passes_both_ways_and_hop_by_hop_headers_do_not() {
    let (upstream, _calls) = echo_upstream().await;
    let gateway = Gateway::start(upstream, "").await;

    // The upstream starts the session; the gateway binds it to this caller.
    let start = gateway
        .authed("POST", "/echo")
        .header("content-type", "application/json")
        .body(full(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#))
        .expect("request");
    let reply = send(start).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("mcp-session-id"), Some("from-upstream"));

    // A session id the upstream never gave out is refused before it is forwarded.
    let unknown = gateway
        .authed("POST", "/echo")
        .header("content-type", "application/json")
        .header("mcp-session-id", "from-client")
        .body(full(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#))
        .expect("request");
    assert_eq!(send(unknown).await.status, StatusCode::NOT_FOUND);

    let req = gateway
        .authed("POST", "/echo")
        .header("content-type", "application/json")
        .header("mcp-session-id", "from-upstream")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "1")
        .body(full(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#))
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let echo = reply.json();
    let seen = echo["headers"].as_object().expect("headers");
    assert_eq!(seen["mcp-session-id"], "from-upstream");
    assert!(!seen.contains_key("x-client-hop"), "{seen:?}");
    assert_eq!(reply.header("mcp-session-id"), Some("from-upstream"));
    assert_eq!(reply.header("x-upstream-hop"), None);
}

#[tokio::test]
async fn metadata_and_health_are_public_and_everything_else_needs_a_credential() {
    let (upstream, calls) = echo_upstream().await;
    let gateway = Gateway::start(upstream, "").await;

    let metadata = send(
        Request::get(gateway.url("/.well-known/oauth-protected-resource/mcp"))
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.json()["resource"], "http://127.0.0.1/mcp");

    let health = send(
        Request::get(gateway.url("/health"))
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok")
    );

    let anonymous = send(
        Request::get(gateway.url("/echo"))
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource/mcp\""
        )
    );

    let wrong = send(
        Request::get(gateway.url("/echo"))
            .header("authorization", "Bearer pcsa_not_the_key")
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["reason"], "invalid_token");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the upstream saw a refused request"
    );
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits() {
    let (upstream, release) = sse_upstream().await;
    let mut gateway = Gateway::start(upstream, "").await;

    let req = gateway
        .authed("GET", "/sse")
        .body(empty())
        .expect("request");
    let response = tokio::time::timeout(PATIENCE, client().request(req))
        .await
        .expect("in time")
        .expect("answered");
    let mut body = response.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "data: one\n\n").await;

    terminate(gateway.process.pid());
    gateway.stderr_contains("shutting down").await;
    // No new connections once shutting down.
    let addr = gateway.base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The open stream still finishes.
    release.send(()).expect("the upstream waits");
    read_until(&mut body, &mut seen, "data: two\n\n").await;
    let status = gateway.process.wait().await;
    assert!(status.success(), "{status:?}");
}
