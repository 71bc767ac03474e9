//! The organization admin's policy for API tokens, and the OAuth scopes routes and MCP tools need.
//!
//! - [`GateApiTokensLayer`]: a principal authenticated by a personal API token or a service-account key passes
//!   only where the organization that owns the bound site (or, with no site, the principal's own organization)
//!   enabled that kind of token ([`ResolvePolicy`]: [`StaticPolicies`] from TOML, [`HttpPolicies`]; cached
//!   briefly). No known policy, or a failed lookup, means disabled. OAuth principals pass untouched. The refusal is
//!   401 `invalid_token` with a description that points to OAuth 2.1.
//! - [`RequireScopesLayer`]: scopes per route and per MCP tool (`tools/call` `params.name`, from the
//!   [`JsonRpcCall`](portcullis_core::JsonRpcCall) the site layer already read). A principal without them gets
//!   403 `insufficient_scope` with every scope needed in one `scope=` parameter, so MCP clients can step up.
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | the organization admin's API-token policy and its sources, and the scope rules per route and per MCP tool |
//! | reads | the [`Principal`](portcullis_core::Principal) (none: 401), the bound [`Site`](portcullis_core::Site) (the gate: its organization decides), the [`JsonRpcCall`](portcullis_core::JsonRpcCall) (per-tool scopes) |
//! | puts | nothing: a request passes or is refused |
//! | comes after | `BindSiteLayer` (`portcullis-site`), which reads the site and the call these layers decide on |
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header::WWW_AUTHENTICATE};
//! use http_body_util::Full;
//! use portcullis_core::{AuthMethod, Challenge, JsonRpcCall, OrgId, Principal, Rejection, RejectionKind, ScopeList};
//! use portcullis_policy::{GateApiTokensLayer, RequireScopesLayer, StaticPolicies};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")?;
//! let policies = StaticPolicies::from_toml("[organization.org-a]\nservice_account_keys = true")?;
//! let service = ServiceBuilder::new()
//!     .layer(GateApiTokensLayer::new(challenge.clone(), policies))
//!     .layer(RequireScopesLayer::new(challenge).add_tool("create_page", ["write:pages"])?)
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("done"))))
//!     });
//!
//! // Normally inserted by the validation and site layers.
//! let request = |scopes: &str| -> Result<Request<Full<Bytes>>, Box<dyn std::error::Error>> {
//!     let mut req = Request::post("/mcp").body(Full::new(Bytes::from("{}")))?;
//!     req.extensions_mut().insert(
//!         Principal::builder(AuthMethod::ServiceAccountKey, "svc-build")
//!             .with_organization(OrgId::new("org-a")?)
//!             .with_scopes(ScopeList::parse(scopes)?)
//!             .verified(),
//!     );
//!     req.extensions_mut().insert(JsonRpcCall::new("tools/call", Some("create_page")));
//!     Ok(req)
//! };
//!
//! let allowed = service.clone().oneshot(request("write:pages")?).await?;
//! assert_eq!(allowed.status(), StatusCode::OK);
//!
//! let rejected = service.oneshot(request("read:pages")?).await?;
//! assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
//! assert!(rejected.headers()[WWW_AUTHENTICATE].to_str()?.contains(r#"scope="write:pages""#));
//! assert_eq!(
//!     rejected.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::InsufficientScope)
//! );
//! # Ok(())
//! # }
//! ```

mod gate;
mod resolve;
mod scopes;

pub use gate::{GateApiTokens, GateApiTokensLayer, GateFuture};
/// The `with_bearer` and `with_fetcher` builder methods of this crate's HTTP source.
pub use portcullis_lookup::ConfigureHttpSource;
pub use resolve::{
    ApiTokenPolicy, BoxFuture, HttpPolicies, PolicyError, ResolvePolicy, StaticPolicies,
};
pub use scopes::{RequireScopes, RequireScopesLayer};
