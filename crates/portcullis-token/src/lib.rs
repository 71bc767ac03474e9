//! Validates Portcullis credentials into a [`Principal`](portcullis_core::Principal), with caches.
//!
//! [`ValidateTokenLayer`] reads the [`Credential`](portcullis_core::Credential) that the extraction layer left in
//! the request extensions and validates it with a [`TokenValidator`]:
//!
//! | credential | validated by | principal |
//! | --- | --- | --- |
//! | JWT-shaped Bearer token | the signature, with the keys of the issuer it names (JWKS through RFC 8414 / OIDC discovery, or a configured URI), then `iss`, `aud`, `exp`, `nbf`, `iat`, `typ` | `AuthMethod::OAuth` |
//! | opaque Bearer token | RFC 7662 introspection | `AuthMethod::OAuth` |
//! | Bearer service-account key (by prefix) | a [`VerifyApiToken`] | `AuthMethod::ServiceAccountKey` |
//! | Basic `email:token` | a [`VerifyApiToken`] | `AuthMethod::PersonalApiToken` |
//!
//! Answers: 401 `invalid_token` for a credential that is not valid, 503 with `Retry-After` when a key set,
//! introspection endpoint or verifier is unreachable and nothing usable is cached.
//!
//! # In the stack
//! | | |
//! | --- | --- |
//! | owns | credential validation: [`TokenValidator`] (issuers, key sets, introspection, API-token verifiers) and its caches |
//! | reads | the [`Credential`](portcullis_core::Credential) in the extensions (none: 401) |
//! | puts | a [`Principal`](portcullis_core::Principal), over one planted before |
//! | comes after | `ExtractCredentialLayer` (`portcullis-credential`) |
//!
//! # Caching
//! Results are cached under a keyed 128-bit HighwayHash digest of the whole credential: valid ones until the token expires
//! (capped), invalid ones briefly; failures to reach a service are never cached. Concurrent requests with the
//! same new credential validate it once. Key sets are refreshed on schedule (honouring `Cache-Control` within
//! bounds), refetched on an unknown `kid` at most once per cooldown, and kept while fetches fail.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use portcullis_core::{Challenge, Principal, Rejection, RejectionKind};
//! use portcullis_credential::ExtractCredentialLayer;
//! use portcullis_token::{FileTokenStore, TokenValidator, ValidateTokenLayer, token_digest};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = FileTokenStore::from_toml(&format!(
//!     "[[service_account]]\naccount_id = 'svc-build'\norganization = 'org-a'\nkey_sha256 = '{}'",
//!     token_digest("pcsa_build_key")
//! ))?;
//! let validator = TokenValidator::builder("https://mcp.example.com/mcp")
//!     .with_api_token_verifier(store)
//!     .build()?;
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(ExtractCredentialLayer::new(challenge.clone()).with_service_account_prefix("pcsa_")?)
//!     .layer(ValidateTokenLayer::new(validator, challenge))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let who = req.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
//!     });
//!
//! let allowed = Request::builder()
//!     .header("authorization", "Bearer pcsa_build_key")
//!     .body(Full::default())?;
//! assert_eq!(service.clone().oneshot(allowed).await?.status(), StatusCode::OK);
//!
//! let rejected = Request::builder()
//!     .header("authorization", "Bearer pcsa_wrong_key")
//!     .body(Full::default())?;
//! let response = service.oneshot(rejected).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.extensions().get::<Rejection>().map(Rejection::kind),
//!     Some(RejectionKind::InvalidToken)
//! );
//! # Ok(())
//! # }
//! ```

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("enable one of the features `aws-lc-rs` (default) or `rust-crypto`");

mod algorithm;
mod api_token;
mod clock;
mod introspection;
mod jwks;
mod jwt;
mod layer;
mod validator;
mod verify;

pub use algorithm::{SigningAlgorithm, UnknownAlgorithm};
pub use api_token::{
    ApiToken, ApiTokenOwner, BoxFuture, FileTokenStore, HttpTokenVerifier, VerifyApiToken,
    VerifyError, token_digest,
};
pub use clock::{Clock, SystemClock};
pub use introspection::Introspection;
pub use jwks::Issuer;
pub use layer::{ResponseFuture, ValidateToken, ValidateTokenLayer};
/// The `with_bearer` and `with_fetcher` builder methods of this crate's HTTP source.
pub use portcullis_lookup::ConfigureHttpSource;
pub use validator::{TokenValidator, TokenValidatorBuilder, ValidatorStats};
