//! Where organization policies come from.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use portcullis_core::{ConfigError, OrgId};
use portcullis_lookup::{ConfigureHttpSource, FetchError, HttpSource};
use serde::Deserialize;

/// A boxed future, as [`ResolvePolicy`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An organization admin's choice about API-token authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiTokenPolicy {
    /// Personal API tokens (`Basic email:token`) are accepted.
    #[serde(default)]
    pub personal_api_tokens: bool,
    /// Service-account keys are accepted.
    #[serde(default)]
    pub service_account_keys: bool,
}

impl ApiTokenPolicy {
    /// A policy allowing the given kinds.
    #[must_use]
    pub fn new(personal_api_tokens: bool, service_account_keys: bool) -> Self {
        Self {
            personal_api_tokens,
            service_account_keys,
        }
    }
}

/// The policy lookup failed. API-token requests are then denied; OAuth requests are never affected.
#[derive(Debug, thiserror::Error)]
#[error("the policy source is unavailable")]
pub struct PolicyError(());

impl PolicyError {
    /// A lookup failure.
    #[must_use]
    pub fn unavailable() -> Self {
        Self(())
    }
}

/// The API-token policy of an organization. `Ok(None)`: no policy known, which means disabled.
pub trait ResolvePolicy: fmt::Debug + Send + Sync + 'static {
    /// The policy of `organization`.
    fn policy<'a>(
        &'a self,
        organization: &'a OrgId,
    ) -> BoxFuture<'a, Result<Option<ApiTokenPolicy>, PolicyError>>;
}

/// Policies from TOML:
///
/// ```toml
/// [organization."org-acme"]
/// personal_api_tokens = true
/// service_account_keys = false
/// ```
#[derive(Clone, Debug)]
pub struct StaticPolicies {
    policies: HashMap<OrgId, ApiTokenPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    organization: HashMap<String, ApiTokenPolicy>,
}

impl StaticPolicies {
    /// Reads policies from a TOML file.
    ///
    /// # Errors
    /// An unreadable file, or what [`StaticPolicies::from_toml`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| {
            ConfigError::new("policies", format!("cannot read the policy file: {e}"))
        })?;
        Self::from_toml(&text)
    }

    /// Parses policies from TOML text.
    ///
    /// # Errors
    /// Malformed TOML, unknown keys, or a malformed organization id.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| ConfigError::new("policies", format!("invalid TOML: {}", e.message())))?;
        let policies = file
            .organization
            .into_iter()
            .map(|(org, policy)| Ok((OrgId::new(&org)?, policy)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { policies })
    }
}

impl ResolvePolicy for StaticPolicies {
    fn policy<'a>(
        &'a self,
        organization: &'a OrgId,
    ) -> BoxFuture<'a, Result<Option<ApiTokenPolicy>, PolicyError>> {
        let policy = self.policies.get(organization).copied();
        Box::pin(async move { Ok(policy) })
    }
}

/// Policies from the operator's admin service: `GET <endpoint>?organization=<id>`, answered with
/// `{"personal_api_tokens": bool, "service_account_keys": bool}`, or 404 when the organization has no policy
/// (disabled). Anything else (other statuses, timeouts, malformed answers) is a [`PolicyError`].
#[derive(Clone, Debug)]
pub struct HttpPolicies {
    source: HttpSource,
}

impl HttpPolicies {
    /// Policies from `endpoint`.
    ///
    /// # Errors
    /// An endpoint that is not `https` (or `http` on loopback), has a query, or an HTTP client that cannot be set
    /// up.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            source: HttpSource::get("policy_endpoint", endpoint)?,
        })
    }
}

impl ResolvePolicy for HttpPolicies {
    fn policy<'a>(
        &'a self,
        organization: &'a OrgId,
    ) -> BoxFuture<'a, Result<Option<ApiTokenPolicy>, PolicyError>> {
        Box::pin(async move {
            let params = [("organization", organization.as_str())];
            match self.source.get_json::<ApiTokenPolicy>(&params).await {
                Ok(fetched) => Ok(Some(fetched.value)),
                Err(FetchError::Status(404)) => Ok(None),
                Err(err) => {
                    tracing::warn!(target: "portcullis::policy", error = %err, "policy lookup failed");
                    Err(PolicyError::unavailable())
                }
            }
        })
    }
}

impl ConfigureHttpSource for HttpPolicies {
    fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self {
        Self {
            source: f(self.source),
        }
    }
}
