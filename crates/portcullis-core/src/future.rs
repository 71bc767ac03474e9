//! The response future shared by the layers that decide before calling the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::ResponseBody;

pin_project! {
    /// Response future of a layer that either calls the inner service or answers with a rejection at once.
    ///
    /// No boxing: the inner future is polled in place and its error type is kept.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    /// The inner service's future.
    pub fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    /// A response made by the layer itself (a rejection, or a public answer), ready at once.
    pub fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::new)))
            }
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Ready { .. } => "ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// The boxed future of a [`LookupFuture`] that had to wait.
pub type BoxedResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of a layer that usually decides from a cache, without waiting, and only sometimes has to
    /// wait for a lookup (a key set, an introspection call, a directory).
    ///
    /// The common case, a cache hit, polls the inner service's future in place or answers at once; only the
    /// waiting case is boxed, so a warm request costs no allocation for the layer's future.
    pub struct LookupFuture<F, B, E> {
        #[pin]
        kind: LookupKind<F, B, E>,
    }
}

pin_project! {
    #[project = LookupKindProj]
    enum LookupKind<F, B, E> {
        Now { #[pin] future: ResponseFuture<F, B> },
        Waiting { future: BoxedResponse<B, E> },
    }
}

impl<F, B, E> LookupFuture<F, B, E> {
    /// The inner service's future: the layer decided without waiting and let the request through.
    pub fn inner(future: F) -> Self {
        Self {
            kind: LookupKind::Now {
                future: ResponseFuture::inner(future),
            },
        }
    }

    /// A response made by the layer itself (a rejection), ready at once.
    pub fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: LookupKind::Now {
                future: ResponseFuture::ready(response),
            },
        }
    }

    /// The layer has to wait before it can decide: the lookup and whatever follows it, boxed.
    pub fn waiting(future: BoxedResponse<B, E>) -> Self {
        Self {
            kind: LookupKind::Waiting { future },
        }
    }
}

impl<F, B, E> Future for LookupFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            LookupKindProj::Now { future } => future.poll(cx),
            LookupKindProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for LookupFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            LookupKind::Now { future } => return future.fmt(f),
            LookupKind::Waiting { .. } => "waiting",
        };
        f.debug_struct("LookupFuture")
            .field("state", &state)
            .finish()
    }
}
