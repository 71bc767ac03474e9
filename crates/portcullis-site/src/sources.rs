//! Where a request names its site: path templates, headers (gRPC metadata too), query parameters.

use http::HeaderName;
use portcullis_core::ConfigError;

/// A path template such as `/ex/{product}/{cloudId}/...`: literal segments match exactly, `{cloudId}` is the
/// site, any other `{name}` matches one segment, and a final `...` matches whatever follows.
#[derive(Clone, Debug)]
pub(crate) struct PathTemplate {
    segments: Vec<Segment>,
    open_ended: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
    Site,
}

impl PathTemplate {
    pub(crate) fn parse(template: &str) -> Result<Self, ConfigError> {
        const SETTING: &str = "path_template";
        let Some(rest) = template.strip_prefix('/') else {
            return Err(ConfigError::new(SETTING, "must start with '/'"));
        };
        let mut raw: Vec<&str> = rest.split('/').collect();
        let open_ended = raw.last() == Some(&"...");
        if open_ended {
            raw.pop();
        }
        let mut segments = Vec::new();
        for part in raw {
            let segment = match part {
                "{cloudId}" => Segment::Site,
                "" | "..." => {
                    return Err(ConfigError::new(
                        SETTING,
                        "empty segment, or '...' before the end",
                    ));
                }
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Segment::Any,
                p if p.contains(['{', '}']) => {
                    return Err(ConfigError::new(
                        SETTING,
                        "a placeholder must be a whole segment",
                    ));
                }
                p => Segment::Literal(p.to_owned()),
            };
            segments.push(segment);
        }
        if segments.iter().filter(|s| **s == Segment::Site).count() != 1 {
            return Err(ConfigError::new(
                SETTING,
                "must contain `{cloudId}` exactly once",
            ));
        }
        Ok(Self {
            segments,
            open_ended,
        })
    }

    /// The site segment of `path`, if the path matches.
    pub(crate) fn site_in<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut parts = path.strip_prefix('/')?.split('/');
        let mut site = None;
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                // Literals match in any ASCII case: an upstream that routes case-insensitively must not see an
                // unbound request for a site.
                Segment::Literal(literal) if literal.eq_ignore_ascii_case(part) => {}
                Segment::Literal(_) => return None,
                Segment::Any if !part.is_empty() => {}
                Segment::Any => return None,
                Segment::Site => site = Some(part),
            }
        }
        if !self.open_ended && parts.next().is_some() {
            return None;
        }
        site
    }
}

/// Whether a path could be read as another path by an upstream that normalises it (RFC 3986 section 5.2.4 dot
/// segments, repeated slashes, percent-encoded dots, slashes or backslashes, backslashes): such a path is refused
/// where site templates are configured, rather than matched raw.
pub(crate) fn is_ambiguous_path(path: &str) -> bool {
    if path.contains("//") || path.contains('\\') {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// Checks a header name from configuration.
pub(crate) fn header_name(name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new("site_header", "not a valid header name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_an_upstream_could_normalise_differently_are_ambiguous() {
        for path in [
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a/%2e%2e/b",
            "/a/%2E/b",
            "/a%2fb",
            "/a\\b",
            "/a/%5Cb",
            "/..",
            "//",
        ] {
            assert!(is_ambiguous_path(path), "{path}");
        }
        for path in [
            "/",
            "/a/b",
            "/a/b.c",
            "/a/..b",
            "/a/.well-known/x",
            "/a%20b",
        ] {
            assert!(!is_ambiguous_path(path), "{path}");
        }
    }

    #[test]
    fn templates_match_exactly() {
        let template = PathTemplate::parse("/ex/{product}/{cloudId}/...").expect("valid");
        assert_eq!(template.site_in("/ex/jira/site-1/rest/api"), Some("site-1"));
        assert_eq!(template.site_in("/ex/jira/site-1"), Some("site-1"));
        assert_eq!(template.site_in("/ex/jira"), None);
        assert_eq!(template.site_in("/ex//site-1/x"), None);
        assert_eq!(template.site_in("/EX/Jira/site-1"), Some("site-1"));
        assert_eq!(template.site_in("/other/jira/site-1"), None);
        let closed = PathTemplate::parse("/sites/{cloudId}").expect("valid");
        assert_eq!(closed.site_in("/sites/a"), Some("a"));
        assert_eq!(closed.site_in("/sites/a/b"), None);
        assert_eq!(closed.site_in("/sites/"), Some(""));
        for bad in [
            "",
            "ex/{cloudId}",
            "/ex",
            "/{cloudId}/{cloudId}",
            "/a/.../{cloudId}",
            "/a{cloudId}",
            "/a//{cloudId}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
