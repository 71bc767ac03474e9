//! `portcullis demo`: a development issuer, a small MCP server and the gateway in front, all on loopback, with
//! built-in organizations, sites, policies and API tokens; prints commands that show every outcome.

mod issuer;
mod upstream;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis::Portcullis;
use portcullis::context::StaticContext;
use portcullis::policy::StaticPolicies;
use portcullis::site::StaticDirectory;
use portcullis::token::{FileTokenStore, Issuer, token_digest};
use tokio::net::TcpListener;

use self::issuer::{DevIssuer, MintRequest, Sites, TOKEN_PATH};
use self::upstream::MCP_PATH;
use crate::config::{DEFAULT_NAMESPACE, LogFormat, Upstream};
use crate::cors;
use crate::proxy::Proxy;
use crate::server::{self, Entry, Shutdown};
use tower::Layer as _;

/// The scopes the demo resource knows.
pub(crate) const SCOPES_SUPPORTED: [&str; 2] = ["mcp:read", "mcp:write"];
/// The claim that lists the sites a demo token was granted.
pub(crate) const SITE_CLAIM: &str = "sites";
const SERVICE_ACCOUNT_PREFIX: &str = "pcsa_";
const SERVICE_ACCOUNT_KEY: &str = "pcsa_demo_build_key";
const PERSONAL_EMAIL: &str = "ada@acme.example";
const PERSONAL_TOKEN: &str = "pat_demo_ada";

/// org-acme's admin allows API tokens; org-globex's allows none.
const POLICIES: &str = r#"
[organization.org-acme]
personal_api_tokens = true
service_account_keys = true

[organization.org-globex]
personal_api_tokens = false
service_account_keys = false
"#;

/// Each site is owned by one organization, whose policy decides about API tokens there.
const SITES: &str = r#"
[[site]]
id = "site-a"
organization = "org-acme"

[[site]]
id = "site-b"
organization = "org-globex"
"#;

const CONTEXT: &str = r#"
[user.acc-ada]
email = "ada@acme.example"
display_name = "Ada Lovelace"
locale = "en-GB"
time_zone = "Europe/London"

[user.svc-build]
display_name = "Build robot"

[[product]]
site = "site-a"
key = "jira"

[[product]]
site = "site-a"
key = "confluence"

[[product]]
site = "site-b"
key = "jira"
"#;

/// Both API tokens belong to org-acme accounts that were also invited to org-globex's site-b: there, org-globex's
/// policy refuses them.
fn api_tokens() -> String {
    format!(
        r#"
[[personal]]
email = "{PERSONAL_EMAIL}"
account_id = "acc-ada"
organization = "org-acme"
token_sha256 = "{}"
sites = ["site-a", "site-b"]

[[service_account]]
account_id = "svc-build"
organization = "org-acme"
key_sha256 = "{}"
sites = ["site-a", "site-b"]
"#,
        token_digest(PERSONAL_TOKEN),
        token_digest(SERVICE_ACCOUNT_KEY),
    )
}

/// Options of `portcullis demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Port of the gateway on 127.0.0.1 (0: any free port; a port in use gives way to a free one).
    #[arg(long, default_value_t = 8780)]
    port: u16,
    /// Port of the development issuer.
    #[arg(long, default_value_t = 8781)]
    issuer_port: u16,
    /// Port of the demo MCP server behind the gateway.
    #[arg(long, default_value_t = 8782)]
    upstream_port: u16,
    /// Log format (logs go to standard error).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// Runs the demo until SIGINT or SIGTERM.
pub(crate) async fn run(args: DemoArgs) -> Result<(), String> {
    server::init_logging(args.log_format);
    let mut notes = Vec::new();
    let gateway = listen("gateway", args.port, &mut notes).await?;
    let issuer_listener = listen("issuer", args.issuer_port, &mut notes).await?;
    let upstream_listener = listen("upstream", args.upstream_port, &mut notes).await?;
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| format!("cannot read the address: {e}"))
    };
    let (gateway_addr, issuer_addr, upstream_addr) = (
        addr(&gateway)?,
        addr(&issuer_listener)?,
        addr(&upstream_listener)?,
    );

    let origin = format!("http://{gateway_addr}");
    let resource = format!("{origin}{MCP_PATH}");
    let issuer_url = format!("http://{issuer_addr}");
    let issuer = Arc::new(DevIssuer::generate(&issuer_url, &resource)?);
    let mint = |scope: &str| {
        issuer.mint(&MintRequest {
            sub: Some("acc-ada".to_owned()),
            scope: Some(scope.to_owned()),
            sites: Some(Sites::List(vec!["site-a".to_owned()])),
            expires_in: None,
        })
    };
    let read_token = mint("mcp:read")?;
    let write_token = mint("mcp:read mcp:write")?;

    let portcullis = build_stack(&resource, &issuer_url).map_err(|e| format!("demo stack: {e}"))?;
    let upstream = Upstream::parse(&format!("http://{upstream_addr}"))?;
    let proxy = Proxy::new(upstream, Duration::from_secs(2), Duration::from_secs(30));
    let metadata_url = portcullis.metadata_url().to_owned();

    let (trigger, shutdown) = Shutdown::new();
    let grace = Duration::from_secs(5);
    let servers = [
        tokio::spawn(server::serve(
            "issuer",
            issuer_listener,
            Arc::clone(&issuer).service(),
            shutdown.clone(),
            grace,
        )),
        tokio::spawn(server::serve(
            "upstream",
            upstream_listener,
            upstream::service(),
            shutdown.clone(),
            grace,
        )),
        tokio::spawn(server::serve(
            "gateway",
            gateway,
            Entry::new(
                cors::layer(&portcullis, std::iter::empty()).layer(portcullis.protect(proxy)),
            ),
            shutdown,
            grace,
        )),
    ];

    let text = Printout {
        origin: &origin,
        resource: &resource,
        issuer: &issuer_url,
        upstream: &format!("http://{upstream_addr}{MCP_PATH}"),
        metadata_url: &metadata_url,
        read_token: &read_token.access_token,
        write_token: &write_token.access_token,
        notes: &notes,
    }
    .render();
    // One write, so that nothing interleaves with it.
    print!("{text}");

    server::signal().await;
    tracing::info!(target: "portcullis::demo", "shutting down");
    trigger.fire();
    for server in servers {
        let _ = server.await;
    }
    Ok(())
}

async fn listen(name: &str, port: u16, notes: &mut Vec<String>) -> Result<TcpListener, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = server::bind(addr, true)
        .await
        .map_err(|e| format!("cannot listen on {addr} for the {name}: {e}"))?;
    if let Ok(local) = listener.local_addr()
        && port != 0
        && local.port() != port
    {
        notes.push(format!(
            "port {port} was taken: the {name} listens on {} instead",
            local.port()
        ));
    }
    Ok(listener)
}

fn build_stack(resource: &str, issuer: &str) -> Result<Portcullis, portcullis::ConfigError> {
    let directory = StaticDirectory::from_toml(SITES)?;
    Portcullis::builder(resource)
        .add_issuer(Issuer::discover(issuer)?)
        .scopes_supported(SCOPES_SUPPORTED)
        .configure_validator(|v| v.with_site_claim(SITE_CLAIM))
        .with_service_account_prefix(SERVICE_ACCOUNT_PREFIX)
        .with_api_token_verifier(FileTokenStore::from_toml(&api_tokens())?)
        .with_policy(StaticPolicies::from_toml(POLICIES)?)
        .configure_sites(move |sites| Ok(sites.with_directory(directory)))
        .configure_scopes(|scopes| scopes.add_tool("create_issue", ["mcp:write"]))
        .with_context(StaticContext::from_toml(CONTEXT)?)
        .for_forwarding(DEFAULT_NAMESPACE, true)
        // A browser-based MCP client on this machine (an inspector on another port) may call the demo.
        .allow_loopback_origins()
        .build()
}

/// What the demo prints on start.
struct Printout<'a> {
    origin: &'a str,
    resource: &'a str,
    issuer: &'a str,
    upstream: &'a str,
    metadata_url: &'a str,
    read_token: &'a str,
    write_token: &'a str,
    notes: &'a [String],
}

/// One command to try, and the status it shows.
struct Example {
    what: &'static str,
    expect: u16,
    curl: String,
}

impl Printout<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Portcullis demo: everything runs on this machine, on loopback.\n"
        );
        for (what, url) in [
            ("gateway (the protected MCP endpoint)", self.resource),
            ("resource metadata (RFC 9728)", self.metadata_url),
            ("development issuer (JWKS, discovery)", self.issuer),
            ("demo MCP server behind the gateway", self.upstream),
        ] {
            let _ = writeln!(out, "  {what:<38} {url}");
        }
        for note in self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let _ = writeln!(
            out,
            "\nBuilt-in data:\n  \
             org-acme   owns site-a; its admin allows API tokens (personal tokens and service-account keys)\n  \
             org-globex owns site-b; its admin allows no API tokens\n  \
             OAuth tokens below: subject acc-ada, granted site-a only, signed by a key made for this run\n  \
             personal API token: {PERSONAL_EMAIL} / {PERSONAL_TOKEN} (granted site-a and site-b)\n  \
             service-account key: {SERVICE_ACCOUNT_KEY} (svc-build of org-acme; granted site-a and site-b)\n  \
             the tool create_issue needs the scope mcp:write; search needs only a valid credential\n"
        );
        let _ = writeln!(
            out,
            "Try it: each command prints the status line and headers (-i), then the body.\n"
        );
        for (n, example) in self.examples().iter().enumerate() {
            let _ = writeln!(
                out,
                "# {}. {} -> {}\n{}\n",
                n + 1,
                example.what,
                example.expect,
                example.curl
            );
        }
        // Written by hand to keep the keys in the order people expect; the URL and the token need no escaping.
        let config = format!(
            "{{\n  \"mcpServers\": {{\n    \"portcullis-demo\": {{\n      \"type\": \"http\",\n      \
             \"url\": \"{}\",\n      \"headers\": {{\n        \"Authorization\": \"Bearer {}\"\n      }}\n    \
             }}\n  }}\n}}",
            self.resource, self.write_token
        );
        let _ = writeln!(
            out,
            "MCP client configuration (scopes mcp:read mcp:write, site-a; tools take the site in `cloudId`):\n\n{config}\n"
        );
        let _ = writeln!(out, "Resource metadata URL: {}\n", self.metadata_url);
        let _ = writeln!(out, "Ready. Press Ctrl-C to stop.");
        out
    }

    fn examples(&self) -> Vec<Example> {
        let tool = |name: &str, site: &str| {
            let argument = if name == "create_issue" {
                r#""title":"Try Portcullis""#
            } else {
                r#""query":"roadmap""#
            };
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{"cloudId":"{site}",{argument}}}}}}}"#
            )
        };
        let bearer = |token: &str| Some(format!("Bearer {token}"));
        let basic = Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{PERSONAL_EMAIL}:{PERSONAL_TOKEN}"))
        ));
        let mcp = |authorization: Option<String>, body: String| {
            curl(self.resource, authorization.as_deref(), Some(&body), true)
        };
        let mint_body = r#"{"sub":"acc-ada","scope":"mcp:read mcp:write","sites":["site-a"]}"#;
        vec![
            Example {
                what: "OAuth token (scope mcp:read, granted site-a) calls a tool on site-a: allowed",
                expect: 200,
                curl: mcp(bearer(self.read_token), tool("search", "site-a")),
            },
            Example {
                what: "The same token on site-b: the site was not granted (site_not_granted)",
                expect: 403,
                curl: mcp(bearer(self.read_token), tool("search", "site-b")),
            },
            Example {
                what: "Service-account key on site-a, whose owner org-acme allows API tokens: allowed",
                expect: 200,
                curl: mcp(bearer(SERVICE_ACCOUNT_KEY), tool("search", "site-a")),
            },
            Example {
                what: "Personal API token (Basic email:token) on site-a: allowed",
                expect: 200,
                curl: mcp(basic.clone(), tool("search", "site-a")),
            },
            Example {
                what: "The service-account key on site-b, whose owner org-globex allows no API tokens: \
                       a Bearer challenge pointing to OAuth",
                expect: 401,
                curl: mcp(bearer(SERVICE_ACCOUNT_KEY), tool("search", "site-b")),
            },
            Example {
                what: "The personal API token on site-b: refused the same way",
                expect: 401,
                curl: mcp(basic, tool("search", "site-b")),
            },
            Example {
                what: "No token: challenged, with the resource metadata URL",
                expect: 401,
                curl: mcp(None, tool("search", "site-a")),
            },
            Example {
                what: "create_issue with the read-only token: step up (insufficient_scope, scope=\"mcp:write\")",
                expect: 403,
                curl: mcp(bearer(self.read_token), tool("create_issue", "site-a")),
            },
            Example {
                what: "create_issue with a token that has mcp:write: allowed",
                expect: 200,
                curl: mcp(bearer(self.write_token), tool("create_issue", "site-a")),
            },
            Example {
                what: "Mint a token at the development issuer (demo only; JSON or form: sub, scope, sites)",
                expect: 200,
                curl: curl(
                    &format!("{}{TOKEN_PATH}", self.issuer),
                    None,
                    Some(mint_body),
                    false,
                ),
            },
            Example {
                what: "The resource metadata: public",
                expect: 200,
                curl: curl(self.metadata_url, None, None, false),
            },
            Example {
                what: "Health: public",
                expect: 200,
                curl: curl(&format!("{}/health", self.origin), None, None, false),
            },
        ]
    }
}

/// A curl command line; `mcp` adds the `Accept` header that MCP's streamable HTTP transport asks for. Every
/// argument is single-quoted, and none contains a single quote.
fn curl(url: &str, authorization: Option<&str>, json_body: Option<&str>, mcp: bool) -> String {
    let mut line = format!("curl -sS -i '{url}'");
    if let Some(authorization) = authorization {
        let _ = write!(line, " -H 'Authorization: {authorization}'");
    }
    if let Some(body) = json_body {
        let _ = write!(line, " -H 'Content-Type: application/json'");
        if mcp {
            let _ = write!(line, " -H 'Accept: application/json, text/event-stream'");
        }
        let _ = write!(line, " -d '{body}'");
    }
    debug_assert_eq!(line.matches('\'').count() % 2, 0);
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_built_in_data_parses_and_the_stack_builds() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(async { build_stack("http://127.0.0.1:8780/mcp", "http://127.0.0.1:8781") })
            .expect("the demo stack builds");
    }

    #[test]
    fn minted_tokens_are_typed_at_jwt_with_the_site_claim() {
        let issuer =
            DevIssuer::generate("http://127.0.0.1:1", "http://127.0.0.1:2/mcp").expect("issuer");
        let minted = issuer
            .mint(&MintRequest {
                sites: Some(Sites::Text("site-a, site-b".into())),
                ..MintRequest::default()
            })
            .expect("minted");
        let mut parts = minted.access_token.split('.');
        let decode = |part: Option<&str>| -> serde_json::Value {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.expect("part"))
                .expect("base64url");
            serde_json::from_slice(&bytes).expect("json")
        };
        let header = decode(parts.next());
        let claims = decode(parts.next());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["aud"], "http://127.0.0.1:2/mcp");
        assert_eq!(claims["iss"], "http://127.0.0.1:1");
        assert_eq!(claims["scope"], "mcp:read");
        assert_eq!(claims[SITE_CLAIM], json!(["site-a", "site-b"]));
        for bad in [
            MintRequest {
                sub: Some(String::new()),
                ..MintRequest::default()
            },
            MintRequest {
                scope: Some("a\"b".into()),
                ..MintRequest::default()
            },
            MintRequest {
                sites: Some(Sites::List(vec!["site a".into()])),
                ..MintRequest::default()
            },
            MintRequest {
                expires_in: Some(0),
                ..MintRequest::default()
            },
        ] {
            assert!(issuer.mint(&bad).is_err(), "{bad:?}");
        }
    }
}
