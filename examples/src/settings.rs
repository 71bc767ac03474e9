//! The settings every example reads from its environment.

use std::net::SocketAddr;

use portcullis::context::StaticContext;
use portcullis::token::Issuer;
use portcullis::{ConfigError, Portcullis, PortcullisBuilder};

/// Issuer trusted unless `PORTCULLIS_ISSUER` says otherwise (a development issuer on loopback).
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:9000";

/// Claim of the access token that lists the sites (`cloudId`s) it was granted, unless `PORTCULLIS_SITE_CLAIM`
/// says otherwise.
pub const DEFAULT_SITE_CLAIM: &str = "https://example.com/sites";

/// Where an example listens and whose tokens it trusts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// Address to listen on (`PORTCULLIS_LISTEN`).
    pub listen: SocketAddr,
    /// Canonical URI of the protected resource: the audience tokens must name (`PORTCULLIS_RESOURCE`).
    pub resource: String,
    /// The trusted token issuer, exactly as in `iss` (`PORTCULLIS_ISSUER`).
    pub issuer: String,
    /// The issuer's JWKS URI; discovered from the issuer (RFC 8414, then OIDC) when `None`
    /// (`PORTCULLIS_JWKS_URI`).
    pub jwks_uri: Option<String>,
    /// Claim listing the sites a token was granted (`PORTCULLIS_SITE_CLAIM`).
    pub site_claim: String,
    /// User profiles and site products; without it the context holds the account id only
    /// (`PORTCULLIS_CONTEXT_FILE`, a TOML file as described by [`StaticContext`]).
    pub context: Option<StaticContext>,
}

impl Settings {
    /// Settings for `resource` with tokens from `issuer` (keys discovered), listening on `127.0.0.1:0`.
    #[must_use]
    pub fn new(resource: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            resource: resource.into(),
            issuer: issuer.into(),
            jwks_uri: None,
            site_claim: DEFAULT_SITE_CLAIM.to_owned(),
            context: None,
        }
    }

    /// Takes the issuer's keys from `jwks_uri` instead of discovering it.
    #[must_use]
    pub fn with_jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// Takes user profiles and site products from `context`.
    #[must_use]
    pub fn with_context(mut self, context: StaticContext) -> Self {
        self.context = Some(context);
        self
    }

    /// Reads the settings from the environment:
    ///
    /// | variable | default |
    /// | --- | --- |
    /// | `PORTCULLIS_LISTEN` | `default_listen` |
    /// | `PORTCULLIS_RESOURCE` | `http://<listen><resource_path>` |
    /// | `PORTCULLIS_ISSUER` | [`DEFAULT_ISSUER`] |
    /// | `PORTCULLIS_JWKS_URI` | discovered from the issuer |
    /// | `PORTCULLIS_SITE_CLAIM` | [`DEFAULT_SITE_CLAIM`] |
    /// | `PORTCULLIS_CONTEXT_FILE` | none |
    ///
    /// # Errors
    /// A listen address that does not parse, or a context file that cannot be read.
    pub fn from_env(default_listen: &str, resource_path: &str) -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = var("PORTCULLIS_LISTEN")
            .unwrap_or_else(|| default_listen.to_owned())
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::new("PORTCULLIS_LISTEN", "not an IP address and port"))?;
        let resource =
            var("PORTCULLIS_RESOURCE").unwrap_or_else(|| format!("http://{listen}{resource_path}"));
        let issuer = var("PORTCULLIS_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        let mut settings = Self::new(resource, issuer);
        settings.listen = listen;
        settings.jwks_uri = var("PORTCULLIS_JWKS_URI");
        if let Some(claim) = var("PORTCULLIS_SITE_CLAIM") {
            settings.site_claim = claim;
        }
        if let Some(path) = var("PORTCULLIS_CONTEXT_FILE") {
            settings.context = Some(StaticContext::load(path)?);
        }
        Ok(settings)
    }

    /// A builder for these settings: the resource, the issuer, the site claim and the context source. Each
    /// example adds its own scopes and site sources.
    ///
    /// # Errors
    /// An issuer or JWKS URI that is not an absolute `https` URL (or `http` on loopback).
    pub fn builder(&self) -> Result<PortcullisBuilder, ConfigError> {
        let issuer = match &self.jwks_uri {
            Some(jwks_uri) => Issuer::with_jwks_uri(&self.issuer, jwks_uri)?,
            None => Issuer::discover(&self.issuer)?,
        };
        let claim = self.site_claim.clone();
        let mut builder = Portcullis::builder(&self.resource)
            .add_issuer(issuer)
            .configure_validator(move |validator| validator.with_site_claim(&claim));
        if let Some(context) = self.context.clone() {
            builder = builder.with_context(context);
        }
        Ok(builder)
    }
}
