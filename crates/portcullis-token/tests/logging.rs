//! The token layer's log lines carry the outcome and never the token. Alone in its test binary, so that no
//! other test's threads share tracing's callsite cache with it.

mod support;

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_core::Challenge;
use portcullis_credential::ExtractCredentialLayer;
use portcullis_token::{Issuer, TokenValidator, ValidateTokenLayer};
use serde_json::json;
use support::{MockAuthServer, header, jwks, now, rsa1, sign};
use tower::{ServiceBuilder, ServiceExt};
use tracing_subscriber::fmt::MakeWriter;

const RESOURCE: &str = "https://mcp.example.com/mcp";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn log_lines_never_contain_the_token() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockAuthServer::start().await;
    let key = rsa1("k1");
    server.set_jwks(jwks(&[&key]));
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
        let mut req = Request::new(Full::default());
        *req.uri_mut() = "/mcp?q=secret-query".parse().expect("uri");
        req.headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_str(&value).expect("valid"));
        statuses.push(
            service
                .clone()
                .oneshot(req)
                .await
                .expect("infallible")
                .status(),
        );
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

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
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
