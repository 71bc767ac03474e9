//! The token layer's log lines carry the outcome and never the token. Alone in its test binary, so that no
//! other test's threads share tracing's callsite cache with it.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_core::Challenge;
use portcullis_credential::ExtractCredentialLayer;
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt::{header, now, rsa1, sign};
use portcullis_test_support::{LogCapture, with_authorization};
use portcullis_token::{Issuer, TokenValidator, ValidateTokenLayer};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

const RESOURCE: &str = "https://mcp.example.com/mcp";

#[tokio::test(flavor = "current_thread")]
async fn log_lines_never_contain_the_token() {
    let captured = LogCapture::default();
    let _guard = captured.set_default();

    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = TokenValidator::builder(RESOURCE)
        .add_issuer(Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"))
        .build()
        .expect("validator");
    let token = sign(
        &key,
        header(&key),
        json!({"iss": server.issuer(), "sub": "user-1", "aud": RESOURCE, "exp": now() + 600}),
    );
    let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource")
        .expect("valid");
    let service = ServiceBuilder::new()
        .layer(ExtractCredentialLayer::new(challenge.clone()))
        .layer(ValidateTokenLayer::new(validator, challenge))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let mut statuses = Vec::new();
    for value in [format!("Bearer {token}"), format!("Bearer {token}x")] {
        let response = service
            .clone()
            .oneshot(with_authorization("/mcp?q=secret-query", &value))
            .await;
        statuses.push(response.expect("infallible").status());
    }
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);

    // Opaque tokens travel to the introspection endpoint: the HTTP client's own TRACE lines must not show them.
    server.set_introspection(
        200,
        json!({"active": true, "sub": "user-2", "aud": RESOURCE, "exp": now() + 600}),
    );
    let introspecting = TokenValidator::builder(RESOURCE)
        .with_introspection(
            portcullis_token::Introspection::new(
                &server.introspection_uri(),
                "rs-client",
                portcullis_core::Secret::new("client-secret-xyz"),
            )
            .expect("introspection"),
        )
        .build()
        .expect("validator");
    let credential = portcullis_core::Credential::Bearer(portcullis_core::BearerToken::new(
        portcullis_core::Secret::new("opaque-secret-123"),
        portcullis_core::TokenShape::Opaque,
    ));
    assert!(introspecting.validate(&credential).await.is_ok());

    let logs = captured.text();
    assert!(logs.contains("outcome=\"valid\""), "{logs}");
    assert!(logs.contains("outcome=\"rejected\""), "{logs}");
    let signature = token.rsplit('.').next().expect("signature");
    let payload = token.split('.').nth(1).expect("payload");
    for secret in [
        signature,
        payload,
        "secret-query",
        "opaque-secret-123",
        "client-secret-xyz",
        "cnMtY2xpZW50",
    ] {
        assert!(
            !logs.contains(secret),
            "the token leaked into the logs:\n{logs}"
        );
    }
}
