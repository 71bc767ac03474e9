//! Every class of bad input to `BindSiteLayer` gets a clean, typed answer and never reaches the inner service;
//! what passes reaches it with the bound site and exactly the bytes that were checked.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use portcullis_core::{AccessibleSites, JsonRpcCall, OrgId, RejectionKind, Site};
use portcullis_lookup::HttpFetcher;
use portcullis_site::{BindSiteLayer, ConfigureHttpSource, HttpGrants, StaticDirectory};
use portcullis_test_support::{Answer, MockServer};

mod support;

use support::*;

const DIRECTORY: &str = r#"
[[site]]
id = "site-a"
url = "https://acme.example.net"
organization = "org-acme"

[[site]]
id = "site-c"
url = "https://other.example.net"
organization = "org-other"
"#;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A body that arrives in chunks with no length known in advance (as with `Transfer-Encoding: chunked`); with
/// `endless`, it never ends; with `late`, each chunk is still on its way when first asked for (the poll is
/// `Pending` and wakes the task), as over a slow connection. Counts the frames the layer pulled.
struct Chunked {
    chunks: VecDeque<Bytes>,
    endless: Option<Bytes>,
    pulled: Arc<AtomicUsize>,
    late: bool,
    arrived: bool,
}

impl Chunked {
    fn new(data: &[u8], chunk: usize) -> Self {
        Self {
            chunks: data.chunks(chunk).map(Bytes::copy_from_slice).collect(),
            endless: None,
            pulled: Arc::new(AtomicUsize::new(0)),
            late: false,
            arrived: false,
        }
    }

    fn late(self) -> Self {
        Self { late: true, ..self }
    }

    fn endless(prefix: &[u8], chunk: Bytes) -> Self {
        Self {
            endless: Some(chunk),
            ..Self::new(prefix, prefix.len().max(1))
        }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.late && !std::mem::replace(&mut this.arrived, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.arrived = false;
        this.pulled.fetch_add(1, Ordering::SeqCst);
        let next = this.chunks.pop_front().or_else(|| this.endless.clone());
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }
}

fn chunked_request(body: Chunked) -> Request<Chunked> {
    let mut req = Request::post("/mcp")
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .expect("valid request");
    req.extensions_mut().insert(granted(&["site-a"]));
    req
}

// ---------------------------------------------------------------------------
// Grants and principals
// ---------------------------------------------------------------------------

#[tokio::test]
async fn granted_site_passes_with_site_sites_call_and_the_same_bytes() {
    let body = tools_call(r#""site-a""#);
    let outcome = send(layer(), post(body.clone())).await;
    let seen = outcome.assert_bound(body.as_bytes(), "site-a", "granted");
    assert_eq!(
        seen.call,
        Some(JsonRpcCall::new("tools/call", Some("search")))
    );
    assert_eq!(
        seen.accessible,
        Some(AccessibleSites::new(vec![Site::new(id("site-a"))]))
    );

    // No normalisation: the id is checked as the upstream will read it, so another spelling is another site.
    for spelling in [r#""SITE-A""#, r#""Site-a""#] {
        let body = tools_call(spelling);
        send(layer(), post(body.clone()))
            .await
            .assert_rejected(RejectionKind::SiteNotGranted, spelling);
    }

    // Escapes inside the value are decoded like any JSON parser would.
    let body = tools_call(r#""site\u002da""#);
    let outcome = send(layer(), post(body.clone())).await;
    outcome.assert_bound(body.as_bytes(), "site-a", "escaped value");
}

#[tokio::test]
async fn site_not_granted_is_rejected_with_site_not_granted() {
    let cases = [
        ("another site granted", granted(&["site-b"])),
        (
            "several sites, not this one",
            granted(&["site-b", "site-c"]),
        ),
        ("empty grants", granted(&[])),
        ("no site claim, no grants source", without_claim("user-1")),
    ];
    for (case, principal) in cases {
        let outcome = send(
            layer(),
            post_as(principal, "/mcp", tools_call(r#""site-a""#)),
        )
        .await;
        outcome.assert_rejected(RejectionKind::SiteNotGranted, case);
    }
}

#[tokio::test]
async fn missing_claim_with_a_grants_source_is_rejected_when_the_source_does_not_grant() {
    let directory = StaticDirectory::from_toml(&format!(
        "{DIRECTORY}\n[grants]\n\"user-1\" = [\"site-a\"]\n\"user-2\" = []\n"
    ))
    .expect("valid directory");
    let layer = layer().with_grants(directory);

    let body = tools_call(r#""site-a""#);
    let outcome = send(
        layer.clone(),
        post_as(without_claim("user-1"), "/mcp", body.clone()),
    )
    .await;
    outcome.assert_bound(body.as_bytes(), "site-a", "granted by the source");

    for (case, subject) in [("empty grants", "user-2"), ("unknown subject", "user-9")] {
        let outcome = send(
            layer.clone(),
            post_as(without_claim(subject), "/mcp", body.clone()),
        )
        .await;
        outcome.assert_rejected(RejectionKind::SiteNotGranted, case);
    }
}

#[tokio::test]
async fn request_without_principal_fails_closed_with_401() {
    let bodies = [
        tools_call(r#""site-a""#),
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#.to_owned(),
    ];
    for body in bodies {
        let req = Request::post("/mcp")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .expect("valid request");
        let outcome = send(layer(), req).await;
        outcome.assert_rejected(RejectionKind::MissingCredential, &body);
    }
    // Also on a request with no body at all.
    let req = Request::get("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    send(layer(), req)
        .await
        .assert_rejected(RejectionKind::MissingCredential, "GET");
}

// ---------------------------------------------------------------------------
// The body: type, shape, keys, values
// ---------------------------------------------------------------------------

#[tokio::test]
async fn body_not_labelled_json_is_rejected_with_invalid_request() {
    let body = tools_call(r#""site-a""#);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/json"),
        Some("application/jsonx"),
        Some("application/x-ndjson"),
        Some(""),
        None,
    ] {
        let mut builder = Request::post("/mcp");
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        let mut req = builder
            .body(Full::new(Bytes::from(body.clone())))
            .expect("valid request");
        req.extensions_mut().insert(granted(&["site-a"]));
        let outcome = send(layer(), req).await;
        outcome.assert_rejected(
            RejectionKind::InvalidRequest,
            &format!("content type {content_type:?}"),
        );
    }
}

#[tokio::test]
async fn body_labelled_json_that_is_not_a_json_object_is_a_jsonrpc_parse_error() {
    for body in [
        "hello",
        "{\"method\":",
        "\"tools/call\"",
        "null",
        "1",
        "\u{feff}{\"method\":\"initialize\"}",
        "{\"method\":\"tools/call\",}",
        "{'method':'tools/call'}",
    ] {
        send(layer(), post(body))
            .await
            .assert_rejected(RejectionKind::ParseError, body);
    }
}

#[tokio::test]
async fn method_or_tool_name_of_another_type_is_rejected() {
    let args = r#"{"cloudId":"site-a"}"#;
    for body in [
        format!(r#"{{"method":1,"params":{{"name":"s","arguments":{args}}}}}"#),
        format!(r#"{{"method":null,"params":{{"name":"s","arguments":{args}}}}}"#),
        format!(r#"{{"method":["tools/call"],"params":{{"name":"s","arguments":{args}}}}}"#),
        format!(
            r#"{{"method":{{"name":"tools/call"}},"params":{{"name":"s","arguments":{args}}}}}"#
        ),
        format!(r#"{{"method":"tools/call","params":{{"name":7,"arguments":{args}}}}}"#),
        format!(r#"{{"method":"tools/call","params":{{"name":null,"arguments":{args}}}}}"#),
        format!(r#"{{"method":"tools/call","params":{{"name":["s"],"arguments":{args}}}}}"#),
    ] {
        send(layer(), post(body.clone()))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, &body);
    }
}

#[tokio::test]
async fn json_rpc_batches_are_refused_whole() {
    let granted_call = tools_call(r#""site-a""#);
    let other_call = tools_call(r#""site-b""#);
    for body in [
        format!("[{granted_call}]"),
        format!("[{granted_call},{granted_call}]"),
        format!("[{granted_call},{other_call}]"),
        format!("[{other_call},{granted_call}]"),
        r#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#.to_owned(),
        "[]".to_owned(),
    ] {
        send(layer(), post(body.clone()))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, &body);
    }
}

#[tokio::test]
async fn duplicate_keys_on_the_path_to_the_site_are_rejected() {
    let args = |site: &str| format!(r#"{{"name":"search","arguments":{{"cloudId":"{site}"}}}}"#);
    let cases = [
        (
            "params",
            format!(
                r#"{{"method":"tools/call","params":{},"params":{}}}"#,
                args("site-a"),
                args("site-b")
            ),
        ),
        (
            "params, first not an object",
            format!(
                r#"{{"method":"tools/call","params":"x","params":{}}}"#,
                args("site-b")
            ),
        ),
        (
            "arguments",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a"},"arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        ),
        (
            "arguments, second empty",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a"},"arguments":{}}}"#.to_owned(),
        ),
        (
            "cloudId, granted first",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a","cloudId":"site-b"}}}"#.to_owned(),
        ),
        (
            "cloudId, granted last",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-b","cloudId":"site-a"}}}"#.to_owned(),
        ),
        (
            "cloudId, same value twice",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a","cloudId":"site-a"}}}"#.to_owned(),
        ),
        (
            "cloudId, once escaped",
            r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a","cloud\u0049d":"site-b"}}}"#.to_owned(),
        ),
        (
            "method, tools/call first",
            format!(
                r#"{{"method":"tools/call","method":"initialize","params":{}}}"#,
                args("site-b")
            ),
        ),
        (
            "method, tools/call last",
            format!(
                r#"{{"method":"initialize","method":"tools/call","params":{}}}"#,
                args("site-b")
            ),
        ),
        (
            "name",
            r#"{"method":"tools/call","params":{"name":"search","name":"delete","arguments":{"cloudId":"site-a"}}}"#.to_owned(),
        ),
    ];
    for (case, body) in cases {
        send(layer(), post(body))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, case);
    }
}

#[tokio::test]
async fn duplicate_keys_off_the_path_are_allowed() {
    let body = r#"{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"tools/call","params":{"_meta":{"x":1,"x":2},"other":{},"other":1,"name":"search","arguments":{"query":"a","query":"b","cloudId":"site-a","nested":{"cloudId":"site-b"}}}}"#;
    send(layer(), post(body)).await.assert_bound(
        body.as_bytes(),
        "site-a",
        "duplicates off the path",
    );
}

#[tokio::test]
async fn escaped_keys_are_read_as_the_decoded_key() {
    let granted_cases = [
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloud\u0049d":"site-a"}}}"#,
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"\u0063\u006c\u006f\u0075\u0064\u0049\u0064":"site-a"}}}"#,
        r#"{"m\u0065thod":"tools/call","p\u0061rams":{"n\u0061me":"s","\u0061rguments":{"cloudId":"site-a"}}}"#,
        r#"{"method":"tools\/call","params":{"name":"s","arguments":{"cloud\u0049d":"site-a"}}}"#,
    ];
    for body in granted_cases {
        let outcome = send(layer(), post(body)).await;
        let seen = outcome.assert_bound(body.as_bytes(), "site-a", body);
        assert_eq!(
            seen.call,
            Some(JsonRpcCall::new("tools/call", Some("s"))),
            "{body}"
        );
    }
    let not_granted = [
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloud\u0049d":"site-b"}}}"#,
        r#"{"m\u0065thod":"tools/call","p\u0061rams":{"n\u0061me":"s","\u0061rguments":{"cloudId":"site-b"}}}"#,
        r#"{"method":"tools\/call","params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#,
        r#"{"method":"\u0074ools/call","params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#,
    ];
    for body in not_granted {
        send(layer(), post(body))
            .await
            .assert_rejected(RejectionKind::SiteNotGranted, body);
    }
}

#[tokio::test]
async fn case_variants_of_keys_on_the_path_are_rejected() {
    let site = |key: &str| {
        format!(r#"{{"method":"tools/call","params":{{"name":"s","arguments":{{{key}}}}}}}"#)
    };
    let cases = [
        site(r#""cloudid":"site-b""#),
        site(r#""CLOUDID":"site-b""#),
        site(r#""CloudId":"site-b""#),
        site(r#""cloudID":"site-b""#),
        site(r#""cloud\u0069d":"site-b""#),
        site(r#""cloudId":"site-a","cloudid":"site-b""#),
        site(r#""cloudid":"site-b","cloudId":"site-a""#),
        site(r#""cloudId":"site-a","CLOUDID":"site-b""#),
        site(r#""cloudId":"site-a","cloudid":"site-a""#),
        r#"{"method":"tools/call","Params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a"}},"PARAMS":{"name":"s","arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"method":"tools/call","params":{"name":"s","Arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a"},"ARGUMENTS":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"Method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"method":"initialize","METHOD":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#.to_owned(),
        r#"{"method":"tools/call","params":{"name":"s","Name":"t","arguments":{"cloudId":"site-a"}}}"#.to_owned(),
    ];
    for body in cases {
        send(layer(), post(body.clone()))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, &body);
    }
}

#[tokio::test]
async fn site_values_that_are_not_a_string_id_are_rejected() {
    let long = format!("\"{}\"", "a".repeat(129));
    let cases = [
        "1",
        "1.5",
        "-0",
        "null",
        "true",
        "false",
        r#"["site-a"]"#,
        "[]",
        r#"{"id":"site-a"}"#,
        "{}",
        r#""""#,
        r#"" site-a""#,
        r#""site-a ""#,
        r#""\tsite-a""#,
        r#""site-a\n""#,
        r#""site-a\u0000""#,
        r#""site a""#,
        r#""site%2Da""#,
        r#""%73ite-a""#,
        r#""site-a/x""#,
        r#""/site-a""#,
        r#""site-a/../site-b""#,
        r#""site-a,site-b""#,
        r#""sit\u00e9-a""#,
        long.as_str(),
    ];
    for site in cases {
        send(layer(), post(tools_call(site)))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, site);
    }
}

#[tokio::test]
async fn trailing_data_after_the_json_value_is_rejected() {
    let call = tools_call(r#""site-a""#);
    let other = tools_call(r#""site-b""#);
    let second_value = format!("\n{other}");
    for trailing in [
        " x",
        "{}",
        ",",
        "]",
        "}",
        "\u{0}",
        "null",
        second_value.as_str(),
    ] {
        let body = format!("{call}{trailing}");
        send(layer(), post(body.clone()))
            .await
            .assert_rejected(RejectionKind::ParseError, &body);
    }
    // Control: trailing whitespace is allowed.
    let body = format!("{call} \r\n\t");
    send(layer(), post(body.clone())).await.assert_bound(
        body.as_bytes(),
        "site-a",
        "trailing whitespace",
    );
}

#[tokio::test]
async fn deep_nesting_is_rejected() {
    let arrays = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let wrap = |arguments: &str, extra: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call"{extra},"params":{{"name":"s","arguments":{{"cloudId":"site-a"{arguments}}}}}}}"#
        )
    };
    let cases = [
        (
            "arrays inside arguments",
            wrap(&format!(r#","deep":{}"#, arrays(200)), ""),
        ),
        (
            "objects inside arguments",
            wrap(&format!(r#","deep":{}"#, objects(200)), ""),
        ),
        ("as the site value", tools_call(&arrays(200))),
        (
            "in another root key",
            wrap("", &format!(r#","extra":{}"#, arrays(200))),
        ),
        (
            "objects in another root key",
            wrap("", &format!(r#","extra":{}"#, objects(200))),
        ),
        (
            "in params beside arguments",
            format!(
                r#"{{"method":"tools/call","params":{{"_meta":{},"name":"s","arguments":{{"cloudId":"site-a"}}}}}}"#,
                objects(200)
            ),
        ),
        (
            "in a request without a site",
            format!(r#"{{"method":"initialize","params":{}}}"#, arrays(200)),
        ),
    ];
    for (case, body) in cases {
        send(layer(), post(body))
            .await
            .assert_rejected(RejectionKind::ParseError, case);
    }
    // A batch is refused whole, as a batch, however deep.
    send(layer(), post(arrays(200)))
        .await
        .assert_rejected(RejectionKind::InvalidRequest, "a batch of arrays");
    // Control: ordinary nesting (100 levels) passes.
    let body = wrap(&format!(r#","deep":{}"#, arrays(100)), "");
    send(layer(), post(body.clone()))
        .await
        .assert_bound(body.as_bytes(), "site-a", "100 levels");
}

// ---------------------------------------------------------------------------
// Body size
// ---------------------------------------------------------------------------

/// A granted `tools/call` padded to exactly `len` bytes.
fn call_of_len(len: usize) -> String {
    let bare = tools_call(r#""site-a""#).len() + r#","pad":"""#.len();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"cloudId":"site-a","query":"q","pad":"{}"}}}}}}"#,
        "x".repeat(len - bare)
    );
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn body_over_the_limit_is_rejected_with_413() {
    const LIMIT: usize = 512;
    let limited = || layer().with_body_limit(LIMIT).expect("valid limit");

    // At the limit: passes, whichever way it arrives.
    let body = call_of_len(LIMIT);
    send(limited(), post(body.clone())).await.assert_bound(
        body.as_bytes(),
        "site-a",
        "at the limit",
    );
    send(limited(), chunked_request(Chunked::new(body.as_bytes(), 7)))
        .await
        .assert_bound(body.as_bytes(), "site-a", "at the limit, chunked");
    send(
        limited(),
        chunked_request(Chunked::new(body.as_bytes(), 7).late()),
    )
    .await
    .assert_bound(
        body.as_bytes(),
        "site-a",
        "at the limit, chunked, arriving late",
    );

    let over = call_of_len(LIMIT + 1);
    // With an honest Content-Length.
    let mut req = post(over.clone());
    req.headers_mut().insert(CONTENT_LENGTH, over.len().into());
    send(limited(), req)
        .await
        .assert_rejected(RejectionKind::PayloadTooLarge, "with Content-Length");
    // Without Content-Length (the body's own size hint is exact).
    send(limited(), post(over.clone()))
        .await
        .assert_rejected(RejectionKind::PayloadTooLarge, "without Content-Length");
    // Chunked, no length known in advance.
    send(limited(), chunked_request(Chunked::new(over.as_bytes(), 7)))
        .await
        .assert_rejected(RejectionKind::PayloadTooLarge, "chunked");
    send(
        limited(),
        chunked_request(Chunked::new(over.as_bytes(), 7).late()),
    )
    .await
    .assert_rejected(RejectionKind::PayloadTooLarge, "chunked, arriving late");
    // A Content-Length that lies low does not let a larger body through.
    let mut req = chunked_request(Chunked::new(over.as_bytes(), 100));
    req.headers_mut().insert(CONTENT_LENGTH, 10.into());
    send(limited(), req)
        .await
        .assert_rejected(RejectionKind::PayloadTooLarge, "Content-Length lies low");
    // A declared length over the limit is refused before reading.
    let mut req = post(tools_call(r#""site-a""#));
    req.headers_mut()
        .insert(CONTENT_LENGTH, (LIMIT as u64 + 1).into());
    send(limited(), req).await.assert_rejected(
        RejectionKind::PayloadTooLarge,
        "Content-Length over the limit",
    );
}

#[tokio::test]
async fn endless_body_is_cut_at_the_limit() {
    const LIMIT: usize = 4096;
    for late in [false, true] {
        let mut body = Chunked::endless(
            b"{\"method\":\"tools/call\",\"x\":\"",
            Bytes::from(vec![b'a'; 256]),
        );
        body.late = late;
        let pulled = Arc::clone(&body.pulled);
        let outcome = send(
            layer().with_body_limit(LIMIT).expect("valid limit"),
            chunked_request(body),
        )
        .await;
        outcome.assert_rejected(RejectionKind::PayloadTooLarge, "endless body");
        let pulled = pulled.load(Ordering::SeqCst);
        assert!(
            pulled <= LIMIT / 256 + 2,
            "the layer read {pulled} chunks of an endless body (arriving late: {late})"
        );
    }
}

#[tokio::test]
async fn a_call_arriving_late_is_bound_and_checked_like_one_at_hand() {
    // Every chunk is `Pending` first: the layer finishes reading on its boxed path, then decides as usual.
    let bound = tools_call(r#""site-a""#);
    send(
        layer(),
        chunked_request(Chunked::new(bound.as_bytes(), 5).late()),
    )
    .await
    .assert_bound(bound.as_bytes(), "site-a", "granted site, arriving late");
    let other = tools_call(r#""site-b""#);
    send(
        layer(),
        chunked_request(Chunked::new(other.as_bytes(), 5).late()),
    )
    .await
    .assert_rejected(
        RejectionKind::SiteNotGranted,
        "site not granted, arriving late",
    );
    let broken = b"{\"method\":\"tools/call\",";
    send(layer(), chunked_request(Chunked::new(broken, 5).late()))
        .await
        .assert_rejected(RejectionKind::ParseError, "not JSON, arriving late");
}

// ---------------------------------------------------------------------------
// Several sources
// ---------------------------------------------------------------------------

#[tokio::test]
async fn path_and_body_that_disagree_are_rejected_with_conflicting_sites() {
    let layer = layer()
        .add_path_template("/ex/{product}/{cloudId}/...")
        .expect("valid template")
        .with_directory(directory());
    let principal = granted(&["site-a", "site-b"]);
    for (uri, site) in [
        ("/ex/jira/site-a/mcp", "site-b"),
        ("/ex/jira/site-b/mcp", "site-a"),
        ("/ex/jira/site-b/mcp", "https://acme.example.net"),
    ] {
        let req = post_as(principal.clone(), uri, tools_call(&format!("\"{site}\"")));
        send(layer.clone(), req)
            .await
            .assert_rejected(RejectionKind::ConflictingSites, &format!("{uri} {site}"));
    }
    // Spellings that differ in case do not agree: the upstream would read two different sites.
    let body = tools_call(r#""site-a""#);
    let req = post_as(principal.clone(), "/ex/jira/SITE-A/mcp", body.clone());
    send(layer.clone(), req).await.assert_rejected(
        RejectionKind::ConflictingSites,
        "path and body differ in case",
    );
    // Agreement passes; so does the path alone.
    let req = post_as(principal.clone(), "/ex/jira/site-a/mcp", body.clone());
    send(layer.clone(), req)
        .await
        .assert_bound(body.as_bytes(), "site-a", "path and body agree");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let req = post_as(principal.clone(), "/ex/jira/site-b/mcp", body);
    send(layer.clone(), req)
        .await
        .assert_bound(body.as_bytes(), "site-b", "path alone");
    // The path alone still has to be granted.
    let req = post_as(principal, "/ex/jira/site-c/mcp", body);
    send(layer, req)
        .await
        .assert_rejected(RejectionKind::SiteNotGranted, "path not granted");
}

#[tokio::test]
async fn header_and_body_that_disagree_are_rejected_with_conflicting_sites() {
    let layer = layer().add_header("x-cloud-id").expect("valid header");
    let principal = granted(&["site-a", "site-b"]);
    let call = |header: &str, site: &str| {
        let mut req = post_as(
            principal.clone(),
            "/mcp",
            tools_call(&format!("\"{site}\"")),
        );
        req.headers_mut()
            .insert("x-cloud-id", header.parse().expect("valid header value"));
        req
    };
    for (header, site) in [("site-a", "site-b"), ("site-b", "site-a")] {
        send(layer.clone(), call(header, site))
            .await
            .assert_rejected(RejectionKind::ConflictingSites, &format!("{header} {site}"));
    }
    send(layer.clone(), call("Site-A", "site-a"))
        .await
        .assert_rejected(
            RejectionKind::ConflictingSites,
            "header and body differ in case",
        );
    let sent = tools_call(r#""site-a""#);
    send(layer, call("site-a", "site-a")).await.assert_bound(
        sent.as_bytes(),
        "site-a",
        "header and body agree",
    );
}

#[tokio::test]
async fn two_site_headers_are_rejected_with_conflicting_sites() {
    let layer = layer().add_header("x-cloud-id").expect("valid header");
    for (first, second) in [
        ("site-a", "site-b"),
        ("site-a", "site-a"),
        ("site-b", "site-a"),
    ] {
        let mut req = Request::get("/mcp")
            .header("x-cloud-id", first)
            .header("x-cloud-id", second)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        req.extensions_mut().insert(granted(&["site-a", "site-b"]));
        send(layer.clone(), req).await.assert_rejected(
            RejectionKind::ConflictingSites,
            &format!("{first}, {second}"),
        );
    }
    // A list in one header is not a site id.
    let mut req = Request::get("/mcp")
        .header("x-cloud-id", "site-a, site-b")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    req.extensions_mut().insert(granted(&["site-a", "site-b"]));
    send(layer, req)
        .await
        .assert_rejected(RejectionKind::InvalidRequest, "list in one header");
}

#[tokio::test]
async fn repeated_query_param_is_rejected_with_conflicting_sites() {
    let layer = layer().add_query_param("cloudId");
    let get = |query: &str| {
        let mut req = Request::get(format!("/mcp?{query}"))
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        req.extensions_mut().insert(granted(&["site-a"]));
        req
    };
    for query in [
        "cloudId=site-a&cloudId=site-b",
        "cloudId=site-b&cloudId=site-a",
        "cloudId=site-a&cloudId=site-a",
        "cloudId=site-a&cloud%49d=site-b",
        "cloudId=site-a&x=1&cloudId=",
    ] {
        send(layer.clone(), get(query))
            .await
            .assert_rejected(RejectionKind::ConflictingSites, query);
    }
    send(layer.clone(), get("cloudId=site-a&other=1"))
        .await
        .assert_bound(b"", "site-a", "one parameter");
    send(layer.clone(), get("cloudId=site-b"))
        .await
        .assert_rejected(RejectionKind::SiteNotGranted, "one parameter, not granted");
    // Query and body disagree.
    let mut req = post(tools_call(r#""site-a""#));
    *req.uri_mut() = "/mcp?cloudId=site-b".parse().expect("valid uri");
    send(layer, req)
        .await
        .assert_rejected(RejectionKind::ConflictingSites, "query and body");
}

// ---------------------------------------------------------------------------
// Sites named by URL
// ---------------------------------------------------------------------------

fn directory() -> StaticDirectory {
    StaticDirectory::from_toml(DIRECTORY).expect("valid directory")
}

#[tokio::test]
async fn site_url_resolves_through_the_directory_by_exact_host() {
    let layer = layer().with_directory(directory());
    for url in [
        "https://acme.example.net",
        "https://acme.example.net/",
        "https://acme.example.net/wiki",
        "https://acme.example.net/wiki/spaces/X?y=1",
        "https://ACME.Example.NET/wiki",
    ] {
        let body = tools_call(&format!("\"{url}\""));
        let outcome = send(layer.clone(), post(body.clone())).await;
        let seen = outcome.assert_bound(body.as_bytes(), "site-a", url);
        let site = seen.site.as_ref().expect("bound");
        assert_eq!(site.url(), Some("https://acme.example.net"), "{url}");
        assert_eq!(
            site.organization(),
            Some(&OrgId::new("org-acme").expect("valid org")),
            "{url}"
        );
    }
    // A URL of a site in the directory that is not granted.
    send(
        layer,
        post(tools_call(r#""https://other.example.net/wiki""#)),
    )
    .await
    .assert_rejected(RejectionKind::SiteNotGranted, "other site");
}

#[tokio::test]
async fn site_urls_with_host_tricks_are_rejected() {
    let layer = layer().with_directory(directory());
    let cases = [
        ("https://acme.example.net.", RejectionKind::InvalidRequest),
        (
            "https://acme.example.net./wiki",
            RejectionKind::InvalidRequest,
        ),
        (
            "https://evil@acme.example.net",
            RejectionKind::InvalidRequest,
        ),
        (
            "https://acme.example.net@evil.com",
            RejectionKind::InvalidRequest,
        ),
        (
            "https://acme.example.net:443",
            RejectionKind::InvalidRequest,
        ),
        (
            "https://acme.example.net:8443/wiki",
            RejectionKind::InvalidRequest,
        ),
        ("https://[::1]/", RejectionKind::InvalidRequest),
        ("ftp://acme.example.net", RejectionKind::InvalidRequest),
        (
            "https://acme.example.net\\@evil.com",
            RejectionKind::InvalidRequest,
        ),
        ("https:///acme.example.net", RejectionKind::InvalidRequest),
        (
            "https://acme.example.net.evil.com",
            RejectionKind::SiteNotGranted,
        ),
        ("https://xacme.example.net", RejectionKind::SiteNotGranted),
        (
            "https://evil.acme.example.net",
            RejectionKind::SiteNotGranted,
        ),
        (
            "https://evil.com/acme.example.net",
            RejectionKind::SiteNotGranted,
        ),
        (
            "https://evil.com?https://acme.example.net",
            RejectionKind::SiteNotGranted,
        ),
        ("https://acme.example.ne", RejectionKind::SiteNotGranted),
        ("https://acme%2eexample.net", RejectionKind::InvalidRequest),
    ];
    for (url, kind) in cases {
        let body = tools_call(&serde_json::to_string(url).expect("json string"));
        send(layer.clone(), post(body))
            .await
            .assert_rejected(kind, url);
    }
}

#[tokio::test]
async fn site_url_without_a_directory_is_rejected() {
    for url in ["https://acme.example.net", "https://acme.example.net/wiki"] {
        send(layer(), post(tools_call(&format!("\"{url}\""))))
            .await
            .assert_rejected(RejectionKind::SiteNotGranted, url);
    }
}

// ---------------------------------------------------------------------------
// Unbound requests
// ---------------------------------------------------------------------------

/// A request that names no site, and the call the layer should report for it.
type Unbound = (&'static str, Request<Full<Bytes>>, Option<JsonRpcCall>);

fn unbound_requests() -> Vec<Unbound> {
    let mut get = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    get.extensions_mut().insert(granted(&["site-a"]));
    vec![
        (
            "initialize",
            post(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
            ),
            Some(JsonRpcCall::new("initialize", None)),
        ),
        (
            "tools/list",
            post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#),
            Some(JsonRpcCall::new("tools/list", None)),
        ),
        (
            "notification",
            post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Some(JsonRpcCall::new("notifications/initialized", None)),
        ),
        (
            "tools/call without a site",
            post(
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_sites","arguments":{}}}"#,
            ),
            Some(JsonRpcCall::new("tools/call", Some("list_sites"))),
        ),
        (
            "a site key on a method without a pointer",
            post(
                r#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"arguments":{"cloudId":"site-b"}}}"#,
            ),
            Some(JsonRpcCall::new("resources/read", None)),
        ),
        (
            "JSON-RPC response",
            post(r#"{"jsonrpc":"2.0","id":5,"result":{"cloudId":"site-b"}}"#),
            None,
        ),
        ("GET opening the SSE stream", get, None),
    ]
}

#[tokio::test]
async fn requests_that_name_no_site_pass_unbound() {
    for (case, req, call) in unbound_requests() {
        let sent = req
            .body()
            .clone()
            .collect()
            .await
            .expect("infallible")
            .to_bytes();
        let outcome = send(layer(), req).await;
        let seen = outcome.assert_unbound(&sent, case);
        assert_eq!(seen.call, call, "{case}: call");
        assert_eq!(
            seen.accessible,
            Some(AccessibleSites::new(vec![Site::new(id("site-a"))])),
            "{case}: accessible sites"
        );
    }
}

#[tokio::test]
async fn require_site_rejects_unbound_requests_with_site_required() {
    for (case, req, _) in unbound_requests() {
        send(layer().require_site(), req)
            .await
            .assert_rejected(RejectionKind::SiteRequired, case);
    }
    let body = tools_call(r#""site-a""#);
    send(layer().require_site(), post(body.clone()))
        .await
        .assert_bound(body.as_bytes(), "site-a", "a request naming its site");
}

#[tokio::test]
async fn planted_site_extensions_are_removed() {
    let plant = |mut req: Request<Full<Bytes>>| {
        req.extensions_mut().insert(Site::new(id("site-x")));
        req.extensions_mut()
            .insert(AccessibleSites::new(vec![Site::new(id("site-x"))]));
        req.extensions_mut()
            .insert(JsonRpcCall::new("initialize", None));
        req
    };
    // Unbound: nothing planted survives; the accessible sites are the principal's.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let outcome = send(layer(), plant(post(body))).await;
    let seen = outcome.assert_unbound(body.as_bytes(), "unbound");
    assert_eq!(seen.call, Some(JsonRpcCall::new("tools/list", None)));
    assert_eq!(
        seen.accessible,
        Some(AccessibleSites::new(vec![Site::new(id("site-a"))]))
    );

    // Bound: the checked site replaces the planted one.
    let body = tools_call(r#""site-a""#);
    let outcome = send(layer(), plant(post(body.clone()))).await;
    outcome.assert_bound(body.as_bytes(), "site-a", "bound");

    // No grants known, unbound GET: nothing at all.
    let mut get = Request::get("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    get.extensions_mut().insert(without_claim("user-1"));
    let outcome = send(layer(), plant(get)).await;
    let seen = outcome.assert_unbound(b"", "no grants");
    assert_eq!(seen.accessible, None);
    assert_eq!(seen.call, None);
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

fn grpc(site: Option<&str>, body: &'static [u8]) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/pkg.Sites/Get")
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(site) = site {
        builder = builder.header("x-cloud-id", site);
    }
    let mut req = builder
        .body(Full::new(Bytes::from_static(body)))
        .expect("valid request");
    req.extensions_mut().insert(granted(&["site-a"]));
    req
}

/// A length-prefixed gRPC message that is not JSON.
const GRPC_MESSAGE: &[u8] = b"\x00\x00\x00\x00\x05\x0a\x03\xff\xfe{";

#[tokio::test]
async fn grpc_requests_take_the_site_from_metadata_and_keep_their_body() {
    // gRPC services use `without_body()`: their bodies are protobuf frames, never JSON-RPC.
    let layer = layer()
        .without_body()
        .add_header("x-cloud-id")
        .expect("valid header");

    let outcome = send(layer.clone(), grpc(Some("site-a"), GRPC_MESSAGE)).await;
    let seen = outcome.assert_bound(GRPC_MESSAGE, "site-a", "granted");
    assert_eq!(seen.call, None, "a gRPC body is not read as JSON-RPC");

    // Not granted: answered gRPC-style (HTTP 200, grpc-status 7 PERMISSION_DENIED), with the typed reason.
    let outcome = send(layer.clone(), grpc(Some("site-b"), GRPC_MESSAGE)).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.grpc_status.as_deref(), Some("7"));
    assert_eq!(outcome.reason, Some(RejectionKind::SiteNotGranted));
    assert_eq!(outcome.inner_calls, 0);
    assert_eq!(
        outcome.challenge.as_deref(),
        expected_challenge(RejectionKind::SiteNotGranted).as_deref()
    );

    // Two values of the metadata key: grpc-status 3 INVALID_ARGUMENT.
    let mut req = grpc(Some("site-a"), GRPC_MESSAGE);
    req.headers_mut()
        .append("x-cloud-id", "site-b".parse().expect("valid value"));
    let outcome = send(layer.clone(), req).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.grpc_status.as_deref(), Some("3"));
    assert_eq!(outcome.reason, Some(RejectionKind::ConflictingSites));
    assert_eq!(outcome.inner_calls, 0);

    // No metadata: unbound, or refused with `require_site`.
    send(layer.clone(), grpc(None, GRPC_MESSAGE))
        .await
        .assert_unbound(GRPC_MESSAGE, "no metadata");
    let outcome = send(layer.require_site(), grpc(None, GRPC_MESSAGE)).await;
    // PERMISSION_DENIED, as the 403 it is over HTTP.
    assert_eq!(outcome.grpc_status.as_deref(), Some("7"));
    assert_eq!(outcome.reason, Some(RejectionKind::SiteRequired));
    assert_eq!(outcome.inner_calls, 0);
}

/// A route that reads JSON-RPC bodies refuses gRPC-labelled requests: their body would go unread to an
/// application that might not check the label (gRPC services use `without_body()`).
#[tokio::test]
async fn grpc_labelled_requests_on_a_json_rpc_route_are_refused() {
    const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-b"}}}"#;
    for body in [BODY, GRPC_MESSAGE] {
        let outcome = send(layer(), grpc(None, body)).await;
        assert_eq!(outcome.status, StatusCode::OK, "rendered gRPC-style");
        assert_eq!(outcome.grpc_status.as_deref(), Some("3"));
        assert_eq!(outcome.reason, Some(RejectionKind::InvalidRequest));
        assert_eq!(outcome.inner_calls, 0);
    }
}

// ---------------------------------------------------------------------------
// Grants from an HTTP lookup
// ---------------------------------------------------------------------------

const GRANTS: &str = "/accessible-resources";

/// How the grants endpoint behaves.
#[derive(Clone, Copy)]
enum Mode {
    Up,
    Down,
    /// Answers as when up, after 5 s.
    Slow,
}

/// An "accessible resources" endpoint on 127.0.0.1 that counts its hits and can be switched down or slow.
struct GrantsServer(MockServer);

impl GrantsServer {
    async fn start() -> Self {
        let server = MockServer::start().await;
        server.route_any(GRANTS, grants());
        Self(server)
    }

    fn hits(&self) -> usize {
        self.0.hits(GRANTS)
    }

    fn set(&self, mode: Mode) {
        let answer = match mode {
            Mode::Up => grants(),
            Mode::Down => Answer::new(500, "down"),
            Mode::Slow => grants().with_delay(Duration::from_secs(5)),
        };
        self.0.answer(GRANTS, answer);
    }
}

/// The sites granted to the `subject` of the query.
fn grants() -> Answer {
    Answer::from_fn(200, |req| {
        let subject = req
            .query
            .as_deref()
            .and_then(|q| q.strip_prefix("subject="))
            .unwrap_or_default();
        let body = match subject {
            "user-1" => {
                r#"[{"id":"site-a","url":"https://acme.example.net","organization":"org-acme"}]"#
            }
            "user-2" => r#"[{"id":"site-b"}]"#,
            _ => "[]",
        };
        Bytes::from_static(body.as_bytes())
    })
    .with_content_type("application/json")
}

fn http_grants_layer(server: &GrantsServer, timeout: Duration) -> BindSiteLayer {
    let fetcher = HttpFetcher::with_limits(timeout, 64 * 1024).expect("fetcher");
    let grants = HttpGrants::new(&server.0.url(GRANTS))
        .expect("valid endpoint")
        .with_fetcher(fetcher);
    layer().with_grants(grants)
}

/// Requests without a body are decided from the caches when they can: the first request of a principal looks its
/// grants up once, later ones ask nothing, and the answers (bound, refused) are the same either way.
#[tokio::test]
async fn bodiless_requests_decide_from_the_cache_with_the_same_answers() {
    let server = GrantsServer::start().await;
    let layer = http_grants_layer(&server, Duration::from_secs(5))
        .add_header("x-cloud-id")
        .expect("valid header");
    let get = |subject: &str, site: Option<&str>| {
        let mut req = Request::get("/mcp")
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        req.extensions_mut().insert(without_claim(subject));
        if let Some(site) = site {
            req.headers_mut()
                .insert("x-cloud-id", site.parse().expect("valid header value"));
        }
        req
    };
    for round in 0..3 {
        let case = format!("round {round}");
        let outcome = send(layer.clone(), get("user-1", Some("site-a"))).await;
        let seen = outcome.assert_bound(b"", "site-a", &case);
        assert_eq!(
            seen.site.as_ref().and_then(Site::url),
            Some("https://acme.example.net"),
            "{case}"
        );
        send(layer.clone(), get("user-1", Some("site-z")))
            .await
            .assert_rejected(RejectionKind::SiteNotGranted, &case);
        send(layer.clone(), get("user-1", Some("bad id!")))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, &case);
        send(layer.clone(), get("user-1", None))
            .await
            .assert_unbound(b"", &case);
        assert_eq!(server.hits(), 1, "{case}: one lookup for user-1");
    }
    send(layer.clone(), get("user-2", Some("site-a")))
        .await
        .assert_rejected(RejectionKind::SiteNotGranted, "user-2");
    assert_eq!(server.hits(), 2, "user-2 is looked up once");
    send(layer, get("user-2", Some("site-a")))
        .await
        .assert_rejected(RejectionKind::SiteNotGranted, "user-2 cached");
    assert_eq!(server.hits(), 2, "user-2's answer is cached");
}

#[tokio::test]
async fn http_grants_are_cached_per_principal() {
    let server = GrantsServer::start().await;
    let layer = http_grants_layer(&server, Duration::from_secs(5));
    let body = tools_call(r#""site-a""#);

    for round in 0..2 {
        let outcome = send(
            layer.clone(),
            post_as(without_claim("user-1"), "/mcp", body.clone()),
        )
        .await;
        let seen =
            outcome.assert_bound(body.as_bytes(), "site-a", &format!("user-1, round {round}"));
        let site = seen.site.as_ref().expect("bound");
        assert_eq!(site.url(), Some("https://acme.example.net"));
        assert_eq!(site.organization().map(OrgId::as_str), Some("org-acme"));
    }
    assert_eq!(
        server.hits(),
        1,
        "one lookup for two requests of one principal"
    );

    // Another principal: its own lookup, its own answer.
    let outcome = send(
        layer.clone(),
        post_as(without_claim("user-2"), "/mcp", body.clone()),
    )
    .await;
    outcome.assert_rejected(RejectionKind::SiteNotGranted, "user-2");
    assert_eq!(server.hits(), 2);

    // A principal whose credential lists its sites needs no lookup.
    let outcome = send(layer, post_as(granted(&["site-a"]), "/mcp", body.clone())).await;
    outcome.assert_bound(body.as_bytes(), "site-a", "grants in the credential");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn http_grants_endpoint_down_is_503_and_not_cached() {
    let server = GrantsServer::start().await;
    server.set(Mode::Down);
    let layer = http_grants_layer(&server, Duration::from_secs(5));
    let body = tools_call(r#""site-a""#);

    for round in 1..=2 {
        let outcome = send(
            layer.clone(),
            post_as(without_claim("user-1"), "/mcp", body.clone()),
        )
        .await;
        outcome.assert_rejected(
            RejectionKind::TemporarilyUnavailable,
            &format!("down, round {round}"),
        );
        assert_eq!(server.hits(), round, "the failure was cached");
    }

    // Unbound requests do not need the grants: they pass, without the accessible sites.
    let listed = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let outcome = send(
        layer.clone(),
        post_as(without_claim("user-1"), "/mcp", listed),
    )
    .await;
    let seen = outcome.assert_unbound(listed.as_bytes(), "unbound while down");
    assert_eq!(seen.accessible, None);

    // Back up: the next request looks up again and passes; the answer is then cached through an outage.
    server.set(Mode::Up);
    let before = server.hits();
    let outcome = send(
        layer.clone(),
        post_as(without_claim("user-1"), "/mcp", body.clone()),
    )
    .await;
    outcome.assert_bound(body.as_bytes(), "site-a", "up again");
    assert_eq!(server.hits(), before + 1);
    server.set(Mode::Down);
    let outcome = send(
        layer,
        post_as(without_claim("user-1"), "/mcp", body.clone()),
    )
    .await;
    outcome.assert_bound(body.as_bytes(), "site-a", "cached through an outage");
    assert_eq!(server.hits(), before + 1);
}

#[tokio::test]
async fn http_grants_endpoint_slow_is_503_and_not_cached() {
    let server = GrantsServer::start().await;
    server.set(Mode::Slow);
    let layer = http_grants_layer(&server, Duration::from_millis(200));
    let body = tools_call(r#""site-a""#);

    for round in 1..=2 {
        let started = Instant::now();
        let outcome = send(
            layer.clone(),
            post_as(without_claim("user-1"), "/mcp", body.clone()),
        )
        .await;
        outcome.assert_rejected(
            RejectionKind::TemporarilyUnavailable,
            &format!("slow, round {round}"),
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the layer waited for the slow answer ({:?})",
            started.elapsed()
        );
        assert_eq!(server.hits(), round, "the timeout was cached");
    }

    server.set(Mode::Up);
    let outcome = send(
        layer,
        post_as(without_claim("user-1"), "/mcp", body.clone()),
    )
    .await;
    outcome.assert_bound(body.as_bytes(), "site-a", "fast again");
    assert_eq!(server.hits(), 3);
}

// ---------------------------------------------------------------------------
// Configuration shared between layers
// ---------------------------------------------------------------------------

/// Two layers derived from one base with different grant sources must not answer from each other's cache.
#[tokio::test]
async fn layers_built_from_one_base_do_not_share_lookups() {
    let base = layer();
    let generous = base.clone().with_grants(
        StaticDirectory::from_toml(&format!(
            "{DIRECTORY}\n[grants]\n\"user-1\" = [\"site-a\"]\n"
        ))
        .expect("valid directory"),
    );
    let strict = base.with_grants(
        StaticDirectory::from_toml(&format!("{DIRECTORY}\n[grants]\n\"user-1\" = []\n"))
            .expect("valid directory"),
    );
    let body = tools_call(r#""site-a""#);
    send(
        generous,
        post_as(without_claim("user-1"), "/mcp", body.clone()),
    )
    .await
    .assert_bound(body.as_bytes(), "site-a", "generous layer");
    send(strict, post_as(without_claim("user-1"), "/mcp", body))
        .await
        .assert_rejected(RejectionKind::SiteNotGranted, "strict layer");
}

// ---------------------------------------------------------------------------
// Unicode case folding
// ---------------------------------------------------------------------------

/// Go's `encoding/json` matches struct fields with `strings.EqualFold` (Unicode simple folding, so `ſ` U+017F is
/// `s`) and lets the last matching key win: `"argumentſ"` after `"arguments"` is what a Go MCP server reads. These
/// are case variants of keys on the path and must be refused like `ARGUMENTS`.
#[tokio::test]
async fn unicode_case_variants_of_keys_on_the_path_are_rejected() {
    let cases = [
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"s\",\"arguments\":{\"cloudId\":\"site-a\"},\"argument\u{17f}\":{\"cloudId\":\"site-b\"}}}",
        r#"{"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-a"},"argument\u017f":{"cloudId":"site-b"}}}"#,
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"s\",\"arguments\":{\"cloudId\":\"site-a\"}},\"param\u{17f}\":{\"name\":\"s\",\"arguments\":{\"cloudId\":\"site-b\"}}}",
        "{\"method\":\"tools/call\",\"param\u{17f}\":{\"name\":\"s\",\"arguments\":{\"cloudId\":\"site-b\"}}}",
    ];
    for body in cases {
        send(layer(), post(body))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, body);
    }
}

// ---------------------------------------------------------------------------
// Paths that a server or proxy behind the layer would normalise
// ---------------------------------------------------------------------------

/// `/ex/jira/site-a/../../jira/site-b/rest` is `/ex/jira/site-b/rest` once dot segments are removed (RFC 3986
/// section 5.2.4), as most upstream servers and proxies do. Binding it to `site-a` would let a principal granted
/// `site-a` reach `site-b`: such a path must not pass bound to the site before the dot segments.
#[tokio::test]
async fn path_with_dot_segments_is_not_bound_to_the_site_before_them() {
    let layer = layer()
        .add_path_template("/ex/{product}/{cloudId}/...")
        .expect("valid template");
    for uri in [
        "/ex/jira/site-a/../../jira/site-b/rest",
        "/ex/jira/site-a/../site-b/rest",
        "/ex/jira/site-a/%2e%2e/site-b/rest",
        "/ex/jira/site-a/./../site-b/rest",
    ] {
        let mut req = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        req.extensions_mut().insert(granted(&["site-a"]));
        let outcome = send(layer.clone(), req).await;
        assert_eq!(
            outcome.inner_calls, 0,
            "{uri}: passed bound to {:?}",
            outcome.seen
        );
        assert!(
            matches!(
                outcome.reason,
                Some(RejectionKind::InvalidRequest | RejectionKind::SiteNotGranted)
            ),
            "{uri}: {:?}",
            outcome.reason
        );
    }
}

// ---------------------------------------------------------------------------
// A POST on a body-reading route carries exactly one JSON-RPC message
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_post_that_is_not_exactly_one_jsonrpc_message_is_a_parse_error() {
    for body in [
        "",
        " ",
        "\r\n\t ",
        "null",
        "\"tools/call\"",
        "42",
        "true",
        "{} {}",
    ] {
        let outcome = send(layer(), post(body)).await;
        outcome.assert_rejected(RejectionKind::ParseError, &format!("{body:?}"));
        let answer: serde_json::Value = serde_json::from_slice(&outcome.body).expect("JSON");
        assert_eq!(answer["error"]["code"], -32700, "{body:?}");
        assert_eq!(answer["id"], serde_json::Value::Null, "{body:?}");
    }
}

#[tokio::test]
async fn a_body_whose_length_disagrees_with_its_content_length_is_a_parse_error() {
    let body = tools_call(r#""site-a""#);
    let len = body.len();
    for (case, lengths) in [
        ("longer than sent", vec![format!("{}", len + 10)]),
        ("shorter than sent", vec![format!("{}", len - 10)]),
        ("zero", vec!["0".to_owned()]),
        ("not a number", vec!["12abc".to_owned()]),
        ("two lengths", vec![len.to_string(), len.to_string()]),
    ] {
        let mut req = post(body.clone());
        for value in lengths {
            req.headers_mut()
                .append(CONTENT_LENGTH, value.parse().expect("a header value"));
        }
        send(layer(), req)
            .await
            .assert_rejected(RejectionKind::ParseError, case);
    }
    // The right length passes.
    let mut req = post(body.clone());
    req.headers_mut().insert(
        CONTENT_LENGTH,
        len.to_string().parse().expect("a header value"),
    );
    send(layer(), req)
        .await
        .assert_bound(body.as_bytes(), "site-a", "exact length");
}

#[tokio::test]
async fn only_a_post_must_carry_a_message() {
    // GET (the SSE stream of earlier clients) and DELETE (ending a session) carry none, and pass unbound.
    for method in [http::Method::GET, http::Method::DELETE] {
        let mut req = Request::builder()
            .method(method.clone())
            .uri("/mcp")
            .body(Full::new(Bytes::new()))
            .expect("request");
        req.extensions_mut().insert(granted(&["site-a"]));
        send(layer(), req)
            .await
            .assert_unbound(b"", method.as_str());
    }
    // A POST with no body at all is refused like an empty one; without body reading, it passes.
    let mut empty = Request::post("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    empty.extensions_mut().insert(granted(&["site-a"]));
    send(layer(), empty)
        .await
        .assert_rejected(RejectionKind::ParseError, "POST without a body");
    let mut empty = Request::post("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    empty.extensions_mut().insert(granted(&["site-a"]));
    send(layer().without_body(), empty)
        .await
        .assert_unbound(b"", "POST without a body, bodies not read");
}

// ---------------------------------------------------------------------------
// Which methods must name a site
// ---------------------------------------------------------------------------

#[tokio::test]
async fn only_the_configured_methods_must_name_a_site() {
    let layer = || {
        layer()
            .add_body_pointer("resources/read", "/params/cloudId")
            .and_then(|l| l.require_site_for(["tools/call", "resources/read", "prompts/get"]))
            .expect("valid")
    };
    let rpc = |method: &str, params: serde_json::Value| {
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            .to_string()
    };
    // Named: bound as usual.
    let call = tools_call(r#""site-a""#);
    send(layer(), post(call.clone())).await.assert_bound(
        call.as_bytes(),
        "site-a",
        "tools/call with its site",
    );
    // The listed methods without a site: 403, with the challenge and the reason.
    for body in [
        rpc(
            "tools/call",
            serde_json::json!({"name": "search", "arguments": {"query": "q"}}),
        ),
        rpc("resources/read", serde_json::json!({"uri": "file:///a"})),
        rpc("prompts/get", serde_json::json!({"name": "summary"})),
    ] {
        let outcome = send(layer(), post(body.clone())).await;
        outcome.assert_rejected(RejectionKind::SiteRequired, &body);
        assert_eq!(outcome.status, StatusCode::FORBIDDEN);
        let answer: serde_json::Value = serde_json::from_slice(&outcome.body).expect("JSON");
        assert!(
            answer["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("site")),
            "{answer}"
        );
    }
    // Other methods, notifications and body-less requests pass unbound.
    for body in [
        rpc("tools/list", serde_json::json!({})),
        rpc("server/discover", serde_json::json!({})),
        rpc(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        ),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ] {
        send(layer(), post(body.clone()))
            .await
            .assert_unbound(body.as_bytes(), &body);
    }
    let mut get = Request::get("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    get.extensions_mut().insert(granted(&["site-a"]));
    send(layer(), get).await.assert_unbound(b"", "GET");
    // An empty method name is a configuration error.
    assert!(layer().require_site_for([""]).is_err());
}
