//! The shared vocabulary of the Portcullis layers.
//!
//! Every Portcullis layer reads and writes these types: the [`Credential`] a client presented, the
//! [`Principal`] a validator proved, the [`Site`] a request is bound to, the [`AuthContext`] the application
//! reads, and the typed [`Rejection`] with its rendering ([`Challenge::respond`]): RFC 6750 `WWW-Authenticate`
//! with the RFC 9728 `resource_metadata` parameter for HTTP, `grpc-status` for gRPC, a small JSON body, and the
//! reason in the response extensions.
//!
//! The layer crates do not depend on each other; they meet here.
//!
//! # What it owns
//! The types every layer reads and writes, and nothing that runs in a request on its own: it reads nothing from a
//! request and puts nothing there. Besides the vocabulary above: [`PrincipalKey`] (who a principal is, the key of
//! every cache and binding keyed by principal), [`LookupFuture`] and [`ResponseFuture`] (the layers' response
//! futures), [`ResponseBody`], and the axum extractors (feature `axum`). It depends on no other Portcullis crate.
//!
//! # Example
//!
//! A hand-written check that answers exactly like the Portcullis layers do:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header::WWW_AUTHENTICATE};
//! use http_body_util::Full;
//! use portcullis_core::{Challenge, Protocol, Rejection, RejectionKind, ResponseBody};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource")?;
//! let service = ServiceBuilder::new().service_fn(move |req: Request<()>| {
//!     let challenge = challenge.clone();
//!     async move {
//!         if req.headers().contains_key("authorization") {
//!             return Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::new(Full::new(
//!                 Bytes::from("hello"),
//!             ))));
//!         }
//!         let rejection = Rejection::new(RejectionKind::MissingCredential);
//!         Ok(challenge.respond(rejection, Protocol::detect(req.headers())))
//!     }
//! });
//!
//! let allowed = Request::builder().header("authorization", "Bearer abc").body(())?;
//! let response = service.clone().oneshot(allowed).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let rejected = service.oneshot(Request::new(())).await?;
//! assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     rejected.headers()[WWW_AUTHENTICATE],
//!     "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\""
//! );
//! assert_eq!(
//!     rejected.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::MissingCredential)
//! );
//! # Ok(())
//! # }
//! ```

mod body;
mod context;
mod credential;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod key;
mod mcp;
mod origin;
mod principal;
mod rejection;
mod render;
mod scope;
mod secret;
mod site;

pub use body::ResponseBody;
pub use context::{AuthContext, Product, UserProfile};
pub use credential::{BasicCredential, BearerToken, Credential, CredentialKind, TokenShape};
pub use error::{ConfigError, check_url};
#[cfg(feature = "axum")]
pub use extract::MissingExtension;
pub use future::{BoxedResponse, LookupFuture, ResponseFuture};
pub use key::{PrincipalKey, PrincipalKeyRef};
pub use mcp::{JsonRpcCall, JsonRpcId};
pub use origin::AllowedOrigins;
pub use principal::{AuthMethod, Principal, PrincipalBuilder};
pub use rejection::{Rejection, RejectionKind};
pub use render::{Challenge, Protocol};
pub use scope::ScopeList;
pub use secret::Secret;
pub use site::{AccessibleSites, InvalidId, OrgId, Site, SiteId};
