//! [`BindMcpSessionsLayer`]: an MCP session belongs to the principal that started it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderName, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use portcullis_core::{
    Challenge, Principal, PrincipalKey, Protocol, Rejection, RejectionKind, ResponseBody,
    ResponseFuture,
};
use portcullis_lookup::ExpiringCache;
use tower_layer::Layer;
use tower_service::Service;

/// The session header of the MCP streamable HTTP transport.
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The request headers an MCP client sends over streamable HTTP, for a CORS allow list in front of the stack: its
/// token and body type, the session and stream resumption of earlier revisions, and the protocol version, method
/// and name that 2026-07-28 mirrors from the body. Add the `Mcp-Param-*` headers your tools annotate.
pub const MCP_REQUEST_HEADERS: [HeaderName; 7] = [
    http::header::AUTHORIZATION,
    http::header::CONTENT_TYPE,
    MCP_SESSION_ID,
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
];

/// How many sessions [`BindMcpSessionsLayer::new`] keeps at most.
pub const DEFAULT_SESSION_CAPACITY: u64 = 100_000;
/// How long [`BindMcpSessionsLayer::new`] keeps a session without a request: an hour.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(3600);

/// The longest session id accepted (the MCP transport asks for visible ASCII only).
const MAX_SESSION_ID_LEN: usize = 256;

/// A session: its id and who started it. No `Debug`: neither is ever printed.
struct Session {
    /// The same allocation as the cache key.
    id: Arc<str>,
    /// Who started it.
    owner: PrincipalKey,
}

/// Layer that applies [`BindMcpSessions`]; part of the stack that [`Portcullis`](crate::Portcullis) builds,
/// right after token validation.
#[derive(Clone)]
#[must_use]
pub struct BindMcpSessionsLayer {
    /// `None`: off, every request passes untouched (a service that is not an MCP server).
    shared: Option<Arc<Shared>>,
}

struct Shared {
    challenge: Challenge,
    /// Shared, so that the hit on every session request copies a pointer, not the id or the owner's strings.
    sessions: ExpiringCache<Arc<str>, Arc<Session>>,
    idle: Duration,
}

impl BindMcpSessionsLayer {
    /// Binds sessions for at most 100 000 sessions, each forgotten after an hour without a request.
    pub fn new(challenge: Challenge) -> Self {
        Self::with_limits(challenge, DEFAULT_SESSION_CAPACITY, DEFAULT_SESSION_IDLE)
    }

    /// Binds at most `capacity` sessions, each forgotten after `idle` without a request (never sooner than seven
    /// eighths of it: a session in use is renewed once an eighth of `idle` has passed). A forgotten session is
    /// answered 404, after which an MCP client starts a new one.
    pub fn with_limits(challenge: Challenge, capacity: u64, idle: Duration) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                challenge,
                sessions: ExpiringCache::new(capacity),
                idle,
            })),
        }
    }

    /// Binds nothing: every request passes untouched, whatever `Mcp-Session-Id` it carries. For a service that is
    /// not an MCP server and whose clients use that header for something else; an MCP server should keep its
    /// sessions bound.
    pub fn off() -> Self {
        Self { shared: None }
    }
}

impl fmt::Debug for BindMcpSessionsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindMcpSessionsLayer")
            .field("enabled", &self.shared.is_some())
            .field(
                "idle",
                &self
                    .shared
                    .as_ref()
                    .map_or(Duration::ZERO, |shared| shared.idle),
            )
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BindMcpSessionsLayer {
    type Service = BindMcpSessions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BindMcpSessions {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Middleware that binds each MCP session (`Mcp-Session-Id`) to the principal that started it, as the MCP
/// security best practices ask: a session id is never a credential, and one user's session id is useless with
/// another user's token.
///
/// # Behaviour
/// - A request without `Mcp-Session-Id` passes. When it is a `POST` and the answer carries a new
///   `Mcp-Session-Id` (the server started a session: the transport starts one only in the answer to `initialize`,
///   which is a POST), the session is recorded as the principal's. A session id in the answer to any other
///   method starts nothing, so its later use is refused like any unknown session.
/// - A request with the session id of a session this principal started passes (and keeps the session alive).
/// - A request with any other session id (unknown, forgotten, or another principal's) is answered 404
///   [`RejectionKind::UnknownSession`] and never reaches the service: the MCP transport's answer for a session
///   that has ended, after which the client starts a new one. Whose session it was is not revealed.
/// - Two `Mcp-Session-Id` headers, or one that is not 1 to 256 visible ASCII characters, are 400.
/// - A successful `DELETE` ends the session, and so does a 404 from the service for it.
///
/// # Security
/// Fails closed without a [`Principal`] (401). Session ids are kept in memory only and never logged.
#[derive(Clone)]
pub struct BindMcpSessions<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S: fmt::Debug> fmt::Debug for BindMcpSessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindMcpSessions")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What to do with the session once the answer is known.
enum After {
    /// No session named: record one the answer starts, as this principal's.
    Record(Principal),
    /// A session named and allowed: forget it if the answer ends it.
    Watch { session: Arc<Session>, delete: bool },
}

pin_project! {
    /// Response future of [`BindMcpSessions`].
    pub struct SessionFuture<F, B> {
        #[pin]
        future: ResponseFuture<F, B>,
        after: Option<(After, Arc<Shared>)>,
    }
}

impl<F, B> fmt::Debug for SessionFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for SessionFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.future.poll(cx))?;
        if let Some((after, shared)) = this.after.take() {
            match after {
                After::Record(principal) => {
                    let mut started = response.headers().get_all(&MCP_SESSION_ID).iter();
                    // Only a new session is recorded: an answer that names a session already known never moves
                    // it to another principal.
                    if let (Some(id), None) = (started.next(), started.next())
                        && let Some(id) = session_id(id.as_bytes())
                        && shared.sessions.get(id).is_none()
                    {
                        let session = Session {
                            id: id.into(),
                            owner: principal.key().into_owned(),
                        };
                        let key = Arc::clone(&session.id);
                        shared.sessions.insert(key, Arc::new(session), shared.idle);
                    }
                }
                After::Watch { session, delete } => {
                    let ended = response.status() == StatusCode::NOT_FOUND
                        || (delete && response.status().is_success());
                    if ended {
                        shared.sessions.invalidate(&session.id);
                    }
                }
            }
        }
        Poll::Ready(Ok(response))
    }
}

/// A session id as the transport allows it: 1 to 256 visible ASCII characters.
fn session_id(value: &[u8]) -> Option<&str> {
    let valid = !value.is_empty()
        && value.len() <= MAX_SESSION_ID_LEN
        && value.iter().all(|b| (0x21..=0x7e).contains(b));
    valid.then(|| std::str::from_utf8(value).ok()).flatten()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BindMcpSessions<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = SessionFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(shared) = &self.shared else {
            return SessionFuture {
                future: ResponseFuture::inner(self.inner.call(req)),
                after: None,
            };
        };
        let refuse = |kind: RejectionKind, req: &Request<ReqBody>| {
            tracing::debug!(
                target: "portcullis::sessions",
                outcome = "rejected",
                reason = kind.code(),
                path = req.uri().path(),
            );
            let protocol = Protocol::detect(req.headers());
            SessionFuture {
                future: ResponseFuture::ready(
                    shared.challenge.respond(Rejection::new(kind), protocol),
                ),
                after: None,
            }
        };
        let Some(principal) = req.extensions().get::<Principal>() else {
            return refuse(RejectionKind::MissingCredential, &req);
        };
        let mut named = req.headers().get_all(&MCP_SESSION_ID).iter();
        let after = match (named.next(), named.next()) {
            // A session starts with the answer to `initialize`, which is a POST (MCP streamable HTTP): only
            // then is the answer watched for a new session id. Other requests without one cost nothing here.
            (None, _) if req.method() != Method::POST => {
                return SessionFuture {
                    future: ResponseFuture::inner(self.inner.call(req)),
                    after: None,
                };
            }
            (None, _) => After::Record(principal.clone()),
            (Some(_), Some(_)) => return refuse(RejectionKind::InvalidRequest, &req),
            (Some(value), None) => {
                let Some(id) = session_id(value.as_bytes()) else {
                    return refuse(RejectionKind::InvalidRequest, &req);
                };
                match shared.sessions.get_with_ttl(id) {
                    Some((session, left)) if session.owner.is(principal) => {
                        // Each request keeps the session alive for another idle period. The entry is renewed once
                        // an eighth of that period has passed, not on every request: a session in use is never
                        // forgotten sooner than seven eighths of the idle period after its last request.
                        if left < shared.idle - shared.idle / 8 {
                            // Only while the entry is there: a DELETE that ended the session meanwhile stays final.
                            let key = Arc::clone(&session.id);
                            shared
                                .sessions
                                .renew(key, Arc::clone(&session), shared.idle);
                        }
                        After::Watch {
                            session,
                            delete: req.method() == Method::DELETE,
                        }
                    }
                    _ => return refuse(RejectionKind::UnknownSession, &req),
                }
            }
        };
        let shared = Arc::clone(shared);
        SessionFuture {
            future: ResponseFuture::inner(self.inner.call(req)),
            after: Some((after, shared)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_visible_ascii_of_bounded_length() {
        assert_eq!(session_id(b"a1-B2_c3"), Some("a1-B2_c3"));
        assert_eq!(session_id(&[b'x'; 256]).map(str::len), Some(256));
        for bad in [&b""[..], b"a b", b"a\tb", b"caf\xc3\xa9", &[b'x'; 257]] {
            assert_eq!(session_id(bad), None, "{bad:?}");
        }
    }
}
