//! Property: over random JSON-RPC bodies, `BindSiteLayer` never panics, and never lets a `tools/call` reach the
//! inner service with a site that the application could read as anything but the granted site the layer bound.
//!
//! "The application" is every lenient reading of the bytes the inner service received: `serde_json::Value` (last
//! duplicate wins), a first-duplicate-wins reading, and an ASCII case-insensitive key lookup that may pick any of
//! the matching keys; each also tried on the first JSON value only, ignoring trailing data, and on every element
//! of a batch.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::{AuthMethod, Challenge, Principal, Rejection, RejectionKind, Site, SiteId};
use portcullis_site::{BindSiteLayer, SiteBody};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::Deserializer;
use serde::de::{Deserialize, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const GRANTED: [&str; 2] = ["site-a", "site-b"];
const CASES: u32 = 512;

// ---------------------------------------------------------------------------
// Generating bodies
// ---------------------------------------------------------------------------

/// A JSON text under construction: keys are kept as written (escapes, case variants, duplicates).
#[derive(Clone, Debug)]
enum Json {
    Raw(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn raw(text: &str) -> Self {
        Self::Raw(text.to_owned())
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Raw(text) => out.push_str(text),
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Obj(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(key);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// One request: its body, an optional `x-cloud-id` header, and its content type.
#[derive(Clone)]
struct Case {
    body: String,
    header: Option<&'static str>,
    content_type: &'static str,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (x-cloud-id: {:?}, content-type: {})",
            self.body, self.header, self.content_type
        )
    }
}

/// A quoted key, written as one of the given spellings (exact, case variants, `\u` escapes).
fn key(spellings: &'static [&'static str]) -> BoxedStrategy<String> {
    // The exact spelling comes first and is the most likely.
    let exact = spellings[0];
    prop_oneof![
        16 => Just(exact.to_owned()),
        1 => proptest::sample::select(spellings).prop_map(str::to_owned),
    ]
    .boxed()
}

const CLOUD_ID: &[&str] = &[
    r#""cloudId""#,
    r#""cloudid""#,
    r#""CLOUDID""#,
    r#""CloudId""#,
    r#""cloudID""#,
    r#""cloud\u0049d""#,
    r#""\u0063loudId""#,
    r#""\u0063\u006c\u006f\u0075\u0064\u0049\u0064""#,
    r#""cloud\u0069d""#,
    r#""cloud\u0044""#,
    r#""cloudId ""#,
    r#""cloud_id""#,
];
const METHOD: &[&str] = &[
    r#""method""#,
    r#""Method""#,
    r#""METHOD""#,
    r#""m\u0065thod""#,
    r#""\u004Dethod""#,
];
const PARAMS: &[&str] = &[
    r#""params""#,
    r#""Params""#,
    r#""p\u0061rams""#,
    r#""p\u0041rams""#,
];
const ARGUMENTS: &[&str] = &[
    r#""arguments""#,
    r#""Arguments""#,
    r#""ARGUMENTS""#,
    r#""\u0061rguments""#,
    r#""argument\u0073""#,
    r#""argument\u0053""#,
];
const NAME: &[&str] = &[r#""name""#, r#""Name""#, r#""n\u0061me""#];

fn json_string() -> BoxedStrategy<Json> {
    "[a-zA-Z0-9 /_.-]{0,10}"
        .prop_map(|s| Json::Raw(serde_json::to_string(&s).expect("a string serialises")))
        .boxed()
}

/// A site value: granted (in several spellings), not granted, malformed, or not a string.
fn site_value() -> BoxedStrategy<Json> {
    prop_oneof![
        12 => proptest::sample::select(&[
            r#""site-a""#,
            r#""site-b""#,
            r#""site\u002da""#,
            r#""\u0073ite-b""#,
        ][..]).prop_map(Json::raw),
        8 => proptest::sample::select(&[
            // Another spelling is another site: ids are compared exactly.
            r#""SITE-A""#,
            r#""Site-B""#,
            r#""site-x""#,
            r#""site-c""#,
            r#""site-a-""#,
            r#""site\u002dx""#,
            r#""SITE-X""#,
        ][..]).prop_map(Json::raw),
        2 => proptest::sample::select(&[
            r#""""#,
            r#"" site-a""#,
            r#""site-a ""#,
            r#""site-a\n""#,
            r#""site%2Da""#,
            r#""site-a/../site-x""#,
            r#""site-a,site-x""#,
        ][..]).prop_map(Json::raw),
        2 => proptest::sample::select(&[
            "1",
            "null",
            "true",
            r#"["site-a"]"#,
            r#"{"id":"site-a"}"#,
            "[]",
            "{}",
        ][..]).prop_map(Json::raw),
    ]
    .boxed()
}

/// Rarely, an entry nested deeper than any parser should follow.
fn maybe_deep() -> BoxedStrategy<Vec<(String, Json)>> {
    let deep = format!("{}1{}", "[".repeat(130), "]".repeat(130));
    prop_oneof![
        30 => Just(Vec::new()),
        1 => Just(vec![(r#""deep""#.to_owned(), Json::Raw(deep))]),
    ]
    .boxed()
}

/// A random JSON value, sometimes holding decoy site keys.
fn random_value() -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        30 => proptest::sample::select(&["1", "-2.5e3", "null", "true", "false", "{}", "[]"][..])
            .prop_map(Json::raw),
        30 => json_string(),
        20 => site_value(),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Json::Arr),
            vec((random_key(), inner), 0..4).prop_map(Json::Obj),
        ]
    })
    .boxed()
}

/// A key off the path, or a decoy spelled like a key on it.
fn random_key() -> BoxedStrategy<String> {
    prop_oneof![
        12 => "[a-zA-Z_]{1,8}".prop_map(|k| format!("\"{k}\"")),
        1 => proptest::sample::select(&[
            r#""cloudId""#,
            r#""params""#,
            r#""arguments""#,
            r#""method""#,
            r#""_meta""#,
            r#""id""#,
        ][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// A key and its value: usually once, sometimes missing, sometimes twice (a duplicate).
fn once_or_so(
    spellings: &'static [&'static str],
    value: BoxedStrategy<Json>,
) -> BoxedStrategy<Vec<(String, Json)>> {
    let entry = (key(spellings), value);
    prop_oneof![
        1 => vec(entry.clone(), 0..=0),
        16 => vec(entry.clone(), 1..=1),
        1 => vec(entry, 2..=2),
    ]
    .boxed()
}

/// A few entries off the path (or decoys).
fn others(most: usize) -> BoxedStrategy<Vec<(String, Json)>> {
    vec((random_key(), random_value()), 0..=most).boxed()
}

/// Concatenates groups of entries and shuffles them.
fn object(groups: Vec<BoxedStrategy<Vec<(String, Json)>>>) -> BoxedStrategy<Json> {
    groups
        .prop_map(|groups| groups.concat())
        .prop_shuffle()
        .prop_map(Json::Obj)
        .boxed()
}

/// `params.arguments`: usually an object with the site key, sometimes something else.
fn arguments() -> BoxedStrategy<Json> {
    prop_oneof![
        8 => object(vec![once_or_so(CLOUD_ID, site_value()), others(2), maybe_deep()]),
        1 => random_value(),
    ]
    .boxed()
}

/// `params`: usually an object with `name` and `arguments`, sometimes something else.
fn params() -> BoxedStrategy<Json> {
    let name = prop_oneof![
        12 => Just(Json::raw(r#""search""#)),
        1 => json_string(),
        1 => Just(Json::raw("7")),
    ]
    .boxed();
    let object = object(vec![
        once_or_so(NAME, name),
        once_or_so(ARGUMENTS, arguments()),
        others(2),
    ]);
    prop_oneof![8 => object, 1 => random_value()].boxed()
}

fn method_value() -> BoxedStrategy<Json> {
    prop_oneof![
        8 => Just(Json::raw(r#""tools/call""#)),
        1 => Just(Json::raw(r#""tools\/call""#)),
        1 => Just(Json::raw(r#""\u0074ools/call""#)),
        2 => proptest::sample::select(&[
            r#""initialize""#,
            r#""tools/list""#,
            r#""resources/read""#,
            r#""Tools/Call""#,
            r#""tools/call ""#,
        ][..]).prop_map(Json::raw),
        1 => json_string(),
        1 => proptest::sample::select(&["1", "null", r#"["tools/call"]"#][..]).prop_map(Json::raw),
    ]
    .boxed()
}

/// One JSON-RPC message object.
fn message() -> BoxedStrategy<Json> {
    let envelope = Just(vec![
        (r#""jsonrpc""#.to_owned(), Json::raw(r#""2.0""#)),
        (r#""id""#.to_owned(), Json::raw("1")),
    ])
    .boxed();
    object(vec![
        envelope,
        once_or_so(METHOD, method_value()),
        once_or_so(PARAMS, params()),
        others(2),
        maybe_deep(),
    ])
}

fn case() -> impl Strategy<Value = Case> {
    let body = prop_oneof![
        12 => message(),
        1 => vec(message(), 0..3).prop_map(Json::Arr),
    ];
    let trailing = prop_oneof![
        40 => Just(""),
        1 => Just(" \n"),
        1 => Just("x"),
        1 => Just("{}"),
        1 => Just(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"s","arguments":{"cloudId":"site-x"}}}"#
        ),
    ];
    let header = prop_oneof![
        4 => Just(None),
        1 => Just(Some("site-a")),
        1 => Just(Some("site-x")),
    ];
    let content_type = prop_oneof![
        20 => Just("application/json"),
        2 => Just("application/json; charset=utf-8"),
        1 => Just("text/plain"),
    ];
    (body, trailing, header, content_type).prop_map(|(body, trailing, header, content_type)| {
        let mut text = String::new();
        body.write(&mut text);
        text.push_str(trailing);
        Case {
            body: text,
            header,
            content_type,
        }
    })
}

// ---------------------------------------------------------------------------
// Reading the body as the application might
// ---------------------------------------------------------------------------

/// A JSON value that keeps every entry of an object, duplicates included, in order.
#[derive(Clone, Debug, PartialEq)]
enum Tree {
    Str(String),
    Other,
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_str<E>(self, value: &str) -> Result<Tree, E> {
        Ok(Tree::Str(value.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Tree>()? {
            entries.push(entry);
        }
        Ok(Tree::Obj(entries))
    }
}

impl Tree {
    fn from_value(value: &Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(items) => Self::Arr(items.iter().map(Self::from_value).collect()),
            Value::Object(map) => Self::Obj(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_value(v)))
                    .collect(),
            ),
            _ => Self::Other,
        }
    }

    /// The messages: the value itself, or each element of a batch.
    fn messages(&self) -> Vec<&Tree> {
        match self {
            Self::Arr(items) => items.iter().collect(),
            other => vec![other],
        }
    }

    /// The values under `key`, as a lookup that picks entries with `pick` would see them.
    fn lookup(&self, key: &str, pick: Pick) -> Vec<&Tree> {
        let Self::Obj(entries) = self else {
            return Vec::new();
        };
        let matching = entries.iter().filter(|(k, _)| match pick {
            Pick::First | Pick::Last => k == key,
            Pick::AnyCaseInsensitive => k.eq_ignore_ascii_case(key),
        });
        let values: Vec<&Tree> = matching.map(|(_, v)| v).collect();
        match pick {
            Pick::First => values.into_iter().take(1).collect(),
            Pick::Last => values.into_iter().last().into_iter().collect(),
            Pick::AnyCaseInsensitive => values,
        }
    }

    /// Every value found at `path`.
    fn at(&self, path: &[&str], pick: Pick) -> Vec<&Tree> {
        let mut current = vec![self];
        for key in path {
            current = current
                .into_iter()
                .flat_map(|node| node.lookup(key, pick))
                .collect();
        }
        current
    }
}

#[derive(Clone, Copy, Debug)]
enum Pick {
    /// The first of duplicate keys.
    First,
    /// The last of duplicate keys (what `serde_json::Value` keeps).
    Last,
    /// Any key equal to the wanted one in ASCII case.
    AnyCaseInsensitive,
}

/// Every reading of `bytes`: (name, parsed value) for each parser that accepts them.
fn readings(bytes: &[u8]) -> Vec<(&'static str, Tree, Pick)> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        out.push(("serde_json::Value", Tree::from_value(&value), Pick::Last));
    }
    if let Some(Ok(value)) = serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .next()
    {
        out.push((
            "serde_json::Value, first value only",
            Tree::from_value(&value),
            Pick::Last,
        ));
    }
    if let Some(Ok(tree)) = serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Tree>()
        .next()
    {
        out.push(("first duplicate wins", tree.clone(), Pick::First));
        out.push(("last duplicate wins", tree.clone(), Pick::Last));
        out.push(("case-insensitive keys", tree, Pick::AnyCaseInsensitive));
    }
    out
}

/// Checks that no reading of the received body sees a `tools/call` with a site other than the one bound.
/// Returns how many site values the readings found (all of them checked).
fn check_readings(received: &[u8], bound: Option<&SiteId>) -> Result<usize, String> {
    let granted: Vec<SiteId> = GRANTED.iter().map(|s| id(s)).collect();
    let mut checked = 0;
    for (parser, tree, pick) in readings(received) {
        for message in tree.messages() {
            let is_call = message
                .at(&["method"], pick)
                .iter()
                .any(|m| **m == Tree::Str("tools/call".to_owned()));
            if !is_call {
                continue;
            }
            for site in message.at(&["params", "arguments", "cloudId"], pick) {
                let Tree::Str(text) = site else {
                    return Err(format!("{parser}: a site that is not a string: {site:?}"));
                };
                let Ok(site) = SiteId::parse(text) else {
                    return Err(format!("{parser}: a malformed site id {text:?}"));
                };
                if !granted.contains(&site) {
                    return Err(format!("{parser}: a site that is not granted: {text:?}"));
                }
                if bound != Some(&site) {
                    return Err(format!(
                        "{parser}: reads site {text:?}, the layer bound {bound:?}"
                    ));
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

fn id(site: &str) -> SiteId {
    SiteId::parse(site).expect("valid site id")
}

/// How a case ended, for the coverage check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ending {
    /// Passed bound to a site; the readings found the site in the body this many times.
    Bound {
        sites_read: usize,
    },
    Unbound,
    Refused(RejectionKind),
}

fn layer() -> BindSiteLayer {
    BindSiteLayer::new(Challenge::new(META).expect("valid metadata url"))
        .add_header("x-cloud-id")
        .expect("valid header")
}

fn run(layer: &BindSiteLayer, case: &Case) -> Result<Ending, TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(run_async(layer.clone(), case))
}

async fn run_async(layer: BindSiteLayer, case: &Case) -> Result<Ending, TestCaseError> {
    let calls = Arc::new(AtomicUsize::new(0));
    // The site bound and the body read by the inner service.
    type Received = (Option<Site>, Bytes);
    let seen: Arc<Mutex<Option<Received>>> = Arc::new(Mutex::new(None));
    let service = {
        let calls = Arc::clone(&calls);
        let seen = Arc::clone(&seen);
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |req: Request<SiteBody<Full<Bytes>>>| {
                let calls = Arc::clone(&calls);
                let seen = Arc::clone(&seen);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    *seen.lock().expect("lock") =
                        Some((parts.extensions.get::<Site>().cloned(), body));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            })
    };
    let mut builder = Request::post("/mcp").header(CONTENT_TYPE, case.content_type);
    if let Some(site) = case.header {
        builder = builder.header("x-cloud-id", site);
    }
    let mut req = builder
        .body(Full::new(Bytes::from(case.body.clone())))
        .expect("valid request");
    req.extensions_mut().insert(
        Principal::builder(AuthMethod::OAuth, "user-1")
            .with_site_grants(GRANTED.iter().map(|s| id(s)))
            .verified(),
    );

    let response = service.oneshot(req).await.expect("infallible");
    let reason = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    let calls = calls.load(Ordering::SeqCst);
    let seen = seen.lock().expect("lock").take();

    let Some((site, received)) = seen else {
        // Refused: a typed reason, and the inner service was never called.
        prop_assert_eq!(calls, 0);
        let kind = reason.ok_or_else(|| TestCaseError::fail("refused without a reason"))?;
        prop_assert_eq!(response.status(), kind.status());
        return Ok(Ending::Refused(kind));
    };
    prop_assert_eq!(calls, 1);
    prop_assert_eq!(response.status(), StatusCode::OK);
    prop_assert_eq!(reason, None);
    prop_assert_eq!(
        &received[..],
        case.body.as_bytes(),
        "the body changed on the way"
    );
    let bound = site.as_ref().map(Site::id);
    if let Some(bound) = bound {
        prop_assert!(
            GRANTED.contains(&bound.as_str()),
            "bound a site not granted: {bound:?}"
        );
    }
    if let Some(header) = case.header {
        // A header names the site: whatever the body says, it is the one bound.
        prop_assert_eq!(bound, Some(&id(header)));
    }
    let sites_read = check_readings(&received, bound).map_err(TestCaseError::fail)?;
    Ok(if bound.is_some() {
        Ending::Bound { sites_read }
    } else {
        Ending::Unbound
    })
}

fn config() -> Config {
    Config {
        cases: CASES,
        // Keep failures in the test output rather than in a file next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_json_rpc_bodies_never_pass_a_site_that_is_not_granted(case in case()) {
        run(&layer(), &case)?;
    }
}

/// The generator reaches every outcome that matters, so that the property above cannot pass by never testing
/// anything: bound and unbound passes, and each refusal the bodies can earn.
#[test]
fn random_bodies_reach_every_outcome() {
    let layer = layer();
    let endings = Mutex::new(Vec::new());
    let mut runner = TestRunner::new_with_rng(
        config(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&case(), |case| {
            let ending = run(&layer, &case)?;
            endings.lock().expect("lock").push(ending);
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
    let endings = endings.into_inner().expect("lock");
    let class = |ending: &Ending| match ending {
        Ending::Bound { sites_read: 0 } => "bound by the header alone",
        Ending::Bound { .. } => "bound to a site the body names",
        Ending::Unbound => "unbound",
        Ending::Refused(RejectionKind::SiteNotGranted) => "not granted",
        Ending::Refused(RejectionKind::InvalidRequest) => "invalid",
        Ending::Refused(RejectionKind::ConflictingSites) => "conflicting",
        Ending::Refused(_) => "refused otherwise",
    };
    for (wanted, least) in [
        ("bound to a site the body names", 20),
        ("bound by the header alone", 5),
        ("unbound", 20),
        ("not granted", 20),
        ("invalid", 20),
        ("conflicting", 5),
    ] {
        let n = endings.iter().filter(|e| class(e) == wanted).count();
        assert!(
            n >= least,
            "only {n} of {} cases ended {wanted}",
            endings.len()
        );
    }
}
