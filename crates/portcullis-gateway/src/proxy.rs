//! The innermost service: forwards what passed the stack to the upstream, streaming both bodies.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, EXPECT, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis::core::ResponseBody;
use portcullis::site::SiteBody;
use tower::Service;

use crate::config::Upstream;

/// The request body that reaches the proxy: what the site layer passed on (streamed, or the bytes it read).
pub(crate) type ProxyRequestBody = SiteBody<Incoming>;

/// The response body: the upstream's, streamed as it arrives, or a small error body of the gateway's own.
pub(crate) type ProxyResponseBody = ResponseBody<Incoming>;

/// Forwards requests to one upstream.
///
/// # Security
/// - The request's `Host` is the upstream's; its path and query are kept, after the upstream's path prefix.
/// - `Authorization` was removed by the context layer in forwarding mode; it is removed here again so that no
///   configuration can pass a client's token on.
/// - Hop-by-hop headers are removed from the upstream's response (and, by the entry service, from the request).
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    client: Client<HttpConnector, ProxyRequestBody>,
    upstream: Arc<Upstream>,
    request_timeout: Duration,
}

impl Proxy {
    /// A proxy to `upstream`. `connect_timeout` bounds the TCP connect; `request_timeout` bounds the wait for the
    /// upstream's response head (not its body: an SSE stream may stay open for as long as the client wants).
    pub(crate) fn new(
        upstream: Upstream,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            upstream: Arc::new(upstream),
            request_timeout,
        }
    }
}

type ProxyFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyResponseBody>, Infallible>> + Send>>;

impl Service<Request<ProxyRequestBody>> for Proxy {
    type Response = Response<ProxyResponseBody>;
    type Error = Infallible;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ProxyRequestBody>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let uri = match self.upstream.uri_for(req.uri()) {
            Ok(uri) => uri,
            Err(_) => {
                return Box::pin(std::future::ready(Ok(gateway_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the request target cannot be forwarded",
                ))));
            }
        };
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        headers.remove(HOST);
        headers.remove(AUTHORIZATION);
        headers.remove(PROXY_AUTHORIZATION);
        // This server already answered `100-continue` as it read the body; the upstream gets the body at once.
        headers.remove(EXPECT);
        let request = self.client.request(req);
        let timeout = self.request_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, request).await {
                Ok(Ok(mut response)) => {
                    strip_hop_by_hop(response.headers_mut());
                    Ok(response.map(ResponseBody::new))
                }
                Ok(Err(err)) => {
                    tracing::warn!(
                        target: "portcullis::gateway",
                        path = path.as_str(),
                        error = %ErrorChain(&err),
                        "the upstream could not be reached",
                    );
                    Ok(gateway_error(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the upstream server could not be reached",
                    ))
                }
                Err(_) => {
                    tracing::warn!(
                        target: "portcullis::gateway",
                        path = path.as_str(),
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "the upstream did not answer in time",
                    );
                    Ok(gateway_error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway_timeout",
                        "the upstream server did not answer in time",
                    ))
                }
            }
        })
    }
}

/// The gateway's own error response: a small JSON body shaped like the stack's rejections.
fn gateway_error(
    status: StatusCode,
    error: &'static str,
    description: &'static str,
) -> Response<ProxyResponseBody> {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut response = Response::new(ResponseBody::full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Removes the hop-by-hop headers of RFC 9110 section 7.6.1: those named in `Connection`, and the fixed list.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// An error with its sources, on one line (hyper's "client error (Connect)" says little on its own).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Custom-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-custom-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("mcp-session-id", "abc"),
            ("content-type", "application/json"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "mcp-session-id"]);
    }
}
