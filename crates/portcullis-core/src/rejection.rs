//! Why a request was turned away: the typed reason every layer reports.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::{JsonRpcId, ScopeList};

/// The reason a request was rejected.
///
/// Each kind has a fixed status, a fixed OAuth error code and a fixed description. None of them ever contains
/// anything taken from the request, so they are safe for response bodies, headers and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No credential was sent. 401 without an `error` parameter (RFC 6750 section 3.1).
    MissingCredential,
    /// The `Authorization` header could not be parsed: empty or misformatted token, bad Basic encoding,
    /// characters outside visible ASCII. 401 `invalid_token`.
    MalformedCredential,
    /// The `Authorization` scheme is neither `Bearer` nor `Basic`. 401 `invalid_token`.
    UnsupportedScheme,
    /// More than one credential was sent (two `Authorization` headers, or a header and an `access_token`
    /// query parameter). 400 `invalid_request`.
    AmbiguousCredential,
    /// The `Authorization` header is longer than the configured limit. 400 `invalid_request`.
    CredentialTooLarge,
    /// The token or API token is not valid (signature, issuer, unknown token...). 401 `invalid_token`.
    InvalidToken,
    /// The token has expired. 401 `invalid_token`.
    ExpiredToken,
    /// The token was issued for another resource (`aud`). 401 `invalid_token`.
    WrongAudience,
    /// API-token authentication is disabled by the organization's admin. 401 `invalid_token`.
    ApiTokensDisabled,
    /// The token lacks a scope the request needs. 403 `insufficient_scope`.
    InsufficientScope,
    /// The principal was not granted the site the request targets. 403.
    SiteNotGranted,
    /// The principal is not allowed to make this request. 403.
    Forbidden,
    /// The request names more than one site, and they disagree. 400 `invalid_request`.
    ConflictingSites,
    /// The route or the JSON-RPC method needs a site and the request names none. 403, with a challenge but no
    /// `error` (a token cannot fix it: the request must name its site).
    SiteRequired,
    /// The request is malformed (e.g. a body that is not the JSON-RPC this route needs). 400 `invalid_request`.
    InvalidRequest,
    /// The request body is larger than the configured limit. 413.
    PayloadTooLarge,
    /// A service needed to decide (key set, introspection, directory) is unreachable and nothing usable is
    /// cached. 503 with `Retry-After`.
    TemporarilyUnavailable,
    /// The request names an MCP session (`Mcp-Session-Id`) that this server does not know or that another
    /// principal started. 404, which tells an MCP client to start a new session (streamable HTTP transport).
    UnknownSession,
    /// An MCP request header that mirrors the JSON-RPC body (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`, a
    /// recognised `Mcp-Param-{Name}`) disagrees with it, is malformed, is sent twice, or is missing where the
    /// client's protocol revision requires it (MCP 2026-07-28). 400 with a JSON-RPC error body, code -32020.
    HeaderMismatch,
    /// The request's `Origin` is not allowed (`null`, malformed, sent twice, or not listed): MCP servers must
    /// validate it against DNS rebinding. 403 with a JSON-RPC error body without an id, before any credential
    /// work.
    OriginNotAllowed,
    /// On a route that reads JSON-RPC bodies, a POST whose body is not exactly one JSON-RPC message: empty or
    /// white space only, not JSON, a bare `null`, string or number, data after the message, or a length that
    /// disagrees with its `Content-Length`. 400 with a JSON-RPC parse error (-32700) body, `id` null.
    ParseError,
}

impl RejectionKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [Self; 21] = [
        Self::MissingCredential,
        Self::MalformedCredential,
        Self::UnsupportedScheme,
        Self::AmbiguousCredential,
        Self::CredentialTooLarge,
        Self::InvalidToken,
        Self::ExpiredToken,
        Self::WrongAudience,
        Self::ApiTokensDisabled,
        Self::InsufficientScope,
        Self::SiteNotGranted,
        Self::Forbidden,
        Self::ConflictingSites,
        Self::SiteRequired,
        Self::InvalidRequest,
        Self::PayloadTooLarge,
        Self::TemporarilyUnavailable,
        Self::UnknownSession,
        Self::HeaderMismatch,
        Self::OriginNotAllowed,
        Self::ParseError,
    ];

    /// The HTTP status.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::AmbiguousCredential
            | Self::CredentialTooLarge
            | Self::ConflictingSites
            | Self::InvalidRequest
            | Self::HeaderMismatch
            | Self::ParseError => StatusCode::BAD_REQUEST,
            Self::MissingCredential
            | Self::MalformedCredential
            | Self::UnsupportedScheme
            | Self::InvalidToken
            | Self::ExpiredToken
            | Self::WrongAudience
            | Self::ApiTokensDisabled => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope
            | Self::SiteNotGranted
            | Self::Forbidden
            | Self::SiteRequired
            | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownSession => StatusCode::NOT_FOUND,
        }
    }

    /// The RFC 6750 error code for the `WWW-Authenticate` header, if any.
    #[must_use]
    pub fn oauth_error(self) -> Option<&'static str> {
        match self.status() {
            // Not about the credential: the request's own headers and body disagree.
            _ if self.is_jsonrpc() => None,
            StatusCode::BAD_REQUEST => Some("invalid_request"),
            StatusCode::UNAUTHORIZED if self == Self::MissingCredential => None,
            StatusCode::UNAUTHORIZED => Some("invalid_token"),
            StatusCode::FORBIDDEN if self == Self::InsufficientScope => Some("insufficient_scope"),
            _ => None,
        }
    }

    /// A stable, snake_case name for the reason (`missing_credential`, `site_not_granted`, ...).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::MalformedCredential => "malformed_credential",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::AmbiguousCredential => "ambiguous_credential",
            Self::CredentialTooLarge => "credential_too_large",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::WrongAudience => "wrong_audience",
            Self::ApiTokensDisabled => "api_tokens_disabled",
            Self::InsufficientScope => "insufficient_scope",
            Self::SiteNotGranted => "site_not_granted",
            Self::Forbidden => "forbidden",
            Self::ConflictingSites => "conflicting_sites",
            Self::SiteRequired => "site_required",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnknownSession => "unknown_session",
            Self::HeaderMismatch => "header_mismatch",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::ParseError => "parse_error",
        }
    }

    /// A fixed, human-readable description for developers. Never contains request data.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            Self::MissingCredential => "authentication is required",
            Self::MalformedCredential => "the Authorization header is malformed",
            Self::UnsupportedScheme => "the authorization scheme is not supported; use Bearer",
            Self::AmbiguousCredential => "more than one credential was sent",
            Self::CredentialTooLarge => "the Authorization header is too large",
            Self::InvalidToken => "the credential is invalid",
            Self::ExpiredToken => "the access token has expired",
            Self::WrongAudience => "the access token was not issued for this resource",
            Self::ApiTokensDisabled => {
                "API-token authentication is disabled by the organization's admin; use OAuth 2.1"
            }
            Self::InsufficientScope => "the access token lacks a scope this request needs",
            Self::SiteNotGranted => "the credential was not granted access to this site",
            Self::Forbidden => "this request is not allowed",
            Self::ConflictingSites => "the request names more than one site",
            Self::SiteRequired => {
                "this request must name the site it targets (its cloudId); none was found"
            }
            Self::InvalidRequest => "the request is malformed",
            Self::PayloadTooLarge => "the request body is too large",
            Self::TemporarilyUnavailable => {
                "authorization is temporarily unavailable; try again later"
            }
            Self::UnknownSession => "the session is unknown or has ended; start a new session",
            Self::HeaderMismatch => "a request header does not match the JSON-RPC body",
            Self::OriginNotAllowed => "requests from this Origin are not allowed",
            Self::ParseError => "the body is not exactly one JSON-RPC message",
        }
    }

    /// The JSON-RPC error code of kinds answered as a JSON-RPC error: they concern the MCP exchange, not the
    /// credential, so they carry no `WWW-Authenticate` challenge.
    #[must_use]
    pub fn jsonrpc_code(self) -> Option<i32> {
        match self {
            Self::HeaderMismatch => Some(-32020),
            // The code the MCP SDKs answer a refused Origin with (implementation-defined server error).
            Self::OriginNotAllowed => Some(-32000),
            Self::ParseError => Some(-32700),
            _ => None,
        }
    }

    /// Whether the kind is answered as a JSON-RPC error ([`jsonrpc_code`](Self::jsonrpc_code)).
    #[must_use]
    pub fn is_jsonrpc(self) -> bool {
        self.jsonrpc_code().is_some()
    }

    /// The gRPC status code used for gRPC requests.
    #[must_use]
    pub fn grpc_code(self) -> u16 {
        match self.status() {
            StatusCode::UNAUTHORIZED => 16,        // UNAUTHENTICATED
            StatusCode::FORBIDDEN => 7,            // PERMISSION_DENIED
            StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
            StatusCode::PAYLOAD_TOO_LARGE => 8,    // RESOURCE_EXHAUSTED
            StatusCode::NOT_FOUND => 5,            // NOT_FOUND
            _ => 3,                                // INVALID_ARGUMENT
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A rejection: its kind, plus the details that its rendering needs.
///
/// Layers insert it into the response extensions, so callers and tests can read why a request was rejected:
///
/// ```
/// # use portcullis_core::{Rejection, RejectionKind};
/// # let response = http::Response::new(());
/// let reason = response.extensions().get::<Rejection>().map(Rejection::kind);
/// # assert_eq!(reason, None::<RejectionKind>);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    required_scopes: Option<ScopeList>,
    retry_after: Option<Duration>,
    jsonrpc: Option<Box<JsonRpcError>>,
}

/// What a rejection answered as a JSON-RPC error needs: the request's id and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
struct JsonRpcError {
    id: JsonRpcId,
    message: String,
}

impl Rejection {
    /// A rejection of the given kind.
    #[must_use]
    pub fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            required_scopes: None,
            retry_after: None,
            jsonrpc: None,
        }
    }

    /// A 400 [`HeaderMismatch`](RejectionKind::HeaderMismatch), answered as a JSON-RPC error (code -32020) to the
    /// request `id` (`JsonRpcId::Null` when it could not be read). `message` says which header is wrong and how; it
    /// must never hold a value taken from the request.
    #[must_use]
    pub fn header_mismatch(id: JsonRpcId, message: impl Into<String>) -> Self {
        Self {
            jsonrpc: Some(Box::new(JsonRpcError {
                id,
                message: message.into(),
            })),
            ..Self::new(RejectionKind::HeaderMismatch)
        }
    }

    /// A 403 `insufficient_scope` naming every scope the operation needs, so that a client can step up.
    #[must_use]
    pub fn insufficient_scope(required: ScopeList) -> Self {
        Self {
            required_scopes: Some(required),
            ..Self::new(RejectionKind::InsufficientScope)
        }
    }

    /// Overrides the `Retry-After` of a 503 (whole seconds are sent, at least one).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The typed reason.
    #[must_use]
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The scopes the request needs, for `insufficient_scope`.
    #[must_use]
    pub fn required_scopes(&self) -> Option<&ScopeList> {
        self.required_scopes.as_ref()
    }

    /// The JSON-RPC id and message of a rejection answered as a JSON-RPC error.
    #[must_use]
    pub fn jsonrpc(&self) -> Option<(&JsonRpcId, &str)> {
        self.jsonrpc.as_deref().map(|e| (&e.id, e.message.as_str()))
    }

    /// The `Retry-After` override, if any.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<RejectionKind> for Rejection {
    fn from(kind: RejectionKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_safe_in_quoted_headers_and_grpc_messages() {
        for kind in RejectionKind::ALL {
            let text = kind.description();
            assert!(
                text.bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b'%')),
                "{kind:?}"
            );
            assert!(
                kind.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = RejectionKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectionKind::ALL.len());
    }

    #[test]
    fn oauth_errors_follow_rfc_6750() {
        assert_eq!(RejectionKind::MissingCredential.oauth_error(), None);
        assert_eq!(
            RejectionKind::MalformedCredential.oauth_error(),
            Some("invalid_token")
        );
        assert_eq!(
            RejectionKind::AmbiguousCredential.oauth_error(),
            Some("invalid_request")
        );
        assert_eq!(
            RejectionKind::InsufficientScope.oauth_error(),
            Some("insufficient_scope")
        );
        assert_eq!(RejectionKind::SiteNotGranted.oauth_error(), None);
        assert_eq!(RejectionKind::TemporarilyUnavailable.oauth_error(), None);
    }
}
