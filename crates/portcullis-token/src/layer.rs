//! [`ValidateTokenLayer`]: the request's [`Credential`] to a [`Principal`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_core::{
    Challenge, Credential, LookupFuture, Principal, Protocol, Rejection, RejectionKind,
    ResponseBody,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::TokenValidator;
use crate::validator::Lookup;

/// Layer that applies [`ValidateToken`]. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ValidateTokenLayer {
    shared: Arc<Shared>,
}

/// What every [`ValidateToken`] of a layer shares, behind one pointer: a service is cloned per request by most
/// servers, and each shared count it holds is a write that the cores serving requests contend for.
#[derive(Debug)]
struct Shared {
    validator: TokenValidator,
    challenge: Challenge,
}

impl ValidateTokenLayer {
    /// Validates with `validator` and answers rejections with `challenge`.
    pub fn new(validator: TokenValidator, challenge: Challenge) -> Self {
        Self {
            shared: Arc::new(Shared {
                validator,
                challenge,
            }),
        }
    }
}

impl<S> Layer<S> for ValidateTokenLayer {
    type Service = ValidateToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateToken {
            inner,
            shared: Arc::clone(&self.shared),
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
    shared: Arc<Shared>,
}

/// Response future of [`ValidateToken`]: a cached credential is decided without waiting and the inner future is
/// polled in place; only a credential that must be validated (a key set, an introspection answer) is boxed.
pub type ResponseFuture<F, B, E> = LookupFuture<F, B, E>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ValidateToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // A principal planted before this layer never reaches the inner service: the request goes on only with
        // the validator's principal inserted over it.
        let Some(credential) = req.extensions().get::<Credential>() else {
            let rejection = Rejection::new(RejectionKind::MissingCredential);
            return LookupFuture::ready(reject(&self.shared.challenge, &req, "none", rejection));
        };
        let key = match self.shared.validator.cached(credential) {
            Lookup::Hit(Ok(principal)) => {
                return LookupFuture::inner(accept(&mut self.inner, req, principal));
            }
            Lookup::Hit(Err(rejection)) => {
                let kind = credential.kind().as_str();
                return LookupFuture::ready(reject(&self.shared.challenge, &req, kind, rejection));
            }
            Lookup::Miss(key) => key,
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        LookupFuture::waiting(Box::pin(async move {
            let outcome = match req.extensions().get::<Credential>() {
                Some(credential) => shared
                    .validator
                    .validate_missed(key, credential)
                    .await
                    .map_err(|rejection| (credential.kind().as_str(), rejection)),
                None => Err(("none", Rejection::new(RejectionKind::MissingCredential))),
            };
            match outcome {
                Ok(principal) => accept(&mut inner, req, principal)
                    .await
                    .map(|response| response.map(ResponseBody::new)),
                Err((credential, rejection)) => {
                    Ok(reject(&shared.challenge, &req, credential, rejection))
                }
            }
        }))
    }
}

/// Lets the request through with its principal.
fn accept<S, ReqBody>(inner: &mut S, mut req: Request<ReqBody>, principal: Principal) -> S::Future
where
    S: Service<Request<ReqBody>>,
{
    tracing::debug!(
        target: "portcullis::token",
        method = principal.method().as_str(),
        outcome = "valid",
        path = req.uri().path(),
    );
    req.extensions_mut().insert(principal);
    inner.call(req)
}

/// The challenge for a rejected request, logged without the credential.
fn reject<ReqBody, B>(
    challenge: &Challenge,
    req: &Request<ReqBody>,
    credential: &'static str,
    rejection: Rejection,
) -> Response<ResponseBody<B>> {
    tracing::debug!(
        target: "portcullis::token",
        credential,
        outcome = "rejected",
        reason = rejection.kind().code(),
        path = req.uri().path(),
    );
    challenge.respond(rejection, Protocol::detect(req.headers()))
}
