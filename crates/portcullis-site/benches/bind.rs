//! Benchmarks of site binding, in one criterion group (`bind`) so that they read as ratios:
//!
//! - `bare/tools_call_2k` and `layer/tools_call_2k`: a ~2 KB JSON-RPC `tools/call` whose site is at
//!   `/params/arguments/cloudId`, sent to an echo service that reads the whole body, without and with
//!   `BindSiteLayer` (which reads, checks and hands on the body);
//! - `bare/header` and `layer/header`: a bodiless request whose site is in `x-cloud-id`, without and with
//!   `BindSiteLayer::new(..).without_body().add_header("x-cloud-id")`.
//!
//! Every request is built inside the timed loop, with the principal (three granted sites) already in its
//! extensions as the validation layer would leave it, so the `bare/*` ids carry the same construction cost and
//! the difference is the layer's. Each call is one `oneshot` on a current-thread tokio runtime.
//!
//! Run with `cargo bench -p portcullis-site --bench bind`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use portcullis_core::{AuthMethod, Challenge, Principal, Site, SiteId};
use portcullis_site::{BindSiteLayer, SiteBody};
use tower::{Service, ServiceBuilder, ServiceExt as _};

const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const SITE: &str = "3f2a9c1e-7b4d-4e8a-9c0f-1d2e3f4a5b6c";
/// Target length of the `tools/call` body, in bytes.
const BODY_LEN: usize = 2048;

/// The application: reads the whole body, answers with its length and the bound site.
async fn echo<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let site = req.extensions().get::<Site>().map(|site| site.id().clone());
    let body = req.into_body().collect().await.expect("body").to_bytes();
    let mut response = Response::new(Full::new(Bytes::from(body.len().to_string())));
    if let Some(site) = site {
        response.extensions_mut().insert(site);
    }
    Ok(response)
}

fn principal() -> Principal {
    let grants = ["0c1d2e3f-0000-4000-8000-000000000001", SITE, "site-c"]
        .map(|id| SiteId::parse(id).expect("site id"));
    Principal::builder(
        AuthMethod::OAuth,
        "557058:f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
    )
    .with_site_grants(grants)
    .verified()
}

/// A `tools/call` of about [`BODY_LEN`] bytes, shaped like a real one: the site first among several
/// arguments, then a long text argument.
fn tools_call_body() -> Bytes {
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"createJiraIssue","arguments":{{"cloudId":"{SITE}","projectKey":"OPS","issueTypeName":"Task","summary":"Rotate the staging database credentials","description":""#
    );
    let tail = r#""},"_meta":{"progressToken":"p-42"}}}"#;
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .chars()
        .cycle()
        .take(BODY_LEN - head.len() - tail.len())
        .collect::<String>();
    let body = format!("{head}{filler}{tail}");
    assert_eq!(body.len(), BODY_LEN);
    Bytes::from(body)
}

fn body_request(principal: &Principal, body: &Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .expect("request");
    req.extensions_mut().insert(principal.clone());
    req
}

fn header_request(principal: &Principal) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header("x-cloud-id", SITE)
        .body(Full::default())
        .expect("request");
    req.extensions_mut().insert(principal.clone());
    req
}

/// Times one `oneshot` per iteration of `service` on the request `make` builds, after checking once that the
/// request reaches the application bound to `bound` (`None`: no layer, nothing bound).
fn bench_service<S, B>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    (id, bound): (&str, Option<&str>),
    service: S,
    make: impl Fn() -> Request<Full<Bytes>>,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
{
    // Otherwise the figure could be a rejection's, or a pass that bound nothing.
    let response = rt
        .block_on(service.clone().oneshot(make()))
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "{id}");
    assert_eq!(
        response.extensions().get::<SiteId>().map(SiteId::as_str),
        bound,
        "{id}"
    );
    group.bench_function(id, |b| {
        b.to_async(rt).iter(|| service.clone().oneshot(make()));
    });
}

fn bind(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let challenge = Challenge::new(METADATA).expect("challenge");
    let principal = principal();
    let body = tools_call_body();

    let mut group = c.benchmark_group("bind");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));

    let bare = ServiceBuilder::new().service_fn(echo::<Full<Bytes>>);
    let layered = ServiceBuilder::new()
        .layer(BindSiteLayer::new(challenge.clone()))
        .service_fn(echo::<SiteBody<Full<Bytes>>>);
    bench_service(&mut group, &rt, ("bare/tools_call_2k", None), bare, || {
        body_request(&principal, &body)
    });
    bench_service(
        &mut group,
        &rt,
        ("layer/tools_call_2k", Some(SITE)),
        layered,
        || body_request(&principal, &body),
    );

    let layered = ServiceBuilder::new()
        .layer(
            BindSiteLayer::new(challenge)
                .without_body()
                .add_header("x-cloud-id")
                .expect("header"),
        )
        .service_fn(echo::<SiteBody<Full<Bytes>>>);
    bench_service(&mut group, &rt, ("bare/header", None), bare, || {
        header_request(&principal)
    });
    bench_service(
        &mut group,
        &rt,
        ("layer/header", Some(SITE)),
        layered,
        || header_request(&principal),
    );
    group.finish();
}

criterion_group!(benches, bind);
criterion_main!(benches);
