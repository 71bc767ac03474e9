//! The `portcullis` binary: the Portcullis stack as a reverse proxy in front of an MCP server written in any
//! language.
//!
//! ```text
//! portcullis serve --config portcullis.toml   # the gateway
//! portcullis check-config portcullis.toml     # OK, or the key that is wrong and why (exit code 1)
//! portcullis check-config --online portcullis.toml  # and ask each issuer for its metadata and keys
//! portcullis hash-token < token.txt           # the digest line for the API-token file store
//! portcullis demo                             # everything on this machine, with commands to try
//! ```
//!
//! `serve` reads the facade's TOML schema (see `portcullis::Config`) plus a `[gateway]` table (`listen`,
//! `upstream`, timeouts, `log_format`); `examples/portcullis.toml` documents every key. Requests that pass the
//! stack are forwarded with their bodies streamed both ways (MCP streamable HTTP answers with Server-Sent Events),
//! the `Mcp-Session-Id` header passes both ways, and the client's `Authorization` header never reaches the
//! upstream, which gets identity headers (`x-portcullis-account-id`, ...) instead. The RFC 9728 metadata and
//! `/health` are public. An upstream that cannot be reached is answered with 502 at once.

mod config;
mod cors;
mod demo;
mod proxy;
mod server;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::GatewayFile;
use crate::proxy::Proxy;
use crate::server::{Entry, Shutdown};

/// OAuth 2.1 and API-token authentication in front of an MCP server.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: a reverse proxy with the whole Portcullis stack in front of one upstream.
    Serve {
        /// The configuration file (the Portcullis schema plus a `[gateway]` table).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file: prints OK, or the key that is wrong and why (exit code 1).
    CheckConfig {
        /// The configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also ask each issuer: its discovery document must name it exactly, and its key set must hold a key.
        #[arg(long)]
        online: bool,
    },
    /// Read one token on standard input; print the line that stores its digest in an API-token file.
    HashToken {
        /// The token is a service-account key (prints `key_sha256`; otherwise `token_sha256`).
        #[arg(long)]
        service_account: bool,
    },
    /// Run everything on this machine: a development issuer, a small MCP server, and the gateway in front.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => run_async(serve(config)),
        Command::CheckConfig { file, online } => check_config(&file, online),
        Command::HashToken { service_account } => hash_token(service_account),
        Command::Demo(args) => run_async(demo::run(args)),
    }
}

fn run_async(task: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("portcullis: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portcullis: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and builds a configuration file, naming the file in the error.
fn load(path: &Path) -> Result<(GatewayFile, portcullis::Portcullis), String> {
    let invalid =
        |e: config::ConfigProblem| format!("invalid configuration {}: {e}", path.display());
    let file = GatewayFile::load(path).map_err(invalid)?;
    let portcullis = file.build().map_err(invalid)?;
    Ok((file, portcullis))
}

fn check_config(path: &Path, online: bool) -> ExitCode {
    // Building the stack needs no network, but some parts expect to be created inside a runtime.
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|runtime| {
            runtime.block_on(async {
                let loaded = load(path)?;
                if online {
                    probe_issuers(path, &loaded.0).await?;
                }
                Ok(loaded)
            })
        });
    match checked {
        Ok((file, portcullis)) => {
            println!(
                "OK: {} (resource metadata {}, listen {}, upstream {})",
                path.display(),
                portcullis.metadata_url(),
                file.gateway.listen,
                file.gateway.upstream,
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portcullis: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config --online`: asks every `[[issuer]]` for its discovery document and key set; the first problem,
/// with the TOML key to change.
async fn probe_issuers(path: &Path, file: &GatewayFile) -> Result<(), String> {
    let fetcher = portcullis::lookup::HttpFetcher::new()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    for (at, entry) in file.stack.issuer.iter().enumerate() {
        let issuer = match &entry.jwks_uri {
            Some(uri) => portcullis_token::Issuer::with_jwks_uri(&entry.issuer, uri),
            None => portcullis_token::Issuer::discover(&entry.issuer),
        }
        .map_err(|e| format!("invalid configuration {}: {e}", path.display()))?;
        match issuer.probe(&fetcher).await {
            Ok((jwks_uri, keys)) => {
                println!(
                    "issuer {}: key set {jwks_uri}, {keys} usable key(s)",
                    entry.issuer
                );
            }
            Err(problem) => {
                return Err(format!(
                    "{}: `issuer[{at}].issuer` ({}): {problem}",
                    path.display(),
                    entry.issuer
                ));
            }
        }
    }
    Ok(())
}

fn hash_token(service_account: bool) -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type or paste the token, then press Enter and Ctrl-D:");
    }
    let mut input = String::new();
    if let Err(err) = stdin.lock().read_to_string(&mut input) {
        eprintln!("portcullis: cannot read the token from standard input: {err}");
        return ExitCode::FAILURE;
    }
    let token = input
        .strip_suffix('\n')
        .map_or(input.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if token.is_empty() || token.contains(['\n', '\r']) {
        eprintln!("portcullis: expected one token on one line on standard input");
        return ExitCode::FAILURE;
    }
    if token.trim() != token {
        eprintln!("portcullis: the token starts or ends with white space; remove it first");
        return ExitCode::FAILURE;
    }
    let key = if service_account {
        "key_sha256"
    } else {
        "token_sha256"
    };
    println!("{key} = \"{}\"", portcullis_token::token_digest(token));
    ExitCode::SUCCESS
}

async fn serve(path: PathBuf) -> Result<(), String> {
    let (file, portcullis) = load(&path)?;
    let settings = file.gateway;
    server::init_logging(settings.log_format);
    let listener = server::bind(settings.listen, false)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let proxy = Proxy::new(
        settings.upstream.clone(),
        settings.connect_timeout,
        settings.request_timeout,
    );
    let cors = settings.cors.then(|| {
        let params = file.stack.sites.param_headers.keys().map(String::as_str);
        cors::layer(&portcullis, params)
    });
    let entry = Entry::new(
        tower::ServiceBuilder::new()
            .option_layer(cors)
            .service(portcullis.protect(proxy)),
    );
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        server::signal().await;
        tracing::info!(target: "portcullis::gateway", "shutting down: no new connections, finishing open requests");
        trigger.fire();
    });
    tracing::info!(
        target: "portcullis::gateway",
        listen = %local,
        upstream = %settings.upstream,
        resource_metadata = portcullis.metadata_url(),
        "gateway ready",
    );
    // One plain line on standard output, so that scripts and tests learn the port (`listen` may say port 0).
    println!("portcullis listening on http://{local}");
    server::serve(
        "gateway",
        listener,
        entry,
        shutdown,
        settings.shutdown_timeout,
    )
    .await;
    tracing::info!(target: "portcullis::gateway", "stopped");
    Ok(())
}
