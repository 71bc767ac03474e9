//! Shared test harness for the `portcullis-token` integration tests.
//!
//! * [`TestKey`]: the RSA / EC fixture keys with their public JWKs.
//! * [`sign`], [`sign_with`], [`sign_raw`], [`unsigned`]: compact JWS builders
//!   that put the caller's header JSON on the wire exactly as given (no field
//!   is added, so `alg`, `kid`, `typ`, `jku`, `crit`... are all under the
//!   test's control).
//! * [`MockAuthServer`]: a real HTTP/1.1 server on `127.0.0.1:0` serving a
//!   JWKS, discovery documents, an introspection endpoint and an API-token
//!   verifier, all reconfigurable at run time and counting their hits.
//!
//! Use from an integration test with `mod support;`.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

const RSA1_PEM: &str = include_str!("../fixtures/rsa1.pem");
const RSA1_PUB_PEM: &[u8] = include_bytes!("../fixtures/rsa1.pub.pem");
const RSA1_JWK: &str = include_str!("../fixtures/rsa1.jwk.json");
const RSA2_PEM: &str = include_str!("../fixtures/rsa2.pem");
const RSA2_PUB_PEM: &[u8] = include_bytes!("../fixtures/rsa2.pub.pem");
const RSA2_JWK: &str = include_str!("../fixtures/rsa2.jwk.json");
const EC1_PEM: &str = include_str!("../fixtures/ec1.pem");
const EC1_PUB_PEM: &[u8] = include_bytes!("../fixtures/ec1.pub.pem");
const EC1_JWK: &str = include_str!("../fixtures/ec1.jwk.json");

/// A signing key from `tests/fixtures` plus its public forms.
///
/// All fields are public: a test may change `kid` or `alg` (e.g. `RS384` or
/// `PS256` with an RSA key); [`TestKey::jwk`] reflects the change.
#[derive(Clone, Debug)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
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

// ---------------------------------------------------------------------------
// Token builders
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Mock authorization server
// ---------------------------------------------------------------------------

/// Which discovery document (RFC 8414 or OpenID Connect Discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `/.well-known/oauth-authorization-server`
    OAuth,
    /// `/.well-known/openid-configuration`
    Oidc,
}

#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Canned {
    fn json(status: u16, value: &Value) -> Self {
        Canned {
            status,
            content_type: "application/json".into(),
            body: Bytes::from(serde_json::to_vec(value).expect("JSON serialises")),
        }
    }
}

#[derive(Debug)]
struct State {
    jwks: Canned,
    jwks_cache_control: Option<String>,
    jwks_delay: Duration,
    discovery_oauth: Option<Value>,
    discovery_oidc: Option<Value>,
    introspection: Canned,
    introspection_delay: Duration,
    last_introspection_authorization: Option<String>,
    last_introspection_form: Vec<(String, String)>,
    verifier: Canned,
    verifier_delay: Duration,
    last_verifier_authorization: Option<String>,
    last_verifier_body: Option<Value>,
}

#[derive(Debug, Default)]
struct Hits {
    jwks: AtomicUsize,
    discovery_oauth: AtomicUsize,
    discovery_oidc: AtomicUsize,
    introspection: AtomicUsize,
    verifier: AtomicUsize,
    other: AtomicUsize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    hits: Hits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not cascade into every later request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A local HTTP/1.1 authorization server for tests. Aborted on drop.
#[derive(Debug)]
pub struct MockAuthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MockAuthServer {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// Defaults: `/jwks` answers 503; both discovery documents point at this
    /// server; `/introspect` answers `200 {"active": false}`; `/verify`
    /// answers `200 {"valid": false}`.
    pub async fn start() -> MockAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let discovery = json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "introspection_endpoint": format!("{base}/introspect"),
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jwks: Canned {
                    status: 503,
                    content_type: "text/plain".into(),
                    body: Bytes::from_static(b"no JWKS configured"),
                },
                jwks_cache_control: None,
                jwks_delay: Duration::ZERO,
                discovery_oauth: Some(discovery.clone()),
                discovery_oidc: Some(discovery),
                introspection: Canned::json(200, &json!({ "active": false })),
                introspection_delay: Duration::ZERO,
                last_introspection_authorization: None,
                last_introspection_form: Vec::new(),
                verifier: Canned::json(200, &json!({ "valid": false })),
                verifier_delay: Duration::ZERO,
                last_verifier_authorization: None,
                last_verifier_body: None,
            }),
            hits: Hits::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        MockAuthServer { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer identifier: [`Self::base`], no trailing slash.
    pub fn issuer(&self) -> String {
        self.base()
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base())
    }

    pub fn introspection_uri(&self) -> String {
        format!("{}/introspect", self.base())
    }

    pub fn verifier_uri(&self) -> String {
        format!("{}/verify", self.base())
    }

    /// The default discovery document for this server.
    pub fn default_discovery(&self) -> Value {
        json!({
            "issuer": self.issuer(),
            "jwks_uri": self.jwks_uri(),
            "introspection_endpoint": self.introspection_uri(),
        })
    }

    // --- JWKS ---

    /// Serve `value` from `/jwks` with `200` and `content-type: application/json`.
    pub fn set_jwks(&self, value: Value) {
        self.shared.lock().jwks = Canned::json(200, &value);
    }

    /// Serve an arbitrary response from `/jwks` (garbage, HTML, huge, truncated...).
    pub fn set_jwks_response(&self, status: u16, content_type: &str, body: Vec<u8>) {
        self.shared.lock().jwks = Canned {
            status,
            content_type: content_type.to_owned(),
            body: Bytes::from(body),
        };
    }

    /// Add (or, with `None`, stop adding) a `Cache-Control` header to `/jwks` responses.
    pub fn set_jwks_cache_control(&self, value: Option<String>) {
        self.shared.lock().jwks_cache_control = value;
    }

    /// Sleep this long before answering `/jwks` (the hit is counted on arrival).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.shared.lock().jwks_delay = delay;
    }

    pub fn jwks_hits(&self) -> usize {
        self.shared.hits.jwks.load(Ordering::SeqCst)
    }

    // --- discovery ---

    /// Replace a discovery document; `None` makes that endpoint answer 404.
    pub fn set_discovery(&self, which: Discovery, response: Option<Value>) {
        let mut state = self.shared.lock();
        match which {
            Discovery::OAuth => state.discovery_oauth = response,
            Discovery::Oidc => state.discovery_oidc = response,
        }
    }

    pub fn discovery_hits(&self, which: Discovery) -> usize {
        match which {
            Discovery::OAuth => self.shared.hits.discovery_oauth.load(Ordering::SeqCst),
            Discovery::Oidc => self.shared.hits.discovery_oidc.load(Ordering::SeqCst),
        }
    }

    // --- introspection ---

    pub fn set_introspection(&self, status: u16, body: Value) {
        self.shared.lock().introspection = Canned::json(status, &body);
    }

    /// Answer `/introspect` with raw bytes (still labelled `application/json`).
    pub fn set_introspection_raw(&self, status: u16, body: Vec<u8>) {
        self.shared.lock().introspection = Canned {
            status,
            content_type: "application/json".into(),
            body: Bytes::from(body),
        };
    }

    pub fn set_introspection_delay(&self, delay: Duration) {
        self.shared.lock().introspection_delay = delay;
    }

    pub fn introspection_hits(&self) -> usize {
        self.shared.hits.introspection.load(Ordering::SeqCst)
    }

    /// The `authorization` header of the last `/introspect` request.
    pub fn last_introspection_authorization(&self) -> Option<String> {
        self.shared.lock().last_introspection_authorization.clone()
    }

    /// The decoded form pairs of the last `/introspect` request body.
    pub fn last_introspection_form(&self) -> Vec<(String, String)> {
        self.shared.lock().last_introspection_form.clone()
    }

    // --- API-token verifier ---

    pub fn set_verifier(&self, status: u16, body: Value) {
        self.shared.lock().verifier = Canned::json(status, &body);
    }

    pub fn set_verifier_delay(&self, delay: Duration) {
        self.shared.lock().verifier_delay = delay;
    }

    pub fn verifier_hits(&self) -> usize {
        self.shared.hits.verifier.load(Ordering::SeqCst)
    }

    /// The `authorization` header of the last `/verify` request.
    pub fn last_verifier_authorization(&self) -> Option<String> {
        self.shared.lock().last_verifier_authorization.clone()
    }

    /// The body of the last `/verify` request, parsed as JSON; a body that is
    /// not JSON is recorded as a JSON string of its (lossy UTF-8) text.
    pub fn last_verifier_body(&self) -> Option<Value> {
        self.shared.lock().last_verifier_body.clone()
    }

    /// Requests to any unknown path or with a wrong method.
    pub fn other_hits(&self) -> usize {
        self.shared.hits.other.load(Ordering::SeqCst)
    }
}

impl Drop for MockAuthServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task too.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connection tasks so the set does not grow forever.
        while connections.try_join_next().is_some() {}
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(_) => {
                // e.g. EMFILE: back off briefly rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            // Connection errors (client hung up mid-request...) are expected
            // in failure tests and not interesting here.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: u16, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).expect("valid status code");
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type).expect("valid content-type"),
    );
    resp
}

fn canned(c: Canned) -> Response<Full<Bytes>> {
    respond(c.status, &c.content_type, c.body)
}

fn not_found() -> Response<Full<Bytes>> {
    respond(404, "text/plain", Bytes::from_static(b"not found"))
}

fn authorization(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let hits = &shared.hits;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = match (method, path.as_str()) {
        (Method::GET, "/jwks") => {
            hits.jwks.fetch_add(1, Ordering::SeqCst);
            let delay = shared.lock().jwks_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Read the response after the delay so a test can change it meanwhile.
            let (c, cache_control) = {
                let state = shared.lock();
                (state.jwks.clone(), state.jwks_cache_control.clone())
            };
            let mut resp = canned(c);
            if let Some(cc) = cache_control {
                resp.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_str(&cc).expect("valid cache-control"),
                );
            }
            resp
        }
        (Method::GET, "/.well-known/oauth-authorization-server") => {
            hits.discovery_oauth.fetch_add(1, Ordering::SeqCst);
            let doc = shared.lock().discovery_oauth.clone();
            doc.map_or_else(not_found, |v| canned(Canned::json(200, &v)))
        }
        (Method::GET, "/.well-known/openid-configuration") => {
            hits.discovery_oidc.fetch_add(1, Ordering::SeqCst);
            let doc = shared.lock().discovery_oidc.clone();
            doc.map_or_else(not_found, |v| canned(Canned::json(200, &v)))
        }
        (Method::POST, "/introspect") => {
            hits.introspection.fetch_add(1, Ordering::SeqCst);
            let auth = authorization(&req);
            let body = read_body(req).await;
            let form: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let delay = {
                let mut state = shared.lock();
                state.last_introspection_authorization = auth;
                state.last_introspection_form = form;
                state.introspection_delay
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let c = shared.lock().introspection.clone();
            canned(c)
        }
        (Method::POST, "/verify") => {
            hits.verifier.fetch_add(1, Ordering::SeqCst);
            let auth = authorization(&req);
            let body = read_body(req).await;
            let value = serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            let delay = {
                let mut state = shared.lock();
                state.last_verifier_authorization = auth;
                state.last_verifier_body = Some(value);
                state.verifier_delay
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let c = shared.lock().verifier.clone();
            canned(c)
        }
        (_, "/jwks" | "/introspect" | "/verify")
        | (_, "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration") => {
            hits.other.fetch_add(1, Ordering::SeqCst);
            respond(405, "text/plain", Bytes::from_static(b"method not allowed"))
        }
        _ => {
            hits.other.fetch_add(1, Ordering::SeqCst);
            not_found()
        }
    };
    Ok(resp)
}
