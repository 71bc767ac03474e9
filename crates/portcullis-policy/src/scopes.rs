//! [`RequireScopesLayer`]: the OAuth scopes a route or an MCP tool needs.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_core::{
    Challenge, ConfigError, JsonRpcCall, Principal, Protocol, Rejection, RejectionKind,
    ResponseBody, ResponseFuture, ScopeList,
};
use tower_layer::Layer;
use tower_service::Service;

/// Layer that applies [`RequireScopes`]. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopesLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    challenge: Challenge,
    routes: Vec<(Route, ScopeList)>,
    tools: Vec<(String, ScopeList)>,
    /// The implications as configured: each broader scope with what it implies directly.
    edges: Vec<(String, Implied)>,
    /// Each broader scope with every scope it implies, directly or through others (the closure of `edges`).
    implies: Vec<(String, Implied)>,
}

/// Every scope each broader scope implies, following chains (cycles end where a scope was met before).
fn closure(edges: &[(String, Implied)]) -> Vec<(String, Implied)> {
    let mut brokers: Vec<&str> = edges.iter().map(|(b, _)| b.as_str()).collect();
    brokers.sort_unstable();
    brokers.dedup();
    brokers
        .into_iter()
        .map(|broader| {
            let mut implied = Implied::default();
            let mut todo = vec![broader];
            let mut seen = vec![broader.to_owned()];
            while let Some(scope) = todo.pop() {
                for (_, direct) in edges.iter().filter(|(b, _)| b == scope) {
                    implied.all |= direct.all;
                    for narrower in &direct.scopes {
                        if !seen.contains(narrower) {
                            seen.push(narrower.clone());
                            implied.scopes.push(narrower.clone());
                            todo.push(narrower);
                        }
                    }
                }
            }
            (broader.to_owned(), implied)
        })
        .collect()
}

/// What a broader scope implies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Implied {
    /// Every scope (`*`).
    all: bool,
    scopes: Vec<String>,
}

impl Config {
    /// Whether `held` grants `needed`: the same scope, or one that implies it.
    fn covers(&self, held: &ScopeList, needed: &str) -> bool {
        held.contains(needed)
            || (!self.implies.is_empty()
                && held.iter().any(|scope| {
                    self.implies.iter().any(|(broader, implied)| {
                        broader == scope
                            && (implied.all || implied.scopes.iter().any(|s| s == needed))
                    })
                }))
    }
}

#[derive(Clone, Debug)]
enum Route {
    Exact(String),
    Prefix(String),
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            // `/admin/...` covers `/admin` and everything below it, not `/administrator`.
            Self::Prefix(prefix) => {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

impl RequireScopesLayer {
    /// A layer with no requirements yet; add them with [`add_route`](Self::add_route) and
    /// [`add_tool`](Self::add_tool).
    pub fn new(challenge: Challenge) -> Self {
        Self {
            config: Arc::new(Config {
                challenge,
                routes: Vec::new(),
                tools: Vec::new(),
                edges: Vec::new(),
                implies: Vec::new(),
            }),
        }
    }

    /// Requests to `path` (exact), or below it when it ends in `/...`, need every scope in `scopes`.
    ///
    /// # Errors
    /// A path that does not start with `/`, or a scope outside the RFC 6749 grammar.
    pub fn add_route<I, T>(mut self, path: &str, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        if !path.starts_with('/') {
            return Err(ConfigError::new("route", "must start with '/'"));
        }
        let route = match path.strip_suffix("/...") {
            Some(prefix) => Route::Prefix(prefix.to_owned()),
            None => Route::Exact(path.to_owned()),
        };
        let scopes = ScopeList::new(scopes)?.for_resource("scopes.routes")?;
        Arc::make_mut(&mut self.config).routes.push((route, scopes));
        Ok(self)
    }

    /// A token with the scope `broader` also has each of `narrower` (`mcp:write` implies `mcp:read`; `*` for
    /// every scope, e.g. `admin`). Implications chain: with `admin` implying `mcp:write` and `mcp:write` implying
    /// `mcp:read`, `admin` grants `mcp:read`. A refusal still names the scopes the operation needs, not the
    /// broader ones (MCP: servers account for scope hierarchies when deciding whether a token is sufficient).
    ///
    /// # Errors
    /// A scope outside the RFC 6749 grammar, `offline_access`, or `*` as the broader scope.
    pub fn add_implication<I, T>(mut self, broader: &str, narrower: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let setting = "scopes.implies";
        if broader == "*" {
            return Err(ConfigError::new(setting, "`*` can be implied, not imply"));
        }
        ScopeList::new([broader])?.for_resource(setting)?;
        let mut all = false;
        let mut direct = Vec::new();
        for scope in narrower {
            match scope.as_ref() {
                "*" => all = true,
                scope => direct.push(scope.to_owned()),
            }
        }
        ScopeList::new(&direct)?.for_resource(setting)?;
        let config = Arc::make_mut(&mut self.config);
        config.edges.push((
            broader.to_owned(),
            Implied {
                all,
                scopes: direct,
            },
        ));
        config.implies = closure(&config.edges);
        Ok(self)
    }

    /// Whether any tool has requirements (they need the tool name, which the site layer reads from the body).
    #[must_use]
    pub fn has_tool_rules(&self) -> bool {
        !self.config.tools.is_empty()
    }

    /// `tools/call` of the MCP tool `tool` needs every scope in `scopes`. The tool name comes from the
    /// [`JsonRpcCall`] that the site layer read from the body; the body is not parsed again.
    ///
    /// # Errors
    /// An empty tool name, or a scope outside the RFC 6749 grammar.
    pub fn add_tool<I, T>(mut self, tool: &str, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        if tool.is_empty() {
            return Err(ConfigError::new("tool", "must not be empty"));
        }
        let scopes = ScopeList::new(scopes)?.for_resource("scopes.tools")?;
        Arc::make_mut(&mut self.config)
            .tools
            .push((tool.to_owned(), scopes));
        Ok(self)
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Middleware that refuses requests whose principal lacks a scope that the route or the MCP tool needs, with
/// 403 `insufficient_scope` naming every scope needed (route and tool together) in one `scope=` parameter, so
/// that a client can step up in one go.
///
/// # Security
/// Fails closed without a [`Principal`]. When tool requirements exist and a request carries a body but no
/// [`JsonRpcCall`] (no site layer before this one), the tool cannot be known and the request is refused (403).
#[derive(Clone, Debug)]
pub struct RequireScopes<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let Some(principal) = req.extensions().get::<Principal>() else {
            return ResponseFuture::ready(config.challenge.respond(
                Rejection::new(RejectionKind::MissingCredential),
                Protocol::detect(req.headers()),
            ));
        };
        let path = req.uri().path();
        let mut required: Vec<&str> = config
            .routes
            .iter()
            .filter(|(route, _)| route.matches(path))
            .flat_map(|(_, scopes)| scopes.iter())
            .collect();
        if !config.tools.is_empty() {
            match req.extensions().get::<JsonRpcCall>() {
                Some(call) if call.method() == "tools/call" => {
                    let tool = call.tool().unwrap_or_default();
                    required.extend(
                        config
                            .tools
                            .iter()
                            .filter(|(name, _)| name == tool)
                            .flat_map(|(_, scopes)| scopes.iter()),
                    );
                }
                Some(_) => {}
                None if !req.body().is_end_stream()
                    && Protocol::detect(req.headers()) == Protocol::Http =>
                {
                    tracing::debug!(target: "portcullis::policy", outcome = "denied", reason = "tool_unknown", path);
                    return ResponseFuture::ready(config.challenge.respond(
                        Rejection::new(RejectionKind::Forbidden),
                        Protocol::detect(req.headers()),
                    ));
                }
                None => {}
            }
        }
        if required
            .iter()
            .all(|scope| config.covers(principal.scopes(), scope))
        {
            return ResponseFuture::inner(self.inner.call(req));
        }
        // Every scope needed, not only the missing ones (MCP step-up asks for all of them at once).
        let needed = ScopeList::new(required).unwrap_or_default();
        tracing::debug!(
            target: "portcullis::policy",
            outcome = "insufficient_scope",
            needed = needed.as_str(),
            path,
        );
        ResponseFuture::ready(config.challenge.respond(
            Rejection::insufficient_scope(needed),
            Protocol::detect(req.headers()),
        ))
    }
}
