//! Opaque tokens through RFC 7662 introspection against a real endpoint, with every call counted.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::{AuthMethod, BearerToken, Credential, RejectionKind, Secret, TokenShape};
use portcullis_lookup::HttpFetcher;
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt::now;
use portcullis_token::{Introspection, TokenValidator};
use serde_json::json;

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn opaque(token: &str) -> Credential {
    let shape = TokenShape::classify(token, None);
    assert_eq!(shape, TokenShape::Opaque);
    Credential::Bearer(BearerToken::new(Secret::new(token), shape))
}

fn validator(server: &MockAuthServer) -> TokenValidator {
    let introspection = Introspection::new(
        &server.introspection_uri(),
        "rs client",
        Secret::new("s3cret:&"),
    )
    .expect("introspection")
    .with_issuer(&server.issuer());
    TokenValidator::builder(RESOURCE)
        .with_introspection(introspection)
        .with_site_claim("sites")
        .with_fetcher(
            HttpFetcher::with_limits(Duration::from_millis(300), 64 * 1024).expect("client"),
        )
        .build()
        .expect("validator")
}

fn active() -> serde_json::Value {
    json!({
        "active": true,
        "iss": "ISSUER",
        "sub": "user-7",
        "client_id": "client-1",
        "aud": [RESOURCE, "https://other.example.com"],
        "scope": "mcp:read mcp:write",
        "exp": now() + 600,
        "sites": ["site-a"],
    })
}

fn active_for(server: &MockAuthServer) -> serde_json::Value {
    let mut body = active();
    body["iss"] = json!(server.issuer());
    body
}

#[tokio::test]
async fn an_active_token_becomes_a_principal_and_the_client_authenticates_with_basic() {
    let server = MockAuthServer::start().await;
    server.set_introspection(200, active_for(&server));
    let validator = validator(&server);

    let principal = validator
        .validate(&opaque("opaque-token-1"))
        .await
        .expect("active");
    assert_eq!(principal.method(), AuthMethod::OAuth);
    assert_eq!(principal.subject(), "user-7");
    assert_eq!(principal.client_id(), Some("client-1"));
    assert!(principal.scopes().contains("mcp:write"));
    assert_eq!(principal.site_grants().map(<[_]>::len), Some(1));

    let expected = format!("Basic {}", STANDARD.encode("rs+client:s3cret%3A%26"));
    assert_eq!(server.last_introspection_authorization(), Some(expected));
    let form = server.last_introspection_form();
    assert!(
        form.contains(&("token".to_owned(), "opaque-token-1".to_owned())),
        "{form:?}"
    );
    assert!(
        form.contains(&("token_type_hint".to_owned(), "access_token".to_owned())),
        "{form:?}"
    );

    validator
        .validate(&opaque("opaque-token-1"))
        .await
        .expect("cached");
    assert_eq!(
        server.introspection_hits(),
        1,
        "the second request is answered from the cache"
    );
}

#[tokio::test]
async fn inactive_tokens_are_401_and_remembered_briefly() {
    let server = MockAuthServer::start().await;
    server.set_introspection(200, json!({"active": false}));
    let validator = validator(&server);
    for _ in 0..3 {
        let rejection = validator
            .validate(&opaque("revoked"))
            .await
            .expect_err("inactive");
        assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    }
    assert_eq!(server.introspection_hits(), 1);
}

#[tokio::test]
async fn broken_introspection_answers_are_503_and_never_cached() {
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("missing active", 200, br#"{"sub":"x"}"#.to_vec()),
        ("active as a string", 200, br#"{"active":"true"}"#.to_vec()),
        ("active as a number", 200, br#"{"active":1}"#.to_vec()),
        ("garbage", 200, b"<html>oops</html>".to_vec()),
        ("server error", 500, br#"{"active":true}"#.to_vec()),
        (
            "unauthorized",
            401,
            br#"{"error":"invalid_client"}"#.to_vec(),
        ),
        (
            "duplicate active",
            200,
            br#"{"active":false,"active":true}"#.to_vec(),
        ),
    ];
    for (case, status, body) in cases {
        let server = MockAuthServer::start().await;
        server.set_introspection_raw(status, body);
        let validator = validator(&server);
        for attempt in 1..=2 {
            let rejection = validator.validate(&opaque("tok")).await.expect_err(case);
            assert_eq!(
                rejection.kind(),
                RejectionKind::TemporarilyUnavailable,
                "{case}"
            );
            assert_eq!(
                server.introspection_hits(),
                attempt,
                "{case}: failures must not be cached"
            );
        }
    }
}

#[tokio::test]
async fn a_slow_introspection_endpoint_is_503() {
    let server = MockAuthServer::start().await;
    server.set_introspection(200, active_for(&server));
    server.set_introspection_delay(Duration::from_secs(2));
    let validator = validator(&server);
    let rejection = validator
        .validate(&opaque("tok"))
        .await
        .expect_err("timeout");
    assert_eq!(rejection.kind(), RejectionKind::TemporarilyUnavailable);
}

#[tokio::test]
async fn answers_for_another_audience_or_issuer_or_already_expired_are_401() {
    let server = MockAuthServer::start().await;
    let validator = validator(&server);
    let mut wrong_aud = active_for(&server);
    wrong_aud["aud"] = json!("https://other.example.com");
    let mut no_aud = active_for(&server);
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut wrong_iss = active_for(&server);
    wrong_iss["iss"] = json!("https://evil.example.com");
    let mut expired = active_for(&server);
    expired["exp"] = json!(now() - 3600);
    let cases = [
        ("wrong audience", wrong_aud, RejectionKind::WrongAudience),
        ("no audience", no_aud, RejectionKind::WrongAudience),
        ("wrong issuer", wrong_iss, RejectionKind::InvalidToken),
        ("expired", expired, RejectionKind::ExpiredToken),
    ];
    for (i, (case, body, expected)) in cases.into_iter().enumerate() {
        server.set_introspection(200, body);
        let rejection = validator
            .validate(&opaque(&format!("tok-{i}")))
            .await
            .expect_err(case);
        assert_eq!(rejection.kind(), expected, "{case}");
    }
}

#[tokio::test]
async fn positive_answers_are_not_cached_past_exp() {
    let server = MockAuthServer::start().await;
    let mut body = active_for(&server);
    // Two seconds, not one: the clock may tick between writing the answer and validating it.
    body["exp"] = json!(now() + 2);
    server.set_introspection(200, body);
    let validator = TokenValidator::builder(RESOURCE)
        .with_introspection(
            Introspection::new(&server.introspection_uri(), "rs", Secret::new("secret"))
                .expect("introspection"),
        )
        .with_leeway(Duration::ZERO)
        .build()
        .expect("validator");
    validator
        .validate(&opaque("short-lived"))
        .await
        .expect("active");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    server.set_introspection(200, json!({"active": false}));
    let rejection = validator
        .validate(&opaque("short-lived"))
        .await
        .expect_err("expired");
    assert!(
        matches!(
            rejection.kind(),
            RejectionKind::InvalidToken | RejectionKind::ExpiredToken
        ),
        "{rejection:?}"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_one_opaque_token_introspect_once() {
    let server = MockAuthServer::start().await;
    server.set_introspection(200, active_for(&server));
    server.set_introspection_delay(Duration::from_millis(50));
    let validator = validator(&server);
    let credential = Arc::new(opaque("shared-opaque"));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let validator = validator.clone();
        let credential = Arc::clone(&credential);
        tasks.push(tokio::spawn(async move {
            validator.validate(&credential).await.is_ok()
        }));
    }
    for task in tasks {
        assert!(task.await.expect("join"));
    }
    assert_eq!(server.introspection_hits(), 1);
}

#[tokio::test]
async fn without_introspection_opaque_tokens_are_401_with_no_call() {
    let server = MockAuthServer::start().await;
    let validator = TokenValidator::builder(RESOURCE)
        .add_issuer(
            portcullis_token::Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri())
                .expect("issuer"),
        )
        .build()
        .expect("validator");
    let rejection = validator
        .validate(&opaque("opaque"))
        .await
        .expect_err("no introspection");
    assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    assert_eq!(server.introspection_hits() + server.jwks_hits(), 0);
}
