//! Configuration errors, found when a layer is built rather than at the first request.

use std::borrow::Cow;
use std::fmt;

/// A configuration value was rejected when a layer or its settings were built.
///
/// It names the setting and says what is wrong with it. It never repeats a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: Cow<'static, str>,
}

impl ConfigError {
    /// A problem with the named setting.
    pub fn new(setting: &'static str, problem: impl Into<Cow<'static, str>>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }

    /// The setting that was rejected, e.g. `resource_metadata`.
    #[must_use]
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What is wrong with it.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Checks a URL from configuration that Portcullis will fetch or publish (an issuer, a key set, an endpoint, the
/// resource metadata).
///
/// It must be absolute `https`, or `http` on a loopback host (for development and tests), with no user info and no
/// fragment, and only visible ASCII other than `"` and `\\`, so that it can be quoted in a header as is.
///
/// # Errors
/// A [`ConfigError`] naming `setting` and what is wrong.
pub fn check_url(setting: &'static str, url: &str) -> Result<http::Uri, ConfigError> {
    if url.is_empty()
        || !url
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(ConfigError::new(
            setting,
            "must be a URL of visible ASCII characters other than '\"' and '\\'",
        ));
    }
    if url.contains('#') {
        return Err(ConfigError::new(setting, "must not have a fragment"));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(setting, "is not a valid absolute URL"))?;
    let Some(authority) = uri.authority() else {
        return Err(ConfigError::new(
            setting,
            "must be an absolute URL with a host",
        ));
    };
    if authority.as_str().contains('@') {
        return Err(ConfigError::new(setting, "must not contain user info"));
    }
    let host = authority.host();
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host == "[::1]" || host.starts_with("127.");
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(uri),
        Some(s) if s.eq_ignore_ascii_case("http") && loopback => Ok(uri),
        Some(s) if s.eq_ignore_ascii_case("http") => Err(ConfigError::new(
            setting,
            "must use https (http is accepted on loopback hosts only)",
        )),
        _ => Err(ConfigError::new(setting, "must be an https URL")),
    }
}
