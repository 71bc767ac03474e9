//! Sends a few requests through `ExtractCredentialLayer` and prints what each one got.
//!
//! `cargo run -p portcullis-examples --example extract_credential`

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_core::{Challenge, Credential, Rejection};
use portcullis_credential::ExtractCredentialLayer;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let challenge =
        Challenge::new("http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp")?;
    let service = ServiceBuilder::new()
        .layer(ExtractCredentialLayer::new(challenge).with_service_account_prefix("pcsa_")?)
        .service_fn(|req: Request<Full<Bytes>>| async move {
            let kind = req.extensions().get::<Credential>().map(Credential::kind);
            let text = format!(
                "inner service saw a {} credential",
                kind.map_or("missing", |k| k.as_str())
            );
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        });

    let requests = [
        ("no Authorization header", None),
        (
            "JWT-shaped bearer token",
            Some("Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln"),
        ),
        ("service-account key", Some("Bearer pcsa_0f3c9a")),
        (
            "personal API token",
            Some("Basic YWRhQGV4YW1wbGUuY29tOnBhdC0xMjM="),
        ),
        ("token with a space", Some("Bearer abc def")),
        ("unknown scheme", Some("Digest username=\"ada\"")),
    ];
    for (label, authorization) in requests {
        let mut req = Request::builder().uri("/mcp");
        if let Some(value) = authorization {
            req = req.header(AUTHORIZATION, value);
        }
        let response = service.clone().oneshot(req.body(Full::default())?).await?;
        let reason = response
            .extensions()
            .get::<Rejection>()
            .map(|r| r.kind().code());
        println!(
            "{label:<26} -> {} {}",
            response.status(),
            reason.unwrap_or("(passed to the inner service)")
        );
        if let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) {
            println!("{:<26}    WWW-Authenticate: {}", "", challenge.to_str()?);
        }
    }
    Ok(())
}
