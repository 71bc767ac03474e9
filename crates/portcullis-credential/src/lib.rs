//! Reads the `Authorization` header into a typed [`Credential`].
//!
//! [`ExtractCredentialLayer`] is the first layer of the Portcullis stack. It accepts
//!
//! - `Bearer <token>` (RFC 6750): an OAuth 2.1 access token, classified as JWT-shaped or opaque, or a
//!   service-account API key recognised by its configured prefix;
//! - `Basic base64(email:token)` (RFC 7617): a personal API token;
//!
//! and puts the [`Credential`] into the request extensions for the validator. It proves nothing: it only reads.
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | the `Authorization` grammar: [`ExtractCredentialLayer`] and its parser |
//! | reads | `Origin` where an allowlist is set ([`ExtractCredentialLayer::with_allowed_origins`]), the `Authorization` header, and the query only to refuse an `access_token` parameter beside it |
//! | puts | a [`Credential`] (one planted before this layer is removed first) |
//! | comes after | nothing: it is the first layer |
//!
//! # Parsing rules
//! - The scheme is matched case-insensitively (`bearer`, `BEARER`).
//! - The scheme and the credential are separated by one or more spaces (`1*SP`, RFC 9110 section 11.4); the
//!   credential is the rest of the header and must be a `token68` (letters, digits, `-._~+/`, then `=` padding),
//!   so no space, tab, comma or quote ever becomes part of a token.
//! - The header must be visible ASCII and spaces only (no controls, CR/LF, or non-ASCII bytes) and at most
//!   [`DEFAULT_MAX_HEADER_LEN`] bytes (configurable).
//! - Basic credentials must be valid base64 (padding optional) of UTF-8 text without control characters; the
//!   first colon separates the email from the token, and neither may be empty.
//! - Tokens in the query string or in cookies are never read.
//!
//! # Answers
//! | request | status | `WWW-Authenticate` | [`RejectionKind`] |
//! | --- | --- | --- | --- |
//! | with an origin allowlist: an `Origin` that is `null`, malformed, sent twice or not listed (checked first) | 403, JSON-RPC error without id | none | `OriginNotAllowed` |
//! | no `Authorization` header | 401 | `Bearer resource_metadata="..."` | `MissingCredential` |
//! | malformed `Bearer`/`Basic` | 401 | `Bearer error="invalid_token", ...` | `MalformedCredential` |
//! | another scheme | 401 | `Bearer error="invalid_token", ...` | `UnsupportedScheme` |
//! | two headers, or header and `access_token` query parameter | 400 | `Bearer error="invalid_request", ...` | `AmbiguousCredential` |
//! | header longer than the limit | 400 | `Bearer error="invalid_request", ...` | `CredentialTooLarge` |
//!
//! gRPC requests get the same decisions as `grpc-status` 16 or 3 (see
//! [`Challenge::respond`](portcullis_core::Challenge::respond)).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header::WWW_AUTHENTICATE};
//! use http_body_util::Full;
//! use portcullis_core::{Challenge, Credential, CredentialKind, Rejection, RejectionKind};
//! use portcullis_credential::ExtractCredentialLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource")?;
//! let service = ServiceBuilder::new()
//!     .layer(ExtractCredentialLayer::new(challenge).with_service_account_prefix("pcsa_")?)
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let kind = req.extensions().get::<Credential>().map(Credential::kind);
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("{kind:?}")))))
//!     });
//!
//! let allowed = Request::builder()
//!     .header("authorization", "Bearer pcsa_0123456789")
//!     .body(Full::default())?;
//! let response = service.clone().oneshot(allowed).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let rejected = Request::builder().header("authorization", "Bearer ").body(Full::default())?;
//! let response = service.oneshot(rejected).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert!(response.headers()[WWW_AUTHENTICATE].to_str()?.starts_with("Bearer error=\"invalid_token\""));
//! assert_eq!(
//!     response.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::MalformedCredential)
//! );
//! # let _ = CredentialKind::Jwt;
//! # Ok(())
//! # }
//! ```
//!
//! [`RejectionKind`]: portcullis_core::RejectionKind

mod extract;
mod parse;

pub use extract::{DEFAULT_MAX_HEADER_LEN, ExtractCredential, ExtractCredentialLayer};
pub use portcullis_core::{Credential, ResponseFuture};
