//! Cloud sites and the organizations that own them.

use std::fmt;
use std::sync::Arc;

use crate::ConfigError;

const MAX_ID_LEN: usize = 128;

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// The id of a cloud site (a `cloudId`).
///
/// # No normalisation
/// A site id is 1 to 128 characters of ASCII letters, digits, `-`, `_` and `.`, kept exactly as written: two ids
/// are the same site only when they are equal byte for byte (`3F2A-...` and `3f2a-...` are two sites). A request is
/// forwarded as it was sent, so the id checked against a grant is exactly the one the upstream reads; folding case
/// before the comparison would let an upstream act on a spelling that was never checked.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(Arc<str>);

impl SiteId {
    /// Parses a site id, kept exactly as written.
    ///
    /// # Errors
    /// An empty or overlong id, or one with a character outside the set above.
    pub fn parse(id: &str) -> Result<Self, InvalidId> {
        validate_id(id)?;
        Ok(Self(id.into()))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteId({})", self.0)
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of an organization, the owner of sites and the unit of admin policy.
///
/// Same character set as [`SiteId`], and likewise kept exactly as written.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(Arc<str>);

impl OrgId {
    /// Parses an organization id, kept exactly as written.
    ///
    /// # Errors
    /// As [`SiteId::parse`].
    pub fn new(id: &str) -> Result<Self, InvalidId> {
        validate_id(id)?;
        Ok(Self(id.into()))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_id(id: &str) -> Result<(), InvalidId> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(is_id_byte) {
        return Err(InvalidId(()));
    }
    Ok(())
}

/// A site or organization id was malformed. It does not repeat the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an id must be 1 to 128 ASCII letters, digits, '-', '_' or '.'")]
pub struct InvalidId(());

impl From<InvalidId> for ConfigError {
    fn from(err: InvalidId) -> Self {
        ConfigError::new("id", err.to_string())
    }
}

/// A cloud site: its id, its URL, and the organization that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    id: SiteId,
    url: Option<Arc<str>>,
    organization: Option<OrgId>,
}

impl Site {
    /// A site known only by its id.
    #[must_use]
    pub fn new(id: SiteId) -> Self {
        Self {
            id,
            url: None,
            organization: None,
        }
    }

    /// The site's URL, e.g. `https://acme.example.net`.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<Arc<str>>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The organization that owns the site.
    #[must_use]
    pub fn with_organization(mut self, organization: OrgId) -> Self {
        self.organization = Some(organization);
        self
    }

    /// The site id.
    #[must_use]
    pub fn id(&self) -> &SiteId {
        &self.id
    }

    /// The site's URL, where known.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The organization that owns the site, where known.
    #[must_use]
    pub fn organization(&self) -> Option<&OrgId> {
        self.organization.as_ref()
    }
}

/// The sites the principal may use, inserted into the request extensions by the site layer so that the
/// application (say, a tool that lists accessible sites) needs no second lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessibleSites(Arc<[Site]>);

impl AccessibleSites {
    /// The given sites.
    #[must_use]
    pub fn new(sites: impl Into<Arc<[Site]>>) -> Self {
        Self(sites.into())
    }

    /// The sites.
    #[must_use]
    pub fn sites(&self) -> &[Site] {
        &self.0
    }

    /// Whether the principal may use the site with this id.
    #[must_use]
    pub fn contains(&self, id: &SiteId) -> bool {
        self.0.iter().any(|site| site.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_exactly_and_validated() {
        let upper = SiteId::parse("3F2A-11aa").expect("valid");
        assert_ne!(upper, SiteId::parse("3f2a-11aa").expect("valid"));
        assert_eq!(upper.as_str(), "3F2A-11aa");
        let org = OrgId::new("Org-Acme").expect("valid");
        assert_ne!(org, OrgId::new("org-acme").expect("valid"));
        assert_eq!(org.as_str(), "Org-Acme");
        let too_long = "a".repeat(129);
        for bad in ["", " a", "a b", "a/b", "é", "a%2e", too_long.as_str()] {
            assert!(SiteId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!InvalidId(()).to_string().contains('%'));
    }
}
