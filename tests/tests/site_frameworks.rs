//! Site binding behind real servers, over TCP on 127.0.0.1: an axum router, a tonic gRPC service (site from
//! metadata) and a plain hyper service. Each runs the real stack, `ExtractCredentialLayer` ->
//! `ValidateTokenLayer` (service-account keys from a `FileTokenStore`, with their site grants) -> `BindSiteLayer`,
//! and shows allowed and rejected requests, and that the application received exactly the bytes that were sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::{Challenge, Site};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_site::BindSiteLayer;
use portcullis_test_support::raw_request;
use portcullis_tests::{Expect, RawResponse, Spawned, WwwAuthenticate, send_raw};
use portcullis_token::{FileTokenStore, TokenValidator, ValidateTokenLayer, token_digest};

const META: &str = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp";
/// Granted `site-a` and `site-b`.
const KEY_AB: &str = "pcsa_alpha_4f1c9e0b7d2a";
/// Granted no site (`sites = []`).
const KEY_EMPTY: &str = "pcsa_empty_8b3d5a6c1e0f";
/// Its entry lists no sites at all, and no grants source is configured.
const KEY_UNLISTED: &str = "pcsa_unlisted_2c7e9d4b";
/// A small limit, so that a request over it is a few kilobytes and sits whole in the socket buffers.
const BODY_LIMIT: usize = 4096;

fn challenge() -> Challenge {
    Challenge::new(META).expect("valid metadata URL")
}

/// The two layers that put a `Principal` (with its site grants) into the request extensions.
fn auth_layers() -> (ExtractCredentialLayer, ValidateTokenLayer) {
    let store = FileTokenStore::from_toml(&format!(
        r#"
        [[service_account]]
        account_id = "svc-alpha"
        organization = "org-a"
        key_sha256 = "{}"
        sites = ["site-a", "site-b"]

        [[service_account]]
        account_id = "svc-empty"
        organization = "org-a"
        key_sha256 = "{}"
        sites = []

        [[service_account]]
        account_id = "svc-unlisted"
        organization = "org-a"
        key_sha256 = "{}"
        "#,
        token_digest(KEY_AB),
        token_digest(KEY_EMPTY),
        token_digest(KEY_UNLISTED),
    ))
    .expect("store");
    let validator = TokenValidator::builder("http://127.0.0.1/mcp")
        .with_api_token_verifier(store)
        .build()
        .expect("validator");
    let extract = ExtractCredentialLayer::new(challenge())
        .with_service_account_prefix("pcsa_")
        .expect("prefix");
    (extract, ValidateTokenLayer::new(validator, challenge()))
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A `tools/call` body that no JSON library would write back the same way: spacing, key order, an escaped
/// `\u00e9`, an escaped `\/`, UTF-8 text and an exponent. Any re-serialisation would change its bytes.
fn tools_call(site: &str) -> String {
    format!(
        "{{ \"jsonrpc\": \"2.0\", \"id\": 7,\n  \"method\": \"tools/call\",\n  \"params\": {{\"name\": \"search\", \
         \"arguments\": {{\"query\": \"caf\\u00e9 na\u{ef}ve \\/ \u{2713}\", \"limit\": 1.0e3, \"cloudId\": \"{site}\"}}}}\t}}\n"
    )
}

/// A `tools/call` that names no site.
fn tools_call_unsited() -> String {
    r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"search","arguments":{"query":"x"}}}"#
        .to_owned()
}

/// A `tools/call` padded with a long argument to `len` bytes or more.
fn large_tools_call(site: &str, len: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"search","arguments":{{"cloudId":"{site}","query":"{}"}}}}}}"#,
        "q".repeat(len)
    )
}

/// A whole HTTP/1.1 JSON `POST` with `Content-Length`.
fn http_post(path: &str, authorization: Option<&str>, body: &str) -> Vec<u8> {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(authorization.map(|a| ("Authorization", a)));
    raw_request("POST", path, &headers, body.as_bytes())
}

/// A whole HTTP/1.1 request with `Transfer-Encoding: chunked`, the body cut at `cuts` (byte offsets, which may
/// fall inside a key or a UTF-8 character).
fn post_chunked(path: &str, authorization: &str, body: &str, cuts: &[usize]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .into_bytes();
    let bytes = body.as_bytes();
    let mut start = 0;
    for end in cuts.iter().copied().chain([bytes.len()]) {
        let chunk = &bytes[start..end];
        if !chunk.is_empty() {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        start = end;
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// The request reached the application, which bound `site` and received exactly `body`.
#[track_caller]
fn assert_passed(response: &RawResponse, site: &str, body: &str) {
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-bound-site"), Some(site));
    assert_eq!(
        response.body, body,
        "the application received other bytes than were sent"
    );
}

/// A rejection answered before the application, with its typed reason in the JSON body and, for 400/401/403,
/// a challenge pointing to the resource metadata.
#[track_caller]
fn assert_rejected(response: &RawResponse, status: u16, reason: &str) {
    let challenge = if matches!(status, 400 | 401 | 403) {
        WwwAuthenticate::Metadata
    } else {
        WwwAuthenticate::Absent
    };
    Expect::rejected(status, reason)
        .challenge(challenge)
        .check(response, META);
    assert_eq!(response.header("x-bound-site"), None);
}

/// A server task on a loopback port, stopped when dropped.
struct Served {
    addr: SocketAddr,
    _task: Spawned,
}

mod axum_router {
    use axum::Router;
    use axum::extract::Request as AxumRequest;
    use axum::response::{IntoResponse, Response as AxumResponse};
    use axum::routing::post;
    use tower::ServiceBuilder;

    use super::*;

    /// The application: answers with the bytes it received and the site bound in the request extensions.
    async fn echo(req: AxumRequest) -> AxumResponse {
        let site = req
            .extensions()
            .get::<Site>()
            .map(|site| site.id().to_string());
        match axum::body::to_bytes(req.into_body(), usize::MAX).await {
            Ok(bytes) => match site {
                Some(site) => ([("x-bound-site", site)], bytes).into_response(),
                None => bytes.into_response(),
            },
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }

    async fn server() -> (Served, Arc<AtomicUsize>) {
        let (extract, validate) = auth_layers();
        let bind = BindSiteLayer::new(challenge())
            .add_path_template("/ex/{product}/{cloudId}/...")
            .expect("template")
            .with_body_limit(BODY_LIMIT)
            .expect("limit");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let handler = move |req: AxumRequest| {
            counted.fetch_add(1, Ordering::SeqCst);
            echo(req)
        };
        let app = Router::new()
            .route("/mcp", post(handler.clone()))
            .route("/ex/{product}/{cloud_id}/mcp", post(handler))
            .layer(
                ServiceBuilder::new()
                    .layer(extract)
                    .layer(validate)
                    .layer(bind),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let task = Spawned::new(async move {
            axum::serve(listener, app).await.expect("axum serves");
        });
        (Served { addr, _task: task }, calls)
    }

    #[tokio::test]
    async fn granted_site_reaches_the_handler_with_identical_bytes() {
        let (server, calls) = server().await;
        let auth = bearer(KEY_AB);
        for (named, bound) in [("site-a", "site-a"), ("site-b", "site-b")] {
            let body = tools_call(named);
            let response = send_raw(server.addr, &http_post("/mcp", Some(&auth), &body)).await;
            assert_passed(&response, bound, &body);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Ids are compared exactly as the handler reads them: another spelling is not the granted site.
        let body = tools_call("SITE-B");
        let response = send_raw(server.addr, &http_post("/mcp", Some(&auth), &body)).await;
        assert_rejected(&response, 403, "site_not_granted");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn site_not_granted_is_403_with_resource_metadata() {
        let (server, calls) = server().await;
        for (key, site) in [
            (KEY_AB, "site-c"),
            (KEY_EMPTY, "site-a"),
            (KEY_UNLISTED, "site-a"),
        ] {
            let request = http_post("/mcp", Some(&bearer(key)), &tools_call(site));
            let response = send_raw(server.addr, &request).await;
            assert_rejected(&response, 403, "site_not_granted");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn missing_credential_is_401_before_the_site_is_read() {
        let (server, calls) = server().await;
        let response = send_raw(server.addr, &http_post("/mcp", None, &tools_call("site-a"))).await;
        assert_rejected(&response, 401, "missing_credential");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_413() {
        let (server, calls) = server().await;
        let body = large_tools_call("site-a", BODY_LIMIT);
        assert!(body.len() > BODY_LIMIT);
        let response = send_raw(
            server.addr,
            &http_post("/mcp", Some(&bearer(KEY_AB)), &body),
        )
        .await;
        assert_rejected(&response, 413, "payload_too_large");

        // The same call just under the limit passes whole.
        let body = large_tools_call("site-a", BODY_LIMIT - 200);
        assert!(body.len() <= BODY_LIMIT);
        let response = send_raw(
            server.addr,
            &http_post("/mcp", Some(&bearer(KEY_AB)), &body),
        )
        .await;
        assert_passed(&response, "site-a", &body);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn path_site_disagreeing_with_the_body_is_400() {
        let (server, calls) = server().await;
        let auth = bearer(KEY_AB);
        // Both granted, but not the same site.
        let request = http_post("/ex/jira/site-a/mcp", Some(&auth), &tools_call("site-b"));
        let response = send_raw(server.addr, &request).await;
        assert_rejected(&response, 400, "conflicting_sites");
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // The path source works on its own and together with an agreeing body.
        let body = tools_call("site-a");
        let request = http_post("/ex/jira/site-a/mcp", Some(&auth), &body);
        assert_passed(&send_raw(server.addr, &request).await, "site-a", &body);
        let body = tools_call_unsited();
        let request = http_post("/ex/jira/site-b/mcp", Some(&auth), &body);
        assert_passed(&send_raw(server.addr, &request).await, "site-b", &body);
        let request = http_post("/ex/jira/site-c/mcp", Some(&auth), &body);
        assert_rejected(
            &send_raw(server.addr, &request).await,
            403,
            "site_not_granted",
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

mod tonic_grpc {
    use tonic::Code;
    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Channel, Endpoint, Server};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    use tower::ServiceBuilder;

    use super::*;

    /// The health service behind the stack. The site comes from the `x-cloud-id` metadata; the sites bound by
    /// the layer are recorded by a `map_request` placed after it, where the application would read them.
    async fn server() -> (Served, Arc<Mutex<Vec<String>>>) {
        let (extract, validate) = auth_layers();
        let bind = BindSiteLayer::new(challenge())
            .without_body()
            .add_header("x-cloud-id")
            .expect("header");
        let bound = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bound);
        let record = tower::util::MapRequestLayer::new(
            move |req: Request<portcullis_site::SiteBody<tonic::body::Body>>| {
                if let Some(site) = req.extensions().get::<Site>() {
                    seen.lock().expect("lock").push(site.id().to_string());
                }
                req
            },
        );
        let stack = ServiceBuilder::new()
            .layer(extract)
            .layer(validate)
            .layer(bind)
            .layer(record)
            .into_inner();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let task = Spawned::new(async move {
            Server::builder()
                .layer(stack)
                .add_service(health)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .expect("tonic serves");
        });
        (Served { addr, _task: task }, bound)
    }

    async fn client(addr: SocketAddr) -> HealthClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        HealthClient::new(channel)
    }

    async fn check(
        client: &mut HealthClient<Channel>,
        authorization: Option<&str>,
        sites: &[&str],
    ) -> Result<HealthCheckResponse, tonic::Status> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        let metadata = request.metadata_mut();
        if let Some(authorization) = authorization {
            metadata.insert("authorization", authorization.parse().expect("ascii"));
        }
        for site in sites {
            metadata.append("x-cloud-id", site.parse().expect("ascii"));
        }
        client.check(request).await.map(tonic::Response::into_inner)
    }

    #[track_caller]
    fn assert_status(outcome: Result<HealthCheckResponse, tonic::Status>, code: Code) {
        let status = outcome.expect_err("rejected");
        assert_eq!(status.code(), code, "{status:?}");
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok());
        WwwAuthenticate::Metadata.check(challenge, META);
    }

    #[tokio::test]
    async fn check_with_a_granted_site_is_serving() {
        let (server, bound) = server().await;
        let mut client = client(server.addr).await;
        let auth = bearer(KEY_AB);
        let answer = check(&mut client, Some(&auth), &["site-a"])
            .await
            .expect("served");
        assert_eq!(answer.status, ServingStatus::Serving as i32);
        let answer = check(&mut client, Some(&auth), &["site-b"])
            .await
            .expect("served");
        assert_eq!(answer.status, ServingStatus::Serving as i32);
        // A request naming no site goes on unbound.
        let answer = check(&mut client, Some(&auth), &[]).await.expect("served");
        assert_eq!(answer.status, ServingStatus::Serving as i32);
        assert_eq!(*bound.lock().expect("lock"), ["site-a", "site-b"]);
    }

    #[tokio::test]
    async fn no_credential_is_unauthenticated() {
        let (server, bound) = server().await;
        let mut client = client(server.addr).await;
        assert_status(
            check(&mut client, None, &["site-a"]).await,
            Code::Unauthenticated,
        );
        assert_status(
            check(&mut client, Some("Bearer pcsa_unknown_key"), &["site-a"]).await,
            Code::Unauthenticated,
        );
        assert!(bound.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn site_not_granted_is_permission_denied() {
        let (server, bound) = server().await;
        let mut client = client(server.addr).await;
        for (key, site) in [
            (KEY_AB, "site-c"),
            (KEY_EMPTY, "site-a"),
            (KEY_UNLISTED, "site-a"),
        ] {
            assert_status(
                check(&mut client, Some(&bearer(key)), &[site]).await,
                Code::PermissionDenied,
            );
        }
        assert!(bound.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn two_sites_or_a_malformed_site_is_invalid_argument() {
        let (server, bound) = server().await;
        let mut client = client(server.addr).await;
        let auth = bearer(KEY_AB);
        for sites in [
            &["site-a", "site-b"][..],
            &["site-a", "site-a"],
            &["site a"],
            &["site-a,site-b"],
            &[""],
        ] {
            assert_status(
                check(&mut client, Some(&auth), sites).await,
                Code::InvalidArgument,
            );
        }
        assert!(bound.lock().expect("lock").is_empty());
    }
}

mod plain_hyper {
    use hyper::body::Incoming;
    use portcullis_site::SiteBody;
    use portcullis_tests::TestServer;
    use tower::ServiceBuilder;

    use super::*;

    /// An existing hyper service: echoes the body it receives, and names the site bound for it.
    async fn echo(req: Request<SiteBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let site = req
            .extensions()
            .get::<Site>()
            .map(|site| site.id().to_string());
        let Ok(body) = req.into_body().collect().await else {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        };
        let mut response = Response::new(Full::new(body.to_bytes()));
        if let Some(site) = site {
            response.headers_mut().insert(
                "x-bound-site",
                site.parse().expect("a site id is a header value"),
            );
        }
        Ok(response)
    }

    async fn server() -> (TestServer, Arc<AtomicUsize>) {
        let (extract, validate) = auth_layers();
        let bind = BindSiteLayer::new(challenge())
            .with_body_limit(BODY_LIMIT)
            .expect("limit");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let service = ServiceBuilder::new()
            .layer(extract)
            .layer(validate)
            .layer(bind)
            .service_fn(move |req| {
                counted.fetch_add(1, Ordering::SeqCst);
                echo(req)
            });
        (TestServer::start(service).await, calls)
    }

    #[tokio::test]
    async fn granted_site_is_echoed_byte_for_byte() {
        let (server, calls) = server().await;
        let auth = bearer(KEY_AB);
        let body = tools_call("site-a");
        let response = send_raw(server.addr(), &http_post("/mcp", Some(&auth), &body)).await;
        assert_passed(&response, "site-a", &body);

        // Chunks cut inside `"cloudId"`, inside the two-byte `ï` and inside the site value.
        let body = tools_call("site-b");
        let key = body.find("cloudId").expect("key") + 3;
        let accent = body.find('\u{ef}').expect("accent") + 1;
        let value = body.find("site-b").expect("value") + 2;
        let cuts = [1, accent, key, value];
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        let request = post_chunked("/mcp", &auth, &body, &cuts);
        let response = send_raw(server.addr(), &request).await;
        assert_passed(&response, "site-b", &body);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn site_not_granted_is_403_with_resource_metadata() {
        let (server, calls) = server().await;
        let body = tools_call("site-c");
        let response = send_raw(
            server.addr(),
            &http_post("/mcp", Some(&bearer(KEY_AB)), &body),
        )
        .await;
        assert_rejected(&response, 403, "site_not_granted");
        let request = post_chunked("/mcp", &bearer(KEY_AB), &body, &[10, 100]);
        let response = send_raw(server.addr(), &request).await;
        assert_rejected(&response, 403, "site_not_granted");
        let request = http_post("/mcp", Some(&bearer(KEY_EMPTY)), &tools_call("site-a"));
        let response = send_raw(server.addr(), &request).await;
        assert_rejected(&response, 403, "site_not_granted");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_413() {
        let (server, calls) = server().await;
        let auth = bearer(KEY_AB);
        let body = large_tools_call("site-a", BODY_LIMIT);
        // Declared too large up front.
        let response = send_raw(server.addr(), &http_post("/mcp", Some(&auth), &body)).await;
        assert_rejected(&response, 413, "payload_too_large");
        // Found too large while reading: no length is declared.
        let request = post_chunked("/mcp", &auth, &body, &[1000, 2000, 3000, 4000]);
        let response = send_raw(server.addr(), &request).await;
        assert_rejected(&response, 413, "payload_too_large");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn body_that_is_not_json_is_400() {
        let (server, calls) = server().await;
        let body = "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"arguments\":{\"cloudId\":\"site-a\"}}} trailing";
        let response = send_raw(
            server.addr(),
            &http_post("/mcp", Some(&bearer(KEY_AB)), body),
        )
        .await;
        // A JSON-RPC parse error, with no challenge: nothing is wrong with the credential.
        Expect::rejected(400, "parse_error")
            .challenge(WwwAuthenticate::Absent)
            .check(&response, META);
        assert_eq!(response.json()["error"]["code"], -32700);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
