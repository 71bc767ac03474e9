//! [`BindSiteLayer`]: which site a request targets, and whether the principal may use it.

use std::future::Future as _;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, Request, Response, request};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use portcullis_core::{
    AccessibleSites, Challenge, ConfigError, JsonRpcCall, JsonRpcId, LookupFuture, Principal,
    PrincipalKey, Protocol, Rejection, RejectionKind, ResponseBody, Site, SiteId,
};
use portcullis_lookup::{Equivalent, ExpiringCache};
use tower_layer::Layer;
use tower_service::Service;

use crate::SiteBody;
use crate::jsonrpc::{BodyError, Found, ID, METHOD, NAME, Plan, Pointer, TASK_ID, URI, VERSION};
use crate::mirror::{self, Mirrored, ParamHeader};
use crate::resolve::{ResolveSite, ResolveSiteGrants};
use crate::sources::{PathTemplate, header_name, is_ambiguous_path};

/// Entries in each lookup cache (grants per principal, sites by id, sites by host).
const CACHE_CAPACITY: u64 = 10_000;

/// Default limit on a JSON-RPC body the layer reads: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Where `tools/call` names its site unless configured otherwise.
pub const DEFAULT_TOOLS_CALL_POINTER: &str = "/params/arguments/cloudId";

/// Layer that applies [`BindSite`]. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct BindSiteLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    challenge: Challenge,
    templates: Vec<PathTemplate>,
    headers: Vec<HeaderName>,
    query: Vec<String>,
    pointers: Vec<(String, Pointer)>,
    /// The `Mcp-Param-{Name}` headers checked against the arguments they mirror.
    params: Vec<ParamHeader>,
    plan: Option<Arc<Plan>>,
    body_limit: usize,
    require_site: bool,
    /// JSON-RPC methods that must name a site (`tools/call`, ...).
    require_for: Vec<String>,
    grants: Option<Arc<dyn ResolveSiteGrants>>,
    directory: Option<Arc<dyn ResolveSite>>,
    lookup_ttl: Duration,
    /// Whose grants: looked up with the principal's borrowed key, owned only on insert.
    grants_cache: ExpiringCache<PrincipalKey, Arc<[Site]>>,
    site_cache: ExpiringCache<SiteId, Option<Site>>,
    host_cache: ExpiringCache<String, Option<Site>>,
}

impl BindSiteLayer {
    /// A layer that reads the site of `tools/call` from [`DEFAULT_TOOLS_CALL_POINTER`] and answers rejections
    /// with `challenge`. Add path, header and query sources, more body pointers, and grant and site sources with
    /// the `add_*`/`with_*` methods.
    pub fn new(challenge: Challenge) -> Self {
        let capacity = CACHE_CAPACITY;
        let pointer =
            Pointer::parse(DEFAULT_TOOLS_CALL_POINTER).unwrap_or_else(|_| unreachable!("constant"));
        let mut config = Config {
            challenge,
            templates: Vec::new(),
            headers: Vec::new(),
            query: Vec::new(),
            pointers: vec![("tools/call".to_owned(), pointer)],
            params: Vec::new(),
            plan: None,
            body_limit: DEFAULT_BODY_LIMIT,
            require_site: false,
            require_for: Vec::new(),
            grants: None,
            directory: None,
            lookup_ttl: Duration::from_secs(60),
            grants_cache: ExpiringCache::new(capacity),
            site_cache: ExpiringCache::new(capacity),
            host_cache: ExpiringCache::new(capacity),
        };
        config.plan = Some(Arc::new(plan_of(&config)));
        Self {
            config: Arc::new(config),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Reads the site from the `{cloudId}` segment of paths that match `template` (e.g.
    /// `/ex/{product}/{cloudId}/...`: other `{name}`s match one segment, a final `...` anything after).
    ///
    /// # Errors
    /// A template without exactly one `{cloudId}`, or malformed.
    pub fn add_path_template(mut self, template: &str) -> Result<Self, ConfigError> {
        let template = PathTemplate::parse(template)?;
        self.config().templates.push(template);
        Ok(self)
    }

    /// Reads the site from a header (for gRPC, the metadata key of that name), e.g. `x-cloud-id`.
    ///
    /// # Errors
    /// An invalid header name.
    pub fn add_header(mut self, name: &str) -> Result<Self, ConfigError> {
        let name = header_name(name)?;
        self.config().headers.push(name);
        Ok(self)
    }

    /// Reads the site from a query parameter, e.g. `cloudId`.
    pub fn add_query_param(mut self, name: &str) -> Self {
        self.config().query.push(name.to_owned());
        self
    }

    /// Reads the site of JSON-RPC requests of `method` from the JSON pointer `pointer` (RFC 6901), e.g.
    /// `resources/read` and `/params/arguments/cloudId`. For `tools/call` this replaces the default pointer.
    ///
    /// # Errors
    /// A malformed pointer.
    pub fn add_body_pointer(mut self, method: &str, pointer: &str) -> Result<Self, ConfigError> {
        let pointer = Pointer::parse(pointer)?;
        let config = self.config();
        config.pointers.retain(|(m, _)| m != method);
        config.pointers.push((method.to_owned(), pointer));
        config.plan = Some(Arc::new(plan_of(config)));
        Ok(self)
    }

    /// Recognises the MCP 2026-07-28 header `header` (`Mcp-Param-{Name}`) as the mirror of the `tools/call`
    /// argument at `pointer` (under `/params/arguments/`), e.g. `Mcp-Param-CloudId` and
    /// `/params/arguments/cloudId`: when sent, it must equal the argument (after `=?base64?...?=` decoding,
    /// numbers numerically), or the request is 400 [`HeaderMismatch`](RejectionKind::HeaderMismatch); a client of
    /// 2026-07-28 or later that leaves it out while the argument is there is refused the same way. Recognise only
    /// arguments that the upstream's tools annotate with `x-mcp-header`, since conforming clients mirror exactly
    /// those. `Mcp-Method`, `Mcp-Name` and `MCP-Protocol-Version` are always checked when the body is read.
    ///
    /// # Errors
    /// A header not named `Mcp-Param-{Name}`, or a pointer outside `/params/arguments/`.
    pub fn add_param_header(mut self, header: &str, pointer: &str) -> Result<Self, ConfigError> {
        let param = ParamHeader::parse(header, pointer)?;
        let config = self.config();
        config.params.retain(|known| known.name != param.name);
        config.params.push(param);
        if config.plan.is_some() {
            config.plan = Some(Arc::new(plan_of(config)));
        }
        Ok(self)
    }

    /// Never reads request bodies (for routes that carry no JSON-RPC, such as gRPC services).
    pub fn without_body(mut self) -> Self {
        let config = self.config();
        config.pointers.clear();
        config.plan = None;
        self
    }

    /// Largest JSON-RPC body read, in bytes ([`DEFAULT_BODY_LIMIT`] unless set); a larger one is answered 413.
    ///
    /// # Errors
    /// A limit of zero or over 64 MiB.
    pub fn with_body_limit(mut self, limit: usize) -> Result<Self, ConfigError> {
        if !(1..=64 * 1024 * 1024).contains(&limit) {
            return Err(ConfigError::new(
                "body_limit",
                "must be between 1 byte and 64 MiB",
            ));
        }
        self.config().body_limit = limit;
        Ok(self)
    }

    /// Requests that name no site are refused (403 [`SiteRequired`](RejectionKind::SiteRequired)) instead of
    /// passing unbound.
    pub fn require_site(mut self) -> Self {
        self.config().require_site = true;
        self
    }

    /// JSON-RPC requests of these methods (e.g. `tools/call`, `resources/read`, `prompts/get`) that name no site
    /// are refused (403 [`SiteRequired`](RejectionKind::SiteRequired)); other methods (`tools/list`,
    /// `server/discover`, notifications, an earlier client's `initialize`) and requests without a JSON-RPC body
    /// pass unbound unless [`require_site`](Self::require_site) is set too. Needs the body to be read.
    ///
    /// # Errors
    /// An empty method name.
    pub fn require_site_for<I, T>(mut self, methods: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let config = self.config();
        for method in methods {
            let method = method.as_ref();
            if method.is_empty() {
                return Err(ConfigError::new(
                    "sites.require_for",
                    "a method name must not be empty",
                ));
            }
            if !config.require_for.iter().any(|m| m == method) {
                config.require_for.push(method.to_owned());
            }
        }
        Ok(self)
    }

    /// Whether some JSON-RPC methods must name a site (which needs the body).
    #[must_use]
    pub fn requires_site_by_method(&self) -> bool {
        !self.config.require_for.is_empty()
    }

    /// Where the grants of principals whose credential lists none come from.
    pub fn with_grants(mut self, grants: impl ResolveSiteGrants) -> Self {
        let config = self.config();
        config.grants = Some(Arc::new(grants));
        // A layer with another source must not answer from the caches of the layer it was built from.
        config.grants_cache = ExpiringCache::new(CACHE_CAPACITY);
        self
    }

    /// The site directory: metadata (URL, organization) of a site, and the site behind a URL.
    pub fn with_directory(mut self, directory: impl ResolveSite) -> Self {
        let config = self.config();
        config.directory = Some(Arc::new(directory));
        config.site_cache = ExpiringCache::new(CACHE_CAPACITY);
        config.host_cache = ExpiringCache::new(CACHE_CAPACITY);
        self
    }

    /// Whether the layer reads JSON-RPC bodies (and so inserts [`JsonRpcCall`] for later layers).
    #[must_use]
    pub fn reads_bodies(&self) -> bool {
        self.config.plan.is_some()
    }

    /// How long grant and directory answers are cached (60 s unless set).
    pub fn with_lookup_ttl(mut self, ttl: Duration) -> Self {
        self.config().lookup_ttl = ttl;
        self
    }
}

fn plan_of(config: &Config) -> Plan {
    let sites = config.pointers.iter().map(|(_, p)| p.clone());
    let params = config.params.iter().map(|param| param.pointer.clone());
    let only: Vec<Pointer> = sites.chain(params).collect();
    Plan::new(&only)
}

impl<S> Layer<S> for BindSiteLayer {
    type Service = BindSite<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BindSite {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Middleware that binds a request to the site it targets and checks the principal's grant.
///
/// On success the request carries the bound [`Site`] (when it names one), the principal's
/// [`AccessibleSites`], and for JSON-RPC bodies the [`JsonRpcCall`]; the inner service receives a
/// [`SiteBody`]: the original body, or exactly the bytes that were read and checked.
///
/// # Security
/// - Fails closed without a [`Principal`] (the validation layer must run first).
/// - Every configured source is read; two sources that name different sites are refused (400), as are several
///   values in one source.
/// - A site named by URL is resolved through the directory by exact host (lower case, no port, no trailing dot,
///   no user info), then checked like an id.
/// - No default site: a request that names none is unbound (or refused with [`require_site`]).
/// - A `Site` extension planted before this layer is removed.
///
/// [`require_site`]: BindSiteLayer::require_site
#[derive(Clone, Debug)]
pub struct BindSite<S> {
    inner: S,
    config: Arc<Config>,
}

/// Response future of [`BindSite`]: a request whose site is decided from what is at hand (no body to read, the
/// lookups cached) polls the inner future in place; reading a body or waiting for a lookup is boxed.
pub type ResponseFuture<F, B, E> = LookupFuture<F, B, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BindSite<S>
where
    S: Service<Request<SiteBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let (mut parts, body) = req.into_parts();
        let mut named = Vec::new();
        if let Err(kind) = prepare(config, &mut parts, &mut named) {
            return LookupFuture::ready(refuse(config, &parts, kind));
        }
        let mut body = match &config.plan {
            Some(plan) if !body.is_end_stream() => {
                if let Err(kind) = check_body_headers(config, &parts.headers) {
                    return LookupFuture::ready(refuse(config, &parts, kind));
                }
                // A body that has arrived already (the usual case: a JSON-RPC message is small) is read here,
                // without a waker; one still on its way is awaited on the boxed path.
                let mut reading = Box::pin(Limited::new(body, config.body_limit).collect());
                match reading
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(collected) => {
                        match read_call(config, plan, collected, &mut parts, &mut named) {
                            Ok(bytes) => Pending::Ready(Passed::Read(bytes)),
                            Err(kind) => return LookupFuture::ready(refuse(config, &parts, kind)),
                        }
                    }
                    Poll::Pending => Pending::Reading(reading, Arc::clone(plan)),
                }
            }
            // A POST must carry the message that the rules read: an empty one is not a JSON-RPC message.
            Some(_) if parts.method == http::Method::POST => {
                return LookupFuture::ready(refuse(config, &parts, RejectionKind::ParseError));
            }
            _ => Pending::Ready(Passed::Unread(body)),
        };
        if let Pending::Ready(passed) = body {
            // Everything is at hand unless a lookup misses its cache: decide from the caches alone, without
            // starting any lookup; a decision that would have to wait is made again on the boxed path.
            let decided = {
                let decide = pin!(decide(config, &mut parts, &named, Mode::CachedOnly));
                decide.poll(&mut Context::from_waker(Waker::noop()))
            };
            match decided {
                Poll::Ready(Ok(())) => {
                    let req = Request::from_parts(parts, passed.into_site_body());
                    return LookupFuture::inner(self.inner.call(req));
                }
                Poll::Ready(Err(Undecided::Refused(kind))) => {
                    return LookupFuture::ready(refuse(config, &parts, kind));
                }
                // Never `Pending`: nothing waits in this mode. Either way, the boxed path decides.
                Poll::Ready(Err(Undecided::WouldWait)) | Poll::Pending => {}
            }
            body = Pending::Ready(passed);
        }

        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        LookupFuture::waiting(Box::pin(async move {
            let passed = match body {
                Pending::Ready(passed) => passed,
                Pending::Reading(reading, plan) => {
                    match read_call(&config, &plan, reading.await, &mut parts, &mut named) {
                        Ok(bytes) => Passed::Read(bytes),
                        Err(kind) => return Ok(refuse(&config, &parts, kind)),
                    }
                }
            };
            match decide(&config, &mut parts, &named, Mode::Load).await {
                Ok(()) => {}
                Err(Undecided::Refused(kind)) => {
                    return Ok(refuse(&config, &parts, kind));
                }
                Err(Undecided::WouldWait) => {
                    // Not produced when loading is allowed; refused rather than let through.
                    let kind = RejectionKind::TemporarilyUnavailable;
                    return Ok(refuse(&config, &parts, kind));
                }
            }
            inner
                .call(Request::from_parts(parts, passed.into_site_body()))
                .await
                .map(|response| response.map(ResponseBody::new))
        }))
    }
}

/// A body limited to what the layer reads, being collected.
type Reading<B> = std::pin::Pin<Box<http_body_util::combinators::Collect<Limited<B>>>>;

/// The request body while the layer decides.
enum Pending<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// At hand, as it will be passed on.
    Ready(Passed<B>),
    /// Being read with this plan; the boxed path awaits the rest.
    Reading(Reading<B>, Arc<Plan>),
}

/// The request body as the inner service gets it.
enum Passed<B> {
    /// Not read by the layer: untouched.
    Unread(B),
    /// Read whole by the layer: these bytes.
    Read(Bytes),
}

impl<B> Passed<B> {
    fn into_site_body(self) -> SiteBody<B> {
        match self {
            Self::Unread(body) => SiteBody::new(body),
            Self::Read(bytes) => SiteBody::full(bytes),
        }
    }
}

/// The refusal of a request, logged with its path.
fn refuse<B>(
    config: &Config,
    parts: &request::Parts,
    rejection: impl Into<Rejection>,
) -> Response<ResponseBody<B>> {
    let rejection = rejection.into();
    tracing::debug!(
        target: "portcullis::site",
        outcome = "rejected",
        reason = rejection.kind().code(),
        path = parts.uri.path(),
    );
    config
        .challenge
        .respond(rejection, Protocol::detect(&parts.headers))
}

/// What needs neither the body nor a lookup: planted extensions removed, a principal present, the path
/// unambiguous, and the sites named by the path, headers and query collected.
fn prepare(
    config: &Config,
    parts: &mut request::Parts,
    named: &mut Vec<String>,
) -> Result<(), RejectionKind> {
    parts.extensions.remove::<Site>();
    parts.extensions.remove::<AccessibleSites>();
    parts.extensions.remove::<JsonRpcCall>();
    if parts.extensions.get::<Principal>().is_none() {
        return Err(RejectionKind::MissingCredential);
    }
    if !config.templates.is_empty() && is_ambiguous_path(parts.uri.path()) {
        return Err(RejectionKind::InvalidRequest);
    }
    sources(config, parts, named)?;
    // A route that reads JSON-RPC bodies does not take gRPC: a JSON-RPC body labelled gRPC would otherwise go
    // unread to an application that may not check the label. gRPC services use `without_body()`.
    if config.plan.is_some() && Protocol::detect(&parts.headers) == Protocol::Grpc {
        return Err(RejectionKind::InvalidRequest);
    }
    Ok(())
}

/// Whether [`decide`] may start lookups or must answer from the caches alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Caches only: a miss is [`Undecided::WouldWait`], and nothing is asked of a source.
    CachedOnly,
    /// Misses are loaded.
    Load,
}

/// Why [`decide`] did not bind.
#[derive(Debug)]
enum Undecided {
    Refused(RejectionKind),
    /// A lookup missed its cache in [`Mode::CachedOnly`].
    WouldWait,
}

impl From<RejectionKind> for Undecided {
    fn from(kind: RejectionKind) -> Self {
        Self::Refused(kind)
    }
}

/// Why [`lookup`] has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miss {
    /// Not cached, in [`Mode::CachedOnly`]: the load was not run.
    WouldWait,
    /// The load ran and failed.
    Failed,
}

/// A failed lookup leaves the request undecidable: 503.
impl From<Miss> for Undecided {
    fn from(miss: Miss) -> Self {
        match miss {
            Miss::WouldWait => Self::WouldWait,
            Miss::Failed => Self::Refused(RejectionKind::TemporarilyUnavailable),
        }
    }
}

/// A lookup through `cache`: in [`Mode::Load`] a miss runs `load`; in [`Mode::CachedOnly`] it never does. The
/// key is looked up as given (borrowed, where it borrows) and made into the cache's own key only to load.
async fn lookup<Q, K, V, F, E>(
    cache: &ExpiringCache<K, V>,
    mode: Mode,
    key: Q,
    load: F,
) -> Result<V, Miss>
where
    Q: std::hash::Hash + Equivalent<K> + Into<K>,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: Future<Output = Result<(V, Duration), E>>,
{
    match mode {
        Mode::CachedOnly => cache.get(&key).ok_or(Miss::WouldWait),
        Mode::Load => cache
            .get_or_load(key.into(), load)
            .await
            .map_err(|_| Miss::Failed),
    }
}

/// Binds the request to the one site it names, if the principal may use it, and puts the site and the
/// principal's sites on the request. Nothing is put on the request unless the answer is `Ok`.
async fn decide(
    config: &Config,
    parts: &mut request::Parts,
    named: &[String],
    mode: Mode,
) -> Result<(), Undecided> {
    // Borrowed, not cloned: the principal's count is shared by all its requests, so a clone would be a write to
    // memory that every core serving them contends for. Nothing is inserted until it is last used.
    let Some(principal) = parts.extensions.get::<Principal>() else {
        return Err(RejectionKind::MissingCredential.into());
    };
    let mut site_id: Option<SiteId> = None;
    for value in named {
        let id = resolve_named(config, value, mode).await?;
        match &site_id {
            Some(existing) if *existing != id => {
                return Err(RejectionKind::ConflictingSites.into());
            }
            _ => site_id = Some(id),
        }
    }

    let method_needs_site = || {
        !config.require_for.is_empty()
            && parts
                .extensions
                .get::<JsonRpcCall>()
                .is_some_and(|call| config.require_for.iter().any(|m| m == call.method()))
    };
    if site_id.is_none() && (config.require_site || method_needs_site()) {
        return Err(RejectionKind::SiteRequired.into());
    }
    let grants = match grants_of(config, principal, mode).await {
        Err(Miss::WouldWait) => return Err(Undecided::WouldWait),
        grants => grants,
    };
    match site_id {
        None => {
            // Unbound: the grants are a convenience for the application, so a failed lookup does not refuse.
            if let Ok(Some(sites)) = grants {
                parts.extensions.insert(sites);
            }
        }
        Some(id) => {
            let sites = match grants {
                Ok(Some(sites)) => sites,
                Ok(None) => return Err(RejectionKind::SiteNotGranted.into()),
                Err(miss) => return Err(miss.into()),
            };
            let Some(granted) = sites.sites().iter().find(|site| *site.id() == id) else {
                return Err(RejectionKind::SiteNotGranted.into());
            };
            let site = metadata(config, granted, mode).await?;
            tracing::debug!(
                target: "portcullis::site",
                outcome = "bound",
                site = %site.id(),
                path = parts.uri.path(),
            );
            parts.extensions.insert(site);
            parts.extensions.insert(sites);
        }
    }
    Ok(())
}

/// The site values named by the path, headers and query. Several values in one header or parameter are refused.
fn sources(
    config: &Config,
    parts: &request::Parts,
    named: &mut Vec<String>,
) -> Result<(), RejectionKind> {
    for template in &config.templates {
        if let Some(site) = template.site_in(parts.uri.path()) {
            named.push(site.to_owned());
        }
    }
    for name in &config.headers {
        let mut values = parts.headers.get_all(name).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(RejectionKind::ConflictingSites);
            }
            let value = value.to_str().map_err(|_| RejectionKind::InvalidRequest)?;
            named.push(value.to_owned());
        }
    }
    if !config.query.is_empty()
        && let Some(query) = parts.uri.query()
    {
        for param in &config.query {
            let mut values =
                form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name == param);
            if let Some((_, value)) = values.next() {
                if values.next().is_some() {
                    return Err(RejectionKind::ConflictingSites);
                }
                named.push(value.into_owned());
            }
        }
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].contains('/')
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// What must hold before a body is read: it is JSON (a body the application could read as JSON must be read here
/// too, whatever it is labelled as), and its declared length is within the limit.
fn check_body_headers(config: &Config, headers: &HeaderMap) -> Result<(), RejectionKind> {
    if !is_json(headers) {
        return Err(RejectionKind::InvalidRequest);
    }
    if headers.get_all(CONTENT_LENGTH).iter().nth(1).is_some() {
        // Two lengths: which one the application believes is anyone's guess.
        return Err(RejectionKind::ParseError);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.body_limit as u64) {
        return Err(RejectionKind::PayloadTooLarge);
    }
    Ok(())
}

/// The bytes of a collected body, as they will be passed on. The mirrored headers are checked against it, the
/// JSON-RPC call in it is put on the request and the sites it names are added to `named`.
fn read_call(
    config: &Config,
    plan: &Plan,
    collected: Result<http_body_util::Collected<Bytes>, BoxError>,
    parts: &mut request::Parts,
    named: &mut Vec<String>,
) -> Result<Bytes, Rejection> {
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(RejectionKind::PayloadTooLarge.into());
        }
        Err(_) => return Err(RejectionKind::InvalidRequest.into()),
    };
    // Exactly the bytes announced: an in-process body can disagree with its own Content-Length, and an
    // application that trusts the header would read something else.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
    match declared {
        Some(Some(len)) if len == bytes.len() as u64 => {}
        Some(_) => return Err(RejectionKind::ParseError.into()),
        None => {}
    }
    let found = plan.read(&bytes).map_err(|err| match err {
        BodyError::NotAnObject => RejectionKind::ParseError,
        BodyError::Batch | BodyError::AmbiguousKey => RejectionKind::InvalidRequest,
    })?;
    let method = match &found[METHOD] {
        Some(Found::Str(method)) => Some(&**method),
        Some(_) => return Err(RejectionKind::InvalidRequest.into()),
        None => None,
    };
    let mirrored = Mirrored {
        method,
        request: found[ID].is_some(),
        task: found[TASK_ID].as_ref(),
        name: found[NAME].as_ref(),
        uri: found[URI].as_ref(),
        version: found[VERSION].as_ref(),
        params: config.params.iter().map(|param| {
            let value = plan
                .slot_of(&param.pointer)
                .and_then(|slot| found[slot].as_ref());
            (param, value)
        }),
    };
    if let Err(mirror::Mismatch(message)) = mirror::check(&parts.headers, mirrored) {
        let id = match &found[ID] {
            Some(Found::Str(id)) => JsonRpcId::String((**id).into()),
            Some(Found::Num(id)) => JsonRpcId::Number(id.clone()),
            _ => JsonRpcId::Null,
        };
        return Err(Rejection::header_mismatch(id, message));
    }
    let Some(method) = method else {
        // A JSON-RPC response or notification without a method: nothing to bind.
        return Ok(bytes);
    };
    let tool = match (&found[NAME], method) {
        (Some(Found::Str(tool)), "tools/call") => Some(&**tool),
        (Some(_), "tools/call") => return Err(RejectionKind::InvalidRequest.into()),
        _ => None,
    };
    for (pointer_method, pointer) in &config.pointers {
        if pointer_method != method {
            continue;
        }
        match plan.slot_of(pointer).and_then(|slot| found[slot].as_ref()) {
            Some(Found::Str(site)) => named.push((**site).to_owned()),
            Some(_) => return Err(RejectionKind::InvalidRequest.into()),
            None => {}
        }
    }
    let call = JsonRpcCall::new(method, tool);
    parts.extensions.insert(call);
    Ok(bytes)
}

/// A named site, as an id: directly, or through the directory when it is a URL.
async fn resolve_named(config: &Config, value: &str, mode: Mode) -> Result<SiteId, Undecided> {
    let starts_with = |prefix: &str| {
        value
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    if !(starts_with("https://") || starts_with("http://")) {
        return SiteId::parse(value).map_err(|_| RejectionKind::InvalidRequest.into());
    }
    let host = url_host(value).ok_or(RejectionKind::InvalidRequest)?;
    let Some(directory) = &config.directory else {
        return Err(RejectionKind::SiteNotGranted.into());
    };
    let site = lookup(&config.host_cache, mode, host.clone(), async {
        directory
            .resolve_host(&host)
            .await
            .map(|site| (site, config.lookup_ttl))
    })
    .await?;
    site.map(|site| site.id().clone())
        .ok_or(RejectionKind::SiteNotGranted.into())
}

/// The host of a site URL named in a request: no user info, no port, no trailing dot, not empty; lower case.
fn url_host(value: &str) -> Option<String> {
    let uri: http::Uri = value.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.port().is_some() {
        return None;
    }
    let host = authority.host();
    if host.is_empty() || host.ends_with('.') || host.starts_with('[') {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// The principal's grants: from its credential, or from the grants source (cached). `Ok(None)`: none known;
/// errors as [`lookup`]'s.
async fn grants_of(
    config: &Config,
    principal: &Principal,
    mode: Mode,
) -> Result<Option<AccessibleSites>, Miss> {
    if let Some(sites) = principal.granted_sites() {
        return Ok(Some(sites.clone()));
    }
    let Some(source) = &config.grants else {
        return Ok(None);
    };
    lookup(&config.grants_cache, mode, principal.key(), async {
        source
            .grants(principal)
            .await
            .map(|sites| (Arc::from(sites), config.lookup_ttl))
    })
    .await
    .map(|sites| Some(AccessibleSites::new(sites)))
}

/// The bound site with its metadata: what the grant said, completed from the directory when it lacks the URL or
/// the organization.
async fn metadata(config: &Config, granted: &Site, mode: Mode) -> Result<Site, Undecided> {
    if granted.organization().is_some() && granted.url().is_some() {
        return Ok(granted.clone());
    }
    let Some(directory) = &config.directory else {
        return Ok(granted.clone());
    };
    let id = granted.id().clone();
    let found = lookup(&config.site_cache, mode, id.clone(), async {
        directory
            .resolve(&id)
            .await
            .map(|site| (site, config.lookup_ttl))
    })
    .await?;
    Ok(found.unwrap_or_else(|| granted.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("+json", false),
            ("application/jsonx", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().expect("valid"));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }

    #[test]
    fn site_urls_are_reduced_to_an_exact_host() {
        assert_eq!(
            url_host("https://Acme.Example.net"),
            Some("acme.example.net".into())
        );
        assert_eq!(
            url_host("https://acme.example.net/wiki/x?y#z"),
            Some("acme.example.net".into())
        );
        for bad in [
            "https://acme.example.net.",
            "https://evil@acme.example.net",
            "https://acme.example.net:443",
            "ftp://acme.example.net",
            "https://",
            "https://[::1]/",
            "https:///path",
        ] {
            assert_eq!(url_host(bad), None, "{bad}");
        }
    }
}
