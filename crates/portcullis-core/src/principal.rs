//! Who a validated credential belongs to.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::{AccessibleSites, OrgId, ScopeList, Site, SiteId};

/// How a principal authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An OAuth 2.1 access token (JWT or introspected opaque token).
    OAuth,
    /// A personal API token sent as Basic credentials.
    PersonalApiToken,
    /// A service-account API key sent as a Bearer token.
    ServiceAccountKey,
}

impl AuthMethod {
    /// A short, stable name (`oauth`, `personal_api_token`, `service_account_key`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::PersonalApiToken => "personal_api_token",
            Self::ServiceAccountKey => "service_account_key",
        }
    }

    /// Whether this is one of the API-token methods that an organization's admin must enable.
    #[must_use]
    pub fn is_api_token(self) -> bool {
        matches!(self, Self::PersonalApiToken | Self::ServiceAccountKey)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified identity behind a request.
///
/// A `Principal` in the request extensions is the proof that a validator checked the credential. It has no
/// public fields, no `Default`, no `Deserialize`; it is cheap to clone (one reference count), so a validator can
/// keep it in a cache and hand out copies.
///
/// # Security
/// Only validators should build one, through [`PrincipalBuilder::verified`], after checking the credential. The
/// layers after validation trust what it says and fail closed when it is missing.
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    method: AuthMethod,
    subject: Box<str>,
    issuer: Option<Box<str>>,
    client_id: Option<Box<str>>,
    organization: Option<OrgId>,
    scopes: ScopeList,
    site_grants: Option<Arc<[SiteId]>>,
    /// The same grants as sites, built once: every request of the principal puts them on the request.
    granted_sites: Option<AccessibleSites>,
    expires_at: Option<SystemTime>,
}

impl Principal {
    /// Starts building a principal for a validator. See [`PrincipalBuilder::verified`].
    pub fn builder(method: AuthMethod, subject: impl Into<Box<str>>) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                method,
                subject: subject.into(),
                issuer: None,
                client_id: None,
                organization: None,
                scopes: ScopeList::default(),
                site_grants: None,
                granted_sites: None,
                expires_at: None,
            },
        }
    }

    /// How the principal authenticated.
    #[must_use]
    pub fn method(&self) -> AuthMethod {
        self.0.method
    }

    /// The account or service-account id (`sub` for OAuth tokens).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The token issuer, for OAuth tokens.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// The OAuth client the token was issued to.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The organization the principal belongs to, where the credential says so.
    #[must_use]
    pub fn organization(&self) -> Option<&OrgId> {
        self.0.organization.as_ref()
    }

    /// The scopes granted to the credential.
    #[must_use]
    pub fn scopes(&self) -> &ScopeList {
        &self.0.scopes
    }

    /// The sites the credential was granted for, when the credential itself says so; `None` when the grants must
    /// be looked up elsewhere. An empty list grants nothing.
    #[must_use]
    pub fn site_grants(&self) -> Option<&[SiteId]> {
        self.0.site_grants.as_deref()
    }

    /// The same grants as [`AccessibleSites`] (sites known by id only), built once per principal: cloning it is
    /// a reference count.
    #[must_use]
    pub fn granted_sites(&self) -> Option<&AccessibleSites> {
        self.0.granted_sites.as_ref()
    }

    /// When the credential stops being valid.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("method", &self.0.method)
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("client_id", &self.0.client_id)
            .field("organization", &self.0.organization)
            .field("scopes", &self.0.scopes)
            .field("site_grants", &self.0.site_grants)
            .field("expires_at", &self.0.expires_at)
            .finish()
    }
}

/// Builds a [`Principal`]; for validators.
#[must_use]
pub struct PrincipalBuilder {
    inner: Inner,
}

impl PrincipalBuilder {
    /// The issuer that signed or vouched for the credential.
    pub fn with_issuer(mut self, issuer: impl Into<Box<str>>) -> Self {
        self.inner.issuer = Some(issuer.into());
        self
    }

    /// The OAuth client the token was issued to.
    pub fn with_client_id(mut self, client_id: impl Into<Box<str>>) -> Self {
        self.inner.client_id = Some(client_id.into());
        self
    }

    /// The organization the principal belongs to.
    pub fn with_organization(mut self, organization: OrgId) -> Self {
        self.inner.organization = Some(organization);
        self
    }

    /// The granted scopes.
    pub fn with_scopes(mut self, scopes: ScopeList) -> Self {
        self.inner.scopes = scopes;
        self
    }

    /// The sites the credential was granted for.
    pub fn with_site_grants(mut self, sites: impl IntoIterator<Item = SiteId>) -> Self {
        let ids: Arc<[SiteId]> = sites.into_iter().collect();
        let sites: Arc<[Site]> = ids.iter().cloned().map(Site::new).collect();
        self.inner.granted_sites = Some(AccessibleSites::new(sites));
        self.inner.site_grants = Some(ids);
        self
    }

    /// When the credential stops being valid.
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.inner.expires_at = Some(expires_at);
        self
    }

    /// Finishes the principal.
    ///
    /// # Security
    /// Calling this asserts that the credential was verified: signature, issuer, audience and lifetime for
    /// tokens; the stored digest for API tokens. Only a validator may call it.
    pub fn verified(self) -> Principal {
        Principal(Arc::new(self.inner))
    }
}

impl fmt::Debug for PrincipalBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrincipalBuilder")
            .field("method", &self.inner.method)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_every_field() {
        let site = SiteId::parse("site-1").expect("valid");
        let principal = Principal::builder(AuthMethod::OAuth, "user-1")
            .with_issuer("https://issuer.example")
            .with_client_id("client")
            .with_organization(OrgId::new("org-1").expect("valid"))
            .with_scopes(ScopeList::parse("read write").expect("valid"))
            .with_site_grants([site.clone()])
            .verified();
        assert_eq!(principal.method(), AuthMethod::OAuth);
        assert_eq!(principal.subject(), "user-1");
        assert_eq!(principal.issuer(), Some("https://issuer.example"));
        assert_eq!(principal.client_id(), Some("client"));
        assert_eq!(principal.organization().map(OrgId::as_str), Some("org-1"));
        assert!(principal.scopes().contains("write"));
        assert_eq!(principal.site_grants(), Some(&[site][..]));
        assert!(AuthMethod::ServiceAccountKey.is_api_token());
        assert!(!AuthMethod::OAuth.is_api_token());
    }
}
