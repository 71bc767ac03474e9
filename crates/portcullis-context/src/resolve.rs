//! Where user profiles and site products come from.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use portcullis_core::{
    AuthMethod, ConfigError, Credential, Principal, Product, Secret, Site, SiteId, UserProfile,
};
use portcullis_lookup::{ConfigureHttpSource, HttpSource};
use serde::Deserialize;

/// A boxed future, as [`ResolveContext`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The directory could not answer. Not cached; with nothing cached the request gets 503.
#[derive(Debug, thiserror::Error)]
#[error("the user directory is unavailable")]
pub struct ContextError(());

impl ContextError {
    /// A lookup failure.
    #[must_use]
    pub fn unavailable() -> Self {
        Self(())
    }
}

/// What the application learns about a principal on a site.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextParts {
    /// The user.
    pub user: UserProfile,
    /// The products on the site that the user can use (empty without a site).
    pub products: Vec<Product>,
}

impl ContextParts {
    /// A user and their products.
    #[must_use]
    pub fn new(user: UserProfile, products: Vec<Product>) -> Self {
        Self { user, products }
    }
}

/// What a context lookup is about.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ContextQuery<'a> {
    /// The verified principal.
    pub principal: &'a Principal,
    /// The bound site, if any.
    pub site: Option<&'a Site>,
    /// The credential the principal was verified from, for sources that ask the issuer on the user's behalf
    /// (OIDC `userinfo`). Never forwarded anywhere else.
    pub credential: Option<&'a Credential>,
}

impl<'a> ContextQuery<'a> {
    /// A query for `principal` on `site`.
    #[must_use]
    pub fn new(principal: &'a Principal, site: Option<&'a Site>) -> Self {
        Self {
            principal,
            site,
            credential: None,
        }
    }

    /// With the credential the principal was verified from.
    #[must_use]
    pub fn with_credential(mut self, credential: Option<&'a Credential>) -> Self {
        self.credential = credential;
        self
    }
}

/// Looks up the user behind a principal and the products they can use on a site.
pub trait ResolveContext: fmt::Debug + Send + Sync + 'static {
    /// The context of the query's principal on its site (or with no site).
    fn context<'a>(
        &'a self,
        query: ContextQuery<'a>,
    ) -> BoxFuture<'a, Result<ContextParts, ContextError>>;
}

/// Users and products from TOML. A user not in the file gets a profile with only the account id.
///
/// ```toml
/// [user."acc-ada"]
/// email = "ada@example.com"
/// display_name = "Ada"
/// locale = "en-GB"
/// time_zone = "Europe/London"
///
/// [[product]]
/// site = "site-a"
/// key = "jira"
/// url = "https://acme.example.net/jira"
/// users = ["acc-ada"]   # optional: without it, everyone on the site
/// ```
#[derive(Clone, Debug)]
pub struct StaticContext {
    users: HashMap<String, UserRow>,
    products: Vec<(SiteId, ProductRow)>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRow {
    email: Option<String>,
    display_name: Option<String>,
    locale: Option<String>,
    time_zone: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductRow {
    site: String,
    key: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    users: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    #[serde(default)]
    user: HashMap<String, UserRow>,
    #[serde(default)]
    product: Vec<ProductRow>,
}

impl StaticContext {
    /// Reads users and products from a TOML file.
    ///
    /// # Errors
    /// An unreadable file, or what [`StaticContext::from_toml`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| {
            ConfigError::new("context", format!("cannot read the context file: {e}"))
        })?;
        Self::from_toml(&text)
    }

    /// Parses users and products from TOML text.
    ///
    /// # Errors
    /// Malformed TOML, unknown keys, a malformed site id, or an empty product key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: ContextFile = toml::from_str(text)
            .map_err(|e| ConfigError::new("context", format!("invalid TOML: {}", e.message())))?;
        let products = file
            .product
            .into_iter()
            .map(|row| {
                if row.key.is_empty() {
                    return Err(ConfigError::new(
                        "context",
                        "a product key must not be empty",
                    ));
                }
                Ok((SiteId::parse(&row.site)?, row))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            users: file.user,
            products,
        })
    }
}

impl ResolveContext for StaticContext {
    fn context<'a>(
        &'a self,
        query: ContextQuery<'a>,
    ) -> BoxFuture<'a, Result<ContextParts, ContextError>> {
        let (principal, site) = (query.principal, query.site);
        let account = principal.subject();
        let row = self.users.get(account).cloned().unwrap_or_default();
        let mut user = UserProfile::new(account);
        user.email = row.email;
        user.display_name = row.display_name;
        user.locale = row.locale;
        user.time_zone = row.time_zone;
        let products = site
            .map(|site| {
                self.products
                    .iter()
                    .filter(|(id, row)| {
                        id == site.id()
                            && row
                                .users
                                .as_ref()
                                .is_none_or(|users| users.iter().any(|u| u == account))
                    })
                    .map(|(_, row)| {
                        let mut product = Product::new(row.key.clone());
                        product.url = row.url.clone();
                        product
                    })
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(async move { Ok(ContextParts::new(user, products)) })
    }
}

/// Where [`HttpContext`] reads the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileSource {
    /// The operator's user-profile endpoint.
    Directory,
    /// The issuer's OIDC `userinfo` endpoint, asked with the user's own access token.
    UserInfo,
}

/// Users and products over HTTP:
///
/// - the user from the operator's directory, `GET <profile endpoint>?account_id=<subject>`, answering
///   `{"account_id": "...", "email": "...", "display_name": "...", "locale": "...", "time_zone": "..."}`; or from
///   the issuer's OIDC `userinfo` endpoint ([`HttpContext::userinfo`]), asked with the user's access token
///   (OpenID Connect Core section 5.3: `sub`, `email`, `name`, `locale`, `zoneinfo`; the answer's `sub` must be
///   the principal's);
/// - `GET <products endpoint>?site=<site id>&account_id=<subject>` answers `[{"key": "jira", "url": "..."}]`
///   (asked only when the request is bound to a site).
///
/// Any non-2xx, slow or malformed answer is a [`ContextError`].
#[derive(Clone, Debug)]
pub struct HttpContext {
    profile: ProfileSource,
    /// The profile (or `userinfo`) endpoint, with the service's credential and the fetcher.
    profiles: HttpSource,
    /// Asked with the same credential and fetcher.
    products: Option<HttpSource>,
}

#[derive(Deserialize)]
struct ProfileAnswer {
    account_id: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    locale: Option<String>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
struct UserInfoAnswer {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    zoneinfo: Option<String>,
}

#[derive(Deserialize)]
struct ProductAnswer {
    key: String,
    #[serde(default)]
    url: Option<String>,
}

impl HttpContext {
    /// Profiles from `profile_endpoint`.
    ///
    /// # Errors
    /// An endpoint that is not `https` (or `http` on loopback) or has a query, or an HTTP client that cannot be
    /// set up.
    pub fn new(profile_endpoint: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            profile: ProfileSource::Directory,
            profiles: HttpSource::get("profile_endpoint", profile_endpoint)?,
            products: None,
        })
    }

    /// The user from the issuer's OIDC `userinfo` endpoint, asked with the request's own bearer token (the token
    /// goes back to its issuer, never to an upstream). Principals without an OAuth bearer token (API tokens) get a
    /// profile with their account id only.
    ///
    /// # Errors
    /// As [`HttpContext::new`].
    pub fn userinfo(userinfo_endpoint: &str) -> Result<Self, ConfigError> {
        let mut context = Self::new(userinfo_endpoint)?;
        context.profile = ProfileSource::UserInfo;
        Ok(context)
    }

    /// Products from `products_endpoint`.
    ///
    /// # Errors
    /// As [`HttpContext::new`].
    pub fn with_products(mut self, products_endpoint: &str) -> Result<Self, ConfigError> {
        self.products = Some(
            self.profiles
                .get_at("products_endpoint", products_endpoint)?,
        );
        Ok(self)
    }

    async fn fetch(&self, query: ContextQuery<'_>) -> Result<ContextParts, ContextError> {
        let (principal, site) = (query.principal, query.site);
        let fail = |err: portcullis_lookup::FetchError| {
            tracing::warn!(target: "portcullis::context", error = %err, "context lookup failed");
            ContextError::unavailable()
        };
        let user = match self.profile {
            ProfileSource::Directory => {
                let profile = self
                    .profiles
                    .get_json::<ProfileAnswer>(&[("account_id", principal.subject())])
                    .await
                    .map_err(fail)?
                    .value;
                let mut user = UserProfile::new(
                    profile
                        .account_id
                        .unwrap_or_else(|| principal.subject().to_owned()),
                );
                user.email = profile.email;
                user.display_name = profile.display_name;
                user.locale = profile.locale;
                user.time_zone = profile.time_zone;
                user
            }
            ProfileSource::UserInfo => match (principal.method(), query.credential) {
                (AuthMethod::OAuth, Some(Credential::Bearer(token))) => {
                    let bearer = Secret::new(format!("Bearer {}", token.secret().expose_secret()));
                    let info = self
                        .profiles
                        .get_json_as::<UserInfoAnswer>(&[], &bearer)
                        .await
                        .map_err(fail)?
                        .value;
                    // OpenID Connect Core 5.3.2: a userinfo answer for another subject must not be used.
                    if info.sub != principal.subject() {
                        tracing::warn!(target: "portcullis::context", "userinfo answered for another subject");
                        return Err(ContextError::unavailable());
                    }
                    let mut user = UserProfile::new(info.sub);
                    user.email = info.email;
                    user.display_name = info.name;
                    user.locale = info.locale;
                    user.time_zone = info.zoneinfo;
                    user
                }
                _ => UserProfile::new(principal.subject()),
            },
        };
        let mut products = Vec::new();
        if let (Some(source), Some(site)) = (&self.products, site) {
            let params = [
                ("site", site.id().as_str()),
                ("account_id", principal.subject()),
            ];
            let answer = source
                .get_json::<Vec<ProductAnswer>>(&params)
                .await
                .map_err(fail)?
                .value;
            products = answer
                .into_iter()
                .map(|row| {
                    let mut product = Product::new(row.key);
                    product.url = row.url;
                    product
                })
                .collect();
        }
        Ok(ContextParts::new(user, products))
    }
}

impl ConfigureHttpSource for HttpContext {
    fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self {
        Self {
            profiles: f(self.profiles),
            products: self.products.map(&f),
            ..self
        }
    }
}

impl ResolveContext for HttpContext {
    fn context<'a>(
        &'a self,
        query: ContextQuery<'a>,
    ) -> BoxFuture<'a, Result<ContextParts, ContextError>> {
        Box::pin(self.fetch(query))
    }
}
