//! How a rejection becomes a response: RFC 6750 / RFC 9728 for HTTP, status trailers-only for gRPC.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::{ConfigError, JsonRpcId, Rejection, RejectionKind, ResponseBody, ScopeList};

/// The characters gRPC implementations percent-encode in `grpc-message` (the set tonic uses).
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}');

const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Which wire protocol a request speaks, which decides how a rejection is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP: status code, `WWW-Authenticate`, JSON body.
    Http,
    /// gRPC (`content-type: application/grpc...`): HTTP 200 with `grpc-status` and `grpc-message`.
    Grpc,
}

impl Protocol {
    /// Detects the protocol from the request headers.
    #[must_use]
    pub fn detect(headers: &HeaderMap) -> Self {
        const GRPC: &[u8] = b"application/grpc";
        match headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes) {
            Some(ct) if ct.len() >= GRPC.len() && ct[..GRPC.len()].eq_ignore_ascii_case(GRPC) => {
                Self::Grpc
            }
            _ => Self::Http,
        }
    }
}

/// How a protected resource answers a rejected request: the `WWW-Authenticate: Bearer` challenge with its
/// `resource_metadata` URL (RFC 9728 section 5.1) and optional `scope`, and the `Retry-After` of a 503.
///
/// Every layer holds one (cheap to clone) and renders its rejections through [`Challenge::respond`], so that all
/// layers answer alike.
#[derive(Clone, Debug)]
pub struct Challenge(Arc<Inner>);

#[derive(Clone, Debug)]
struct Inner {
    resource_metadata: Box<str>,
    scope: Option<ScopeList>,
    retry_after: Duration,
}

impl Challenge {
    /// A challenge pointing clients to the protected resource metadata at `resource_metadata_url`.
    ///
    /// # Errors
    /// The URL must be absolute `https` (or `http` on a loopback host, for development), with no user info or
    /// fragment, and only visible ASCII other than `"` and `\`, so that it can be quoted in a header as is.
    pub fn new(resource_metadata_url: &str) -> Result<Self, ConfigError> {
        crate::check_url("resource_metadata", resource_metadata_url)?;
        Ok(Self(Arc::new(Inner {
            resource_metadata: resource_metadata_url.into(),
            scope: None,
            retry_after: DEFAULT_RETRY_AFTER,
        })))
    }

    /// Scopes to advertise in 401 challenges (`scope="..."`), telling clients what to ask for.
    #[must_use]
    pub fn with_scope(mut self, scope: ScopeList) -> Self {
        Arc::make_mut(&mut self.0).scope = (!scope.is_empty()).then_some(scope);
        self
    }

    /// Default `Retry-After` of a 503 (5 seconds unless set).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        Arc::make_mut(&mut self.0).retry_after = after;
        self
    }

    /// The resource metadata URL placed in every challenge.
    #[must_use]
    pub fn resource_metadata(&self) -> &str {
        &self.0.resource_metadata
    }

    /// The `WWW-Authenticate` value for a rejection, or `None` for statuses that carry no challenge (413, 503).
    #[must_use]
    pub fn www_authenticate(&self, rejection: &Rejection) -> Option<HeaderValue> {
        let kind = rejection.kind();
        let status = kind.status();
        if !matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) || kind.is_jsonrpc()
        {
            // Neither is about the credential: no challenge.
            return None;
        }
        let mut value = String::from("Bearer ");
        if let Some(error) = kind.oauth_error() {
            // Neither the error code nor the description comes from the request: both are fixed strings.
            let _ = write!(
                value,
                "error=\"{error}\", error_description=\"{}\", ",
                kind.description()
            );
        }
        let scope = match kind {
            RejectionKind::InsufficientScope => rejection.required_scopes(),
            _ if status == StatusCode::UNAUTHORIZED => self.0.scope.as_ref(),
            _ => None,
        };
        if let Some(scope) = scope.filter(|s| !s.is_empty()) {
            let _ = write!(value, "scope=\"{scope}\", ");
        }
        let _ = write!(value, "resource_metadata=\"{}\"", self.0.resource_metadata);
        // Every part was validated to be visible ASCII without quotes or backslashes.
        HeaderValue::from_str(&value).ok()
    }

    /// Renders a rejection as a response in the request's protocol, with the [`Rejection`] in its extensions.
    pub fn respond<B>(
        &self,
        rejection: Rejection,
        protocol: Protocol,
    ) -> Response<ResponseBody<B>> {
        let mut response = match protocol {
            Protocol::Http => self.http_response(&rejection),
            Protocol::Grpc => self.grpc_response(&rejection),
        };
        response.extensions_mut().insert(rejection);
        response
    }

    fn retry_after_value(&self, rejection: &Rejection) -> HeaderValue {
        let after = rejection.retry_after().unwrap_or(self.0.retry_after);
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        HeaderValue::from(secs.max(1))
    }

    fn http_response<B>(&self, rejection: &Rejection) -> Response<ResponseBody<B>> {
        let kind = rejection.kind();
        let status = kind.status();
        let json = match kind.jsonrpc_code() {
            Some(code) => jsonrpc_error(rejection, code),
            None => oauth_error(rejection),
        };

        let mut response = Response::new(ResponseBody::full(json));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate(rejection) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, self.retry_after_value(rejection));
        }
        response
    }

    /// What `tonic::Status::into_http` makes of the matching status: HTTP 200, `content-type:
    /// application/grpc`, `grpc-status`, `grpc-message`, and the challenge as metadata.
    fn grpc_response<B>(&self, rejection: &Rejection) -> Response<ResponseBody<B>> {
        let kind = rejection.kind();
        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        if let Some(challenge) = self.www_authenticate(rejection) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if kind.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, self.retry_after_value(rejection));
        }
        headers.insert("grpc-status", HeaderValue::from(kind.grpc_code()));
        let message =
            percent_encoding::utf8_percent_encode(kind.description(), GRPC_MESSAGE).to_string();
        // Percent-encoded ASCII is always a valid header value.
        if let Ok(message) = HeaderValue::from_str(&message) {
            headers.insert("grpc-message", message);
        }
        response
    }
}

/// The JSON error body of an HTTP rejection: the OAuth error, its description and the typed reason.
fn oauth_error(rejection: &Rejection) -> Vec<u8> {
    let kind = rejection.kind();
    let status = kind.status();
    let body = ErrorBody {
        error: kind.oauth_error().unwrap_or(match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "access_denied",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::NOT_FOUND => "not_found",
            _ => "invalid_request",
        }),
        error_description: kind.description(),
        reason: kind.code(),
        scope: rejection.required_scopes().map(ScopeList::as_str),
    };
    // Serialising a struct of strings cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The body of a rejection answered as a JSON-RPC error: the request's id, the code, a message, and the typed
/// reason in `data`.
fn jsonrpc_error(rejection: &Rejection, code: i32) -> Vec<u8> {
    let kind = rejection.kind();
    let (id, message) = rejection
        .jsonrpc()
        .unwrap_or((&JsonRpcId::Null, kind.description()));
    let body = JsonRpcErrorBody {
        jsonrpc: "2.0",
        id,
        error: JsonRpcErrorObject {
            code,
            message,
            data: ErrorData {
                reason: kind.code(),
            },
        },
    };
    // Serialising strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct JsonRpcErrorBody<'a> {
    jsonrpc: &'static str,
    id: &'a JsonRpcId,
    error: JsonRpcErrorObject<'a>,
}

#[derive(Serialize)]
struct JsonRpcErrorObject<'a> {
    code: i32,
    message: &'a str,
    data: ErrorData<'a>,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    reason: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn challenge() -> Challenge {
        Challenge::new(META).expect("valid")
    }

    fn header<B>(response: &Response<B>, name: &str) -> Option<String> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn missing_credential_is_401_challenge_without_error() {
        let ch = challenge().with_scope(ScopeList::parse("mcp:read").expect("valid"));
        let response = ch.respond::<()>(RejectionKind::MissingCredential.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(format!("Bearer scope=\"mcp:read\", resource_metadata=\"{META}\"").as_str())
        );
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("no-store")
        );
        assert_eq!(
            response
                .extensions()
                .get::<Rejection>()
                .map(Rejection::kind),
            Some(RejectionKind::MissingCredential)
        );
    }

    #[test]
    fn invalid_token_is_401_with_error_and_description() {
        let response =
            challenge().respond::<()>(RejectionKind::ExpiredToken.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"the access token has expired\", \
                     resource_metadata=\"{META}\""
                )
                .as_str()
            )
        );
    }

    #[test]
    fn insufficient_scope_is_403_with_every_required_scope() {
        let required = ScopeList::parse("mcp:read mcp:write").expect("valid");
        let ch = challenge().with_scope(ScopeList::parse("other").expect("valid"));
        let response = ch.respond::<()>(Rejection::insufficient_scope(required), Protocol::Http);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let value = header(&response, "www-authenticate").expect("challenge");
        assert!(
            value.starts_with("Bearer error=\"insufficient_scope\""),
            "{value}"
        );
        assert!(value.contains("scope=\"mcp:read mcp:write\""), "{value}");
        assert!(!value.contains("other"), "{value}");
        assert!(
            value.ends_with(&format!("resource_metadata=\"{META}\"")),
            "{value}"
        );
    }

    #[test]
    fn forbidden_site_is_403_with_challenge_and_no_scope() {
        let ch = challenge().with_scope(ScopeList::parse("mcp:read").expect("valid"));
        let response = ch.respond::<()>(RejectionKind::SiteNotGranted.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(format!("Bearer resource_metadata=\"{META}\"").as_str())
        );
    }

    #[test]
    fn bad_request_is_400_invalid_request() {
        let response =
            challenge().respond::<()>(RejectionKind::AmbiguousCredential.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let value = header(&response, "www-authenticate").expect("challenge");
        assert!(
            value.starts_with("Bearer error=\"invalid_request\""),
            "{value}"
        );
    }

    #[test]
    fn payload_too_large_is_413_without_challenge() {
        let response =
            challenge().respond::<()>(RejectionKind::PayloadTooLarge.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(header(&response, "www-authenticate"), None);
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let response = challenge()
            .with_retry_after(Duration::from_millis(2500))
            .respond::<()>(RejectionKind::TemporarilyUnavailable.into(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("3"));
        assert_eq!(header(&response, "www-authenticate"), None);
        let explicit =
            Rejection::new(RejectionKind::TemporarilyUnavailable).with_retry_after(Duration::ZERO);
        let response = challenge().respond::<()>(explicit, Protocol::Http);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn every_kind_renders_a_json_body_with_its_reason() {
        use http_body_util::{BodyExt, Empty};

        for kind in RejectionKind::ALL {
            let response = challenge().respond::<Empty<bytes::Bytes>>(kind.into(), Protocol::Http);
            assert_eq!(response.status(), kind.status());
            let jsonrpc = kind.is_jsonrpc();
            assert_eq!(
                response.headers().contains_key(WWW_AUTHENTICATE),
                matches!(kind.status().as_u16(), 400 | 401 | 403) && !jsonrpc,
                "{kind:?}"
            );
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("infallible")
                .to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json body");
            if jsonrpc {
                assert_eq!(json["error"]["data"]["reason"], kind.code());
                assert_eq!(json["error"]["message"], kind.description());
                continue;
            }
            assert_eq!(json["reason"], kind.code());
            assert_eq!(json["error_description"], kind.description());
            if let Some(error) = kind.oauth_error() {
                assert_eq!(json["error"], error);
            }
        }
    }

    #[tokio::test]
    async fn header_mismatch_is_400_with_a_jsonrpc_error_and_no_challenge() {
        use http_body_util::{BodyExt, Empty};

        for (id, expected) in [
            (JsonRpcId::Number(7.into()), serde_json::json!(7)),
            (
                JsonRpcId::String("req-1".into()),
                serde_json::json!("req-1"),
            ),
            (JsonRpcId::Null, serde_json::Value::Null),
        ] {
            let rejection = Rejection::header_mismatch(id, "Header mismatch: Mcp-Name");
            let response = challenge().respond::<Empty<bytes::Bytes>>(rejection, Protocol::Http);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(header(&response, "www-authenticate"), None);
            assert_eq!(
                header(&response, "content-type").as_deref(),
                Some("application/json")
            );
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("infallible")
                .to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json body");
            assert_eq!(
                json,
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": expected,
                    "error": {
                        "code": -32020,
                        "message": "Header mismatch: Mcp-Name",
                        "data": {"reason": "header_mismatch"}
                    }
                })
            );
        }
    }

    #[test]
    fn grpc_requests_are_detected_by_content_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(Protocol::detect(&headers), Protocol::Http);
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC-web",
        ] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(grpc));
            assert_eq!(Protocol::detect(&headers), Protocol::Grpc, "{grpc}");
        }
        for http in ["application/json", "application/grp", "text/event-stream"] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(http));
            assert_eq!(Protocol::detect(&headers), Protocol::Http, "{http}");
        }
    }

    #[test]
    fn metadata_url_is_validated_when_built() {
        for good in [
            META,
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
            "http://localhost/.well-known/oauth-protected-resource",
            "http://[::1]:9000/.well-known/oauth-protected-resource",
        ] {
            assert!(Challenge::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/relative",
            "http://mcp.example.com/meta",
            "ftp://mcp.example.com/meta",
            "https://mcp.example.com/a\"b",
            "https://mcp.example.com/a b",
            "https://mcp.example.com/a\\b",
            "https://user@mcp.example.com/meta",
            "https://mcp.example.com/meta#frag",
            "https://mcp.example.com/é",
        ] {
            let err = Challenge::new(bad).expect_err(bad);
            assert_eq!(err.setting(), "resource_metadata");
        }
    }
}
