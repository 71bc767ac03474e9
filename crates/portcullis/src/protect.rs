//! [`Protected`]: public metadata and health, everything else through the stack.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use portcullis_core::{ResponseBody, ResponseFuture};
use tower_service::Service;

use crate::ProtectedResourceMetadata;

/// A protected service with the resource metadata and health paths in front of it. See
/// [`Portcullis::protect`](crate::Portcullis::protect).
///
/// # Security
/// A path is public only when it equals a metadata location or a health path exactly; every other request,
/// whatever its method, goes through the stack.
#[derive(Clone, Debug)]
pub struct Protected<S> {
    inner: S,
    metadata: ProtectedResourceMetadata,
    health_paths: Arc<[String]>,
}

impl<S> Protected<S> {
    pub(crate) fn new(
        inner: S,
        metadata: ProtectedResourceMetadata,
        health_paths: Arc<[String]>,
    ) -> Self {
        Self {
            inner,
            metadata,
            health_paths,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Protected<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        if self.metadata.serves(path) {
            return ResponseFuture::ready(self.metadata.respond(req.method()));
        }
        if self.health_paths.iter().any(|p| p == path) {
            let mut response = Response::new(ResponseBody::full("ok"));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return ResponseFuture::ready(response);
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}
