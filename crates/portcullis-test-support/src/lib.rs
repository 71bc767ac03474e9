//! Test helpers shared by the Portcullis crates' tests and benches, in one place:
//!
//! * [`LoopbackServer`]: any hyper service on `127.0.0.1:0`, stopped when dropped;
//! * [`MockServer`]: a scriptable server for the remote sources the layers ask: answers by path and method that
//!   can be changed while it runs (status, content type, body, delay), hit counts, the last request received;
//! * [`MockAuthServer`]: an authorization server built on it (JWKS, discovery, introspection, API-token verifier);
//! * [`jwt`]: the fixture keys of a test issuer, their JWKS, and token signing;
//! * [`LogCapture`]: a `tracing` writer whose lines a test can read;
//! * [`send_raw`]: a raw HTTP/1.1 client, for bytes no client library would send;
//! * [`with_authorization`], [`body_bytes`]: a request carrying a credential, a whole body collected.
//!
//! It depends on no Portcullis crate, so that any of them can use it in its tests without a cycle.

mod auth;
pub mod jwt;
mod logs;
mod mock;
mod raw;
mod serve;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt as _, Full};

pub use auth::{Discovery, MockAuthServer};
pub use logs::LogCapture;
pub use mock::{Answer, MockServer, Received};
pub use raw::{RawResponse, raw_request, send_raw};
pub use serve::LoopbackServer;

/// Reads a whole body into bytes.
///
/// # Panics
/// When the body fails.
pub async fn body_bytes<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.expect("body").to_bytes()
}

/// A bodiless request to `uri` with this `Authorization` header.
///
/// # Panics
/// When `uri` is not a URI or `authorization` not a header value.
pub fn with_authorization(uri: &str, authorization: &str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.uri_mut() = uri.parse().expect("a URI");
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_str(authorization).expect("a header value"),
    );
    request
}
