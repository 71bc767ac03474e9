//! [`ValidateTokenLayer`]: the request's [`Credential`] to a [`Principal`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_core::{
    Challenge, Credential, Principal, Protocol, Rejection, RejectionKind, ResponseBody,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::TokenValidator;

/// Layer that applies [`ValidateToken`]. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ValidateTokenLayer {
    validator: TokenValidator,
    challenge: Challenge,
}

impl ValidateTokenLayer {
    /// Validates with `validator` and answers rejections with `challenge`.
    pub fn new(validator: TokenValidator, challenge: Challenge) -> Self {
        Self {
            validator,
            challenge,
        }
    }
}

impl<S> Layer<S> for ValidateTokenLayer {
    type Service = ValidateToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateToken {
            inner,
            validator: self.validator.clone(),
            challenge: self.challenge.clone(),
        }
    }
}

/// Middleware that validates the [`Credential`] left by the extraction layer and inserts the [`Principal`].
///
/// # Security
/// - With no [`Credential`] in the extensions (the extraction layer is missing or was built `optional()` and
///   nothing was sent), the request is rejected: this layer fails closed.
/// - Whatever [`Principal`] the request carried before this layer is removed.
/// - Log events carry the credential kind, the outcome and the path; never the token.
#[derive(Clone, Debug)]
pub struct ValidateToken<S> {
    inner: S,
    validator: TokenValidator,
    challenge: Challenge,
}

/// Response future of [`ValidateToken`]. Validation may wait for a key set or an introspection answer, so the
/// future is boxed (one allocation per request; measured in the crate's benchmark).
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ValidateToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        req.extensions_mut().remove::<Principal>();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let validator = self.validator.clone();
        let challenge = self.challenge.clone();
        Box::pin(async move {
            let protocol = Protocol::detect(req.headers());
            let outcome = match req.extensions().get::<Credential>() {
                Some(credential) => validator
                    .validate(credential)
                    .await
                    .map_err(|rejection| (credential.kind().as_str(), rejection)),
                None => Err(("none", Rejection::new(RejectionKind::MissingCredential))),
            };
            match outcome {
                Ok(principal) => {
                    tracing::debug!(
                        target: "portcullis::token",
                        method = principal.method().as_str(),
                        outcome = "valid",
                        path = req.uri().path(),
                    );
                    req.extensions_mut().insert(principal);
                    inner
                        .call(req)
                        .await
                        .map(|response| response.map(ResponseBody::new))
                }
                Err((credential, rejection)) => {
                    tracing::debug!(
                        target: "portcullis::token",
                        credential,
                        outcome = "rejected",
                        reason = rejection.kind().code(),
                        path = req.uri().path(),
                    );
                    Ok(challenge.respond(rejection, protocol))
                }
            }
        })
    }
}
