//! The gateway's configuration file: the facade's schema ([`portcullis::Config`]) plus a `[gateway]` table.
//!
//! Every key is documented in `examples/portcullis.toml`. Problems are reported with the TOML key they concern
//! (`sites.body_limit`, `gateway.upstream`) and what is wrong with it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use portcullis::{Config, ConfigError, Portcullis};
use serde::Deserialize;

/// The whole file: the gateway's own settings and the stack's.
#[derive(Debug)]
pub(crate) struct GatewayFile {
    pub(crate) gateway: GatewaySettings,
    pub(crate) stack: Config,
}

/// The checked `[gateway]` table.
#[derive(Clone, Debug)]
pub(crate) struct GatewaySettings {
    pub(crate) listen: SocketAddr,
    pub(crate) upstream: Upstream,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) log_format: LogFormat,
    /// Answer CORS preflights for the allowed origins (`[origins]`).
    pub(crate) cors: bool,
}

/// How log lines are written (to standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The upstream: an `http` origin and an optional path prefix.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    authority: Authority,
    /// The path prefix, without a trailing `/` (empty for none).
    prefix: String,
}

impl Upstream {
    /// Parses and checks an upstream URL.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "is not a valid URL, e.g. http://127.0.0.1:9000".to_owned())?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https upstreams are not supported: run the gateway next to the MCP server and \
                     reach it over http (loopback or a private network)"
                    .to_owned());
            }
            _ => return Err("must be an http URL, e.g. http://127.0.0.1:9000".to_owned()),
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err("must have a host".to_owned());
        };
        if authority.as_str().contains('@') {
            return Err("must not contain user info".to_owned());
        }
        if uri.query().is_some() || url.contains('#') {
            return Err("must not have a query or fragment".to_owned());
        }
        Ok(Self {
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URI for a request's path and query: the prefix, then the path as received.
    pub(crate) fn uri_for(&self, inbound: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = inbound.path_and_query().map_or("/", PathAndQuery::as_str);
        let path_and_query = if self.prefix.is_empty() {
            PathAndQuery::try_from(path_and_query)?
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.prefix))?
        };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// A problem with the configuration file: the key, and what is wrong.
#[derive(Debug)]
pub(crate) struct ConfigProblem {
    key: String,
    problem: String,
}

impl ConfigProblem {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "`{}`: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigProblem {}

impl From<ConfigError> for ConfigProblem {
    /// The layers name their settings; say which TOML key that is.
    fn from(err: ConfigError) -> Self {
        let key = match err.setting() {
            "body_limit" => "sites.body_limit",
            "body_pointer" => "sites.body_pointers",
            "origins.allowed" => "origins.allowed",
            "param_headers" => "sites.param_headers",
            "path_template" => "sites.path_templates",
            "site_header" => "sites.headers",
            "grants_endpoint" => "sites.grants_endpoint",
            "sites" | "site_url" | "grants" => "sites.directory",
            "identity_namespace" => "forwarding.namespace",
            "route" => "scopes.routes",
            "tool" => "scopes.tools",
            "scope" => "scopes_supported, scopes.routes or scopes.tools",
            "issuer" => "issuer.issuer",
            "jwks_uri" => "issuer.jwks_uri",
            "algorithms" | "issuer.algorithms" => "issuer.algorithms",
            "issuers" => "issuer",
            "leeway" => "tokens.leeway_seconds",
            "max_token_len" => "tokens.max_token_bytes",
            "site_claim" => "tokens.site_claim",
            "cache_capacity" => "tokens.cache_capacity",
            "site_claim_delimiter" => "tokens.site_claim_delimiter",
            "introspection_endpoint" => "introspection.endpoint",
            "introspection_client_id" => "introspection.client_id",
            "api_token_verifier" => "api_tokens.endpoint",
            "policies" => "policy.file",
            "policy_endpoint" => "policy.endpoint",
            "profile_endpoint" => "context.profile_endpoint or context.products_endpoint",
            "resource_metadata" => "resource",
            other => other,
        };
        Self::new(key, err.problem().to_owned())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayTable {
    listen: String,
    upstream: String,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout_ms")]
    request_timeout_ms: u64,
    #[serde(default = "default_shutdown_timeout_ms")]
    shutdown_timeout_ms: u64,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    cors: bool,
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

fn default_shutdown_timeout_ms() -> u64 {
    10_000
}

/// The longest timeout accepted: one hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl GatewayFile {
    /// Reads a configuration file; relative file paths in it are resolved against its directory.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigProblem> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigProblem::new("", format!("cannot read {}: {e}", path.display())))?;
        let mut file = Self::from_toml(&text)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let stack = &mut file.stack;
        let files: [Option<&mut PathBuf>; 4] = [
            stack.api_tokens.as_mut().and_then(|s| s.file.as_mut()),
            stack.sites.directory.as_mut(),
            stack.policy.as_mut().and_then(|s| s.file.as_mut()),
            stack.context.as_mut().and_then(|s| s.file.as_mut()),
        ];
        for file in files.into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(file)
    }

    /// Parses configuration text. Relative paths stay relative to the current directory.
    pub(crate) fn from_toml(text: &str) -> Result<Self, ConfigProblem> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigProblem::new("", format!("invalid TOML: {}", e.to_string().trim_end()))
        })?;
        let gateway = match table.remove("gateway") {
            Some(toml::Value::Table(gateway)) => gateway,
            Some(_) => return Err(ConfigProblem::new("gateway", "must be a table")),
            None => {
                return Err(ConfigProblem::new(
                    "gateway",
                    "missing: add a [gateway] table with at least `listen` and `upstream`",
                ));
            }
        };
        let gateway: GatewayTable = GatewayTable::deserialize(toml::Value::Table(gateway))
            .map_err(|e| serde_problem("gateway", &e))?;
        let gateway = gateway.check()?;
        let stack =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| serde_problem("", &e))?;
        Ok(Self { gateway, stack })
    }

    /// Builds the stack, always in forwarding mode: the inbound `Authorization` header and any header in the
    /// identity namespace never reach the upstream. Without a `[forwarding]` table, identity headers are set under
    /// `x-portcullis-`.
    pub(crate) fn build(&self) -> Result<Portcullis, ConfigProblem> {
        let mut builder = self.stack.builder()?;
        if self.stack.forwarding.is_none() {
            builder = builder.for_forwarding(DEFAULT_NAMESPACE, true);
        }
        Ok(builder.build()?)
    }
}

/// The identity header namespace when the file has no `[forwarding]` table.
pub(crate) const DEFAULT_NAMESPACE: &str = "x-portcullis-";

impl GatewayTable {
    fn check(self) -> Result<GatewaySettings, ConfigProblem> {
        let listen = self.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigProblem::new(
                "gateway.listen",
                "must be an IP address and a port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
            )
        })?;
        let upstream = Upstream::parse(&self.upstream)
            .map_err(|e| ConfigProblem::new("gateway.upstream", e))?;
        let timeout = |key: &'static str, ms: u64| {
            if (1..=MAX_TIMEOUT_MS).contains(&ms) {
                Ok(Duration::from_millis(ms))
            } else {
                Err(ConfigProblem::new(
                    key,
                    format!("must be between 1 and {MAX_TIMEOUT_MS} milliseconds"),
                ))
            }
        };
        Ok(GatewaySettings {
            listen,
            upstream,
            connect_timeout: timeout("gateway.connect_timeout_ms", self.connect_timeout_ms)?,
            request_timeout: timeout("gateway.request_timeout_ms", self.request_timeout_ms)?,
            shutdown_timeout: timeout("gateway.shutdown_timeout_ms", self.shutdown_timeout_ms)?,
            log_format: self.log_format,
            cors: self.cors,
        })
    }
}

/// Turns a serde error from a TOML value into the key it concerns and the problem. The toml crate ends its
/// messages with "in `a.b`" when the problem is below the top of the value.
fn serde_problem(root: &str, err: &toml::de::Error) -> ConfigProblem {
    let message = err.to_string();
    let message = message.trim_end();
    let (problem, path) = match message.rsplit_once("\nin `") {
        Some((problem, rest)) => (problem, rest.trim_end_matches('`')),
        None => (message, ""),
    };
    let mut key: Vec<&str> = [root, path].into_iter().filter(|p| !p.is_empty()).collect();
    // An unknown or missing key is named in the message; put it at the end of the path.
    for marker in ["unknown field `", "missing field `"] {
        if let Some(name) = problem
            .strip_prefix(marker)
            .and_then(|rest| rest.split('`').next())
        {
            key.push(name);
        }
    }
    ConfigProblem::new(key.join("."), problem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        resource = "http://127.0.0.1:8080/mcp"
        authorization_servers = ["https://auth.example.com"]
        [[issuer]]
        issuer = "https://auth.example.com"
        jwks_uri = "https://auth.example.com/jwks.json"
        [gateway]
        listen = "127.0.0.1:8080"
        upstream = "http://127.0.0.1:9000/base/"
    "#;

    #[test]
    fn a_minimal_file_parses_with_defaults() {
        let file = GatewayFile::from_toml(MINIMAL).expect("valid");
        assert_eq!(file.gateway.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(file.gateway.connect_timeout, Duration::from_secs(2));
        assert_eq!(file.gateway.request_timeout, Duration::from_secs(30));
        assert_eq!(file.gateway.log_format, LogFormat::Human);
        assert_eq!(
            file.gateway.upstream.to_string(),
            "http://127.0.0.1:9000/base"
        );
        file.build().expect("the stack builds");
    }

    #[test]
    fn the_upstream_prefix_goes_before_the_path_and_query() {
        let upstream = Upstream::parse("http://10.0.0.2:9000/base/").expect("valid");
        let uri = upstream
            .uri_for(&"/mcp?x=1".parse().expect("uri"))
            .expect("uri");
        assert_eq!(uri.to_string(), "http://10.0.0.2:9000/base/mcp?x=1");
        let bare = Upstream::parse("http://up:9000").expect("valid");
        assert_eq!(
            bare.uri_for(&"/a".parse().expect("uri"))
                .expect("uri")
                .to_string(),
            "http://up:9000/a"
        );
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            ("listen = \"nowhere\"", "gateway.listen"),
            ("upstream = \"https://up\"", "gateway.upstream"),
            ("connect_timeout_ms = 0", "gateway.connect_timeout_ms"),
            (
                "request_timeout_ms = \"soon\"",
                "gateway.request_timeout_ms",
            ),
            ("log_format = \"xml\"", "gateway.log_format"),
            ("colour = true", "gateway.colour"),
        ];
        for (line, key) in cases {
            let name = line.split(' ').next().expect("name");
            let text = MINIMAL
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{name} ")))
                .chain([line])
                .collect::<Vec<_>>()
                .join("\n");
            let err = GatewayFile::from_toml(&text)
                .and_then(|f| f.build().map(drop))
                .expect_err(line);
            assert_eq!(err.key, key, "{line}: {err}");
        }
        let err = GatewayFile::from_toml(
            &MINIMAL.replace("[gateway]", "[sites]\nbody_limit = \"big\"\n[gateway]"),
        )
        .expect_err("invalid");
        assert_eq!(err.key, "sites.body_limit", "{err}");
        let err = GatewayFile::from_toml(&format!("{MINIMAL}\n[sites]\nbody_limit = 0"))
            .and_then(|f| f.build().map(drop))
            .expect_err("zero");
        assert_eq!(err.key, "sites.body_limit", "{err}");
        let err =
            GatewayFile::from_toml(&MINIMAL.replace("resource =", "resorce =")).expect_err("typo");
        assert_eq!(err.key, "resorce", "{err}");
    }
}
