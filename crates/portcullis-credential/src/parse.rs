//! The `Authorization` header grammar (RFC 9110 section 11.6.2, RFC 6750 section 2.1, RFC 7617).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::Uri;
use http::header::{AUTHORIZATION, HeaderMap};
use portcullis_core::{
    BasicCredential, BearerToken, Credential, RejectionKind, Secret, TokenShape,
};
use zeroize::Zeroizing;

/// Basic credentials are standard base64; clients disagree about padding, so both forms are accepted.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Settings of the parser.
#[derive(Clone, Debug)]
pub(crate) struct Parser {
    pub(crate) service_account_prefix: Option<Box<str>>,
    pub(crate) max_header_len: usize,
}

impl Parser {
    /// Reads the credential of a request. `Ok(None)` means no credential was sent.
    ///
    /// Query strings and cookies are never read for a credential. The query is only looked at, by parameter
    /// name, when an `Authorization` header is present, to refuse a second `access_token` (RFC 6750 section 2:
    /// clients must not use more than one method).
    pub(crate) fn extract(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<Credential>, RejectionKind> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() || has_access_token_param(uri) {
            return Err(RejectionKind::AmbiguousCredential);
        }
        self.parse(value.as_bytes()).map(Some)
    }

    /// Parses one `Authorization` header value.
    pub(crate) fn parse(&self, value: &[u8]) -> Result<Credential, RejectionKind> {
        if value.len() > self.max_header_len {
            return Err(RejectionKind::CredentialTooLarge);
        }
        let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
            Some(at) => (&value[..at], &value[at..]),
            None => (value, &[][..]),
        };
        // Visible ASCII only in the scheme: no controls (CR, LF, TAB, NUL), no DEL, no obs-text. The credential
        // after it is held to the stricter token68 set below, which admits none of these either.
        if !scheme.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            return Err(RejectionKind::MalformedCredential);
        }
        // `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`: the separator is one or more spaces,
        // none of which belongs to the token. Any other whitespace was refused above.
        let param = trim_leading_spaces(rest);
        if scheme.eq_ignore_ascii_case(b"bearer") {
            self.bearer(param)
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            basic(param)
        } else {
            Err(RejectionKind::UnsupportedScheme)
        }
    }

    fn bearer(&self, token: &[u8]) -> Result<Credential, RejectionKind> {
        let shape = TokenShape::classify_b64token(token, self.service_account_prefix.as_deref())
            .ok_or(RejectionKind::MalformedCredential)?;
        // A b64token is ASCII, so this cannot fail.
        let token = std::str::from_utf8(token).map_err(|_| RejectionKind::MalformedCredential)?;
        Ok(Credential::Bearer(BearerToken::new(
            Secret::new(token),
            shape,
        )))
    }
}

/// `Basic base64(user-id ":" password)` (RFC 7617), here `email:token`.
fn basic(encoded: &[u8]) -> Result<Credential, RejectionKind> {
    if !is_token68(encoded) {
        return Err(RejectionKind::MalformedCredential);
    }
    // The decoded bytes hold the token: wiped when dropped, whatever path returns.
    let decoded = Zeroizing::new(
        BASE64
            .decode(encoded)
            .map_err(|_| RejectionKind::MalformedCredential)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| RejectionKind::MalformedCredential)?;
    // The first colon splits: a user-id cannot contain one, a password can (RFC 7617 section 2).
    let (email, token) = text
        .split_once(':')
        .ok_or(RejectionKind::MalformedCredential)?;
    if email.is_empty() || token.is_empty() || text.chars().any(char::is_control) {
        return Err(RejectionKind::MalformedCredential);
    }
    Ok(Credential::Basic(BasicCredential::new(
        email,
        Secret::new(token),
    )))
}

/// `token68` (RFC 9110 section 11.2): the same grammar as RFC 6750's `b64token`.
fn is_token68(s: &[u8]) -> bool {
    TokenShape::classify_b64token(s, None).is_some()
}

fn trim_leading_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    &s[start..]
}

/// Whether the query has an `access_token` parameter, however its name is percent-encoded. The value is not read.
fn has_access_token_param(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        Parser {
            service_account_prefix: Some("pcsa_".into()),
            max_header_len: 64,
        }
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn token68_grammar() {
        for good in ["a", "abc==", "A-._~+/9", "x="] {
            assert!(is_token68(good.as_bytes()), "{good}");
        }
        for bad in ["", "=", "a=b", "a b", "a,b", "a\"b", "a;b", "a:b"] {
            assert!(!is_token68(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn bearer_parses_and_classifies() {
        let credential = parser().parse(b"Bearer pcsa_key").expect("valid");
        let Credential::Bearer(token) = credential else {
            panic!("bearer")
        };
        assert_eq!(token.shape(), TokenShape::ServiceAccountKey);
        assert_eq!(token.secret().expose_secret(), "pcsa_key");
        let credential = parser().parse(b"bearer   a.b.c").expect("valid");
        let Credential::Bearer(token) = credential else {
            panic!("bearer")
        };
        assert_eq!(token.shape(), TokenShape::Jwt);
        assert_eq!(token.secret().expose_secret(), "a.b.c");
    }

    #[test]
    fn basic_splits_at_the_first_colon_and_accepts_missing_padding() {
        let encoded = b64(b"ada@example.com:tok:with:colons");
        for value in [
            format!("Basic {encoded}"),
            format!("BASIC {}", encoded.trim_end_matches('=')),
        ] {
            let Credential::Basic(basic) = parser().parse(value.as_bytes()).expect("valid") else {
                panic!("basic")
            };
            assert_eq!(basic.email(), "ada@example.com");
            assert_eq!(basic.token().expose_secret(), "tok:with:colons");
        }
    }

    #[test]
    fn control_and_non_ascii_bytes_are_malformed() {
        for value in [
            &b"Bearer abc\r\nX: 1"[..],
            b"Bearer abc\n",
            b"Bearer \0abc",
            b"Bearer a\x01",
            b"Bearer a\x7f",
            b"Bearer a\tb",
            b"Bearer \xc3\xa9",
            b"Basic \x80",
        ] {
            assert_eq!(
                parser().parse(value),
                Err(RejectionKind::MalformedCredential),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn size_limit_is_checked_first() {
        let long = format!("Bearer {}", "a".repeat(80));
        assert_eq!(
            parser().parse(long.as_bytes()),
            Err(RejectionKind::CredentialTooLarge)
        );
    }

    #[test]
    fn access_token_query_parameter_is_detected_by_name_only() {
        for uri in [
            "/x?access_token=a",
            "/x?a=1&access%5Ftoken=",
            "/x?access_token",
        ] {
            assert!(has_access_token_param(&uri.parse().expect("uri")), "{uri}");
        }
        for uri in [
            "/x",
            "/x?token=a",
            "/x?access_token_hint=a",
            "/access_token",
        ] {
            assert!(!has_access_token_param(&uri.parse().expect("uri")), "{uri}");
        }
    }
}
