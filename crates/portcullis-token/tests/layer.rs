//! `ValidateTokenLayer` in a stack: what reaches the inner service, what the client gets, and what is logged.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::{AuthMethod, Challenge, Principal, Rejection, RejectionKind, ResponseBody};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt::{header, now, rsa1, sign};
use portcullis_token::{Issuer, TokenValidator, ValidateTokenLayer};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

struct Outcome {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    reason: Option<RejectionKind>,
    body: String,
    seen: Option<Principal>,
    inner_calls: usize,
}

async fn send(validator: &TokenValidator, extract: bool, req: Request<Full<Bytes>>) -> Outcome {
    let challenge = Challenge::new(META).expect("valid");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let inner = {
        let calls = Arc::clone(&calls);
        let seen = Arc::clone(&seen);
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            *seen.lock().expect("lock") = req.extensions().get::<Principal>().cloned();
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner")))) }
        })
    };
    let validate = ValidateTokenLayer::new(validator.clone(), challenge.clone());
    let response = if extract {
        let service = ServiceBuilder::new()
            .layer(ExtractCredentialLayer::new(challenge))
            .layer(validate)
            .service(inner);
        let response = service.oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.collect().await.expect("body").to_bytes())
    } else {
        let service = ServiceBuilder::new().layer(validate).service(inner);
        let response: Response<ResponseBody<Full<Bytes>>> =
            service.oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.collect().await.expect("body").to_bytes())
    };
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &HeaderValue| v.to_str().expect("ascii").to_owned())
    };
    Outcome {
        status: response.status(),
        challenge: header(WWW_AUTHENTICATE),
        retry_after: header(RETRY_AFTER),
        reason: response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        body: String::from_utf8(response.body().to_vec()).expect("utf-8"),
        seen: seen.lock().expect("lock").clone(),
        inner_calls: calls.load(Ordering::SeqCst),
    }
}

fn request(authorization: &str) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    *req.uri_mut() = "/mcp".parse().expect("uri");
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_str(authorization).expect("valid"),
    );
    req
}

async fn setup() -> (MockAuthServer, TokenValidator, String) {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = TokenValidator::builder(RESOURCE)
        .add_issuer(Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"))
        .with_site_claim("https://example.com/sites")
        .with_cold_retry(Duration::from_millis(10))
        .build()
        .expect("validator");
    let token = sign(
        &key,
        header(&key),
        json!({
            "iss": server.issuer(), "sub": "user-1", "aud": RESOURCE, "exp": now() + 600,
            "scope": "mcp:read", "client_id": "client-1", "https://example.com/sites": ["Site-A", "site-b"],
        }),
    );
    (server, validator, token)
}

#[tokio::test]
async fn a_valid_token_reaches_the_inner_service_as_a_principal() {
    let (_server, validator, token) = setup().await;
    let outcome = send(&validator, true, request(&format!("Bearer {token}"))).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.body, "inner");
    let principal = outcome.seen.expect("principal");
    assert_eq!(principal.method(), AuthMethod::OAuth);
    assert_eq!(principal.subject(), "user-1");
    assert_eq!(principal.client_id(), Some("client-1"));
    let sites: Vec<_> = principal
        .site_grants()
        .expect("grants")
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    // Exactly as the token wrote them: a grant of `Site-A` is not a grant of `site-a`.
    assert_eq!(sites, ["Site-A", "site-b"]);
}

#[tokio::test]
async fn an_invalid_token_is_401_invalid_token_and_never_reaches_the_service() {
    let (_server, validator, token) = setup().await;
    let tampered = format!("{}x", token.trim_end_matches(|c| c != '.'));
    let outcome = send(&validator, true, request(&format!("Bearer {tampered}"))).await;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.reason, Some(RejectionKind::InvalidToken));
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{META}\"",
                RejectionKind::InvalidToken.description()
            )
            .as_str()
        )
    );
    assert_eq!(outcome.inner_calls, 0);
    assert!(!outcome.body.contains(&tampered[..20]));
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_with_retry_after() {
    let (server, validator, token) = setup().await;
    server.set_jwks_response(503, "text/plain", b"down".to_vec());
    let outcome = send(&validator, true, request(&format!("Bearer {token}"))).await;
    assert_eq!(outcome.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(outcome.reason, Some(RejectionKind::TemporarilyUnavailable));
    assert_eq!(outcome.retry_after.as_deref(), Some("5"));
    assert_eq!(outcome.challenge, None);
    assert_eq!(outcome.inner_calls, 0);
}

#[tokio::test]
async fn without_the_extraction_layer_the_request_is_rejected() {
    let (_server, validator, token) = setup().await;
    let outcome = send(&validator, false, request(&format!("Bearer {token}"))).await;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.reason, Some(RejectionKind::MissingCredential));
    assert_eq!(outcome.inner_calls, 0, "the layer must fail closed");
}

#[tokio::test]
async fn a_planted_principal_is_removed() {
    let (_server, validator, token) = setup().await;
    let planted = || Principal::builder(AuthMethod::OAuth, "attacker").verified();
    let mut req = request("Bearer abc");
    req.extensions_mut().insert(planted());
    let outcome = send(&validator, true, req).await;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.inner_calls, 0);
    // A valid token, new then cached: the inner service sees the validator's principal, never the planted one.
    for round in ["uncached", "cached"] {
        let mut req = request(&format!("Bearer {token}"));
        req.extensions_mut().insert(planted());
        let outcome = send(&validator, true, req).await;
        assert_eq!(outcome.status, StatusCode::OK, "{round}");
        let seen = outcome.seen.expect("a principal");
        assert_ne!(seen.subject(), "attacker", "{round}");
        assert!(seen.issuer().is_some(), "{round}");
    }
    assert_eq!(validator.stats().uncached_validations, 2);
}

#[tokio::test]
async fn grpc_requests_are_rejected_grpc_style() {
    let (_server, validator, _token) = setup().await;
    let mut req = request("Bearer not.a.jwt");
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let outcome = send(&validator, true, req).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.reason, Some(RejectionKind::InvalidToken));
    assert_eq!(outcome.inner_calls, 0);
}

#[tokio::test]
async fn the_site_claim_is_an_array_or_a_delimited_string_and_any_other_type_is_invalid() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = |delimiter: Option<char>| {
        let mut builder = TokenValidator::builder(RESOURCE)
            .add_issuer(
                Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"),
            )
            .with_site_claim("sites")
            .with_cold_retry(Duration::from_millis(10));
        if let Some(delimiter) = delimiter {
            builder = builder.with_site_claim_delimiter(delimiter);
        }
        builder.build().expect("validator")
    };
    let token = |sites: serde_json::Value| {
        let mut claims =
            json!({"iss": server.issuer(), "sub": "user-1", "aud": RESOURCE, "exp": now() + 600});
        claims["sites"] = sites;
        sign(&key, header(&key), claims)
    };
    let granted = |outcome: &Outcome| -> Vec<String> {
        outcome
            .seen
            .as_ref()
            .and_then(|p| p.site_grants())
            .map(|sites| sites.iter().map(|s| s.as_str().to_owned()).collect())
            .unwrap_or_default()
    };
    for (delimiter, sites, expected) in [
        (None, json!(["site-a", "site-b"]), vec!["site-a", "site-b"]),
        (None, json!("site-a"), vec!["site-a"]),
        (Some(' '), json!("site-a site-b"), vec!["site-a", "site-b"]),
        (Some(','), json!("site-a, site-b"), vec!["site-a", "site-b"]),
    ] {
        let outcome = send(
            &validator(delimiter),
            true,
            request(&format!("Bearer {}", token(sites.clone()))),
        )
        .await;
        assert_eq!(outcome.status, StatusCode::OK, "{sites}");
        assert_eq!(granted(&outcome), expected, "{sites}");
    }
    for (delimiter, sites) in [
        (None, json!(null)),
        (None, json!(7)),
        (None, json!({"id": "site-a"})),
        (None, json!([["site-a"]])),
        (None, json!("site-a site-b")),
        (Some(','), json!("site-a,,site-b")),
    ] {
        let outcome = send(
            &validator(delimiter),
            true,
            request(&format!("Bearer {}", token(sites.clone()))),
        )
        .await;
        assert_eq!(outcome.status, StatusCode::UNAUTHORIZED, "{sites}");
        assert_eq!(outcome.reason, Some(RejectionKind::InvalidToken), "{sites}");
        assert_eq!(outcome.inner_calls, 0, "{sites}");
    }
    // A delimiter other than a space or a comma, or without a site claim, is a configuration error.
    let issuer = || Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer");
    for builder in [
        TokenValidator::builder(RESOURCE)
            .add_issuer(issuer())
            .with_site_claim("sites")
            .with_site_claim_delimiter(';'),
        TokenValidator::builder(RESOURCE)
            .add_issuer(issuer())
            .with_site_claim_delimiter(' '),
    ] {
        let err = builder.build().expect_err("refused");
        assert_eq!(err.setting(), "site_claim_delimiter", "{err}");
    }
}
