//! An MCP server (rmcp, streamable HTTP) in an axum router behind the whole Portcullis stack, with a plain axum
//! route that takes `AuthContext` as an extractor. See `portcullis_examples::axum_mcp`.
//!
//! `cargo run -p portcullis-examples --example axum_mcp`
//!
//! Environment (all optional):
//!
//! | variable | default | |
//! | --- | --- | --- |
//! | `PORTCULLIS_LISTEN` | `127.0.0.1:8080` | address to listen on |
//! | `PORTCULLIS_RESOURCE` | `http://<listen>/mcp` | canonical resource URI, the `aud` tokens must carry |
//! | `PORTCULLIS_ISSUER` | `http://127.0.0.1:9000` | the trusted issuer (`iss`) |
//! | `PORTCULLIS_JWKS_URI` | discovered from the issuer | its JWKS |
//! | `PORTCULLIS_SITE_CLAIM` | `https://example.com/sites` | token claim listing the granted sites |
//! | `PORTCULLIS_CONTEXT_FILE` | none | TOML with user profiles and site products |
//!
//! Tokens are JWT access tokens (`typ: at+jwt`) from the issuer. Tools: `whoami {cloudId}` and
//! `create_page {cloudId, title}` (needs `mcp:write`). `GET /api/me` answers the caller's context.

use portcullis_examples::{Settings, axum_mcp};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env(axum_mcp::DEFAULT_LISTEN, "/mcp")?;
    let portcullis = axum_mcp::portcullis(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "MCP endpoint      http://{addr}/mcp  (resource {})",
        settings.resource
    );
    println!("axum extractor    http://{addr}/api/me");
    println!("resource metadata {}", portcullis.metadata_url());
    println!("trusting tokens from {}", settings.issuer);
    axum_mcp::serve(listener, &portcullis).await?;
    Ok(())
}
