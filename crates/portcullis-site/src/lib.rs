//! Binds a request to the cloud site it targets, and checks that the principal was granted that site.
//!
//! [`BindSiteLayer`] reads the site a request names from any of
//!
//! - a path template (`/ex/{product}/{cloudId}/...`),
//! - a header (`x-cloud-id`; for gRPC, the metadata key),
//! - a query parameter,
//! - the JSON-RPC body of an MCP request: for `tools/call` the JSON pointer `/params/arguments/cloudId` unless
//!   configured, and pointers of your choice for other methods,
//!
//! and checks it against the principal's grants: the token's site claim (see `portcullis-token`), the API-token
//! verifier's answer, or a [`ResolveSiteGrants`] source ([`StaticDirectory`] from TOML, [`HttpGrants`]), cached.
//! A site may be named by its id or its URL (`https://acme.example.net`); URLs are resolved through a
//! [`ResolveSite`] directory by exact host.
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | which site a request targets and whether it was granted: [`BindSiteLayer`], the JSON-RPC body reader, the grant and directory sources |
//! | reads | the [`Principal`](portcullis_core::Principal) (none: 401), the path, headers, query and, where a rule needs it, the JSON-RPC body |
//! | puts | the bound [`Site`], the principal's [`AccessibleSites`], the [`JsonRpcCall`] (planted ones are removed first); the inner service gets a [`SiteBody`] |
//! | comes after | `ValidateTokenLayer` (`portcullis-token`) |
//!
//! # Answers
//! | request | status | reason |
//! | --- | --- | --- |
//! | site granted | passes, with [`Site`], [`AccessibleSites`] and [`JsonRpcCall`] in the extensions | |
//! | no site named | passes unbound; 403 with `require_site()`, or for the methods of `require_site_for(...)` | `SiteRequired` |
//! | site not granted, empty grants, no grants known | 403 | `SiteNotGranted` |
//! | two sources disagree, or one source repeats | 400 | `ConflictingSites` |
//! | where bodies are read, a POST whose body is not exactly one JSON-RPC message: empty or white space, not JSON, a bare `null`, string or number, trailing data, deep nesting, or a length other than its `Content-Length` (or two of them) | 400, JSON-RPC parse error -32700 | `ParseError` |
//! | a body labelled other than JSON where it is read, a batch, duplicate or case-variant keys on the way to a value read, a site that is not a non-empty string id or URL | 400 | `InvalidRequest` |
//! | with path templates: a path an upstream could normalise into another (`//`, `.`/`..` segments, `%2e`, `%2f`, `%5c`, `\\`) | 400 | `InvalidRequest` |
//! | a gRPC request on a route that reads JSON-RPC bodies (gRPC services use `without_body()`) | 400 (`grpc-status` 3) | `InvalidRequest` |
//! | an MCP 2026-07-28 header that mirrors the body (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`, a recognised `Mcp-Param-*`) disagrees with it, is malformed or repeated, or is missing for a client of 2026-07-28 or later | 400, JSON-RPC error -32020 to the request's `id` | `HeaderMismatch` |
//! | body over the limit | 413 | `PayloadTooLarge` |
//! | grants or directory unreachable with nothing cached | 503 | `TemporarilyUnavailable` |
//!
//! Site ids are compared exactly as the request spells them, which is how the application will read them: `SITE-A`
//! is not a grant of `site-a`, and a header and a body that name the same site in different case disagree (400).
//! Only URLs are reduced, to their host, which is case-insensitive by definition.
//!
//! Keys on the way to the site are refused when they differ from the expected key only by case, including the
//! non-ASCII characters that lenient decoders fold to ASCII letters (`ſ`, the Kelvin sign); path-template literals
//! match in any ASCII case.
//!
//! # Mirrored headers (MCP 2026-07-28)
//! Whoever reads the body must check the headers that mirror it, since a load balancer may route on the header
//! while the MCP server acts on the body. Whenever the layer reads a body it checks `Mcp-Method` against `method`,
//! `Mcp-Name` against `params.name` (`tools/call`, `prompts/get`) or `params.uri` (`resources/read`),
//! `MCP-Protocol-Version` against `params._meta["io.modelcontextprotocol/protocolVersion"]`, and each header
//! recognised with [`add_param_header`](BindSiteLayer::add_param_header) against its argument: `=?base64?...?=`
//! values are decoded first, numbers compare numerically, names are case-insensitive and values case-sensitive.
//! A site named in an `Mcp-Param-*` header is bound only through the body it agrees with. Clients of earlier
//! revisions send none of these headers and are unaffected; headers not recognised are passed on untouched. A
//! layer that does not read bodies (`without_body()`) leaves all of this to the upstream, as the specification
//! allows an intermediary that does not process the body.
//!
//! JSON-RPC batches (arrays) are refused whole: MCP no longer has them, and checking each element separately
//! would let the application act on elements the check never bound.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use portcullis_core::{AuthMethod, Challenge, Principal, Rejection, RejectionKind, Site, SiteId};
//! use portcullis_site::{BindSiteLayer, SiteBody};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")?;
//! let service = ServiceBuilder::new()
//!     .layer(BindSiteLayer::new(challenge))
//!     .service_fn(|req: Request<SiteBody<Full<Bytes>>>| async move {
//!         let site = req.extensions().get::<Site>().map(|s| s.id().to_string()).unwrap_or_default();
//!         let body = req.into_body().collect().await?.to_bytes();
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("{site} {}", body.len())))))
//!     });
//!
//! // Normally the validation layer inserts the principal; its token granted site-a only.
//! let principal = Principal::builder(AuthMethod::OAuth, "user-1")
//!     .with_site_grants([SiteId::parse("site-a")?])
//!     .verified();
//! let call = |site: &str| {
//!     let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"cloudId":"{site}"}}}}}}"#);
//!     let mut req = Request::post("/mcp").header("content-type", "application/json").body(Full::new(Bytes::from(body)))?;
//!     req.extensions_mut().insert(principal.clone());
//!     Ok::<_, http::Error>(req)
//! };
//!
//! let allowed = service.clone().oneshot(call("site-a")?).await?;
//! assert_eq!(allowed.status(), StatusCode::OK);
//!
//! let rejected = service.oneshot(call("site-b")?).await?;
//! assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     rejected.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::SiteNotGranted)
//! );
//! # Ok(())
//! # }
//! ```

mod body;
mod jsonrpc;
mod layer;
mod mirror;
mod resolve;
mod sources;

pub use body::SiteBody;
pub use layer::{
    BindSite, BindSiteLayer, DEFAULT_BODY_LIMIT, DEFAULT_TOOLS_CALL_POINTER, ResponseFuture,
};
pub use portcullis_core::{AccessibleSites, JsonRpcCall, Site, SiteId};
/// The `with_bearer` and `with_fetcher` builder methods of this crate's HTTP source.
pub use portcullis_lookup::ConfigureHttpSource;
pub use resolve::{
    BoxFuture, HttpGrants, LookupError, ResolveSite, ResolveSiteGrants, StaticDirectory,
};
