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
        Rejected { response: Option<Response<ResponseBody<B>>> },
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
        Self::rejected(response)
    }

    /// A rejection, ready at once.
    pub fn rejected(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Rejected {
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
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
