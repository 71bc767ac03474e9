//! `portcullis demo`: start it, read what it prints, and replay every printed command, the MCP client
//! configuration and the resource metadata URL, checking each outcome.

mod support;

use base64::Engine as _;
use http::{Method, Request, StatusCode};
use support::{PATIENCE, Reply, Running, empty, full, send};

/// One printed command: what it shows, the status it announces, and the curl line.
#[derive(Debug)]
struct Printed {
    what: String,
    expect: u16,
    curl: String,
}

/// A curl line taken apart: only the options the demo prints are understood; anything else fails the test, so
/// that what is printed stays within what is checked here.
#[derive(Debug)]
struct Curl {
    method: Option<String>,
    url: String,
    headers: Vec<(String, String)>,
    data: Vec<String>,
}

/// Splits a command line into words: single quotes group, nothing else of the shell is allowed.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '"' | '\\' | '$' | '`' | '&' | '|' | ';' | '<' | '>' | '(' | ')' | '*' | '?'
                if !quoted =>
            {
                panic!("unquoted shell character {c:?} in {line}")
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {line}");
    if started {
        words.push(word);
    }
    words
}

fn parse_curl(line: &str) -> Curl {
    let words = shell_words(line);
    assert_eq!(words.first().map(String::as_str), Some("curl"), "{line}");
    let mut curl = Curl {
        method: None,
        url: String::new(),
        headers: Vec::new(),
        data: Vec::new(),
    };
    let mut words = words.into_iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-sS" | "-s" | "-S" | "-i" => {}
            "-X" => curl.method = words.next(),
            "-H" => {
                let header = words.next().expect("a header after -H");
                let (name, value) = header.split_once(':').expect("name: value");
                curl.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" => curl.data.push(words.next().expect("data after -d")),
            flag if flag.starts_with('-') => panic!("unexpected curl option {flag} in {line}"),
            url => {
                assert!(curl.url.is_empty(), "two URLs in {line}");
                curl.url = url.to_owned();
            }
        }
    }
    assert!(curl.url.starts_with("http://127.0.0.1:"), "{line}");
    curl
}

/// Sends what the curl line would send.
async fn replay(curl: &Curl) -> Reply {
    let method = match (&curl.method, curl.data.is_empty()) {
        (Some(method), _) => Method::from_bytes(method.as_bytes()).expect("method"),
        (None, true) => Method::GET,
        (None, false) => Method::POST,
    };
    let mut req = Request::builder().method(method).uri(&curl.url);
    for (name, value) in &curl.headers {
        req = req.header(name, value);
    }
    let has_content_type = curl
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let body = if curl.data.is_empty() {
        empty()
    } else {
        if !has_content_type {
            // What curl sends with -d.
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        full(curl.data.join("&"))
    };
    send(req.body(body).expect("request")).await
}

/// The status line of `curl -i` output run by the shell, if curl is installed.
async fn with_real_curl(line: &str) -> Option<u16> {
    let installed = tokio::process::Command::new("curl")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !installed {
        return None;
    }
    let output = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl finishes in time")
    .expect("run curl");
    assert!(output.status.success(), "{line}: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let status = stdout
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    Some(status.unwrap_or_else(|| panic!("no status line from {line}: {stdout}")))
}

fn printed_commands(lines: &[String]) -> Vec<Printed> {
    let mut printed = Vec::new();
    for pair in lines.windows(2) {
        let (comment, command) = (&pair[0], &pair[1]);
        if !command.starts_with("curl ") {
            continue;
        }
        let (what, expect) = comment
            .strip_prefix("# ")
            .and_then(|c| c.rsplit_once(" -> "))
            .unwrap_or_else(|| panic!("no `# ... -> status` line above {command}"));
        printed.push(Printed {
            what: what.to_owned(),
            expect: expect.parse().expect("a status"),
            curl: command.clone(),
        });
    }
    printed
}

#[tokio::test]
async fn every_printed_command_shows_the_outcome_it_announces() {
    let mut demo = Running::spawn(&[
        "demo",
        "--port",
        "0",
        "--issuer-port",
        "0",
        "--upstream-port",
        "0",
    ]);
    let lines = demo.read_until(|line| line.starts_with("Ready.")).await;
    let printed = printed_commands(&lines);
    assert!(printed.len() >= 12, "{printed:#?}");

    let metadata_url = lines
        .iter()
        .find_map(|l| l.strip_prefix("Resource metadata URL: "))
        .expect("the resource metadata URL is printed")
        .to_owned();
    let challenge = format!("resource_metadata=\"{metadata_url}\"");

    let mut reasons = Vec::new();
    for command in &printed {
        let curl = parse_curl(&command.curl);
        let reply = replay(&curl).await;
        assert_eq!(
            reply.status.as_u16(),
            command.expect,
            "{}\n{}\n{}",
            command.what,
            command.curl,
            reply.text()
        );
        match reply.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let www = reply.header("www-authenticate").unwrap_or_default();
                assert!(
                    www.starts_with("Bearer ") && www.contains(&challenge),
                    "{}: {www}",
                    command.what
                );
                let reason = reply.json()["reason"]
                    .as_str()
                    .expect("a reason")
                    .to_owned();
                if reason == "insufficient_scope" {
                    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
                    assert!(www.contains("scope=\"mcp:write\""), "{www}");
                }
                reasons.push((reply.status.as_u16(), reason));
            }
            StatusCode::OK if curl.url.ends_with("/mcp") && !curl.data.is_empty() => {
                let result = &reply.json()["result"]["structuredContent"];
                assert_eq!(result["authorization_received"], false, "{}", reply.text());
                let identity = &result["identity_headers"];
                assert_eq!(identity["x-portcullis-site-id"], "site-a", "{identity}");
                assert_eq!(
                    identity["x-portcullis-organization-id"], "org-acme",
                    "{identity}"
                );
            }
            _ => {}
        }
        if let Some(status) = with_real_curl(&command.curl).await {
            assert_eq!(status, command.expect, "curl: {}", command.curl);
        }
    }
    // Each outcome the demo promises is among them.
    for outcome in [
        (403, "site_not_granted"),
        (401, "api_tokens_disabled"),
        (401, "missing_credential"),
        (403, "insufficient_scope"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|(s, r)| (*s, r.as_str()) == (outcome.0, outcome.1)),
            "{outcome:?} not shown: {reasons:?}"
        );
    }
    assert!(
        printed.iter().filter(|p| p.expect == 200).count() >= 4,
        "{printed:#?}"
    );

    // The resource metadata URL serves the metadata of the printed resource.
    let metadata = send(Request::get(&metadata_url).body(empty()).expect("request")).await;
    assert_eq!(metadata.status, StatusCode::OK);
    let resource = metadata.json()["resource"]
        .as_str()
        .expect("resource")
        .to_owned();

    // The MCP client configuration works as a client would use it.
    let start = lines
        .iter()
        .position(|l| l == "{")
        .expect("the configuration starts");
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l == "}")
            .expect("the configuration ends");
    let config: serde_json::Value =
        serde_json::from_str(&lines[start..=end].join("\n")).expect("the configuration is JSON");
    let server = &config["mcpServers"]["portcullis-demo"];
    assert_eq!(server["url"], resource.as_str());
    let authorization = server["headers"]["Authorization"]
        .as_str()
        .expect("an Authorization header");
    assert!(authorization.starts_with("Bearer ey"), "{authorization}");
    let mcp = |body: &str| {
        Request::post(&resource)
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(full(body.to_owned()))
            .expect("request")
    };
    let initialized = send(mcp(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#,
    ))
    .await;
    assert_eq!(initialized.status, StatusCode::OK, "{}", initialized.text());
    assert!(initialized.header("mcp-session-id").is_some());
    assert_eq!(
        initialized.json()["result"]["protocolVersion"],
        "2025-06-18"
    );
    let tools = send(mcp(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)).await;
    assert_eq!(tools.status, StatusCode::OK);
    assert!(tools.text().contains("create_issue"), "{}", tools.text());
    // The token is the one the demo says: its claims grant site-a with both scopes.
    let claims = authorization
        .trim_start_matches("Bearer ")
        .split('.')
        .nth(1)
        .expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["scope"], "mcp:read mcp:write");
    assert_eq!(claims["sites"], serde_json::json!(["site-a"]));
    assert_eq!(claims["aud"], resource.as_str());

    // A browser-based client on this machine (another loopback port) passes the preflight and the Origin check;
    // another site's page does not.
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(&resource)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,mcp-method",
            )
            .body(empty())
            .expect("request")
    };
    let local = send(preflight("http://localhost:6274")).await;
    assert_eq!(
        local.header("access-control-allow-origin"),
        Some("http://localhost:6274")
    );
    let tools_from = |origin: &str| {
        Request::post(&resource)
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("origin", origin)
            .body(full(
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned(),
            ))
            .expect("request")
    };
    assert_eq!(
        send(tools_from("http://127.0.0.1:6274")).await.status,
        StatusCode::OK
    );
    let elsewhere = send(preflight("https://evil.example")).await;
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);
    let refused = send(tools_from("https://evil.example")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(
        refused.json()["error"]["data"]["reason"],
        "origin_not_allowed"
    );
}

#[test]
fn the_command_parser_refuses_what_it_does_not_check() {
    let parsed = parse_curl(
        "curl -sS -i 'http://127.0.0.1:1/mcp' -H 'Authorization: Bearer x' -d '{\"a\": 1}'",
    );
    assert_eq!(parsed.url, "http://127.0.0.1:1/mcp");
    assert_eq!(
        parsed.headers,
        [("Authorization".to_owned(), "Bearer x".to_owned())]
    );
    assert_eq!(parsed.data, ["{\"a\": 1}"]);
    for bad in [
        "curl -sS 'http://127.0.0.1:1/' --data-binary @file",
        "curl http://127.0.0.1:1/?a=1",
        "curl 'http://127.0.0.1:1/' -H \"x: y\"",
        "curl 'http://127.0.0.1:1/' -H 'x: y",
    ] {
        let result = std::panic::catch_unwind(|| parse_curl(bad));
        assert!(result.is_err(), "{bad}");
    }
}
