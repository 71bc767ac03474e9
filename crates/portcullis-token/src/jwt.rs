//! The JWS compact serialisation of an access token: parsing its header and claims, and checking the claims.
//!
//! Everything here runs before any key is looked up or fetched, so that a malformed, expired, wrong-issuer or
//! wrong-audience token costs no outbound call and no signature check.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::{RejectionKind, ScopeList, SiteId};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::SigningAlgorithm;

/// Latest accepted NumericDate: 9999-12-31T23:59:59Z. Anything later is nonsense, not a long-lived token.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// The parts of a compact JWS, still encoded.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    /// `header.payload`, the signed message.
    pub(crate) message: &'a str,
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> Parts<'a> {
    pub(crate) fn split(token: &'a str) -> Result<Self, RejectionKind> {
        let mut segments = token.splitn(4, '.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            // JWE (five segments) and anything else that is not a JWS.
            return Err(RejectionKind::InvalidToken);
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(RejectionKind::InvalidToken);
        }
        let message = &token[..header.len() + 1 + payload.len()];
        Ok(Self {
            message,
            header,
            payload,
            signature,
        })
    }
}

/// The JOSE header fields that matter. `jku`, `x5u`, `jwk` and `x5c` are never read: keys come only from the
/// issuer's configured key set (RFC 8725 section 3.10).
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    cty: Option<String>,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    enc: Present,
    #[serde(default)]
    b64: Present,
}

/// Whether a member was present, whatever its value (`null` included): for members whose mere presence matters.
#[derive(Debug, Default, Clone, Copy)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Self(true))
    }
}

impl Header {
    /// Decodes and checks the header: a known asymmetric algorithm, no critical extensions, not nested, not
    /// encrypted, and `typ` as RFC 9068 asks when required.
    pub(crate) fn parse(
        encoded: &str,
        require_at_jwt: bool,
    ) -> Result<(Self, SigningAlgorithm), RejectionKind> {
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| RejectionKind::InvalidToken)?;
        let header: Self =
            serde_json::from_slice(&bytes).map_err(|_| RejectionKind::InvalidToken)?;
        // `none`, in any case, and HMAC are not in the set: `from_jose` matches exactly.
        let alg = SigningAlgorithm::from_jose(&header.alg).ok_or(RejectionKind::InvalidToken)?;
        // We understand no extension, so any `crit` must be refused (RFC 7515 section 4.1.11); `b64` only makes
        // sense with `crit`.
        if header.crit.0 || header.b64.0 || header.enc.0 {
            return Err(RejectionKind::InvalidToken);
        }
        // A nested JWT would need its inner token verified too; access tokens are never nested.
        if header.cty.as_deref().is_some_and(|cty| {
            cty.eq_ignore_ascii_case("jwt") || cty.eq_ignore_ascii_case("application/jwt")
        }) {
            return Err(RejectionKind::InvalidToken);
        }
        if require_at_jwt {
            let typed = header.typ.as_deref().is_some_and(|typ| {
                typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
            });
            if !typed {
                return Err(RejectionKind::InvalidToken);
            }
        }
        Ok((header, alg))
    }
}

/// A claim that may be one string or an array of strings (`aud`, site grants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Whether one of the values names `resource`, comparing scheme and host case-insensitively (RFC 3986
    /// section 6.2.2.1) and everything else exactly: no trailing-slash, port, path-case or prefix leniency.
    pub(crate) fn names_resource(&self, resource: &str) -> bool {
        self.iter().any(|value| same_resource(value, resource))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(value) => (Some(value.as_str()), &[][..]),
            Self::Many(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::One(value) => Self::One(value),
            Raw::Many(values) => Self::Many(values),
        })
    }
}

fn same_resource(candidate: &str, resource: &str) -> bool {
    if candidate == resource {
        return true;
    }
    // `scheme://authority` then the rest; the authority ends at the first '/', '?' or '#'.
    match (split_uri(candidate), split_uri(resource)) {
        (Some((s1, a1, r1)), Some((s2, a2, r2))) => {
            s1.eq_ignore_ascii_case(s2)
                && a1.eq_ignore_ascii_case(a2)
                && r1 == r2
                && !a1.contains('@')
        }
        _ => false,
    }
}

fn split_uri(uri: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// The claims of an access token (RFC 9068 section 2.2) or of an introspection answer (RFC 7662 section 2.2),
/// which share their names.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) aud: Option<OneOrMany>,
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
    pub(crate) scope: Option<String>,
    pub(crate) scp: Option<Vec<String>>,
    pub(crate) client_id: Option<String>,
    pub(crate) azp: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) active: Option<serde_json::Value>,
    /// The site grants from the configured claim, already checked (see [`SiteClaim`]).
    pub(crate) sites: Option<Vec<SiteId>>,
}

/// Where a token names the sites it was granted for, and how: a JSON array of ids, or one string holding one id,
/// or (with a delimiter) a list of ids separated by it, for authorization servers that can emit a multi-valued
/// property only as one string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteClaim {
    pub(crate) name: String,
    /// `' '` or `','`; with `','`, spaces around each id are allowed.
    pub(crate) delimiter: Option<char>,
}

impl SiteClaim {
    /// The ids of a claim value. Anything but a string or an array of strings (`null` included), an empty item, or
    /// an id outside the id grammar makes the token invalid: never "no grants".
    fn ids(&self, value: OneOrMany) -> Result<Vec<SiteId>, &'static str> {
        let parse =
            |id: &str| SiteId::parse(id).map_err(|_| "a site id in the site claim is malformed");
        match value {
            OneOrMany::Many(ids) => ids.iter().map(|id| parse(id)).collect(),
            OneOrMany::One(one) => match self.delimiter {
                None => Ok(vec![parse(&one)?]),
                Some(delimiter) => one
                    .split(delimiter)
                    .map(|id| {
                        parse(if delimiter == ',' {
                            id.trim_matches(' ')
                        } else {
                            id
                        })
                    })
                    .collect(),
            },
        }
    }
}

/// Deserialises [`Claims`], reading the site grants from a configurable claim name, and refusing a document
/// that names any claim it reads twice (so that no parser differential can pick another `aud` or `iss`).
pub(crate) struct ClaimsSeed<'a> {
    pub(crate) site_claim: Option<&'a SiteClaim>,
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Claims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

fn set_once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        let mut sites_seen = false;
        // Keys are decoded (escapes resolved) before they are compared.
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if let Some(site_claim) = self.site_claim.filter(|c| c.name == key.as_ref()) {
                if sites_seen {
                    return Err(de::Error::duplicate_field("site claim"));
                }
                sites_seen = true;
                // Not an `Option`: `null` is a claim of the wrong type, not an absent one.
                let value = map.next_value::<OneOrMany>()?;
                claims.sites = Some(site_claim.ids(value).map_err(de::Error::custom)?);
                continue;
            }
            match key.as_ref() {
                "iss" => set_once(&mut claims.iss, &mut map, "iss")?,
                "sub" => set_once(&mut claims.sub, &mut map, "sub")?,
                "aud" => set_once(&mut claims.aud, &mut map, "aud")?,
                "exp" => set_once(&mut claims.exp, &mut map, "exp")?,
                "nbf" => set_once(&mut claims.nbf, &mut map, "nbf")?,
                "iat" => set_once(&mut claims.iat, &mut map, "iat")?,
                "scope" => set_once(&mut claims.scope, &mut map, "scope")?,
                "scp" => set_once(&mut claims.scp, &mut map, "scp")?,
                "client_id" => set_once(&mut claims.client_id, &mut map, "client_id")?,
                "azp" => set_once(&mut claims.azp, &mut map, "azp")?,
                "username" => set_once(&mut claims.username, &mut map, "username")?,
                "active" => set_once(&mut claims.active, &mut map, "active")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(claims)
    }
}

impl Claims {
    /// Decodes the payload segment of a JWS.
    pub(crate) fn from_segment(
        encoded: &str,
        site_claim: Option<&SiteClaim>,
    ) -> Result<Self, RejectionKind> {
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| RejectionKind::InvalidToken)?;
        Self::from_json(&bytes, site_claim).map_err(|_| RejectionKind::InvalidToken)
    }

    /// Decodes a JSON object of claims.
    pub(crate) fn from_json(
        bytes: &[u8],
        site_claim: Option<&SiteClaim>,
    ) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let claims = ClaimsSeed { site_claim }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(claims)
    }

    /// Checks `exp` (required unless `exp_required` is false), `nbf` and `iat` against `now` with `leeway`.
    /// Returns `exp` as whole seconds.
    pub(crate) fn check_times(
        &self,
        now: u64,
        leeway: u64,
        exp_required: bool,
    ) -> Result<Option<u64>, RejectionKind> {
        let exp = match self.exp {
            Some(exp) => Some(numeric_date(exp)?),
            None if exp_required => return Err(RejectionKind::InvalidToken),
            None => None,
        };
        if let Some(exp) = exp
            && now >= exp.saturating_add(leeway)
        {
            return Err(RejectionKind::ExpiredToken);
        }
        if let Some(nbf) = self.nbf
            && numeric_date(nbf)? > now.saturating_add(leeway)
        {
            return Err(RejectionKind::InvalidToken);
        }
        if let Some(iat) = self.iat
            && numeric_date(iat)? > now.saturating_add(leeway)
        {
            return Err(RejectionKind::InvalidToken);
        }
        Ok(exp)
    }

    /// The granted scopes: `scope` (space-delimited) or else `scp` (array). Tokens that are not valid scope
    /// tokens are dropped rather than trusted.
    pub(crate) fn scopes(&self) -> ScopeList {
        let from_list = |items: &mut dyn Iterator<Item = &str>| {
            let valid: Vec<&str> = items.filter(|s| ScopeList::new([*s]).is_ok()).collect();
            ScopeList::new(valid).unwrap_or_default()
        };
        match (&self.scope, &self.scp) {
            (Some(scope), _) => from_list(&mut scope.split(' ')),
            (None, Some(scp)) => from_list(&mut scp.iter().map(String::as_str)),
            (None, None) => ScopeList::default(),
        }
    }

    /// The site grants, if the site claim was present. Ids that do not parse are dropped.
    pub(crate) fn site_grants(&self) -> Option<Vec<SiteId>> {
        self.sites.clone()
    }
}

/// A NumericDate (RFC 7519 section 2) as whole seconds; negative, fractional-garbage and absurd values are refused.
fn numeric_date(value: f64) -> Result<u64, RejectionKind> {
    if value.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&value) {
        // In range, so the conversion is exact for the integer part.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(value.floor() as u64)
    } else {
        Err(RejectionKind::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn header_refuses_none_hmac_crit_nested_and_untyped() {
        let ok = b64(r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#);
        assert!(Header::parse(&ok, true).is_ok());
        for bad in [
            r#"{"alg":"none","typ":"at+jwt"}"#,
            r#"{"alg":"None","typ":"at+jwt"}"#,
            r#"{"alg":"NONE","typ":"at+jwt"}"#,
            r#"{"alg":"HS256","typ":"at+jwt"}"#,
            r#"{"alg":"rs256","typ":"at+jwt"}"#,
            r#"{"alg":"RS256","typ":"at+jwt","crit":["exp"]}"#,
            r#"{"alg":"RS256","typ":"at+jwt","cty":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"RS256","alg":"RS256","typ":"at+jwt"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A256GCM","typ":"at+jwt"}"#,
            r#"["RS256"]"#,
        ] {
            assert_eq!(
                Header::parse(&b64(bad), true).err(),
                Some(RejectionKind::InvalidToken),
                "{bad}"
            );
        }
        assert!(Header::parse(&b64(r#"{"alg":"ES256","typ":"JWT"}"#), false).is_ok());
        assert!(Header::parse(&b64(r#"{"alg":"ES256","typ":"application/AT+JWT"}"#), true).is_ok());
    }

    fn sites(delimiter: Option<char>) -> SiteClaim {
        SiteClaim {
            name: "sites".to_owned(),
            delimiter,
        }
    }

    #[test]
    fn site_claims_are_an_array_or_a_string_and_nothing_else() {
        let read = |json: &str, delimiter: Option<char>| {
            Claims::from_json(json.as_bytes(), Some(&sites(delimiter))).map(|c| {
                c.site_grants().map(|ids| {
                    ids.iter()
                        .map(|id| id.as_str().to_owned())
                        .collect::<Vec<_>>()
                })
            })
        };
        let ok = |ids: &[&str]| Some(ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        for (json, delimiter, expected) in [
            (r#"{"sites":["a","b"]}"#, None, ok(&["a", "b"])),
            (r#"{"sites":[]}"#, None, ok(&[])),
            (r#"{"sites":"a"}"#, None, ok(&["a"])),
            (r#"{"sites":"a b"}"#, Some(' '), ok(&["a", "b"])),
            (r#"{"sites":"a,b"}"#, Some(','), ok(&["a", "b"])),
            (r#"{"sites":"a, b"}"#, Some(','), ok(&["a", "b"])),
            // No claim at all: no grants from the token (a grants source may know them).
            (r#"{}"#, None, None),
        ] {
            let found = read(json, delimiter).unwrap_or_else(|err| panic!("{json}: {err}"));
            assert_eq!(found, expected, "{json} {delimiter:?}");
        }
        // Every other type, and lists with an empty or malformed item, are invalid: never "no grants".
        for (json, delimiter) in [
            (r#"{"sites":null}"#, None),
            (r#"{"sites":1}"#, None),
            (r#"{"sites":true}"#, None),
            (r#"{"sites":{"id":"a"}}"#, None),
            (r#"{"sites":[1]}"#, None),
            (r#"{"sites":[null]}"#, None),
            (r#"{"sites":["a",["b"]]}"#, None),
            (r#"{"sites":["a b"]}"#, None),
            (r#"{"sites":["a b"]}"#, Some(' ')), // an array is never split
            (r#"{"sites":"a b"}"#, None),
            (r#"{"sites":"a  b"}"#, Some(' ')),
            (r#"{"sites":"a,,b"}"#, Some(',')),
            (r#"{"sites":""}"#, None),
            (r#"{"sites":"a,"}"#, Some(',')),
        ] {
            assert!(read(json, delimiter).is_err(), "{json} {delimiter:?}");
        }
    }

    #[test]
    fn claims_refuse_duplicates_and_read_escaped_keys() {
        let claims = Claims::from_json(
            br#"{"\u0069ss":"x","aud":["a","b"],"sites":"S1"}"#,
            Some(&sites(None)),
        )
        .expect("valid");
        assert_eq!(claims.iss.as_deref(), Some("x"));
        assert!(claims.aud.as_ref().is_some_and(|a| a.names_resource("b")));
        assert_eq!(claims.site_grants().map(|s| s.len()), Some(1));
        for bad in [
            &br#"{"aud":"a","aud":"b"}"#[..],
            br#"{"iss":"a","\u0069ss":"b"}"#,
            br#"{"sites":"a","sites":"b"}"#,
            br#"{"exp":"tomorrow"}"#,
            br#"{"iss":"a"} trailing"#,
        ] {
            assert!(
                Claims::from_json(bad, Some(&sites(None))).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn audience_comparison_ignores_only_scheme_and_host_case() {
        let aud = |v: &str| OneOrMany::One(v.to_owned());
        let resource = "https://mcp.example.com/mcp";
        for same in [resource, "HTTPS://MCP.Example.COM/mcp"] {
            assert!(aud(same).names_resource(resource), "{same}");
        }
        for other in [
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com:443/mcp",
            "https://mcp.example.com",
            "https://x@mcp.example.com/mcp",
            "mcp.example.com/mcp",
        ] {
            assert!(!aud(other).names_resource(resource), "{other}");
        }
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let claims = |exp: Option<f64>, nbf: Option<f64>, iat: Option<f64>| Claims {
            exp,
            nbf,
            iat,
            ..Claims::default()
        };
        let now = 1_000_000;
        assert_eq!(
            claims(Some(1_000_100.0), None, None).check_times(now, 60, true),
            Ok(Some(1_000_100))
        );
        assert_eq!(
            claims(Some(999_950.0), None, None).check_times(now, 60, true),
            Ok(Some(999_950))
        );
        assert_eq!(
            claims(Some(999_940.0), None, None).check_times(now, 60, true),
            Err(RejectionKind::ExpiredToken)
        );
        assert_eq!(
            claims(None, None, None).check_times(now, 60, true),
            Err(RejectionKind::InvalidToken)
        );
        assert_eq!(
            claims(None, None, None).check_times(now, 60, false),
            Ok(None)
        );
        assert!(
            claims(Some(2e6), Some(1_000_060.0), None)
                .check_times(now, 60, true)
                .is_ok()
        );
        assert!(
            claims(Some(2e6), Some(1_000_061.0), None)
                .check_times(now, 60, true)
                .is_err()
        );
        assert!(
            claims(Some(2e6), None, Some(1_000_061.0))
                .check_times(now, 60, true)
                .is_err()
        );
        for absurd in [1e300, -1.0, f64::MAX, 253_402_300_800.0] {
            assert_eq!(
                claims(Some(absurd), None, None).check_times(now, 60, true),
                Err(RejectionKind::InvalidToken),
                "{absurd}"
            );
        }
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let claims = Claims {
            scope: Some("a b  c\"".into()),
            ..Claims::default()
        };
        assert_eq!(claims.scopes().as_str(), "a b");
        let claims = Claims {
            scp: Some(vec!["x".into(), "y".into()]),
            ..Claims::default()
        };
        assert_eq!(claims.scopes().as_str(), "x y");
    }
}
