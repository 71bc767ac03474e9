//! OAuth scopes (RFC 6749 section 3.3).

use std::fmt;
use std::sync::Arc;

use crate::ConfigError;

/// A validated, space-delimited list of OAuth scope tokens.
///
/// Every token is checked against the RFC 6749 `scope-token` grammar, so the list can be placed inside a quoted
/// `scope="..."` parameter of a `WWW-Authenticate` header without escaping. Duplicates are dropped; order is kept.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ScopeList(Arc<str>);

impl ScopeList {
    /// Builds a list from scope tokens.
    ///
    /// # Errors
    /// A token that is empty or has a character outside the `scope-token` grammar (space, `"`, `\`, control or
    /// non-ASCII characters).
    pub fn new<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut joined = String::new();
        for scope in scopes {
            let scope = scope.as_ref();
            if !is_scope_token(scope) {
                return Err(ConfigError::new(
                    "scope",
                    "a scope must be one or more printable ASCII characters other than space, '\"' and '\\'",
                ));
            }
            if joined.split(' ').any(|seen| seen == scope) {
                continue;
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(scope);
        }
        Ok(Self(joined.into()))
    }

    /// Parses a space-delimited list, as found in a `scope` claim.
    ///
    /// # Errors
    /// As [`ScopeList::new`]; runs of spaces are not allowed (RFC 6749 uses single spaces).
    pub fn parse(space_delimited: &str) -> Result<Self, ConfigError> {
        if space_delimited.is_empty() {
            return Ok(Self::default());
        }
        Self::new(space_delimited.split(' '))
    }

    /// The scopes, space-delimited.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Iterates over the scopes.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` is in the list.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list, if it may be asked of clients by this resource: `offline_access` is a request to the
    /// authorization server for a refresh token, not a permission on the resource, so it never appears in
    /// `scopes_supported`, in a challenge or in a scope rule (MCP 2026-07-28).
    ///
    /// # Errors
    /// The list holds `offline_access`; the error names `setting`.
    pub fn for_resource(self, setting: &'static str) -> Result<Self, ConfigError> {
        if self.contains(OFFLINE_ACCESS) {
            return Err(ConfigError::new(
                setting,
                "offline_access is asked of the authorization server, not of this resource: leave it out",
            ));
        }
        Ok(self)
    }
}

/// The scope that asks for a refresh token (OpenID Connect; MCP clients add it themselves).
const OFFLINE_ACCESS: &str = "offline_access";

impl Default for ScopeList {
    /// An empty list.
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl fmt::Debug for ScopeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for ScopeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_scope_tokens_and_drops_duplicates() {
        let list = ScopeList::new(["read:jira", "write:jira", "read:jira"]).expect("valid");
        assert_eq!(list.as_str(), "read:jira write:jira");
        assert!(list.contains("write:jira"));
        assert!(!list.contains("write"));
        assert_eq!(ScopeList::parse("a b").expect("valid").iter().count(), 2);
        assert!(ScopeList::parse("").expect("valid").is_empty());
    }

    #[test]
    fn rejects_characters_that_would_break_a_quoted_header_parameter() {
        for bad in ["", "a b", "a\"b", "a\\b", "a\tb", "é", "a\r\nb"] {
            let err = ScopeList::new([bad]).expect_err(bad);
            assert_eq!(err.setting(), "scope");
        }
        assert!(ScopeList::parse("a  b").is_err());
    }
}
