//! The TOML schema shared by programs and the `portcullis` gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_context::{HttpContext, StaticContext};
use portcullis_core::{ConfigError, Secret};
use portcullis_lookup::ConfigureHttpSource;
use portcullis_policy::{HttpPolicies, StaticPolicies};
use portcullis_site::{HttpGrants, StaticDirectory};
use portcullis_token::{
    FileTokenStore, HttpTokenVerifier, Introspection, Issuer, SigningAlgorithm,
};
use serde::Deserialize;

use crate::{Portcullis, PortcullisBuilder};

/// The stack's configuration as read from TOML. Every key is documented in `examples/portcullis.toml`.
///
/// Relative file paths are resolved against the directory of the configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Canonical URI of the protected resource (the audience of its tokens).
    pub resource: String,
    /// Authorization servers listed in the resource metadata (defaults to the issuers).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes listed in the resource metadata and advertised in 401 challenges.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Scopes advertised in 401 challenges instead of `scopes_supported`.
    #[serde(default)]
    pub challenge_scopes: Option<Vec<String>>,
    /// Prefix of service-account API keys.
    #[serde(default)]
    pub service_account_prefix: Option<String>,
    /// Public health paths (default `["/health"]`).
    #[serde(default)]
    pub health_paths: Option<Vec<String>>,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuer: Vec<IssuerConfig>,
    /// Token validation settings.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// RFC 7662 introspection of opaque tokens.
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
    /// API-token verification.
    #[serde(default)]
    pub api_tokens: Option<SourceConfig>,
    /// Site binding.
    #[serde(default)]
    pub sites: SitesConfig,
    /// Organization policies for API tokens.
    #[serde(default)]
    pub policy: Option<TimedSourceConfig>,
    /// Required scopes.
    #[serde(default)]
    pub scopes: ScopesConfig,
    /// User and product context.
    #[serde(default)]
    pub context: Option<ContextConfig>,
    /// Forwarding to an upstream.
    #[serde(default)]
    pub forwarding: Option<ForwardingConfig>,
    /// `[sessions]`: MCP sessions bound to the principal that started them.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// `[origins]`: browser origins allowed besides the resource's own.
    #[serde(default)]
    pub origins: OriginsConfig,
}

/// `[origins]`: which browser `Origin`s may call the resource (the resource's own origin always may).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginsConfig {
    /// Further origins, exactly as a browser sends them (`https://app.example.com`).
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Allow `http(s)` origins on loopback hosts, any port (default `false`).
    #[serde(default)]
    pub loopback: bool,
}

/// `[[issuer]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// The JWKS URI; discovered (RFC 8414, then OIDC) when absent.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Allowed algorithms (default: every asymmetric one).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Accept tokens not typed `at+jwt`.
    #[serde(default)]
    pub allow_untyped_tokens: bool,
}

/// `[tokens]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Claim holding the sites a token was granted for.
    #[serde(default)]
    pub site_claim: Option<String>,
    /// `" "` or `","`: a site claim that is one string holds a list separated by it.
    #[serde(default)]
    pub site_claim_delimiter: Option<String>,
    /// Clock leeway in seconds (default 60).
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// Longest token accepted, in bytes.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Longest a validated JWT is cached, in seconds (default 300); never past its `exp`.
    #[serde(default)]
    pub cache_seconds: Option<u64>,
    /// Longest an introspection answer is cached, in seconds (default 60); never past the token's `exp`.
    #[serde(default)]
    pub introspection_cache_seconds: Option<u64>,
    /// How long a verified API token is cached, in seconds (default 300).
    #[serde(default)]
    pub api_token_cache_seconds: Option<u64>,
    /// How long an invalid credential is remembered, in seconds (default 10).
    #[serde(default)]
    pub invalid_cache_seconds: Option<u64>,
    /// Most validated credentials cached (default 100 000).
    #[serde(default)]
    pub cache_capacity: Option<u64>,
    /// At most one key-set refetch for an unknown `kid` per this many seconds (default 30).
    #[serde(default)]
    pub unknown_kid_cooldown_seconds: Option<u64>,
    /// With no usable key set (issuer down), at most one fetch attempt per this many seconds (default 5).
    #[serde(default)]
    pub key_retry_seconds: Option<u64>,
    /// How long past its refresh time the last good key set is used while fetches fail, in seconds (default
    /// 86400).
    #[serde(default)]
    pub max_key_staleness_seconds: Option<u64>,
}

/// `[introspection]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The introspection endpoint.
    pub endpoint: String,
    /// This resource server's client id.
    pub client_id: String,
    /// Name of the environment variable holding the client secret (never the secret itself in the file).
    pub client_secret_env: String,
    /// The issuer whose tokens it introspects.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// A source that is a local TOML file or an HTTP endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A TOML file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An HTTP endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The environment variable holding the service's own bearer token for `endpoint`.
    #[serde(default)]
    pub bearer_env: Option<String>,
}

/// A source with a cache time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedSourceConfig {
    /// A TOML file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An HTTP endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How long answers are cached, in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// The environment variable holding the service's own bearer token for `endpoint`.
    #[serde(default)]
    pub bearer_env: Option<String>,
}

/// `[sites]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitesConfig {
    /// Path templates with a `{cloudId}` segment.
    #[serde(default)]
    pub path_templates: Vec<String>,
    /// Headers (gRPC metadata) naming the site.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query parameters naming the site.
    #[serde(default)]
    pub query: Vec<String>,
    /// Read JSON-RPC bodies (default true).
    #[serde(default)]
    pub read_body: Option<bool>,
    /// JSON pointers per JSON-RPC method (`tools/call` defaults to `/params/arguments/cloudId`).
    #[serde(default)]
    pub body_pointers: BTreeMap<String, String>,
    /// MCP 2026-07-28 `Mcp-Param-{Name}` headers checked against the `tools/call` argument they mirror.
    #[serde(default)]
    pub param_headers: BTreeMap<String, String>,
    /// Largest body read, in bytes.
    #[serde(default)]
    pub body_limit: Option<usize>,
    /// Refuse requests that name no site.
    #[serde(default)]
    pub require: bool,
    /// JSON-RPC methods whose requests must name a site (`tools/call`, `resources/read`, ...).
    #[serde(default)]
    pub require_for: Vec<String>,
    /// A site directory and grant table (TOML).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// An "accessible resources" endpoint for grants.
    #[serde(default)]
    pub grants_endpoint: Option<String>,
    /// The environment variable holding the service's own bearer token for `grants_endpoint`.
    #[serde(default)]
    pub grants_bearer_env: Option<String>,
}

/// `[scopes]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesConfig {
    /// Scopes per route (`/path`, or `/prefix/...`).
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Scopes per MCP tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<String>>,
    /// Scope hierarchy: each broader scope with the scopes it implies (`*`: every scope).
    #[serde(default)]
    pub implies: BTreeMap<String, Vec<String>>,
}

/// `[context]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Users and products from TOML.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A user-profile endpoint.
    #[serde(default)]
    pub profile_endpoint: Option<String>,
    /// The issuer's OIDC `userinfo` endpoint, asked with the user's token (instead of `profile_endpoint`).
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// A site-products endpoint (with `profile_endpoint` or `userinfo_endpoint`).
    #[serde(default)]
    pub products_endpoint: Option<String>,
    /// The environment variable holding the service's own bearer token for these endpoints (the userinfo
    /// endpoint is always asked with the user's token).
    #[serde(default)]
    pub bearer_env: Option<String>,
}

/// `[forwarding]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingConfig {
    /// Identity header namespace, e.g. `x-portcullis-`.
    pub namespace: String,
    /// Set identity headers for the upstream.
    #[serde(default)]
    pub identity_headers: bool,
}

/// `[sessions]`: binding of MCP sessions (`Mcp-Session-Id`) to the principal that started them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Bind sessions (default `true`). `false` leaves `Mcp-Session-Id` alone, for a service that is not an MCP
    /// server.
    #[serde(default = "default_true")]
    pub bind: bool,
    /// Sessions kept at most (default 100 000).
    #[serde(default)]
    pub capacity: Option<u64>,
    /// Seconds a session is kept without a request (default 3600).
    #[serde(default)]
    pub idle_seconds: Option<u64>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            bind: true,
            capacity: None,
            idle_seconds: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn one_of<'a>(
    setting: &'static str,
    file: Option<&'a PathBuf>,
    endpoint: Option<&'a String>,
) -> Result<Either<&'a PathBuf, &'a String>, ConfigError> {
    match (file, endpoint) {
        (Some(file), None) => Ok(Either::File(file)),
        (None, Some(endpoint)) => Ok(Either::Endpoint(endpoint)),
        _ => Err(ConfigError::new(
            setting,
            "set exactly one of `file` and `endpoint`",
        )),
    }
}

enum Either<F, E> {
    File(F),
    Endpoint(E),
}

impl Config {
    /// Parses TOML text. Relative paths stay relative to the current directory.
    ///
    /// # Errors
    /// Malformed TOML, an unknown key or a value of the wrong type; the message names the key and the line.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::new("config", e.to_string().trim_end().to_owned()))
    }

    /// Reads a TOML file; relative paths in it are resolved against its directory.
    ///
    /// # Errors
    /// An unreadable file, or what [`Config::from_toml`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let mut config = Self::from_toml(&text)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for source in [
            config.api_tokens.as_mut().and_then(|s| s.file.as_mut()),
            config.sites.directory.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            resolve(source);
        }
        if let Some(file) = config.policy.as_mut().and_then(|s| s.file.as_mut()) {
            resolve(file);
        }
        if let Some(file) = config.context.as_mut().and_then(|s| s.file.as_mut()) {
            resolve(file);
        }
        Ok(config)
    }

    /// The builder this configuration describes.
    ///
    /// # Errors
    /// A value the layers refuse (the message names the setting), a missing secret variable, or an unreadable
    /// file.
    pub fn builder(&self) -> Result<PortcullisBuilder, ConfigError> {
        let mut builder =
            Portcullis::builder(&self.resource).scopes_supported(self.scopes_supported.clone());
        for server in &self.authorization_servers {
            builder = builder.add_authorization_server(server);
        }
        if let Some(prefix) = &self.service_account_prefix {
            builder = builder.with_service_account_prefix(prefix);
        }
        if let Some(paths) = &self.health_paths {
            builder = builder.health_paths(paths.clone());
        }
        if let Some(scopes) = &self.challenge_scopes {
            builder = builder.challenge_scopes(scopes.clone());
        }
        builder = builder.allow_origins(self.origins.allowed.clone());
        if self.origins.loopback {
            builder = builder.allow_loopback_origins();
        }
        for issuer in &self.issuer {
            let mut built = match &issuer.jwks_uri {
                Some(jwks_uri) => Issuer::with_jwks_uri(&issuer.issuer, jwks_uri)?,
                None => Issuer::discover(&issuer.issuer)?,
            };
            if let Some(algorithms) = &issuer.algorithms {
                let algorithms = algorithms
                    .iter()
                    .map(|a| {
                        a.parse::<SigningAlgorithm>()
                            .map_err(|e| ConfigError::new("issuer.algorithms", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                built = built.with_algorithms(&algorithms)?;
            }
            if issuer.allow_untyped_tokens {
                built = built.allow_untyped_tokens();
            }
            builder = builder.add_issuer(built);
        }
        let tokens = self.tokens.clone();
        let delimiter = match tokens.site_claim_delimiter.as_deref() {
            None => None,
            Some(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(delimiter), None) => Some(delimiter),
                    _ => {
                        return Err(ConfigError::new(
                            "site_claim_delimiter",
                            "must be one character: \" \" or \",\"",
                        ));
                    }
                }
            }
        };
        builder = builder.configure_validator(move |mut v| {
            if let Some(claim) = &tokens.site_claim {
                v = v.with_site_claim(claim);
            }
            if let Some(delimiter) = delimiter {
                v = v.with_site_claim_delimiter(delimiter);
            }
            if let Some(leeway) = tokens.leeway_seconds {
                v = v.with_leeway(Duration::from_secs(leeway));
            }
            if let Some(max) = tokens.max_token_bytes {
                v = v.with_max_token_len(max);
            }
            if let Some(seconds) = tokens.cache_seconds {
                v = v.with_max_cache_ttl(Duration::from_secs(seconds));
            }
            if let Some(seconds) = tokens.introspection_cache_seconds {
                v = v.with_introspection_ttl(Duration::from_secs(seconds));
            }
            if let Some(seconds) = tokens.api_token_cache_seconds {
                v = v.with_api_token_ttl(Duration::from_secs(seconds));
            }
            if let Some(seconds) = tokens.invalid_cache_seconds {
                v = v.with_negative_ttl(Duration::from_secs(seconds));
            }
            if let Some(capacity) = tokens.cache_capacity {
                v = v.with_cache_capacity(capacity);
            }
            if let Some(seconds) = tokens.unknown_kid_cooldown_seconds {
                v = v.with_unknown_kid_cooldown(Duration::from_secs(seconds));
            }
            if let Some(seconds) = tokens.key_retry_seconds {
                v = v.with_cold_retry(Duration::from_secs(seconds));
            }
            if let Some(seconds) = tokens.max_key_staleness_seconds {
                v = v.with_max_key_staleness(Duration::from_secs(seconds));
            }
            v
        });
        if let Some(introspection) = &self.introspection {
            let secret = std::env::var(&introspection.client_secret_env).map_err(|_| {
                ConfigError::new(
                    "introspection.client_secret_env",
                    "the environment variable is not set",
                )
            })?;
            let mut built = Introspection::new(
                &introspection.endpoint,
                &introspection.client_id,
                Secret::new(secret),
            )?;
            if let Some(issuer) = &introspection.issuer {
                built = built.with_issuer(issuer);
            }
            builder = builder.with_introspection(built);
        }
        if let Some(api) = &self.api_tokens {
            builder = match one_of("api_tokens", api.file.as_ref(), api.endpoint.as_ref())? {
                Either::File(file) => builder.with_api_token_verifier(FileTokenStore::load(file)?),
                Either::Endpoint(url) => builder.with_api_token_verifier(with_bearer(
                    HttpTokenVerifier::new(url)?,
                    "api_tokens.bearer_env",
                    api.bearer_env.as_deref(),
                )?),
            };
        }
        let sites = self.sites.clone();
        let directory = sites
            .directory
            .as_ref()
            .map(StaticDirectory::load)
            .transpose()?;
        let grants = sites
            .grants_endpoint
            .as_deref()
            .map(HttpGrants::new)
            .transpose()?
            .map(|grants| {
                with_bearer(
                    grants,
                    "sites.grants_bearer_env",
                    sites.grants_bearer_env.as_deref(),
                )
            })
            .transpose()?;
        builder = builder.configure_sites(move |mut layer| {
            for template in &sites.path_templates {
                layer = layer.add_path_template(template)?;
            }
            for header in &sites.headers {
                layer = layer.add_header(header)?;
            }
            for param in &sites.query {
                layer = layer.add_query_param(param);
            }
            if sites.read_body == Some(false) {
                layer = layer.without_body();
            } else {
                for (method, pointer) in &sites.body_pointers {
                    layer = layer.add_body_pointer(method, pointer)?;
                }
                for (header, pointer) in &sites.param_headers {
                    layer = layer.add_param_header(header, pointer)?;
                }
            }
            if let Some(limit) = sites.body_limit {
                layer = layer.with_body_limit(limit)?;
            }
            if sites.require {
                layer = layer.require_site();
            }
            layer = layer.require_site_for(&sites.require_for)?;
            match (directory, grants) {
                (Some(directory), Some(grants)) => {
                    layer = layer.with_directory(directory).with_grants(grants)
                }
                (Some(directory), None) => {
                    layer = layer
                        .with_directory(directory.clone())
                        .with_grants(directory)
                }
                (None, Some(grants)) => layer = layer.with_grants(grants),
                (None, None) => {}
            }
            Ok(layer)
        });
        if let Some(policy) = &self.policy {
            let ttl = Duration::from_secs(policy.ttl_seconds.unwrap_or(30));
            builder = match one_of("policy", policy.file.as_ref(), policy.endpoint.as_ref())? {
                Either::File(file) => builder.with_policy_ttl(StaticPolicies::load(file)?, ttl),
                Either::Endpoint(url) => builder.with_policy_ttl(
                    with_bearer(
                        HttpPolicies::new(url)?,
                        "policy.bearer_env",
                        policy.bearer_env.as_deref(),
                    )?,
                    ttl,
                ),
            };
        }
        let scopes = self.scopes.clone();
        builder = builder.configure_scopes(move |mut layer| {
            for (route, needed) in &scopes.routes {
                layer = layer.add_route(route, needed)?;
            }
            for (tool, needed) in &scopes.tools {
                layer = layer.add_tool(tool, needed)?;
            }
            for (broader, narrower) in &scopes.implies {
                layer = layer.add_implication(broader, narrower)?;
            }
            Ok(layer)
        });
        if let Some(context) = &self.context {
            let user_endpoint = match (&context.profile_endpoint, &context.userinfo_endpoint) {
                (Some(profile), None) => Some(HttpContext::new(profile)),
                (None, Some(userinfo)) => Some(HttpContext::userinfo(userinfo)),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "context",
                        "set at most one of `profile_endpoint` and `userinfo_endpoint`",
                    ));
                }
            };
            builder = match (&context.file, user_endpoint) {
                (Some(file), None) => builder.with_context(StaticContext::load(file)?),
                (None, Some(http)) => {
                    let mut http =
                        with_bearer(http?, "context.bearer_env", context.bearer_env.as_deref())?;
                    if let Some(products) = &context.products_endpoint {
                        http = http.with_products(products)?;
                    }
                    builder.with_context(http)
                }
                _ => {
                    return Err(ConfigError::new(
                        "context",
                        "set exactly one of `file` and `profile_endpoint`",
                    ));
                }
            };
        }
        if let Some(forwarding) = &self.forwarding {
            builder = builder.for_forwarding(&forwarding.namespace, forwarding.identity_headers);
        }
        let sessions = &self.sessions;
        builder = if sessions.bind {
            builder.mcp_sessions(
                sessions.capacity.unwrap_or(crate::DEFAULT_SESSION_CAPACITY),
                sessions
                    .idle_seconds
                    .map_or(crate::DEFAULT_SESSION_IDLE, std::time::Duration::from_secs),
            )
        } else if sessions.capacity.is_some() || sessions.idle_seconds.is_some() {
            return Err(ConfigError::new(
                "sessions",
                "`capacity` and `idle_seconds` apply only when `bind` is true",
            ));
        } else {
            builder.without_mcp_session_binding()
        };
        Ok(builder)
    }

    /// Builds the stack.
    ///
    /// # Errors
    /// See [`Config::builder`] and [`PortcullisBuilder::build`].
    pub fn build(&self) -> Result<Portcullis, ConfigError> {
        self.builder()?.build()
    }
}

/// `source` with the service's own bearer token from the environment variable `var`, when one is named.
fn with_bearer<S: ConfigureHttpSource>(
    source: S,
    setting: &'static str,
    var: Option<&str>,
) -> Result<S, ConfigError> {
    let Some(var) = var else {
        return Ok(source);
    };
    let token = std::env::var(var)
        .ok()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ConfigError::new(setting, "the environment variable is not set"))?;
    Ok(source.with_bearer(Secret::new(token)))
}
