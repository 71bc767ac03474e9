//! RFC 9728 protected resource metadata.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use portcullis_core::{ConfigError, ResponseBody, ScopeList};
use serde::Serialize;
use tower_service::Service;

/// Well-known suffix of RFC 9728.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document and where it is served.
#[derive(Clone, Debug)]
pub(crate) struct MetadataDocument {
    json: Bytes,
    url: String,
    path: String,
}

#[derive(Serialize)]
struct Document<'a> {
    resource: &'a str,
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    scopes_supported: Vec<&'a str>,
    bearer_methods_supported: [&'static str; 1],
}

impl MetadataDocument {
    pub(crate) fn new(
        resource: &str,
        authorization_servers: Vec<String>,
        scopes_supported: ScopeList,
    ) -> Result<Self, ConfigError> {
        // RFC 9728 section 3.1: the well-known suffix goes between the host and the resource's path.
        let after_scheme = resource.find("://").map_or(0, |at| at + 3);
        let path_at = resource[after_scheme..]
            .find('/')
            .map_or(resource.len(), |at| after_scheme + at);
        let (origin, resource_path) = resource.split_at(path_at);
        let resource_path = resource_path.trim_end_matches('/');
        let path = format!("{WELL_KNOWN}{resource_path}");
        let url = format!("{origin}{path}");
        let json = serde_json::to_vec(&Document {
            resource,
            authorization_servers: &authorization_servers,
            scopes_supported: scopes_supported.iter().collect(),
            bearer_methods_supported: ["header"],
        })
        .map_err(|_| ConfigError::new("resource", "cannot serialise the metadata"))?;
        Ok(Self {
            json: Bytes::from(json),
            url,
            path,
        })
    }
}

/// Serves the RFC 9728 protected resource metadata: `resource` (the canonical resource URI, exactly),
/// `authorization_servers`, `scopes_supported`, `bearer_methods_supported: ["header"]`.
///
/// Answers `GET` and `HEAD` on any path it is mounted at (mount it at [`path`](Self::path) and at
/// [`WELL_KNOWN`]); other methods get 405. The document may be read cross-origin (browser-based MCP clients).
#[derive(Clone, Debug)]
pub struct ProtectedResourceMetadata {
    document: Arc<MetadataDocument>,
}

impl ProtectedResourceMetadata {
    pub(crate) fn new(document: MetadataDocument) -> Self {
        Self {
            document: Arc::new(document),
        }
    }

    /// The metadata URL placed in every challenge (the path-inserted location).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.document.url
    }

    /// The path-inserted location, e.g. `/.well-known/oauth-protected-resource/mcp`.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.document.path
    }

    /// Whether `path` is one of the two locations (exact match).
    #[must_use]
    pub fn serves(&self, path: &str) -> bool {
        path == self.document.path || path == WELL_KNOWN
    }

    /// The JSON document.
    #[must_use]
    pub fn json(&self) -> &Bytes {
        &self.document.json
    }

    pub(crate) fn respond<B>(&self, method: &Method) -> Response<ResponseBody<B>> {
        let mut response = if method == Method::GET || method == Method::HEAD {
            let body = if method == Method::HEAD {
                ResponseBody::empty()
            } else {
                ResponseBody::full(self.document.json.clone())
            };
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            response
        } else {
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        };
        response
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        response
    }
}

impl<B> Service<Request<B>> for ProtectedResourceMetadata {
    type Response = Response<ResponseBody<http_body_util_empty::Empty>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.method())))
    }
}

/// A body type for responses that never use the inner-body side of [`ResponseBody`].
pub(crate) mod http_body_util_empty {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::{Body, Frame};

    /// An empty body.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Empty;

    impl Body for Empty {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(None)
        }

        fn is_end_stream(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_location_inserts_the_well_known_suffix() {
        let cases = [
            (
                "https://mcp.example.com/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://mcp.example.com",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://mcp.example.com/",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "http://127.0.0.1:8080/a/b/",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b",
            ),
        ];
        for (resource, url) in cases {
            let doc = MetadataDocument::new(
                resource,
                vec!["https://as.example.com".into()],
                ScopeList::default(),
            )
            .expect("valid");
            assert_eq!(doc.url, url, "{resource}");
            let json: serde_json::Value = serde_json::from_slice(&doc.json).expect("json");
            assert_eq!(json["resource"], resource);
            assert_eq!(
                json["bearer_methods_supported"],
                serde_json::json!(["header"])
            );
            assert!(json.get("scopes_supported").is_none());
        }
    }
}
