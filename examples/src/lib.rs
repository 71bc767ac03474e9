//! Runnable examples of the Portcullis layers; the mains are in the `examples/` folder of this package, and the
//! workspace tests in `tests/tests/examples.rs` drive the same code over TCP.
//!
//! | module | what it shows | run it |
//! | --- | --- | --- |
//! | [`axum_mcp`] | an rmcp MCP server (streamable HTTP) and a plain route in an axum router behind the stack | `cargo run -p portcullis-examples --example axum_mcp` |
//! | [`tonic_grpc`] | a tonic gRPC service (no protoc) behind the stack, the site taken from metadata | `cargo run -p portcullis-examples --example tonic_grpc` |
//! | [`hyper_service`] | an existing plain hyper 1 service wrapped with [`Portcullis::protect`](portcullis::Portcullis::protect) | `cargo run -p portcullis-examples --example hyper_service` |
//!
//! Each module has a `portcullis(&Settings)` function that configures the stack for it, an `app`/`service`
//! function that returns what to serve, and `serve(listener, &portcullis)`. [`Settings`] reads the environment
//! variables the mains document.

pub mod axum_mcp;
pub mod hyper_service;
mod identity;
mod settings;
pub mod tonic_grpc;

pub use identity::Identity;
pub use settings::{DEFAULT_ISSUER, DEFAULT_SITE_CLAIM, Settings};
