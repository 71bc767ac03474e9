//! An existing plain hyper 1 service (no axum, no tower of its own) wrapped with
//! [`Portcullis::protect`] and served with hyper-util.
//!
//! [`Notes`] implements `hyper::service::Service`, as services written for hyper do. The stack is tower
//! middleware, so [`HyperToTower`] adapts the service to tower, [`Portcullis::protect`] wraps it (the resource
//! metadata and `/health` stay public, everything else is authenticated), and hyper-util's
//! `TowerToHyperService` hands the result back to hyper's connection builder.
//!
//! | route | |
//! | --- | --- |
//! | `GET /sites/{cloudId}/whoami` | the [`AuthContext`] the service sees, as JSON; the site comes from the path |
//! | `GET /health` | public |
//! | `GET /.well-known/oauth-protected-resource` | the public RFC 9728 metadata |

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use portcullis::{AuthContext, AuthService, ConfigError, Portcullis, Protected};
use tokio::net::TcpListener;

use crate::{Identity, Settings};

/// Listen address of the runnable example unless `PORTCULLIS_LISTEN` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Where requests name their site.
pub const SITE_TEMPLATE: &str = "/sites/{cloudId}/...";

/// The stack for this example: [`Settings::builder`], with the site read from the path ([`SITE_TEMPLATE`]) and
/// never from the body.
///
/// # Errors
/// What [`PortcullisBuilder::build`](portcullis::PortcullisBuilder::build) reports.
pub fn portcullis(settings: &Settings) -> Result<Portcullis, ConfigError> {
    settings
        .builder()?
        .configure_sites(|sites| sites.without_body().add_path_template(SITE_TEMPLATE))
        .build()
}

/// The existing service, protected: ready for `TowerToHyperService`.
pub fn service(portcullis: &Portcullis) -> Protected<AuthService<HyperToTower<Notes>>> {
    portcullis.protect(HyperToTower(Notes::new()))
}

/// Serves [`service`] on `listener` over HTTP/1.1 and HTTP/2 (prior knowledge), one task per connection.
///
/// # Errors
/// None so far: a failed `accept` is retried after a pause.
pub async fn serve(listener: TcpListener, portcullis: &Portcullis) -> std::io::Result<()> {
    let service = service(portcullis);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // Typically out of file descriptors: give connections time to close rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            // A client that goes away mid-request is not the server's problem.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The existing service: knows nothing about tokens, reads the [`AuthContext`] from the request extensions.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    _private: (),
}

impl Notes {
    /// The service.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B> hyper::service::Service<Request<B>> for Notes {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let segments: Vec<&str> = req.uri().path().split('/').collect();
        let response = match (req.method(), segments.as_slice()) {
            (&Method::GET, ["", "sites", _site, "whoami"]) => {
                match req.extensions().get::<AuthContext>() {
                    Some(context) => json(&Identity::from(context)),
                    // Without the stack in front there is no context: fail closed.
                    None => status(StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
            _ => status(StatusCode::NOT_FOUND),
        };
        ready(Ok(response))
    }
}

fn json(identity: &Identity) -> Response<Full<Bytes>> {
    match serde_json::to_vec(identity) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

/// Adapts a `hyper::service::Service` (`call(&self)`, always ready) to a `tower::Service`.
#[derive(Clone, Debug)]
pub struct HyperToTower<S>(pub S);

impl<S, R> tower::Service<R> for HyperToTower<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.0.call(req)
    }
}
