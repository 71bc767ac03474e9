//! [`MockAuthServer`]: an OAuth authorization server on `127.0.0.1:0` serving a JWKS, its discovery documents,
//! an introspection endpoint and an API-token verifier, all reconfigurable at run time and counting their hits.
//! A [`MockServer`] with these routes.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::jwt::{TestKey, jwks};
use crate::mock::{Answer, MockServer};

const JWKS: &str = "/jwks";
const OAUTH: &str = "/.well-known/oauth-authorization-server";
const OIDC: &str = "/.well-known/openid-configuration";
const INTROSPECT: &str = "/introspect";
const VERIFY: &str = "/verify";

/// Which discovery document (RFC 8414 or OpenID Connect Discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `/.well-known/oauth-authorization-server`
    OAuth,
    /// `/.well-known/openid-configuration`
    Oidc,
}

impl Discovery {
    fn path(self) -> &'static str {
        match self {
            Self::OAuth => OAUTH,
            Self::Oidc => OIDC,
        }
    }
}

/// A local HTTP/1.1 authorization server for tests, stopped when dropped.
///
/// `GET /jwks`, `GET` on both discovery documents, `POST /introspect` and `POST /verify`; another method on
/// those paths is `405`, any other path `404`, both counted by [`MockAuthServer::other_hits`].
#[derive(Debug)]
pub struct MockAuthServer {
    server: MockServer,
}

impl MockAuthServer {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// Defaults: `/jwks` answers 503; both discovery documents point at this server; `/introspect` answers
    /// `200 {"active": false}`; `/verify` answers `200 {"valid": false}`.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let this = Self { server };
        let discovery = this.default_discovery();
        let routes = [
            (JWKS, Method::GET, Answer::text(503, "no JWKS configured")),
            (OAUTH, Method::GET, Answer::json(200, &discovery)),
            (OIDC, Method::GET, Answer::json(200, &discovery)),
            (
                INTROSPECT,
                Method::POST,
                Answer::json(200, &json!({ "active": false })),
            ),
            (
                VERIFY,
                Method::POST,
                Answer::json(200, &json!({ "valid": false })),
            ),
        ];
        for (path, method, answer) in routes {
            this.server.route(method, path, answer);
        }
        this
    }

    /// [`MockAuthServer::start`], with the JWKS of `keys` served from `/jwks`.
    pub async fn with_keys(keys: &[&TestKey]) -> Self {
        let server = Self::start().await;
        server.set_jwks(jwks(keys));
        server
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// The issuer identifier: [`Self::base`], no trailing slash.
    pub fn issuer(&self) -> String {
        self.base()
    }

    /// Where the JWKS is served.
    pub fn jwks_uri(&self) -> String {
        self.server.url(JWKS)
    }

    /// Where tokens are introspected.
    pub fn introspection_uri(&self) -> String {
        self.server.url(INTROSPECT)
    }

    /// Where API tokens are verified.
    pub fn verifier_uri(&self) -> String {
        self.server.url(VERIFY)
    }

    /// The default discovery document for this server.
    pub fn default_discovery(&self) -> Value {
        json!({
            "issuer": self.issuer(),
            "jwks_uri": self.jwks_uri(),
            "introspection_endpoint": self.introspection_uri(),
        })
    }

    /// The generic server underneath, for what the methods here do not cover.
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    // --- JWKS ---

    /// Serve `value` from `/jwks` with `200` and `content-type: application/json`.
    pub fn set_jwks(&self, value: Value) {
        self.server.update(JWKS, |a| {
            a.status = 200;
            a.set_json(&value);
        });
    }

    /// Serve an arbitrary response from `/jwks` (garbage, HTML, huge, truncated...).
    pub fn set_jwks_response(&self, status: u16, content_type: &str, body: Vec<u8>) {
        self.server.update(JWKS, |a| {
            a.status = status;
            a.content_type = Some(content_type.to_owned());
            a.set_body(body.clone());
        });
    }

    /// Add (or, with `None`, stop adding) a `Cache-Control` header to `/jwks` responses.
    pub fn set_jwks_cache_control(&self, value: Option<String>) {
        self.server
            .update(JWKS, |a| a.set_header("cache-control", value.as_deref()));
    }

    /// Sleep this long before answering `/jwks` (the hit is counted on arrival).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.server.update(JWKS, |a| a.delay = delay);
    }

    /// Requests to `/jwks`.
    pub fn jwks_hits(&self) -> usize {
        self.server.hits(JWKS)
    }

    // --- discovery ---

    /// Replace a discovery document; `None` makes that endpoint answer 404.
    pub fn set_discovery(&self, which: Discovery, response: Option<Value>) {
        let answer = match response {
            Some(document) => Answer::json(200, &document),
            None => Answer::text(404, "not found"),
        };
        self.server.answer(which.path(), answer);
    }

    /// Requests for a discovery document.
    pub fn discovery_hits(&self, which: Discovery) -> usize {
        self.server.hits(which.path())
    }

    // --- introspection ---

    /// Answer `/introspect` with `status` and `body` as JSON.
    pub fn set_introspection(&self, status: u16, body: Value) {
        self.server.update(INTROSPECT, |a| {
            a.status = status;
            a.set_json(&body);
        });
    }

    /// Answer `/introspect` with raw bytes (still labelled `application/json`).
    pub fn set_introspection_raw(&self, status: u16, body: Vec<u8>) {
        self.server.update(INTROSPECT, |a| {
            a.status = status;
            a.content_type = Some("application/json".to_owned());
            a.set_body(body.clone());
        });
    }

    /// Sleep this long before answering `/introspect` (the hit is counted on arrival).
    pub fn set_introspection_delay(&self, delay: Duration) {
        self.server.update(INTROSPECT, |a| a.delay = delay);
    }

    /// Requests to `/introspect` with `POST`.
    pub fn introspection_hits(&self) -> usize {
        self.server.hits(INTROSPECT)
    }

    /// The `authorization` header of the last `/introspect` request.
    pub fn last_introspection_authorization(&self) -> Option<String> {
        self.server
            .last_request(INTROSPECT)
            .and_then(|r| r.header("authorization"))
    }

    /// The decoded form pairs of the last `/introspect` request body.
    pub fn last_introspection_form(&self) -> Vec<(String, String)> {
        self.server
            .last_request(INTROSPECT)
            .map(|r| r.form())
            .unwrap_or_default()
    }

    // --- API-token verifier ---

    /// Answer `/verify` with `status` and `body` as JSON.
    pub fn set_verifier(&self, status: u16, body: Value) {
        self.server.update(VERIFY, |a| {
            a.status = status;
            a.set_json(&body);
        });
    }

    /// Sleep this long before answering `/verify` (the hit is counted on arrival).
    pub fn set_verifier_delay(&self, delay: Duration) {
        self.server.update(VERIFY, |a| a.delay = delay);
    }

    /// Requests to `/verify` with `POST`.
    pub fn verifier_hits(&self) -> usize {
        self.server.hits(VERIFY)
    }

    /// The `authorization` header of the last `/verify` request.
    pub fn last_verifier_authorization(&self) -> Option<String> {
        self.server
            .last_request(VERIFY)
            .and_then(|r| r.header("authorization"))
    }

    /// The body of the last `/verify` request, parsed as JSON; a body that is not JSON is recorded as a JSON
    /// string of its (lossy UTF-8) text.
    pub fn last_verifier_body(&self) -> Option<Value> {
        self.server.last_request(VERIFY).map(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()))
        })
    }

    /// Requests to any unknown path or with a wrong method.
    pub fn other_hits(&self) -> usize {
        self.server.other_hits()
    }
}
