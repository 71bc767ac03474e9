//! A string that must never be shown: tokens, API keys, passwords.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// A secret string, such as an access token or an API token.
///
/// # Security
/// - `Debug` and `Display` print `[redacted]`, never the value, so a secret that ends up in a log line or a
///   formatted error shows nothing.
/// - Equality is decided in constant time for inputs of equal length ([`subtle::ConstantTimeEq`]); only the
///   length can leak through timing.
/// - The memory is not wiped on drop: the same bytes stay in the request's header map and the server's read
///   buffers, which no layer owns, so wiping this one copy would promise more than it gives, and it cost about
///   0.5 us per 1 KB token on every request. Decoded Basic credentials, which exist nowhere else, are wiped.
/// - The value is only reachable through [`Secret::expose_secret`], so every use is easy to find in review.
///
/// Cloning is a reference count: a credential can be handed on (to a context source, a forwarded request)
/// without copying the token.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl AsRef<str>) -> Self {
        Self(Arc::from(value.as_ref()))
    }

    /// Returns the secret value. Never log or echo what this returns.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length of the secret in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.to_string(), "[redacted]");
        assert!(!format!("{secret:#?}").contains("s3cr3t"));
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
        assert_eq!(Secret::new("abc").expose_secret(), "abc");
    }
}
