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
                Segment::Literal(literal) if literal == part => {}
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

/// Checks a header name from configuration.
pub(crate) fn header_name(name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new("site_header", "not a valid header name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_exactly() {
        let template = PathTemplate::parse("/ex/{product}/{cloudId}/...").expect("valid");
        assert_eq!(template.site_in("/ex/jira/site-1/rest/api"), Some("site-1"));
        assert_eq!(template.site_in("/ex/jira/site-1"), Some("site-1"));
        assert_eq!(template.site_in("/ex/jira"), None);
        assert_eq!(template.site_in("/ex//site-1/x"), None);
        assert_eq!(template.site_in("/EX/jira/site-1"), None);
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
