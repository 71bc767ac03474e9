//! Benchmarks of token validation, all in one criterion group (`validate`) so that they read as ratios:
//!
//! - `raw_jsonwebtoken/{rs256,es256}`: `jsonwebtoken::decode` of a 1 KB token, the baseline for a cold token;
//! - `layer/cold_rs256`: `ValidateTokenLayer` on a token it has never seen (key set already fetched), the request
//!   carrying the `Credential` as the extraction layer leaves it;
//! - `layer/warm_rs256`, `layer/api_token`: the same layer on a cached credential; `bare/echo`: no layer;
//! - `extract+layer/{cold,warm}_rs256`: the extraction layer in front as well, from the raw `Authorization`
//!   header;
//! - `digest/{blake3,sha256,sha256_keyed,siphash13_128,highway_128}_1kb`: candidates for the cache key;
//! - `layer/warm_rs256_2_threads`: `validate` on a warm token from two tasks, time per call.
//!
//! The `validator/*`, `extract/*` and `cache/*` ids split the warm path into its parts.
//!
//! Run with `cargo bench -p portcullis-token --bench validate`.

use std::convert::Infallible;
use std::hash::Hasher as _;
use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use highway::HighwayHash as _;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use portcullis_core::{
    AuthMethod, BearerToken, Challenge, Credential, Principal, ScopeList, Secret, TokenShape,
};
use portcullis_credential::ExtractCredentialLayer;
use portcullis_lookup::{ExpiringCache, HttpFetcher};
use portcullis_test_support::MockAuthServer;
use portcullis_test_support::jwt::{self, TestKey};
use portcullis_token::{FileTokenStore, Issuer, TokenValidator, ValidateTokenLayer, token_digest};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use siphasher::sip128::{Hasher128 as _, SipHasher13};
use tower::{Service, ServiceBuilder, ServiceExt as _};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
/// Target length of the compact tokens, in bytes.
const TOKEN_LEN: usize = 1024;
const SA_PREFIX: &str = "pcsa_";
const SA_KEY: &str = "pcsa_bench_service_account_key_5f0c9a1e7b2d4c68";
/// Distinct tokens per cold round. Each round uses a fresh validator (an empty cache whose digest key no token
/// has met), so the pool need not outnumber the iterations; signing 100k RSA tokens up front would take minutes.
const COLD_POOL: usize = 1024;

fn claims(issuer: &str, jti: &str, filler: usize) -> Value {
    let now = jwt::now();
    json!({
        "iss": issuer,
        "sub": "557058:f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
        "aud": RESOURCE,
        "client_id": "bench-client",
        "scope": "read:jira-work write:jira-work read:confluence-content.all",
        "iat": now,
        "exp": now + 3600,
        "jti": jti,
        "filler": "x".repeat(filler),
    })
}

fn jti(n: usize) -> String {
    format!("jti-{n:010}")
}

/// The filler length that brings a token signed by `key` to about [`TOKEN_LEN`] bytes (all `jti`s are the same
/// width, so one answer fits every token of the key).
fn filler_len(key: &TestKey, issuer: &str) -> usize {
    let mut filler = 0;
    loop {
        let len = jwt::sign(key, jwt::header(key), claims(issuer, &jti(0), filler)).len();
        if len + 4 > TOKEN_LEN {
            return filler;
        }
        // Base64url: 3 bytes of JSON become 4 characters.
        filler += (TOKEN_LEN - len) * 3 / 4;
    }
}

fn token(key: &TestKey, issuer: &str, n: usize, filler: usize) -> String {
    jwt::sign(key, jwt::header(key), claims(issuer, &jti(n), filler))
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a valid header value")
}

/// A request as a server would hand it over: the header is already parsed (cloning it is a refcount).
fn request(authorization: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    req.headers_mut()
        .insert(AUTHORIZATION, authorization.clone());
    req
}

async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(req.into_body()))
}

fn challenge() -> Challenge {
    Challenge::new(METADATA).expect("valid metadata URL")
}

fn extract_layer() -> ExtractCredentialLayer {
    ExtractCredentialLayer::new(challenge())
        .with_service_account_prefix(SA_PREFIX)
        .expect("valid prefix")
}

/// `ValidateToken` + echo: requests carry their `Credential` already.
fn layer(
    validator: TokenValidator,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl Sized + use<>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    ServiceBuilder::new()
        .layer(ValidateTokenLayer::new(validator, challenge()))
        .service_fn(echo)
}

/// A request as the extraction layer leaves it: the `Credential` in the extensions (cloning it is a refcount).
fn extracted(credential: &Credential) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    req.extensions_mut().insert(credential.clone());
    req
}

/// `ExtractCredential` + `ValidateToken` + echo, as the crate docs build it.
fn stack(
    validator: TokenValidator,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl Sized + use<>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    ServiceBuilder::new()
        .layer(extract_layer())
        .layer(ValidateTokenLayer::new(validator, challenge()))
        .service_fn(echo)
}

fn validator(server: &MockAuthServer, fetcher: &HttpFetcher, capacity: u64) -> TokenValidator {
    let issuer = Issuer::with_jwks_uri(&server.issuer(), &server.jwks_uri()).expect("valid issuer");
    let store = FileTokenStore::from_toml(&format!(
        "[[service_account]]\naccount_id = 'svc-bench'\norganization = 'org-a'\nkey_sha256 = '{}'",
        token_digest(SA_KEY)
    ))
    .expect("valid token store");
    TokenValidator::builder(RESOURCE)
        .add_issuer(issuer)
        .with_api_token_verifier(store)
        .with_fetcher(fetcher.clone())
        .with_cache_capacity(capacity)
        .build()
        .expect("valid validator")
}

fn jwt_credential(token: &str) -> Credential {
    Credential::Bearer(BearerToken::new(Secret::new(token), TokenShape::Jwt))
}

/// The claims `jsonwebtoken` is asked for: what the validator reads too; the filler is skipped.
#[derive(Deserialize)]
#[allow(dead_code)] // Only deserialised: the baseline pays for reading them, as the validator does.
struct RawClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    scope: String,
    client_id: String,
}

fn raw_case(key: &TestKey, issuer: &str) -> (String, DecodingKey, Validation) {
    let token = token(key, issuer, 0, filler_len(key, issuer));
    let jwk: Jwk = serde_json::from_value(key.jwk()).expect("fixture JWK parses");
    let decoding = DecodingKey::from_jwk(&jwk).expect("usable JWK");
    let mut validation = Validation::new(key.alg);
    validation.set_audience(&[RESOURCE]);
    validation.set_issuer(&[issuer]);
    (token, decoding, validation)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rsa = jwt::rsa1("rsa-1");
    let ec = jwt::ec1("ec-1");
    let server = rt.block_on(MockAuthServer::with_keys(&[&rsa]));
    let issuer = server.issuer();
    let fetcher = HttpFetcher::new().expect("HTTP client");

    let rsa_filler = filler_len(&rsa, &issuer);
    let warm_token = token(&rsa, &issuer, 0, rsa_filler);
    let pool = sign_pool(&rsa, &issuer, rsa_filler);
    assert_eq!(warm_token.len(), pool[0].len());

    let mut group = c.benchmark_group("validate");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // --- 1. the baseline: jsonwebtoken alone ---
    for (id, key) in [
        ("raw_jsonwebtoken/rs256", &rsa),
        ("raw_jsonwebtoken/es256", &ec),
    ] {
        let (token, decoding, validation) = raw_case(key, &issuer);
        assert!(
            token.len().abs_diff(TOKEN_LEN) < 8,
            "{id}: {} bytes",
            token.len()
        );
        jsonwebtoken::decode::<RawClaims>(&token, &decoding, &validation).expect("valid token");
        group.bench_function(id, |b| {
            b.iter(|| jsonwebtoken::decode::<RawClaims>(black_box(&token), &decoding, &validation))
        });
    }

    // --- 2. cold: every token is new to the validator; its key set is already fetched ---
    let warm_header = bearer(&warm_token);
    let pool_headers: Vec<HeaderValue> = pool.iter().map(|t| bearer(t)).collect();
    let pool_credentials: Vec<Credential> = pool.iter().map(|t| jwt_credential(t)).collect();
    let warm_credential = jwt_credential(&warm_token);
    group.bench_function("layer/cold_rs256", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (server, fetcher, warm, pool) =
                (&server, &fetcher, &warm_credential, &pool_credentials);
            async move {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let service = layer(validator(server, fetcher, 4 * COLD_POOL as u64));
                    let warmed = service.clone().oneshot(extracted(warm)).await;
                    assert_eq!(warmed.expect("infallible").status(), StatusCode::OK);
                    let n = (iters - done).min(COLD_POOL as u64);
                    let requests: Vec<_> = pool[..n as usize].iter().map(extracted).collect();
                    let start = Instant::now();
                    for request in requests {
                        let response = service.clone().oneshot(request).await;
                        assert_eq!(response.expect("infallible").status(), StatusCode::OK);
                    }
                    timed += start.elapsed();
                    done += n;
                    // The old validator (and its cache) is dropped here, outside the timed loop.
                }
                timed
            }
        });
    });
    group.bench_function("extract+layer/cold_rs256", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (server, fetcher, warm_header, pool) =
                (&server, &fetcher, &warm_header, &pool_headers);
            async move {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let service = stack(validator(server, fetcher, 4 * COLD_POOL as u64));
                    let warmed = service.clone().oneshot(request(warm_header)).await;
                    assert_eq!(warmed.expect("infallible").status(), StatusCode::OK);
                    let n = (iters - done).min(COLD_POOL as u64);
                    let start = Instant::now();
                    for header in &pool[..n as usize] {
                        let response = service.clone().oneshot(request(header)).await;
                        assert_eq!(response.expect("infallible").status(), StatusCode::OK);
                    }
                    timed += start.elapsed();
                    done += n;
                }
                timed
            }
        });
    });

    // --- 3. warm, and the layer's overhead over a bare service ---
    let warm_validator = validator(&server, &fetcher, 100_000);
    let warm_layer = layer(warm_validator.clone());
    let warm_service = stack(warm_validator.clone());
    let sa_header = bearer(SA_KEY);
    let sa_credential = Credential::Bearer(BearerToken::new(
        Secret::new(SA_KEY),
        TokenShape::ServiceAccountKey,
    ));
    for header in [&warm_header, &sa_header] {
        let response = rt.block_on(warm_service.clone().oneshot(request(header)));
        assert_eq!(response.expect("infallible").status(), StatusCode::OK);
    }
    for credential in [&warm_credential, &sa_credential] {
        let response = rt.block_on(warm_layer.clone().oneshot(extracted(credential)));
        assert_eq!(response.expect("infallible").status(), StatusCode::OK);
    }
    group.bench_function("layer/warm_rs256", |b| {
        b.to_async(&rt)
            .iter(|| warm_layer.clone().oneshot(extracted(&warm_credential)))
    });
    let bare = ServiceBuilder::new().service_fn(echo);
    group.bench_function("bare/echo", |b| {
        b.to_async(&rt)
            .iter(|| bare.oneshot(extracted(&warm_credential)))
    });
    group.bench_function("extract+layer/warm_rs256", |b| {
        b.to_async(&rt)
            .iter(|| warm_service.clone().oneshot(request(&warm_header)))
    });

    // --- 4. a service-account key from a FileTokenStore ---
    group.bench_function("layer/api_token", |b| {
        b.to_async(&rt)
            .iter(|| warm_layer.clone().oneshot(extracted(&sa_credential)))
    });
    group.bench_function("extract+layer/api_token", |b| {
        b.to_async(&rt)
            .iter(|| warm_service.clone().oneshot(request(&sa_header)))
    });

    // --- 5. the cache key ---
    let digest_key = [7u8; 32];
    group.bench_function("digest/blake3_1kb", |b| {
        // As the validator does it: keyed, with a one-byte credential tag.
        b.iter(|| {
            let mut hasher = blake3::Hasher::new_keyed(&digest_key);
            hasher.update(b"B");
            hasher.update(black_box(warm_token.as_bytes()));
            *hasher.finalize().as_bytes()
        })
    });
    group.bench_function("digest/sha256_1kb", |b| {
        b.iter(|| -> [u8; 32] {
            Sha256::new()
                .chain_update(b"B")
                .chain_update(black_box(warm_token.as_bytes()))
                .finalize()
                .into()
        })
    });

    group.bench_function("digest/highway_128_1kb", |b| {
        // What the validator uses: keyed HighwayHash with a 128-bit output.
        b.iter(|| {
            let mut hasher = highway::HighwayHasher::new(highway::Key([7, 8, 9, 10]));
            hasher.append(b"B");
            hasher.append(black_box(warm_token.as_bytes()));
            hasher.finalize128()
        })
    });
    group.bench_function("digest/siphash13_128_1kb", |b| {
        // The conservative alternative: keyed SipHash-1-3 with a 128-bit output.
        b.iter(|| {
            let mut hasher = SipHasher13::new_with_key(&[7u8; 16]);
            hasher.write(b"B");
            hasher.write(black_box(warm_token.as_bytes()));
            hasher.finish128().as_u128()
        })
    });

    group.bench_function("digest/sha256_keyed_1kb", |b| {
        // The previous cache key: SHA-256 over key || tag || token (the output is never shown, so length extension
        // does not matter for a cache key).
        b.iter(|| -> [u8; 32] {
            Sha256::new()
                .chain_update(digest_key)
                .chain_update(b"B")
                .chain_update(black_box(warm_token.as_bytes()))
                .finalize()
                .into()
        })
    });

    // --- 6. warm, two concurrent callers ---
    let credential = warm_credential.clone();
    rt.block_on(warm_validator.validate(&credential))
        .expect("warm token is valid");
    group.bench_function("validator/warm_rs256", |b| {
        b.to_async(&rt)
            .iter(|| warm_validator.validate(&credential))
    });
    group.bench_function("layer/warm_rs256_2_threads", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (validator, credential) = (&warm_validator, &credential);
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = [iters.div_ceil(2), iters / 2]
                    .into_iter()
                    .map(|n| {
                        let validator = validator.clone();
                        let credential = credential.clone();
                        tokio::spawn(async move {
                            for _ in 0..n {
                                black_box(validator.validate(&credential).await.is_ok());
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("bench task");
                }
                start.elapsed()
            }
        });
    });

    // --- the warm path's parts ---
    let extract_only = ServiceBuilder::new()
        .layer(extract_layer())
        .service_fn(echo);
    group.bench_function("extract/bearer_1kb", |b| {
        b.to_async(&rt)
            .iter(|| extract_only.clone().oneshot(request(&warm_header)))
    });
    group.bench_function("extract/classify_1kb", |b| {
        b.iter(|| TokenShape::classify(black_box(&warm_token), Some(SA_PREFIX)))
    });
    let cache: ExpiringCache<u128, Principal> = ExpiringCache::new(100_000);
    let principal = sample_principal(&issuer);
    for key in 0..50_000 {
        cache.insert(key, principal.clone(), Duration::from_secs(3600));
    }
    let mut key = 0;
    group.bench_function("cache/hit_principal", |b| {
        b.iter(|| {
            // Keys spread over a populated cache, as distinct callers' tokens are.
            key = (key + 7919) % 50_000;
            cache.get(black_box(&key))
        })
    });

    group.finish();
    drop(server);
}

/// What the validator caches for the warm token.
fn sample_principal(issuer: &str) -> Principal {
    Principal::builder(
        AuthMethod::OAuth,
        "557058:f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
    )
    .with_issuer(issuer)
    .with_scopes(
        ScopeList::new([
            "read:jira-work",
            "write:jira-work",
            "read:confluence-content.all",
        ])
        .expect("valid scopes"),
    )
    .with_client_id("bench-client")
    .with_expires_at(UNIX_EPOCH + Duration::from_secs(jwt::now() + 3600))
    .verified()
}

/// [`COLD_POOL`] distinct tokens (by `jti`), signed on both cores.
fn sign_pool(key: &TestKey, issuer: &str, filler: usize) -> Vec<String> {
    let half = COLD_POOL / 2;
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            (1..=half)
                .map(|n| token(key, issuer, n, filler))
                .collect::<Vec<_>>()
        });
        let second: Vec<_> = (half + 1..=COLD_POOL)
            .map(|n| token(key, issuer, n, filler))
            .collect();
        let mut pool = first.join().expect("signing thread");
        pool.extend(second);
        pool
    })
}

criterion_group!(benches, bench);
criterion_main!(benches);
