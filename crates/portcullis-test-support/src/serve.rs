//! [`LoopbackServer`]: any hyper service over HTTP/1.1 on `127.0.0.1:0`, stopped when dropped.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};

/// A hyper service served over HTTP/1.1 on an ephemeral loopback port.
///
/// Dropping it stops the accept loop and every open connection with it, so a test that drops its server sees
/// the port refuse connections; [`LoopbackServer::detach`] keeps it serving until the runtime ends instead.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    /// `None` once detached.
    task: Option<AbortHandle>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0` and serves `service` on the current tokio runtime, one task per connection.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start<S, B>(service: S) -> Self
    where
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        // The accept loop owns the connections' JoinSet: aborting it aborts them too.
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                // Reap finished connection tasks so that the set does not grow forever.
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. EMFILE: back off briefly rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    // Connection errors (a client hanging up mid-request...) are expected in failure tests.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            task: Some(task.abort_handle()),
        }
    }

    /// Serves `handler`, an async function of the request, as [`LoopbackServer::start`] does.
    pub async fn start_fn<F, Fut, B>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        Self::start(hyper::service::service_fn(move |req| {
            let answer = handler(req);
            async move { Ok::<_, Infallible>(answer.await) }
        }))
        .await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Lets the server run until the runtime ends, and returns its address.
    pub fn detach(mut self) -> SocketAddr {
        self.task = None;
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
