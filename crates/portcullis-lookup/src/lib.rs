//! The one way Portcullis layers ask something remote and remember the answer.
//!
//! - [`ExpiringCache`]: a bounded cache ([quick_cache](https://docs.rs/quick_cache)) whose entries each carry
//!   their own time to live, with single-flight loading (concurrent misses for one key run one load) and errors that are never
//!   cached.
//! - [`HttpFetcher`]: an HTTP client for small JSON documents (key sets, discovery documents, introspection and
//!   directory answers) with a total timeout, a response-size cap, no redirects, and the `Cache-Control`
//!   freshness of each answer.
//! - [`HttpSource`]: an operator's endpoint that a source asks, with the service's own optional bearer token and
//!   a fetcher, and a `Debug` that redacts the token.
//!
//! # What it owns
//! Everything remote, for every layer: the caches, the fetcher and [`HttpSource`] (an operator endpoint with the
//! service's own bearer token and the fetcher), on which the HTTP sources of policies, grants, API-token
//! verification and user context are built. It is not a layer: it reads nothing from a request and puts nothing
//! there.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use portcullis_lookup::ExpiringCache;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache: ExpiringCache<&'static str, u32> = ExpiringCache::new(1_000);
//! let loaded = cache
//!     .get_or_load("answer", async { Ok::<_, std::io::Error>((42, Duration::from_secs(60))) })
//!     .await
//!     .expect("loaded");
//! assert_eq!(loaded, 42);
//! // A second load for the same key is not run: the cached value comes back.
//! let cached = cache
//!     .get_or_load("answer", async { Err(std::io::Error::other("not called")) })
//!     .await
//!     .expect("cached");
//! assert_eq!(cached, 42);
//! # }
//! ```

mod cache;
mod fetch;
mod source;

pub use cache::{ExpiringCache, LoadFailed};
pub use fetch::{FetchError, Fetched, HttpFetcher};
/// A borrowed form of a cache key, for [`ExpiringCache::get`] (re-exported from quick_cache).
pub use quick_cache::Equivalent;
pub use source::{ConfigureHttpSource, HttpSource};
