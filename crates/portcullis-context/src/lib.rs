//! Enriches an authenticated request with what the application needs to know about the caller.
//!
//! [`EnrichContextLayer`] builds the [`AuthContext`](portcullis_core::AuthContext) of the request's principal
//! and bound site: the user (account id, email, display name, locale, time zone where known) and the products on
//! the site that the user can use, from a [`ResolveContext`] ([`StaticContext`] from TOML, [`HttpContext`] from a
//! user-profile and a site-products endpoint), cached per (principal, site), single-flight. A failed lookup with
//! nothing cached is 503.
//!
//! The application reads the context from the request extensions: `req.extensions().get::<AuthContext>()` in a
//! tower or tonic service, the `AuthContext` extractor in axum (feature `axum` of `portcullis-core`).
//!
//! For a gateway that forwards to another service, [`EnrichContextLayer::for_forwarding`] removes the inbound
//! `Authorization` header (a token is never passed through) and every inbound header of the identity namespace,
//! and [`EnrichContextLayer::with_identity_headers`] sets the identity for the upstream.
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | who the caller is for the application: [`EnrichContextLayer`], the context sources and the context cache |
//! | reads | the [`Principal`](portcullis_core::Principal) (none: 401), the bound [`Site`](portcullis_core::Site), and the [`Credential`](portcullis_core::Credential) for an OIDC `userinfo` source |
//! | puts | the [`AuthContext`](portcullis_core::AuthContext), over one planted before; in forwarding mode it removes `Authorization` and the identity namespace, and sets the identity headers |
//! | comes after | `BindSiteLayer` and the policy layers: it is the last layer before the application |
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use portcullis_core::{AuthContext, AuthMethod, Challenge, Principal, Rejection, RejectionKind};
//! use portcullis_context::{EnrichContextLayer, StaticContext};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")?;
//! let users = StaticContext::from_toml("[user.acc-ada]\ndisplay_name = 'Ada'")?;
//! let service = ServiceBuilder::new()
//!     .layer(EnrichContextLayer::new(challenge, users))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let name = req.extensions().get::<AuthContext>().and_then(|c| c.user().display_name.clone());
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(name.unwrap_or_default()))))
//!     });
//!
//! // Normally inserted by the validation layer.
//! let mut allowed = Request::new(Full::default());
//! allowed.extensions_mut().insert(Principal::builder(AuthMethod::OAuth, "acc-ada").verified());
//! assert_eq!(service.clone().oneshot(allowed).await?.status(), StatusCode::OK);
//!
//! let rejected = service.oneshot(Request::new(Full::default())).await?;
//! assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     rejected.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::MissingCredential)
//! );
//! # Ok(())
//! # }
//! ```

mod enrich;
mod resolve;

pub use enrich::{EnrichContext, EnrichContextLayer, ResponseFuture};
/// The `with_bearer` and `with_fetcher` builder methods of this crate's HTTP source.
pub use portcullis_lookup::ConfigureHttpSource;
pub use resolve::{
    BoxFuture, ContextError, ContextParts, ContextQuery, HttpContext, ResolveContext, StaticContext,
};
