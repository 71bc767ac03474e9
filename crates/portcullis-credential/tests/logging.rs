//! Log lines carry the credential kind, the outcome and the path: never the token, the header, the query string
//! or decoded Basic credentials.

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_core::Challenge;
use portcullis_credential::ExtractCredentialLayer;
use portcullis_test_support::{LogCapture, with_authorization};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn log_lines_never_contain_tokens_headers_queries_or_basic_credentials() {
    let captured = LogCapture::default();
    let _guard = captured.set_default();

    let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource")
        .expect("valid");
    let service = ServiceBuilder::new()
        .layer(ExtractCredentialLayer::new(challenge))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });

    let basic = STANDARD.encode("ada@example.com:personal-secret-1");
    let bad_basic = STANDARD.encode("ada@example.com:personal-secret-2\u{0}");
    let values = [
        "Bearer bearer-secret-1".to_owned(),
        "Bearer bearer-secret-2 trailing".to_owned(),
        format!("Basic {basic}"),
        format!("Basic {bad_basic}"),
        "Digest digest-secret-3".to_owned(),
    ];
    let mut statuses = Vec::new();
    for value in &values {
        let response = service
            .clone()
            .oneshot(with_authorization("/mcp/path?query-secret=4", value))
            .await;
        statuses.push(response.expect("infallible").status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED
        ]
    );

    let logs = captured.text();
    assert_eq!(
        logs.lines().count(),
        values.len(),
        "one event per request:\n{logs}"
    );
    assert!(logs.contains("outcome=\"extracted\""), "{logs}");
    assert!(logs.contains("reason=\"malformed_credential\""), "{logs}");
    assert!(logs.contains("path=\"/mcp/path\""), "{logs}");
    for secret in [
        "bearer-secret",
        "personal-secret",
        "digest-secret",
        "ada@example.com",
        "query-secret",
        basic.as_str(),
        bad_basic.as_str(),
        "Bearer ",
        "Basic ",
    ] {
        assert!(!logs.contains(secret), "log lines leak {secret:?}:\n{logs}");
    }
}
