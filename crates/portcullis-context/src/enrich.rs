//! [`EnrichContextLayer`]: the principal and its site to an [`AuthContext`], and the request made safe to forward.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, PROXY_AUTHORIZATION};
use http::{HeaderMap, Request, Response};
use portcullis_core::{
    AuthContext, Challenge, ConfigError, Credential, LookupFuture, Principal, PrincipalKey,
    PrincipalKeyRef, Product, Protocol, Rejection, RejectionKind, ResponseBody, Site, SiteId,
    UserProfile,
};
use portcullis_lookup::{Equivalent, ExpiringCache};
use tower_layer::Layer;
use tower_service::Service;

use crate::{ContextQuery, ResolveContext};

/// What the cache keeps per (principal, site): shared, so that a hit copies two pointers.
type SharedParts = (Arc<UserProfile>, Arc<[Product]>);

/// Layer that applies [`EnrichContext`]. See the [crate docs](crate) for an example.
#[derive(Clone)]
#[must_use]
pub struct EnrichContextLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    challenge: Challenge,
    source: Arc<dyn ResolveContext>,
    cache: ExpiringCache<ContextKey, SharedParts>,
    ttl: Duration,
    forwarding: Option<Forwarding>,
}

#[derive(Clone, Debug)]
struct Forwarding {
    /// Lower case, with `-` for `_`, e.g. `x-portcullis-`.
    namespace: String,
    set_identity: bool,
}

impl EnrichContextLayer {
    /// Enriches with `source`, caching each (principal, site) for 5 minutes, at most 100 000 entries.
    pub fn new(challenge: Challenge, source: impl ResolveContext) -> Self {
        Self {
            shared: Arc::new(Shared {
                challenge,
                source: Arc::new(source),
                cache: ExpiringCache::new(100_000),
                ttl: Duration::from_secs(300),
                forwarding: None,
            }),
        }
    }

    fn shared(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// How long a context is cached.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.shared().ttl = ttl;
        self
    }

    /// Most (principal, site) contexts cached.
    pub fn with_capacity(mut self, capacity: u64) -> Self {
        self.shared().cache = ExpiringCache::new(capacity.max(1));
        self
    }

    /// Prepares requests for forwarding to another service: removes the inbound `Authorization` and
    /// `Proxy-Authorization` headers (a token is never passed through), and every inbound header whose name starts
    /// with `namespace` in any case and with `_` or `-` (so a client cannot spoof identity headers).
    ///
    /// # Errors
    /// A namespace that is empty, not a valid header-name prefix, or without a trailing `-`.
    pub fn for_forwarding(mut self, namespace: &str) -> Result<Self, ConfigError> {
        let normalised = namespace.to_ascii_lowercase().replace('_', "-");
        let valid = normalised.len() > 1
            && normalised.ends_with('-')
            && HeaderName::from_bytes(format!("{normalised}x").as_bytes()).is_ok();
        if !valid {
            return Err(ConfigError::new(
                "identity_namespace",
                "must be a header-name prefix ending in '-', e.g. x-portcullis-",
            ));
        }
        self.shared().forwarding = Some(Forwarding {
            namespace: normalised,
            set_identity: false,
        });
        Ok(self)
    }

    /// With [`for_forwarding`](Self::for_forwarding), also sets identity headers for the upstream:
    /// `<namespace>account-id`, `<namespace>auth-method`, `<namespace>scopes`, and when bound
    /// `<namespace>site-id` and `<namespace>organization-id`. Values outside visible ASCII are percent-encoded
    /// (UTF-8).
    ///
    /// # Errors
    /// When [`for_forwarding`](Self::for_forwarding) was not called first.
    pub fn with_identity_headers(mut self) -> Result<Self, ConfigError> {
        match &mut self.shared().forwarding {
            Some(forwarding) => forwarding.set_identity = true,
            None => {
                return Err(ConfigError::new(
                    "identity_headers",
                    "call for_forwarding(namespace) first: identity headers need a namespace",
                ));
            }
        }
        Ok(self)
    }
}

impl fmt::Debug for EnrichContextLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrichContextLayer")
            .field("source", &self.shared.source)
            .field("ttl", &self.shared.ttl)
            .field("forwarding", &self.shared.forwarding)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for EnrichContextLayer {
    type Service = EnrichContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnrichContext {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Middleware that inserts the [`AuthContext`] of the request's principal and bound site.
///
/// # Security
/// - Fails closed without a [`Principal`].
/// - A failed lookup with nothing cached is 503; failures are not cached.
/// - An `AuthContext` planted before this layer is replaced.
/// - In forwarding mode, no inbound `Authorization` and no inbound identity-namespace header reaches the inner
///   service, whatever its spelling.
#[derive(Clone)]
pub struct EnrichContext<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for EnrichContext<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrichContext")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Response future of [`EnrichContext`]: a cached context is added without waiting and the inner future is
/// polled in place; only a lookup is boxed.
pub type ResponseFuture<F, B, E> = LookupFuture<F, B, E>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnrichContext<S>
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // An `AuthContext` planted before this layer never reaches the inner service, whichever way the request
        // goes on from here.
        req.extensions_mut().remove::<AuthContext>();
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            let rejection = Rejection::new(RejectionKind::MissingCredential);
            let protocol = Protocol::detect(req.headers());
            return LookupFuture::ready(self.shared.challenge.respond(rejection, protocol));
        };
        let site = req.extensions().get::<Site>().cloned();
        let cached = self
            .shared
            .cache
            .get(&ContextKeyRef::new(&principal, site.as_ref()));
        if let Some(parts) = cached {
            return LookupFuture::inner(enter(
                &self.shared,
                &mut self.inner,
                req,
                principal,
                site,
                parts,
            ));
        }

        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        LookupFuture::waiting(Box::pin(async move {
            // Taken out for the lookup (a source may ask the issuer with it) and put back after: the request body
            // need not be `Sync`, and nothing is copied.
            let credential = req.extensions_mut().remove::<Credential>();
            let key = ContextKeyRef::new(&principal, site.as_ref()).into_owned();
            let parts = shared
                .cache
                .get_or_load(key, async {
                    let query = ContextQuery::new(&principal, site.as_ref())
                        .with_credential(credential.as_ref());
                    shared.source.context(query).await.map(|parts| {
                        (
                            (Arc::new(parts.user), Arc::from(parts.products)),
                            shared.ttl,
                        )
                    })
                })
                .await;
            if let Some(credential) = credential {
                req.extensions_mut().insert(credential);
            }
            let Ok(parts) = parts else {
                tracing::debug!(
                    target: "portcullis::context",
                    outcome = "unavailable",
                    path = req.uri().path(),
                );
                let rejection = Rejection::new(RejectionKind::TemporarilyUnavailable);
                let protocol = Protocol::detect(req.headers());
                return Ok(shared.challenge.respond(rejection, protocol));
            };
            enter(&shared, &mut inner, req, principal, site, parts)
                .await
                .map(|response| response.map(ResponseBody::new))
        }))
    }
}

/// Puts the context on the request (and prepares it for forwarding) and calls the inner service.
fn enter<S, ReqBody>(
    shared: &Shared,
    inner: &mut S,
    mut req: Request<ReqBody>,
    principal: Principal,
    site: Option<Site>,
    (user, products): SharedParts,
) -> S::Future
where
    S: Service<Request<ReqBody>>,
{
    if let Some(forwarding) = &shared.forwarding {
        prepare_for_forwarding(req.headers_mut(), forwarding, &principal, site.as_ref());
    }
    let context = AuthContext::from_shared(principal, site, user, products);
    req.extensions_mut().insert(context);
    inner.call(req)
}

/// The cache key of a context: who on which site.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ContextKey {
    principal: PrincipalKey,
    site: Option<SiteId>,
}

/// A [`ContextKey`] borrowed from the request, for lookups that allocate nothing. It hashes exactly as the owned
/// key does (a [`PrincipalKeyRef`] as its [`PrincipalKey`], a reference as what it refers to).
#[derive(Clone, Copy, Hash)]
struct ContextKeyRef<'a> {
    principal: PrincipalKeyRef<'a>,
    site: Option<&'a SiteId>,
}

impl<'a> ContextKeyRef<'a> {
    fn new(principal: &'a Principal, site: Option<&'a Site>) -> Self {
        Self {
            principal: principal.key(),
            site: site.map(Site::id),
        }
    }

    fn into_owned(self) -> ContextKey {
        ContextKey {
            principal: self.principal.into_owned(),
            site: self.site.cloned(),
        }
    }
}

impl Equivalent<ContextKey> for ContextKeyRef<'_> {
    fn equivalent(&self, key: &ContextKey) -> bool {
        self.principal.matches(&key.principal) && self.site == key.site.as_ref()
    }
}

fn prepare_for_forwarding(
    headers: &mut HeaderMap,
    forwarding: &Forwarding,
    principal: &Principal,
    site: Option<&Site>,
) {
    headers.remove(AUTHORIZATION);
    headers.remove(PROXY_AUTHORIZATION);
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.len() >= forwarding.namespace.len()
                && name.as_bytes()[..forwarding.namespace.len()]
                    .iter()
                    .map(|&b| {
                        if b == b'_' {
                            b'-'
                        } else {
                            b.to_ascii_lowercase()
                        }
                    })
                    .eq(forwarding.namespace.bytes())
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(&name);
    }
    if !forwarding.set_identity {
        return;
    }
    let mut set = |suffix: &str, value: &str| {
        let name = format!("{}{suffix}", forwarding.namespace);
        if let (Ok(name), Some(value)) =
            (HeaderName::from_bytes(name.as_bytes()), header_value(value))
        {
            headers.insert(name, value);
        }
    };
    set("account-id", principal.subject());
    set("auth-method", principal.method().as_str());
    set("scopes", principal.scopes().as_str());
    if let Some(site) = site {
        set("site-id", site.id().as_str());
        if let Some(org) = site.organization() {
            set("organization-id", org.as_str());
        }
    }
}

/// A header value: as is when it is visible ASCII, percent-encoded (UTF-8) otherwise.
fn header_value(value: &str) -> Option<HeaderValue> {
    if value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
    {
        return HeaderValue::from_str(value).ok();
    }
    let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    HeaderValue::from_str(&encoded).ok()
}

#[cfg(test)]
mod key_tests {
    use std::hash::{BuildHasher, RandomState};

    use portcullis_core::AuthMethod;

    use super::*;

    /// The borrowed key finds exactly the owned key of the same principal and site, and hashes the same. (Which
    /// principals are the same is `PrincipalKey`'s own test, in portcullis-core.)
    #[test]
    fn borrowed_keys_match_owned_keys_exactly() {
        let principals = [
            Principal::builder(AuthMethod::OAuth, "u1")
                .with_issuer("https://a.example")
                .verified(),
            Principal::builder(AuthMethod::OAuth, "u1").verified(),
            Principal::builder(AuthMethod::ServiceAccountKey, "u2").verified(),
        ];
        let site_a = Site::new(SiteId::parse("site-a").expect("id"));
        let site_b = Site::new(SiteId::parse("site-b").expect("id"));
        let sites = [None, Some(&site_a), Some(&site_b)];
        let hasher = RandomState::new();
        for (i, p) in principals.iter().enumerate() {
            for (j, s) in sites.iter().enumerate() {
                let owned = ContextKeyRef::new(p, *s).into_owned();
                for (k, q) in principals.iter().enumerate() {
                    for (l, t) in sites.iter().enumerate() {
                        let borrowed = ContextKeyRef::new(q, *t);
                        let same = i == k && j == l;
                        assert_eq!(borrowed.equivalent(&owned), same, "{i}/{j} vs {k}/{l}");
                        if same {
                            assert_eq!(hasher.hash_one(borrowed), hasher.hash_one(&owned));
                        }
                    }
                }
            }
        }
    }
}
