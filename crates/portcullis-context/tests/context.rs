//! Enrichment from file and HTTP sources (calls counted), outages, and the forwarding rules.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_context::{ConfigureHttpSource, EnrichContextLayer, HttpContext, StaticContext};
use portcullis_core::{
    AuthContext, AuthMethod, Challenge, OrgId, Principal, Rejection, RejectionKind, ScopeList,
    Secret, Site, SiteId,
};
use portcullis_lookup::HttpFetcher;
use portcullis_test_support::{Answer, MockServer};
use tower::{ServiceBuilder, ServiceExt};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

struct Outcome {
    status: StatusCode,
    reason: Option<RejectionKind>,
    retry_after: Option<String>,
    context: Option<AuthContext>,
    headers: Option<HeaderMap>,
}

async fn send(layer: EnrichContextLayer, req: Request<Full<Bytes>>) -> Outcome {
    let seen = Arc::new(Mutex::new(None));
    let seen_inner = Arc::clone(&seen);
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req: Request<Full<Bytes>>| {
                *seen_inner.lock().expect("lock") = Some((
                    req.extensions().get::<AuthContext>().cloned(),
                    req.headers().clone(),
                ));
                async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
            });
    let response = service.oneshot(req).await.expect("infallible");
    let seen = seen.lock().expect("lock").take();
    Outcome {
        status: response.status(),
        reason: response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        retry_after: response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_owned()),
        context: seen.as_ref().and_then(|(c, _)| c.clone()),
        headers: seen.map(|(_, h)| h),
    }
}

fn challenge() -> Challenge {
    Challenge::new(META).expect("valid")
}

fn principal(subject: &str) -> Principal {
    Principal::builder(AuthMethod::OAuth, subject)
        .with_issuer("https://auth.example.com")
        .with_scopes(ScopeList::parse("read write").expect("scopes"))
        .verified()
}

fn site(id: &str) -> Site {
    Site::new(SiteId::parse(id).expect("id")).with_organization(OrgId::new("org-a").expect("org"))
}

fn request(principal: Option<Principal>, site: Option<Site>) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    if let Some(principal) = principal {
        req.extensions_mut().insert(principal);
    }
    if let Some(site) = site {
        req.extensions_mut().insert(site);
    }
    req
}

const FILE: &str = r#"
    [user."acc-ada"]
    email = "ada@example.com"
    display_name = "Ada Lovelace"
    locale = "en-GB"
    time_zone = "Europe/London"

    [[product]]
    site = "site-a"
    key = "jira"
    url = "https://acme.example.net/jira"

    [[product]]
    site = "site-a"
    key = "confluence"
    users = ["acc-bob"]

    [[product]]
    site = "site-b"
    key = "compass"
"#;

#[tokio::test]
async fn the_file_source_gives_the_user_and_the_products_they_can_use_on_the_site() {
    let layer = EnrichContextLayer::new(challenge(), StaticContext::from_toml(FILE).expect("file"));
    let outcome = send(
        layer.clone(),
        request(Some(principal("acc-ada")), Some(site("site-a"))),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    let context = outcome.context.expect("context");
    assert_eq!(context.user().account_id, "acc-ada");
    assert_eq!(context.user().email.as_deref(), Some("ada@example.com"));
    assert_eq!(context.user().display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(context.user().locale.as_deref(), Some("en-GB"));
    assert_eq!(context.user().time_zone.as_deref(), Some("Europe/London"));
    let keys: Vec<_> = context.products().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["jira"],
        "confluence is for bob only, compass is on another site"
    );
    assert_eq!(context.site().map(|s| s.id().as_str()), Some("site-a"));
    assert_eq!(context.principal().subject(), "acc-ada");

    let outcome = send(layer, request(Some(principal("acc-unknown")), None)).await;
    let context = outcome.context.expect("context");
    assert_eq!(context.user().account_id, "acc-unknown");
    assert!(context.products().is_empty());
}

#[tokio::test]
async fn the_http_source_is_asked_once_per_principal_and_site() {
    let server = Directory::start().await;
    let layer = EnrichContextLayer::new(challenge(), server.source());
    for _ in 0..3 {
        let outcome = send(
            layer.clone(),
            request(Some(principal("acc-ada")), Some(site("site-a"))),
        )
        .await;
        assert_eq!(outcome.status, StatusCode::OK);
        let context = outcome.context.expect("context");
        assert_eq!(
            context.user().display_name.as_deref(),
            Some("Ada from HTTP")
        );
        assert_eq!(context.products().len(), 1);
        assert_eq!(
            context.products()[0].url.as_deref(),
            Some("https://acme.example.net/jira")
        );
    }
    assert_eq!((server.profile_hits(), server.product_hits()), (1, 1));
    assert_eq!(
        server.last_authorization().as_deref(),
        Some("Bearer service-token")
    );
    // Another site is another context; no site asks no products.
    assert_eq!(
        send(
            layer.clone(),
            request(Some(principal("acc-ada")), Some(site("site-b")))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(layer, request(Some(principal("acc-ada")), None))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!((server.profile_hits(), server.product_hits()), (3, 2));
}

#[tokio::test]
async fn concurrent_first_requests_load_once() {
    let server = Directory::start().await;
    server.delay(Duration::from_millis(50));
    let layer = EnrichContextLayer::new(challenge(), server.source());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let layer = layer.clone();
        tasks.push(tokio::spawn(async move {
            send(
                layer,
                request(Some(principal("acc-ada")), Some(site("site-a"))),
            )
            .await
            .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join"), StatusCode::OK);
    }
    assert_eq!(server.profile_hits(), 1);
}

#[tokio::test]
async fn a_directory_that_is_down_is_503_and_not_cached() {
    let server = Directory::start().await;
    server.fail(true);
    let layer = EnrichContextLayer::new(challenge(), server.source());
    for attempt in 1..=2 {
        let outcome = send(
            layer.clone(),
            request(Some(principal("acc-ada")), Some(site("site-a"))),
        )
        .await;
        assert_eq!(outcome.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outcome.reason, Some(RejectionKind::TemporarilyUnavailable));
        assert_eq!(outcome.retry_after.as_deref(), Some("5"));
        assert!(outcome.context.is_none(), "the inner service must not run");
        assert_eq!(server.profile_hits(), attempt);
    }
    server.fail(false);
    let outcome = send(
        layer,
        request(Some(principal("acc-ada")), Some(site("site-a"))),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
}

#[tokio::test]
async fn no_principal_is_refused_and_a_planted_context_is_replaced() {
    let layer = EnrichContextLayer::new(challenge(), StaticContext::from_toml(FILE).expect("file"));
    let outcome = send(layer.clone(), request(None, None)).await;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert!(outcome.context.is_none());

    // The first request loads the context, the second is answered from the cache: both replace the forgery.
    for round in ["uncached", "cached"] {
        let mut req = request(Some(principal("acc-ada")), None);
        let forged = AuthContext::new(
            principal("acc-admin"),
            None,
            portcullis_core::UserProfile::new("acc-admin"),
            Vec::new(),
        );
        req.extensions_mut().insert(forged);
        let outcome = send(layer.clone(), req).await;
        let context = outcome.context.expect("context");
        assert_eq!(context.user().account_id, "acc-ada", "{round}");
        assert_eq!(context.principal().subject(), "acc-ada", "{round}");
    }
}

#[tokio::test]
async fn forwarding_strips_the_token_and_spoofed_identity_headers_and_sets_the_real_ones() {
    let layer = EnrichContextLayer::new(challenge(), StaticContext::from_toml(FILE).expect("file"))
        .for_forwarding("X-Portcullis-")
        .expect("namespace")
        .with_identity_headers()
        .expect("identity");
    // The first request loads the context, the second is answered from the cache: both are made safe.
    for _round in ["uncached", "cached"] {
        let mut req = request(Some(principal("acc-ada")), Some(site("site-a")));
        let headers = req.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer secret-token"),
        );
        headers.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic c2VjcmV0"),
        );
        for spoof in [
            "x-portcullis-account-id",
            "X-PORTCULLIS-SITE-ID",
            "x_portcullis_auth_method",
            "X_Portcullis-Scopes",
            "x-portcullis-admin",
            "x_portcullis_",
        ] {
            headers.append(
                http::HeaderName::from_bytes(spoof.as_bytes()).expect("name"),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.insert("x-portcullisx", HeaderValue::from_static("kept"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));

        let outcome = send(layer.clone(), req).await;
        assert_eq!(outcome.status, StatusCode::OK);
        let headers = outcome.headers.expect("headers");
        assert!(headers.get("authorization").is_none());
        assert!(headers.get("proxy-authorization").is_none());
        for (name, value) in headers.iter() {
            assert_ne!(value, "spoofed", "{name} was passed through");
        }
        assert_eq!(headers["x-portcullis-account-id"], "acc-ada");
        assert_eq!(headers["x-portcullis-auth-method"], "oauth");
        assert_eq!(headers["x-portcullis-scopes"], "read write");
        assert_eq!(headers["x-portcullis-site-id"], "site-a");
        assert_eq!(headers["x-portcullis-organization-id"], "org-a");
        assert!(headers.get("x-portcullis-admin").is_none());
        assert_eq!(headers["x-portcullisx"], "kept");
        assert_eq!(headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn forwarding_without_identity_headers_only_strips() {
    let layer = EnrichContextLayer::new(challenge(), StaticContext::from_toml(FILE).expect("file"))
        .for_forwarding("x-portcullis-")
        .expect("namespace");
    let mut req = request(Some(principal("acc-ada")), None);
    req.headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer t"));
    req.headers_mut().insert(
        "x-portcullis-account-id",
        HeaderValue::from_static("spoofed"),
    );
    let headers = send(layer, req).await.headers.expect("headers");
    assert!(headers.get("authorization").is_none());
    assert!(headers.get("x-portcullis-account-id").is_none());
}

#[tokio::test]
async fn oidc_userinfo_is_asked_with_the_users_own_token_and_must_name_the_same_subject() {
    let server = Directory::start().await;
    let with_token = |principal: Principal| {
        let mut req = request(Some(principal), None);
        req.extensions_mut()
            .insert(portcullis_core::Credential::Bearer(
                portcullis_core::BearerToken::new(
                    Secret::new("user-access-token"),
                    portcullis_core::TokenShape::Opaque,
                ),
            ));
        req
    };
    let layer = EnrichContextLayer::new(challenge(), server.userinfo(""));
    let outcome = send(layer.clone(), with_token(principal("acc-ada"))).await;
    assert_eq!(outcome.status, StatusCode::OK);
    let context = outcome.context.expect("context");
    assert_eq!(
        context.user().display_name.as_deref(),
        Some("Ada via userinfo")
    );
    assert_eq!(context.user().time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(
        server.last_authorization().as_deref(),
        Some("Bearer user-access-token")
    );
    assert_eq!(server.profile_hits(), 1);

    // An answer about another subject is not used.
    let layer = EnrichContextLayer::new(challenge(), server.userinfo("-wrong"));
    let outcome = send(layer, with_token(principal("acc-ada"))).await;
    assert_eq!(outcome.status, StatusCode::SERVICE_UNAVAILABLE);

    // API-token principals have no token for the issuer: the account id only, and no call.
    let layer = EnrichContextLayer::new(challenge(), server.userinfo(""));
    let api = Principal::builder(AuthMethod::ServiceAccountKey, "svc-build").verified();
    let outcome = send(layer, with_token(api)).await;
    assert_eq!(
        outcome.context.expect("context").user().account_id,
        "svc-build"
    );
    assert_eq!(
        server.profile_hits(),
        2,
        "only the mismatching call was added"
    );
}

#[test]
fn forwarding_configuration_is_checked() {
    let layer =
        || EnrichContextLayer::new(challenge(), StaticContext::from_toml("").expect("file"));
    for bad in ["", "-", "x-portcullis", "x portcullis-", "x:y-"] {
        assert!(layer().for_forwarding(bad).is_err(), "{bad:?}");
    }
    assert!(layer().with_identity_headers().is_err());
}

/// A user-profile and site-products directory on 127.0.0.1, counting its calls.
struct Directory(MockServer);

/// The paths that answer profiles: counted together by [`Directory::profile_hits`].
const PROFILES: [&str; 3] = ["/profile", "/userinfo", "/userinfo-wrong"];

impl Directory {
    async fn start() -> Self {
        let server = MockServer::start().await;
        server.route_any(
            "/profile",
            Answer::from_fn(200, |req| {
                let query = req.query.as_deref().unwrap_or_default();
                format!(
                    r#"{{"account_id":"acc-ada","display_name":"Ada from HTTP","email":"ada@example.com","q":"{query}"}}"#
                )
                .into()
            }),
        );
        for (path, sub) in [
            ("/userinfo", "acc-ada"),
            ("/userinfo-wrong", "someone-else"),
        ] {
            server.route_any(
                path,
                Answer::new(
                    200,
                    format!(
                        r#"{{"sub":"{sub}","name":"Ada via userinfo","email":"ada@idp.example","zoneinfo":"Europe/Paris"}}"#
                    ),
                ),
            );
        }
        server.route_any(
            "/products",
            Answer::new(
                200,
                r#"[{"key":"jira","url":"https://acme.example.net/jira"}]"#,
            ),
        );
        server.fallback(Answer::new(200, "{}"));
        Self(server)
    }

    fn source(&self) -> HttpContext {
        HttpContext::new(&self.0.url("/profile"))
            .expect("profile")
            .with_products(&self.0.url("/products"))
            .expect("products")
            .with_bearer(Secret::new("service-token"))
            .with_fetcher(
                HttpFetcher::with_limits(Duration::from_millis(500), 8192).expect("fetcher"),
            )
    }

    fn userinfo(&self, suffix: &str) -> HttpContext {
        HttpContext::userinfo(&self.0.url(&format!("/userinfo{suffix}")))
            .expect("userinfo")
            .with_fetcher(
                HttpFetcher::with_limits(Duration::from_millis(500), 8192).expect("fetcher"),
            )
    }

    /// Every path answers 500 (`true`) or 200 again.
    fn fail(&self, fail: bool) {
        self.0
            .update_all(|a| a.status = if fail { 500 } else { 200 });
    }

    fn delay(&self, delay: Duration) {
        self.0.update_all(|a| a.delay = delay);
    }

    /// The `authorization` header of the last request, on any path.
    fn last_authorization(&self) -> Option<String> {
        self.0
            .last_received()
            .and_then(|r| r.header("authorization"))
    }

    fn profile_hits(&self) -> usize {
        PROFILES.iter().map(|path| self.0.hits(path)).sum()
    }

    fn product_hits(&self) -> usize {
        self.0.hits("/products")
    }
}
