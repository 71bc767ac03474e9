//! Every class of bad `Authorization` input gets a clean, typed answer and never reaches the inner service.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::{
    AllowedOrigins, Challenge, Credential, CredentialKind, Rejection, RejectionKind, ResponseBody,
};
use portcullis_credential::ExtractCredentialLayer;
use tower::{ServiceBuilder, ServiceExt};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl";

/// What came back, and what the inner service saw.
struct Outcome {
    status: StatusCode,
    challenge: Option<String>,
    reason: Option<RejectionKind>,
    body: String,
    inner_calls: usize,
    seen: Option<Credential>,
}

fn layer() -> ExtractCredentialLayer {
    let challenge = Challenge::new(META).expect("valid metadata url");
    ExtractCredentialLayer::new(challenge)
        .with_service_account_prefix("pcsa_")
        .expect("valid prefix")
}

async fn send_with(layer: ExtractCredentialLayer, req: Request<Full<Bytes>>) -> Outcome {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let service = {
        let calls = Arc::clone(&calls);
        let seen = Arc::clone(&seen);
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req: Request<Full<Bytes>>| {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen.lock().expect("lock") = req.extensions().get::<Credential>().cloned();
                async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }
            })
    };
    let response: Response<ResponseBody<Full<Bytes>>> =
        service.oneshot(req).await.expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii challenge").to_owned());
    let reason = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("infallible")
        .to_bytes();
    let seen = seen.lock().expect("lock").clone();
    Outcome {
        status,
        challenge,
        reason,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
        inner_calls: calls.load(Ordering::SeqCst),
        seen,
    }
}

async fn send(req: Request<Full<Bytes>>) -> Outcome {
    send_with(layer(), req).await
}

fn with_auth(value: &[u8]) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(value).expect("constructible header value"),
    );
    req
}

fn invalid_token_challenge() -> String {
    format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{META}\"",
        RejectionKind::MalformedCredential.description()
    )
}

#[track_caller]
fn assert_rejected(outcome: &Outcome, status: StatusCode, kind: RejectionKind, case: &str) {
    assert_eq!(outcome.status, status, "{case}");
    assert_eq!(outcome.reason, Some(kind), "{case}");
    assert_eq!(
        outcome.inner_calls, 0,
        "{case}: the inner service must not run"
    );
    let challenge = outcome
        .challenge
        .as_deref()
        .unwrap_or_else(|| panic!("{case}: no challenge"));
    assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
    assert!(
        challenge.ends_with(&format!("resource_metadata=\"{META}\"")),
        "{case}: {challenge}"
    );
    match kind.oauth_error() {
        Some(error) => assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{case}: {challenge}"
        ),
        None => assert!(!challenge.contains("error="), "{case}: {challenge}"),
    }
    assert!(
        outcome.body.contains(kind.code()),
        "{case}: {}",
        outcome.body
    );
}

#[track_caller]
fn assert_nothing_echoed(outcome: &Outcome, secrets: &[&str], case: &str) {
    for secret in secrets {
        assert!(!outcome.body.contains(secret), "{case}: body echoes input");
        if let Some(challenge) = &outcome.challenge {
            assert!(
                !challenge.contains(secret),
                "{case}: challenge echoes input"
            );
        }
    }
}

#[tokio::test]
async fn valid_bearer_jwt_reaches_the_inner_service() {
    let outcome = send(with_auth(format!("Bearer {JWT}").as_bytes())).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.inner_calls, 1);
    assert_eq!(outcome.reason, None);
    assert_eq!(outcome.body, "inner");
    let Some(Credential::Bearer(token)) = outcome.seen else {
        panic!("bearer credential expected")
    };
    assert_eq!(token.secret().expose_secret(), JWT);
}

#[tokio::test]
async fn bearer_tokens_are_classified_as_jwt_service_key_or_opaque() {
    let cases = [
        (format!("Bearer {JWT}"), CredentialKind::Jwt),
        (
            "Bearer pcsa_0123456789abcdef".to_owned(),
            CredentialKind::ServiceAccountKey,
        ),
        (
            "Bearer opaque-token~123/+==".to_owned(),
            CredentialKind::Opaque,
        ),
    ];
    for (value, expected) in cases {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_eq!(outcome.status, StatusCode::OK, "{value}");
        assert_eq!(
            outcome.seen.as_ref().map(Credential::kind),
            Some(expected),
            "{value}"
        );
    }
}

#[tokio::test]
async fn scheme_matching_is_case_insensitive() {
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let outcome = send(with_auth(format!("{scheme} {JWT}").as_bytes())).await;
        assert_eq!(outcome.status, StatusCode::OK, "{scheme}");
        assert_eq!(
            outcome.seen.as_ref().map(Credential::kind),
            Some(CredentialKind::Jwt),
            "{scheme}"
        );
    }
    let basic = STANDARD.encode("ada@example.com:tok");
    for scheme in ["Basic", "basic", "BASIC"] {
        let outcome = send(with_auth(format!("{scheme} {basic}").as_bytes())).await;
        assert_eq!(outcome.status, StatusCode::OK, "{scheme}");
        assert_eq!(
            outcome.seen.as_ref().map(Credential::kind),
            Some(CredentialKind::Basic),
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn spaces_after_the_scheme_never_become_part_of_the_token() {
    for value in ["Bearer abc", "Bearer  abc", "Bearer     abc"] {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_eq!(outcome.status, StatusCode::OK, "{value}");
        let Some(Credential::Bearer(token)) = outcome.seen else {
            panic!("{value}: bearer expected")
        };
        assert_eq!(token.secret().expose_secret(), "abc", "{value}");
    }
}

#[tokio::test]
async fn scheme_without_credentials_is_rejected_with_invalid_token() {
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic",
        "Basic ",
        "bearer  ",
    ] {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MalformedCredential,
            value,
        );
        assert_eq!(
            outcome.challenge.as_deref(),
            Some(invalid_token_challenge().as_str()),
            "{value}"
        );
    }
}

#[tokio::test]
async fn unknown_schemes_are_rejected_with_invalid_token() {
    for value in [
        "Digest username=\"a\"",
        "Negotiate YII=",
        "Token abc",
        "Bearerabc",
        "Bearer:abc",
        "abc",
        "=",
        "Basicabc",
    ] {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::UnsupportedScheme,
            value,
        );
        assert_nothing_echoed(&outcome, &["abc", "YII"], value);
    }
}

#[tokio::test]
async fn token_with_inner_spaces_commas_or_quotes_is_rejected() {
    for value in [
        "Bearer abc def",
        "Bearer abc,def",
        "Bearer abc, Basic def",
        "Bearer abc ",
        "Bearer \"abc\"",
        "Bearer abc=def",
        "Bearer abc;def",
        "Bearer a:b",
        "Bearer ===",
        "Basic YWRhQGV4YW1wbGUuY29tOnRvaw== extra",
    ] {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MalformedCredential,
            value,
        );
        assert_nothing_echoed(&outcome, &["abc", "def"], value);
    }
}

#[tokio::test]
async fn two_authorization_headers_are_rejected_with_invalid_request() {
    let pairs = [
        (format!("Bearer {JWT}"), format!("Bearer {JWT}")),
        (format!("Bearer {JWT}"), "Bearer other".to_owned()),
        ("Basic YTpi".to_owned(), format!("Bearer {JWT}")),
        (format!("Bearer {JWT}"), String::new()),
    ];
    for (first, second) in pairs {
        let mut req = Request::new(Full::default());
        req.headers_mut()
            .append(AUTHORIZATION, HeaderValue::from_str(&first).expect("valid"));
        req.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&second).expect("valid"),
        );
        let outcome = send(req).await;
        assert_rejected(
            &outcome,
            StatusCode::BAD_REQUEST,
            RejectionKind::AmbiguousCredential,
            &first,
        );
        assert_nothing_echoed(&outcome, &[JWT], &first);
    }
}

#[tokio::test]
async fn header_plus_access_token_query_parameter_is_rejected_with_invalid_request() {
    for uri in [
        "/mcp?access_token=other",
        "/mcp?x=1&access_token=",
        "/mcp?access%5Ftoken=a",
    ] {
        let mut req = with_auth(format!("Bearer {JWT}").as_bytes());
        *req.uri_mut() = uri.parse().expect("uri");
        let outcome = send(req).await;
        assert_rejected(
            &outcome,
            StatusCode::BAD_REQUEST,
            RejectionKind::AmbiguousCredential,
            uri,
        );
    }
}

#[tokio::test]
async fn non_ascii_and_control_bytes_are_rejected_before_parsing() {
    let cases: [&[u8]; 6] = [
        b"Bearer abc\xc3\xa9",
        b"Bearer \xff\xfe",
        b"Bearer abc\tdef",
        b"Bearer\tabc",
        b"Bearer \xc2\xa0abc",
        b"\xe2\x80\x8bBearer abc",
    ];
    for value in cases {
        let case = String::from_utf8_lossy(value);
        let outcome = send(with_auth(value)).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MalformedCredential,
            &case,
        );
    }
}

#[tokio::test]
async fn cr_lf_and_other_controls_can_never_reach_the_layer() {
    // `http` refuses CR, LF, NUL, DEL and other controls in a header value, so they cannot reach the layer
    // through a request (the parser refuses them too, see its unit tests); the over-the-wire test in the
    // workspace tests checks what a server does with them.
    for value in [
        &b"Bearer abc\r\nX-Injected: 1"[..],
        b"Bearer abc\n",
        b"Bearer \0abc",
        b"Bearer a\x01",
        b"Bearer a\x7f",
    ] {
        assert!(HeaderValue::from_bytes(value).is_err());
    }
}

#[tokio::test]
async fn oversized_header_is_rejected_with_invalid_request() {
    let huge = format!(
        "Bearer {}",
        "a".repeat(portcullis_credential::DEFAULT_MAX_HEADER_LEN)
    );
    let outcome = send(with_auth(huge.as_bytes())).await;
    assert_rejected(
        &outcome,
        StatusCode::BAD_REQUEST,
        RejectionKind::CredentialTooLarge,
        "default limit",
    );

    let small = layer().with_max_header_len(32).expect("valid limit");
    let outcome = send_with(
        small,
        with_auth(format!("Bearer {}", "b".repeat(26)).as_bytes()),
    )
    .await;
    assert_rejected(
        &outcome,
        StatusCode::BAD_REQUEST,
        RejectionKind::CredentialTooLarge,
        "custom limit",
    );
    let small = layer().with_max_header_len(32).expect("valid limit");
    let outcome = send_with(
        small,
        with_auth(format!("Bearer {}", "b".repeat(25)).as_bytes()),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK, "at the limit");
}

#[tokio::test]
async fn basic_with_bad_encoding_or_parts_is_rejected_without_echoing_it() {
    let b64 = |raw: &[u8]| STANDARD.encode(raw);
    let cases: Vec<(&str, String)> = vec![
        ("invalid base64", "Basic !!!notbase64".to_owned()),
        ("invalid base64 alphabet", "Basic c2VjcmV0-_".to_owned()),
        ("bad length", "Basic c2VjcmV0X".to_owned()),
        (
            "no colon",
            format!("Basic {}", b64(b"ada@example.comsecret-tok")),
        ),
        ("empty email", format!("Basic {}", b64(b":secret-tok"))),
        ("empty token", format!("Basic {}", b64(b"ada@example.com:"))),
        ("only a colon", format!("Basic {}", b64(b":"))),
        (
            "not utf-8",
            format!("Basic {}", b64(b"ada@example.com:secret-tok\xff\xfe")),
        ),
        (
            "control char",
            format!("Basic {}", b64(b"ada@example.com:secret-tok\x00")),
        ),
        (
            "newline",
            format!("Basic {}", b64(b"ada@example.com\n:secret-tok")),
        ),
    ];
    for (case, value) in cases {
        let outcome = send(with_auth(value.as_bytes())).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MalformedCredential,
            case,
        );
        assert_eq!(
            outcome.challenge.as_deref(),
            Some(invalid_token_challenge().as_str()),
            "{case}"
        );
        assert_nothing_echoed(&outcome, &["ada@", "secret-tok", "c2VjcmV0"], case);
    }
}

#[tokio::test]
async fn basic_splits_email_and_token_at_the_first_colon() {
    let value = format!(
        "Basic {}",
        STANDARD.encode("ada@example.com:tok:en:with:colons")
    );
    let outcome = send(with_auth(value.as_bytes())).await;
    assert_eq!(outcome.status, StatusCode::OK);
    let Some(Credential::Basic(basic)) = outcome.seen else {
        panic!("basic credential expected")
    };
    assert_eq!(basic.email(), "ada@example.com");
    assert_eq!(basic.token().expose_secret(), "tok:en:with:colons");
}

#[tokio::test]
async fn missing_credential_is_challenged_without_error() {
    let outcome = send(Request::new(Full::default())).await;
    assert_rejected(
        &outcome,
        StatusCode::UNAUTHORIZED,
        RejectionKind::MissingCredential,
        "no header",
    );
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(format!("Bearer resource_metadata=\"{META}\"").as_str())
    );
}

#[tokio::test]
async fn tokens_in_the_query_string_or_a_cookie_are_never_read() {
    let mut in_query = Request::new(Full::default());
    *in_query.uri_mut() = format!("/mcp?access_token={JWT}").parse().expect("uri");
    let mut in_cookie = Request::new(Full::default());
    in_cookie.headers_mut().insert(
        COOKIE,
        HeaderValue::from_str(&format!("access_token={JWT}")).expect("valid"),
    );

    for (case, req) in [("query", in_query), ("cookie", in_cookie)] {
        let outcome = send(req).await;
        assert_rejected(
            &outcome,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MissingCredential,
            case,
        );
    }

    let mut in_query = Request::new(Full::default());
    *in_query.uri_mut() = format!("/mcp?access_token={JWT}").parse().expect("uri");
    let outcome = send_with(layer().optional(), in_query).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.inner_calls, 1);
    assert!(
        outcome.seen.is_none(),
        "a query token must not become a credential"
    );
}

#[tokio::test]
async fn optional_lets_anonymous_requests_through_but_still_rejects_bad_credentials() {
    let outcome = send_with(layer().optional(), Request::new(Full::default())).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.inner_calls, 1);
    assert!(outcome.seen.is_none());

    let outcome = send_with(layer().optional(), with_auth(b"Bearer ")).await;
    assert_rejected(
        &outcome,
        StatusCode::UNAUTHORIZED,
        RejectionKind::MalformedCredential,
        "optional, malformed",
    );
}

#[tokio::test]
async fn a_credential_planted_before_the_layer_is_discarded() {
    let planted = Credential::Bearer(portcullis_core::BearerToken::new(
        portcullis_core::Secret::new("planted"),
        portcullis_core::TokenShape::Opaque,
    ));
    let mut req = Request::new(Full::default());
    req.extensions_mut().insert(planted.clone());
    let outcome = send_with(layer().optional(), req).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert!(
        outcome.seen.is_none(),
        "the planted credential reached the inner service"
    );

    let mut req = with_auth(b"Bearer real");
    req.extensions_mut().insert(planted);
    let outcome = send(req).await;
    let Some(Credential::Bearer(token)) = outcome.seen else {
        panic!("bearer expected")
    };
    assert_eq!(token.secret().expose_secret(), "real");
}

#[tokio::test]
async fn grpc_requests_are_rejected_grpc_style() {
    let mut req = with_auth(b"Bearer ");
    req.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service =
        ServiceBuilder::new()
            .layer(layer())
            .service_fn(move |_req: Request<Full<Bytes>>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
            });
    let response = service.oneshot(req).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(
        response.headers()["grpc-message"],
        RejectionKind::MalformedCredential
            .description()
            .replace(' ', "%20")
    );
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .contains("resource_metadata=")
    );
    assert_eq!(
        response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        Some(RejectionKind::MalformedCredential)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn configuration_is_checked_when_the_layer_is_built() {
    let challenge = Challenge::new(META).expect("valid");
    for bad in ["", "pc sa", "pc,sa", "pcsa=", "pcsé"] {
        let err = ExtractCredentialLayer::new(challenge.clone())
            .with_service_account_prefix(bad)
            .expect_err(bad);
        assert_eq!(err.setting(), "service_account_prefix");
    }
    for bad in [0, 15, 64 * 1024 + 1] {
        let err = ExtractCredentialLayer::new(challenge.clone())
            .with_max_header_len(bad)
            .expect_err("limit");
        assert_eq!(err.setting(), "max_header_len");
    }
}

// ---------------------------------------------------------------------------
// Origin (MCP transport security), decided before any credential work
// ---------------------------------------------------------------------------

fn with_origins() -> ExtractCredentialLayer {
    let origins = AllowedOrigins::of_resource("https://mcp.example.com/mcp")
        .and_then(|o| o.allow("https://app.example.com"))
        .expect("valid origins");
    layer().with_allowed_origins(origins)
}

/// A request with a valid bearer token and the given `Origin` values.
fn from_origins(origins: &[&[u8]]) -> Request<Full<Bytes>> {
    let mut req = with_auth(format!("Bearer {JWT}").as_bytes());
    for origin in origins {
        req.headers_mut().append(
            ORIGIN,
            HeaderValue::from_bytes(origin).expect("a valid header value"),
        );
    }
    req
}

#[track_caller]
fn assert_origin_refused(outcome: &Outcome, case: &str) {
    assert_eq!(outcome.status, StatusCode::FORBIDDEN, "{case}");
    assert_eq!(
        outcome.reason,
        Some(RejectionKind::OriginNotAllowed),
        "{case}"
    );
    assert_eq!(
        outcome.inner_calls, 0,
        "{case}: the inner service must not run"
    );
    assert_eq!(outcome.challenge, None, "{case}: no challenge");
    let body: serde_json::Value = serde_json::from_str(&outcome.body).expect("JSON body");
    assert_eq!(body["jsonrpc"], "2.0", "{case}");
    assert_eq!(body["id"], serde_json::Value::Null, "{case}: no id");
    assert_eq!(
        body["error"]["data"]["reason"], "origin_not_allowed",
        "{case}"
    );
    assert!(body["error"]["code"].is_i64(), "{case}: a JSON-RPC code");
}

#[tokio::test]
async fn allowed_origins_and_no_origin_pass_with_the_credential() {
    for origins in [
        &[][..],
        &[&b"https://mcp.example.com"[..]],
        &[&b"https://app.example.com"[..]],
    ] {
        let outcome = send_with(with_origins(), from_origins(origins)).await;
        assert_eq!(outcome.status, StatusCode::OK, "{origins:?}");
        assert_eq!(outcome.inner_calls, 1, "{origins:?}");
        assert!(
            outcome.seen.is_some(),
            "{origins:?}: the credential was read"
        );
    }
}

#[tokio::test]
async fn origins_not_allowed_are_403_with_a_jsonrpc_error_and_no_id() {
    for (case, origins) in [
        ("other scheme", &[&b"http://mcp.example.com"[..]][..]),
        ("other port", &[&b"https://mcp.example.com:8443"[..]]),
        (
            "default port written out",
            &[&b"https://mcp.example.com:443"[..]],
        ),
        ("null", &[&b"null"[..]]),
        ("another site", &[&b"https://evil.example"[..]]),
        (
            "a suffix of an allowed host",
            &[&b"https://mcp.example.com.evil.example"[..]],
        ),
        ("upper-case host", &[&b"https://MCP.example.com"[..]]),
        ("upper-case scheme", &[&b"HTTPS://mcp.example.com"[..]]),
        ("a path", &[&b"https://mcp.example.com/"[..]]),
        (
            "two values in one header",
            &[&b"https://mcp.example.com, https://evil.example"[..]],
        ),
        (
            "two headers, both allowed",
            &[
                &b"https://mcp.example.com"[..],
                &b"https://app.example.com"[..],
            ],
        ),
        ("empty", &[&b""[..]]),
        ("not ASCII", &[&b"https://caf\xc3\xa9.example"[..]]),
    ] {
        let outcome = send_with(with_origins(), from_origins(origins)).await;
        assert_origin_refused(&outcome, case);
    }
}

#[tokio::test]
async fn the_origin_is_refused_before_the_credential_is_read() {
    // A malformed, a missing and an ambiguous credential: the Origin decides first, so it is the reason given.
    let mut malformed = with_auth(b"Bearer a b");
    malformed
        .headers_mut()
        .insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
    assert_origin_refused(&send_with(with_origins(), malformed).await, "malformed");
    let mut missing = Request::new(Full::default());
    missing
        .headers_mut()
        .insert(ORIGIN, HeaderValue::from_static("null"));
    assert_origin_refused(&send_with(with_origins(), missing).await, "missing");
    // Without an origin list (the layer alone), Origin is not looked at.
    let outcome = send(from_origins(&[b"https://evil.example"])).await;
    assert_eq!(outcome.status, StatusCode::OK);
}
