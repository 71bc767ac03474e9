//! Where grants and site metadata come from: the traits, and the built-ins (a TOML directory, an HTTP
//! "accessible resources" endpoint).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use portcullis_core::{ConfigError, OrgId, Principal, Site, SiteId, check_url};
use portcullis_lookup::{ConfigureHttpSource, HttpSource};
use serde::Deserialize;

/// A boxed future, as the resolver traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A lookup could not be answered (down, slow, broken). Never cached; a request that needs the answer gets 503.
#[derive(Debug, thiserror::Error)]
#[error("the site directory is unavailable")]
pub struct LookupError(());

impl LookupError {
    /// A lookup failure.
    #[must_use]
    pub fn unavailable() -> Self {
        Self(())
    }
}

/// The sites a principal may use, for principals whose credential does not list them.
pub trait ResolveSiteGrants: fmt::Debug + Send + Sync + 'static {
    /// The sites `principal` was granted, with whatever metadata the source knows.
    fn grants<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Vec<Site>, LookupError>>;
}

/// Site metadata: the site with an id, or the site served at a host.
pub trait ResolveSite: fmt::Debug + Send + Sync + 'static {
    /// The site with this id, if known.
    fn resolve<'a>(&'a self, id: &'a SiteId) -> BoxFuture<'a, Result<Option<Site>, LookupError>>;

    /// The site whose URL has exactly this host (ASCII lower case, no port, no trailing dot), if known.
    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<Site>, LookupError>>;
}

/// A site directory and grant table read from TOML.
///
/// ```toml
/// [[site]]
/// id = "3f2a9c1e-site-a"
/// url = "https://acme.example.net"
/// organization = "org-acme"
///
/// [grants]
/// # principal subject = the site ids it may use
/// "acc-ada" = ["3f2a9c1e-site-a"]
/// ```
#[derive(Clone)]
pub struct StaticDirectory {
    sites: HashMap<SiteId, Site>,
    hosts: HashMap<String, SiteId>,
    grants: HashMap<String, Vec<SiteId>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    site: Vec<SiteRow>,
    #[serde(default)]
    grants: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRow {
    id: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    organization: Option<String>,
}

impl StaticDirectory {
    /// Reads a directory from a TOML file.
    ///
    /// # Errors
    /// An unreadable file, or what [`StaticDirectory::from_toml`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path.as_ref())
            .map_err(|e| ConfigError::new("sites", format!("cannot read the site file: {e}")))?;
        Self::from_toml(&text)
    }

    /// Parses a directory from TOML text.
    ///
    /// # Errors
    /// Malformed TOML, unknown keys, malformed ids, a site URL that is not `https` (or `http` on loopback) or has
    /// a port, path or user info, the same id or host twice, or a grant naming a site not in the directory.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: DirectoryFile = toml::from_str(text)
            .map_err(|e| ConfigError::new("sites", format!("invalid TOML: {}", e.message())))?;
        let mut sites = HashMap::new();
        let mut hosts = HashMap::new();
        for row in file.site {
            let id = SiteId::parse(&row.id)?;
            let mut site = Site::new(id.clone());
            if let Some(url) = row.url {
                let host = site_host(&url)?;
                if hosts.insert(host, id.clone()).is_some() {
                    return Err(ConfigError::new("sites", "two sites have the same host"));
                }
                site = site.with_url(url);
            }
            if let Some(org) = row.organization {
                site = site.with_organization(OrgId::new(&org)?);
            }
            if sites.insert(id, site).is_some() {
                return Err(ConfigError::new("sites", "the same site id appears twice"));
            }
        }
        let mut grants = HashMap::new();
        for (subject, ids) in file.grants {
            let ids = ids
                .iter()
                .map(|id| SiteId::parse(id).map_err(ConfigError::from))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.iter().any(|id| !sites.contains_key(id)) {
                return Err(ConfigError::new(
                    "grants",
                    "a grant names a site that is not in the directory",
                ));
            }
            grants.insert(subject, ids);
        }
        Ok(Self {
            sites,
            hosts,
            grants,
        })
    }
}

/// The host of a site URL from configuration: `https` (or `http` on loopback), no user info, port, path, query
/// or fragment; returned in ASCII lower case.
fn site_host(url: &str) -> Result<String, ConfigError> {
    let uri = check_url("site_url", url)?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if uri.port().is_some() && !authority.starts_with("127.") && !authority.starts_with("localhost")
    {
        return Err(ConfigError::new("site_url", "must not have a port"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(ConfigError::new(
            "site_url",
            "must be an origin, without a path or query",
        ));
    }
    Ok(uri.host().unwrap_or_default().to_ascii_lowercase())
}

impl ResolveSiteGrants for StaticDirectory {
    fn grants<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Vec<Site>, LookupError>> {
        let sites = self
            .grants
            .get(principal.subject())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.sites.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(async move { Ok(sites) })
    }
}

impl ResolveSite for StaticDirectory {
    fn resolve<'a>(&'a self, id: &'a SiteId) -> BoxFuture<'a, Result<Option<Site>, LookupError>> {
        let site = self.sites.get(id).cloned();
        Box::pin(async move { Ok(site) })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Option<Site>, LookupError>> {
        let site = self
            .hosts
            .get(host)
            .and_then(|id| self.sites.get(id))
            .cloned();
        Box::pin(async move { Ok(site) })
    }
}

impl fmt::Debug for StaticDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticDirectory")
            .field("sites", &self.sites.len())
            .field("grants", &self.grants.len())
            .finish()
    }
}

/// Grants from the operator's "accessible resources" endpoint.
///
/// `GET <endpoint>?subject=<principal subject>` (with the service's own bearer token, never the user's), answered
/// with `[{"id": "...", "url": "https://...", "organization": "..."}]`. Entries that do not parse are skipped;
/// a non-2xx, slow or malformed answer is a [`LookupError`].
#[derive(Clone, Debug)]
pub struct HttpGrants {
    source: HttpSource,
}

impl HttpGrants {
    /// Grants from `endpoint`.
    ///
    /// # Errors
    /// An endpoint that is not `https` (or `http` on loopback), has a query or fragment, or an HTTP client that
    /// cannot be set up.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            source: HttpSource::get("grants_endpoint", endpoint)?,
        })
    }
}

/// One entry of the grants answer.
#[derive(Deserialize)]
struct GrantRow {
    id: String,
    url: Option<String>,
    organization: Option<String>,
}

impl ResolveSiteGrants for HttpGrants {
    fn grants<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Vec<Site>, LookupError>> {
        Box::pin(async move {
            let rows = self
                .source
                .get_json::<Vec<GrantRow>>(&[("subject", principal.subject())])
                .await
                .map_err(|err| {
                    tracing::warn!(target: "portcullis::site", error = %err, "grants lookup failed");
                    LookupError::unavailable()
                })?
                .value;
            Ok(rows
                .into_iter()
                .filter_map(|row| {
                    let mut site = Site::new(SiteId::parse(&row.id).ok()?);
                    if let Some(url) = row.url {
                        site = site.with_url(url);
                    }
                    if let Some(org) = row.organization.and_then(|o| OrgId::new(&o).ok()) {
                        site = site.with_organization(org);
                    }
                    Some(site)
                })
                .collect())
        })
    }
}

impl ConfigureHttpSource for HttpGrants {
    fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self {
        Self {
            source: f(self.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_files_are_checked() {
        let good = r#"
            [[site]]
            id = "site-a"
            url = "https://Acme.example.net"
            organization = "org-a"
            [grants]
            "acc-ada" = ["site-a"]
        "#;
        let directory = StaticDirectory::from_toml(good).expect("valid");
        assert_eq!(
            directory.hosts.get("acme.example.net").map(SiteId::as_str),
            Some("site-a")
        );
        for bad in [
            "[[site]]\nid = 'a b'",
            "[[site]]\nid = 'a'\nurl = 'http://acme.example.net'",
            "[[site]]\nid = 'a'\nurl = 'https://acme.example.net/wiki'",
            "[[site]]\nid = 'a'\nurl = 'https://acme.example.net:8443'",
            "[[site]]\nid = 'a'\n[[site]]\nid = 'a'",
            // Ids are exact: a grant of another spelling names no site.
            "[[site]]\nid = 'a'\n[grants]\nx = ['A']",
            "[grants]\nx = ['nowhere']",
            "[[robot]]",
        ] {
            assert!(StaticDirectory::from_toml(bad).is_err(), "{bad}");
        }
    }
}
