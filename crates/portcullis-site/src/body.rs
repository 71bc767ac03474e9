//! The request body the inner service receives.

/// The request body after the site layer: the original body, untouched, when the layer did not need to read it;
/// or exactly the bytes the layer read and checked.
///
/// It is the same either-body that the layers use for responses ([`portcullis_core::ResponseBody`]): the inner
/// body is polled in place, its error type is kept, and buffered bytes are yielded as one frame with an exact size.
/// axum's `Router::layer` and tonic's routes accept any body of `Bytes`, so they take this as it is; a plain hyper
/// service behind the layer takes `Request<SiteBody<Incoming>>` (or any body).
pub type SiteBody<B> = portcullis_core::ResponseBody<B>;
