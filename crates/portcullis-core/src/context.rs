//! What the application learns about the caller: the user and the products on the bound site.

use std::sync::Arc;

use crate::{Principal, Site};

/// The user behind a principal, as far as the directory knows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserProfile {
    /// Account id.
    pub account_id: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Locale, e.g. `en-US`.
    pub locale: Option<String>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: Option<String>,
}

impl UserProfile {
    /// A profile with only the account id known.
    #[must_use]
    pub fn new(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            email: None,
            display_name: None,
            locale: None,
            time_zone: None,
        }
    }
}

/// A product on a site that the user can use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Product {
    /// Product key, e.g. `jira`.
    pub key: String,
    /// Where the product is served for this site.
    pub url: Option<String>,
}

impl Product {
    /// A product by key.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            url: None,
        }
    }
}

/// Everything the application needs to know about the caller of this request.
///
/// Inserted into the request extensions by the context layer; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthContext(Arc<ContextInner>);

#[derive(Debug)]
struct ContextInner {
    principal: Principal,
    site: Option<Site>,
    user: Arc<UserProfile>,
    products: Arc<[Product]>,
}

impl AuthContext {
    /// The context for a principal, on a site when the request is bound to one.
    #[must_use]
    pub fn new(
        principal: Principal,
        site: Option<Site>,
        user: UserProfile,
        products: Vec<Product>,
    ) -> Self {
        Self::from_shared(principal, site, Arc::new(user), products.into())
    }

    /// As [`new`](Self::new), with a user and products shared with a cache (no copy per request).
    #[must_use]
    pub fn from_shared(
        principal: Principal,
        site: Option<Site>,
        user: Arc<UserProfile>,
        products: Arc<[Product]>,
    ) -> Self {
        Self(Arc::new(ContextInner {
            principal,
            site,
            user,
            products,
        }))
    }

    /// The verified principal.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.0.principal
    }

    /// The site the request is bound to, if any.
    #[must_use]
    pub fn site(&self) -> Option<&Site> {
        self.0.site.as_ref()
    }

    /// The user.
    #[must_use]
    pub fn user(&self) -> &UserProfile {
        &self.0.user
    }

    /// The products on the site that the user can use.
    #[must_use]
    pub fn products(&self) -> &[Product] {
        &self.0.products
    }
}
