//! CORS for browser-based MCP clients, driven by the stack's allowed origins: a preflight succeeds exactly where
//! the request itself would pass the `Origin` check.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderName, Method};
use portcullis::Portcullis;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The request headers an MCP client sends: its token, the session of earlier revisions, and the headers of
/// 2026-07-28 that mirror the body (with the `Mcp-Param-*` names the configuration recognises).
pub(crate) fn layer<'a>(
    portcullis: &Portcullis,
    param_headers: impl IntoIterator<Item = &'a str>,
) -> CorsLayer {
    let origins = portcullis.allowed_origins().clone();
    let session = portcullis::MCP_SESSION_ID;
    let mut allowed = portcullis::MCP_REQUEST_HEADERS.to_vec();
    // The names were checked when the stack was built.
    allowed.extend(
        param_headers
            .into_iter()
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()),
    );
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(allowed)
        .expose_headers([WWW_AUTHENTICATE, session])
}
