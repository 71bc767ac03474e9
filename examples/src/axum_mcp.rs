//! An MCP server built with the `rmcp` crate's streamable HTTP service, mounted in an axum router behind the
//! Portcullis stack.
//!
//! | route | |
//! | --- | --- |
//! | `POST`, `GET`, `DELETE /mcp` | the MCP endpoint; every method is authenticated (a session is never authentication) |
//! | `GET /api/me` | a plain axum route whose handler takes [`AuthContext`] as an extractor |
//! | `GET /.well-known/oauth-protected-resource/mcp` (and the root location) | the public RFC 9728 metadata |
//!
//! Tools: `whoami` answers with the [`AuthContext`] the tool sees (read through the [`Parts`] that rmcp passes
//! on); `create_page` needs the [`WRITE_SCOPE`]. Both name their site in the `cloudId` argument, which the
//! site layer binds and checks against the token's grants before rmcp sees the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use http::Method;
use http::header::{HeaderName, WWW_AUTHENTICATE};
use http::request::Parts;
use portcullis::{AuthContext, ConfigError, Portcullis};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Json, ServerHandler, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{Identity, Settings};

/// Listen address of the runnable example unless `PORTCULLIS_LISTEN` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Scope listed in the metadata for reading.
pub const READ_SCOPE: &str = "mcp:read";
/// Scope that the `create_page` tool needs.
pub const WRITE_SCOPE: &str = "mcp:write";

/// The stack for this example: [`Settings::builder`], the two scopes in the metadata, and `create_page`
/// requiring [`WRITE_SCOPE`]. The site of a `tools/call` is read from `params.arguments.cloudId` (the default).
///
/// # Errors
/// What [`PortcullisBuilder::build`](portcullis::PortcullisBuilder::build) reports.
pub fn portcullis(settings: &Settings) -> Result<Portcullis, ConfigError> {
    settings
        .builder()?
        .scopes_supported([READ_SCOPE, WRITE_SCOPE])
        .configure_scopes(|scopes| scopes.add_tool("create_page", [WRITE_SCOPE]))
        .build()
}

/// The application: the MCP service at `/mcp` and `GET /api/me`, both behind [`Portcullis::layer`], and the
/// public metadata router next to them; CORS outside everything, for browser-based MCP clients.
pub fn app(portcullis: &Portcullis) -> Router {
    routes(portcullis)
        // Applies to the routes above only: what is merged below stays public.
        .layer(portcullis.layer())
        .merge(portcullis.metadata_router())
        .layer(cors(portcullis))
}

/// CORS for browser-based MCP clients. It sits outside the stack because a preflight carries no credential: the
/// CORS layer answers it itself, and every real request still goes through Portcullis. Origins are the ones the
/// stack allows ([`Portcullis::allowed_origins`]), so a preflight succeeds exactly where the request would; the
/// client may send its token, session and MCP 2026-07-28 request headers, and may read the challenge and its
/// session id.
pub fn cors(portcullis: &Portcullis) -> CorsLayer {
    let session = portcullis::MCP_SESSION_ID;
    let origins = portcullis.allowed_origins().clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        // The MCP client's headers, and the argument this server's tools mirror (MCP 2026-07-28).
        .allow_headers(
            portcullis::MCP_REQUEST_HEADERS
                .into_iter()
                .chain([HeaderName::from_static("mcp-param-cloudid")])
                .collect::<Vec<_>>(),
        )
        .expose_headers([WWW_AUTHENTICATE, session])
}

/// The application's routes without any layer: the MCP service at `/mcp` and `GET /api/me`. [`app`] puts the
/// stack in front of them; the load run also serves them bare, for comparison.
pub fn routes(portcullis: &Portcullis) -> Router {
    let pages = Pages::new();
    let mcp = StreamableHttpService::new(
        move || Ok(pages.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts(portcullis)),
    );
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/api/me", get(me))
}

/// Serves [`app`] on `listener` until the listener fails, with [`no_delay`] on every connection.
///
/// # Errors
/// What `axum::serve` reports.
pub async fn serve(listener: TcpListener, portcullis: &Portcullis) -> std::io::Result<()> {
    axum::serve(listener.tap_io(no_delay), app(portcullis)).await
}

/// Sends each write at once (`TCP_NODELAY`). An MCP answer is a server-sent event stream written in small pieces;
/// with Nagle's algorithm on, a client that keeps its connection open waits for the peer's delayed ACK, about
/// 40 ms per call on Linux.
pub fn no_delay(tcp: &mut TcpStream) {
    // It fails only on a connection that is already gone, which the server finds out on its first read.
    let _ = tcp.set_nodelay(true);
}

/// rmcp refuses `Host` headers outside its allow list (DNS rebinding); allow the resource's own host besides
/// loopback, so the example also works behind its public name.
fn allowed_hosts(portcullis: &Portcullis) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if let Ok(url) = portcullis.metadata_url().parse::<http::Uri>()
        && let Some(host) = url.host()
    {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// `GET /api/me`: the axum extractor. A route without the layer in front answers 500, never passes unchecked.
async fn me(context: AuthContext) -> axum::Json<Identity> {
    axum::Json(Identity::from(&context))
}

/// The MCP server: two tools over a page store shared by every session.
#[derive(Clone, Debug)]
pub struct Pages {
    tool_router: ToolRouter<Self>,
    next_id: Arc<AtomicU64>,
}

impl Pages {
    /// A server with an empty page store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

/// Arguments of `whoami`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WhoAmIArgs {
    /// The site to ask about; without it the request is not bound to a site.
    #[serde(rename = "cloudId", default)]
    pub cloud_id: Option<String>,
}

/// Arguments of `create_page`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreatePageArgs {
    /// The site to create the page on.
    #[serde(rename = "cloudId")]
    pub cloud_id: String,
    /// The page title.
    pub title: String,
}

/// A page created by `create_page`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// Page id.
    pub id: String,
    /// The site it was created on (the site the stack bound, not the raw argument).
    pub site_id: String,
    /// Its title.
    pub title: String,
    /// The account id of its author.
    pub author: String,
}

/// The context that Portcullis put on the HTTP request, which rmcp passes on to tools in the request parts.
fn auth_context(parts: &Parts) -> Result<&AuthContext, ErrorData> {
    // Without the layer in front there is no context: fail closed.
    parts
        .extensions
        .get::<AuthContext>()
        .ok_or_else(|| ErrorData::internal_error("authentication is not configured", None))
}

#[tool_router]
impl Pages {
    #[tool(
        description = "Who you are to this server: account, site, authentication method, scopes and products."
    )]
    async fn whoami(
        &self,
        Parameters(_args): Parameters<WhoAmIArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<Identity>, ErrorData> {
        Ok(Json(Identity::from(auth_context(&parts)?)))
    }

    #[tool(description = "Creates a page on a site. Needs the mcp:write scope.")]
    async fn create_page(
        &self,
        Parameters(args): Parameters<CreatePageArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<Page>, ErrorData> {
        let context = auth_context(&parts)?;
        // The site layer bound and checked `cloudId`; act on what it bound.
        let site = context.site().ok_or_else(|| {
            ErrorData::invalid_params("cloudId must name a site you were granted", None)
        })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Json(Page {
            id: format!("page-{id}"),
            site_id: site.id().to_string(),
            title: args.title,
            author: context.user().account_id.clone(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Pages {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "portcullis-example",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Pages on your sites. Name the site in the cloudId argument.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_served_without_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"));
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (mut accepted, _) = accepted.expect("accept");
        let _client = client.expect("connect");
        assert!(
            !accepted.nodelay().expect("option"),
            "Nagle is on by default"
        );
        no_delay(&mut accepted);
        assert!(accepted.nodelay().expect("option"));
    }
}
