//! Which browser origins may call the protected resource (MCP transport security: servers MUST validate `Origin`,
//! against DNS rebinding).

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header::ORIGIN};

use crate::ConfigError;

/// The origins allowed to send requests, as a browser serialises them (RFC 6454: `scheme://host[:port]`, lower
/// case, no default port, no path).
///
/// A request without `Origin` (a non-browser client) is allowed; a request whose `Origin` is `null`, malformed,
/// written in a way no browser writes it (upper case, a default port, a trailing slash), sent twice, or not listed
/// is refused. Nothing is normalised before the comparison: the value must be exactly the listed origin.
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    listed: Arc<[String]>,
    loopback: bool,
}

impl AllowedOrigins {
    /// Only the origin of `resource` (the canonical resource URI), e.g. `https://mcp.example.com` for
    /// `https://mcp.example.com/mcp`.
    ///
    /// # Errors
    /// A resource that is not an absolute `http`/`https` URI.
    pub fn of_resource(resource: &str) -> Result<Self, ConfigError> {
        let origin = origin_of(resource).ok_or_else(|| {
            ConfigError::new("resource", "must be an absolute http(s) URI with a host")
        })?;
        Ok(Self {
            listed: Arc::from(vec![origin]),
            loopback: false,
        })
    }

    /// Allows `origin` as well (`https://app.example.com`: exactly as a browser sends it).
    ///
    /// # Errors
    /// An origin that is not in a browser's serialised form.
    pub fn allow(mut self, origin: &str) -> Result<Self, ConfigError> {
        if !is_serialised_origin(origin) {
            return Err(ConfigError::new(
                "origins.allowed",
                "an origin is scheme://host[:port], lower case, without a default port, path or trailing slash",
            ));
        }
        if !self.listed.iter().any(|o| o == origin) {
            let mut listed = self.listed.to_vec();
            listed.push(origin.to_owned());
            self.listed = listed.into();
        }
        Ok(self)
    }

    /// Allows `http`/`https` origins on `localhost`, `127.0.0.1` and `[::1]`, on any port: for a browser-based
    /// client on the same machine (development, `portcullis demo`).
    #[must_use]
    pub fn with_loopback(mut self) -> Self {
        self.loopback = true;
        self
    }

    /// The listed origins.
    pub fn listed(&self) -> impl Iterator<Item = &str> {
        self.listed.iter().map(String::as_str)
    }

    /// Whether loopback origins are allowed.
    #[must_use]
    pub fn allows_loopback(&self) -> bool {
        self.loopback
    }

    /// Whether one `Origin` value is allowed.
    #[must_use]
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if !is_serialised_origin(origin) {
            return false;
        }
        self.listed.iter().any(|o| o == origin) || (self.loopback && is_loopback(origin))
    }

    /// Whether a request's headers pass: no `Origin`, or exactly one that is allowed.
    #[must_use]
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(ORIGIN).iter();
        match (values.next(), values.next()) {
            (None, _) => true,
            (Some(origin), None) => self.allows(origin),
            (Some(_), Some(_)) => false,
        }
    }
}

impl fmt::Debug for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedOrigins")
            .field("listed", &self.listed)
            .field("loopback", &self.loopback)
            .finish()
    }
}

/// The serialised origin of an absolute `http(s)` URI: lower-case scheme and host, the default port dropped.
fn origin_of(uri: &str) -> Option<String> {
    let uri: http::Uri = uri.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(match authority.port_u16() {
        Some(port) if port != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether `origin` is exactly as a browser serialises a tuple origin: `scheme://host[:port]` with a lower-case
/// scheme and host (a DNS name, an IPv4 address or a bracketed IPv6 address), a port without leading zeros that is
/// not the scheme's default, and nothing else.
fn is_serialised_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if !scheme_ok {
        return false;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((address, after)) = v6.split_once(']') else {
            return false;
        };
        if address.is_empty()
            || !address
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b':' | b'.'))
        {
            return false;
        }
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return false,
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host_ok = rest.starts_with('[')
        || (!host.is_empty()
            && !host.starts_with('.')
            && !host.ends_with('.')
            && !host.contains("..")
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.')));
    if !host_ok {
        return false;
    }
    match port {
        None => true,
        Some(port) => {
            let number = port
                .parse::<u16>()
                .ok()
                .filter(|_| !port.starts_with('0') && port.bytes().all(|b| b.is_ascii_digit()));
            let default = match scheme {
                "https" | "wss" => Some(443),
                "http" | "ws" => Some(80),
                _ => None,
            };
            number.is_some_and(|n| Some(n) != default)
        }
    }
}

/// Whether a serialised origin is `http(s)` on a loopback host.
fn is_loopback(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix("[::1]") {
        Some(after) => return after.is_empty() || after.starts_with(':'),
        None => rest.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("valid")
    }

    #[test]
    fn the_resource_origin_is_allowed_exactly() {
        let allowed =
            AllowedOrigins::of_resource("https://MCP.example.com:443/mcp").expect("valid");
        assert_eq!(
            allowed.listed().collect::<Vec<_>>(),
            ["https://mcp.example.com"]
        );
        assert!(allowed.allows(&value("https://mcp.example.com")));
        for refused in [
            "http://mcp.example.com",
            "https://mcp.example.com:8443",
            "https://mcp.example.com:443",
            "https://MCP.example.com",
            "https://mcp.example.com/",
            "https://mcp.example.com/mcp",
            "https://mcp.example.com.evil.example",
            "https://evil.example",
            "null",
            "",
            "https://mcp.example.com, https://evil.example",
            "https://user@mcp.example.com",
        ] {
            assert!(!allowed.allows(&value(refused)), "{refused}");
        }
        let port = AllowedOrigins::of_resource("http://127.0.0.1:8080/mcp").expect("valid");
        assert!(port.allows(&value("http://127.0.0.1:8080")));
        assert!(!port.allows(&value("http://127.0.0.1:8081")));
    }

    #[test]
    fn loopback_origins_on_any_port_when_enabled() {
        let allowed = AllowedOrigins::of_resource("https://mcp.example.com/mcp").expect("valid");
        assert!(!allowed.allows(&value("http://localhost:5173")));
        let allowed = allowed.with_loopback();
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:6274",
            "http://[::1]:3000",
            "https://localhost",
        ] {
            assert!(allowed.allows(&value(ok)), "{ok}");
        }
        for refused in [
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:80",
            "http://LOCALHOST:5173",
            "http://[::1]evil",
            "file://localhost",
        ] {
            assert!(!allowed.allows(&value(refused)), "{refused}");
        }
    }

    #[test]
    fn configured_origins_must_be_serialised_origins() {
        let allowed = AllowedOrigins::of_resource("https://mcp.example.com/mcp").expect("valid");
        let allowed = allowed
            .allow("https://app.example.com")
            .and_then(|a| a.allow("chrome-extension://abcdef"))
            .expect("valid");
        assert!(allowed.allows(&value("https://app.example.com")));
        assert!(allowed.allows(&value("chrome-extension://abcdef")));
        for bad in [
            "https://App.example.com",
            "https://app.example.com/",
            "https://app.example.com:443",
            "app.example.com",
            "*",
            "null",
        ] {
            assert!(allowed.clone().allow(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_pass_without_origin_and_with_exactly_one_allowed() {
        let allowed = AllowedOrigins::of_resource("https://mcp.example.com/mcp").expect("valid");
        let mut headers = HeaderMap::new();
        assert!(allowed.admits(&headers));
        headers.insert(ORIGIN, value("https://mcp.example.com"));
        assert!(allowed.admits(&headers));
        headers.append(ORIGIN, value("https://mcp.example.com"));
        assert!(!allowed.admits(&headers), "two Origin headers");
        let latin1 = HeaderValue::from_bytes(b"https://caf\xe9.example").expect("obs-text");
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, latin1);
        assert!(!allowed.admits(&headers));
    }
}
