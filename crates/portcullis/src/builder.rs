//! [`Portcullis`]: the whole stack, composed in the right order from checked configuration.

use std::fmt;
use std::sync::Arc;

use portcullis_context::{EnrichContext, EnrichContextLayer, ResolveContext, StaticContext};
use portcullis_core::{AllowedOrigins, Challenge, ConfigError, ScopeList, check_url};
use portcullis_credential::{ExtractCredential, ExtractCredentialLayer};
use portcullis_policy::{
    GateApiTokens, GateApiTokensLayer, RequireScopes, RequireScopesLayer, ResolvePolicy,
    StaticPolicies,
};
use portcullis_site::{BindSite, BindSiteLayer};
use portcullis_token::{
    Introspection, Issuer, TokenValidator, TokenValidatorBuilder, ValidateToken,
    ValidateTokenLayer, VerifyApiToken,
};
use tower_layer::Layer;

use crate::metadata::{MetadataDocument, ProtectedResourceMetadata};
use crate::protect::Protected;
use crate::sessions::{
    BindMcpSessions, BindMcpSessionsLayer, DEFAULT_SESSION_CAPACITY, DEFAULT_SESSION_IDLE,
};

/// The protected-resource configuration and the whole layer stack built from it.
///
/// Build it with [`Portcullis::builder`] (or from TOML with [`Config`](crate::Config)), then apply
/// [`layer`](Self::layer) to the protected routes, and serve [`metadata`](Self::metadata) publicly, or wrap a whole
/// service with [`protect`](Self::protect), which does both.
#[derive(Clone)]
pub struct Portcullis {
    layer: AuthLayer,
    metadata: ProtectedResourceMetadata,
    health_paths: Arc<[String]>,
    origins: AllowedOrigins,
}

impl Portcullis {
    /// Starts configuring protection for the resource whose canonical URI is `resource` (what clients put in
    /// the `resource` parameter and what tokens must name in `aud`), e.g. `https://mcp.example.com/mcp`.
    pub fn builder(resource: &str) -> PortcullisBuilder {
        PortcullisBuilder {
            resource: resource.to_owned(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            challenge_scopes: None,
            validator: TokenValidator::builder(resource),
            service_account_prefix: None,
            sites: Box::new(Ok),
            policy: None,
            scopes: Box::new(Ok),
            context: None,
            forwarding: None,
            health_paths: vec!["/health".to_owned()],
            has_validation: false,
            mcp_sessions: Some((DEFAULT_SESSION_CAPACITY, DEFAULT_SESSION_IDLE)),
            origins: Vec::new(),
            loopback_origins: false,
        }
    }

    /// The layer stack, in order: extract credential, validate, bind MCP sessions to their principal, bind site,
    /// gate API tokens, require scopes, enrich context.
    pub fn layer(&self) -> AuthLayer {
        self.layer.clone()
    }

    /// The RFC 9728 protected resource metadata, as a service (serve it publicly).
    #[must_use]
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        self.metadata.clone()
    }

    /// The browser origins the stack lets through (requests without `Origin` always pass). Drive a CORS layer from
    /// it, so that a preflight succeeds exactly where the request itself would: see the `axum_mcp` example.
    #[must_use]
    pub fn allowed_origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// The metadata URL that every challenge carries (the path-inserted location).
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        self.metadata.url()
    }

    /// Wraps `inner` so that the metadata (both locations) and the health paths are public and everything else
    /// goes through the stack. Paths are matched exactly: a query, `;`, percent-encoding or a forwarded-URI header
    /// never makes a protected path public.
    pub fn protect<S>(&self, inner: S) -> Protected<AuthService<S>> {
        Protected::new(
            self.layer.layer(inner),
            self.metadata.clone(),
            Arc::clone(&self.health_paths),
        )
    }
}

impl fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Portcullis")
            .field("metadata_url", &self.metadata.url())
            .field("health_paths", &self.health_paths)
            .finish_non_exhaustive()
    }
}

/// The service that [`AuthLayer`] makes of `S`.
pub type AuthService<S> = ExtractCredential<
    ValidateToken<BindMcpSessions<BindSite<GateApiTokens<RequireScopes<EnrichContext<S>>>>>>,
>;

/// The whole Portcullis stack as one tower [`Layer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer {
    extract: ExtractCredentialLayer,
    validate: ValidateTokenLayer,
    sessions: BindMcpSessionsLayer,
    site: BindSiteLayer,
    gate: GateApiTokensLayer,
    scopes: RequireScopesLayer,
    context: EnrichContextLayer,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.context.layer(inner);
        let inner = self.scopes.layer(inner);
        let inner = self.gate.layer(inner);
        let inner = self.site.layer(inner);
        let inner = self.sessions.layer(inner);
        let inner = self.validate.layer(inner);
        self.extract.layer(inner)
    }
}

type Configure<L> = Box<dyn FnOnce(L) -> Result<L, ConfigError> + Send>;

/// Configures a [`Portcullis`]. Everything is checked by [`build`](Self::build).
#[must_use]
pub struct PortcullisBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    challenge_scopes: Option<Vec<String>>,
    validator: TokenValidatorBuilder,
    service_account_prefix: Option<String>,
    sites: Configure<BindSiteLayer>,
    policy: Option<Box<dyn FnOnce(Challenge) -> GateApiTokensLayer + Send>>,
    scopes: Configure<RequireScopesLayer>,
    context: Option<Box<dyn FnOnce(Challenge) -> EnrichContextLayer + Send>>,
    forwarding: Option<(String, bool)>,
    health_paths: Vec<String>,
    has_validation: bool,
    /// `None`: sessions not bound; otherwise at most this many, each forgotten after this idle time.
    mcp_sessions: Option<(u64, std::time::Duration)>,
    origins: Vec<String>,
    loopback_origins: bool,
}

impl PortcullisBuilder {
    /// Browser origins allowed besides the resource's own (`https://app.example.com`, exactly as a browser sends
    /// it). A request whose `Origin` is not allowed (`null`, malformed, several, or not listed) is 403
    /// `OriginNotAllowed` before any credential work; requests without `Origin` pass.
    pub fn allow_origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Also allows `http(s)` origins on `localhost`, `127.0.0.1` and `[::1]`, any port: for browser-based
    /// clients on the same machine (development; `portcullis demo` turns it on).
    pub fn allow_loopback_origins(mut self) -> Self {
        self.loopback_origins = true;
        self
    }

    /// An authorization server clients should use (listed in the metadata's `authorization_servers`).
    pub fn add_authorization_server(mut self, issuer: &str) -> Self {
        self.authorization_servers.push(issuer.to_owned());
        self
    }

    /// Binds each MCP session to the principal that started it (the default, with at most 100 000 sessions, each
    /// forgotten after an hour without a request): see [`BindMcpSessions`].
    pub fn mcp_sessions(mut self, capacity: u64, idle: std::time::Duration) -> Self {
        self.mcp_sessions = Some((capacity, idle));
        self
    }

    /// Leaves `Mcp-Session-Id` alone: for a service that is not an MCP server and whose clients use that header
    /// for something else. An MCP server should keep its sessions bound (MCP security best practices: a session
    /// id is not a credential, and one user's session must not serve another's token).
    pub fn without_mcp_session_binding(mut self) -> Self {
        self.mcp_sessions = None;
        self
    }

    /// Scopes listed in the metadata's `scopes_supported` (keep it minimal).
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes advertised in 401 challenges (`scope="..."`); by default the `scopes_supported`.
    pub fn challenge_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.challenge_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Trusts JWT access tokens from `issuer` (and lists it as an authorization server unless others are listed).
    pub fn add_issuer(mut self, issuer: Issuer) -> Self {
        if !self
            .authorization_servers
            .iter()
            .any(|s| s == issuer.issuer())
        {
            self.authorization_servers.push(issuer.issuer().to_owned());
        }
        self.validator = self.validator.add_issuer(issuer);
        self.has_validation = true;
        self
    }

    /// Validates opaque tokens by RFC 7662 introspection.
    pub fn with_introspection(mut self, introspection: Introspection) -> Self {
        self.validator = self.validator.with_introspection(introspection);
        self.has_validation = true;
        self
    }

    /// Verifies personal API tokens and service-account keys (which only pass where the organization's policy
    /// allows them; see [`with_policy`](Self::with_policy)).
    pub fn with_api_token_verifier(mut self, verifier: impl VerifyApiToken) -> Self {
        self.validator = self.validator.with_api_token_verifier(verifier);
        self.has_validation = true;
        self
    }

    /// Bearer tokens with this prefix are service-account keys.
    pub fn with_service_account_prefix(mut self, prefix: &str) -> Self {
        self.service_account_prefix = Some(prefix.to_owned());
        self
    }

    /// Further validator settings (site claim, leeway, caches, clock...).
    pub fn configure_validator(
        mut self,
        f: impl FnOnce(TokenValidatorBuilder) -> TokenValidatorBuilder,
    ) -> Self {
        self.validator = f(self.validator);
        self
    }

    /// Where sites are named and where grants come from (the default reads `tools/call`
    /// `/params/arguments/cloudId`).
    pub fn configure_sites(
        mut self,
        f: impl FnOnce(BindSiteLayer) -> Result<BindSiteLayer, ConfigError> + Send + 'static,
    ) -> Self {
        self.sites = Box::new(f);
        self
    }

    /// The organizations' API-token policies. Without one, no policy is known and API tokens are refused
    /// everywhere.
    pub fn with_policy(mut self, source: impl ResolvePolicy) -> Self {
        self.policy = Some(Box::new(move |challenge| {
            GateApiTokensLayer::new(challenge, source)
        }));
        self
    }

    /// As [`with_policy`](Self::with_policy), with the time a policy answer is cached.
    pub fn with_policy_ttl(mut self, source: impl ResolvePolicy, ttl: std::time::Duration) -> Self {
        self.policy = Some(Box::new(move |challenge| {
            GateApiTokensLayer::with_ttl(challenge, source, ttl)
        }));
        self
    }

    /// Scopes per route and per MCP tool.
    pub fn configure_scopes(
        mut self,
        f: impl FnOnce(RequireScopesLayer) -> Result<RequireScopesLayer, ConfigError> + Send + 'static,
    ) -> Self {
        self.scopes = Box::new(f);
        self
    }

    /// Where user profiles and site products come from. Without one, the context holds the account id only.
    pub fn with_context(mut self, source: impl ResolveContext) -> Self {
        self.context = Some(Box::new(move |challenge| {
            EnrichContextLayer::new(challenge, source)
        }));
        self
    }

    /// Prepares requests for an upstream: strips `Authorization` and the identity namespace, and with
    /// `identity_headers` sets the identity headers (see `EnrichContextLayer::for_forwarding`).
    pub fn for_forwarding(mut self, namespace: &str, identity_headers: bool) -> Self {
        self.forwarding = Some((namespace.to_owned(), identity_headers));
        self
    }

    /// Paths answered publicly by [`Portcullis::protect`] with `200 ok` (default `/health`).
    pub fn health_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.health_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Checks everything and builds the stack.
    ///
    /// # Errors
    /// A resource that is not an absolute `https` URI (or `http` on loopback) or has a query or fragment; no
    /// issuer, introspection or API-token verifier; no authorization server to advertise; and whatever the
    /// layers' own checks report.
    pub fn build(self) -> Result<Portcullis, ConfigError> {
        let uri = check_url("resource", &self.resource)?;
        if uri.query().is_some() {
            return Err(ConfigError::new("resource", "must not have a query"));
        }
        if !self.has_validation {
            return Err(ConfigError::new(
                "issuers",
                "configure at least one issuer, introspection, or an API-token verifier",
            ));
        }
        if self.authorization_servers.is_empty() {
            return Err(ConfigError::new(
                "authorization_servers",
                "list at least one authorization server for the resource metadata (RFC 9728)",
            ));
        }
        for server in &self.authorization_servers {
            check_url("authorization_servers", server)?;
        }
        // An entry that names a configured issuer in another spelling (a trailing slash, upper case) is one that
        // clients will reject when they compare it with that issuer's metadata: say so now.
        let issuers: Vec<&str> = self.validator.issuers().collect();
        for server in &self.authorization_servers {
            let loose = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
            if let Some(issuer) = issuers
                .iter()
                .find(|issuer| **issuer != server && loose(issuer) == loose(server))
            {
                return Err(ConfigError::new(
                    "authorization_servers",
                    format!(
                        "{server} must be the issuer exactly as its tokens and metadata name it: {issuer}"
                    ),
                ));
            }
        }
        let scopes_supported =
            ScopeList::new(&self.scopes_supported)?.for_resource("scopes_supported")?;
        let challenge_scopes = match &self.challenge_scopes {
            Some(scopes) => ScopeList::new(scopes)?.for_resource("challenge_scopes")?,
            None => scopes_supported.clone(),
        };
        for path in &self.health_paths {
            if !path.starts_with('/') || path.contains(['?', '#', ';', '%']) {
                return Err(ConfigError::new(
                    "health_paths",
                    "a health path is a plain absolute path",
                ));
            }
        }

        let metadata =
            MetadataDocument::new(&self.resource, self.authorization_servers, scopes_supported)?;
        let metadata = ProtectedResourceMetadata::new(metadata);
        let challenge = Challenge::new(metadata.url())?.with_scope(challenge_scopes);

        let mut origins = AllowedOrigins::of_resource(&self.resource)?;
        for origin in &self.origins {
            origins = origins.allow(origin)?;
        }
        if self.loopback_origins {
            origins = origins.with_loopback();
        }
        let mut extract =
            ExtractCredentialLayer::new(challenge.clone()).with_allowed_origins(origins.clone());
        if let Some(prefix) = &self.service_account_prefix {
            extract = extract.with_service_account_prefix(prefix)?;
        }
        let validator = self.validator.build()?;
        let validate = ValidateTokenLayer::new(validator, challenge.clone());
        let sessions = match self.mcp_sessions {
            Some((0, _)) => {
                return Err(ConfigError::new(
                    "sessions.capacity",
                    "at least one session must fit",
                ));
            }
            Some((_, idle)) if idle.is_zero() => {
                return Err(ConfigError::new(
                    "sessions.idle_seconds",
                    "a session must live longer than zero",
                ));
            }
            Some((capacity, idle)) => {
                BindMcpSessionsLayer::with_limits(challenge.clone(), capacity, idle)
            }
            None => BindMcpSessionsLayer::off(),
        };
        let site = (self.sites)(BindSiteLayer::new(challenge.clone()))?;
        let gate = match self.policy {
            Some(make) => make(challenge.clone()),
            None => GateApiTokensLayer::new(challenge.clone(), StaticPolicies::from_toml("")?),
        };
        let scopes = (self.scopes)(RequireScopesLayer::new(challenge.clone()))?;
        if site.requires_site_by_method() && !site.reads_bodies() {
            return Err(ConfigError::new(
                "sites.require_for",
                "methods are read from JSON-RPC bodies; the site layer reads none",
            ));
        }
        if scopes.has_tool_rules() && !site.reads_bodies() {
            return Err(ConfigError::new(
                "scopes.tools",
                "tool scopes need the tool name, which is read from JSON-RPC bodies; the site layer reads none",
            ));
        }
        let mut context = match self.context {
            Some(make) => make(challenge),
            None => EnrichContextLayer::new(challenge, StaticContext::from_toml("")?),
        };
        if let Some((namespace, identity)) = &self.forwarding {
            context = context.for_forwarding(namespace)?;
            if *identity {
                context = context.with_identity_headers()?;
            }
        }
        Ok(Portcullis {
            layer: AuthLayer {
                extract,
                validate,
                sessions,
                site,
                gate,
                scopes,
                context,
            },
            metadata,
            health_paths: self.health_paths.into(),
            origins,
        })
    }
}

impl fmt::Debug for PortcullisBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortcullisBuilder")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}
