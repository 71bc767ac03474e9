//! `portcullis check-config` (the example file passes; each kind of bad value is refused naming its key) and
//! `portcullis hash-token`.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use portcullis_token::token_digest;
use support::{BIN, TempDir};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/portcullis.toml"
);

/// A valid configuration, as (table, `key = value`) lines; `[issuer]` is the array table `[[issuer]]`.
const VALID: &[(&str, &str)] = &[
    ("", "resource = \"https://mcp.example.com/mcp\""),
    ("", "authorization_servers = [\"https://auth.example.com\"]"),
    ("", "scopes_supported = [\"mcp:read\"]"),
    ("[issuer]", "issuer = \"https://auth.example.com\""),
    ("sites", "body_limit = 4096"),
    ("gateway", "listen = \"127.0.0.1:8080\""),
    ("gateway", "upstream = \"http://127.0.0.1:9000\""),
];

/// The valid configuration with each `(table, line)` replacing the line of the same key, or added.
fn config(changes: &[(&str, &str)]) -> String {
    let key = |line: &str| line.split(" =").next().unwrap_or_default().to_owned();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    let mut put = |table: &str, line: &str| match tables.iter_mut().find(|(t, _)| t == table) {
        Some((_, lines)) => lines.push(line.to_owned()),
        None => tables.push((table.to_owned(), vec![line.to_owned()])),
    };
    for (table, line) in VALID {
        if !changes
            .iter()
            .any(|(t, l)| t == table && key(l) == key(line))
        {
            put(table, line);
        }
    }
    for (table, line) in changes {
        put(table, line);
    }
    // Top-level keys before any table.
    tables.sort_by_key(|(table, _)| !table.is_empty());
    let mut text = String::new();
    for (table, lines) in tables {
        if !table.is_empty() {
            text.push_str(&format!("\n[{table}]\n"));
        }
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

fn check_config(path: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run check-config")
}

#[test]
fn check_config_accepts_the_example_file() {
    let output = check_config(std::path::Path::new(EXAMPLE));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("OK"), "{stdout}");
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("valid");
    let output = check_config(&dir.write("portcullis.toml", &config(&[])));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("OK"));
}

#[test]
fn check_config_names_the_key_of_each_bad_value() {
    // (table, line, the key the message must name, a word of the problem)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "gateway",
            "listen = \"localhost\"",
            "`gateway.listen`",
            "port",
        ),
        (
            "gateway",
            "listen = 8080",
            "`gateway.listen`",
            "invalid type",
        ),
        (
            "gateway",
            "upstream = \"ftp://files\"",
            "`gateway.upstream`",
            "http",
        ),
        (
            "gateway",
            "upstream = \"https://mcp.internal\"",
            "`gateway.upstream`",
            "https",
        ),
        (
            "gateway",
            "upstream = \"http://user:pw@up:9000\"",
            "`gateway.upstream`",
            "user info",
        ),
        (
            "gateway",
            "upstream = \"http://up:9000/?a=1\"",
            "`gateway.upstream`",
            "query",
        ),
        (
            "gateway",
            "connect_timeout_ms = 0",
            "`gateway.connect_timeout_ms`",
            "between",
        ),
        (
            "gateway",
            "request_timeout_ms = -5",
            "`gateway.request_timeout_ms`",
            "invalid value",
        ),
        (
            "gateway",
            "shutdown_timeout_ms = \"soon\"",
            "`gateway.shutdown_timeout_ms`",
            "invalid type",
        ),
        (
            "gateway",
            "log_format = \"xml\"",
            "`gateway.log_format`",
            "human",
        ),
        (
            "gateway",
            "listne = \"127.0.0.1:1\"",
            "`gateway.listne`",
            "unknown field",
        ),
        (
            "",
            "resource = \"http://mcp.example.com/mcp\"",
            "`resource`",
            "https",
        ),
        (
            "",
            "resource = \"https://mcp.example.com/mcp?x=1\"",
            "`resource`",
            "query",
        ),
        ("", "resource = 42", "`resource`", "invalid type"),
        (
            "",
            "authorization_servers = [\"not a url\"]",
            "`authorization_servers`",
            "URL",
        ),
        (
            "",
            "scopes_supported = [\"bad\\\"scope\"]",
            "scopes_supported",
            "scope",
        ),
        ("", "health_paths = [\"health\"]", "`health_paths`", "path"),
        ("", "resorce = \"https://x\"", "`resorce`", "unknown field"),
        ("sites", "body_limit = 0", "`sites.body_limit`", "limit"),
        (
            "sites",
            "body_limit = \"big\"",
            "`sites.body_limit`",
            "invalid type",
        ),
        (
            "sites",
            "path_templates = [\"/ex/no-site\"]",
            "`sites.path_templates`",
            "cloudId",
        ),
        (
            "sites",
            "headers = [\"bad header\"]",
            "`sites.headers`",
            "header",
        ),
        (
            "sites",
            "directory = \"missing-sites.toml\"",
            "`sites.directory`",
            "cannot read",
        ),
        (
            "sites",
            "read_bodies = false",
            "`sites.read_bodies`",
            "unknown field",
        ),
        (
            "scopes.tools",
            "create_issue = [\"a b\"]",
            "scopes",
            "scope",
        ),
        (
            "scopes.routes",
            "\"admin\" = [\"mcp:admin\"]",
            "`scopes.routes`",
            "/",
        ),
        (
            "tokens",
            "leeway_seconds = -1",
            "`tokens.leeway_seconds`",
            "invalid value",
        ),
        (
            "forwarding",
            "namespace = \"x-portcullis\"",
            "`forwarding.namespace`",
            "-",
        ),
        (
            "api_tokens",
            "file = \"missing-tokens.toml\"",
            "`api_tokens`",
            "cannot read",
        ),
        ("policy", "ttl_seconds = 30", "`policy`", "exactly one"),
        (
            "context",
            "profile_endpoint = \"http://profiles.example.com/p\"",
            "`context.profile_endpoint",
            "https",
        ),
        (
            "introspection",
            "endpoint = \"https://auth.example.com/introspect\"\nclient_id = \"mcp\"\nclient_secret_env = \"PORTCULLIS_TEST_UNSET_SECRET\"",
            "`introspection.client_secret_env`",
            "not set",
        ),
        (
            "[issuer]",
            "jwks_uri = \"http://keys.example.com/jwks\"",
            "`issuer.jwks_uri`",
            "https",
        ),
        // The service's own bearer token for an HTTP source, from a variable that is not set.
        (
            "policy",
            "endpoint = \"https://admin.example.com/policy\"\nbearer_env = \"PORTCULLIS_TEST_UNSET_BEARER\"",
            "`policy.bearer_env`",
            "not set",
        ),
        (
            "api_tokens",
            "endpoint = \"https://admin.example.com/verify\"\nbearer_env = \"PORTCULLIS_TEST_UNSET_BEARER\"",
            "`api_tokens.bearer_env`",
            "not set",
        ),
        (
            "sites",
            "grants_endpoint = \"https://admin.example.com/grants\"\ngrants_bearer_env = \"PORTCULLIS_TEST_UNSET_BEARER\"",
            "`sites.grants_bearer_env`",
            "not set",
        ),
        (
            "context",
            "profile_endpoint = \"https://admin.example.com/profile\"\nbearer_env = \"PORTCULLIS_TEST_UNSET_BEARER\"",
            "`context.bearer_env`",
            "not set",
        ),
    ];
    let dir = TempDir::new("bad");
    let mut failures = Vec::new();
    for (n, (table, line, key, problem)) in cases.iter().enumerate() {
        let path = dir.write(&format!("case-{n}.toml"), &config(&[(table, line)]));
        let output = check_config(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(1) || !stderr.contains(key) || !stderr.contains(problem) {
            failures.push(format!(
                "{line:?}: exit {:?}, expected {key} and {problem:?} in: {stderr}{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        assert!(output.stdout.is_empty() || !output.status.success());
    }
    // Settings that only conflict together.
    let path = dir.write(
        "tools-without-bodies.toml",
        &config(&[
            ("sites", "read_body = false"),
            ("scopes.tools", "create_issue = [\"mcp:write\"]"),
        ]),
    );
    let output = check_config(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(1) || !stderr.contains("`scopes.tools`") {
        failures.push(format!("tool scopes without body reading: {stderr}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_config_reports_syntax_errors_with_the_line_and_missing_files() {
    let dir = TempDir::new("syntax");
    let output = check_config(&dir.write("broken.toml", "resource = \"https://x\"\n[gateway\n"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");

    let output = check_config(&dir.path().join("absent.toml"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");

    let output =
        check_config(&dir.write("no-gateway.toml", "resource = \"https://x.example/mcp\"\n"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`gateway`"), "{stderr}");
}

fn hash_token(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hash-token");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write the token");
    child.wait_with_output().expect("hash-token ends")
}

#[test]
fn hash_token_prints_the_line_for_the_token_file() {
    for (args, input, key) in [
        (&[][..], &b"pat_secret_123\n"[..], "token_sha256"),
        (&[][..], b"pat_secret_123\r\n", "token_sha256"),
        (&[][..], b"pat_secret_123", "token_sha256"),
        (
            &["--service-account"][..],
            b"pat_secret_123\n",
            "key_sha256",
        ),
    ] {
        let output = hash_token(args, input);
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        assert_eq!(
            stdout,
            format!("{key} = \"{}\"\n", token_digest("pat_secret_123"))
        );
        assert!(!stdout.contains("pat_secret_123"));
    }
}

#[test]
fn hash_token_refuses_anything_but_one_token_on_one_line() {
    for input in [&b""[..], b"\n", b"one\ntwo\n", b" padded\n"] {
        let output = hash_token(&[], input);
        assert_eq!(output.status.code(), Some(1), "{input:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{input:?}");
    }
}

#[test]
fn the_lines_it_prints_make_a_token_file_that_the_gateway_accepts() {
    let line =
        String::from_utf8(hash_token(&["--service-account"], b"pcsa_k1\n").stdout).expect("utf-8");
    let dir = TempDir::new("roundtrip");
    dir.write(
        "tokens.toml",
        &format!("[[service_account]]\naccount_id = \"svc\"\norganization = \"org-a\"\n{line}"),
    );
    let config = config(&[
        ("", "service_account_prefix = \"pcsa_\""),
        ("api_tokens", "file = \"tokens.toml\""),
    ]);
    let output = check_config(&dir.write("portcullis.toml", &config));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `check-config --online` on `text`, run off the test's runtime so that a mock server on it can answer.
async fn check_online(dir: &TempDir, text: &str) -> Output {
    let path = dir.write("online.toml", text);
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["check-config", "--online"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run check-config --online")
    })
    .await
    .expect("joined")
}

/// The valid configuration with `issuer` as the one issuer and authorization server.
fn with_issuer(issuer: &str) -> String {
    config(&[
        ("", &format!("authorization_servers = [\"{issuer}\"]")),
        ("[issuer]", &format!("issuer = \"{issuer}\"")),
    ])
}

#[tokio::test]
async fn check_config_online_asks_each_issuer_for_its_metadata_and_keys() {
    let dir = TempDir::new("online");
    let key = portcullis_test_support::jwt::rsa1("k1");
    let auth = portcullis_test_support::MockAuthServer::with_keys(&[&key]).await;
    let issuer = auth.issuer();

    // The issuer as its metadata names it: OK, with the key set and its keys.
    let output = check_online(&dir, &with_issuer(&issuer)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("issuer {issuer}: key set ")),
        "{stdout}"
    );
    assert!(stdout.contains("OK"), "{stdout}");

    // The same issuer with a trailing slash: its metadata names it without one, which clients reject.
    let output = check_online(&dir, &with_issuer(&format!("{issuer}/"))).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`issuer[0].issuer`"), "{stderr}");
    assert!(
        stderr.contains(&format!("names the issuer \"{issuer}\"")),
        "{stderr}"
    );

    // Offline, the same file passes: the check needs the network.
    let output = check_config(&dir.write("offline.toml", &with_issuer(&format!("{issuer}/"))));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A key set without a usable key.
    auth.set_jwks(serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    let output = check_online(&dir, &with_issuer(&issuer)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no usable signing key"), "{stderr}");

    // An issuer that does not answer.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let output = check_online(&dir, &with_issuer(&format!("http://127.0.0.1:{closed}"))).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no discovery document"), "{stderr}");
}

#[test]
fn a_bearer_for_an_http_source_comes_from_the_environment() {
    let dir = TempDir::new("bearer");
    let path = dir.write(
        "bearer.toml",
        &config(&[(
            "policy",
            "endpoint = \"https://admin.example.com/policy\"\nbearer_env = \"PORTCULLIS_TEST_POLICY_BEARER\"",
        )]),
    );
    let output = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .env("PORTCULLIS_TEST_POLICY_BEARER", "service-token-not-printed")
        .stdin(Stdio::null())
        .output()
        .expect("run check-config");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains("service-token-not-printed")
            && !stderr.contains("service-token-not-printed")
    );
}
