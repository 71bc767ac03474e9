//! `ExtractCredentialLayer` behind a real hyper server: what arrives over TCP, including bytes that no client
//! library would send, is answered cleanly and never reaches the inner service unless it is a credential.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_core::{Challenge, Credential};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_tests::{Expect, TestServer, send_raw};
use tower::ServiceBuilder;

const META: &str = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp";
/// Refused before it is read as a credential: 400, `invalid_request`.
const INVALID_REQUEST: Expect<'static> = Expect::status(400).bearer(Some("invalid_request"));

async fn server() -> (TestServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = ServiceBuilder::new()
        .layer(ExtractCredentialLayer::new(
            Challenge::new(META).expect("valid"),
        ))
        .service_fn(move |req: Request<Incoming>| {
            counted.fetch_add(1, Ordering::SeqCst);
            let kind = req
                .extensions()
                .get::<Credential>()
                .map(|c| c.kind().as_str());
            let text = format!("credential={}", kind.unwrap_or("none"));
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text)))) }
        });
    (TestServer::start(service).await, calls)
}

fn request(extra_headers: &[u8]) -> Vec<u8> {
    let mut raw =
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n"
            .to_vec();
    raw.extend_from_slice(extra_headers);
    raw.extend_from_slice(b"\r\n");
    raw
}

#[tokio::test]
async fn a_valid_credential_crosses_the_wire() {
    let (server, calls) = server().await;
    let response = send_raw(
        server.addr(),
        &request(b"Authorization: Bearer abc.def.ghi\r\n"),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "credential=jwt");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_credential_is_challenged_over_the_wire() {
    let (server, calls) = server().await;
    let response = send_raw(server.addr(), &request(b"")).await;
    Expect::rejected(401, "missing_credential")
        .bearer(None)
        .check(&response, META);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn obs_text_in_the_header_is_rejected_as_malformed() {
    let (server, calls) = server().await;
    let response = send_raw(
        server.addr(),
        &request(b"Authorization: Bearer abc\xc3\xa9def\r\n"),
    )
    .await;
    Expect::status(401)
        .bearer(Some("invalid_token"))
        .check(&response, META);
    assert!(!response.body.contains("abc"), "{}", response.body);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn two_authorization_headers_on_the_wire_are_refused() {
    let (server, calls) = server().await;
    let response = send_raw(
        server.addr(),
        &request(b"Authorization: Bearer first\r\nauthorization: Bearer second\r\n"),
    )
    .await;
    INVALID_REQUEST.check(&response, META);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oversized_header_on_the_wire_is_refused() {
    let (server, calls) = server().await;
    let mut header = b"Authorization: Bearer ".to_vec();
    header.extend(std::iter::repeat_n(b'a', 20_000));
    header.extend_from_slice(b"\r\n");
    let response = send_raw(server.addr(), &request(&header)).await;
    INVALID_REQUEST.check(&response, META);
    assert!(
        response.body.contains("credential_too_large"),
        "{}",
        response.body
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn control_bytes_line_folding_and_bare_newlines_never_reach_the_service() {
    let (server, calls) = server().await;
    let cases: [&[u8]; 5] = [
        b"Authorization: Bearer abc\x01def\r\n",
        b"Authorization: Bearer abc\x00def\r\n",
        b"Authorization: Bearer abc\r\n def\r\n",
        b"Authorization: Bearer abc\rX-Injected: 1\r\n",
        b"Authorization: Bearer abc\x7fdef\r\n",
    ];
    for case in cases {
        let response = send_raw(server.addr(), &request(case)).await;
        // Either hyper refuses the request line-up itself (400), or the layer does (400/401): never a pass.
        assert!(
            matches!(response.status, 400 | 401),
            "{}: {response:?}",
            String::from_utf8_lossy(case)
        );
        assert!(!response.body.contains("abc"), "{}", response.body);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
