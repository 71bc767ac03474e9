//! [`HttpSource`]: one remote endpoint that a Portcullis source asks, with the service's own credential.

use std::fmt;

use portcullis_core::{ConfigError, Secret, check_url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{FetchError, Fetched, HttpFetcher};

/// An operator's HTTP endpoint that a source asks (policies, grants, API-token verification, user profiles): the
/// URL, the service's own optional bearer token, and the [`HttpFetcher`] (timeouts, size cap, no redirects).
///
/// The sources built on it (`HttpPolicies`, `HttpGrants`, `HttpTokenVerifier`, `HttpContext`) keep only what is
/// really theirs: which parameters they send and how they read the answer.
///
/// # Security
/// - The URL is checked when the source is built ([`check_url`]: `https`, or `http` on loopback; no user info, no
///   fragment).
/// - The bearer token is the service's own, never a user's; `Debug` shows the endpoint and redacts the token.
#[derive(Clone)]
pub struct HttpSource {
    endpoint: String,
    authorization: Option<Secret>,
    fetcher: HttpFetcher,
}

impl HttpSource {
    /// An endpoint asked with `GET` and the parameters of each lookup in its query: it must not have a query of
    /// its own. `setting` names the configuration key in errors.
    ///
    /// # Errors
    /// An endpoint that [`check_url`] refuses or that has a query, or an HTTP client that cannot be set up.
    pub fn get(setting: &'static str, endpoint: &str) -> Result<Self, ConfigError> {
        check_get_endpoint(setting, endpoint)?;
        Self::checked(setting, endpoint)
    }

    /// An endpoint asked with `POST` and a JSON body. `setting` names the configuration key in errors.
    ///
    /// # Errors
    /// An endpoint that [`check_url`] refuses, or an HTTP client that cannot be set up.
    pub fn post(setting: &'static str, endpoint: &str) -> Result<Self, ConfigError> {
        check_url(setting, endpoint)?;
        Self::checked(setting, endpoint)
    }

    fn checked(setting: &'static str, endpoint: &str) -> Result<Self, ConfigError> {
        let fetcher = HttpFetcher::new()
            .map_err(|_| ConfigError::new(setting, "cannot set up the HTTP client"))?;
        Ok(Self {
            endpoint: endpoint.to_owned(),
            authorization: None,
            fetcher,
        })
    }

    /// Another `GET` endpoint asked with this one's credential and fetcher (a source that asks two endpoints).
    ///
    /// # Errors
    /// As [`HttpSource::get`].
    pub fn get_at(&self, setting: &'static str, endpoint: &str) -> Result<Self, ConfigError> {
        check_get_endpoint(setting, endpoint)?;
        Ok(Self {
            endpoint: endpoint.to_owned(),
            ..self.clone()
        })
    }

    /// Authenticates to the endpoint with `Authorization: Bearer <token>` (the service's own token).
    #[must_use]
    pub fn with_bearer(mut self, token: &Secret) -> Self {
        self.authorization = Some(Secret::new(format!("Bearer {}", token.expose_secret())));
        self
    }

    /// Uses this fetcher (timeouts, size cap) instead of the default one.
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: HttpFetcher) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// `GET <endpoint>?<params>` with the source's credential, decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        params: &[(&str, &str)],
    ) -> Result<Fetched<T>, FetchError> {
        let authorization = self.authorization.as_ref().map(Secret::expose_secret);
        self.fetcher
            .get_json_with(&self.url(params), authorization)
            .await
    }

    /// `GET <endpoint>?<params>` with another `Authorization` header value instead of the source's credential
    /// (the user's own token, for an OIDC `userinfo` endpoint), decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get_json_as<T: DeserializeOwned>(
        &self,
        params: &[(&str, &str)],
        authorization: &Secret,
    ) -> Result<Fetched<T>, FetchError> {
        self.fetcher
            .get_json_with(&self.url(params), Some(authorization.expose_secret()))
            .await
    }

    /// `POST <endpoint>` with a JSON body and the source's credential, decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        body: &B,
    ) -> Result<Fetched<T>, FetchError> {
        let authorization = self.authorization.as_ref().map(Secret::expose_secret);
        self.fetcher
            .post_json(&self.endpoint, authorization, body)
            .await
    }

    fn url(&self, params: &[(&str, &str)]) -> String {
        if params.is_empty() {
            return self.endpoint.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let joint = if self.endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{joint}{query}", self.endpoint)
    }
}

/// The builder methods of every source built on [`HttpSource`] (`HttpPolicies`, `HttpGrants`,
/// `HttpTokenVerifier`, `HttpContext`), written once: a source says how to reach its endpoints, and gets
/// [`with_bearer`](Self::with_bearer) and [`with_fetcher`](Self::with_fetcher).
///
/// # Example
/// ```
/// use portcullis_core::Secret;
/// use portcullis_lookup::{ConfigureHttpSource, HttpSource};
///
/// #[derive(Debug)]
/// struct Directory {
///     source: HttpSource,
/// }
///
/// impl ConfigureHttpSource for Directory {
///     fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self {
///         Self { source: f(self.source) }
///     }
/// }
///
/// let source = HttpSource::get("directory_endpoint", "https://dir.example/users")?;
/// let directory = Directory { source }.with_bearer(Secret::new("svc-token"));
/// assert!(!format!("{directory:?}").contains("svc-token"));
/// # Ok::<(), portcullis_core::ConfigError>(())
/// ```
pub trait ConfigureHttpSource: Sized {
    /// Applies `f` to each endpoint the source asks.
    #[must_use]
    fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self;

    /// Authenticates to the endpoints with `Authorization: Bearer <token>` (the service's own token, never a
    /// user's).
    #[must_use]
    fn with_bearer(self, token: Secret) -> Self {
        self.map_sources(|source| source.with_bearer(&token))
    }

    /// Uses this fetcher (timeouts, size cap) instead of the default one.
    #[must_use]
    fn with_fetcher(self, fetcher: HttpFetcher) -> Self {
        self.map_sources(|source| source.with_fetcher(fetcher.clone()))
    }
}

/// A `GET` endpoint: a URL [`check_url`] accepts, without a query of its own.
fn check_get_endpoint(setting: &'static str, endpoint: &str) -> Result<(), ConfigError> {
    if check_url(setting, endpoint)?.query().is_some() {
        return Err(ConfigError::new(setting, "must not have a query"));
    }
    Ok(())
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSource")
            .field("endpoint", &self.endpoint)
            .field("authorization", &self.authorization)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_endpoints_refuse_a_query_and_post_endpoints_keep_it() {
        let err =
            HttpSource::get("policy_endpoint", "https://admin.example/p?x=1").expect_err("query");
        assert_eq!(err.setting(), "policy_endpoint");
        assert_eq!(err.problem(), "must not have a query");
        let err = HttpSource::get("grants_endpoint", "http://admin.example/g").expect_err("http");
        assert_eq!(err.setting(), "grants_endpoint");
        let post = HttpSource::post("api_token_verifier", "https://id.example/v?version=2")
            .expect("a query is the endpoint's own");
        assert_eq!(post.endpoint, "https://id.example/v?version=2");
        let source = HttpSource::get("profile_endpoint", "https://dir.example/p").expect("valid");
        let other = source
            .get_at("products_endpoint", "https://dir.example/q?")
            .expect_err("query");
        assert_eq!(other.setting(), "products_endpoint");
    }

    #[test]
    fn parameters_are_form_encoded_into_the_query() {
        let source =
            HttpSource::get("grants_endpoint", "https://dir.example/grants").expect("valid");
        assert_eq!(source.url(&[]), "https://dir.example/grants");
        assert_eq!(
            source.url(&[("subject", "a b&c=d"), ("site", "é")]),
            "https://dir.example/grants?subject=a+b%26c%3Dd&site=%C3%A9"
        );
        let post = HttpSource::post("api_token_verifier", "https://id.example/v?version=2")
            .expect("valid");
        assert_eq!(
            post.url(&[("a", "1")]),
            "https://id.example/v?version=2&a=1"
        );
    }

    #[test]
    fn debug_redacts_the_bearer_token() {
        let source = HttpSource::get("policy_endpoint", "https://admin.example/p")
            .expect("valid")
            .with_bearer(&Secret::new("svc-token-123"));
        let shown = format!("{source:?}");
        assert!(shown.contains("https://admin.example/p"), "{shown}");
        assert!(!shown.contains("svc-token-123"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        // The products endpoint of a two-endpoint source shares the credential.
        let other = source
            .get_at("products_endpoint", "https://admin.example/q")
            .expect("valid");
        assert_eq!(
            other.authorization.as_ref().map(Secret::expose_secret),
            Some("Bearer svc-token-123")
        );
    }
}
