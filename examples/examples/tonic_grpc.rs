//! A tonic gRPC service (no protoc) behind the whole Portcullis stack; the site comes from the `x-cloud-id`
//! metadata. See `portcullis_examples::tonic_grpc`.
//!
//! `cargo run -p portcullis-examples --example tonic_grpc`
//!
//! Environment (all optional):
//!
//! | variable | default | |
//! | --- | --- | --- |
//! | `PORTCULLIS_LISTEN` | `127.0.0.1:50051` | address to listen on |
//! | `PORTCULLIS_RESOURCE` | `http://<listen>` | canonical resource URI, the `aud` tokens must carry |
//! | `PORTCULLIS_ISSUER` | `http://127.0.0.1:9000` | the trusted issuer (`iss`) |
//! | `PORTCULLIS_JWKS_URI` | discovered from the issuer | its JWKS |
//! | `PORTCULLIS_SITE_CLAIM` | `https://example.com/sites` | token claim listing the granted sites |
//! | `PORTCULLIS_CONTEXT_FILE` | none | TOML with user profiles and site products |
//!
//! The method is `/portcullis.example.WhoAmI/Get` (empty request); send `authorization: Bearer <token>` and
//! `x-cloud-id: <site>` metadata.

use portcullis_examples::{Settings, tonic_grpc};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env(tonic_grpc::DEFAULT_LISTEN, "")?;
    let portcullis = tonic_grpc::portcullis(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "gRPC {} at http://{addr}  (resource {})",
        tonic_grpc::GET_PATH,
        settings.resource
    );
    println!("trusting tokens from {}", settings.issuer);
    tonic_grpc::serve(listener, &portcullis).await?;
    Ok(())
}
