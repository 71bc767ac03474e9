//! The target of the load run in `scripts/load.sh`: the `axum_mcp` example's routes served twice on loopback,
//! once behind the whole Portcullis stack and once bare, with an in-process development issuer (a fresh P-256
//! key, its JWKS on loopback) that signs one access token for the run.
//!
//! Both serve connections with `TCP_NODELAY`, as [`axum_mcp::serve`] does: without it every MCP call on a kept-alive
//! connection waits about 40 ms for a delayed ACK, and the run would measure that instead of the servers.
//!
//! The bare server puts a fixed `AuthContext` into each request instead of running the stack (the same identity
//! the stack derives from the token), so both run the same handlers on the same data; the difference in
//! throughput is the stack.
//!
//! `cargo run --release -p portcullis-examples --example load_target` prints `STACK_URL=`, `BARE_URL=` and
//! `TOKEN=` lines, then serves until killed.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::core::{AuthContext, AuthMethod, Principal, ScopeList, Site, SiteId, UserProfile};
use portcullis_examples::{Settings, axum_mcp};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The development issuer: a fresh key, its JWKS on loopback.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "key generation")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| "key")?;
    let point = pair.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "load", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", issuer_listener.local_addr()?);
    let jwks_router = Router::new().route(
        "/jwks",
        get(move || async move { axum::Json(jwks.clone()) }),
    );
    tokio::spawn(async move { axum::serve(issuer_listener, jwks_router).await });

    let stack_listener = TcpListener::bind("127.0.0.1:0").await?;
    let bare_listener = TcpListener::bind("127.0.0.1:0").await?;
    let stack_addr = stack_listener.local_addr()?;
    let resource = format!("http://{stack_addr}/mcp");
    let settings = Settings::new(&resource, &issuer).with_jwks_uri(format!("{issuer}/jwks"));
    let portcullis = axum_mcp::portcullis(&settings)?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("load".into());
    header.typ = Some("at+jwt".into());
    let claims = serde_json::json!({
        "iss": issuer, "sub": "load-user", "aud": resource, "client_id": "load-client",
        "scope": "mcp:read mcp:write", "iat": now, "exp": now + 3600, "https://example.com/sites": ["site-a"],
    });
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref()))?;

    // The principal the stack makes of the token, so that both handlers serialise the same identity.
    let principal = Principal::builder(AuthMethod::OAuth, "load-user")
        .with_issuer(issuer.as_str())
        .with_scopes(ScopeList::parse("mcp:read mcp:write")?)
        .with_client_id("load-client")
        .with_site_grants([SiteId::parse("site-a")?])
        .verified();
    let context = AuthContext::new(
        principal.clone(),
        None,
        UserProfile::new("load-user"),
        Vec::new(),
    );
    // An MCP call names its site (`cloudId`), which the stack binds: the bare side's tools see the same.
    let on_site = AuthContext::new(
        principal,
        Some(Site::new(SiteId::parse("site-a")?)),
        UserProfile::new("load-user"),
        Vec::new(),
    );
    // The same routes and the same CORS layer as `app`, with the fixed context instead of the stack.
    let bare = axum_mcp::routes(&portcullis)
        .layer(tower::util::MapRequestLayer::new(
            move |mut req: http::Request<axum::body::Body>| {
                let context = if req.uri().path().starts_with("/mcp") {
                    &on_site
                } else {
                    &context
                };
                req.extensions_mut().insert(context.clone());
                req
            },
        ))
        .layer(axum_mcp::cors(&portcullis));
    println!("STACK_URL=http://{stack_addr}");
    println!("BARE_URL=http://{}", bare_listener.local_addr()?);
    println!("TOKEN={token}");
    let bare_server =
        tokio::spawn(
            async move { axum::serve(bare_listener.tap_io(axum_mcp::no_delay), bare).await },
        );
    axum_mcp::serve(stack_listener, &portcullis).await?;
    bare_server.await??;
    Ok(())
}
