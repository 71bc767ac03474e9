//! What a client presented: a Bearer token or a Basic personal API token.

use std::fmt;

use crate::Secret;

/// A credential read from the `Authorization` header by the extraction layer.
///
/// It says what was *presented*, not what was *proven*: only a validator turns it into a [`Principal`].
///
/// [`Principal`]: crate::Principal
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// `Authorization: Bearer <token>`: an OAuth 2.1 access token or a service-account API key.
    Bearer(BearerToken),
    /// `Authorization: Basic base64(email:token)`: a personal API token.
    Basic(BasicCredential),
}

impl Credential {
    /// The kind of credential, safe to log.
    #[must_use]
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Bearer(token) => match token.shape() {
                TokenShape::Jwt => CredentialKind::Jwt,
                TokenShape::ServiceAccountKey => CredentialKind::ServiceAccountKey,
                TokenShape::Opaque => CredentialKind::Opaque,
            },
            Self::Basic(_) => CredentialKind::Basic,
        }
    }
}

/// The kind of a [`Credential`]: what a log line or a metric may say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A Bearer token shaped like a JWT.
    Jwt,
    /// A Bearer token that carries the service-account key prefix.
    ServiceAccountKey,
    /// Any other Bearer token.
    Opaque,
    /// A Basic personal API token.
    Basic,
}

impl CredentialKind {
    /// A short, stable name (`jwt`, `service_account_key`, `opaque`, `basic`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ServiceAccountKey => "service_account_key",
            Self::Opaque => "opaque",
            Self::Basic => "basic",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a Bearer token looks, which decides how it is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenShape {
    /// Three base64url segments separated by dots (JWS compact serialisation).
    Jwt,
    /// Starts with the configured service-account key prefix.
    ServiceAccountKey,
    /// Anything else: validated by introspection.
    Opaque,
}

impl TokenShape {
    /// Classifies a token.
    ///
    /// The service-account prefix wins over the JWT shape, so a key is never sent to a JWT validator. The shape
    /// is a routing hint only: every shape is fully validated later.
    #[must_use]
    pub fn classify(token: &str, service_account_prefix: Option<&str>) -> Self {
        if service_account_prefix
            .is_some_and(|prefix| !prefix.is_empty() && token.starts_with(prefix))
        {
            return Self::ServiceAccountKey;
        }
        if is_jws_compact(token) {
            Self::Jwt
        } else {
            Self::Opaque
        }
    }
}

fn is_jws_compact(token: &str) -> bool {
    let is_b64url = |segment: &str| {
        segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut segments = token.split('.');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(header), Some(payload), Some(signature), None) => {
            !header.is_empty()
                && !payload.is_empty()
                && is_b64url(header)
                && is_b64url(payload)
                && is_b64url(signature)
        }
        _ => false,
    }
}

/// A Bearer token and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerToken {
    token: Secret,
    shape: TokenShape,
}

impl BearerToken {
    /// A Bearer token of the given shape.
    #[must_use]
    pub fn new(token: Secret, shape: TokenShape) -> Self {
        Self { token, shape }
    }

    /// The token itself.
    #[must_use]
    pub fn secret(&self) -> &Secret {
        &self.token
    }

    /// How the token looks.
    #[must_use]
    pub fn shape(&self) -> TokenShape {
        self.shape
    }
}

/// A personal API token sent as `Basic base64(email:token)`.
///
/// # Security
/// `Debug` redacts both the email and the token: the decoded Basic credentials never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredential {
    email: String,
    token: Secret,
}

impl BasicCredential {
    /// A personal API token for an account email.
    #[must_use]
    pub fn new(email: impl Into<String>, token: Secret) -> Self {
        Self {
            email: email.into(),
            token,
        }
    }

    /// The account email, as sent. Personal data: do not log it.
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The API token.
    #[must_use]
    pub fn token(&self) -> &Secret {
        &self.token
    }
}

impl fmt::Debug for BasicCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredential")
            .field("email", &"[redacted]")
            .field("token", &self.token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_token_shapes() {
        let cases = [
            (
                "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
                None,
                TokenShape::Jwt,
            ),
            (
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
                None,
                TokenShape::Jwt,
            ),
            ("a.b", None, TokenShape::Opaque),
            ("a.b.c.d.e", None, TokenShape::Opaque),
            (".b.c", None, TokenShape::Opaque),
            ("a+b.c.d", None, TokenShape::Opaque),
            ("opaque-token_123", None, TokenShape::Opaque),
            (
                "pcsa_abc.def.ghi",
                Some("pcsa_"),
                TokenShape::ServiceAccountKey,
            ),
            ("pcsa_abc", Some("pcsa_"), TokenShape::ServiceAccountKey),
            ("xpcsa_abc", Some("pcsa_"), TokenShape::Opaque),
            ("anything", Some(""), TokenShape::Opaque),
        ];
        for (token, prefix, expected) in cases {
            assert_eq!(TokenShape::classify(token, prefix), expected, "{token}");
        }
    }

    #[test]
    fn basic_credential_debug_redacts_email_and_token() {
        let credential = BasicCredential::new("ada@example.com", Secret::new("tok-123"));
        let shown = format!("{credential:?}");
        assert!(!shown.contains("ada@"), "{shown}");
        assert!(!shown.contains("tok-123"), "{shown}");
        assert_eq!(Credential::Basic(credential).kind(), CredentialKind::Basic);
    }
}
