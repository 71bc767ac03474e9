//! OAuth 2.1 and API-token authentication for MCP servers and any HTTP or gRPC service, as one tower stack.
//!
//! [`Portcullis::builder`] composes the Portcullis layers in the right order from checked configuration:
//!
//! ```text
//! ExtractCredential -> ValidateToken -> BindMcpSessions -> BindSite -> GateApiTokens -> RequireScopes
//!     -> EnrichContext -> your service
//! ```
//!
//! and serves the RFC 9728 protected resource metadata that every challenge points to. The same configuration can
//! be read from TOML ([`Config`]), so programs and the `portcullis` gateway share one schema.
//!
//! [`BindMcpSessions`] binds each MCP session (`Mcp-Session-Id`) to the principal that started it, so that a
//! session id is never worth anything with another caller's token (404 `unknown_session`).
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | the order of the layers and their shared configuration (builder and TOML), the resource metadata service, MCP session binding, `protect()` for hyper services ([`Protected`]) |
//! | reads | what each layer reads; [`BindMcpSessions`] reads the [`Principal`] and `Mcp-Session-Id` |
//! | puts | what each layer puts: in the end the application reads an [`AuthContext`] |
//! | comes after | nothing: `portcullis.layer()` is the whole stack (a CORS layer, where wanted, goes outside it) |
//!
//! # Example
//!
//! A complete stack with a service-account key from a token file, a site grant, and an organization policy that
//! allows service-account keys; one request passes, one is refused, and the metadata is public.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use portcullis::{Portcullis, Rejection, RejectionKind};
//! use portcullis::core::AuthContext;
//! use portcullis::policy::StaticPolicies;
//! use portcullis::site::StaticDirectory;
//! use portcullis::token::{FileTokenStore, token_digest};
//! use tower::{Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = FileTokenStore::from_toml(&format!(
//!     "[[service_account]]\naccount_id = 'svc-build'\norganization = 'org-a'\nsites = ['site-a']\nkey_sha256 = '{}'",
//!     token_digest("pcsa_build_key"),
//! ))?;
//! let portcullis = Portcullis::builder("https://mcp.example.com/mcp")
//!     .add_authorization_server("https://auth.example.com")
//!     .scopes_supported(["mcp:read"])
//!     .with_service_account_prefix("pcsa_")
//!     .with_api_token_verifier(tokens)
//!     .with_policy(StaticPolicies::from_toml("[organization.org-a]\nservice_account_keys = true")?)
//!     // The directory says which organization owns site-a: its policy decides about API tokens there.
//!     .configure_sites(|sites| {
//!         let directory = StaticDirectory::from_toml("[[site]]\nid = 'site-a'\norganization = 'org-a'")?;
//!         Ok(sites.with_directory(directory))
//!     })
//!     .build()?;
//!
//! let mut service = portcullis.protect(tower::service_fn(|req: Request<_>| async move {
//!     let who = req.extensions().get::<AuthContext>().map(|c| c.user().account_id.clone());
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
//! }));
//!
//! let call = |key: &str| {
//!     Request::post("/mcp")
//!         .header("authorization", format!("Bearer {key}"))
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from(
//!             r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"cloudId":"site-a"}}}"#,
//!         )))
//! };
//! let allowed = service.ready().await?.call(call("pcsa_build_key")?).await?;
//! assert_eq!(allowed.status(), StatusCode::OK);
//! assert_eq!(allowed.into_body().collect().await?.to_bytes(), "svc-build");
//!
//! let rejected = service.ready().await?.call(call("pcsa_wrong_key")?).await?;
//! assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(rejected.extensions().get::<Rejection>().map(Rejection::kind), Some(RejectionKind::InvalidToken));
//! assert_eq!(
//!     rejected.headers()["www-authenticate"].to_str()?,
//!     "Bearer error=\"invalid_token\", error_description=\"the credential is invalid\", scope=\"mcp:read\", \
//!      resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
//! );
//!
//! // The metadata is public.
//! let metadata = service
//!     .ready()
//!     .await?
//!     .call(Request::get("/.well-known/oauth-protected-resource/mcp").body(Full::default())?)
//!     .await?;
//! assert_eq!(metadata.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! With axum, apply [`Portcullis::layer`] to the protected routes and merge the public metadata router (feature
//! `axum`); with tonic, pass it to `Server::builder().layer(...)`; with hyper, wrap the service with
//! [`Portcullis::protect`].

mod builder;
mod config;
mod metadata;
mod protect;
mod sessions;

pub use builder::{AuthLayer, AuthService, Portcullis, PortcullisBuilder};
pub use config::{
    Config, ContextConfig, ForwardingConfig, IntrospectionConfig, IssuerConfig, ScopesConfig,
    SitesConfig, SourceConfig, TimedSourceConfig, TokensConfig,
};
pub use metadata::{ProtectedResourceMetadata, WELL_KNOWN};
pub use portcullis_core::{
    AllowedOrigins, AuthContext, ConfigError, Principal, Rejection, RejectionKind,
};
pub use protect::Protected;
pub use sessions::{
    BindMcpSessions, BindMcpSessionsLayer, DEFAULT_SESSION_CAPACITY, DEFAULT_SESSION_IDLE,
    MCP_REQUEST_HEADERS, MCP_SESSION_ID, SessionFuture,
};

/// Context enrichment (`portcullis-context`).
pub use portcullis_context as context;
/// The shared vocabulary (`portcullis-core`).
pub use portcullis_core as core;
/// Credential extraction (`portcullis-credential`).
pub use portcullis_credential as credential;
/// Remote lookups and caches (`portcullis-lookup`).
pub use portcullis_lookup as lookup;
/// API-token policy and scopes (`portcullis-policy`).
pub use portcullis_policy as policy;
/// Site binding (`portcullis-site`).
pub use portcullis_site as site;
/// Token validation (`portcullis-token`).
pub use portcullis_token as token;

#[cfg(feature = "axum")]
impl Portcullis {
    /// An axum router serving the resource metadata at both locations; merge it next to the protected routes.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let metadata = self.metadata();
        axum::Router::new()
            .route_service(metadata.path(), metadata.clone())
            .route_service(WELL_KNOWN, metadata)
    }
}
