//! Attacks on token validation (RFC 8725, RFC 9068, RFC 8707): every forged, confused, misaddressed or
//! malformed credential is refused with the exact answer, and costs no outbound call it should not.
//!
//! Each test starts its own [`MockAuthServer`] (and, for the key-URL attacks, a second one the attacker
//! controls) and counts the fetches the validator makes.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis_core::{
    AuthMethod, BearerToken, Challenge, Credential, Principal, Rejection, RejectionKind, Secret,
    TokenShape,
};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_test_support::jwt::{self, TestKey, b64, ec1, header, rsa1, rsa2, sign};
use portcullis_test_support::{Discovery, MockAuthServer};
use portcullis_token::{
    Clock, FileTokenStore, HttpTokenVerifier, Introspection, Issuer, SigningAlgorithm,
    TokenValidator, TokenValidatorBuilder, ValidateTokenLayer, token_digest,
};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

/// The protected resource: the audience every token must name.
const RESOURCE: &str = "https://mcp.example.com/mcp";
/// Where the challenge sends clients.
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
/// Bearer tokens with this prefix are service-account keys.
const PREFIX: &str = "pcsa_";
/// The test clock's "now" (2025-06-15).
const T0: u64 = 1_750_000_000;
/// The builder's default leeway, which these tests rely on.
const LEEWAY: u64 = 60;
/// The `kid` of the issuer's signing key.
const KID: &str = "k1";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A clock the test moves by hand.
#[derive(Clone, Debug)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn at(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)))
    }

    fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The server as a trusted issuer, keys from its JWKS URI.
fn issuer_of(server: &MockAuthServer) -> Issuer {
    Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("valid issuer")
}

/// A validator builder for [`RESOURCE`] trusting `issuer`, on `clock`.
fn builder(issuer: Issuer, clock: &TestClock) -> TokenValidatorBuilder {
    TokenValidator::builder(RESOURCE)
        .add_issuer(issuer)
        .with_clock(clock.clone())
}

/// An issuer serving `rsa1(KID)` and a validator that trusts it, with the clock at [`T0`].
struct Setup {
    server: MockAuthServer,
    key: TestKey,
    clock: TestClock,
    validator: TokenValidator,
}

async fn setup() -> Setup {
    let key = rsa1(KID);
    let server = MockAuthServer::with_keys(&[&key]).await;
    let clock = TestClock::at(T0);
    let validator = builder(issuer_of(&server), &clock)
        .build()
        .expect("valid validator");
    Setup {
        server,
        key,
        clock,
        validator,
    }
}

/// The claims of a valid access token from `iss` at [`T0`].
fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "sub": "user-1",
        "aud": RESOURCE,
        "client_id": "client-1",
        "scope": "mcp:read",
        "iat": T0,
        "exp": T0 + 600,
    })
}

/// `object` with `name` set to `value`.
fn set(mut object: Value, name: &str, value: Value) -> Value {
    object
        .as_object_mut()
        .expect("a JSON object")
        .insert(name.to_owned(), value);
    object
}

/// `object` without `name`.
fn without(mut object: Value, name: &str) -> Value {
    object.as_object_mut().expect("a JSON object").remove(name);
    object
}

/// A Bearer credential, classified as the extraction layer would.
fn bearer(token: &str) -> Credential {
    Credential::Bearer(BearerToken::new(
        Secret::new(token),
        TokenShape::classify(token, Some(PREFIX)),
    ))
}

/// Validates `token` directly; the rejection reduced to its kind.
async fn check(validator: &TokenValidator, token: &str) -> Result<Principal, RejectionKind> {
    validator
        .validate(&bearer(token))
        .await
        .map_err(|rejection| rejection.kind())
}

/// The body of the base64 PEM (the DER, base64-encoded), e.g. for an `x5c` entry.
fn pem_body(pem: &[u8]) -> String {
    String::from_utf8_lossy(pem)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect()
}

/// What came back through the whole stack, and what the inner service saw.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    reason: Option<RejectionKind>,
    body: Bytes,
    inner_calls: usize,
    principal: Option<Principal>,
}

impl Outcome {
    fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one request with this `Authorization` header through `ExtractCredential` + `ValidateToken` to an inner
/// service that counts its calls.
async fn send(validator: &TokenValidator, authorization: &str) -> Outcome {
    let challenge = Challenge::new(METADATA).expect("valid metadata URL");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None::<Principal>));
    let service = {
        let calls = Arc::clone(&calls);
        let seen = Arc::clone(&seen);
        ServiceBuilder::new()
            .layer(
                ExtractCredentialLayer::new(challenge.clone())
                    .with_service_account_prefix(PREFIX)
                    .expect("valid prefix"),
            )
            .layer(ValidateTokenLayer::new(validator.clone(), challenge))
            .service_fn(move |req: Request<Full<Bytes>>| {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen.lock().expect("lock") = req.extensions().get::<Principal>().cloned();
                async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }
            })
    };
    let request = Request::builder()
        .uri("/mcp")
        .header(AUTHORIZATION, authorization)
        .body(Full::default())
        .expect("valid request");
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
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
    let principal = seen.lock().expect("lock").clone();
    Outcome {
        status,
        headers,
        reason,
        body,
        inner_calls: calls.load(Ordering::SeqCst),
        principal,
    }
}

fn basic(email: &str, token: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{email}:{token}")))
}

/// The 401 challenge for a credential rejected with `kind`.
fn invalid_token_challenge(kind: RejectionKind) -> String {
    format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{METADATA}\"",
        kind.description()
    )
}

/// A 401 `invalid_token` with the exact challenge, body and reason, and the inner service never ran.
#[track_caller]
fn assert_unauthorized(outcome: &Outcome, kind: RejectionKind, case: &str) {
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(outcome.reason, Some(kind), "{case}");
    assert_eq!(
        outcome.header(WWW_AUTHENTICATE),
        Some(invalid_token_challenge(kind).as_str()),
        "{case}"
    );
    assert_eq!(
        outcome.body_json(),
        json!({
            "error": "invalid_token",
            "error_description": kind.description(),
            "reason": kind.code(),
        }),
        "{case}"
    );
    assert_eq!(outcome.inner_calls, 0, "{case}: the inner service ran");
    assert!(outcome.principal.is_none(), "{case}");
}

/// A 503 with `Retry-After` and no challenge, and the inner service never ran.
#[track_caller]
fn assert_unavailable(outcome: &Outcome, case: &str) {
    assert_eq!(outcome.status, StatusCode::SERVICE_UNAVAILABLE, "{case}");
    assert_eq!(
        outcome.reason,
        Some(RejectionKind::TemporarilyUnavailable),
        "{case}"
    );
    assert_eq!(outcome.header(RETRY_AFTER), Some("5"), "{case}");
    assert_eq!(outcome.header(WWW_AUTHENTICATE), None, "{case}");
    assert_eq!(
        outcome.body_json(),
        json!({
            "error": "temporarily_unavailable",
            "error_description": RejectionKind::TemporarilyUnavailable.description(),
            "reason": "temporarily_unavailable",
        }),
        "{case}"
    );
    assert_eq!(outcome.inner_calls, 0, "{case}: the inner service ran");
    assert!(outcome.principal.is_none(), "{case}");
}

/// A 200 from the inner service, which saw the principal.
#[track_caller]
fn assert_allowed(outcome: &Outcome, case: &str) -> Principal {
    assert_eq!(outcome.status, StatusCode::OK, "{case}");
    assert_eq!(outcome.reason, None, "{case}");
    assert_eq!(outcome.inner_calls, 1, "{case}");
    assert_eq!(&outcome.body[..], b"inner", "{case}");
    outcome
        .principal
        .clone()
        .expect("the inner service saw a principal")
}

// ---------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_case_is_rejected_without_fetching_keys() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    // A genuine signature of some message, to fill the signature segment.
    let real_signature = sign(&key, header(&key), claims.clone())
        .rsplit('.')
        .next()
        .expect("three segments")
        .to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for (with_kid, head) in [
            (false, json!({"alg": alg, "typ": "at+jwt"})),
            (true, json!({"alg": alg, "typ": "at+jwt", "kid": KID})),
        ] {
            let unsigned = jwt::unsigned(head, claims.clone());
            for signature in ["", "c2lnbmF0dXJl", real_signature.as_str()] {
                let token = format!("{unsigned}{signature}");
                let case = format!("alg {alg}, kid {with_kid}, signature {signature:.12}");
                let outcome = send(&validator, &format!("Bearer {token}")).await;
                assert_unauthorized(&outcome, RejectionKind::InvalidToken, &case);
            }
        }
    }
    // Neighbours of `none`: no alg at all, null, empty, and JOSE names in the wrong case.
    for head in [
        json!({"typ": "at+jwt", "kid": KID}),
        json!({"alg": null, "typ": "at+jwt", "kid": KID}),
        json!({"alg": "", "typ": "at+jwt", "kid": KID}),
        json!({"alg": "rs256", "typ": "at+jwt", "kid": KID}),
        json!({"alg": ["RS256"], "typ": "at+jwt", "kid": KID}),
    ] {
        let token = format!(
            "{}{real_signature}",
            jwt::unsigned(head.clone(), claims.clone())
        );
        let outcome = send(&validator, &format!("Bearer {token}")).await;
        assert_unauthorized(&outcome, RejectionKind::InvalidToken, &head.to_string());
    }
    assert_eq!(server.jwks_hits(), 0);

    // The same claims, properly signed, pass: the rejections above were about the algorithm.
    let outcome = send(
        &validator,
        &format!("Bearer {}", sign(&key, header(&key), claims)),
    )
    .await;
    assert_eq!(assert_allowed(&outcome, "RS256").subject(), "user-1");
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    let jwk_text = key.jwk().to_string();
    let der = STANDARD
        .decode(pem_body(&key.public_pem))
        .expect("PEM body is base64");
    let secrets: [(&str, &[u8]); 3] = [
        ("public key PEM", &key.public_pem),
        ("public JWK JSON", jwk_text.as_bytes()),
        ("public key DER", &der),
    ];
    for (alg, name) in [
        (Algorithm::HS256, "HS256"),
        (Algorithm::HS384, "HS384"),
        (Algorithm::HS512, "HS512"),
    ] {
        for (secret_name, secret) in secrets {
            let token = jwt::sign_with(
                alg,
                &EncodingKey::from_secret(secret),
                json!({"alg": name, "kid": KID, "typ": "at+jwt"}),
                claims.clone(),
            );
            assert_eq!(
                check(&validator, &token).await.err(),
                Some(RejectionKind::InvalidToken),
                "{name} with the {secret_name} as secret"
            );
        }
    }
    assert_eq!(server.jwks_hits(), 0);

    // Control: the same claims signed with the private key pass.
    let token = sign(&key, header(&key), claims);
    assert!(check(&validator, &token).await.is_ok());
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn algorithm_must_fit_the_key_and_the_allowlist() {
    let rsa = rsa1(KID);
    let ec = ec1("ec1");
    let mut rs384 = rsa2("rs384");
    rs384.alg = Algorithm::RS384;
    let mut ps256 = rsa1("ps256");
    ps256.alg = Algorithm::PS256;
    let server = MockAuthServer::with_keys(&[&rsa, &ec, &rs384, &ps256]).await;
    let clock = TestClock::at(T0);
    let claims = claims(&server.issuer());

    // An issuer that may only use RS256: a PS256 or ES256 token is refused before any key is fetched, even
    // though its key is in the set and the signature is good.
    let rs256_only = builder(
        issuer_of(&server)
            .with_algorithms(&[SigningAlgorithm::RS256])
            .expect("non-empty allowlist"),
        &clock,
    )
    .build()
    .expect("valid validator");
    for (case, token) in [
        (
            "PS256 on an RS256-only issuer",
            sign(&ps256, header(&ps256), claims.clone()),
        ),
        (
            "ES256 on an RS256-only issuer",
            sign(&ec, header(&ec), claims.clone()),
        ),
    ] {
        assert_eq!(
            check(&rs256_only, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);

    let validator = builder(issuer_of(&server), &clock)
        .build()
        .expect("valid validator");
    let cases = [
        (
            // Signed by the RSA key that is in the set under another kid: a validator that fell back to "any
            // key fitting the algorithm" would accept it.
            "RS256 header naming the EC key",
            jwt::sign_with(
                Algorithm::RS256,
                &rsa.encoding,
                json!({"alg": "RS256", "kid": "ec1", "typ": "at+jwt"}),
                claims.clone(),
            ),
        ),
        (
            "ES256 header naming an RSA key",
            sign(
                &ec,
                json!({"alg": "ES256", "kid": KID, "typ": "at+jwt"}),
                claims.clone(),
            ),
        ),
        (
            "ES384 header naming the P-256 key",
            jwt::sign_with(
                Algorithm::ES256,
                &ec.encoding,
                json!({"alg": "ES384", "kid": "ec1", "typ": "at+jwt"}),
                claims.clone(),
            ),
        ),
        (
            "RS256 token with the key whose JWK says RS384",
            jwt::sign_with(
                Algorithm::RS256,
                &rs384.encoding,
                json!({"alg": "RS256", "kid": "rs384", "typ": "at+jwt"}),
                claims.clone(),
            ),
        ),
        (
            "RS256 token with the key whose JWK says PS256",
            jwt::sign_with(
                Algorithm::RS256,
                &ps256.encoding,
                json!({"alg": "RS256", "kid": "ps256", "typ": "at+jwt"}),
                claims.clone(),
            ),
        ),
    ];
    for (case, token) in cases {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    // The cold fetch, and one refetch for a kid that fits no key (it might be a rotation); further misses
    // within the cooldown fetch nothing.
    assert_eq!(server.jwks_hits(), 2);

    // Controls: each key with the algorithm it names is accepted, so the refusals above were about the fit.
    for (case, key) in [
        ("RS256", &rsa),
        ("ES256", &ec),
        ("RS384", &rs384),
        ("PS256", &ps256),
    ] {
        let token = sign(key, header(key), claims.clone());
        assert!(check(&validator, &token).await.is_ok(), "{case}");
    }
    assert_eq!(server.jwks_hits(), 2);
}

// ---------------------------------------------------------------------------
// Key URLs in the header
// ---------------------------------------------------------------------------

#[tokio::test]
async fn jku_x5u_jwk_and_x5c_headers_are_never_used_or_fetched() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let evil = rsa2("evil");
    let attacker = MockAuthServer::with_keys(&[&evil]).await;
    let evil_cert = pem_body(&evil.public_pem);
    let claims = claims(&server.issuer());

    let cases = [
        (
            "jku to the attacker's JWKS",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "jku": attacker.jwks_uri()}),
        ),
        (
            "jku with the issuer's kid",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": KID, "jku": attacker.jwks_uri()}),
        ),
        (
            "x5u to the attacker's certificate",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "x5u": format!("{}/cert.pem", attacker.base())}),
        ),
        (
            "embedded jwk, no kid",
            json!({"alg": "RS256", "typ": "at+jwt", "jwk": evil.jwk()}),
        ),
        (
            "embedded jwk with the issuer's kid",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": KID, "jwk": set(evil.jwk(), "kid", json!(KID))}),
        ),
        (
            "x5c with the attacker's key",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "x5c": [evil_cert]}),
        ),
        (
            "kid that is a URL",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": attacker.jwks_uri()}),
        ),
        (
            "everything at once",
            json!({
                "alg": "RS256", "typ": "at+jwt", "kid": KID,
                "jku": attacker.jwks_uri(),
                "x5u": format!("{}/cert.pem", attacker.base()),
                "jwk": evil.jwk(),
                "x5c": [evil_cert],
            }),
        ),
    ];
    for (case, head) in cases {
        let token = sign(&evil, head, claims.clone());
        let outcome = send(&validator, &format!("Bearer {token}")).await;
        assert_unauthorized(&outcome, RejectionKind::InvalidToken, case);
    }
    // The issuer's own key set: the cold fetch, and one refetch for the unknown kid "evil" (further unknown
    // kids wait for the cooldown). The attacker saw nothing.
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(attacker.jwks_hits(), 0);
    assert_eq!(attacker.other_hits(), 0);
    assert_eq!(attacker.discovery_hits(Discovery::OAuth), 0);
    assert_eq!(attacker.discovery_hits(Discovery::Oidc), 0);

    // A legitimate token that carries a harmless jku/x5u is validated with the configured keys only.
    let token = sign(
        &key,
        json!({
            "alg": "RS256", "typ": "at+jwt", "kid": KID,
            "jku": attacker.jwks_uri(),
            "x5u": format!("{}/cert.pem", attacker.base()),
        }),
        claims,
    );
    let outcome = send(&validator, &format!("Bearer {token}")).await;
    let principal = assert_allowed(&outcome, "legit token with a jku");
    assert_eq!(principal.issuer(), Some(server.issuer().as_str()));
    assert_eq!(principal.method(), AuthMethod::OAuth);
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(attacker.jwks_hits(), 0);
    assert_eq!(attacker.other_hits(), 0);
}

// ---------------------------------------------------------------------------
// Header features that change what is signed or how
// ---------------------------------------------------------------------------

#[tokio::test]
async fn crit_header_is_rejected_whatever_its_value() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!(["urn:example:unknown"]),
        json!([]),
        json!("exp"),
        json!({}),
        json!(1),
        json!(false),
    ] {
        let token = sign(
            &key,
            set(header(&key), "crit", crit.clone()),
            claims.clone(),
        );
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "crit {crit}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn crit_b64_and_enc_headers_with_null_values_are_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    let mut accepted = Vec::new();
    for member in ["crit", "b64", "enc"] {
        let token = sign(&key, set(header(&key), member, Value::Null), claims.clone());
        if check(&validator, &token).await.err() != Some(RejectionKind::InvalidToken) {
            accepted.push(member);
        }
    }
    assert_eq!(accepted, Vec::<&str>::new(), "accepted with a null value");
}

#[tokio::test]
async fn unencoded_payload_b64_false_is_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    let payload = serde_json::to_string(&claims).expect("claims serialise");
    let mut tokens = Vec::new();
    for head in [
        set(
            set(header(&key), "b64", json!(false)),
            "crit",
            json!(["b64"]),
        ),
        set(header(&key), "b64", json!(false)),
        set(header(&key), "b64", json!(true)),
    ] {
        // Signed the ordinary way (payload base64url-encoded)...
        tokens.push((head.to_string(), sign(&key, head.clone(), claims.clone())));
        // ... and the RFC 7797 way: the signing input holds the payload as is, and the token carries it
        // base64url-encoded anyway, hoping the two readings differ.
        let encoded_header = b64(serde_json::to_vec(&head).expect("header serialises"));
        let signing_input = format!("{encoded_header}.{payload}");
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, Algorithm::RS256)
                .expect("signs");
        tokens.push((
            format!("{head} (RFC 7797 signing input)"),
            format!("{encoded_header}.{}.{signature}", b64(&payload)),
        ));
    }
    for (case, token) in tokens {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn jwe_shaped_token_is_rejected() {
    let Setup {
        server, validator, ..
    } = setup().await;
    let jwe_header = json!({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt", "kid": KID});
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(jwe_header.to_string()),
        b64([7u8; 256]),
        b64([1u8; 12]),
        b64(claims(&server.issuer()).to_string()),
        b64([2u8; 16]),
    );
    // Through the stack it is classified as opaque; with no introspection it is refused.
    let outcome = send(&validator, &format!("Bearer {jwe}")).await;
    assert_unauthorized(&outcome, RejectionKind::InvalidToken, "five segments");
    // Forced down the JWT path, the five segments are refused too.
    let forced = Credential::Bearer(BearerToken::new(Secret::new(jwe.as_str()), TokenShape::Jwt));
    assert_eq!(
        validator
            .validate(&forced)
            .await
            .map_err(|r| r.kind())
            .err(),
        Some(RejectionKind::InvalidToken)
    );
    // A JWE header dressed as a three-segment JWS.
    let three = format!(
        "{}.{}.{}",
        b64(jwe_header.to_string()),
        b64(claims(&server.issuer()).to_string()),
        b64([2u8; 16]),
    );
    assert_eq!(
        check(&validator, &three).await.err(),
        Some(RejectionKind::InvalidToken)
    );
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn nested_jwt_is_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    let inner = sign(&key, header(&key), claims.clone());
    let mut tokens = Vec::new();
    for cty in ["JWT", "jwt", "application/jwt", "application/JWT"] {
        // The outer payload is the claims themselves: only `cty` says "nested".
        tokens.push((
            format!("cty {cty}, claims payload"),
            sign(&key, set(header(&key), "cty", json!(cty)), claims.clone()),
        ));
        // The outer payload is the inner JWT, as RFC 7519 section 5.2 describes.
        tokens.push((
            format!("cty {cty}, JWT payload"),
            jwt::sign_raw(
                Algorithm::RS256,
                &key.encoding,
                &serde_json::to_vec(&set(header(&key), "cty", json!(cty))).expect("serialises"),
                inner.as_bytes(),
            ),
        ));
    }
    tokens.push((
        "no cty, JWT payload".to_owned(),
        jwt::sign_raw(
            Algorithm::RS256,
            &key.encoding,
            &serde_json::to_vec(&header(&key)).expect("serialises"),
            inner.as_bytes(),
        ),
    ));
    for (case, token) in tokens {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);
}

// ---------------------------------------------------------------------------
// Explicit typing (RFC 9068)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn untyped_and_jwt_typed_tokens_need_allow_untyped_tokens() {
    let Setup {
        server,
        key,
        clock,
        validator,
    } = setup().await;
    let claims = claims(&server.issuer());
    let typed = |typ: Option<&str>| {
        let head = json!({"alg": "RS256", "kid": KID});
        let head = match typ {
            Some(typ) => set(head, "typ", json!(typ)),
            None => head,
        };
        sign(&key, head, claims.clone())
    };

    let refused = [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("application/jwt"),
        Some("id_token"),
        Some(""),
        Some("at+jwt "),
        Some("at+jwt; charset=utf-8"),
    ];
    for typ in refused {
        assert_eq!(
            check(&validator, &typed(typ)).await.err(),
            Some(RejectionKind::InvalidToken),
            "typ {typ:?}"
        );
    }
    let null_typ = sign(
        &key,
        json!({"alg": "RS256", "kid": KID, "typ": null}),
        claims.clone(),
    );
    assert_eq!(
        check(&validator, &null_typ).await.err(),
        Some(RejectionKind::InvalidToken),
        "typ null"
    );
    assert_eq!(server.jwks_hits(), 0);

    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        assert!(
            check(&validator, &typed(Some(typ))).await.is_ok(),
            "typ {typ}"
        );
    }
    assert_eq!(server.jwks_hits(), 1);

    let lenient = builder(issuer_of(&server).allow_untyped_tokens(), &clock)
        .build()
        .expect("valid validator");
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        assert!(
            check(&lenient, &typed(typ)).await.is_ok(),
            "typ {typ:?} with allow_untyped_tokens"
        );
    }
    assert_eq!(server.jwks_hits(), 2);
}

// ---------------------------------------------------------------------------
// Audience and issuer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn audience_must_name_this_resource_exactly() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let base = claims(&server.issuer());
    let token = |aud: Option<Value>| {
        let claims = match aud {
            Some(aud) => set(base.clone(), "aud", aud),
            None => without(base.clone(), "aud"),
        };
        sign(&key, header(&key), claims)
    };
    let wrong = [
        ("missing aud", None),
        (
            "another resource",
            Some(json!("https://other.example.com/mcp")),
        ),
        ("the client id (an ID token's aud)", Some(json!("client-1"))),
        ("the issuer", Some(json!(server.issuer()))),
        (
            "trailing slash",
            Some(json!("https://mcp.example.com/mcp/")),
        ),
        ("uppercase path", Some(json!("https://mcp.example.com/MCP"))),
        (
            "prefix: origin only",
            Some(json!("https://mcp.example.com")),
        ),
        (
            "prefix: shorter path",
            Some(json!("https://mcp.example.com/mc")),
        ),
        ("longer path", Some(json!("https://mcp.example.com/mcp2"))),
        ("sub-path", Some(json!("https://mcp.example.com/mcp/tools"))),
        ("http scheme", Some(json!("http://mcp.example.com/mcp"))),
        (
            "explicit port",
            Some(json!("https://mcp.example.com:443/mcp")),
        ),
        (
            "empty fragment",
            Some(json!("https://mcp.example.com/mcp#")),
        ),
        ("query", Some(json!("https://mcp.example.com/mcp?x=1"))),
        (
            "surrounding space",
            Some(json!(" https://mcp.example.com/mcp")),
        ),
        (
            "suffix domain",
            Some(json!("https://mcp.example.com.evil.example/mcp")),
        ),
        ("empty string", Some(json!(""))),
        ("empty array", Some(json!([]))),
        (
            "array without the resource",
            Some(json!([
                "https://other.example.com/mcp",
                "https://mcp.example.com/mcp/"
            ])),
        ),
    ];
    for (case, aud) in wrong {
        let token = token(aud);
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::WrongAudience),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);

    // Through the stack: 401 invalid_token with the audience reason.
    let outcome = send(
        &validator,
        &format!(
            "Bearer {}",
            token(Some(json!("https://other.example.com/mcp")))
        ),
    )
    .await;
    assert_unauthorized(
        &outcome,
        RejectionKind::WrongAudience,
        "wrong aud via the stack",
    );
    assert_eq!(server.jwks_hits(), 0);

    for (case, aud) in [
        ("the resource", json!(RESOURCE)),
        (
            "uppercase scheme and host (RFC 3986 6.2.2.1)",
            json!("HTTPS://MCP.EXAMPLE.COM/mcp"),
        ),
        (
            "array with the resource",
            json!(["https://other.example.com/mcp", RESOURCE]),
        ),
    ] {
        assert!(check(&validator, &token(Some(aud))).await.is_ok(), "{case}");
    }
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn issuer_must_be_configured_exactly_and_is_checked_before_any_fetch() {
    let key = rsa1(KID);
    let server = MockAuthServer::with_keys(&[&key]).await;
    let clock = TestClock::at(T0);
    // A second configured issuer with a host name and a path, for near misses the loopback issuer cannot have.
    const NAMED: &str = "https://auth.example.com/realms/acme";
    let validator = builder(issuer_of(&server), &clock)
        .add_issuer(Issuer::with_jwks_uri(NAMED, &server.jwks_uri()).expect("valid issuer"))
        .build()
        .expect("valid validator");
    let local = server.issuer();
    let base = claims(&local);
    let token = |iss: Option<Value>| {
        let claims = match iss {
            Some(iss) => set(base.clone(), "iss", iss),
            None => without(base.clone(), "iss"),
        };
        sign(&key, header(&key), claims)
    };

    let near_misses = [
        ("missing iss", None),
        ("null iss", Some(Value::Null)),
        ("iss as an array", Some(json!([local]))),
        ("trailing slash", Some(json!(format!("{local}/")))),
        (
            "uppercase scheme",
            Some(json!(local.replacen("http", "HTTP", 1))),
        ),
        ("prefix", Some(json!(&local[..local.len() - 1]))),
        ("suffix", Some(json!(format!("{local}0")))),
        ("extra path", Some(json!(format!("{local}/realms/acme")))),
        ("leading space", Some(json!(format!(" {local}")))),
        ("trailing slash (named)", Some(json!(format!("{NAMED}/")))),
        (
            "uppercase host (named)",
            Some(json!("https://AUTH.example.com/realms/acme")),
        ),
        (
            "uppercase path (named)",
            Some(json!("https://auth.example.com/realms/ACME")),
        ),
        (
            "prefix (named)",
            Some(json!("https://auth.example.com/realms/acm")),
        ),
        (
            "parent path (named)",
            Some(json!("https://auth.example.com/realms")),
        ),
        (
            "suffix (named)",
            Some(json!("https://auth.example.com/realms/acme2")),
        ),
        (
            "sub-path (named)",
            Some(json!("https://auth.example.com/realms/acme/x")),
        ),
        (
            "http scheme (named)",
            Some(json!("http://auth.example.com/realms/acme")),
        ),
        (
            "explicit port (named)",
            Some(json!("https://auth.example.com:443/realms/acme")),
        ),
        ("fragment (named)", Some(json!(format!("{NAMED}#")))),
        (
            "unconfigured issuer",
            Some(json!("https://evil.example.com")),
        ),
    ];
    for (case, iss) in near_misses {
        // Each token is signed by the configured key, with its kid: only the issuer is wrong.
        assert_eq!(
            check(&validator, &token(iss)).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);

    // Through the stack.
    let outcome = send(
        &validator,
        &format!("Bearer {}", token(Some(json!("https://evil.example.com")))),
    )
    .await;
    assert_unauthorized(
        &outcome,
        RejectionKind::InvalidToken,
        "unconfigured issuer via the stack",
    );
    assert_eq!(server.jwks_hits(), 0);

    // Controls: both configured issuers, exactly, pass (each fetches its key set once).
    assert!(check(&validator, &token(Some(json!(local)))).await.is_ok());
    assert!(check(&validator, &token(Some(json!(NAMED)))).await.is_ok());
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn a_key_of_another_configured_issuer_does_not_verify_this_issuers_tokens() {
    let key_a = rsa1("a");
    let key_b = rsa2("b");
    let server_a = MockAuthServer::with_keys(&[&key_a]).await;
    let server_b = MockAuthServer::with_keys(&[&key_b]).await;
    let clock = TestClock::at(T0);
    let validator = builder(issuer_of(&server_a), &clock)
        .add_issuer(issuer_of(&server_b))
        .build()
        .expect("valid validator");
    let claims_a = claims(&server_a.issuer());
    for (case, head) in [
        ("B's kid", header(&key_b)),
        ("no kid", json!({"alg": "RS256", "typ": "at+jwt"})),
        (
            "A's kid",
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "a"}),
        ),
    ] {
        // iss says A, the signature is B's.
        let token = sign(&key_b, head, claims_a.clone());
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server_a.jwks_hits(), 1);
    assert_eq!(server_b.jwks_hits(), 0);

    let token = sign(&key_b, header(&key_b), claims(&server_b.issuer()));
    let principal = check(&validator, &token).await.expect("B's own token");
    assert_eq!(principal.issuer(), Some(server_b.issuer().as_str()));
    assert_eq!(server_b.jwks_hits(), 1);
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exp_nbf_and_iat_are_checked_at_their_edges() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let base = claims(&server.issuer());
    let with = |name: &str, value: Value| sign(&key, header(&key), set(base.clone(), name, value));
    let refused = [
        (
            "exp + leeway = now",
            with("exp", json!(T0 - LEEWAY)),
            RejectionKind::ExpiredToken,
        ),
        (
            "exp long ago",
            with("exp", json!(T0 - 86_400)),
            RejectionKind::ExpiredToken,
        ),
        ("exp 0", with("exp", json!(0)), RejectionKind::ExpiredToken),
        (
            "nbf = now + leeway + 1",
            with("nbf", json!(T0 + LEEWAY + 1)),
            RejectionKind::InvalidToken,
        ),
        (
            "iat = now + leeway + 1",
            with("iat", json!(T0 + LEEWAY + 1)),
            RejectionKind::InvalidToken,
        ),
        (
            "iat a day ahead",
            with("iat", json!(T0 + 86_400)),
            RejectionKind::InvalidToken,
        ),
        (
            "missing exp",
            sign(&key, header(&key), without(base.clone(), "exp")),
            RejectionKind::InvalidToken,
        ),
        (
            "exp 1e300",
            with("exp", json!(1e300)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp 1e20",
            with("exp", json!(1e20)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp -1",
            with("exp", json!(-1)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp -1e300",
            with("exp", json!(-1e300)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp in the year 10000",
            with("exp", json!(253_402_300_800_u64)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp u64::MAX",
            with("exp", json!(u64::MAX)),
            RejectionKind::InvalidToken,
        ),
        (
            "exp as a string",
            with("exp", json!((T0 + 600).to_string())),
            RejectionKind::InvalidToken,
        ),
        (
            "exp null",
            with("exp", Value::Null),
            RejectionKind::InvalidToken,
        ),
        (
            "exp true",
            with("exp", json!(true)),
            RejectionKind::InvalidToken,
        ),
        (
            "nbf as a string",
            with("nbf", json!("0")),
            RejectionKind::InvalidToken,
        ),
        (
            "nbf -1",
            with("nbf", json!(-1)),
            RejectionKind::InvalidToken,
        ),
        (
            "iat 1e300",
            with("iat", json!(1e300)),
            RejectionKind::InvalidToken,
        ),
    ];
    for (case, token, reason) in refused {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(reason),
            "{case}"
        );
    }
    // None of these needed a key.
    assert_eq!(server.jwks_hits(), 0);

    let accepted = [
        (
            "exp + leeway = now + 1",
            with("exp", json!(T0 - LEEWAY + 1)),
        ),
        ("exp fractional", with("exp", json!(T0 as f64 + 0.5))),
        ("nbf = now + leeway", with("nbf", json!(T0 + LEEWAY))),
        ("nbf = now", with("nbf", json!(T0))),
        ("iat = now + leeway", with("iat", json!(T0 + LEEWAY))),
    ];
    for (case, token) in accepted {
        assert!(check(&validator, &token).await.is_ok(), "{case}");
    }
    assert_eq!(server.jwks_hits(), 1);

    // Through the stack, an expired token says so.
    let outcome = send(
        &validator,
        &format!("Bearer {}", with("exp", json!(T0 - LEEWAY - 1))),
    )
    .await;
    assert_unauthorized(
        &outcome,
        RejectionKind::ExpiredToken,
        "expired via the stack",
    );
}

#[tokio::test]
async fn a_cached_token_expires_when_the_clock_passes_exp() {
    let Setup {
        server,
        key,
        clock,
        validator,
    } = setup().await;
    let exp = T0 + 100;
    let token = sign(
        &key,
        header(&key),
        set(claims(&server.issuer()), "exp", json!(exp)),
    );
    let principal = check(&validator, &token).await.expect("valid at T0");
    assert_eq!(
        principal.expires_at(),
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp))
    );
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(validator.stats().uncached_validations, 1);

    // Still within the leeway: served from the cache.
    clock.set(exp + LEEWAY - 1);
    assert!(check(&validator, &token).await.is_ok());
    assert_eq!(validator.stats().uncached_validations, 1);

    // The cache entry itself lives on in real time (its TTL was set from the clock at T0); the hit must be
    // re-checked against the clock.
    clock.set(exp + LEEWAY);
    assert_eq!(
        check(&validator, &token).await.err(),
        Some(RejectionKind::ExpiredToken)
    );
    assert_eq!(
        validator.stats().uncached_validations,
        1,
        "the expiry was found on the cache hit"
    );
    let outcome = send(&validator, &format!("Bearer {token}")).await;
    assert_unauthorized(
        &outcome,
        RejectionKind::ExpiredToken,
        "after exp via the stack",
    );
    assert_eq!(server.jwks_hits(), 1);
}

// ---------------------------------------------------------------------------
// Parser differentials, size, signatures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_claims_and_header_members_are_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let iss = server.issuer();
    let good_header = r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#;
    let rest = format!(r#""sub":"user-1","iat":{T0},"exp":{}"#, T0 + 600);
    let evil = "https://evil.example.com";
    let other = "https://other.example.com/mcp";
    let payloads = [
        (
            "aud twice, resource first",
            format!(r#"{{"iss":"{iss}","aud":"{RESOURCE}","aud":"{other}",{rest}}}"#),
        ),
        (
            "aud twice, resource last",
            format!(r#"{{"iss":"{iss}","aud":"{other}","aud":"{RESOURCE}",{rest}}}"#),
        ),
        (
            "aud and an escaped aud",
            format!(r#"{{"iss":"{iss}","aud":"{RESOURCE}","\u0061ud":"{other}",{rest}}}"#),
        ),
        (
            "iss and an escaped iss",
            format!(r#"{{"iss":"{iss}","\u0069ss":"{evil}","aud":"{RESOURCE}",{rest}}}"#),
        ),
        (
            "escaped iss first",
            format!(r#"{{"\u0069ss":"{evil}","iss":"{iss}","aud":"{RESOURCE}",{rest}}}"#),
        ),
        (
            "exp twice",
            format!(
                r#"{{"iss":"{iss}","aud":"{RESOURCE}",{rest},"exp":{}}}"#,
                T0 + 86_400
            ),
        ),
        (
            "sub twice",
            format!(r#"{{"iss":"{iss}","aud":"{RESOURCE}",{rest},"sub":"admin"}}"#),
        ),
        (
            "trailing garbage",
            format!(r#"{{"iss":"{iss}","aud":"{RESOURCE}",{rest}}} {{}}"#),
        ),
    ];
    let mut tokens: Vec<(String, String)> = payloads
        .iter()
        .map(|(case, payload)| {
            let token = jwt::sign_raw(
                Algorithm::RS256,
                &key.encoding,
                good_header.as_bytes(),
                payload.as_bytes(),
            );
            ((*case).to_owned(), token)
        })
        .collect();
    let good_payload = format!(r#"{{"iss":"{iss}","aud":"{RESOURCE}",{rest}}}"#);
    for (case, head) in [
        (
            "alg twice",
            r#"{"alg":"RS256","alg":"RS256","kid":"k1","typ":"at+jwt"}"#,
        ),
        (
            "alg and escaped alg none",
            r#"{"alg":"RS256","\u0061lg":"none","kid":"k1","typ":"at+jwt"}"#,
        ),
        (
            "kid twice",
            r#"{"alg":"RS256","kid":"k1","kid":"k2","typ":"at+jwt"}"#,
        ),
        (
            "typ twice",
            r#"{"alg":"RS256","kid":"k1","typ":"JWT","typ":"at+jwt"}"#,
        ),
    ] {
        let token = jwt::sign_raw(
            Algorithm::RS256,
            &key.encoding,
            head.as_bytes(),
            good_payload.as_bytes(),
        );
        tokens.push((case.to_owned(), token));
    }
    for (case, token) in tokens {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);

    // Control: the same hand-written JSON without duplicates passes.
    let token = jwt::sign_raw(
        Algorithm::RS256,
        &key.encoding,
        good_header.as_bytes(),
        good_payload.as_bytes(),
    );
    assert!(check(&validator, &token).await.is_ok());
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn a_token_over_the_size_limit_is_rejected_without_fetching() {
    const MAX: usize = 1024;
    let key = rsa1(KID);
    let server = MockAuthServer::with_keys(&[&key]).await;
    let clock = TestClock::at(T0);
    let validator = builder(issuer_of(&server), &clock)
        .with_max_token_len(MAX)
        .build()
        .expect("valid validator");
    let base = claims(&server.issuer());
    let padded = |n: usize| set(base.clone(), "pad", json!("x".repeat(n)));
    // The length of a signed token, without signing: the RSA-2048 signature is always 342 characters.
    let signature_len = sign(&key, header(&key), padded(0))
        .rsplit('.')
        .next()
        .expect("three segments")
        .len();
    let length = |n: usize| {
        b64(serde_json::to_vec(&header(&key)).expect("serialises")).len()
            + 1
            + b64(serde_json::to_vec(&padded(n)).expect("serialises")).len()
            + 1
            + signature_len
    };
    let largest_fitting = (0..MAX)
        .take_while(|&n| length(n) <= MAX)
        .last()
        .expect("an unpadded token fits");
    let fits = sign(&key, header(&key), padded(largest_fitting));
    let over = sign(&key, header(&key), padded(largest_fitting + 1));
    assert!(
        fits.len() <= MAX && over.len() > MAX,
        "{} {}",
        fits.len(),
        over.len()
    );

    for (case, token) in [
        ("just over the limit", over),
        (
            "far over the limit",
            sign(&key, header(&key), padded(4 * MAX)),
        ),
    ] {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);

    assert!(
        check(&validator, &fits).await.is_ok(),
        "{} bytes",
        fits.len()
    );
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn tampered_swapped_and_truncated_signatures_are_rejected() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let claims = claims(&server.issuer());
    let genuine = sign(&key, header(&key), claims.clone());
    assert!(check(&validator, &genuine).await.is_ok());
    assert_eq!(server.jwks_hits(), 1);

    let segments = |token: &str| -> Vec<String> { token.split('.').map(str::to_owned).collect() };
    let g = segments(&genuine);
    let admin = segments(&sign(
        &key,
        header(&key),
        set(claims.clone(), "sub", json!("admin")),
    ));
    let by_rsa2 = sign(&rsa2(KID), header(&key), claims.clone());
    let ps_header = segments(&sign(
        &key,
        json!({"alg": "PS256", "kid": KID, "typ": "at+jwt"}),
        claims.clone(),
    ));
    let sig = &g[2];
    let cases = [
        (
            "payload of another token",
            format!("{}.{}.{sig}", g[0], admin[1]),
        ),
        (
            "header of another token",
            format!("{}.{}.{sig}", ps_header[0], g[1]),
        ),
        ("signed by rsa2 under rsa1's kid", by_rsa2),
        (
            "last character dropped",
            format!("{}.{}.{}", g[0], g[1], &sig[..sig.len() - 1]),
        ),
        (
            "last four characters dropped",
            format!("{}.{}.{}", g[0], g[1], &sig[..sig.len() - 4]),
        ),
        (
            "half the signature",
            format!("{}.{}.{}", g[0], g[1], &sig[..sig.len() / 2]),
        ),
        ("signature extended", format!("{}.{}.{sig}AAAA", g[0], g[1])),
        ("empty signature", format!("{}.{}.", g[0], g[1])),
        (
            "signature not base64url",
            format!("{}.{}.+{}", g[0], g[1], &sig[1..]),
        ),
        ("one bit flipped", {
            let mut bytes = sig.clone().into_bytes();
            bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
            format!(
                "{}.{}.{}",
                g[0],
                g[1],
                String::from_utf8(bytes).expect("ASCII")
            )
        }),
    ];
    for (case, token) in cases {
        assert_eq!(
            check(&validator, &token).await.err(),
            Some(RejectionKind::InvalidToken),
            "{case}"
        );
    }
    // One refetch, for the PS256 header (its kid names no PS256 key: possibly a rotation); none for the tokens
    // whose key the set has.
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn malformed_expired_and_foreign_tokens_cause_no_key_fetch() {
    let Setup {
        server,
        key,
        validator,
        ..
    } = setup().await;
    let base = claims(&server.issuer());
    let good_header = b64(serde_json::to_vec(&header(&key)).expect("serialises"));
    let good_payload = b64(serde_json::to_vec(&base).expect("serialises"));
    let mut tokens = vec![
        ("garbage segments".to_owned(), "abc.def.ghi".to_owned()),
        (
            "header not JSON".to_owned(),
            format!("{}.{good_payload}.c2ln", b64("not json")),
        ),
        (
            "header a JSON array".to_owned(),
            format!("{}.{good_payload}.c2ln", b64("[\"RS256\"]")),
        ),
        (
            "header not base64url".to_owned(),
            format!("e30=.{good_payload}.c2ln"),
        ),
        (
            "payload not JSON".to_owned(),
            format!("{good_header}.{}.c2ln", b64("not json")),
        ),
        (
            "payload a JSON string".to_owned(),
            format!("{good_header}.{}.c2ln", b64("\"claims\"")),
        ),
        (
            "payload a JSON array".to_owned(),
            format!("{good_header}.{}.c2ln", b64("[]")),
        ),
        (
            "payload empty object".to_owned(),
            format!("{good_header}.{}.c2ln", b64("{}")),
        ),
        ("empty payload".to_owned(), format!("{good_header}..c2ln")),
        ("empty header".to_owned(), format!(".{good_payload}.c2ln")),
        (
            "no subject".to_owned(),
            sign(
                &key,
                header(&key),
                without(without(base.clone(), "sub"), "client_id"),
            ),
        ),
    ];
    for n in 0..20 {
        tokens.push((
            format!("expired #{n}"),
            sign(
                &key,
                header(&key),
                set(base.clone(), "exp", json!(T0 - 3_600 - n)),
            ),
        ));
        tokens.push((
            format!("wrong issuer #{n}"),
            sign(
                &key,
                header(&key),
                set(
                    base.clone(),
                    "iss",
                    json!(format!("https://evil{n}.example.com")),
                ),
            ),
        ));
    }
    for (case, token) in tokens {
        let outcome = check(&validator, &token).await.err();
        let expected = if case.starts_with("expired") {
            RejectionKind::ExpiredToken
        } else {
            RejectionKind::InvalidToken
        };
        assert_eq!(outcome, Some(expected), "{case}");
    }
    assert_eq!(server.jwks_hits(), 0);
    assert_eq!(server.discovery_hits(Discovery::OAuth), 0);
    assert_eq!(server.discovery_hits(Discovery::Oidc), 0);
    assert_eq!(server.other_hits(), 0);
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

const SERVICE_KEY: &str = "pcsa_build_key_0123456789";
const ADA_TOKEN: &str = "pat-ada-0123456789";

fn file_store() -> FileTokenStore {
    FileTokenStore::from_toml(&format!(
        r#"
        [[personal]]
        email = "ada@example.com"
        account_id = "acc-ada"
        organization = "org-a"
        token_sha256 = "{}"
        sites = ["site-a"]

        [[service_account]]
        account_id = "svc-build"
        organization = "org-b"
        key_sha256 = "{}"
        "#,
        token_digest(ADA_TOKEN),
        token_digest(SERVICE_KEY),
    ))
    .expect("valid token store")
}

fn file_store_validator() -> TokenValidator {
    TokenValidator::builder(RESOURCE)
        .with_api_token_verifier(file_store())
        .build()
        .expect("valid validator")
}

#[tokio::test]
async fn service_account_key_from_the_file_store_gives_a_service_account_principal() {
    let validator = file_store_validator();
    let outcome = send(&validator, &format!("Bearer {SERVICE_KEY}")).await;
    let principal = assert_allowed(&outcome, "service key");
    assert_eq!(principal.method(), AuthMethod::ServiceAccountKey);
    assert_eq!(principal.subject(), "svc-build");
    assert_eq!(principal.organization().map(|o| o.as_str()), Some("org-b"));
    assert_eq!(principal.issuer(), None);
    assert_eq!(principal.site_grants(), None);

    // Another key with the prefix is refused; so is the right key sent as a personal token.
    let outcome = send(&validator, "Bearer pcsa_build_key_0123456788").await;
    assert_unauthorized(&outcome, RejectionKind::InvalidToken, "wrong service key");
    let outcome = send(&validator, &basic("svc-build", SERVICE_KEY)).await;
    assert_unauthorized(
        &outcome,
        RejectionKind::InvalidToken,
        "service key as Basic",
    );
}

#[tokio::test]
async fn personal_token_from_the_file_store_gives_a_personal_principal() {
    let validator = file_store_validator();
    let outcome = send(&validator, &basic("ada@example.com", ADA_TOKEN)).await;
    let principal = assert_allowed(&outcome, "personal token");
    assert_eq!(principal.method(), AuthMethod::PersonalApiToken);
    assert_eq!(principal.subject(), "acc-ada");
    assert_eq!(principal.organization().map(|o| o.as_str()), Some("org-a"));
    assert_eq!(
        principal
            .site_grants()
            .map(|sites| sites.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        Some(vec!["site-a"])
    );

    // The personal token is not a service key.
    let outcome = send(&validator, &format!("Bearer {ADA_TOKEN}")).await;
    assert_unauthorized(
        &outcome,
        RejectionKind::InvalidToken,
        "personal token as Bearer",
    );
}

#[tokio::test]
async fn unknown_email_and_wrong_token_get_identical_answers() {
    let validator = file_store_validator();
    let unknown_email = send(&validator, &basic("bob@example.com", ADA_TOKEN)).await;
    let wrong_token = send(&validator, &basic("ada@example.com", "pat-ada-0123456788")).await;
    assert_unauthorized(&unknown_email, RejectionKind::InvalidToken, "unknown email");
    assert_unauthorized(&wrong_token, RejectionKind::InvalidToken, "wrong token");
    assert_eq!(unknown_email.status, wrong_token.status);
    assert_eq!(unknown_email.headers, wrong_token.headers);
    assert_eq!(unknown_email.body, wrong_token.body);
    assert_eq!(unknown_email.reason, wrong_token.reason);
}

#[tokio::test]
async fn a_failed_jwt_is_never_sent_to_the_api_token_verifier() {
    let key = rsa1(KID);
    let server = MockAuthServer::with_keys(&[&key]).await;
    // A verifier that would accept anything it is asked about.
    server.set_verifier(
        200,
        json!({"valid": true, "account_id": "acc-any", "organization": "org-a"}),
    );
    let clock = TestClock::at(T0);
    let validator = builder(issuer_of(&server), &clock)
        .with_api_token_verifier(HttpTokenVerifier::new(&server.verifier_uri()).expect("valid URI"))
        .build()
        .expect("valid validator");
    let base = claims(&server.issuer());
    let cases = [
        (
            "bad signature",
            sign(&rsa2(KID), header(&key), base.clone()),
        ),
        (
            "expired",
            sign(
                &key,
                header(&key),
                set(base.clone(), "exp", json!(T0 - 3_600)),
            ),
        ),
        (
            "wrong issuer",
            sign(
                &key,
                header(&key),
                set(base.clone(), "iss", json!("https://evil.example.com")),
            ),
        ),
        (
            "alg none",
            jwt::unsigned(json!({"alg": "none", "typ": "at+jwt"}), base.clone()),
        ),
        (
            "opaque, no introspection",
            "opaque-token-0123456789".to_owned(),
        ),
    ];
    for (case, token) in cases {
        let outcome = send(&validator, &format!("Bearer {token}")).await;
        let reason = if case == "expired" {
            RejectionKind::ExpiredToken
        } else {
            RejectionKind::InvalidToken
        };
        assert_unauthorized(&outcome, reason, case);
    }
    assert_eq!(server.verifier_hits(), 0);
    // Only the bad signature needed the key set.
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn a_service_account_key_is_never_tried_as_a_jwt_or_introspected() {
    let key = rsa1(KID);
    let server = MockAuthServer::with_keys(&[&key]).await;
    // Introspection would call anything active for this resource; the verifier says no.
    server.set_introspection(
        200,
        json!({"active": true, "sub": "user-1", "aud": RESOURCE, "exp": T0 + 600}),
    );
    let clock = TestClock::at(T0);
    let validator = builder(issuer_of(&server), &clock)
        .with_introspection(
            Introspection::new(
                &server.introspection_uri(),
                "resource-server",
                Secret::new("introspection-secret"),
            )
            .expect("valid introspection"),
        )
        .with_api_token_verifier(HttpTokenVerifier::new(&server.verifier_uri()).expect("valid URI"))
        .build()
        .expect("valid validator");
    let valid_jwt = sign(&key, header(&key), claims(&server.issuer()));
    for (case, token) in [
        ("plain key", SERVICE_KEY.to_owned()),
        // Looks like a valid JWT after the prefix: the prefix decides.
        ("prefix before a valid JWT", format!("{PREFIX}{valid_jwt}")),
    ] {
        let outcome = send(&validator, &format!("Bearer {token}")).await;
        assert_unauthorized(&outcome, RejectionKind::InvalidToken, case);
    }
    assert_eq!(server.verifier_hits(), 2);
    assert_eq!(
        server.last_verifier_body(),
        Some(json!({"kind": "service_account", "key": format!("{PREFIX}{valid_jwt}")}))
    );
    assert_eq!(server.jwks_hits(), 0);
    assert_eq!(server.introspection_hits(), 0);
}

#[tokio::test]
async fn verifier_down_gives_503_with_retry_after_and_is_not_cached() {
    let server = MockAuthServer::start().await;
    server.set_verifier(500, json!({"error": "down"}));
    let validator = TokenValidator::builder(RESOURCE)
        .with_api_token_verifier(HttpTokenVerifier::new(&server.verifier_uri()).expect("valid URI"))
        .build()
        .expect("valid validator");

    let service_key = format!("Bearer {SERVICE_KEY}");
    let personal = basic("ada@example.com", ADA_TOKEN);
    for (n, authorization) in [&service_key, &personal, &service_key, &personal]
        .into_iter()
        .enumerate()
    {
        let outcome = send(&validator, authorization).await;
        assert_unavailable(&outcome, authorization);
        // Every request asks again: a failure is never cached.
        assert_eq!(server.verifier_hits(), n + 1);
    }

    // Once the verifier answers, the same credential is accepted at once.
    server.set_verifier(
        200,
        json!({"valid": true, "account_id": "svc-build", "organization": "org-b"}),
    );
    let outcome = send(&validator, &service_key).await;
    assert_eq!(assert_allowed(&outcome, "recovered").subject(), "svc-build");
    assert_eq!(server.verifier_hits(), 5);
}

#[tokio::test]
async fn verifier_valid_answer_is_cached_and_the_request_names_the_token_kind() {
    let server = MockAuthServer::start().await;
    server.set_verifier(
        200,
        json!({"valid": true, "account_id": "acc-1", "organization": "org-c", "sites": ["site-x"]}),
    );
    let validator = TokenValidator::builder(RESOURCE)
        .with_api_token_verifier(HttpTokenVerifier::new(&server.verifier_uri()).expect("valid URI"))
        .build()
        .expect("valid validator");

    let service_key = format!("Bearer {SERVICE_KEY}");
    for _ in 0..2 {
        let outcome = send(&validator, &service_key).await;
        let principal = assert_allowed(&outcome, "service key");
        assert_eq!(principal.method(), AuthMethod::ServiceAccountKey);
        assert_eq!(principal.subject(), "acc-1");
        assert_eq!(principal.organization().map(|o| o.as_str()), Some("org-c"));
        assert_eq!(server.verifier_hits(), 1);
    }
    assert_eq!(
        server.last_verifier_body(),
        Some(json!({"kind": "service_account", "key": SERVICE_KEY}))
    );

    let personal = basic("ada@example.com", ADA_TOKEN);
    for _ in 0..2 {
        let outcome = send(&validator, &personal).await;
        let principal = assert_allowed(&outcome, "personal token");
        assert_eq!(principal.method(), AuthMethod::PersonalApiToken);
        assert_eq!(principal.subject(), "acc-1");
        assert_eq!(server.verifier_hits(), 2);
    }
    assert_eq!(
        server.last_verifier_body(),
        Some(json!({"kind": "personal", "email": "ada@example.com", "token": ADA_TOKEN}))
    );
}
