//! Self-tests of the shared test harness (`portcullis-test-support`) as the token tests use it: the fixture
//! keys and token builders, and the mock authorization server.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use portcullis_test_support::jwt::{self, TestKey};
use portcullis_test_support::{Discovery, MockAuthServer, RawResponse, send_raw};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Sends one request with `Connection: close` and reads the whole response.
async fn raw_request(
    server: &MockAuthServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    send_raw(
        server.addr(),
        &portcullis_test_support::raw_request(method, path, headers, body),
    )
    .await
}

/// `GET path` without headers.
async fn get(server: &MockAuthServer, path: &str) -> RawResponse {
    raw_request(server, "GET", path, &[], b"").await
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM.
fn spki_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"));
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).unwrap()
}

fn claims() -> Value {
    json!({ "iss": "https://issuer.test", "sub": "alice", "exp": jwt::now() + 300 })
}

fn decoding_key(key: &TestKey) -> DecodingKey {
    let jwk: Jwk = serde_json::from_value(key.jwk()).expect("JWK parses");
    DecodingKey::from_jwk(&jwk).expect("decoding key from JWK")
}

fn verify(token: &str, key: &DecodingKey, alg: Algorithm) -> jsonwebtoken::errors::Result<Value> {
    jsonwebtoken::decode::<Value>(token, key, &Validation::new(alg)).map(|d| d.claims)
}

#[tokio::test]
async fn rs256_tokens_verify_against_fixture_jwks() {
    let k1 = jwt::rsa1("rsa-1");
    let k2 = jwt::rsa2("rsa-2");

    let jwk = k1.jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["kid"], "rsa-1");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert!(k1.bare_jwk().get("kid").is_none());

    let t1 = jwt::sign(&k1, jwt::header(&k1), claims());
    let t2 = jwt::sign(&k2, jwt::header(&k2), claims());

    let hdr = jsonwebtoken::decode_header(&t1).expect("header decodes");
    assert_eq!(hdr.alg, Algorithm::RS256);
    assert_eq!(hdr.kid.as_deref(), Some("rsa-1"));
    assert_eq!(hdr.typ.as_deref(), Some("at+jwt"));

    let c = verify(&t1, &decoding_key(&k1), Algorithm::RS256).expect("rsa1 token verifies");
    assert_eq!(c["sub"], "alice");
    verify(&t2, &decoding_key(&k2), Algorithm::RS256).expect("rsa2 token verifies");

    // Cross-checks: the keys really differ.
    assert!(verify(&t1, &decoding_key(&k2), Algorithm::RS256).is_err());
    assert!(verify(&t2, &decoding_key(&k1), Algorithm::RS256).is_err());

    // The JWK modulus is the one inside the SPKI public PEM.
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256);
    assert!(spki_der(&k1.public_pem).windows(n.len()).any(|w| w == n));
    let n_ne =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    verify(&t1, &n_ne, Algorithm::RS256).expect("rsa1 token verifies with n/e");

    let set = jwt::jwks(&[&k1, &k2]);
    assert_eq!(set["keys"].as_array().unwrap().len(), 2);
    assert_eq!(set["keys"][1]["kid"], "rsa-2");
}

#[tokio::test]
async fn es256_token_verifies_against_fixture_jwk() {
    let k = jwt::ec1("ec-1");
    let jwk = k.jwk();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");

    let t = jwt::sign(&k, jwt::header(&k), claims());
    let hdr = jsonwebtoken::decode_header(&t).unwrap();
    assert_eq!(hdr.alg, Algorithm::ES256);
    let c = verify(&t, &decoding_key(&k), Algorithm::ES256).expect("ec1 token verifies");
    assert_eq!(c["iss"], "https://issuer.test");

    // The JWK point is the one inside the SPKI public PEM (uncompressed: 04 || x || y).
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    assert_eq!(point.len(), 65);
    assert!(spki_der(&k.public_pem).ends_with(&point));

    // An RSA JWK does not verify it.
    assert!(verify(&t, &decoding_key(&jwt::rsa1("x")), Algorithm::ES256).is_err());
}

#[tokio::test]
async fn attack_builders() {
    let k = jwt::rsa1("rsa-1");

    // The header goes on the wire exactly as given.
    let header =
        json!({ "alg": "RS256", "kid": "other", "jku": "https://evil.test/jwks", "crit": ["x"] });
    let t = jwt::sign(&k, header.clone(), claims());
    let first = t.split('.').next().unwrap();
    let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap();
    assert_eq!(decoded, header);
    assert!(!t.contains('='));

    // HS256 keyed with the public PEM (key confusion).
    let hs = jwt::sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&k.public_pem),
        json!({ "alg": "HS256", "kid": "rsa-1" }),
        claims(),
    );
    verify(
        &hs,
        &DecodingKey::from_secret(&k.public_pem),
        Algorithm::HS256,
    )
    .expect("HS256 with the PEM as secret verifies as HS256");
    assert!(verify(&hs, &decoding_key(&k), Algorithm::HS256).is_err());

    // Byte-exact header.
    let raw = jwt::sign_raw(
        Algorithm::RS256,
        &k.encoding,
        br#"{"alg":"none","alg":"RS256"}"#,
        br#"{"sub":"x"}"#,
    );
    assert_eq!(raw.split('.').count(), 3);

    let none = jwt::unsigned(json!({ "alg": "none" }), claims());
    assert!(none.ends_with('.'));
    assert_eq!(none.split('.').count(), 3);
    assert!(none.split('.').nth(2).unwrap().is_empty());
}

#[tokio::test]
async fn jwks_and_discovery_endpoints() {
    let server = MockAuthServer::start().await;
    assert!(server.base().starts_with("http://127.0.0.1:"));
    assert_eq!(server.issuer(), server.base());
    assert_eq!(server.jwks_uri(), format!("{}/jwks", server.base()));

    // Default: 503.
    let r = get(&server, "/jwks").await;
    assert_eq!(r.status, 503);
    assert_eq!(server.jwks_hits(), 1);

    let k = jwt::rsa1("rsa-1");
    server.set_jwks(jwt::jwks(&[&k]));
    server.set_jwks_cache_control(Some("max-age=60".into()));
    let r = get(&server, "/jwks").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.json(), jwt::jwks(&[&k]));
    assert_eq!(server.jwks_hits(), 2);

    server.set_jwks_cache_control(None);
    server.set_jwks_response(200, "text/html", b"<html>oops</html>".to_vec());
    let r = get(&server, "/jwks").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.body, "<html>oops</html>");

    // Delay.
    server.set_jwks_delay(Duration::from_millis(200));
    let started = Instant::now();
    let r = get(&server, "/jwks").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(server.jwks_hits(), 4);

    // Discovery.
    let r = get(&server, "/.well-known/oauth-authorization-server").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["issuer"], server.issuer());
    assert_eq!(doc["jwks_uri"], server.jwks_uri());
    assert_eq!(doc["introspection_endpoint"], server.introspection_uri());
    assert_eq!(server.discovery_hits(Discovery::OAuth), 1);
    assert_eq!(server.discovery_hits(Discovery::Oidc), 0);

    server.set_discovery(Discovery::Oidc, None);
    let r = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(r.status, 404);
    assert_eq!(server.discovery_hits(Discovery::Oidc), 1);
    server.set_discovery(Discovery::Oidc, Some(json!({ "issuer": "elsewhere" })));
    let r = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(r.json()["issuer"], "elsewhere");

    // Unknown path.
    let r = get(&server, "/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(server.other_hits(), 1);
    assert_eq!(server.jwks_hits(), 4);
}

#[tokio::test]
async fn introspection_endpoint_records_requests() {
    let server = MockAuthServer::start().await;
    let path = server
        .introspection_uri()
        .strip_prefix(&server.base())
        .unwrap()
        .to_owned();

    let r = raw_request(
        &server,
        "POST",
        &path,
        &[
            ("Authorization", "Basic Y2xpZW50OnNlY3JldA=="),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"token=abc%2Bdef&token_type_hint=access_token",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "active": false }));
    assert_eq!(server.introspection_hits(), 1);
    assert_eq!(
        server.last_introspection_authorization().as_deref(),
        Some("Basic Y2xpZW50OnNlY3JldA==")
    );
    assert_eq!(
        server.last_introspection_form(),
        vec![
            ("token".to_owned(), "abc+def".to_owned()),
            ("token_type_hint".to_owned(), "access_token".to_owned()),
        ]
    );

    server.set_introspection(200, json!({ "active": true, "sub": "bob" }));
    let r = raw_request(&server, "POST", "/introspect", &[], b"token=x").await;
    assert_eq!(r.json()["sub"], "bob");
    assert_eq!(server.last_introspection_authorization(), None);
    assert_eq!(server.introspection_hits(), 2);

    server.set_introspection_raw(500, b"{not json".to_vec());
    let r = raw_request(&server, "POST", "/introspect", &[], b"token=x").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "{not json");

    // Wrong method.
    let r = get(&server, "/introspect").await;
    assert_eq!(r.status, 405);
    assert_eq!(server.introspection_hits(), 3);
}

#[tokio::test]
async fn verifier_endpoint_records_requests() {
    let server = MockAuthServer::start().await;
    let r = raw_request(
        &server,
        "POST",
        "/verify",
        &[("Content-Type", "application/json")],
        br#"{"token":"pk_123"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "valid": false }));
    assert_eq!(server.verifier_hits(), 1);
    assert_eq!(
        server.last_verifier_body(),
        Some(json!({ "token": "pk_123" }))
    );

    server.set_verifier(200, json!({ "valid": true, "subject": "svc" }));
    server.set_verifier_delay(Duration::from_millis(50));
    let started = Instant::now();
    let r = raw_request(&server, "POST", "/verify", &[], b"not json").await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(r.json()["subject"], "svc");
    assert_eq!(server.last_verifier_body(), Some(json!("not json")));
    assert_eq!(server.verifier_hits(), 2);
}

#[tokio::test]
async fn server_stops_on_drop() {
    let server = MockAuthServer::start().await;
    let addr = server.addr();
    assert_eq!(get(&server, "/nope").await.status, 404);
    drop(server);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "listener still accepting after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
