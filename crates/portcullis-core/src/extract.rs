//! axum extractors for what the layers put into the request extensions (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{AuthContext, Principal};

/// The extractor found nothing: the layer that inserts it is not in front of this handler. That is a server
/// configuration error, answered with 500; it never lets the request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the Portcullis layers are not in front of this handler")]
pub struct MissingExtension(&'static str);

impl IntoResponse for MissingExtension {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "authentication is not configured for this route",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = MissingExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or(MissingExtension("AuthContext"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = MissingExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(MissingExtension("Principal"))
    }
}
