//! [`MockServer`]: a scriptable HTTP/1.1 server on `127.0.0.1:0` for the remote sources the layers ask (JWKS,
//! introspection, policies, grants, profiles...). Routes by path and method to an [`Answer`] that a test can change
//! while the server runs, counts the hits per path and records the last request it received.

use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::LoopbackServer;

/// Makes a body from the request it answers.
type MakeBody = Arc<dyn Fn(&Received) -> Bytes + Send + Sync>;

#[derive(Clone)]
enum AnswerBody {
    Fixed(Bytes),
    Made(MakeBody),
}

/// What a route answers. The fields can be changed in place with [`MockServer::update`] while the server runs;
/// a request reads its answer after its delay, so a change made meanwhile is the one it gets.
#[derive(Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// Other headers, in order.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering; the hit is counted, and the request recorded, on arrival.
    pub delay: Duration,
    body: AnswerBody,
}

impl Answer {
    /// `status` with `body` and no `content-type`.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: AnswerBody::Fixed(body.into()),
        }
    }

    /// `status` with `value` serialised, labelled `application/json`.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::new(status, Bytes::new()).with_json(value)
    }

    /// `status` with `text`, labelled `text/plain`.
    pub fn text(status: u16, text: &'static str) -> Self {
        Self::new(status, Bytes::from_static(text.as_bytes())).with_content_type("text/plain")
    }

    /// `status` with a body made from each request (e.g. from its query), and no `content-type`.
    pub fn from_fn(status: u16, body: impl Fn(&Received) -> Bytes + Send + Sync + 'static) -> Self {
        Self {
            body: AnswerBody::Made(Arc::new(body)),
            ..Self::new(status, Bytes::new())
        }
    }

    /// With this `content-type`.
    #[must_use]
    pub fn with_content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// With this header added.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// With this delay before the answer.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// With `value` serialised as the body, labelled `application/json`.
    #[must_use]
    pub fn with_json(mut self, value: &Value) -> Self {
        self.set_json(value);
        self
    }

    /// Replaces the body; the `content-type` stays as it is.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = AnswerBody::Fixed(body.into());
    }

    /// Replaces the body with `value` serialised, labelled `application/json`.
    pub fn set_json(&mut self, value: &Value) {
        self.set_body(serde_json::to_vec(value).expect("JSON serialises"));
        self.content_type = Some("application/json".to_owned());
    }

    /// Sets header `name` to `value`, replacing any earlier one; `None` removes it.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }

    fn respond(&self, received: &Received) -> Response<Full<Bytes>> {
        let body = match &self.body {
            AnswerBody::Fixed(bytes) => bytes.clone(),
            AnswerBody::Made(make) => make(received),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = StatusCode::from_u16(self.status).expect("valid status code");
        let headers = response.headers_mut();
        if let Some(content_type) = &self.content_type {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_str(content_type).expect("valid content-type"),
            );
        }
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                HeaderValue::from_str(value).expect("valid header value"),
            );
        }
        response
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body: &dyn fmt::Debug = match &self.body {
            AnswerBody::Fixed(bytes) => bytes,
            AnswerBody::Made(_) => &"<made per request>",
        };
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("headers", &self.headers)
            .field("delay", &self.delay)
            .field("body", body)
            .finish()
    }
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (empty when it could not be read).
    pub body: Bytes,
}

impl Received {
    /// The first value of header `name`, as (lossy UTF-8) text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

#[derive(Debug)]
struct Route {
    /// `None`: any method.
    method: Option<Method>,
    path: String,
    answer: Answer,
    hits: usize,
    last: Option<Received>,
}

#[derive(Debug)]
struct State {
    routes: Vec<Route>,
    fallback: Answer,
    other_hits: usize,
    last: Option<Received>,
}

/// Which answer a request gets.
#[derive(Clone, Copy)]
enum Target {
    Route(usize),
    WrongMethod,
    Fallback,
}

#[derive(Debug)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not cascade into every later request.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scriptable HTTP/1.1 server on `127.0.0.1:0`, stopped when dropped.
///
/// A request goes to the route of its path and method; a known path with another method is answered
/// `405 Method Not Allowed`; an unknown path gets the fallback answer (`404 Not Found` unless set). Both of those
/// count as [`MockServer::other_hits`].
#[derive(Debug)]
pub struct MockServer {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and starts serving, with no routes yet, on the current tokio runtime.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared(Mutex::new(State {
            routes: Vec::new(),
            fallback: Answer::text(404, "not found"),
            other_hits: 0,
            last: None,
        })));
        let handler = Arc::clone(&shared);
        let server = LoopbackServer::start(hyper::service::service_fn(move |req| {
            handle(Arc::clone(&handler), req)
        }))
        .await;
        Self { server, shared }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base(&self) -> String {
        self.server.url("")
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Answers `method` on `path` with `answer` (replacing the answer of that route if there is one).
    pub fn route(&self, method: Method, path: &str, answer: Answer) {
        self.add(Some(method), path, answer);
    }

    /// Answers every method on `path` with `answer`.
    pub fn route_any(&self, path: &str, answer: Answer) {
        self.add(None, path, answer);
    }

    /// What an unknown path gets.
    pub fn fallback(&self, answer: Answer) {
        self.shared.lock().fallback = answer;
    }

    /// Replaces the answer of every route on `path`.
    ///
    /// # Panics
    /// When no route is on `path`.
    pub fn answer(&self, path: &str, answer: Answer) {
        self.update(path, |a| *a = answer.clone());
    }

    /// Changes the answer of every route on `path` in place.
    ///
    /// # Panics
    /// When no route is on `path`.
    pub fn update(&self, path: &str, mut change: impl FnMut(&mut Answer)) {
        let mut state = self.shared.lock();
        let mut found = false;
        for route in state.routes.iter_mut().filter(|r| r.path == path) {
            change(&mut route.answer);
            found = true;
        }
        assert!(found, "no route on {path}");
    }

    /// Changes every answer in place, the fallback's too.
    pub fn update_all(&self, mut change: impl FnMut(&mut Answer)) {
        let mut state = self.shared.lock();
        for route in &mut state.routes {
            change(&mut route.answer);
        }
        change(&mut state.fallback);
    }

    /// Requests the routes on `path` answered, counted on arrival.
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .lock()
            .routes
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.hits)
            .sum()
    }

    /// Requests to an unknown path or with a method its path does not answer.
    pub fn other_hits(&self) -> usize {
        self.shared.lock().other_hits
    }

    /// The last request a route on `path` answered.
    pub fn last_request(&self, path: &str) -> Option<Received> {
        let state = self.shared.lock();
        let mut routes = state.routes.iter().filter(|r| r.path == path);
        // One route per method: the most recent request among them is not known, so a path with several method
        // routes has no single "last request".
        let route = routes.next()?;
        assert!(routes.next().is_none(), "several routes on {path}");
        route.last.clone()
    }

    /// The last request received, on any path.
    pub fn last_received(&self) -> Option<Received> {
        self.shared.lock().last.clone()
    }

    fn add(&self, method: Option<Method>, path: &str, answer: Answer) {
        let mut state = self.shared.lock();
        match state
            .routes
            .iter_mut()
            .find(|r| r.path == path && r.method == method)
        {
            Some(route) => route.answer = answer,
            None => state.routes.push(Route {
                method,
                path: path.to_owned(),
                answer,
                hits: 0,
                last: None,
            }),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = {
        let mut state = shared.lock();
        let path = req.uri().path();
        let index = state
            .routes
            .iter()
            .position(|r| r.path == path && r.method.as_ref().is_none_or(|m| m == req.method()));
        match index {
            Some(index) => {
                state.routes[index].hits += 1;
                Target::Route(index)
            }
            None => {
                state.other_hits += 1;
                if state.routes.iter().any(|r| r.path == path) {
                    Target::WrongMethod
                } else {
                    Target::Fallback
                }
            }
        }
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let received = Received {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let delay = {
        let mut state = shared.lock();
        state.last = Some(received.clone());
        match target {
            Target::Route(index) => {
                state.routes[index].last = Some(received.clone());
                state.routes[index].answer.delay
            }
            Target::WrongMethod => Duration::ZERO,
            Target::Fallback => state.fallback.delay,
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // Read after the delay, so that a test can change the answer meanwhile.
    let answer = {
        let state = shared.lock();
        match target {
            Target::Route(index) => state.routes[index].answer.clone(),
            Target::WrongMethod => Answer::text(405, "method not allowed"),
            Target::Fallback => state.fallback.clone(),
        }
    };
    Ok(answer.respond(&received))
}
