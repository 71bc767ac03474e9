//! The harness itself: the mock server routes, counts, records and changes its answers as documented; servers stop
//! when dropped; the log capture and the raw client read what was written and sent.

use std::time::{Duration, Instant};

use http::{Method, Response};
use http_body_util::Full;
use portcullis_test_support::{
    Answer, LogCapture, LoopbackServer, MockServer, RawResponse, raw_request, send_raw,
};
use serde_json::json;
use tokio::net::TcpStream;

async fn send(
    server: &MockServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    send_raw(server.addr(), &raw_request(method, path, headers, body)).await
}

/// Waits until nothing accepts connections on `addr` any more.
async fn assert_stops_listening(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn routes_by_path_and_method_and_counts_the_rest_as_other_hits() {
    let server = MockServer::start().await;
    server.route(Method::GET, "/a", Answer::json(200, &json!({"a": 1})));
    server.route(Method::POST, "/b", Answer::text(201, "made"));
    server.route_any("/c", Answer::new(202, "any"));

    let r = send(&server, "GET", "/a?x=1", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"a": 1}));
    let r = send(&server, "POST", "/b", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (201, "made"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    for method in ["GET", "PUT", "DELETE"] {
        let r = send(&server, method, "/c", &[], b"").await;
        assert_eq!((r.status, r.body.as_str()), (202, "any"), "{method}");
        assert_eq!(r.header("content-type"), None, "{method}");
    }
    assert_eq!(
        (server.hits("/a"), server.hits("/b"), server.hits("/c")),
        (1, 1, 3)
    );
    assert_eq!(server.other_hits(), 0);

    // A known path with another method, and an unknown path.
    let r = send(&server, "POST", "/a", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (405, "method not allowed"));
    let r = send(&server, "GET", "/nope", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (404, "not found"));
    assert_eq!(server.other_hits(), 2);
    assert_eq!(server.hits("/a"), 1);

    server.fallback(Answer::new(200, "{}"));
    let r = send(&server, "GET", "/elsewhere", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(server.other_hits(), 3);
}

#[tokio::test]
async fn records_the_last_request_per_path_and_overall() {
    let server = MockServer::start().await;
    server.route(Method::POST, "/form", Answer::new(200, ""));
    server.route_any("/other", Answer::new(200, ""));
    assert!(server.last_request("/form").is_none());
    assert!(server.last_received().is_none());

    send(
        &server,
        "POST",
        "/form?q=1&r=2",
        &[("Authorization", "Basic Y2xpZW50OnNlY3JldA==")],
        b"token=abc%2Bdef&hint=x",
    )
    .await;
    let seen = server.last_request("/form").expect("recorded");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/form");
    assert_eq!(seen.query.as_deref(), Some("q=1&r=2"));
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Basic Y2xpZW50OnNlY3JldA==")
    );
    assert_eq!(
        seen.form(),
        [
            ("token".to_owned(), "abc+def".to_owned()),
            ("hint".to_owned(), "x".to_owned())
        ]
    );

    // Another path: the overall last request changes, the one of `/form` does not; no header is no header.
    send(&server, "GET", "/other", &[], b"").await;
    let last = server.last_received().expect("recorded");
    assert_eq!(last.path, "/other");
    assert_eq!(last.header("authorization"), None);
    assert_eq!(
        server.last_request("/form").expect("kept").body,
        "token=abc%2Bdef&hint=x"
    );
}

#[tokio::test]
async fn answers_change_in_place_while_the_server_runs() {
    let server = MockServer::start().await;
    server.route(
        Method::GET,
        "/jwks",
        Answer::text(503, "down").with_header("x-one", "1"),
    );
    assert_eq!(send(&server, "GET", "/jwks", &[], b"").await.status, 503);

    server.update("/jwks", |a| {
        a.status = 200;
        a.set_json(&json!({"keys": []}));
        a.set_header("cache-control", Some("max-age=60"));
    });
    let r = send(&server, "GET", "/jwks", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"keys": []}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.header("x-one"), Some("1"));

    server.update("/jwks", |a| a.set_header("cache-control", None));
    assert_eq!(
        send(&server, "GET", "/jwks", &[], b"")
            .await
            .header("cache-control"),
        None
    );

    // `answer` replaces the whole answer; `update_all` reaches the fallback too.
    server.answer("/jwks", Answer::new(204, ""));
    let r = send(&server, "GET", "/jwks", &[], b"").await;
    assert_eq!((r.status, r.header("x-one")), (204, None));
    server.update_all(|a| a.status = 500);
    assert_eq!(send(&server, "GET", "/jwks", &[], b"").await.status, 500);
    assert_eq!(send(&server, "GET", "/nope", &[], b"").await.status, 500);
    assert_eq!(server.hits("/jwks"), 5);
    assert_eq!(server.other_hits(), 1);
}

#[tokio::test]
async fn a_delayed_answer_is_counted_on_arrival_and_read_after_the_delay() {
    let server = MockServer::start().await;
    server.route_any(
        "/slow",
        Answer::new(200, "before").with_delay(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let addr = server.addr();
    let pending =
        tokio::spawn(async move { send_raw(addr, &raw_request("GET", "/slow", &[], b"")).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.hits("/slow") == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.update("/slow", |a| a.set_body("after"));
    let r = pending.await.expect("join");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.body, "after");
}

#[tokio::test]
async fn bodies_can_be_made_from_the_request() {
    let server = MockServer::start().await;
    server.route_any(
        "/echo",
        Answer::from_fn(200, |req| {
            format!("q={}", req.query.as_deref().unwrap_or("-")).into()
        })
        .with_content_type("text/plain"),
    );
    assert_eq!(
        send(&server, "GET", "/echo?a=b", &[], b"").await.body,
        "q=a=b"
    );
    let r = send(&server, "GET", "/echo", &[], b"").await;
    assert_eq!(r.body, "q=-");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // A status change keeps the made body.
    server.update("/echo", |a| a.status = 500);
    let r = send(&server, "GET", "/echo?x", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (500, "q=x"));
}

#[tokio::test]
async fn servers_stop_when_dropped_unless_detached() {
    let mock = MockServer::start().await;
    mock.route_any("/", Answer::new(200, "ok"));
    let addr = mock.addr();
    assert_eq!(send(&mock, "GET", "/", &[], b"").await.status, 200);
    drop(mock);
    assert_stops_listening(addr).await;

    let hello = || async { Response::new(Full::new(bytes::Bytes::from_static(b"hello"))) };
    let kept = LoopbackServer::start_fn(move |_req| hello()).await;
    assert_eq!(kept.url("/x"), format!("http://{}/x", kept.addr()));
    let addr = kept.detach();
    let r = send_raw(addr, &raw_request("GET", "/", &[], b"")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));

    let dropped = LoopbackServer::start_fn(move |_req| hello()).await;
    let addr = dropped.addr();
    drop(dropped);
    assert_stops_listening(addr).await;
}

#[tokio::test]
async fn raw_requests_carry_what_they_are_given() {
    let server = MockServer::start().await;
    server.route(Method::PUT, "/put", Answer::new(200, ""));
    let request = raw_request("PUT", "/put", &[("X-Test", "yes")], b"abc");
    let text = String::from_utf8(request.clone()).expect("ASCII");
    assert!(text.starts_with("PUT /put HTTP/1.1\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Length: 3\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\nX-Test: yes\r\n\r\nabc"), "{text}");
    let r = send_raw(server.addr(), &request).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("0"));
    let seen = server.last_request("/put").expect("recorded");
    assert_eq!(seen.header("x-test").as_deref(), Some("yes"));
    assert_eq!(seen.body, "abc");
}

#[test]
fn the_log_capture_keeps_what_the_subscriber_writes() {
    let logs = LogCapture::default();
    {
        let _guard = logs.set_default();
        tracing::trace!(path = "/mcp", "first");
        tracing::info!(outcome = "valid", "second");
    }
    tracing::info!("after the guard");
    let text = logs.text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("TRACE"), "{text}");
    assert!(text.contains("path=\"/mcp\""), "{text}");
    assert!(text.contains("outcome=\"valid\""), "{text}");
    assert!(!text.contains("after the guard"), "{text}");
    assert!(!text.contains('\u{1b}'), "no ANSI colours: {text}");
}
