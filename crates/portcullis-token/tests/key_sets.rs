//! Key sets against a real JWKS server: discovery, rotation, cooldown, outages and broken answers, with every
//! outbound call counted.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{BearerToken, Credential, RejectionKind, Secret, TokenShape};
use portcullis_lookup::HttpFetcher;
use portcullis_test_support::jwt::{TestKey, header, jwks, now, rsa1, rsa2, sign};
use portcullis_test_support::{Discovery, MockAuthServer};
use portcullis_token::{Issuer, TokenValidator, TokenValidatorBuilder};
use serde_json::{Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn claims(server: &MockAuthServer, jti: &str) -> Value {
    json!({
        "iss": server.issuer(),
        "sub": "user-1",
        "aud": RESOURCE,
        "exp": now() + 600,
        "iat": now(),
        "jti": jti,
        "scope": "mcp:read",
    })
}

fn token(key: &TestKey, server: &MockAuthServer, jti: &str) -> Credential {
    bearer(&sign(key, header(key), claims(server, jti)))
}

fn bearer(token: &str) -> Credential {
    Credential::Bearer(BearerToken::new(
        Secret::new(token),
        TokenShape::classify(token, None),
    ))
}

fn builder(issuer: Issuer) -> TokenValidatorBuilder {
    TokenValidator::builder(RESOURCE)
        .add_issuer(issuer)
        .with_fetcher(
            HttpFetcher::with_limits(Duration::from_millis(500), 64 * 1024).expect("client"),
        )
}

fn direct(server: &MockAuthServer) -> TokenValidator {
    builder(Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"))
        .build()
        .expect("validator")
}

async fn kind_of(
    validator: &TokenValidator,
    credential: &Credential,
) -> Result<String, RejectionKind> {
    validator
        .validate(credential)
        .await
        .map(|p| p.subject().to_owned())
        .map_err(|r| r.kind())
}

#[tokio::test]
async fn discovery_finds_the_key_set_through_rfc_8414_once() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = builder(Issuer::discover(&server.issuer()).expect("issuer"))
        .build()
        .expect("validator");

    for jti in ["a", "b", "c"] {
        assert_eq!(
            kind_of(&validator, &token(&key, &server, jti)).await,
            Ok("user-1".into())
        );
    }
    assert_eq!(server.discovery_hits(Discovery::OAuth), 1);
    assert_eq!(server.discovery_hits(Discovery::Oidc), 0);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    server.set_discovery(Discovery::OAuth, None);
    let validator = builder(Issuer::discover(&server.issuer()).expect("issuer"))
        .build()
        .expect("validator");

    assert_eq!(
        kind_of(&validator, &token(&key, &server, "a")).await,
        Ok("user-1".into())
    );
    assert_eq!(server.discovery_hits(Discovery::OAuth), 1);
    assert_eq!(server.discovery_hits(Discovery::Oidc), 1);
}

#[tokio::test]
async fn discovery_document_naming_another_issuer_is_refused() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let mut forged = server.default_discovery();
    forged["issuer"] = json!(format!("{}/other", server.issuer()));
    server.set_discovery(Discovery::OAuth, Some(forged.clone()));
    server.set_discovery(Discovery::Oidc, Some(forged));
    let validator = builder(Issuer::discover(&server.issuer()).expect("issuer"))
        .build()
        .expect("validator");

    assert_eq!(
        kind_of(&validator, &token(&key, &server, "a")).await,
        Err(RejectionKind::TemporarilyUnavailable)
    );
    assert_eq!(
        server.jwks_hits(),
        0,
        "a key set from an unverified document must not be fetched"
    );
}

#[tokio::test]
async fn key_rotation_refetches_once_then_succeeds() {
    let server = MockAuthServer::start().await;
    let old = rsa1("old");
    let new = rsa2("new");
    server.set_jwks(jwks(&[&old]));
    let validator = direct(&server);
    assert_eq!(
        kind_of(&validator, &token(&old, &server, "a")).await,
        Ok("user-1".into())
    );
    assert_eq!(server.jwks_hits(), 1);

    server.set_jwks(jwks(&[&new]));
    assert_eq!(
        kind_of(&validator, &token(&new, &server, "b")).await,
        Ok("user-1".into())
    );
    assert_eq!(server.jwks_hits(), 2, "one refetch for the new kid");
    assert_eq!(
        kind_of(&validator, &token(&new, &server, "c")).await,
        Ok("user-1".into())
    );
    assert_eq!(
        server.jwks_hits(),
        2,
        "the new key set is used without another fetch"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown() {
    let key = rsa1("real");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = direct(&server);
    assert!(
        kind_of(&validator, &token(&key, &server, "warm"))
            .await
            .is_ok()
    );

    let mut tasks = Vec::new();
    for i in 0..300 {
        let mut forged_key = rsa2(&format!("forged-{i}"));
        forged_key.kid = format!("forged-{i}");
        let credential = token(&forged_key, &server, &format!("f{i}"));
        let validator = validator.clone();
        tasks.push(tokio::spawn(async move {
            validator.validate(&credential).await.map_err(|r| r.kind())
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("join").err(),
            Some(RejectionKind::InvalidToken)
        );
    }
    assert!(
        server.jwks_hits() <= 2,
        "{} fetches for a flood of unknown kids",
        server.jwks_hits()
    );
}

#[tokio::test]
async fn an_issuer_down_at_cold_start_gives_503_then_recovers() {
    let server = MockAuthServer::start().await;
    let key = rsa1("k1");
    // The mock answers 503 until a key set is set.
    let validator =
        builder(Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"))
            .with_cold_retry(Duration::from_millis(100))
            .build()
            .expect("validator");
    let credential = token(&key, &server, "a");
    assert_eq!(
        kind_of(&validator, &credential).await,
        Err(RejectionKind::TemporarilyUnavailable)
    );
    // Within the retry interval, no second fetch: requests fail fast.
    assert_eq!(
        kind_of(&validator, &credential).await,
        Err(RejectionKind::TemporarilyUnavailable)
    );
    assert_eq!(server.jwks_hits(), 1);

    server.set_jwks(jwks(&[&key]));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        kind_of(&validator, &credential).await,
        Ok("user-1".into()),
        "503s were not cached"
    );
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn known_keys_keep_working_while_the_issuer_is_down() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = direct(&server);
    assert!(
        kind_of(&validator, &token(&key, &server, "a"))
            .await
            .is_ok()
    );

    server.set_jwks_response(500, "text/plain", b"down".to_vec());
    // A new token signed by a known key: no fetch needed.
    assert_eq!(
        kind_of(&validator, &token(&key, &server, "b")).await,
        Ok("user-1".into())
    );
    // An unknown kid triggers one refetch, which fails: the last good set stays.
    let stranger = rsa2("k2");
    assert_eq!(
        kind_of(&validator, &token(&stranger, &server, "c")).await,
        Err(RejectionKind::InvalidToken)
    );
    assert_eq!(
        kind_of(&validator, &token(&key, &server, "d")).await,
        Ok("user-1".into())
    );
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn broken_key_set_answers_are_503_at_cold_start_and_never_replace_good_keys() {
    let huge = format!(
        "{{\"keys\":[{}]}}",
        vec!["{\"kty\":\"RSA\"}"; 20_000].join(",")
    );
    let cases: Vec<(&str, u16, &str, Vec<u8>)> = vec![
        (
            "garbage",
            200,
            "application/json",
            b"\x00\x01garbage".to_vec(),
        ),
        (
            "html",
            200,
            "text/html",
            b"<html><body>login</body></html>".to_vec(),
        ),
        (
            "truncated",
            200,
            "application/json",
            b"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"".to_vec(),
        ),
        ("huge", 200, "application/json", huge.into_bytes()),
        (
            "not a key set",
            200,
            "application/json",
            b"{\"issuer\":\"x\"}".to_vec(),
        ),
        ("server error", 500, "application/json", b"{}".to_vec()),
        ("redirect", 302, "text/plain", Vec::new()),
    ];
    let key = rsa1("k1");
    for (case, status, content_type, body) in cases {
        let server = MockAuthServer::start().await;
        server.set_jwks_response(status, content_type, body.clone());
        let validator = direct(&server);
        assert_eq!(
            kind_of(&validator, &token(&key, &server, "a")).await,
            Err(RejectionKind::TemporarilyUnavailable),
            "{case}"
        );

        let server = MockAuthServer::start().await;
        server.set_jwks(jwks(&[&key]));
        let validator = direct(&server);
        assert!(
            kind_of(&validator, &token(&key, &server, "a"))
                .await
                .is_ok(),
            "{case}"
        );
        server.set_jwks_response(status, content_type, body);
        let _ = kind_of(&validator, &token(&rsa2("k2"), &server, "b")).await;
        assert_eq!(server.jwks_hits(), 2, "{case}");
        assert_eq!(
            kind_of(&validator, &token(&key, &server, "c")).await,
            Ok("user-1".into()),
            "{case}: the good key set was lost"
        );
    }
}

#[tokio::test]
async fn one_bad_key_in_a_set_is_skipped() {
    let server = MockAuthServer::start().await;
    let key = rsa1("good");
    server.set_jwks(json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "good"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
        "not even an object",
        key.jwk(),
    ]}));
    let validator = direct(&server);
    assert_eq!(
        kind_of(&validator, &token(&key, &server, "a")).await,
        Ok("user-1".into())
    );
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_one_new_token_validate_it_once() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    server.set_jwks_delay(Duration::from_millis(50));
    let validator = direct(&server);
    let credential = Arc::new(token(&key, &server, "shared"));

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let validator = validator.clone();
        let credential = Arc::clone(&credential);
        tasks.push(tokio::spawn(async move {
            validator
                .validate(&credential)
                .await
                .map(|p| p.subject().to_owned())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").ok().as_deref(), Some("user-1"));
    }
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(
        validator.stats().uncached_validations,
        1,
        "one signature verification"
    );
}

#[tokio::test]
async fn malformed_expired_and_foreign_tokens_cause_no_fetch() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator = direct(&server);
    let mut expired = claims(&server, "x");
    expired["exp"] = json!(now() - 3600);
    let mut foreign = claims(&server, "y");
    foreign["iss"] = json!("https://evil.example.com");
    let mut wrong_aud = claims(&server, "z");
    wrong_aud["aud"] = json!("https://other.example.com/mcp");
    let cases = [
        (
            "malformed",
            bearer("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"),
            RejectionKind::InvalidToken,
        ),
        (
            "expired",
            bearer(&sign(&key, header(&key), expired)),
            RejectionKind::ExpiredToken,
        ),
        (
            "foreign issuer",
            bearer(&sign(&key, header(&key), foreign)),
            RejectionKind::InvalidToken,
        ),
        (
            "wrong audience",
            bearer(&sign(&key, header(&key), wrong_aud)),
            RejectionKind::WrongAudience,
        ),
    ];
    for (case, credential, expected) in cases {
        assert_eq!(
            kind_of(&validator, &credential).await,
            Err(expected),
            "{case}"
        );
    }
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn invalid_tokens_are_remembered_briefly_and_bounded() {
    let key = rsa1("k1");
    let server = MockAuthServer::with_keys(&[&key]).await;
    let validator =
        builder(Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"))
            .with_cache_capacity(50)
            .build()
            .expect("validator");
    let forged = sign(&rsa2("k1"), header(&key), claims(&server, "forged"));
    for _ in 0..5 {
        assert_eq!(
            kind_of(&validator, &bearer(&forged)).await,
            Err(RejectionKind::InvalidToken)
        );
    }
    assert_eq!(
        validator.stats().uncached_validations,
        1,
        "the forged token was checked once"
    );
    for i in 0..500 {
        let forged = sign(
            &rsa2("k1"),
            header(&key),
            claims(&server, &format!("forged-{i}")),
        );
        let _ = kind_of(&validator, &bearer(&forged)).await;
    }
    assert_eq!(server.jwks_hits(), 1);
}
