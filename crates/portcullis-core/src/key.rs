//! [`PrincipalKey`]: who a principal is, as every cache keyed by principal holds it.

use std::hash::{Hash, Hasher};

use equivalent::Equivalent;

use crate::{AuthMethod, Principal};

/// Who a principal is, for caches and bindings keyed by principal (site grants, contexts, MCP sessions): how it
/// authenticated, its issuer and its subject. Two principals with the same key are the same caller; a subject
/// alone is not enough (two issuers, or an API token and an OAuth token, may use the same subject).
///
/// Build the borrowed form once per request with [`Principal::key`], look up with it (it allocates nothing), and
/// make an owned key with [`PrincipalKeyRef::into_owned`] only to insert. A [`PrincipalKeyRef`] hashes exactly as
/// the owned key does and is [`Equivalent`] to it, so it finds the owned entry in a hash map or cache.
///
/// # Example
/// ```
/// use portcullis_core::{AuthMethod, Principal};
///
/// let ada = Principal::builder(AuthMethod::OAuth, "acc-ada").with_issuer("https://auth.example").verified();
/// let key = ada.key().into_owned();
/// assert!(key.is(&ada));
/// let other = Principal::builder(AuthMethod::OAuth, "acc-ada").with_issuer("https://evil.example").verified();
/// assert!(!key.is(&other));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalKey {
    method: AuthMethod,
    issuer: Option<Box<str>>,
    subject: Box<str>,
}

/// A [`PrincipalKey`] borrowed from a [`Principal`]; see there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrincipalKeyRef<'a> {
    method: AuthMethod,
    issuer: Option<&'a str>,
    subject: &'a str,
}

impl Principal {
    /// This principal's key, borrowed. See [`PrincipalKey`].
    #[must_use]
    pub fn key(&self) -> PrincipalKeyRef<'_> {
        PrincipalKeyRef {
            method: self.method(),
            issuer: self.issuer(),
            subject: self.subject(),
        }
    }
}

impl PrincipalKeyRef<'_> {
    /// The owned key, to insert.
    #[must_use]
    pub fn into_owned(self) -> PrincipalKey {
        PrincipalKey {
            method: self.method,
            issuer: self.issuer.map(Box::from),
            subject: self.subject.into(),
        }
    }

    /// Whether `key` is this principal's key.
    #[must_use]
    pub fn matches(&self, key: &PrincipalKey) -> bool {
        *self == key.borrowed()
    }

    /// The key as one string, the same for this caller on every request, replica and restart, and different for
    /// every other caller: `<method>:<issuer>:<subject>`, with `%` and `:` in the issuer and subject
    /// percent-encoded (an absent issuer is empty, an empty one `%`).
    ///
    /// MCP 2026-07-28 servers that keep state across calls hand out handles as tool arguments, and the security
    /// best practices ask to bind each handle to its user (`<user_id>:<handle>`) and never to treat a handle as
    /// authentication. Use this as the user part: store the handle under `binding_id()` and look it up with the
    /// current request's principal, so that another caller's handle finds nothing.
    ///
    /// ```
    /// use portcullis_core::{AuthMethod, Principal};
    ///
    /// let ada = Principal::builder(AuthMethod::OAuth, "acc:ada").with_issuer("https://auth.example").verified();
    /// assert_eq!(ada.key().binding_id(), "oauth:https%3A//auth.example:acc%3Aada");
    /// ```
    #[must_use]
    pub fn binding_id(&self) -> String {
        use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
        const SEPARATORS: &AsciiSet = &CONTROLS.add(b'%').add(b':');
        let issuer = match self.issuer {
            None => String::new(),
            Some("") => "%".to_owned(),
            Some(issuer) => utf8_percent_encode(issuer, SEPARATORS).to_string(),
        };
        format!(
            "{}:{issuer}:{}",
            self.method.as_str(),
            utf8_percent_encode(self.subject, SEPARATORS)
        )
    }
}

impl PrincipalKey {
    /// The key, borrowed.
    #[must_use]
    pub fn borrowed(&self) -> PrincipalKeyRef<'_> {
        PrincipalKeyRef {
            method: self.method,
            issuer: self.issuer.as_deref(),
            subject: &self.subject,
        }
    }

    /// Whether this is `principal`'s key.
    #[must_use]
    pub fn is(&self, principal: &Principal) -> bool {
        principal.key().matches(self)
    }
}

impl From<PrincipalKeyRef<'_>> for PrincipalKey {
    fn from(key: PrincipalKeyRef<'_>) -> Self {
        key.into_owned()
    }
}

/// As the borrowed key hashes, so that either finds the same entry.
impl Hash for PrincipalKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl Equivalent<PrincipalKey> for PrincipalKeyRef<'_> {
    fn equivalent(&self, key: &PrincipalKey) -> bool {
        self.matches(key)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;

    #[test]
    fn binding_ids_tell_every_caller_apart() {
        let ids = [
            principal(AuthMethod::OAuth, Some("https://a.example"), "ada"),
            principal(AuthMethod::OAuth, Some("https://a.example:ada"), ""),
            principal(AuthMethod::OAuth, Some("https://a.example"), "ada:"),
            principal(AuthMethod::OAuth, Some("https://b.example"), "ada"),
            principal(AuthMethod::OAuth, None, "ada"),
            principal(AuthMethod::OAuth, Some(""), "ada"),
            principal(AuthMethod::PersonalApiToken, None, "ada"),
            principal(AuthMethod::ServiceAccountKey, None, "ada"),
            principal(AuthMethod::OAuth, Some("https://a.example"), "ad%3Aa"),
        ]
        .map(|p| p.key().binding_id());
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let again = principal(AuthMethod::OAuth, Some("https://a.example"), "ada");
        assert_eq!(again.key().binding_id(), ids[0]);
        assert_eq!(again.key().into_owned().borrowed().binding_id(), ids[0]);
    }

    fn principal(method: AuthMethod, issuer: Option<&str>, subject: &str) -> Principal {
        let builder = Principal::builder(method, subject);
        match issuer {
            Some(issuer) => builder.with_issuer(issuer).verified(),
            None => builder.verified(),
        }
    }

    /// The borrowed key finds exactly the owned key of the same principal, and hashes the same.
    #[test]
    fn borrowed_keys_match_owned_keys_exactly() {
        let principals = [
            principal(AuthMethod::OAuth, Some("https://a.example"), "u1"),
            principal(AuthMethod::OAuth, Some("https://b.example"), "u1"),
            principal(AuthMethod::OAuth, None, "u1"),
            principal(AuthMethod::OAuth, Some("https://a.example"), "u2"),
            principal(
                AuthMethod::PersonalApiToken,
                Some("https://a.example"),
                "u1",
            ),
            principal(AuthMethod::ServiceAccountKey, None, "u1"),
            // Field boundaries: the same characters split differently are different keys.
            principal(AuthMethod::OAuth, Some("https://a.example\0u"), "1"),
            principal(AuthMethod::OAuth, Some(""), "u1"),
        ];
        let hasher = RandomState::new();
        for (i, p) in principals.iter().enumerate() {
            let owned = p.key().into_owned();
            assert!(owned.is(p));
            assert_eq!(hasher.hash_one(p.key()), hasher.hash_one(&owned));
            for (j, q) in principals.iter().enumerate() {
                assert_eq!(q.key().equivalent(&owned), i == j, "{i} vs {j}");
                assert_eq!(owned.is(q), i == j, "{i} vs {j}");
            }
        }
    }
}
