//! The harness of the site layer's tests: a counting inner service that records what reached it, the outcome of
//! one request, and the principals and requests the tests send.

#![allow(dead_code)] // Each test file uses its own part of the harness.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use portcullis_core::{
    AccessibleSites, AuthMethod, Challenge, JsonRpcCall, Principal, Rejection, RejectionKind,
    ResponseBody, Site, SiteId,
};
use portcullis_site::{BindSiteLayer, SiteBody};
use tower::{ServiceBuilder, ServiceExt};

pub(crate) const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// What the inner service saw.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) site: Option<Site>,
    pub(crate) accessible: Option<AccessibleSites>,
    pub(crate) call: Option<JsonRpcCall>,
    pub(crate) body: Bytes,
}

/// What came back, and what the inner service saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: StatusCode,
    pub(crate) challenge: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) grpc_status: Option<String>,
    pub(crate) reason: Option<RejectionKind>,
    pub(crate) body: Bytes,
    pub(crate) inner_calls: usize,
    pub(crate) seen: Option<Seen>,
}

impl Outcome {
    /// Asserts a rejection: status, `WWW-Authenticate`, typed reason, error body, and that the inner service was
    /// never called.
    pub(crate) fn assert_rejected(&self, kind: RejectionKind, case: &str) {
        assert_eq!(self.status, kind.status(), "{case}: status");
        assert_eq!(self.reason, Some(kind), "{case}: reason");
        assert_eq!(self.inner_calls, 0, "{case}: the inner service was called");
        assert_eq!(
            self.challenge.as_deref(),
            expected_challenge(kind).as_deref(),
            "{case}: WWW-Authenticate"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&self.body).expect("a rejection has a JSON body");
        let reason = if kind.is_jsonrpc() {
            // Answered as a JSON-RPC error, the reason in its `data`.
            &body["error"]["data"]["reason"]
        } else {
            &body["reason"]
        };
        assert_eq!(*reason, kind.code(), "{case}: body reason");
        if kind == RejectionKind::TemporarilyUnavailable {
            assert_eq!(
                self.retry_after.as_deref(),
                Some("5"),
                "{case}: Retry-After"
            );
        }
    }

    /// Asserts a pass: 200, no rejection, one call of the inner service, which read exactly `sent`.
    pub(crate) fn assert_passed(&self, sent: &[u8], case: &str) -> &Seen {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{case}: status ({:?})",
            self.reason
        );
        assert_eq!(self.reason, None, "{case}: reason");
        assert_eq!(self.inner_calls, 1, "{case}: inner calls");
        assert_eq!(
            &self.body[..],
            b"inner",
            "{case}: the inner service's answer"
        );
        let seen = self.seen.as_ref().expect("the inner service ran");
        assert_eq!(
            &seen.body[..],
            sent,
            "{case}: body reaching the inner service"
        );
        seen
    }

    /// Asserts a pass bound to `site`, with the principal's grants and `call` in the extensions.
    pub(crate) fn assert_bound(&self, sent: &[u8], site: &str, case: &str) -> &Seen {
        let seen = self.assert_passed(sent, case);
        assert_eq!(
            seen.site.as_ref().map(|s| s.id().as_str()),
            Some(site),
            "{case}: bound site"
        );
        let accessible = seen
            .accessible
            .as_ref()
            .expect("a bound request carries the accessible sites");
        assert!(accessible.contains(&id(site)), "{case}: accessible sites");
        seen
    }

    /// Asserts a pass with no site bound.
    pub(crate) fn assert_unbound(&self, sent: &[u8], case: &str) -> &Seen {
        let seen = self.assert_passed(sent, case);
        assert_eq!(seen.site, None, "{case}: bound site");
        seen
    }
}

/// The `WWW-Authenticate` value a rejection must carry, spelled out rather than derived from the code under test.
pub(crate) fn expected_challenge(kind: RejectionKind) -> Option<String> {
    if kind.is_jsonrpc() {
        return None;
    }
    match kind.status() {
        StatusCode::BAD_REQUEST => Some(format!(
            r#"Bearer error="invalid_request", error_description="{}", resource_metadata="{META}""#,
            kind.description()
        )),
        StatusCode::UNAUTHORIZED if kind == RejectionKind::MissingCredential => {
            Some(format!(r#"Bearer resource_metadata="{META}""#))
        }
        StatusCode::FORBIDDEN
            if matches!(
                kind,
                RejectionKind::SiteNotGranted | RejectionKind::SiteRequired
            ) =>
        {
            Some(format!(r#"Bearer resource_metadata="{META}""#))
        }
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::SERVICE_UNAVAILABLE => None,
        other => panic!("no expectation written for {kind:?} ({other})"),
    }
}

pub(crate) fn challenge() -> Challenge {
    Challenge::new(META).expect("valid metadata url")
}

pub(crate) fn layer() -> BindSiteLayer {
    BindSiteLayer::new(challenge())
}

pub(crate) fn id(site: &str) -> SiteId {
    SiteId::parse(site).expect("valid site id")
}

/// A principal whose credential granted `sites`.
pub(crate) fn granted(sites: &[&str]) -> Principal {
    Principal::builder(AuthMethod::OAuth, "user-1")
        .with_site_grants(sites.iter().map(|s| id(s)))
        .verified()
}

/// A principal whose credential says nothing about sites (no claim).
pub(crate) fn without_claim(subject: &str) -> Principal {
    Principal::builder(AuthMethod::OAuth, subject).verified()
}

/// A `tools/call` naming its site with `site`, raw JSON text (so that it can be a number, an escape...).
pub(crate) fn tools_call(site: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"cloudId":{site},"query":"q"}}}}}}"#
    )
}

/// A `POST /mcp` with `content-type: application/json` from a principal granted `site-a`.
pub(crate) fn post(body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    post_as(granted(&["site-a"]), "/mcp", body)
}

pub(crate) fn post_as(
    principal: Principal,
    uri: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut req = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body.into()))
        .expect("valid request");
    req.extensions_mut().insert(principal);
    req
}

pub(crate) async fn send<B>(layer: BindSiteLayer, req: Request<B>) -> Outcome
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Debug,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let service = {
        let calls = Arc::clone(&calls);
        let seen = Arc::clone(&seen);
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req: Request<SiteBody<B>>| {
                let calls = Arc::clone(&calls);
                let seen = Arc::clone(&seen);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.expect("readable body").to_bytes();
                    *seen.lock().expect("lock") = Some(Seen {
                        site: parts.extensions.get::<Site>().cloned(),
                        accessible: parts.extensions.get::<AccessibleSites>().cloned(),
                        call: parts.extensions.get::<JsonRpcCall>().cloned(),
                        body,
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }
            })
    };
    let response: Response<ResponseBody<Full<Bytes>>> =
        service.oneshot(req).await.expect("infallible");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    };
    let status = response.status();
    let challenge = header(WWW_AUTHENTICATE.as_str());
    let retry_after = header(RETRY_AFTER.as_str());
    let grpc_status = header("grpc-status");
    let reason = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("infallible")
        .to_bytes();
    let seen = seen.lock().expect("lock").take();
    Outcome {
        status,
        challenge,
        retry_after,
        grpc_status,
        reason,
        body,
        inner_calls: calls.load(Ordering::SeqCst),
        seen,
    }
}
