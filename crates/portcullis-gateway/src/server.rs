//! Serving: the accept loop with graceful shutdown, the entry service that logs each request, and logging setup.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use portcullis::Rejection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use crate::config::LogFormat;
use crate::proxy::strip_hop_by_hop;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets up logging to standard error. `RUST_LOG` selects levels and targets (`info` unless set), e.g.
/// `RUST_LOG=info,portcullis::site=debug`.
///
/// # Security
/// Events carry methods, paths, statuses and reasons: never headers, query strings or tokens.
pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A second initialisation (never in the binary) is not worth failing for.
    let _ = match format {
        LogFormat::Human => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
}

/// A shutdown signal that many servers can wait for.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

/// Triggers a [`Shutdown`].
#[derive(Debug)]
pub(crate) struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    /// A signal and its trigger.
    pub(crate) fn new() -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Self(rx))
    }

    /// Resolves when the trigger fires (or is dropped).
    pub(crate) async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub(crate) fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub(crate) async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Binds `addr`; with `fallback`, a port in use gives way to one the system picks.
pub(crate) async fn bind(addr: SocketAddr, fallback: bool) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Err(err) if fallback && addr.port() != 0 && err.kind() == std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await
        }
        other => other,
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown`, then stops accepting and gives open connections up to `grace`
/// to finish.
pub(crate) async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    shutdown: Shutdown,
    grace: Duration,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(target: "portcullis::gateway", server = name, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(target: "portcullis::gateway", server = name, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(target: "portcullis::gateway", server = name, "closing the connections still open after the grace period");
        }
    }
}

/// The service hyper calls: strips hop-by-hop headers from the request, runs the protected service, and logs
/// one line per request (method, path, status, rejection reason, time).
#[derive(Clone, Debug)]
pub(crate) struct Entry<S> {
    inner: S,
}

impl<S> Entry<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Entry<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        strip_hop_by_hop(req.headers_mut());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let inner = self.inner.clone();
        Box::pin(async move {
            let started = Instant::now();
            let response = inner.oneshot(req).await?;
            let reason = response
                .extensions()
                .get::<Rejection>()
                .map(|r| r.kind().code());
            tracing::info!(
                target: "portcullis::gateway",
                method = method.as_str(),
                path = path.as_str(),
                status = response.status().as_u16(),
                reason,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "request",
            );
            Ok(response)
        })
    }
}
