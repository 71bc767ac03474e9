//! The fixture signing keys of a test issuer, their JWKS, and compact JWS builders that put the caller's header
//! JSON on the wire exactly as given (no field is added, so `alg`, `kid`, `typ`, `jku`, `crit`... are all under
//! the test's control).
//!
//! Signing goes through `jsonwebtoken`'s crypto provider, which this crate leaves to the crate under test to
//! choose (the token crate's `aws-lc-rs` or `rust-crypto` feature).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const RSA1_PEM: &str = include_str!("../fixtures/rsa1.pem");
const RSA1_PUB_PEM: &[u8] = include_bytes!("../fixtures/rsa1.pub.pem");
const RSA1_JWK: &str = include_str!("../fixtures/rsa1.jwk.json");
const RSA2_PEM: &str = include_str!("../fixtures/rsa2.pem");
const RSA2_PUB_PEM: &[u8] = include_bytes!("../fixtures/rsa2.pub.pem");
const RSA2_JWK: &str = include_str!("../fixtures/rsa2.jwk.json");
const EC1_PEM: &str = include_str!("../fixtures/ec1.pem");
const EC1_PUB_PEM: &[u8] = include_bytes!("../fixtures/ec1.pub.pem");
const EC1_JWK: &str = include_str!("../fixtures/ec1.jwk.json");

/// A signing key from this crate's `fixtures` plus its public forms.
///
/// All fields are public: a test may change `kid` or `alg` (e.g. `RS384` or
/// `PS256` with an RSA key); [`TestKey::jwk`] reflects the change.
#[derive(Clone, Debug)]
pub struct TestKey {
    /// The key id, in the JWK and in [`header`].
    pub kid: String,
    /// The algorithm [`sign`] uses, named in the JWK and in [`header`].
    pub alg: Algorithm,
    /// The private key.
    pub encoding: EncodingKey,
    /// The SPKI public key PEM (`*.pub.pem`), e.g. for HS256 key-confusion attacks.
    pub public_pem: Vec<u8>,
    /// The fixture JWK (`*.jwk.json`) without `kid`/`alg`/`use`.
    base_jwk: Value,
}

impl TestKey {
    /// The public JWK: the fixture's key material plus `kid`, `alg` and `"use": "sig"`.
    pub fn jwk(&self) -> Value {
        let mut jwk = self.base_jwk.clone();
        let obj = jwk.as_object_mut().expect("fixture JWK is a JSON object");
        obj.insert("kid".into(), Value::String(self.kid.clone()));
        obj.insert("alg".into(), Value::String(alg_name(self.alg)));
        obj.insert("use".into(), Value::String("sig".into()));
        jwk
    }

    /// The fixture JWK exactly as stored (no `kid`, `alg` or `use`).
    pub fn bare_jwk(&self) -> Value {
        self.base_jwk.clone()
    }
}

/// RSA 2048 key #1, `RS256`.
pub fn rsa1(kid: &str) -> TestKey {
    rsa_key(kid, RSA1_PEM, RSA1_PUB_PEM, RSA1_JWK)
}

/// RSA 2048 key #2, `RS256`.
pub fn rsa2(kid: &str) -> TestKey {
    rsa_key(kid, RSA2_PEM, RSA2_PUB_PEM, RSA2_JWK)
}

/// P-256 key #1, `ES256`.
pub fn ec1(kid: &str) -> TestKey {
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        // Both jsonwebtoken backends take EC private keys as PKCS#8 DER.
        encoding: EncodingKey::from_ec_der(&pem_to_der(EC1_PEM)),
        public_pem: EC1_PUB_PEM.to_vec(),
        base_jwk: parse_fixture_jwk(EC1_JWK),
    }
}

/// `{"keys": [jwk, ...]}` for the given keys, in order.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// The JOSE name of an algorithm (`"RS256"`, `"ES256"`, ...).
pub fn alg_name(alg: Algorithm) -> String {
    match serde_json::to_value(alg) {
        Ok(Value::String(s)) => s,
        other => panic!("unexpected serialisation of {alg:?}: {other:?}"),
    }
}

fn rsa_key(kid: &str, private_pem: &str, public_pem: &[u8], jwk: &str) -> TestKey {
    // jsonwebtoken is built without `use_pem`, and both of its backends want
    // RSA private keys as PKCS#1 DER: unwrap the PKCS#8 fixture by hand.
    let pkcs8 = pem_to_der(private_pem);
    let pkcs1 = pkcs8_private_key(&pkcs8);
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(pkcs1),
        public_pem: public_pem.to_vec(),
        base_jwk: parse_fixture_jwk(jwk),
    }
}

fn parse_fixture_jwk(text: &str) -> Value {
    let v: Value = serde_json::from_str(text).expect("fixture JWK is valid JSON");
    assert!(v.is_object(), "fixture JWK is a JSON object");
    v
}

/// Base64-decodes the body of a single-block PEM file.
fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("fixture PEM body is base64")
}

/// Splits one DER TLV off the front of `input`: `(tag, contents, rest)`.
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    assert!(input.len() >= 2, "truncated DER");
    let tag = input[0];
    let (len, header) = match input[1] {
        l if l < 0x80 => (usize::from(l), 2),
        l => {
            let n = usize::from(l & 0x7f);
            assert!(
                (1..=4).contains(&n) && input.len() >= 2 + n,
                "bad DER length"
            );
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        }
    };
    assert!(input.len() >= header + len, "truncated DER");
    (tag, &input[header..header + len], &input[header + len..])
}

/// `PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING, ... }`
/// → the contents of `privateKey`.
fn pkcs8_private_key(der: &[u8]) -> &[u8] {
    let (tag, seq, _) = der_tlv(der);
    assert_eq!(tag, 0x30, "PKCS#8: outer SEQUENCE");
    let (tag, _version, rest) = der_tlv(seq);
    assert_eq!(tag, 0x02, "PKCS#8: version INTEGER");
    let (tag, _alg, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "PKCS#8: AlgorithmIdentifier SEQUENCE");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8: privateKey OCTET STRING");
    key
}

/// Base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch, for `exp` / `iat` / `nbf` claims.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `{"alg": <key.alg>, "kid": <key.kid>, "typ": "at+jwt"}`.
pub fn header(key: &TestKey) -> Value {
    json!({ "alg": alg_name(key.alg), "kid": key.kid, "typ": "at+jwt" })
}

/// A compact JWS over `header` and `claims`, signed with `key` using `key.alg`.
///
/// The header is serialised as given: nothing is added or corrected, so it
/// may disagree with the key on purpose.
pub fn sign(key: &TestKey, header: Value, claims: Value) -> String {
    sign_with(key.alg, &key.encoding, header, claims)
}

/// Like [`sign`], with an arbitrary algorithm and key (e.g. HS256 with
/// `EncodingKey::from_secret(&key.public_pem)` for key-confusion attacks).
pub fn sign_with(alg: Algorithm, encoding: &EncodingKey, header: Value, claims: Value) -> String {
    let header = serde_json::to_vec(&header).expect("header serialises");
    let claims = serde_json::to_vec(&claims).expect("claims serialise");
    sign_raw(alg, encoding, &header, &claims)
}

/// Signs byte-exact header and payload JSON (duplicate keys, odd whitespace,
/// invalid JSON...). The bytes are base64url-encoded as they are.
pub fn sign_raw(alg: Algorithm, encoding: &EncodingKey, header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), encoding, alg)
        .unwrap_or_else(|e| panic!("signing with {alg:?} failed: {e}"));
    format!("{message}.{signature}")
}

/// `header.payload.` with an empty signature segment (for `alg: none` attacks).
pub fn unsigned(header: Value, claims: Value) -> String {
    let header = serde_json::to_vec(&header).expect("header serialises");
    let claims = serde_json::to_vec(&claims).expect("claims serialise");
    format!("{}.{}.", b64(header), b64(claims))
}
