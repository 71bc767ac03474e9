//! The request headers of MCP 2026-07-28 that mirror the JSON-RPC body, checked against the body that was read.
//!
//! "Any server that processes the message body MUST validate" them (transport, "Request Metadata"): a load
//! balancer may route on the header while the MCP server acts on the body, so the two must say the same thing.
//! The rules:
//! - `Mcp-Method` equals `method`; `Mcp-Name` equals `params.name` (`tools/call`, `prompts/get`), `params.uri`
//!   (`resources/read`) or `params.taskId` (`tasks/get`, `tasks/update`, `tasks/cancel`); `MCP-Protocol-Version` equals `params._meta["io.modelcontextprotocol/protocolVersion"]`
//!   when the body has it; each recognised `Mcp-Param-{Name}` equals the argument it mirrors.
//! - `Mcp-Name` and `Mcp-Param-*` values may be `=?base64?...?=` (the UTF-8 of the value): decoded before they are
//!   compared. Numbers compare numerically (`42` and `42.0`), booleans as `true` / `false`.
//! - A header sent twice, a value that is not visible ASCII, bad base64 or not UTF-8, or a header with nothing in
//!   the body to mirror is refused.
//! - A client that declares protocol 2026-07-28 or later must send, with every request (a message with an `id`),
//!   each header whose body value is there; its notifications' headers are checked when sent. Earlier clients send
//!   none of them and keep working.
//!
//! A refusal names the header, never a value from the request.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_core::ConfigError;

use crate::jsonrpc::{Found, Pointer};

/// The first protocol revision whose clients must send the mirrored headers.
pub(crate) const FIRST_MIRRORING_REVISION: &str = "2026-07-28";

const MCP_METHOD: (HeaderName, &str) = (HeaderName::from_static("mcp-method"), "Mcp-Method");
const MCP_NAME: (HeaderName, &str) = (HeaderName::from_static("mcp-name"), "Mcp-Name");
const MCP_PROTOCOL_VERSION: (HeaderName, &str) = (
    HeaderName::from_static("mcp-protocol-version"),
    "MCP-Protocol-Version",
);

/// A recognised `Mcp-Param-{Name}` header and the argument it mirrors.
#[derive(Clone, Debug)]
pub(crate) struct ParamHeader {
    /// As configured, for messages (`Mcp-Param-CloudId`).
    pub(crate) label: String,
    pub(crate) name: HeaderName,
    /// What it mirrors, for messages (`the argument /params/arguments/cloudId`).
    pub(crate) field: String,
    pub(crate) pointer: Pointer,
}

impl ParamHeader {
    /// `header` (`Mcp-Param-{Name}`, `{Name}` an HTTP token) mirroring the `tools/call` argument at `pointer`
    /// (under `/params/arguments/`).
    pub(crate) fn parse(header: &str, pointer: &str) -> Result<Self, ConfigError> {
        const PREFIX: &str = "mcp-param-";
        let setting = "param_headers";
        let named = header
            .get(..PREFIX.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
            && header.len() > PREFIX.len();
        let name = HeaderName::from_bytes(header.as_bytes())
            .ok()
            .filter(|_| named)
            .ok_or_else(|| {
                ConfigError::new(
                    setting,
                    "a header must be named Mcp-Param-{Name}, {Name} a token",
                )
            })?;
        if !pointer.starts_with("/params/arguments/") {
            return Err(ConfigError::new(
                setting,
                "the argument must be a JSON pointer under /params/arguments/",
            ));
        }
        Ok(Self {
            label: header.to_owned(),
            name,
            field: format!("the argument {pointer}"),
            pointer: Pointer::parse(pointer)
                .map_err(|err| ConfigError::new(setting, err.problem().to_owned()))?,
        })
    }
}

/// What of the body the headers are checked against.
pub(crate) struct Mirrored<'a, 'b, P> {
    pub(crate) method: Option<&'a str>,
    /// Whether the message is a request (it has an `id`): only requests must carry `Mcp-Method` and `Mcp-Name`;
    /// a notification's headers are checked when sent.
    pub(crate) request: bool,
    pub(crate) task: Option<&'a Found<'b>>,
    pub(crate) name: Option<&'a Found<'b>>,
    pub(crate) uri: Option<&'a Found<'b>>,
    pub(crate) version: Option<&'a Found<'b>>,
    /// Each recognised parameter header with the body value at its pointer.
    pub(crate) params: P,
}

/// Why the headers were refused: a message naming the header, with no value from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mismatch(pub(crate) String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    Differs,
    Malformed,
    Repeated,
    Missing,
    Unexpected,
}

fn mismatch(header: &str, problem: Problem, field: &str) -> Mismatch {
    let what = match problem {
        Problem::Differs => format!("does not match {field} in the body"),
        Problem::Malformed => "is not visible ASCII or a valid =?base64?...?= value".to_owned(),
        Problem::Repeated => "is sent more than once".to_owned(),
        Problem::Missing => format!(
            "is missing; clients of protocol {FIRST_MIRRORING_REVISION} and later must mirror {field}"
        ),
        Problem::Unexpected => format!("is sent but the body has no {field}"),
    };
    Mismatch(format!("Header mismatch: the {header} header {what}"))
}

/// The one value of header `name`, if sent.
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, Problem> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Problem::Repeated);
    }
    Ok(first)
}

/// A plain header value: visible ASCII, space and tab (RFC 9110 field values).
fn plain(value: &HeaderValue) -> Result<&str, Problem> {
    value.to_str().map_err(|_| Problem::Malformed)
}

/// A value that may be carried as `=?base64?{UTF-8 in Base64}?=`, decoded.
fn decoded(value: &HeaderValue) -> Result<Cow<'_, str>, Problem> {
    let text = plain(value)?;
    let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Ok(Cow::Borrowed(text));
    };
    let bytes = STANDARD.decode(inner).map_err(|_| Problem::Malformed)?;
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| Problem::Malformed)
}

/// Whether a (decoded) header value says what the body value says.
fn agrees(header: &str, body: &Found<'_>) -> bool {
    match body {
        Found::Str(value) => header == value,
        Found::Bool(value) => header == if *value { "true" } else { "false" },
        Found::Num(value) => same_number(header, value),
        Found::Null | Found::Other => false,
    }
}

/// Numbers compare numerically: `42` and `42.0` agree; integers beyond what a double holds exactly are compared as
/// integers only.
fn same_number(header: &str, body: &serde_json::Number) -> bool {
    // A JSON number exactly: no sign but `-`, no leading zeros, no white space around it.
    if header.bytes().any(|b| b.is_ascii_whitespace()) {
        return false;
    }
    let Ok(header) = serde_json::from_str::<serde_json::Number>(header) else {
        return false;
    };
    if let (Some(a), Some(b)) = (header.as_i64(), body.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (header.as_u64(), body.as_u64()) {
        return a == b;
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match (header.as_f64(), body.as_f64()) {
        (Some(a), Some(b)) => a.abs() <= EXACT && b.abs() <= EXACT && a == b,
        _ => false,
    }
}

/// Whether `version` is a revision date at or after [`FIRST_MIRRORING_REVISION`].
fn mirrors(version: &str) -> bool {
    let date = version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    date && version >= FIRST_MIRRORING_REVISION
}

/// Checks the mirrored headers against the body.
pub(crate) fn check<'a, 'b: 'a, P>(
    headers: &HeaderMap,
    body: Mirrored<'a, 'b, P>,
) -> Result<(), Mismatch>
where
    P: Iterator<Item = (&'a ParamHeader, Option<&'a Found<'b>>)>,
{
    const VERSION_FIELD: &str = "_meta io.modelcontextprotocol/protocolVersion";

    // The protocol version, which decides whether a missing header is a mismatch.
    let (name, label) = &MCP_PROTOCOL_VERSION;
    let header_version = one(headers, name)
        .and_then(|v| v.map(plain).transpose())
        .map_err(|problem| mismatch(label, problem, VERSION_FIELD))?;
    let body_version = match body.version {
        None | Some(Found::Null) => None,
        Some(found) => Some(
            found
                .as_str()
                .ok_or_else(|| mismatch(label, Problem::Differs, VERSION_FIELD))?,
        ),
    };
    match (header_version, body_version) {
        (Some(h), Some(b)) if h != b => {
            return Err(mismatch(label, Problem::Differs, VERSION_FIELD));
        }
        (None, Some(_)) => return Err(mismatch(label, Problem::Missing, VERSION_FIELD)),
        _ => {}
    }
    let modern = body_version.or(header_version).is_some_and(mirrors);
    // What must be sent, not only agree when sent: a modern client's requests.
    let required = modern && body.request;

    // Mcp-Method: never encoded.
    let (name, label) = &MCP_METHOD;
    let method = one(headers, name)
        .and_then(|v| v.map(plain).transpose())
        .map_err(|problem| mismatch(label, problem, "method"))?;
    match (method, body.method) {
        (Some(h), Some(b)) if h != b => return Err(mismatch(label, Problem::Differs, "method")),
        (Some(_), None) => return Err(mismatch(label, Problem::Unexpected, "method")),
        (None, Some(_)) if required => return Err(mismatch(label, Problem::Missing, "method")),
        _ => {}
    }

    // Mcp-Name: the tool or prompt name, the resource URI, or the task id.
    let (field, value) = match body.method {
        Some("tools/call" | "prompts/get") => ("params.name", body.name),
        Some("resources/read") => ("params.uri", body.uri),
        Some("tasks/get" | "tasks/update" | "tasks/cancel") => ("params.taskId", body.task),
        _ => ("params.name, params.uri or params.taskId", None),
    };
    let (name, label) = &MCP_NAME;
    compare(headers, (name, label), field, value, required)?;

    // The recognised Mcp-Param-* headers: a missing one is a mismatch only for tools/call, whose arguments the
    // tool's `x-mcp-header` annotations name.
    let tool_call = body.method == Some("tools/call");
    for (param, value) in body.params {
        let required = required && tool_call;
        compare(
            headers,
            (&param.name, &param.label),
            &param.field,
            value,
            required,
        )?;
    }
    Ok(())
}

/// One header that may be `=?base64?...?=` against its body value (`null` is no value).
fn compare(
    headers: &HeaderMap,
    (name, label): (&HeaderName, &str),
    field: &str,
    value: Option<&Found<'_>>,
    required: bool,
) -> Result<(), Mismatch> {
    let value = value.filter(|found| **found != Found::Null);
    let sent = one(headers, name)
        .and_then(|v| v.map(decoded).transpose())
        .map_err(|problem| mismatch(label, problem, field))?;
    match (sent, value) {
        (Some(sent), Some(value)) if !agrees(&sent, value) => {
            Err(mismatch(label, Problem::Differs, field))
        }
        (Some(_), None) => Err(mismatch(label, Problem::Unexpected, field)),
        // An array or object cannot be mirrored: nothing is expected of the client.
        (None, Some(value)) if required && *value != Found::Other => {
            Err(mismatch(label, Problem::Missing, field))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_values_are_decoded_and_plain_ones_kept() {
        let value = |s: &str| HeaderValue::from_str(s).expect("valid");
        assert_eq!(decoded(&value("us-west1")), Ok(Cow::Borrowed("us-west1")));
        assert_eq!(
            decoded(&value("=?base64?SGVsbG8sIOS4lueVjA==?=")),
            Ok(Cow::Owned("Hello, 世界".to_owned()))
        );
        assert_eq!(
            decoded(&value("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=")),
            Ok(Cow::Owned("=?base64?literal?=".to_owned()))
        );
        // Starts like the sentinel but does not end like it: a plain value.
        assert_eq!(
            decoded(&value("=?base64?abc")),
            Ok(Cow::Borrowed("=?base64?abc"))
        );
        for bad in [
            "=?base64?not base64!?=",
            "=?base64?SGVsbG8?=",
            "=?base64?/w==?=",
        ] {
            assert_eq!(decoded(&value(bad)), Err(Problem::Malformed), "{bad}");
        }
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a valid header value");
        assert_eq!(decoded(&latin1), Err(Problem::Malformed));
    }

    #[test]
    fn numbers_compare_numerically() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).expect("number");
        assert!(same_number("42", &n("42.0")));
        assert!(same_number("42.0", &n("42")));
        assert!(same_number("-7", &n("-7")));
        assert!(!same_number("42", &n("43")));
        assert!(!same_number("042", &n("42")));
        assert!(!same_number("+42", &n("42")));
        assert!(!same_number("42 ", &n("42")));
        assert!(same_number(
            "18446744073709551615",
            &n("18446744073709551615")
        ));
        // Beyond 2^53 a double cannot tell neighbours apart: not compared as doubles.
        assert!(!same_number("9007199254740993", &n("9007199254740993.0")));
    }

    #[test]
    fn only_revision_dates_from_2026_07_28_require_the_headers() {
        for (version, required) in [
            ("2026-07-28", true),
            ("2027-01-01", true),
            ("2025-11-25", false),
            ("2025-06-18", false),
            ("2026-07-28x", false),
            ("draft", false),
            ("9999-99-9a", false),
        ] {
            assert_eq!(mirrors(version), required, "{version}");
        }
    }

    #[test]
    fn param_headers_are_validated_when_configured() {
        let param =
            ParamHeader::parse("Mcp-Param-CloudId", "/params/arguments/cloudId").expect("valid");
        assert_eq!(param.name.as_str(), "mcp-param-cloudid");
        for (header, pointer) in [
            ("X-Cloud-Id", "/params/arguments/cloudId"),
            ("Mcp-Param-", "/params/arguments/cloudId"),
            ("Mcp-Param-Cloud Id", "/params/arguments/cloudId"),
            ("Mcp-Param-CloudId", "/params/cloudId"),
            ("Mcp-Param-CloudId", "/params/arguments/"),
        ] {
            assert!(
                ParamHeader::parse(header, pointer).is_err(),
                "{header} {pointer}"
            );
        }
    }
}
