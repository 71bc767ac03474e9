//! [`ExtractCredentialLayer`]: the `Authorization` header to a [`Credential`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_core::{
    AllowedOrigins, Challenge, ConfigError, Credential, Protocol, Rejection, RejectionKind,
    ResponseBody, ResponseFuture,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::parse::Parser;

/// Default limit on the length of the `Authorization` header value, in bytes.
pub const DEFAULT_MAX_HEADER_LEN: usize = 8 * 1024;

/// Layer that applies [`ExtractCredential`], which reads the `Authorization` header into a [`Credential`] in the
/// request extensions. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ExtractCredentialLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    challenge: Challenge,
    parser: Parser,
    optional: bool,
    origins: Option<AllowedOrigins>,
}

impl ExtractCredentialLayer {
    /// A layer that requires a credential and answers rejections with `challenge`.
    pub fn new(challenge: Challenge) -> Self {
        Self {
            config: Arc::new(Config {
                challenge,
                parser: Parser {
                    service_account_prefix: None,
                    max_header_len: DEFAULT_MAX_HEADER_LEN,
                },
                optional: false,
                origins: None,
            }),
        }
    }

    /// Lets requests without any credential through, without a [`Credential`] extension.
    ///
    /// A credential that *is* sent but malformed or ambiguous is still rejected: a bad credential is never
    /// silently treated as none.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Refuses requests whose `Origin` header `origins` does not allow (403
    /// [`OriginNotAllowed`](RejectionKind::OriginNotAllowed)), before the credential is read. Requests without
    /// `Origin` (non-browser clients) pass. MCP servers must validate `Origin` (streamable HTTP transport,
    /// against DNS rebinding); the facade turns this on with the resource's own origin.
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        Arc::make_mut(&mut self.config).origins = Some(origins);
        self
    }

    /// Bearer tokens that start with `prefix` are service-account API keys
    /// ([`TokenShape::ServiceAccountKey`](portcullis_core::TokenShape::ServiceAccountKey)).
    ///
    /// # Errors
    /// An empty prefix, or one with characters that cannot appear in a Bearer token.
    pub fn with_service_account_prefix(mut self, prefix: &str) -> Result<Self, ConfigError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            });
        if !valid {
            return Err(ConfigError::new(
                "service_account_prefix",
                "must be 1 to 64 characters allowed in a Bearer token (letters, digits, '-', '.', '_', '~', '+', '/')",
            ));
        }
        Arc::make_mut(&mut self.config)
            .parser
            .service_account_prefix = Some(prefix.into());
        Ok(self)
    }

    /// Longest `Authorization` header value accepted, in bytes ([`DEFAULT_MAX_HEADER_LEN`] unless set). Longer
    /// ones are refused with 400 before they are parsed.
    ///
    /// # Errors
    /// A limit under 16 bytes or over 64 KiB.
    pub fn with_max_header_len(mut self, max: usize) -> Result<Self, ConfigError> {
        if !(16..=64 * 1024).contains(&max) {
            return Err(ConfigError::new(
                "max_header_len",
                "must be between 16 and 65536 bytes",
            ));
        }
        Arc::make_mut(&mut self.config).parser.max_header_len = max;
        Ok(self)
    }
}

impl<S> Layer<S> for ExtractCredentialLayer {
    type Service = ExtractCredential<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExtractCredential {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Middleware that reads the `Authorization` header into a [`Credential`] in the request extensions, or answers
/// with a rejection.
///
/// # Security
/// - Only the `Authorization` header is read; tokens in the query string or in cookies are ignored. A header
///   together with an `access_token` query parameter, or two `Authorization` headers, is refused with 400 rather
///   than resolved by picking one.
/// - Whatever the request carried as a [`Credential`] extension before this layer is removed, so that only this
///   layer's reading reaches the validators.
/// - Nothing taken from the header appears in a response or a log line; events carry the credential kind, the
///   outcome and the path only.
#[derive(Clone, Debug)]
pub struct ExtractCredential<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ExtractCredential<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // A credential planted before this layer never reaches the inner service, whichever way the request goes
        // on from here.
        req.extensions_mut().remove::<Credential>();
        let origin_refused = self
            .config
            .origins
            .as_ref()
            .is_some_and(|origins| !origins.admits(req.headers()));
        let extracted = if origin_refused {
            Err(RejectionKind::OriginNotAllowed)
        } else {
            self.config.parser.extract(req.headers(), req.uri())
        };
        let kind = match extracted {
            Ok(Some(credential)) => {
                tracing::debug!(
                    target: "portcullis::credential",
                    credential = credential.kind().as_str(),
                    outcome = "extracted",
                    path = req.uri().path(),
                );
                req.extensions_mut().insert(credential);
                return ResponseFuture::inner(self.inner.call(req));
            }
            Ok(None) if self.config.optional => {
                tracing::debug!(
                    target: "portcullis::credential",
                    outcome = "anonymous",
                    path = req.uri().path(),
                );
                return ResponseFuture::inner(self.inner.call(req));
            }
            Ok(None) => RejectionKind::MissingCredential,
            Err(kind) => kind,
        };
        tracing::debug!(
            target: "portcullis::credential",
            outcome = "rejected",
            reason = kind.code(),
            path = req.uri().path(),
        );
        let protocol = Protocol::detect(req.headers());
        ResponseFuture::ready(
            self.config
                .challenge
                .respond(Rejection::new(kind), protocol),
        )
    }
}
