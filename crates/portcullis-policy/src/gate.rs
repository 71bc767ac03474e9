//! [`GateApiTokensLayer`]: API tokens only where the organization's admin enabled them.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use portcullis_core::{
    AuthMethod, Challenge, LookupFuture, OrgId, Principal, Protocol, Rejection, RejectionKind,
    ResponseBody, Site,
};
use portcullis_lookup::ExpiringCache;
use tower_layer::Layer;
use tower_service::Service;

use crate::{ApiTokenPolicy, ResolvePolicy};

/// Layer that applies [`GateApiTokens`]. See the [crate docs](crate) for an example.
#[derive(Clone)]
#[must_use]
pub struct GateApiTokensLayer {
    shared: Arc<Shared>,
}

struct Shared {
    challenge: Challenge,
    source: Arc<dyn ResolvePolicy>,
    cache: ExpiringCache<OrgId, Option<ApiTokenPolicy>>,
    ttl: Duration,
}

impl GateApiTokensLayer {
    /// Gates API-token principals with the policies from `source`, cached for 30 seconds.
    pub fn new(challenge: Challenge, source: impl ResolvePolicy) -> Self {
        Self::with_ttl(challenge, source, Duration::from_secs(30))
    }

    /// As [`new`](Self::new), with the time a policy answer is cached: a change at the source takes effect
    /// within it.
    pub fn with_ttl(challenge: Challenge, source: impl ResolvePolicy, ttl: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                challenge,
                source: Arc::new(source),
                cache: ExpiringCache::new(10_000),
                ttl,
            }),
        }
    }
}

impl fmt::Debug for GateApiTokensLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateApiTokensLayer")
            .field("source", &self.shared.source)
            .field("ttl", &self.shared.ttl)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for GateApiTokensLayer {
    type Service = GateApiTokens<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateApiTokens {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Middleware that refuses API-token principals (personal tokens, service-account keys) unless the policy of the
/// organization that owns the bound site (or, with no site, the principal's own organization) allows that kind.
///
/// # Security
/// - No known policy means disabled; a failed lookup means denied (and is not cached).
/// - OAuth principals pass untouched, without any lookup.
/// - Fails closed without a [`Principal`]; a bound site whose organization is unknown is denied.
/// - Personal tokens and service-account keys get the same answer: 401 `invalid_token`, "API-token
///   authentication is disabled by the organization's admin; use OAuth 2.1", with the resource metadata.
#[derive(Clone)]
pub struct GateApiTokens<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for GateApiTokens<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateApiTokens")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Response future of [`GateApiTokens`]: OAuth principals and cached policies are decided without waiting;
/// only a policy lookup is boxed.
pub type GateFuture<F, B, E> = LookupFuture<F, B, E>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GateApiTokens<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let reject = |shared: &Shared, req: &Request<ReqBody>, kind| {
            let protocol = Protocol::detect(req.headers());
            LookupFuture::ready(shared.challenge.respond(Rejection::new(kind), protocol))
        };
        let Some(principal) = req.extensions().get::<Principal>() else {
            return reject(&self.shared, &req, RejectionKind::MissingCredential);
        };
        let method = principal.method();
        if !method.is_api_token() {
            return LookupFuture::inner(self.inner.call(req));
        }
        // The organization that owns the bound site; with no site, the principal's own.
        let organization = match req.extensions().get::<Site>() {
            Some(site) => site.organization().cloned(),
            None => principal.organization().cloned(),
        };
        let Some(organization) = organization else {
            tracing::debug!(target: "portcullis::policy", method = method.as_str(), outcome = "denied", reason = "no_organization");
            return reject(&self.shared, &req, RejectionKind::ApiTokensDisabled);
        };
        if let Some(policy) = self.shared.cache.get(&organization) {
            return if decide(&req, method, Ok(&policy)) {
                LookupFuture::inner(self.inner.call(req))
            } else {
                reject(&self.shared, &req, RejectionKind::ApiTokensDisabled)
            };
        }
        let shared = Arc::clone(&self.shared);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        LookupFuture::waiting(Box::pin(async move {
            let policy = shared
                .cache
                .get_or_load(organization.clone(), async {
                    shared
                        .source
                        .policy(&organization)
                        .await
                        .map(|policy| (policy, shared.ttl))
                })
                .await;
            if decide(&req, method, policy.as_ref().map_err(|_| ())) {
                inner
                    .call(req)
                    .await
                    .map(|response| response.map(ResponseBody::new))
            } else {
                let protocol = Protocol::detect(req.headers());
                Ok(shared
                    .challenge
                    .respond(Rejection::new(RejectionKind::ApiTokensDisabled), protocol))
            }
        }))
    }
}

/// Whether the organization's policy (`Err` when it could not be had) lets this kind of API token in; logged.
fn decide<ReqBody>(
    req: &Request<ReqBody>,
    method: AuthMethod,
    policy: Result<&Option<ApiTokenPolicy>, ()>,
) -> bool {
    let allowed = match (policy, method) {
        (Ok(Some(policy)), AuthMethod::PersonalApiToken) => policy.personal_api_tokens,
        (Ok(Some(policy)), AuthMethod::ServiceAccountKey) => policy.service_account_keys,
        _ => false,
    };
    tracing::debug!(
        target: "portcullis::policy",
        method = method.as_str(),
        outcome = if allowed { "allowed" } else { "denied" },
        lookup_failed = policy.is_err(),
        path = req.uri().path(),
    );
    allowed
}
