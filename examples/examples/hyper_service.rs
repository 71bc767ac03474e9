//! An existing plain hyper 1 service wrapped with `Portcullis::protect` and served with hyper-util; the site
//! comes from the path. See `portcullis_examples::hyper_service`.
//!
//! `cargo run -p portcullis-examples --example hyper_service`
//!
//! Environment (all optional):
//!
//! | variable | default | |
//! | --- | --- | --- |
//! | `PORTCULLIS_LISTEN` | `127.0.0.1:8081` | address to listen on |
//! | `PORTCULLIS_RESOURCE` | `http://<listen>` | canonical resource URI, the `aud` tokens must carry |
//! | `PORTCULLIS_ISSUER` | `http://127.0.0.1:9000` | the trusted issuer (`iss`) |
//! | `PORTCULLIS_JWKS_URI` | discovered from the issuer | its JWKS |
//! | `PORTCULLIS_SITE_CLAIM` | `https://example.com/sites` | token claim listing the granted sites |
//! | `PORTCULLIS_CONTEXT_FILE` | none | TOML with user profiles and site products |
//!
//! Try `curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8081/sites/site-a/whoami`.

use portcullis_examples::{Settings, hyper_service};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env(hyper_service::DEFAULT_LISTEN, "")?;
    let portcullis = hyper_service::portcullis(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "whoami            http://{addr}/sites/{{cloudId}}/whoami  (resource {})",
        settings.resource
    );
    println!("health            http://{addr}/health");
    println!("resource metadata {}", portcullis.metadata_url());
    println!("trusting tokens from {}", settings.issuer);
    hyper_service::serve(listener, &portcullis).await?;
    Ok(())
}
