//! The demo's MCP server: a hand-written JSON-RPC responder for `initialize`, `tools/list` and `tools/call` that
//! tells the caller which identity headers it received from the gateway (and that no `Authorization` header
//! reached it).

use std::convert::Infallible;

use aws_lc_rs::rand::SystemRandom;
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::issuer::random_hex;
use crate::config::DEFAULT_NAMESPACE;

/// The MCP endpoint's path, on the upstream and on the gateway.
pub(crate) const MCP_PATH: &str = "/mcp";
const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The upstream as a hyper service.
pub(crate) fn service() -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(handle(req).await) })
}

async fn handle(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != MCP_PATH {
        return empty(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::POST {
        // No server-initiated stream in the demo: MCP allows 405 for the GET that would open one.
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, 1024 * 1024).collect().await else {
        return rpc_error(Value::Null, -32700, "the body is unreadable or over 1 MiB");
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return rpc_error(Value::Null, -32700, "parse error");
    };
    let Some(id) = message.get("id").cloned() else {
        // A notification (`notifications/initialized`) or a response: accepted, nothing to answer.
        return empty(StatusCode::ACCEPTED);
    };
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => initialize(id, &params),
        "ping" => rpc_result(id, json!({})),
        "tools/list" => rpc_result(id, json!({ "tools": tools() })),
        "tools/call" => call_tool(id, &params, &parts.headers),
        _ => rpc_error(id, -32601, "method not found"),
    }
}

fn initialize(id: Value, params: &Value) -> Response<Full<Bytes>> {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or("2025-06-18");
    let mut response = rpc_result(
        id,
        json!({
            "protocolVersion": version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "portcullis-demo-upstream", "version": env!("CARGO_PKG_VERSION") },
            "instructions": "A demo MCP server behind Portcullis. Every tool takes the site in `cloudId` \
                             (site-a or site-b) and answers with the identity the gateway passed on.",
        }),
    );
    if let Ok(session) = random_hex(&SystemRandom::new(), 16)
        && let Ok(value) = HeaderValue::from_str(&session)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn tools() -> Value {
    let site = json!({ "type": "string", "description": "The cloud site: site-a or site-b." });
    json!([
        {
            "name": "search",
            "title": "Search",
            "description": "Searches a site (needs no scope beyond a valid credential).",
            "inputSchema": {
                "type": "object",
                "properties": { "cloudId": site, "query": { "type": "string" } },
                "required": ["cloudId"],
            },
        },
        {
            "name": "create_issue",
            "title": "Create issue",
            "description": "Creates an issue on a site (OAuth scope mcp:write).",
            "inputSchema": {
                "type": "object",
                "properties": { "cloudId": site, "title": { "type": "string" } },
                "required": ["cloudId", "title"],
            },
        },
    ])
}

fn call_tool(id: Value, params: &Value, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    if !matches!(name, "search" | "create_issue") {
        return rpc_error(id, -32602, "unknown tool");
    }
    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
    let mut identity = serde_json::Map::new();
    for (header, value) in headers {
        if header.as_str().starts_with(DEFAULT_NAMESPACE) {
            identity.insert(
                header.as_str().to_owned(),
                Value::String(value.to_str().unwrap_or("<not ASCII>").to_owned()),
            );
        }
    }
    let get = |suffix: &str| {
        identity
            .get(&format!("{DEFAULT_NAMESPACE}{suffix}"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let authorization_received = headers.contains_key(AUTHORIZATION);
    let text = format!(
        "{name} on site {} for account {} (signed in with {}, organization {}, scopes \"{}\"). \
         Authorization header received: {}.",
        get("site-id"),
        get("account-id"),
        get("auth-method"),
        get("organization-id"),
        get("scopes"),
        if authorization_received {
            "yes"
        } else {
            "no, the gateway keeps tokens to itself"
        },
    );
    let session = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    rpc_result(
        id,
        json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": {
                "tool": name,
                "arguments": arguments,
                "identity_headers": identity,
                "authorization_received": authorization_received,
                "session": session,
            },
            "isError": false,
        }),
    )
}

fn rpc_result(id: Value, result: Value) -> Response<Full<Bytes>> {
    json_response(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

fn rpc_error(id: Value, code: i32, message: &str) -> Response<Full<Bytes>> {
    json_response(
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
    )
}

fn json_response(body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
