//! A tonic gRPC service behind the Portcullis stack, written without protoc: the messages derive
//! [`prost::Message`], and the server and client are what `tonic-build` would generate, by hand.
//!
//! ```text
//! package portcullis.example;
//! service WhoAmI { rpc Get(GetRequest) returns (GetReply); }
//! ```
//!
//! The site is taken from the `x-cloud-id` metadata and checked against the token's grants; the handler reads
//! the [`AuthContext`] from `request.extensions()`. Rejections are gRPC statuses: `Unauthenticated` (no or an
//! invalid token), `PermissionDenied` (site not granted), `Unavailable` (issuer keys unreachable).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use portcullis::{AuthContext, AuthLayer, ConfigError, Portcullis};
use tokio::net::TcpListener;
use tonic::server::{Grpc, NamedService};
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{IntoRequest, Status};
use tonic_prost::ProstCodec;
use tower::layer::util::{Identity as NoLayer, Stack};

use crate::{Identity, Settings};

/// Listen address of the runnable example unless `PORTCULLIS_LISTEN` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// The metadata key that names the site.
pub const SITE_METADATA: &str = "x-cloud-id";
/// Fully qualified name of the service.
pub const SERVICE_NAME: &str = "portcullis.example.WhoAmI";
/// Path of the `Get` method.
pub const GET_PATH: &str = "/portcullis.example.WhoAmI/Get";

/// `GetRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRequest {}

/// `GetReply`: the caller as the handler saw it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetReply {
    /// The account id.
    #[prost(string, tag = "1")]
    pub account_id: String,
    /// The site the call is bound to, if it named one.
    #[prost(string, optional, tag = "2")]
    pub site_id: Option<String>,
    /// `oauth`, `personal_api_token` or `service_account_key`.
    #[prost(string, tag = "3")]
    pub auth_method: String,
    /// The scopes of the credential.
    #[prost(string, repeated, tag = "4")]
    pub scopes: Vec<String>,
    /// The products on the site the user can use.
    #[prost(string, repeated, tag = "5")]
    pub products: Vec<String>,
}

impl From<Identity> for GetReply {
    fn from(identity: Identity) -> Self {
        Self {
            account_id: identity.account_id,
            site_id: identity.site_id,
            auth_method: identity.auth_method,
            scopes: identity.scopes,
            products: identity.products,
        }
    }
}

/// The stack for this example: [`Settings::builder`], with the site read from the [`SITE_METADATA`] key and
/// never from the body (gRPC bodies are not JSON-RPC).
///
/// # Errors
/// What [`PortcullisBuilder::build`](portcullis::PortcullisBuilder::build) reports.
pub fn portcullis(settings: &Settings) -> Result<Portcullis, ConfigError> {
    settings
        .builder()?
        .configure_sites(|sites| sites.without_body().add_header(SITE_METADATA))
        .build()
}

/// The tonic router: [`WhoAmIServer`] behind [`Portcullis::layer`].
pub fn router(portcullis: &Portcullis) -> Router<Stack<AuthLayer, NoLayer>> {
    Server::builder()
        .layer(portcullis.layer())
        .add_service(WhoAmIServer::new())
}

/// Serves [`router`] on `listener`.
///
/// # Errors
/// What tonic's server reports.
pub async fn serve(
    listener: TcpListener,
    portcullis: &Portcullis,
) -> Result<(), tonic::transport::Error> {
    router(portcullis)
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
}

/// The handler of `Get`: answers with the context the stack put on the request.
async fn get(request: tonic::Request<GetRequest>) -> Result<tonic::Response<GetReply>, Status> {
    // Without the layer in front there is no context: fail closed.
    let context = request
        .extensions()
        .get::<AuthContext>()
        .ok_or_else(|| Status::internal("authentication is not configured"))?;
    Ok(tonic::Response::new(Identity::from(context).into()))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The `portcullis.example.WhoAmI` service, as `tonic-build` would generate it.
#[derive(Clone, Debug, Default)]
pub struct WhoAmIServer {
    _private: (),
}

impl WhoAmIServer {
    /// The service.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl NamedService for WhoAmIServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for WhoAmIServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            GET_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<GetReply, GetRequest>::default());
                Ok(grpc.unary(tower::service_fn(get), req).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) }),
        }
    }
}

/// A client of `portcullis.example.WhoAmI`, as `tonic-build` would generate it.
#[derive(Clone, Debug)]
pub struct WhoAmIClient {
    inner: tonic::client::Grpc<Channel>,
}

impl WhoAmIClient {
    /// Connects to `dst`, e.g. `http://127.0.0.1:50051`.
    ///
    /// # Errors
    /// An invalid URI or a failed connection.
    pub async fn connect(dst: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(dst.into())?.connect().await?;
        Ok(Self::new(channel))
    }

    /// A client over `channel`.
    #[must_use]
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    /// Calls `Get`.
    ///
    /// # Errors
    /// The status the server (or the stack in front of it) answered.
    pub async fn get(
        &mut self,
        request: impl IntoRequest<GetRequest>,
    ) -> Result<tonic::Response<GetReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service was not ready: {e}")))?;
        self.inner
            .unary(
                request.into_request(),
                PathAndQuery::from_static(GET_PATH),
                ProstCodec::<GetRequest, GetReply>::default(),
            )
            .await
    }
}

/// A `Get` request with an `authorization` value (e.g. `Bearer <token>`) and the site in [`SITE_METADATA`].
///
/// # Errors
/// `InvalidArgument` for a value that cannot be metadata.
pub fn get_request(
    authorization: Option<&str>,
    cloud_id: Option<&str>,
) -> Result<tonic::Request<GetRequest>, Status> {
    let mut request = tonic::Request::new(GetRequest {});
    let invalid = |_| Status::invalid_argument("not a valid metadata value");
    if let Some(authorization) = authorization {
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().map_err(invalid)?);
    }
    if let Some(cloud_id) = cloud_id {
        request
            .metadata_mut()
            .insert(SITE_METADATA, cloud_id.parse().map_err(invalid)?);
    }
    Ok(request)
}
