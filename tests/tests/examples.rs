//! The runnable examples of `portcullis-examples`, each served on 127.0.0.1 exactly as its `main` serves it and
//! driven over real TCP: an rmcp MCP server in axum (real MCP JSON-RPC over streamable HTTP), a tonic gRPC
//! service (a real tonic client), and a plain hyper service.
//!
//! Every test starts its own authorization server (the token crate's `MockAuthServer`: JWKS on loopback) and
//! signs its tokens with a fixture key; a test that needs the keys to be unreachable leaves the JWKS answering
//! 503 from a cold start.

use std::net::SocketAddr;
use std::time::Duration;

use portcullis::Portcullis;
use portcullis::context::StaticContext;
use portcullis_examples::{DEFAULT_SITE_CLAIM, Identity, Settings};
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt::{self, TestKey};
use portcullis_tests::{Expect, RawResponse, Spawned, WwwAuthenticate};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const KID: &str = "examples-key-1";
const ACCOUNT: &str = "acc-ada";

/// No credential: 401, with a challenge that names no error.
const MISSING_CREDENTIAL: Expect<'static> =
    Expect::rejected(401, "missing_credential").bearer(None);
/// A token that does not verify: 401, `invalid_token`.
const INVALID_TOKEN: Expect<'static> =
    Expect::rejected(401, "invalid_token").bearer(Some("invalid_token"));
/// A site the token was not granted: 403, with a challenge that names no error.
const SITE_NOT_GRANTED: Expect<'static> = Expect::rejected(403, "site_not_granted").bearer(None);
/// The keys cannot be fetched: 503, with a `Retry-After`.
const UNAVAILABLE: Expect<'static> = Expect::rejected(503, "temporarily_unavailable").retry_after();

/// The issuer's signing key (published in its JWKS when the JWKS is up).
fn key() -> TestKey {
    jwt::rsa1(KID)
}

/// Profiles and products the examples' context layer reads.
fn context() -> StaticContext {
    StaticContext::from_toml(
        r#"
        [user."acc-ada"]
        display_name = "Ada"

        [[product]]
        site = "site-a"
        key = "wiki"
        "#,
    )
    .expect("context TOML")
}

/// The authorization server, with its JWKS up (`true`) or answering 503 (`false`, the mock's default).
async fn authorization_server(jwks_up: bool) -> MockAuthServer {
    if jwks_up {
        MockAuthServer::with_keys(&[&key()]).await
    } else {
        MockAuthServer::start().await
    }
}

/// A JWT access token of `subject` for `resource`, granted `sites` with `scope`, signed by `key`.
fn token_signed_by(
    key: &TestKey,
    auth: &MockAuthServer,
    resource: &str,
    subject: &str,
    sites: &[&str],
    scope: &str,
) -> String {
    let now = jwt::now();
    let mut claims = json!({
        "iss": auth.issuer(),
        "sub": subject,
        "aud": resource,
        "iat": now,
        "exp": now + 600,
        "scope": scope,
        "client_id": "examples-client",
    });
    claims[DEFAULT_SITE_CLAIM] = json!(sites);
    jwt::sign(key, jwt::header(key), claims)
}

/// A valid token for `resource`: granted `site-a`, with `scope`.
fn token(auth: &MockAuthServer, resource: &str, scope: &str) -> String {
    token_signed_by(&key(), auth, resource, ACCOUNT, &["site-a"], scope)
}

/// A token whose signature does not verify: signed by another key under the published `kid`.
fn forged_token(auth: &MockAuthServer, resource: &str) -> String {
    token_signed_by(
        &jwt::rsa2(KID),
        auth,
        resource,
        ACCOUNT,
        &["site-a"],
        "mcp:read",
    )
}

/// An example served on a loopback port, stopped when dropped.
struct Served {
    addr: SocketAddr,
    /// The canonical resource URI the example protects (the audience of its tokens).
    resource: String,
    /// Keeps the authorization server up as long as the example.
    auth: MockAuthServer,
    _task: Spawned,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn metadata_url(&self) -> String {
        let path = self
            .resource
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or_default();
        self.url(&format!("/.well-known/oauth-protected-resource{path}"))
    }

    fn token(&self, scope: &str) -> String {
        token(&self.auth, &self.resource, scope)
    }

    fn forged_token(&self) -> String {
        forged_token(&self.auth, &self.resource)
    }
}

/// `async fn served(jwks_up: bool) -> Served`: the example `$example` (its `portcullis` and `serve` functions),
/// protecting `$resource_path`, served by [`serve_example`].
macro_rules! served {
    ($example:ident, $resource_path:expr) => {
        async fn served(jwks_up: bool) -> Served {
            serve_example(
                jwks_up,
                $resource_path,
                $example::portcullis,
                |listener, portcullis| async move {
                    $example::serve(listener, &portcullis)
                        .await
                        .expect(concat!(stringify!($example), " serves"));
                },
            )
            .await
        }
    };
}

/// Binds 127.0.0.1:0, builds the example's `Portcullis` for `http://<addr><resource_path>` with the keys of a
/// fresh authorization server, and serves it with `serve`.
async fn serve_example<F, Fut>(
    jwks_up: bool,
    resource_path: &str,
    configure: fn(&Settings) -> Result<Portcullis, portcullis::ConfigError>,
    serve: F,
) -> Served
where
    F: FnOnce(TcpListener, Portcullis) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let auth = authorization_server(jwks_up).await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    let resource = format!("http://{addr}{resource_path}");
    let settings = Settings::new(resource.clone(), auth.issuer())
        .with_jwks_uri(auth.jwks_uri())
        .with_context(context());
    let portcullis = configure(&settings).expect("the example's configuration builds");
    assert_eq!(
        portcullis.metadata_url(),
        format!("http://{addr}/.well-known/oauth-protected-resource{resource_path}")
    );
    Served {
        addr,
        resource,
        auth,
        _task: Spawned::new(serve(listener, portcullis)),
    }
}

/// What the examples answer for [`ACCOUNT`] with a valid `mcp:read` token, bound to `site` (and its products) or
/// to none.
fn ada(site: Option<&str>) -> Identity {
    Identity {
        account_id: ACCOUNT.into(),
        site_id: site.map(str::to_owned),
        auth_method: "oauth".into(),
        scopes: vec!["mcp:read".into()],
        products: site.map(|_| vec!["wiki".into()]).unwrap_or_default(),
    }
}

/// A plain HTTP client; proxies from the environment are ignored (everything here is on loopback).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// A response read whole, as the raw client reads one.
async fn read(response: reqwest::Response) -> RawResponse {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = response.text().await.expect("response body");
    RawResponse {
        status,
        headers,
        body,
    }
}

async fn get(url: &str, authorization: Option<&str>) -> RawResponse {
    let mut request = http_client().get(url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    read(request.send().await.expect("GET")).await
}

mod axum_mcp {
    use portcullis_examples::axum_mcp;

    use super::*;

    const PROTOCOL_VERSION: &str = "2025-06-18";

    served!(axum_mcp, "/mcp");

    /// A streamable HTTP MCP client: JSON-RPC over POST, answers read as JSON or from SSE `data:` lines.
    struct McpClient {
        http: reqwest::Client,
        url: String,
        authorization: Option<String>,
        session: Option<String>,
        next_id: u64,
    }

    impl McpClient {
        /// A client with a valid token granted `scope`, its session initialized.
        async fn initialized(server: &Served, scope: &str) -> Self {
            let mut client = Self::new(server, Some(&server.token(scope)));
            client.initialize().await;
            client
        }

        fn new(server: &Served, token: Option<&str>) -> Self {
            Self {
                http: http_client(),
                url: server.url("/mcp"),
                authorization: token.map(|t| format!("Bearer {t}")),
                session: None,
                next_id: 1,
            }
        }

        async fn post(&self, message: &Value) -> RawResponse {
            let mut request = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(message.to_string());
            if let Some(authorization) = &self.authorization {
                request = request.header("authorization", authorization);
            }
            if let Some(session) = &self.session {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", PROTOCOL_VERSION);
            }
            read(request.send().await.expect("POST /mcp")).await
        }

        /// Sends a request; the raw response (for rejections) and, for a 200, the JSON-RPC answer to it.
        async fn request(&mut self, method: &str, params: Value) -> (RawResponse, Option<Value>) {
            let id = self.next_id;
            self.next_id += 1;
            let response = self
                .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
                .await;
            let answer = (response.status == 200).then(|| answer(&response, id));
            (response, answer)
        }

        /// initialize, then notifications/initialized with the session id the server gave.
        async fn initialize(&mut self) {
            let (response, answer) = self
                .request(
                    "initialize",
                    json!({
                        "protocolVersion": PROTOCOL_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "portcullis-tests", "version": "0.1.0"},
                    }),
                )
                .await;
            assert_eq!(response.status, 200, "{}", response.body);
            let answer = answer.expect("an answer");
            assert_eq!(
                answer["result"]["serverInfo"]["name"], "portcullis-example",
                "{answer}"
            );
            self.session = Some(
                response
                    .header("mcp-session-id")
                    .expect("an mcp-session-id header")
                    .to_owned(),
            );
            let initialized = self
                .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
            assert_eq!(initialized.status, 202, "{}", initialized.body);
        }

        /// `create_page` titled "Plans" on `site`.
        async fn create_page(&mut self, site: &str) -> (RawResponse, Option<Value>) {
            self.call_tool("create_page", json!({"cloudId": site, "title": "Plans"}))
                .await
        }

        async fn call_tool(
            &mut self,
            name: &str,
            arguments: Value,
        ) -> (RawResponse, Option<Value>) {
            self.request("tools/call", json!({"name": name, "arguments": arguments}))
                .await
        }
    }

    /// The JSON-RPC message answering `id`, from a JSON body or the `data:` lines of an SSE body.
    #[track_caller]
    fn answer(response: &RawResponse, id: u64) -> Value {
        let content_type = response.header("content-type").unwrap_or_default();
        let messages: Vec<Value> = if content_type.starts_with("text/event-stream") {
            response
                .body
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str(data.trim()).ok())
                .collect()
        } else {
            vec![response.json()]
        };
        messages
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to request {id} in {:?}", response.body))
    }

    /// The `Identity` a successful `whoami` call answers.
    #[track_caller]
    fn identity_in(answer: Option<Value>) -> Identity {
        serde_json::from_value(structured(&answer.expect("an answer"))).expect("an Identity")
    }

    /// The structured result of a successful `tools/call`.
    #[track_caller]
    fn structured(answer: &Value) -> Value {
        assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
        answer["result"]["structuredContent"].clone()
    }

    #[tokio::test]
    async fn whoami_tool_sees_the_auth_context() {
        let server = served(true).await;
        let mut client = McpClient::initialized(&server, "mcp:read").await;

        let (response, answer) = client
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let identity = identity_in(answer);
        assert_eq!(identity, ada(Some("site-a")));

        // Without a site the call is not bound to one, and there are no products.
        let (_, answer) = client.call_tool("whoami", json!({})).await;
        let identity = identity_in(answer);
        assert_eq!(identity.account_id, ACCOUNT);
        assert_eq!(identity.site_id, None);
        assert!(identity.products.is_empty());
    }

    /// MCP security best practices: a session id is not a credential. Another user's valid token with the
    /// session id of this user's session reaches nothing (404, the answer for a session that is not there).
    #[tokio::test]
    async fn another_users_token_cannot_use_a_session() {
        let server = served(true).await;
        let mut owner = McpClient::initialized(&server, "mcp:read").await;
        let session = owner.session.clone().expect("a session");

        let other_token = token_signed_by(
            &key(),
            &server.auth,
            &server.resource,
            "someone-else",
            &["site-a"],
            "mcp:read mcp:write",
        );
        let mut intruder = McpClient::new(&server, Some(&other_token));
        intruder.session = Some(session.clone());
        let (response, _) = intruder
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        Expect::rejected(404, "unknown_session")
            .challenge(WwwAuthenticate::Absent)
            .check(&response, &server.metadata_url());

        // The intruder can start a session of its own; the owner's session still works for the owner.
        intruder.session = None;
        intruder.initialize().await;
        assert_ne!(intruder.session.as_deref(), Some(session.as_str()));
        let (response, answer) = owner
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let identity = identity_in(answer);
        assert_eq!(identity.account_id, ACCOUNT);
    }

    #[tokio::test]
    async fn create_page_with_the_write_scope_is_allowed() {
        let server = served(true).await;
        let mut client = McpClient::initialized(&server, "mcp:read mcp:write").await;
        let (response, answer) = client.create_page("site-a").await;
        assert_eq!(response.status, 200, "{}", response.body);
        let page = structured(&answer.expect("an answer"));
        assert_eq!(page["siteId"], "site-a", "{page}");
        assert_eq!(page["author"], ACCOUNT, "{page}");
        assert_eq!(page["title"], "Plans", "{page}");
    }

    #[tokio::test]
    async fn create_page_without_the_write_scope_is_insufficient_scope() {
        let server = served(true).await;
        let mut client = McpClient::initialized(&server, "mcp:read").await;
        let (response, answer) = client.create_page("site-a").await;
        Expect::rejected(403, "insufficient_scope")
            .bearer_scope(Some("insufficient_scope"), "mcp:write")
            .check(&response, &server.metadata_url());
        assert!(answer.is_none());
        // The same session still reaches the read-only tool.
        let (response, _) = client
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
    }

    #[tokio::test]
    async fn a_site_the_token_was_not_granted_is_forbidden() {
        let server = served(true).await;
        let mut client = McpClient::initialized(&server, "mcp:read mcp:write").await;
        for (tool, arguments) in [
            ("whoami", json!({"cloudId": "site-b"})),
            (
                "create_page",
                json!({"cloudId": "site-b", "title": "Plans"}),
            ),
        ] {
            let (response, answer) = client.call_tool(tool, arguments).await;
            SITE_NOT_GRANTED.check_case(&response, &server.metadata_url(), tool);
            assert!(answer.is_none());
        }
    }

    /// A browser-based client: the CORS preflight (no credential) is answered by the CORS layer outside the
    /// stack; the real requests still need a token, and the client can read the challenge and its session id.
    #[tokio::test]
    async fn browser_clients_pass_the_cors_preflight_and_nothing_else() {
        let server = served(true).await;
        let http = http_client();
        // The resource's own origin, which the stack allows.
        let base = server.url("");
        let origin = base.as_str();
        let preflight = read(
            http.request(reqwest::Method::OPTIONS, server.url("/mcp"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,mcp-protocol-version,mcp-method,mcp-name",
                )
                .send()
                .await
                .expect("preflight"),
        )
        .await;
        assert_eq!(preflight.status, 200, "{}", preflight.body);
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(origin)
        );
        let allowed = preflight
            .header("access-control-allow-headers")
            .expect("allowed headers")
            .to_ascii_lowercase();
        for name in [
            "authorization",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "mcp-param-cloudid",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }

        // The request itself, without a token: 401, with the challenge readable by the page.
        let unauthenticated = read(
            http.post(server.url("/mcp"))
                .header("origin", origin)
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .send()
                .await
                .expect("POST"),
        )
        .await;
        assert_eq!(unauthenticated.status, 401, "{}", unauthenticated.body);
        assert!(unauthenticated.header("www-authenticate").is_some());
        let exposed = unauthenticated
            .header("access-control-expose-headers")
            .expect("exposed headers")
            .to_ascii_lowercase();
        assert!(exposed.contains("www-authenticate"), "{exposed}");
        assert!(exposed.contains("mcp-session-id"), "{exposed}");

        // The CORS layer answers every OPTIONS itself (tower-http treats each as a preflight): an empty answer
        // that reaches neither the stack nor the MCP service, and carries nothing of theirs.
        let options = read(
            http.request(reqwest::Method::OPTIONS, server.url("/mcp"))
                .send()
                .await
                .expect("OPTIONS"),
        )
        .await;
        assert_eq!(options.status, 200, "{}", options.body);
        assert!(options.body.is_empty(), "{}", options.body);
        assert!(options.header("mcp-session-id").is_none());

        // Another origin: its preflight gets no CORS headers, and its request is 403 before any credential work,
        // with a token or without.
        let evil = "https://evil.example";
        let preflight = read(
            http.request(reqwest::Method::OPTIONS, server.url("/mcp"))
                .header("origin", evil)
                .header("access-control-request-method", "POST")
                .send()
                .await
                .expect("preflight"),
        )
        .await;
        assert_eq!(preflight.header("access-control-allow-origin"), None);
        for token in [None, Some(server.token("mcp:read"))] {
            let mut request = http
                .post(server.url("/mcp"))
                .header("origin", evil)
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let refused = read(request.send().await.expect("POST")).await;
            assert_eq!(refused.status, 403, "{}", refused.body);
            assert!(refused.header("www-authenticate").is_none());
            let body: serde_json::Value = serde_json::from_str(&refused.body).expect("JSON");
            assert_eq!(body["jsonrpc"], "2.0");
            assert_eq!(body["id"], serde_json::Value::Null);
            assert_eq!(body["error"]["data"]["reason"], "origin_not_allowed");
        }
    }

    #[tokio::test]
    async fn no_token_is_unauthorized_on_every_method() {
        let server = served(true).await;
        let mut client = McpClient::new(&server, None);
        let (response, _) = client
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "t", "version": "0"}}),
            )
            .await;
        Expect::rejected(401, "missing_credential")
            .bearer_scope(None, "mcp:read mcp:write")
            .check(&response, &server.metadata_url());

        // The GET that opens the SSE stream and the DELETE that ends a session are authenticated too.
        let http = http_client();
        for request in [
            http.get(server.url("/mcp"))
                .header("accept", "text/event-stream"),
            http.delete(server.url("/mcp"))
                .header("mcp-session-id", "any"),
        ] {
            let response = read(request.send().await.expect("send")).await;
            Expect::rejected(401, "missing_credential").check(&response, &server.metadata_url());
        }
    }

    #[tokio::test]
    async fn an_invalid_token_is_unauthorized() {
        let server = served(true).await;
        let token = server.forged_token();
        let mut client = McpClient::new(&server, Some(&token));
        let (response, _) = client
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        INVALID_TOKEN.check(&response, &server.metadata_url());
    }

    #[tokio::test]
    async fn unreachable_keys_are_service_unavailable() {
        let server = served(false).await;
        let token = server.token("mcp:read");
        let mut client = McpClient::new(&server, Some(&token));
        let (response, _) = client
            .call_tool("whoami", json!({"cloudId": "site-a"}))
            .await;
        UNAVAILABLE.check(&response, &server.metadata_url());
        assert!(server.auth.jwks_hits() >= 1);
    }

    #[tokio::test]
    async fn the_resource_metadata_is_public() {
        let server = served(true).await;
        for url in [
            server.metadata_url(),
            server.url("/.well-known/oauth-protected-resource"),
        ] {
            let response = get(&url, None).await;
            assert_eq!(response.status, 200, "{url}: {}", response.body);
            let metadata = response.json();
            assert_eq!(metadata["resource"], server.resource.as_str());
            assert_eq!(
                metadata["authorization_servers"],
                json!([server.auth.issuer()])
            );
            assert_eq!(
                metadata["scopes_supported"],
                json!(["mcp:read", "mcp:write"])
            );
            assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        }
    }

    #[tokio::test]
    async fn the_axum_extractor_returns_the_auth_context() {
        let server = served(true).await;
        let token = server.token("mcp:read");
        let response = get(&server.url("/api/me"), Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let identity: Identity = serde_json::from_str(&response.body).expect("an Identity");
        assert_eq!(identity, ada(None));

        let response = get(&server.url("/api/me"), None).await;
        Expect::status(401)
            .bearer(None)
            .check(&response, &server.metadata_url());
    }
}

mod tonic_grpc {
    use portcullis_examples::tonic_grpc::{self, GetReply, WhoAmIClient, get_request};
    use tonic::Code;

    use super::*;

    served!(tonic_grpc, "");

    async fn call(
        server: &Served,
        token: Option<&str>,
        site: Option<&str>,
    ) -> Result<GetReply, tonic::Status> {
        let mut client = WhoAmIClient::connect(server.url(""))
            .await
            .expect("connect");
        let authorization = token.map(|t| format!("Bearer {t}"));
        let request = get_request(authorization.as_deref(), site).expect("valid metadata");
        client.get(request).await.map(tonic::Response::into_inner)
    }

    #[track_caller]
    fn assert_status(
        outcome: Result<GetReply, tonic::Status>,
        code: Code,
        server: &Served,
        error: Option<&str>,
    ) {
        let status = outcome.expect_err("rejected");
        assert_eq!(status.code(), code, "{status:?}");
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .expect("a challenge in the metadata");
        WwwAuthenticate::Bearer { error, scope: None }
            .check(Some(challenge), &server.metadata_url());
    }

    #[tokio::test]
    async fn get_answers_with_the_callers_context() {
        let server = served(true).await;
        let token = server.token("mcp:read");
        let reply = call(&server, Some(&token), Some("site-a"))
            .await
            .expect("allowed");
        assert_eq!(reply, GetReply::from(ada(Some("site-a"))));
        // Naming no site, the call is unbound.
        let reply = call(&server, Some(&token), None).await.expect("allowed");
        assert_eq!(reply.account_id, ACCOUNT);
        assert_eq!(reply.site_id, None);
    }

    #[tokio::test]
    async fn no_token_or_an_invalid_one_is_unauthenticated() {
        let server = served(true).await;
        let forged = server.forged_token();
        for (token, error) in [(None, None), (Some(forged.as_str()), Some("invalid_token"))] {
            let outcome = call(&server, token, Some("site-a")).await;
            assert_status(outcome, Code::Unauthenticated, &server, error);
        }
    }

    #[tokio::test]
    async fn a_site_the_token_was_not_granted_is_permission_denied() {
        let server = served(true).await;
        let token = server.token("mcp:read");
        assert_status(
            call(&server, Some(&token), Some("site-b")).await,
            Code::PermissionDenied,
            &server,
            None,
        );
    }

    #[tokio::test]
    async fn unreachable_keys_are_unavailable() {
        let server = served(false).await;
        let token = server.token("mcp:read");
        let status = call(&server, Some(&token), Some("site-a"))
            .await
            .expect_err("rejected");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(server.auth.jwks_hits() >= 1);
    }
}

mod hyper_service {
    use portcullis_examples::hyper_service;

    use super::*;

    served!(hyper_service, "");

    /// `GET /sites/{site}/whoami` with a valid `mcp:read` token.
    async fn whoami(server: &Served, site: &str) -> RawResponse {
        let authorization = format!("Bearer {}", server.token("mcp:read"));
        get(
            &server.url(&format!("/sites/{site}/whoami")),
            Some(&authorization),
        )
        .await
    }

    #[tokio::test]
    async fn whoami_answers_with_the_auth_context() {
        let server = served(true).await;
        let response = whoami(&server, "site-a").await;
        assert_eq!(response.status, 200, "{}", response.body);
        let identity: Identity = serde_json::from_str(&response.body).expect("an Identity");
        assert_eq!(identity, ada(Some("site-a")));
    }

    #[tokio::test]
    async fn no_token_or_an_invalid_one_is_unauthorized() {
        let server = served(true).await;
        let url = server.url("/sites/site-a/whoami");
        let forged = format!("Bearer {}", server.forged_token());
        for (authorization, expect) in [(None, MISSING_CREDENTIAL), (Some(&forged), INVALID_TOKEN)]
        {
            let response = get(&url, authorization.map(String::as_str)).await;
            expect.check(&response, &server.metadata_url());
        }
    }

    #[tokio::test]
    async fn a_site_the_token_was_not_granted_is_forbidden() {
        let server = served(true).await;
        let response = whoami(&server, "site-b").await;
        SITE_NOT_GRANTED.check(&response, &server.metadata_url());
    }

    #[tokio::test]
    async fn unreachable_keys_are_service_unavailable() {
        let server = served(false).await;
        let response = whoami(&server, "site-a").await;
        UNAVAILABLE.check(&response, &server.metadata_url());
        assert!(server.auth.jwks_hits() >= 1);
    }

    #[tokio::test]
    async fn health_and_metadata_are_public() {
        let server = served(true).await;
        let health = get(&server.url("/health"), None).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert_eq!(health.body, "ok");
        let metadata = get(&server.metadata_url(), None).await;
        assert_eq!(metadata.status, 200, "{}", metadata.body);
        assert_eq!(metadata.json()["resource"], server.resource.as_str());
        // Public paths match exactly: one below the metadata location goes through the stack.
        let below = get(&format!("{}/x", server.metadata_url()), None).await;
        assert_eq!(below.status, 401, "{}", below.body);
    }
}
