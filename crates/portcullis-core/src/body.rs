//! The response body of every Portcullis layer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Either the inner service's body, untouched, or the small body of a rejection.
    ///
    /// This lets a layer answer with its own response whatever body type the inner service uses (axum, tonic and
    /// hyper bodies alike) without boxing: the inner body is polled in place, and its error type is kept.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

/// An empty body (what a CORS layer outside the stack answers a preflight with).
impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body made by a layer (a rejection).
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty body made by a layer.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Full { data } => f
                .debug_struct("ResponseBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;

    #[tokio::test]
    async fn full_body_yields_its_bytes_once_with_exact_size() {
        let body = ResponseBody::<Full<Bytes>>::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(bytes, "hello");
        assert!(ResponseBody::<Full<Bytes>>::empty().is_end_stream());
        assert!(ResponseBody::<Full<Bytes>>::full("").is_end_stream());
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = ResponseBody::new(Full::new(Bytes::from_static(b"inner")));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(bytes, "inner");
    }
}
