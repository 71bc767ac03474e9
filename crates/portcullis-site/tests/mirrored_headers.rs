//! The MCP 2026-07-28 request headers that mirror the body (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`,
//! recognised `Mcp-Param-*`): each against its body field, in every way the two can disagree. A refusal is 400 with
//! a JSON-RPC error -32020 naming the header, the request's id when it could be read, and nothing reaches the inner
//! service; what passes reaches it byte for byte.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use portcullis_core::{JsonRpcCall, RejectionKind};
use portcullis_site::BindSiteLayer;
use serde_json::{Value, json};

mod support;

use support::*;

const CURRENT: &str = "2026-07-28";

/// The site layer recognising `Mcp-Param-CloudId` (the site), `Mcp-Param-Limit` (an integer) and
/// `Mcp-Param-DryRun` (a boolean).
fn mirroring() -> BindSiteLayer {
    layer()
        .add_param_header("Mcp-Param-CloudId", "/params/arguments/cloudId")
        .and_then(|l| l.add_param_header("Mcp-Param-Limit", "/params/arguments/limit"))
        .and_then(|l| l.add_param_header("Mcp-Param-DryRun", "/params/arguments/dryRun"))
        .expect("valid param headers")
}

/// A `tools/call` of `search` on `site-a` by a client of `version` (`None`: no `_meta`), with `arguments`.
fn call_with(version: Option<&str>, name: &str, arguments: Value) -> String {
    let mut params = json!({"name": name, "arguments": arguments});
    if let Some(version) = version {
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": version});
    }
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).to_string()
}

fn call(version: Option<&str>) -> String {
    call_with(
        version,
        "search",
        json!({"cloudId": "site-a", "query": "q"}),
    )
}

/// A POST of `body` from a principal granted `site-a` and `site-b`, with `headers` (raw bytes allowed).
fn post_with(body: &str, headers: &[(&str, &[u8])]) -> Request<Full<Bytes>> {
    let mut req = post_as(granted(&["site-a", "site-b"]), "/mcp", body.to_owned());
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a valid header value");
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        req.headers_mut().append(name, value);
    }
    req
}

/// The headers a conforming 2026-07-28 client sends with [`call`].
fn conforming() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("MCP-Protocol-Version", CURRENT.as_bytes()),
        ("Mcp-Method", b"tools/call"),
        ("Mcp-Name", b"search"),
        ("Mcp-Param-CloudId", b"site-a"),
    ]
}

/// `conforming()` with `name` set to `value` (or removed with `None`).
fn conforming_but(name: &str, value: Option<&'static [u8]>) -> Vec<(&'static str, &'static [u8])> {
    let mut headers: Vec<_> = conforming()
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect();
    if let Some(value) = value {
        let name = conforming()
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{name} is not a conforming header"));
        headers.push((name, value));
    }
    headers
}

impl Outcome {
    /// Asserts a 400 -32020 naming `header`, answered to `id`, that reached nothing.
    fn assert_mismatch(&self, header: &str, id: &Value, case: &str) {
        self.assert_rejected(RejectionKind::HeaderMismatch, case);
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{case}");
        let body: Value = serde_json::from_slice(&self.body).expect("a JSON-RPC error body");
        assert_eq!(body["jsonrpc"], "2.0", "{case}: jsonrpc");
        assert_eq!(body["id"], *id, "{case}: id");
        assert_eq!(body["error"]["code"], -32020, "{case}: code");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(
            message.starts_with(&format!("Header mismatch: the {header} header ")),
            "{case}: the message names {header}: {message}"
        );
    }
}

#[tokio::test]
async fn equal_headers_pass_with_the_site_bound_and_the_same_bytes() {
    let body = call(Some(CURRENT));
    let outcome = send(mirroring(), post_with(&body, &conforming())).await;
    let seen = outcome.assert_bound(body.as_bytes(), "site-a", "conforming client");
    assert_eq!(
        seen.call,
        Some(JsonRpcCall::new("tools/call", Some("search")))
    );
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let body = call(Some(CURRENT));
    let headers: [(&str, &[u8]); 4] = [
        ("mcp-protocol-version", CURRENT.as_bytes()),
        ("MCP-METHOD", b"tools/call"),
        ("mcp-name", b"search"),
        ("MCP-PARAM-CLOUDID", b"site-a"),
    ];
    send(mirroring(), post_with(&body, &headers))
        .await
        .assert_bound(body.as_bytes(), "site-a", "names in other cases");
}

#[tokio::test]
async fn each_header_that_differs_from_its_body_field_is_refused_even_only_in_case() {
    let body = call(Some(CURRENT));
    for (header, value) in [
        ("Mcp-Method", &b"tools/list"[..]),
        ("Mcp-Name", b"delete_everything"),
        ("Mcp-Param-CloudId", b"site-b"),
        ("MCP-Protocol-Version", b"2025-11-25"),
        // Values are case-sensitive.
        ("Mcp-Method", b"Tools/Call"),
        ("Mcp-Name", b"Search"),
        ("Mcp-Param-CloudId", b"SITE-A"),
    ] {
        let outcome = send(
            mirroring(),
            post_with(&body, &conforming_but(header, Some(value))),
        )
        .await;
        let case = format!("{header}: {}", String::from_utf8_lossy(value));
        outcome.assert_mismatch(header, &json!(7), &case);
    }
}

#[tokio::test]
async fn the_site_named_by_a_param_header_is_bound_only_when_the_body_agrees() {
    // The principal holds both sites: the disagreement itself is the refusal (400), not a grant check.
    let body = call(Some(CURRENT));
    let outcome = send(
        mirroring(),
        post_with(&body, &conforming_but("Mcp-Param-CloudId", Some(b"site-b"))),
    )
    .await;
    outcome.assert_mismatch("Mcp-Param-CloudId", &json!(7), "header site-b, body site-a");

    // Header on a granted site, body on one that is not granted: 400 for the disagreement, not 403.
    let body = call_with(Some(CURRENT), "search", json!({"cloudId": "site-c"}));
    let outcome = send(mirroring(), post_with(&body, &conforming())).await;
    outcome.assert_mismatch("Mcp-Param-CloudId", &json!(7), "header site-a, body site-c");
}

#[tokio::test]
async fn base64_values_are_decoded_before_they_are_compared() {
    let body = call_with(
        Some(CURRENT),
        "météo",
        json!({"cloudId": "site-a", "limit": 3}),
    );
    // "météo" and "site-a" in the sentinel encoding: equal.
    let mut headers = conforming_but("Mcp-Name", Some(b"=?base64?bcOpdMOpbw==?="));
    headers.retain(|(n, _)| *n != "Mcp-Param-CloudId");
    headers.push(("Mcp-Param-CloudId", b"=?base64?c2l0ZS1h?="));
    headers.push(("Mcp-Param-Limit", b"=?base64?Mw==?="));
    send(mirroring(), post_with(&body, &headers))
        .await
        .assert_bound(body.as_bytes(), "site-a", "base64 equal");

    // Encoded, but of another value ("meteo", "site-b"): refused.
    for (header, value) in [
        ("Mcp-Name", &b"=?base64?bWV0ZW8=?="[..]),
        ("Mcp-Param-CloudId", b"=?base64?c2l0ZS1i?="),
    ] {
        let mut headers = conforming_but(header, Some(value));
        if header != "Mcp-Name" {
            headers.retain(|(n, _)| *n != "Mcp-Name");
            headers.push(("Mcp-Name", b"=?base64?bcOpdMOpbw==?="));
        }
        headers.push(("Mcp-Param-Limit", b"3"));
        let outcome = send(mirroring(), post_with(&body, &headers)).await;
        outcome.assert_mismatch(header, &json!(7), &format!("{header}: base64 different"));
    }
}

#[tokio::test]
async fn invalid_base64_is_refused() {
    let body = call(Some(CURRENT));
    for value in [
        &b"=?base64?c2l0ZS1h?=x"[..], // not the sentinel: a plain value that differs
        b"=?base64?c2l0ZS1h!?=",      // outside the alphabet
        b"=?base64?c2l0ZS1?=",        // bad length
        b"=?base64?c2l0ZS1hYQ?=",     // padding left out
        b"=?base64?/w==?=",           // not UTF-8
    ] {
        let outcome = send(
            mirroring(),
            post_with(&body, &conforming_but("Mcp-Param-CloudId", Some(value))),
        )
        .await;
        outcome.assert_mismatch(
            "Mcp-Param-CloudId",
            &json!(7),
            &String::from_utf8_lossy(value),
        );
    }
}

#[tokio::test]
async fn a_literal_that_looks_like_the_sentinel_must_itself_be_encoded() {
    let body = call_with(
        Some(CURRENT),
        "=?base64?literal?=",
        json!({"cloudId": "site-a"}),
    );
    // Sent plain, it reads as a (broken) encoding: refused.
    let outcome = send(
        mirroring(),
        post_with(
            &body,
            &conforming_but("Mcp-Name", Some(b"=?base64?literal?=")),
        ),
    )
    .await;
    outcome.assert_mismatch("Mcp-Name", &json!(7), "sentinel-like literal sent plain");
    // Encoded as the specification says: passes.
    let headers = conforming_but("Mcp-Name", Some(b"=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="));
    send(mirroring(), post_with(&body, &headers))
        .await
        .assert_bound(body.as_bytes(), "site-a", "sentinel-like literal encoded");
}

#[tokio::test]
async fn non_ascii_values_without_the_encoding_are_refused() {
    let body = call_with(Some(CURRENT), "café", json!({"cloudId": "site-a"}));
    for value in [&b"caf\xc3\xa9"[..], b"caf\xe9"] {
        let outcome = send(
            mirroring(),
            post_with(&body, &conforming_but("Mcp-Name", Some(value))),
        )
        .await;
        outcome.assert_mismatch("Mcp-Name", &json!(7), "raw non-ASCII");
    }
}

#[tokio::test]
async fn a_header_sent_twice_is_refused_even_with_equal_values() {
    let body = call(Some(CURRENT));
    for (header, value) in [
        ("Mcp-Method", &b"tools/call"[..]),
        ("Mcp-Name", b"search"),
        ("Mcp-Param-CloudId", b"site-a"),
        ("MCP-Protocol-Version", CURRENT.as_bytes()),
    ] {
        let mut headers = conforming();
        headers.push((header, value));
        let outcome = send(mirroring(), post_with(&body, &headers)).await;
        outcome.assert_mismatch(header, &json!(7), &format!("{header} twice"));
    }
}

#[tokio::test]
async fn a_header_without_its_body_field_is_refused() {
    // Mcp-Name on a method that names nothing.
    let list = json!({"jsonrpc": "2.0", "id": "list-1", "method": "tools/list"}).to_string();
    let headers: [(&str, &[u8]); 2] = [("Mcp-Method", b"tools/list"), ("Mcp-Name", b"search")];
    send(mirroring(), post_with(&list, &headers))
        .await
        .assert_mismatch("Mcp-Name", &json!("list-1"), "Mcp-Name on tools/list");

    // A parameter header for an argument the call does not have, or has as null.
    for arguments in [json!({"query": "q"}), json!({"query": "q", "limit": null})] {
        let body = call_with(Some(CURRENT), "list_sites", arguments);
        let mut headers = conforming_but("Mcp-Name", Some(b"list_sites"));
        headers.retain(|(n, _)| *n != "Mcp-Param-CloudId");
        headers.push(("Mcp-Param-Limit", b"10"));
        send(mirroring(), post_with(&body, &headers))
            .await
            .assert_mismatch("Mcp-Param-Limit", &json!(7), "no limit in the body");
    }

    // Mcp-Method on a JSON-RPC response, which has no method.
    let response = json!({"jsonrpc": "2.0", "id": 3, "result": {}}).to_string();
    send(
        mirroring(),
        post_with(&response, &[("Mcp-Method", b"tools/call")]),
    )
    .await
    .assert_mismatch("Mcp-Method", &json!(3), "Mcp-Method on a response");
}

#[tokio::test]
async fn a_current_client_must_send_every_header_whose_field_is_in_the_body() {
    let body = call(Some(CURRENT));
    for header in [
        "Mcp-Method",
        "Mcp-Name",
        "Mcp-Param-CloudId",
        "MCP-Protocol-Version",
    ] {
        let outcome = send(mirroring(), post_with(&body, &conforming_but(header, None))).await;
        outcome.assert_mismatch(header, &json!(7), &format!("{header} left out"));
    }
    // A client that declares the current revision in the header alone is held to it too.
    let body = call(None);
    let outcome = send(
        mirroring(),
        post_with(&body, &conforming_but("Mcp-Name", None)),
    )
    .await;
    outcome.assert_mismatch("Mcp-Name", &json!(7), "declared by header only");
}

#[tokio::test]
async fn earlier_clients_that_send_none_of_the_headers_keep_working() {
    let body = call(None);
    for headers in [
        vec![],
        vec![("MCP-Protocol-Version", &b"2025-06-18"[..])],
        vec![("MCP-Protocol-Version", &b"2025-11-25"[..])],
    ] {
        send(mirroring(), post_with(&body, &headers))
            .await
            .assert_bound(body.as_bytes(), "site-a", "earlier client");
    }
    // An earlier client's initialize, without any of the new headers.
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}}})
    .to_string();
    send(mirroring(), post_with(&initialize, &[]))
        .await
        .assert_unbound(initialize.as_bytes(), "initialize");
}

#[tokio::test]
async fn integers_and_booleans_compare_as_values() {
    for (limit, header, agrees) in [
        (json!(42), &b"42"[..], true),
        (json!(42.0), b"42", true),
        (json!(42), b"42.0", true),
        (json!(-7), b"-7", true),
        (json!(42), b"43", false),
        (json!(42), b"042", false),
        (json!(42), b"42abc", false),
        (json!(42), b"=?base64?NDI=?=", true),
        (json!("42"), b"42", true),
        (json!("42"), b"42.0", false),
    ] {
        let body = call_with(
            Some(CURRENT),
            "search",
            json!({"cloudId": "site-a", "limit": limit}),
        );
        let mut headers = conforming();
        headers.push(("Mcp-Param-Limit", header));
        let outcome = send(mirroring(), post_with(&body, &headers)).await;
        let case = format!("limit {limit} against {}", String::from_utf8_lossy(header));
        if agrees {
            outcome.assert_bound(body.as_bytes(), "site-a", &case);
        } else {
            outcome.assert_mismatch("Mcp-Param-Limit", &json!(7), &case);
        }
    }
    for (dry, header, agrees) in [
        (true, &b"true"[..], true),
        (false, b"false", true),
        (true, b"True", false),
        (true, b"1", false),
        (false, b"true", false),
    ] {
        let body = call_with(
            Some(CURRENT),
            "search",
            json!({"cloudId": "site-a", "dryRun": dry}),
        );
        let mut headers = conforming();
        headers.push(("Mcp-Param-DryRun", header));
        let outcome = send(mirroring(), post_with(&body, &headers)).await;
        let case = format!("dryRun {dry} against {}", String::from_utf8_lossy(header));
        if agrees {
            outcome.assert_bound(body.as_bytes(), "site-a", &case);
        } else {
            outcome.assert_mismatch("Mcp-Param-DryRun", &json!(7), &case);
        }
    }
}

#[tokio::test]
async fn mcp_name_mirrors_the_uri_of_resources_read_and_the_name_of_prompts_get() {
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
        "params": {"uri": "file:///a.txt", "name": "not-this",
            "_meta": {"io.modelcontextprotocol/protocolVersion": CURRENT}}})
    .to_string();
    let prompt = json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get",
        "params": {"name": "summary", "uri": "file:///not-this",
            "_meta": {"io.modelcontextprotocol/protocolVersion": CURRENT}}})
    .to_string();
    for (body, method, name, agrees) in [
        (&read, &b"resources/read"[..], &b"file:///a.txt"[..], true),
        (&read, b"resources/read", b"not-this", false),
        (&prompt, b"prompts/get", b"summary", true),
        (&prompt, b"prompts/get", b"file:///not-this", false),
    ] {
        let headers: [(&str, &[u8]); 3] = [
            ("MCP-Protocol-Version", CURRENT.as_bytes()),
            ("Mcp-Method", method),
            ("Mcp-Name", name),
        ];
        let outcome = send(mirroring(), post_with(body, &headers)).await;
        let case = String::from_utf8_lossy(name);
        if agrees {
            outcome.assert_unbound(body.as_bytes(), &case);
        } else {
            outcome.assert_mismatch("Mcp-Name", &json!(1), &case);
        }
    }
}

#[tokio::test]
async fn the_answer_carries_the_request_id_when_it_could_be_read_and_never_a_header_value() {
    for (id, expected) in [
        (json!("req-9"), json!("req-9")),
        (json!(12), json!(12)),
        (json!({"not": "an id"}), Value::Null),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "search", "arguments": {"cloudId": "site-a"}}})
        .to_string();
        let outcome = send(
            mirroring(),
            post_with(&body, &[("Mcp-Name", b"secret-looking-value")]),
        )
        .await;
        outcome.assert_mismatch("Mcp-Name", &expected, &format!("id {id}"));
        let text = String::from_utf8_lossy(&outcome.body);
        assert!(
            !text.contains("secret-looking-value"),
            "the header's value is not echoed: {text}"
        );
    }
    // No id at all (a notification): null.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled"}).to_string();
    send(
        mirroring(),
        post_with(&note, &[("Mcp-Method", b"notifications/other")]),
    )
    .await
    .assert_mismatch("Mcp-Method", &Value::Null, "notification");
}

#[tokio::test]
async fn keys_the_headers_mirror_may_not_be_given_twice_in_the_body() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}, "_META":{}}}"#,
    ] {
        send(mirroring(), post_with(body, &[]))
            .await
            .assert_rejected(RejectionKind::InvalidRequest, body);
    }
}

#[tokio::test]
async fn an_unrecognised_param_header_is_forwarded_untouched() {
    // Without `add_param_header`, Mcp-Param-CloudId is not this layer's to judge: an intermediary that does not
    // recognise a header forwards it.
    let body = call(Some(CURRENT));
    let outcome = send(
        layer(),
        post_with(
            &body,
            &conforming_but("Mcp-Param-CloudId", Some(b"anything")),
        ),
    )
    .await;
    outcome.assert_bound(body.as_bytes(), "site-a", "unrecognised param header");
}

#[tokio::test]
async fn a_current_clients_notifications_need_no_headers_but_must_agree_when_they_send_them() {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 3, "_meta": {"io.modelcontextprotocol/protocolVersion": CURRENT}}})
    .to_string();
    let version: (&str, &[u8]) = ("MCP-Protocol-Version", CURRENT.as_bytes());
    send(mirroring(), post_with(&note, &[version]))
        .await
        .assert_unbound(note.as_bytes(), "notification without Mcp-Method");
    send(
        mirroring(),
        post_with(
            &note,
            &[version, ("Mcp-Method", b"notifications/cancelled")],
        ),
    )
    .await
    .assert_unbound(note.as_bytes(), "notification with its Mcp-Method");
    send(
        mirroring(),
        post_with(&note, &[version, ("Mcp-Method", b"tools/call")]),
    )
    .await
    .assert_mismatch(
        "Mcp-Method",
        &Value::Null,
        "notification with another Mcp-Method",
    );
}

#[tokio::test]
async fn mcp_name_mirrors_the_task_id_of_task_requests() {
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let body =
            json!({"jsonrpc": "2.0", "id": 4, "method": method, "params": {"taskId": "task-9",
            "_meta": {"io.modelcontextprotocol/protocolVersion": CURRENT}}})
            .to_string();
        let headers = |name: &'static [u8]| -> Vec<(&'static str, &'static [u8])> {
            let mut headers = vec![
                ("MCP-Protocol-Version", CURRENT.as_bytes()),
                ("Mcp-Method", method.as_bytes()),
            ];
            if !name.is_empty() {
                headers.push(("Mcp-Name", name));
            }
            headers
        };
        send(mirroring(), post_with(&body, &headers(b"task-9")))
            .await
            .assert_unbound(body.as_bytes(), method);
        send(mirroring(), post_with(&body, &headers(b"task-8")))
            .await
            .assert_mismatch("Mcp-Name", &json!(4), method);
        send(mirroring(), post_with(&body, &headers(b"")))
            .await
            .assert_mismatch("Mcp-Name", &json!(4), method);
    }
}
