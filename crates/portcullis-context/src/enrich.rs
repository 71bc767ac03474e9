//! [`EnrichContextLayer`]: the principal and its site to an [`AuthContext`], and the request made safe to forward.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, PROXY_AUTHORIZATION};
use http::{HeaderMap, Request, Response};
use portcullis_core::{
    AuthContext, Challenge, ConfigError, Credential, Principal, Product, Protocol, Rejection,
    RejectionKind, ResponseBody, Site, UserProfile,
};
use portcullis_lookup::ExpiringCache;
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
    cache: ExpiringCache<String, SharedParts>,
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

/// Response future of [`EnrichContext`]; boxed, because a context may have to be looked up.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EnrichContext<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let protocol = Protocol::detect(req.headers());
            req.extensions_mut().remove::<AuthContext>();
            let Some(principal) = req.extensions().get::<Principal>().cloned() else {
                return Ok(shared
                    .challenge
                    .respond(Rejection::new(RejectionKind::MissingCredential), protocol));
            };
            let site = req.extensions().get::<Site>().cloned();
            // Taken out for the lookup (a source may ask the issuer with it) and put back after: the request body
            // need not be `Sync`, and nothing is copied.
            let credential = req.extensions_mut().remove::<Credential>();
            let key = format!(
                "{}\0{}\0{}\0{}",
                principal.method(),
                principal.issuer().unwrap_or_default(),
                principal.subject(),
                site.as_ref().map(|s| s.id().as_str()).unwrap_or_default(),
            );
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
            let parts = match parts {
                Ok(parts) => parts,
                Err(_) => {
                    tracing::debug!(
                        target: "portcullis::context",
                        outcome = "unavailable",
                        path = req.uri().path(),
                    );
                    return Ok(shared.challenge.respond(
                        Rejection::new(RejectionKind::TemporarilyUnavailable),
                        protocol,
                    ));
                }
            };
            if let Some(forwarding) = &shared.forwarding {
                prepare_for_forwarding(req.headers_mut(), forwarding, &principal, site.as_ref());
            }
            let (user, products) = parts;
            let context = AuthContext::from_shared(principal, site, user, products);
            req.extensions_mut().insert(context);
            inner
                .call(req)
                .await
                .map(|response| response.map(ResponseBody::new))
        })
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
