//! The demo's development issuer: a fresh P-256 key per run, JWKS and RFC 8414 discovery, and a token-minting
//! endpoint that exists only here.
//!
//! # Security
//! The minting endpoint hands out a token for any subject, scope and sites to whoever asks: it is served on
//! loopback by `portcullis demo` only, and its key lives for one run.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SCOPES_SUPPORTED, SITE_CLAIM};

/// The path of the minting endpoint.
pub(crate) const TOKEN_PATH: &str = "/demo/token";
const JWKS_PATH: &str = "/jwks.json";
const DISCOVERY_PATH: &str = "/.well-known/oauth-authorization-server";
/// Demo tokens live this long unless the request says otherwise.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(8 * 3600);
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a token is minted for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintRequest {
    /// The subject (account id); `acc-ada` unless given.
    #[serde(default)]
    pub(crate) sub: Option<String>,
    /// Space-separated scopes; `mcp:read` unless given.
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// The sites granted; `site-a` unless given.
    #[serde(default)]
    pub(crate) sites: Option<Sites>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// Sites as a JSON array or one string of ids separated by spaces or commas.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Sites {
    List(Vec<String>),
    Text(String),
}

impl Sites {
    fn ids(&self) -> Vec<String> {
        match self {
            Self::List(list) => list.clone(),
            Self::Text(text) => text
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// A minted token and what it grants.
#[derive(Debug, Serialize)]
pub(crate) struct Minted {
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) scope: String,
    pub(crate) sites: Vec<String>,
}

/// The development issuer.
pub(crate) struct DevIssuer {
    issuer: String,
    audience: String,
    kid: String,
    key: EncodingKey,
    jwks: Bytes,
    discovery: Bytes,
    rng: SystemRandom,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// An issuer at `issuer` (its URL, exactly as tokens name it) minting tokens for `audience`, with a key
    /// generated now.
    pub(crate) fn generate(issuer: &str, audience: &str) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a signing key".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| "cannot load the generated signing key".to_owned())?;
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err("unexpected public key encoding".to_owned());
        }
        let kid = format!("demo-{}", random_hex(&rng, 6)?);
        let jwks = json!({ "keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]});
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "scopes_supported": SCOPES_SUPPORTED,
            "token_endpoint_auth_methods_supported": ["none"],
            "demo_token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        });
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks: Bytes::from(jwks.to_string()),
            discovery: Bytes::from(discovery.to_string()),
            rng,
        })
    }

    /// Mints an RFC 9068 access token (`typ: at+jwt`, ES256) for the resource.
    pub(crate) fn mint(&self, request: &MintRequest) -> Result<Minted, String> {
        let sub = request.sub.as_deref().unwrap_or("acc-ada");
        if sub.is_empty() || sub.len() > 128 || !sub.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("`sub` must be 1 to 128 visible ASCII characters".to_owned());
        }
        let scope = request.scope.as_deref().unwrap_or("mcp:read");
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if scopes.len() > 20
            || scopes.iter().any(|s| {
                !s.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            })
        {
            return Err("`scope` must be up to 20 scope tokens separated by spaces".to_owned());
        }
        let scope = scopes.join(" ");
        let sites = request
            .sites
            .as_ref()
            .map_or_else(|| vec!["site-a".to_owned()], Sites::ids);
        if sites.len() > 20
            || sites.iter().any(|s| {
                s.is_empty()
                    || s.len() > 64
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
        {
            return Err(
                "`sites` must be up to 20 site ids of letters, digits, '-', '_' and '.'".to_owned(),
            );
        }
        let lifetime = request
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(format!(
                "`expires_in` must be between 1 and {} seconds",
                MAX_LIFETIME.as_secs()
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_owned())?
            .as_secs();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime.as_secs(),
            "jti": random_hex(&self.rng, 12)?,
            "client_id": "portcullis-demo",
            "scope": scope,
        });
        if let Value::Object(map) = &mut claims {
            map.insert(SITE_CLAIM.to_owned(), json!(sites));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the token: {e}"))?;
        Ok(Minted {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.as_secs(),
            scope,
            sites,
        })
    }

    /// Answers one HTTP request.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, DISCOVERY_PATH) => {
                json_response(StatusCode::OK, self.discovery.clone())
            }
            (&Method::GET | &Method::HEAD, JWKS_PATH) => {
                let mut response = json_response(StatusCode::OK, self.jwks.clone());
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
                response
            }
            (&Method::POST, TOKEN_PATH) => match read_mint_request(req).await {
                Ok(request) => match self.mint(&request) {
                    Ok(minted) => {
                        tracing::info!(
                            target: "portcullis::demo",
                            scope = minted.scope.as_str(),
                            sites = minted.sites.join(" ").as_str(),
                            "minted a demo token",
                        );
                        let body = serde_json::to_vec(&minted).unwrap_or_default();
                        let mut response = json_response(StatusCode::OK, Bytes::from(body));
                        response
                            .headers_mut()
                            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                        response
                    }
                    Err(problem) => bad_request(&problem),
                },
                Err(problem) => bad_request(&problem),
            },
            (_, TOKEN_PATH | JWKS_PATH | DISCOVERY_PATH) => {
                let mut response = Response::new(Full::default());
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                response
            }
            _ => {
                let mut response = Response::new(Full::default());
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }

    /// The issuer as a hyper service.
    pub(crate) fn service(
        self: Arc<Self>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        hyper::service::service_fn(move |req| {
            let issuer = Arc::clone(&self);
            async move { Ok::<_, Infallible>(issuer.handle(req).await) }
        })
    }
}

/// Reads a minting request: JSON, or a form (`sites` may repeat).
async fn read_mint_request(req: Request<Incoming>) -> Result<MintRequest, String> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let body = Limited::new(req.into_body(), 16 * 1024)
        .collect()
        .await
        .map_err(|_| "the request body is unreadable or over 16 KiB".to_owned())?
        .to_bytes();
    if is_json {
        return serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"));
    }
    let mut request = MintRequest::default();
    let mut sites = Vec::new();
    for (name, value) in form_urlencoded::parse(&body) {
        match &*name {
            "sub" => request.sub = Some(value.into_owned()),
            "scope" => request.scope = Some(value.into_owned()),
            "sites" | "site" => sites.extend(Sites::Text(value.into_owned()).ids()),
            "expires_in" => {
                request.expires_in = Some(
                    value
                        .parse()
                        .map_err(|_| "`expires_in` must be a number of seconds".to_owned())?,
                );
            }
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    if !sites.is_empty() {
        request.sites = Some(Sites::List(sites));
    }
    Ok(request)
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad_request(problem: &str) -> Response<Full<Bytes>> {
    let body = json!({ "error": "invalid_request", "error_description": problem });
    json_response(StatusCode::BAD_REQUEST, Bytes::from(body.to_string()))
}

/// `bytes` random bytes as hex.
pub(crate) fn random_hex(rng: &SystemRandom, bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf)
        .map_err(|_| "the system random generator failed".to_owned())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
