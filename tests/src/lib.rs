//! Helpers shared by the workspace-level integration tests: a real HTTP/1.1 server on 127.0.0.1 for a tower
//! service, the raw client of `portcullis-test-support`, and [`Expect`], what a rejection must look like, checked
//! by one function so that each test lists its cases.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use portcullis_test_support::LoopbackServer;
pub use portcullis_test_support::{RawResponse, send_raw};
use tokio::task::JoinHandle;

/// A tower service on an ephemeral loopback port, stopped when dropped.
#[derive(Debug)]
pub struct TestServer(LoopbackServer);

impl TestServer {
    /// Serves `service` over HTTP/1.1 on 127.0.0.1.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start<S, B>(service: S) -> Self
    where
        S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Self(LoopbackServer::start(TowerToHyperService::new(service)).await)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

/// A spawned task (a server a test runs), aborted when dropped.
#[derive(Debug)]
pub struct Spawned(JoinHandle<()>);

impl Spawned {
    /// Spawns `task` on the current tokio runtime.
    pub fn new(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The `WWW-Authenticate` challenge a response must carry.
#[derive(Clone, Copy, Debug)]
pub enum WwwAuthenticate<'a> {
    /// Not looked at.
    Any,
    /// None at all.
    Absent,
    /// One that names the resource metadata (`resource_metadata="<url>"`), whatever else it says.
    Metadata,
    /// A `Bearer` challenge that names the resource metadata, with `error="<error>"` (and no `error` at all when
    /// `None`, RFC 6750 section 3) and, when given, `scope="<scope>"`.
    Bearer {
        /// The `error` parameter, or none.
        error: Option<&'a str>,
        /// The `scope` parameter, when it is looked at.
        scope: Option<&'a str>,
    },
}

impl WwwAuthenticate<'_> {
    /// Checks `challenge` (the header's value, if any) against this expectation; `metadata_url` is the resource
    /// metadata URL the challenge must name.
    #[track_caller]
    pub fn check(&self, challenge: Option<&str>, metadata_url: &str) {
        let names_metadata =
            |challenge: &str| challenge.contains(&format!("resource_metadata=\"{metadata_url}\""));
        match *self {
            Self::Any => {}
            Self::Absent => assert_eq!(challenge, None),
            Self::Metadata => {
                let challenge = challenge.expect("a WWW-Authenticate challenge");
                assert!(names_metadata(challenge), "{challenge}");
            }
            Self::Bearer { error, scope } => {
                let challenge = challenge.expect("a WWW-Authenticate challenge");
                assert!(challenge.starts_with("Bearer "), "{challenge}");
                assert!(names_metadata(challenge), "{challenge}");
                match error {
                    Some(error) => assert!(
                        challenge.contains(&format!("error=\"{error}\"")),
                        "{challenge}"
                    ),
                    None => assert!(!challenge.contains("error="), "{challenge}"),
                }
                if let Some(scope) = scope {
                    assert!(
                        challenge.contains(&format!("scope=\"{scope}\"")),
                        "{challenge}"
                    );
                }
            }
        }
    }
}

/// What a response must look like, checked by [`Expect::check`]: one row of a test's table of cases.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The status code.
    pub status: u16,
    /// The typed reason's code, `reason` in the JSON body; `None`: not looked at.
    pub reason: Option<&'a str>,
    /// The challenge.
    pub www_authenticate: WwwAuthenticate<'a>,
    /// Whether a `Retry-After` header must be there (`false`: not looked at).
    pub retry_after: bool,
}

impl<'a> Expect<'a> {
    /// `status`; nothing else is looked at.
    pub const fn status(status: u16) -> Self {
        Self {
            status,
            reason: None,
            www_authenticate: WwwAuthenticate::Any,
            retry_after: false,
        }
    }

    /// `status` with the typed reason `reason` in a JSON body.
    pub const fn rejected(status: u16, reason: &'a str) -> Self {
        Self {
            reason: Some(reason),
            ..Self::status(status)
        }
    }

    /// With a `Bearer` challenge naming the metadata, with `error` (none when `None`); its scope not looked at.
    pub const fn bearer(self, error: Option<&'a str>) -> Self {
        Self {
            www_authenticate: WwwAuthenticate::Bearer { error, scope: None },
            ..self
        }
    }

    /// With a `Bearer` challenge naming the metadata, with `error` (none when `None`) and `scope`.
    pub const fn bearer_scope(self, error: Option<&'a str>, scope: &'a str) -> Self {
        Self {
            www_authenticate: WwwAuthenticate::Bearer {
                error,
                scope: Some(scope),
            },
            ..self
        }
    }

    /// With this challenge.
    pub const fn challenge(self, www_authenticate: WwwAuthenticate<'a>) -> Self {
        Self {
            www_authenticate,
            ..self
        }
    }

    /// With a `Retry-After` header.
    pub const fn retry_after(self) -> Self {
        Self {
            retry_after: true,
            ..self
        }
    }

    /// Checks `response`; `metadata_url` is the resource metadata URL a challenge must name.
    #[track_caller]
    pub fn check(&self, response: &RawResponse, metadata_url: &str) {
        self.check_case(response, metadata_url, "");
    }

    /// Like [`Expect::check`], with `case` in the failure messages.
    #[track_caller]
    pub fn check_case(&self, response: &RawResponse, metadata_url: &str, case: &str) {
        assert_eq!(response.status, self.status, "{case}: {response:?}");
        if let Some(reason) = self.reason {
            // A JSON-RPC error answer carries the reason in its `data`.
            let json = response.json();
            let found = json["reason"]
                .as_str()
                .or_else(|| json["error"]["data"]["reason"].as_str());
            assert_eq!(found, Some(reason), "{case}: {}", response.body);
        }
        self.www_authenticate
            .check(response.header("www-authenticate"), metadata_url);
        if self.retry_after {
            assert!(
                response.header("retry-after").is_some(),
                "{case}: {response:?}"
            );
        }
    }
}
