//! The facade: configuration checked at build time, the RFC 9728 metadata, and which paths are public.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::token::{FileTokenStore, Issuer};
use portcullis::{Config, Portcullis, Rejection, RejectionKind};
use tower::ServiceExt;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn portcullis() -> Portcullis {
    Portcullis::builder(RESOURCE)
        .add_issuer(Issuer::discover("https://auth.example.com").expect("issuer"))
        .scopes_supported(["mcp:read", "mcp:write"])
        .build()
        .expect("stack")
}

async fn call(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Bytes, Option<RejectionKind>) {
    let service = portcullis().protect(tower::service_fn(|_req: Request<_>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"protected content",
        ))))
    }));
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = service
        .oneshot(req.body(Full::<Bytes>::default()).expect("request"))
        .await
        .expect("infallible");
    let reason = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.expect("body").to_bytes(),
        reason,
    )
}

#[tokio::test]
async fn metadata_is_served_at_both_locations_with_the_exact_resource() {
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, headers, body, _) = call(Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["access-control-allow-origin"], "*");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "resource": RESOURCE,
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["mcp:read", "mcp:write"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let (status, headers, _, _) =
        call(Method::POST, "/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
    assert_eq!(portcullis().metadata_url(), METADATA_URL);
}

#[tokio::test]
async fn every_method_on_a_protected_path_is_challenged_with_the_metadata_url() {
    for method in [
        Method::POST,
        Method::GET,
        Method::DELETE,
        Method::PUT,
        Method::OPTIONS,
        Method::HEAD,
    ] {
        let (status, headers, body, reason) = call(method.clone(), "/mcp", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(reason, Some(RejectionKind::MissingCredential));
        assert_eq!(
            headers["www-authenticate"],
            format!("Bearer scope=\"mcp:read mcp:write\", resource_metadata=\"{METADATA_URL}\"")
                .as_str()
        );
        assert!(!body.starts_with(b"protected"), "{method}");
    }
}

#[tokio::test]
async fn only_exact_public_paths_are_public() {
    assert_eq!(call(Method::GET, "/health", &[]).await.0, StatusCode::OK);
    for path in [
        "/health/",
        "/health;x",
        "/health%2f..%2fmcp",
        "/%2e/health",
        "/mcp/../health",
        "/HEALTH",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource/mcp;x",
        "/.well-known/oauth-protected-resource/%6dcp",
        "/.well-known/oauth-protected-resource/mcp/../../../mcp",
        "/mcp?/.well-known/oauth-protected-resource",
        "/mcp",
    ] {
        let (status, _, body, _) = call(Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!body.starts_with(b"protected"), "{path}");
    }
    for header in [
        "x-forwarded-uri",
        "x-original-url",
        "x-rewrite-url",
        "forwarded",
    ] {
        let (status, _, _, _) = call(Method::GET, "/mcp", &[(header, "/health")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
    }
    // A query string on a public path does not make another path public, and is still public itself.
    assert_eq!(
        call(Method::GET, "/health?probe=1", &[]).await.0,
        StatusCode::OK
    );
}

#[test]
fn configuration_errors_are_found_when_the_stack_is_built() {
    let cases: Vec<(&str, Result<Portcullis, portcullis::ConfigError>)> = vec![
        (
            "resource",
            Portcullis::builder("not a url")
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .build(),
        ),
        (
            "resource",
            Portcullis::builder("http://mcp.example.com/mcp")
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .build(),
        ),
        (
            "resource",
            Portcullis::builder("https://mcp.example.com/mcp#x")
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .build(),
        ),
        (
            "issuers",
            Portcullis::builder(RESOURCE)
                .add_authorization_server("https://a.example.com")
                .build(),
        ),
        (
            "authorization_servers",
            Portcullis::builder(RESOURCE)
                .with_api_token_verifier(FileTokenStore::from_toml("").expect("store"))
                .build(),
        ),
        (
            "scope",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .scopes_supported(["bad scope"])
                .build(),
        ),
        (
            "scopes.tools",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .configure_sites(|s| Ok(s.without_body()))
                .configure_scopes(|s| s.add_tool("create", ["mcp:write"]))
                .build(),
        ),
        (
            "service_account_prefix",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .with_service_account_prefix("bad prefix")
                .build(),
        ),
        (
            "scopes_supported",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .scopes_supported(["mcp:read", "offline_access"])
                .build(),
        ),
        (
            "challenge_scopes",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .challenge_scopes(["offline_access"])
                .build(),
        ),
        (
            "scopes.routes",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .configure_scopes(|s| s.add_route("/mcp", ["offline_access"]))
                .build(),
        ),
        (
            "authorization_servers",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
                .add_authorization_server("https://a.example.com/")
                .build(),
        ),
        (
            "authorization_servers",
            Portcullis::builder(RESOURCE)
                .add_issuer(Issuer::discover("https://a.example.com/tenant/").expect("issuer"))
                .add_authorization_server("https://A.example.com/tenant")
                .build(),
        ),
    ];
    for (setting, result) in cases {
        let err = result.expect_err(setting);
        assert_eq!(err.setting(), setting, "{err}");
    }
}

/// A minimal configuration file followed by `tables`.
fn toml(tables: &str) -> String {
    format!(
        "resource = \"https://mcp.example.com/mcp\"\n[[issuer]]\nissuer = \"https://a.example.com\"\n{tables}"
    )
}

/// The stack that a configuration file builds, as its `Debug` shows it (which names no secret).
fn built_layer(tables: &str) -> String {
    let portcullis = Config::from_toml(&toml(tables))
        .expect("parses")
        .build()
        .expect("builds");
    format!("{:?}", portcullis.layer())
}

#[test]
fn token_cache_lifetimes_are_read_from_toml() {
    let cases = [
        (
            "",
            [
                "max_ttl: 300s",
                "introspection_ttl: 60s",
                "api_token_ttl: 300s",
                "negative_ttl: 10s",
            ],
        ),
        (
            "[tokens]\ncache_seconds = 120\nintrospection_cache_seconds = 5\napi_token_cache_seconds = 30\ninvalid_cache_seconds = 0\n",
            [
                "max_ttl: 120s",
                "introspection_ttl: 5s",
                "api_token_ttl: 30s",
                "negative_ttl: 0ns",
            ],
        ),
    ];
    for (tables, expected) in cases {
        let layer = built_layer(tables);
        for field in expected {
            assert!(layer.contains(field), "{field} in {layer}");
        }
    }
}

#[test]
fn session_binding_is_on_unless_turned_off() {
    let defaults = built_layer("");
    assert!(
        defaults.contains("enabled: true, idle: 3600s"),
        "on by default: {defaults}"
    );
    let set = built_layer("[sessions]\ncapacity = 10\nidle_seconds = 60\n");
    assert!(set.contains("enabled: true, idle: 60s"), "{set}");
    let off = built_layer("[sessions]\nbind = false\n");
    assert!(off.contains("enabled: false"), "{off}");
    for (table, setting) in [
        ("bind = false\ncapacity = 10\n", "sessions"),
        ("capacity = 0\n", "sessions.capacity"),
        ("idle_seconds = 0\n", "sessions.idle_seconds"),
    ] {
        let err = Config::from_toml(&toml(&format!("[sessions]\n{table}")))
            .expect("parses")
            .build()
            .expect_err(table);
        assert_eq!(err.setting(), setting, "{table}: {err}");
    }
    let off = Portcullis::builder(RESOURCE)
        .add_issuer(Issuer::discover("https://a.example.com").expect("issuer"))
        .without_mcp_session_binding()
        .build()
        .expect("builds");
    assert!(format!("{:?}", off.layer()).contains("enabled: false"));
}

#[test]
fn toml_errors_name_the_key() {
    let err = Config::from_toml(
        "resource = \"https://mcp.example.com/mcp\"\n[sites]\nheadres = [\"x\"]\n",
    )
    .expect_err("typo");
    assert!(err.to_string().contains("headres"), "{err}");
    let err = Config::from_toml(
        "resource = \"https://mcp.example.com/mcp\"\n[sites]\nbody_limit = \"big\"\n",
    )
    .expect_err("type");
    assert!(err.to_string().contains("body_limit"), "{err}");
    let err =
        Config::from_toml("[[issuer]]\nissuer = \"https://a.example.com\"\n").expect_err("missing");
    assert!(err.to_string().contains("resource"), "{err}");
    let config = Config::from_toml(
        "resource = \"https://mcp.example.com/mcp\"\n[[issuer]]\nissuer = \"https://a.example.com\"\nalgorithms = [\"HS256\"]\n",
    )
    .expect("parses");
    let err = config.build().expect_err("HS256 is refused");
    assert_eq!(err.setting(), "issuer.algorithms");
}

#[tokio::test]
async fn the_stack_allows_the_resource_origin_and_refuses_others_before_the_credential() {
    // No credential in any of these: an allowed origin (or none) gets the 401 challenge, any other a 403.
    for (origin, expected) in [
        (None, RejectionKind::MissingCredential),
        (
            Some("https://mcp.example.com"),
            RejectionKind::MissingCredential,
        ),
        (
            Some("https://evil.example"),
            RejectionKind::OriginNotAllowed,
        ),
        (Some("null"), RejectionKind::OriginNotAllowed),
        (
            Some("http://localhost:5173"),
            RejectionKind::OriginNotAllowed,
        ),
    ] {
        let headers: Vec<_> = origin.map(|o| ("origin", o)).into_iter().collect();
        let (status, _, _, reason) = call(Method::POST, "/mcp", &headers).await;
        assert_eq!(reason, Some(expected), "{origin:?}");
        assert_eq!(status, expected.status(), "{origin:?}");
    }
}

#[test]
fn allowed_origins_are_read_from_toml() {
    let value = |s: &str| http::HeaderValue::from_str(s).expect("valid");
    let built = |tables: &str| {
        Config::from_toml(&toml(tables))
            .expect("parses")
            .build()
            .expect("builds")
    };
    let default = built("");
    let origins = default.allowed_origins();
    assert!(origins.allows(&value("https://mcp.example.com")));
    assert!(!origins.allows(&value("https://app.example.com")));
    assert!(!origins.allows(&value("http://localhost:5173")));

    let configured = built("[origins]\nallowed = [\"https://app.example.com\"]\nloopback = true\n");
    let origins = configured.allowed_origins();
    assert!(origins.allows(&value("https://mcp.example.com")));
    assert!(origins.allows(&value("https://app.example.com")));
    assert!(origins.allows(&value("http://localhost:5173")));
    assert!(!origins.allows(&value("https://evil.example")));

    let err = Config::from_toml(&toml(
        "[origins]\nallowed = [\"https://App.example.com/\"]\n",
    ))
    .expect("parses")
    .build()
    .expect_err("not a serialised origin");
    assert_eq!(err.setting(), "origins.allowed");
}

#[tokio::test]
async fn challenge_scopes_and_the_scope_hierarchy_are_read_from_toml() {
    let file = format!(
        "challenge_scopes = [\"mcp:read\"]\nscopes_supported = [\"mcp:read\", \"mcp:write\"]\n{}",
        toml(
            "[scopes.routes]\n\"/mcp\" = [\"mcp:read\"]\n[scopes.implies]\n\"mcp:write\" = [\"mcp:read\"]\n"
        )
    );
    let portcullis = Config::from_toml(&file)
        .expect("parses")
        .build()
        .expect("builds");
    let service = portcullis.protect(tower::service_fn(|_req: Request<_>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let response = service
        .oneshot(
            Request::post("/mcp")
                .body(Full::<Bytes>::default())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(challenge.contains("scope=\"mcp:read\""), "{challenge}");
    // The implication itself is exercised at the layer (portcullis-policy's tests); here the TOML must build it,
    // and refuse what the layer refuses.
    let err = Config::from_toml(&toml("[scopes.implies]\n\"*\" = [\"mcp:read\"]\n"))
        .expect("parses")
        .build()
        .expect_err("* cannot imply");
    assert_eq!(err.setting(), "scopes.implies");
}

#[test]
fn methods_that_must_name_a_site_are_read_from_toml() {
    let layer = built_layer("[sites]\nrequire_for = [\"tools/call\", \"prompts/get\"]\n");
    assert!(
        layer.contains("require_for: [\"tools/call\", \"prompts/get\"]"),
        "{layer}"
    );
    for (tables, setting) in [
        ("[sites]\nrequire_for = [\"\"]\n", "sites.require_for"),
        (
            "[sites]\nread_body = false\nrequire_for = [\"tools/call\"]\n",
            "sites.require_for",
        ),
    ] {
        let err = Config::from_toml(&toml(tables))
            .expect("parses")
            .build()
            .expect_err(tables);
        assert_eq!(err.setting(), setting, "{err}");
    }
}

#[test]
fn the_site_claim_delimiter_is_read_from_toml_and_checked() {
    let tokens = |extra: &str| format!("[tokens]\nsite_claim = \"sites\"\n{extra}");
    let layer = built_layer(&tokens("site_claim_delimiter = \",\"\n"));
    assert!(layer.contains("delimiter: Some(',')"), "{layer}");
    for bad in [
        "site_claim_delimiter = \";\"\n",
        "site_claim_delimiter = \", \"\n",
    ] {
        let err = Config::from_toml(&toml(&tokens(bad)))
            .expect("parses")
            .build()
            .expect_err(bad);
        assert_eq!(err.setting(), "site_claim_delimiter", "{err}");
    }
}

#[test]
fn key_set_timing_and_the_cache_bound_are_read_from_toml() {
    let default = built_layer("");
    for field in [
        "capacity: 100000",
        "unknown_kid_cooldown: 30s",
        "cold_retry: 5s",
        "max_stale: 86400s",
    ] {
        assert!(default.contains(field), "{field} in {default}");
    }
    let set = built_layer(
        "[tokens]\ncache_capacity = 7\nunknown_kid_cooldown_seconds = 2\nkey_retry_seconds = 3\nmax_key_staleness_seconds = 60\n",
    );
    for field in [
        "capacity: 7",
        "unknown_kid_cooldown: 2s",
        "cold_retry: 3s",
        "max_stale: 60s",
    ] {
        assert!(set.contains(field), "{field} in {set}");
    }
    let err = Config::from_toml(&toml("[tokens]\ncache_capacity = 0\n"))
        .expect("parses")
        .build()
        .expect_err("zero capacity");
    assert_eq!(err.setting(), "cache_capacity");
}
