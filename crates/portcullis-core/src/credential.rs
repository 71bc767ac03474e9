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
    /// is a routing hint only: every shape is fully validated later. A token outside the `b64token` grammar is
    /// [`Opaque`](Self::Opaque) here; [`classify_b64token`](Self::classify_b64token) refuses it instead.
    #[must_use]
    pub fn classify(token: &str, service_account_prefix: Option<&str>) -> Self {
        Self::classify_b64token(token.as_bytes(), service_account_prefix).unwrap_or(Self::Opaque)
    }

    /// Checks the RFC 6750 `b64token` grammar (the same set as RFC 9110 `token68`:
    /// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`) and classifies the token, in one pass.
    /// `None` when the token is not a `b64token`.
    ///
    /// The pass has no early exit and no table lookups, so that it vectorises: tokens are often a kilobyte and
    /// this runs on every request (about 0.25 us for 1 KB on the reference machine).
    #[must_use]
    pub fn classify_b64token(token: &[u8], service_account_prefix: Option<&str>) -> Option<Self> {
        let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
        let body = &token[..token.len() - padding];
        if body.is_empty() {
            return None;
        }
        // Byte-wide accumulators per chunk keep the loop in SIMD registers (about ten times faster than bool
        // and usize accumulators for a 1 KB token); a chunk of 128 cannot overflow the u8 dot count.
        let (mut not_b64token, mut not_b64url, mut dots) = (0u8, 0u8, 0usize);
        for chunk in body.chunks(128) {
            let (mut bad_token, mut bad_url, mut chunk_dots) = (0u8, 0u8, 0u8);
            for &b in chunk {
                let alnum = (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26);
                let url_safe = alnum | (b == b'-') | (b == b'_');
                let dot = b == b'.';
                bad_url |= u8::from(!(url_safe | dot));
                bad_token |= u8::from(!(url_safe | dot | (b == b'~') | (b == b'+') | (b == b'/')));
                chunk_dots += u8::from(dot);
            }
            not_b64token |= bad_token;
            not_b64url |= bad_url;
            dots += usize::from(chunk_dots);
        }
        if not_b64token != 0 {
            return None;
        }
        let b64url_or_dot = not_b64url == 0;
        let is_key = service_account_prefix
            .is_some_and(|prefix| !prefix.is_empty() && body.starts_with(prefix.as_bytes()));
        if is_key {
            return Some(Self::ServiceAccountKey);
        }
        // JWS compact: exactly three base64url segments, the first two non-empty, no padding.
        let jws = padding == 0 && b64url_or_dot && dots == 2 && {
            let first = body.iter().position(|&b| b == b'.').unwrap_or(0);
            first > 0 && body.get(first + 1) != Some(&b'.')
        };
        Some(if jws { Self::Jwt } else { Self::Opaque })
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
