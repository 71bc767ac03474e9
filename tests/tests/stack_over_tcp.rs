//! Credential extraction and token validation together behind a real hyper server, with API tokens from a file
//! store: the principal reaches the service, bad credentials are answered before it, over real TCP.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_core::{Challenge, Principal};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_test_support::raw_request;
use portcullis_tests::{Expect, TestServer, send_raw};
use portcullis_token::{FileTokenStore, TokenValidator, ValidateTokenLayer, token_digest};
use tower::ServiceBuilder;

const META: &str = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp";

async fn server() -> (TestServer, Arc<AtomicUsize>) {
    let store = FileTokenStore::from_toml(&format!(
        r#"
        [[personal]]
        email = "ada@example.com"
        account_id = "acc-ada"
        organization = "org-a"
        token_sha256 = "{}"

        [[service_account]]
        account_id = "svc-build"
        organization = "org-b"
        key_sha256 = "{}"
        "#,
        token_digest("pat-ada-123"),
        token_digest("pcsa_build_456"),
    ))
    .expect("store");
    let validator = TokenValidator::builder("http://127.0.0.1/mcp")
        .with_api_token_verifier(store)
        .build()
        .expect("validator");
    let challenge = Challenge::new(META).expect("valid");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = ServiceBuilder::new()
        .layer(
            ExtractCredentialLayer::new(challenge.clone())
                .with_service_account_prefix("pcsa_")
                .expect("prefix"),
        )
        .layer(ValidateTokenLayer::new(validator, challenge))
        .service_fn(move |req: Request<Incoming>| {
            counted.fetch_add(1, Ordering::SeqCst);
            let who = req.extensions().get::<Principal>().map(|p| {
                format!(
                    "{} {} {}",
                    p.method(),
                    p.subject(),
                    p.organization().map_or("-", |o| o.as_str())
                )
            });
            async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                    who.unwrap_or_default(),
                ))))
            }
        });
    (TestServer::start(service).await, calls)
}

fn request(authorization: &str) -> Vec<u8> {
    raw_request("POST", "/mcp", &[("Authorization", authorization)], b"")
}

#[tokio::test]
async fn api_tokens_become_principals_over_the_wire() {
    let (server, calls) = server().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("ada@example.com:pat-ada-123");
    let response = send_raw(server.addr(), &request(&format!("Basic {basic}"))).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "personal_api_token acc-ada org-a");

    let response = send_raw(server.addr(), &request("Bearer pcsa_build_456")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "service_account_key svc-build org-b");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_api_tokens_are_401_and_never_reach_the_service() {
    let (server, calls) = server().await;
    let wrong_email =
        base64::engine::general_purpose::STANDARD.encode("bob@example.com:pat-ada-123");
    let wrong_token =
        base64::engine::general_purpose::STANDARD.encode("ada@example.com:pat-ada-124");
    let a = send_raw(server.addr(), &request(&format!("Basic {wrong_email}"))).await;
    let b = send_raw(server.addr(), &request(&format!("Basic {wrong_token}"))).await;
    let c = send_raw(server.addr(), &request("Bearer pcsa_unknown")).await;
    for response in [&a, &b, &c] {
        Expect::rejected(401, "invalid_token")
            .bearer(Some("invalid_token"))
            .check(response, META);
        let challenge = response.header("www-authenticate").expect("challenge");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
    }
    assert_eq!(
        a.body, b.body,
        "an unknown email and a wrong token get the same answer"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
