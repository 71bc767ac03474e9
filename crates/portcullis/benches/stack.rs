//! The whole Portcullis stack on a warm token against the bare service, in one criterion group (`stack`) so that
//! they read as a ratio.
//!
//! - `bare/tools_call`: an echo service that reads the body, driven with `oneshot`;
//! - `stack/warm_jwt_tools_call`: the same service behind [`Portcullis::layer`]: a cached 1 KB RS256 token with
//!   a site claim, a `tools/call` naming a granted site in its body, a tool scope, an OAuth principal (no policy
//!   lookup) and a cached context;
//! - `stack/warm_jwt_header_site`: as above with the site in the `x-cloud-id` header, no body read, and a route
//!   scope instead of the tool scope;
//! - `stack/warm_jwt_tools_call_mirrored`: the `tools/call` of a 2026-07-28 client: the protocol version in
//!   `_meta` and the `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and `Mcp-Param-CloudId` headers, each checked
//!   against the body; `bare/tools_call_mirrored` is the same request to the bare service, so the two differences
//!   to the bare service show what the header checks add.
//!
//! A second group (`layers`) times the warm path of `GateApiTokens`, `RequireScopes` and `EnrichContext` alone
//! against the bare service.
//!
//! Run with `cargo bench -p portcullis --bench stack`.

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::Portcullis;
use portcullis::token::Issuer;
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const SITE_CLAIM: &str = "https://example.com/sites";
const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"cloudId":"site-a","query":"open incidents assigned to me"}}}"#;
/// [`BODY`] as a 2026-07-28 client sends it.
const MIRRORED_BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"cloudId":"site-a","query":"open incidents assigned to me"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

async fn echo<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let body = req.into_body().collect().await.expect("body").to_bytes();
    Ok(Response::new(Full::new(body)))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let key = jwt::rsa1("k1");
    let server = rt.block_on(MockAuthServer::with_keys(&[&key]));
    let now = jwt::now();
    let token = jwt::sign(
        &key,
        jwt::header(&key),
        json!({
            "iss": server.issuer(), "sub": "557058:f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f", "aud": RESOURCE,
            "client_id": "bench-client", "scope": "mcp:read mcp:write", "iat": now, "exp": now + 3600,
            SITE_CLAIM: ["site-a", "site-b"], "filler": "x".repeat(560),
        }),
    );
    let portcullis = |header_site: bool| {
        Portcullis::builder(RESOURCE)
            .add_issuer(
                Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("issuer"),
            )
            .configure_validator(|v| v.with_site_claim(SITE_CLAIM))
            .configure_sites(move |sites| {
                if header_site {
                    Ok(sites.without_body().add_header("x-cloud-id")?)
                } else {
                    sites.add_param_header("Mcp-Param-CloudId", "/params/arguments/cloudId")
                }
            })
            .configure_scopes(move |scopes| {
                if header_site {
                    scopes.add_route("/mcp", ["mcp:read"])
                } else {
                    scopes.add_tool("search", ["mcp:read"])
                }
            })
            .build()
            .expect("stack")
    };
    let request = |header_site: bool| {
        let mut builder = Request::post("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if header_site {
            builder = builder.header("x-cloud-id", "site-a");
        }
        builder
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .expect("request")
    };

    let mirrored = || {
        Request::post("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "search")
            .header("mcp-param-cloudid", "site-a")
            .body(Full::new(Bytes::from_static(MIRRORED_BODY.as_bytes())))
            .expect("request")
    };

    let bare = ServiceBuilder::new().service_fn(echo::<Full<Bytes>>);
    let body_stack = ServiceBuilder::new()
        .layer(portcullis(false).layer())
        .service_fn(echo);
    let header_stack = ServiceBuilder::new()
        .layer(portcullis(true).layer())
        .service_fn(echo);
    // Warm the key set, the token cache and the context cache; and check every variant answers 200.
    rt.block_on(async {
        assert_eq!(
            bare.oneshot(request(false)).await.expect("bare").status(),
            StatusCode::OK
        );
        for _ in 0..2 {
            let response = body_stack
                .clone()
                .oneshot(request(false))
                .await
                .expect("stack");
            let reason = response
                .extensions()
                .get::<portcullis::Rejection>()
                .map(|r| r.kind());
            assert_eq!(response.status(), StatusCode::OK, "{reason:?}");
            let response = header_stack
                .clone()
                .oneshot(request(true))
                .await
                .expect("stack");
            assert_eq!(response.status(), StatusCode::OK);
            let response = body_stack.clone().oneshot(mirrored()).await.expect("stack");
            assert_eq!(response.status(), StatusCode::OK);
        }
    });

    let mut group = c.benchmark_group("stack");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1));
    group.bench_function("bare/tools_call", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.oneshot(request(false)).await.expect("bare") });
    });
    group.bench_function("stack/warm_jwt_tools_call", |b| {
        b.to_async(&rt).iter(|| async {
            body_stack
                .clone()
                .oneshot(request(false))
                .await
                .expect("stack")
        });
    });
    group.bench_function("stack/warm_jwt_header_site", |b| {
        b.to_async(&rt).iter(|| async {
            header_stack
                .clone()
                .oneshot(request(true))
                .await
                .expect("stack")
        });
    });
    group.bench_function("bare/tools_call_mirrored", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.oneshot(mirrored()).await.expect("bare") });
    });
    group.bench_function("stack/warm_jwt_tools_call_mirrored", |b| {
        b.to_async(&rt)
            .iter(|| async { body_stack.clone().oneshot(mirrored()).await.expect("stack") });
    });
    group.finish();

    layers(c, &rt);
}

/// The warm path of the policy and context layers alone, each against the bare service: a service-account
/// principal whose organization's policy is cached, a scope check on a tool, and a cached context.
fn layers(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    use portcullis::context::{EnrichContextLayer, StaticContext};
    use portcullis::core::{
        AuthMethod, Challenge, JsonRpcCall, OrgId, Principal, ScopeList, Site, SiteId,
    };
    use portcullis::policy::{GateApiTokensLayer, RequireScopesLayer, StaticPolicies};

    let challenge =
        Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
            .expect("valid");
    let principal = Principal::builder(AuthMethod::ServiceAccountKey, "svc-build")
        .with_organization(OrgId::new("org-a").expect("org"))
        .with_scopes(ScopeList::parse("mcp:read mcp:write").expect("scopes"))
        .verified();
    let site = Site::new(SiteId::parse("site-a").expect("id"))
        .with_organization(OrgId::new("org-a").expect("org"));
    let request = || {
        let mut req = Request::post("/mcp")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .expect("request");
        req.extensions_mut().insert(principal.clone());
        req.extensions_mut().insert(site.clone());
        req.extensions_mut()
            .insert(JsonRpcCall::new("tools/call", Some("search")));
        req
    };
    let policies = StaticPolicies::from_toml("[organization.org-a]\nservice_account_keys = true")
        .expect("policies");
    let gate = ServiceBuilder::new()
        .layer(GateApiTokensLayer::new(challenge.clone(), policies))
        .service_fn(echo);
    let scopes = ServiceBuilder::new()
        .layer(
            RequireScopesLayer::new(challenge.clone())
                .add_tool("search", ["mcp:read"])
                .expect("tool"),
        )
        .service_fn(echo);
    let context = StaticContext::from_toml(
        "[user.svc-build]\ndisplay_name = 'Build'\n[[product]]\nsite = 'site-a'\nkey = 'jira'",
    )
    .expect("context");
    let enrich = ServiceBuilder::new()
        .layer(EnrichContextLayer::new(challenge, context))
        .service_fn(echo);
    let bare = ServiceBuilder::new().service_fn(echo::<Full<Bytes>>);
    rt.block_on(async {
        for _ in 0..2 {
            assert_eq!(
                gate.clone()
                    .oneshot(request())
                    .await
                    .expect("gate")
                    .status(),
                StatusCode::OK
            );
            assert_eq!(
                scopes
                    .clone()
                    .oneshot(request())
                    .await
                    .expect("scopes")
                    .status(),
                StatusCode::OK
            );
            assert_eq!(
                enrich
                    .clone()
                    .oneshot(request())
                    .await
                    .expect("enrich")
                    .status(),
                StatusCode::OK
            );
        }
    });

    let mut group = c.benchmark_group("layers");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1));
    group.bench_function("bare/echo", |b| {
        b.to_async(rt)
            .iter(|| async { bare.oneshot(request()).await.expect("bare") });
    });
    group.bench_function("gate_api_tokens/warm", |b| {
        b.to_async(rt)
            .iter(|| async { gate.clone().oneshot(request()).await.expect("gate") });
    });
    group.bench_function("require_scopes/tool", |b| {
        b.to_async(rt)
            .iter(|| async { scopes.clone().oneshot(request()).await.expect("scopes") });
    });
    group.bench_function("enrich_context/warm", |b| {
        b.to_async(rt)
            .iter(|| async { enrich.clone().oneshot(request()).await.expect("enrich") });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
