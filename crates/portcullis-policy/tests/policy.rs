//! The API-token gate and the scope requirements, through a tower stack, with a real HTTP policy source.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_core::{
    AuthMethod, Challenge, JsonRpcCall, OrgId, Principal, Rejection, RejectionKind, ScopeList,
    Site, SiteId,
};
use portcullis_lookup::HttpFetcher;
use portcullis_policy::{
    ConfigureHttpSource, GateApiTokensLayer, HttpPolicies, RequireScopesLayer, StaticPolicies,
};
use portcullis_test_support::{Answer, MockServer};
use tower::{ServiceBuilder, ServiceExt};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn challenge() -> Challenge {
    Challenge::new(META).expect("valid")
}

struct Outcome {
    status: StatusCode,
    challenge: Option<String>,
    reason: Option<RejectionKind>,
    inner_calls: usize,
}

/// Sends one request through `layer` in front of a counting inner service.
macro_rules! send_through {
    ($layer:expr, $req:expr) => {{
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let service =
            ServiceBuilder::new()
                .layer($layer)
                .service_fn(move |_req: Request<Full<Bytes>>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                    }
                });
        let response = service.oneshot($req).await.expect("infallible");
        Outcome {
            status: response.status(),
            challenge: response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().expect("ascii").to_owned()),
            reason: response
                .extensions()
                .get::<Rejection>()
                .map(Rejection::kind),
            inner_calls: calls.load(Ordering::SeqCst),
        }
    }};
}

async fn send(layer: GateApiTokensLayer, req: Request<Full<Bytes>>) -> Outcome {
    send_through!(layer, req)
}

async fn send_scoped(layer: RequireScopesLayer, req: Request<Full<Bytes>>) -> Outcome {
    send_through!(layer, req)
}

fn principal(method: AuthMethod, org: Option<&str>, scopes: &str) -> Principal {
    let mut builder = Principal::builder(method, "subject-1")
        .with_scopes(ScopeList::parse(scopes).expect("scopes"));
    if let Some(org) = org {
        builder = builder.with_organization(OrgId::new(org).expect("org"));
    }
    builder.verified()
}

fn request(principal: Option<Principal>, site_org: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .body(Full::default())
        .expect("request");
    if let Some(principal) = principal {
        req.extensions_mut().insert(principal);
    }
    if let Some(org) = site_org {
        let site = Site::new(SiteId::parse("site-a").expect("id"))
            .with_organization(OrgId::new(org).expect("org"));
        req.extensions_mut().insert(site);
    }
    req
}

const POLICIES: &str = r#"
    [organization.both]
    personal_api_tokens = true
    service_account_keys = true

    [organization.personal-only]
    personal_api_tokens = true

    [organization.service-only]
    service_account_keys = true

    [organization.none]
"#;

fn gate() -> GateApiTokensLayer {
    GateApiTokensLayer::new(
        challenge(),
        StaticPolicies::from_toml(POLICIES).expect("policies"),
    )
}

#[track_caller]
fn assert_disabled(outcome: &Outcome, case: &str) {
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(
        outcome.reason,
        Some(RejectionKind::ApiTokensDisabled),
        "{case}"
    );
    assert_eq!(outcome.inner_calls, 0, "{case}");
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"API-token authentication is disabled by the \
                 organization's admin; use OAuth 2.1\", resource_metadata=\"{META}\""
            )
            .as_str()
        ),
        "{case}"
    );
}

#[tokio::test]
async fn the_policy_allows_personal_tokens_and_service_keys_separately() {
    let cases = [
        ("both", AuthMethod::PersonalApiToken, true),
        ("both", AuthMethod::ServiceAccountKey, true),
        ("personal-only", AuthMethod::PersonalApiToken, true),
        ("personal-only", AuthMethod::ServiceAccountKey, false),
        ("service-only", AuthMethod::PersonalApiToken, false),
        ("service-only", AuthMethod::ServiceAccountKey, true),
        ("none", AuthMethod::PersonalApiToken, false),
        ("none", AuthMethod::ServiceAccountKey, false),
        ("unknown-org", AuthMethod::PersonalApiToken, false),
        ("unknown-org", AuthMethod::ServiceAccountKey, false),
    ];
    // One layer for every case, each sent twice: the first answer looks the policy up, the second is decided
    // from the cache, and both must agree.
    let layer = gate();
    for round in ["uncached", "cached"] {
        for (org, method, allowed) in cases {
            let case = format!("{org} {method} ({round})");
            let outcome = send(
                layer.clone(),
                request(Some(principal(method, Some(org), "")), None),
            )
            .await;
            if allowed {
                assert_eq!(outcome.status, StatusCode::OK, "{case}");
                assert_eq!(outcome.inner_calls, 1, "{case}");
            } else {
                assert_disabled(&outcome, &case);
            }
        }
    }
}

#[tokio::test]
async fn the_site_owner_decides_not_the_principals_home_organization() {
    // Home organization allows everything, the site's owner allows nothing.
    let outcome = send(
        gate(),
        request(
            Some(principal(AuthMethod::ServiceAccountKey, Some("both"), "")),
            Some("none"),
        ),
    )
    .await;
    assert_disabled(&outcome, "site owned by a disabling organization");
    let outcome = send(
        gate(),
        request(
            Some(principal(AuthMethod::ServiceAccountKey, Some("none"), "")),
            Some("both"),
        ),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    // A bound site whose owner is unknown is refused, whatever the home organization allows.
    let mut req = request(
        Some(principal(AuthMethod::PersonalApiToken, Some("both"), "")),
        None,
    );
    req.extensions_mut()
        .insert(Site::new(SiteId::parse("site-x").expect("id")));
    assert_disabled(&send(gate(), req).await, "site without an organization");
    // No site and no home organization: refused.
    let outcome = send(
        gate(),
        request(
            Some(principal(AuthMethod::PersonalApiToken, None, "")),
            None,
        ),
    )
    .await;
    assert_disabled(&outcome, "no organization at all");
}

#[tokio::test]
async fn oauth_principals_pass_untouched_without_any_lookup() {
    let server = PolicyServer::start().await;
    server.answer(500, "{}");
    let layer = GateApiTokensLayer::new(challenge(), server.source());
    let outcome = send(
        layer,
        request(
            Some(principal(AuthMethod::OAuth, Some("none"), "")),
            Some("none"),
        ),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.inner_calls, 1);
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn no_principal_is_refused() {
    let outcome = send(gate(), request(None, None)).await;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.reason, Some(RejectionKind::MissingCredential));
    assert_eq!(outcome.inner_calls, 0);
}

#[tokio::test]
async fn a_policy_lookup_that_fails_denies_api_tokens_and_is_not_cached() {
    let server = PolicyServer::start().await;
    server.answer(503, "{}");
    let layer = GateApiTokensLayer::new(challenge(), server.source());
    for method in [AuthMethod::PersonalApiToken, AuthMethod::ServiceAccountKey] {
        let outcome = send(
            layer.clone(),
            request(Some(principal(method, Some("org-a"), "")), None),
        )
        .await;
        assert_disabled(&outcome, "lookup down");
    }
    assert_eq!(server.hits(), 2, "failures are not cached");
    server.answer(
        200,
        r#"{"personal_api_tokens": true, "service_account_keys": true}"#,
    );
    let outcome = send(
        layer,
        request(
            Some(principal(AuthMethod::PersonalApiToken, Some("org-a"), "")),
            None,
        ),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_or_malformed_policy_source_denies() {
    let server = PolicyServer::start().await;
    server.answer(200, "<html>");
    let layer = GateApiTokensLayer::new(challenge(), server.source());
    let outcome = send(
        layer,
        request(
            Some(principal(AuthMethod::ServiceAccountKey, Some("org-a"), "")),
            None,
        ),
    )
    .await;
    assert_disabled(&outcome, "malformed");

    server.answer(200, r#"{"service_account_keys": true}"#);
    server.delay(Duration::from_millis(800));
    let layer = GateApiTokensLayer::new(challenge(), server.source());
    let outcome = send(
        layer,
        request(
            Some(principal(AuthMethod::ServiceAccountKey, Some("org-a"), "")),
            None,
        ),
    )
    .await;
    assert_disabled(&outcome, "slow");
}

#[tokio::test]
async fn an_unknown_organization_at_the_http_source_is_disabled() {
    let server = PolicyServer::start().await;
    server.answer(404, "{}");
    let layer = GateApiTokensLayer::new(challenge(), server.source());
    let outcome = send(
        layer,
        request(
            Some(principal(AuthMethod::ServiceAccountKey, Some("org-a"), "")),
            None,
        ),
    )
    .await;
    assert_disabled(&outcome, "404");
    assert_eq!(server.last_query().as_deref(), Some("organization=org-a"));
}

#[tokio::test]
async fn a_policy_change_takes_effect_within_the_ttl() {
    let server = PolicyServer::start().await;
    server.answer(200, r#"{"personal_api_tokens": true}"#);
    let layer =
        GateApiTokensLayer::with_ttl(challenge(), server.source(), Duration::from_millis(300));
    let send_personal = || {
        send(
            layer.clone(),
            request(
                Some(principal(AuthMethod::PersonalApiToken, Some("org-a"), "")),
                None,
            ),
        )
    };
    assert_eq!(send_personal().await.status, StatusCode::OK);
    server.answer(200, r#"{"personal_api_tokens": false}"#);
    assert_eq!(
        send_personal().await.status,
        StatusCode::OK,
        "cached within the TTL"
    );
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_disabled(&send_personal().await, "after the TTL");
    assert_eq!(server.hits(), 2);
}

fn scoped(path: &str, principal_scopes: &str, call: Option<JsonRpcCall>) -> Request<Full<Bytes>> {
    let mut req = Request::post(path)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    req.extensions_mut()
        .insert(principal(AuthMethod::OAuth, None, principal_scopes));
    if let Some(call) = call {
        req.extensions_mut().insert(call);
    }
    req
}

fn scopes_layer() -> RequireScopesLayer {
    RequireScopesLayer::new(challenge())
        .add_route("/mcp", ["mcp:use"])
        .expect("route")
        .add_route("/admin/...", ["admin"])
        .expect("route")
        .add_tool("create_page", ["pages:write", "pages:read"])
        .expect("tool")
        .add_tool("search", ["pages:read"])
        .expect("tool")
}

#[tokio::test]
async fn insufficient_scope_for_a_tool_names_every_scope_needed() {
    let call = || Some(JsonRpcCall::new("tools/call", Some("create_page")));
    let outcome = send_scoped(scopes_layer(), scoped("/mcp", "mcp:use pages:read", call())).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert_eq!(outcome.reason, Some(RejectionKind::InsufficientScope));
    assert_eq!(outcome.inner_calls, 0);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\", scope=\"mcp:use pages:write \
                 pages:read\", resource_metadata=\"{META}\"",
                RejectionKind::InsufficientScope.description()
            )
            .as_str()
        )
    );
    let outcome = send_scoped(
        scopes_layer(),
        scoped("/mcp", "pages:read pages:write mcp:use", call()),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    // Other tools and other methods need only the route's scopes.
    for call in [
        JsonRpcCall::new("tools/call", Some("search")),
        JsonRpcCall::new("tools/list", None),
        JsonRpcCall::new("tools/call", Some("unlisted")),
    ] {
        let needs_read = call.tool() == Some("search");
        let outcome = send_scoped(scopes_layer(), scoped("/mcp", "mcp:use", Some(call))).await;
        assert_eq!(outcome.status == StatusCode::OK, !needs_read);
    }
}

#[tokio::test]
async fn insufficient_scope_for_a_route_names_the_route_scopes() {
    let outcome = send_scoped(
        scopes_layer(),
        scoped("/admin/users", "mcp:use", Some(JsonRpcCall::new("x", None))),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    let challenge = outcome.challenge.expect("challenge");
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    for (path, ok) in [
        ("/admin", false),
        ("/administrator", true),
        ("/mcp/x", true),
        ("/other", true),
    ] {
        let outcome = send_scoped(
            scopes_layer(),
            scoped(path, "", Some(JsonRpcCall::new("x", None))),
        )
        .await;
        assert_eq!(outcome.status == StatusCode::OK, ok, "{path}");
    }
}

#[tokio::test]
async fn without_the_site_layer_a_body_with_an_unknown_tool_is_refused() {
    let outcome = send_scoped(scopes_layer(), scoped("/mcp", "mcp:use", None)).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert_eq!(outcome.reason, Some(RejectionKind::Forbidden));
    assert_eq!(outcome.inner_calls, 0);
    // A GET (no body) needs no tool.
    let mut get = Request::get("/mcp").body(Full::default()).expect("request");
    get.extensions_mut()
        .insert(principal(AuthMethod::OAuth, None, "mcp:use"));
    assert_eq!(
        send_scoped(scopes_layer(), get).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn grpc_insufficient_scope_is_permission_denied() {
    let mut req = scoped("/mcp", "", Some(JsonRpcCall::new("x", None)));
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let service = ServiceBuilder::new().layer(scopes_layer()).service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    );
    let response = service.oneshot(req).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
}

/// Where the policy endpoint answers.
const POLICY_PATH: &str = "/policies";

/// A policy endpoint on 127.0.0.1 whose answer can be changed, counting its hits.
struct PolicyServer(MockServer);

impl PolicyServer {
    async fn start() -> Self {
        let server = MockServer::start().await;
        server.route_any(POLICY_PATH, Answer::new(200, "{}"));
        Self(server)
    }

    fn source(&self) -> HttpPolicies {
        HttpPolicies::new(&self.0.url(POLICY_PATH))
            .expect("endpoint")
            .with_fetcher(
                HttpFetcher::with_limits(Duration::from_millis(300), 4096).expect("fetcher"),
            )
    }

    fn answer(&self, status: u16, body: &str) {
        self.0.update(POLICY_PATH, |a| {
            a.status = status;
            a.set_body(body.to_owned());
        });
    }

    fn delay(&self, delay: Duration) {
        self.0.update(POLICY_PATH, |a| a.delay = delay);
    }

    fn hits(&self) -> usize {
        self.0.hits(POLICY_PATH)
    }

    fn last_query(&self) -> Option<String> {
        self.0.last_request(POLICY_PATH).and_then(|r| r.query)
    }
}

// ---------------------------------------------------------------------------
// Scope hierarchy (MCP 2026-07-28: servers account for broader scopes)
// ---------------------------------------------------------------------------

fn hierarchy() -> RequireScopesLayer {
    RequireScopesLayer::new(challenge())
        .add_route("/read", ["mcp:read"])
        .and_then(|l| l.add_route("/write", ["mcp:write"]))
        .and_then(|l| l.add_tool("delete_site", ["sites:delete"]))
        .and_then(|l| l.add_implication("mcp:write", ["mcp:read"]))
        .and_then(|l| l.add_implication("owner", ["mcp:write"]))
        .and_then(|l| l.add_implication("admin", ["*"]))
        .and_then(|l| l.add_implication("a", ["b"]))
        .and_then(|l| l.add_implication("b", ["a", "c"]))
        .and_then(|l| l.add_route("/c", ["c"]))
        .expect("valid hierarchy")
}

#[tokio::test]
async fn broader_scopes_grant_the_narrower_ones_they_imply() {
    let tool = || Some(JsonRpcCall::new("tools/call", Some("delete_site")));
    for (path, held, call, passes) in [
        ("/read", "mcp:read", None, true),
        ("/read", "mcp:write", None, true),
        ("/read", "owner", None, true), // owner -> mcp:write -> mcp:read
        ("/write", "owner", None, true),
        ("/write", "mcp:read", None, false), // implication is one way
        ("/read", "admin", None, true),
        ("/write", "admin", None, true),
        ("/read", "delete_site", None, false),
        ("/read", "sites:delete", tool(), false),
        ("/read", "admin", tool(), true),
        ("/read", "mcp:read sites:delete", tool(), true),
        ("/read", "owner", tool(), false),
        ("/c", "a", None, true), // a -> b -> c, through a cycle
        ("/c", "b", None, true),
        ("/c", "c", None, true),
        ("/c", "mcp:read", None, false),
    ] {
        // Not a tool call unless said: the route's scopes alone.
        let call = call.or_else(|| Some(JsonRpcCall::new("tools/list", None)));
        let outcome = send_scoped(hierarchy(), scoped(path, held, call)).await;
        let case = format!("{path} with {held}");
        assert_eq!(
            outcome.status == StatusCode::OK,
            passes,
            "{case}: {:?}",
            outcome.reason
        );
        assert_eq!(outcome.inner_calls, usize::from(passes), "{case}");
        if !passes {
            assert_eq!(
                outcome.reason,
                Some(RejectionKind::InsufficientScope),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_refusal_names_the_scopes_the_operation_needs_not_the_broader_ones() {
    let outcome = send_scoped(
        hierarchy(),
        scoped(
            "/write",
            "mcp:read",
            Some(JsonRpcCall::new("tools/list", None)),
        ),
    )
    .await;
    let challenge = outcome.challenge.expect("challenge");
    assert!(challenge.contains("scope=\"mcp:write\""), "{challenge}");
    assert!(!challenge.contains("owner"), "{challenge}");
    assert!(!challenge.contains("admin"), "{challenge}");
}

#[test]
fn implications_and_scope_rules_are_checked_when_built() {
    let layer = || RequireScopesLayer::new(challenge());
    for (case, result) in [
        ("* implies", layer().add_implication("*", ["a"]).map(drop)),
        ("bad scope", layer().add_implication("a b", ["c"]).map(drop)),
        (
            "bad narrower",
            layer().add_implication("a", ["c\""]).map(drop),
        ),
        (
            "offline_access implied",
            layer().add_implication("a", ["offline_access"]).map(drop),
        ),
        (
            "offline_access on a route",
            layer().add_route("/x", ["offline_access"]).map(drop),
        ),
        (
            "offline_access on a tool",
            layer()
                .add_tool("t", ["mcp:read", "offline_access"])
                .map(drop),
        ),
    ] {
        assert!(result.is_err(), "{case}");
    }
}
