//! `BindMcpSessions`: an MCP session is usable only by the principal that started it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis::core::{AuthMethod, Challenge, Principal, Rejection, RejectionKind};
use portcullis::{BindMcpSessionsLayer, MCP_SESSION_ID};
use tower::{Service, ServiceBuilder, ServiceExt as _};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// An MCP-like service: a request without a session starts one (`s-1`, `s-2`, ...); `DELETE` ends it; a session
/// it has ended is 404; it counts its calls.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
    ended: Arc<std::sync::Mutex<Vec<String>>>,
}

impl App {
    fn service(
        &self,
    ) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
    + Clone
    + use<> {
        let app = self.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let app = app.clone();
            async move {
                app.calls.fetch_add(1, Ordering::SeqCst);
                let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                match req.headers().get(&MCP_SESSION_ID) {
                    None => {
                        let n = app.started.fetch_add(1, Ordering::SeqCst) + 1;
                        response.headers_mut().insert(
                            MCP_SESSION_ID,
                            HeaderValue::from_str(&format!("s-{n}")).expect("valid"),
                        );
                    }
                    Some(id) => {
                        let id = id.to_str().expect("ascii").to_owned();
                        let mut ended = app.ended.lock().expect("lock");
                        if ended.contains(&id) {
                            *response.status_mut() = StatusCode::NOT_FOUND;
                        } else if req.method() == Method::DELETE {
                            ended.push(id);
                        }
                    }
                }
                Ok::<_, Infallible>(response)
            }
        })
    }
}

fn user(subject: &str) -> Principal {
    Principal::builder(AuthMethod::OAuth, subject)
        .with_issuer("https://auth.example.com")
        .verified()
}

fn request(
    method: Method,
    principal: Option<Principal>,
    sessions: &[&str],
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri("/mcp")
        .body(Full::default())
        .expect("request");
    if let Some(principal) = principal {
        req.extensions_mut().insert(principal);
    }
    for id in sessions {
        req.headers_mut()
            .append(MCP_SESSION_ID, HeaderValue::from_str(id).expect("valid"));
    }
    req
}

struct Outcome {
    status: StatusCode,
    reason: Option<RejectionKind>,
    session: Option<String>,
    www_authenticate: bool,
}

async fn send(layer: &BindMcpSessionsLayer, app: &App, req: Request<Full<Bytes>>) -> Outcome {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(app.service());
    let response = service.oneshot(req).await.expect("infallible");
    Outcome {
        status: response.status(),
        reason: response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        session: response
            .headers()
            .get(&MCP_SESSION_ID)
            .map(|v| v.to_str().expect("ascii").to_owned()),
        www_authenticate: response.headers().contains_key("www-authenticate"),
    }
}

fn layer() -> BindMcpSessionsLayer {
    BindMcpSessionsLayer::new(Challenge::new(META).expect("valid"))
}

#[tokio::test]
async fn a_session_is_usable_by_its_owner_only() {
    let (layer, app) = (layer(), App::default());
    let started = send(&layer, &app, request(Method::POST, Some(user("ada")), &[])).await;
    assert_eq!(started.status, StatusCode::OK);
    let id = started.session.expect("a session was started");

    for method in [Method::POST, Method::GET] {
        let own = send(
            &layer,
            &app,
            request(method.clone(), Some(user("ada")), &[&id]),
        )
        .await;
        assert_eq!(own.status, StatusCode::OK, "{method}");
    }
    assert_eq!(app.calls.load(Ordering::SeqCst), 3);

    // Another user, another issuer with the same subject, an API token of the same subject: all 404, unanswered.
    let others = [
        user("bob"),
        Principal::builder(AuthMethod::OAuth, "ada")
            .with_issuer("https://other.example.com")
            .verified(),
        Principal::builder(AuthMethod::PersonalApiToken, "ada").verified(),
    ];
    for other in others {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            let hijack = send(
                &layer,
                &app,
                request(method.clone(), Some(other.clone()), &[&id]),
            )
            .await;
            assert_eq!(
                hijack.status,
                StatusCode::NOT_FOUND,
                "{method} as {other:?}"
            );
            assert_eq!(hijack.reason, Some(RejectionKind::UnknownSession));
            assert!(
                !hijack.www_authenticate,
                "a 404 is not an authentication challenge"
            );
        }
    }
    assert_eq!(
        app.calls.load(Ordering::SeqCst),
        3,
        "no hijack reached the service"
    );

    // The owner's session is untouched by the attempts.
    let own = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn a_layer_that_is_off_leaves_every_session_id_alone() {
    let layer = BindMcpSessionsLayer::off();
    let app = App::default();
    let started = send(&layer, &app, request(Method::POST, Some(user("ada")), &[])).await;
    let id = started.session.expect("the service started a session");
    // Another user's request with that id, and ids that a bound layer refuses: all reach the service.
    let bob = send(
        &layer,
        &app,
        request(Method::POST, Some(user("bob")), &[&id]),
    )
    .await;
    assert_eq!(bob.status, StatusCode::OK);
    let unknown = send(
        &layer,
        &app,
        request(Method::GET, Some(user("ada")), &["never-started"]),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::OK);
    let twice = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id, &id]),
    )
    .await;
    assert_eq!(twice.status, StatusCode::OK);
    assert_eq!(app.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn only_a_post_starts_a_session() {
    let (layer, app) = (layer(), App::default());
    // The service names a session in its answer to a GET and a DELETE (no transport does; `initialize` is a
    // POST): the answers pass, but no session is recorded, so the ids are refused afterwards.
    for method in [Method::GET, Method::DELETE] {
        let answered = send(
            &layer,
            &app,
            request(method.clone(), Some(user("ada")), &[]),
        )
        .await;
        assert_eq!(answered.status, StatusCode::OK, "{method}");
        let id = answered.session.expect("the service named a session");
        let reused = send(
            &layer,
            &app,
            request(Method::POST, Some(user("ada")), &[&id]),
        )
        .await;
        assert_eq!(reused.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(reused.reason, Some(RejectionKind::UnknownSession));
    }
    assert_eq!(
        app.calls.load(Ordering::SeqCst),
        2,
        "the refused reuses never reached the service"
    );
}

#[tokio::test]
async fn unknown_malformed_and_repeated_session_ids_are_refused() {
    let (layer, app) = (layer(), App::default());
    let unknown = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &["s-999"]),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.reason, Some(RejectionKind::UnknownSession));

    let id = send(&layer, &app, request(Method::POST, Some(user("ada")), &[]))
        .await
        .session
        .expect("started");
    let twice = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id, &id]),
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert_eq!(twice.reason, Some(RejectionKind::InvalidRequest));
    let long = "x".repeat(257);
    let too_long = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&long]),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    let mut spaced = request(Method::POST, Some(user("ada")), &[]);
    spaced
        .headers_mut()
        .insert(MCP_SESSION_ID, HeaderValue::from_static("s 1"));
    assert_eq!(
        send(&layer, &app, spaced).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.calls.load(Ordering::SeqCst),
        1,
        "only the initialize reached the service"
    );
}

#[tokio::test]
async fn without_a_principal_nothing_passes() {
    let (layer, app) = (layer(), App::default());
    for sessions in [&[][..], &["s-1"][..]] {
        let outcome = send(&layer, &app, request(Method::POST, None, sessions)).await;
        assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
        assert_eq!(outcome.reason, Some(RejectionKind::MissingCredential));
    }
    assert_eq!(app.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_session_ends_with_delete_or_a_404_and_stays_ended() {
    let (layer, app) = (layer(), App::default());
    let start = |layer, app| async move {
        send(layer, app, request(Method::POST, Some(user("ada")), &[]))
            .await
            .session
            .expect("started")
    };
    let id = start(&layer, &app).await;
    let deleted = send(
        &layer,
        &app,
        request(Method::DELETE, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let after = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    assert_eq!(
        after.reason,
        Some(RejectionKind::UnknownSession),
        "answered by the layer"
    );

    // The service ends a session on its own (404): the layer forgets it too.
    let id = start(&layer, &app).await;
    app.ended.lock().expect("lock").push(id.clone());
    let ended = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(ended.status, StatusCode::NOT_FOUND);
    assert_eq!(ended.reason, None, "the service's own 404");
    let calls = app.calls.load(Ordering::SeqCst);
    let again = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(again.reason, Some(RejectionKind::UnknownSession));
    assert_eq!(app.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn an_idle_session_is_forgotten() {
    let layer = BindMcpSessionsLayer::with_limits(
        Challenge::new(META).expect("valid"),
        100,
        Duration::from_millis(100),
    );
    let app = App::default();
    let id = send(&layer, &app, request(Method::POST, Some(user("ada")), &[]))
        .await
        .session
        .expect("started");
    // Kept alive by use...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let used = send(
            &layer,
            &app,
            request(Method::POST, Some(user("ada")), &[&id]),
        )
        .await;
        assert_eq!(used.status, StatusCode::OK);
    }
    // ...and forgotten after the idle time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = send(
        &layer,
        &app,
        request(Method::POST, Some(user("ada")), &[&id]),
    )
    .await;
    assert_eq!(idle.reason, Some(RejectionKind::UnknownSession));
}

#[tokio::test]
async fn stateless_clients_never_need_a_session() {
    // A 2026-07-28 server hands out no session: every request of every method passes without one, from any
    // principal, and nothing is recorded that a later request could trip over.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let stateless = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    let service = ServiceBuilder::new().layer(layer()).service(stateless);
    let mut sent = 0;
    for who in ["ada", "bob"] {
        for method in [Method::POST, Method::GET, Method::POST, Method::DELETE] {
            let response = service
                .clone()
                .oneshot(request(method.clone(), Some(user(who)), &[]))
                .await
                .expect("infallible");
            sent += 1;
            assert_eq!(response.status(), StatusCode::OK, "{method} as {who}");
            assert!(response.headers().get(&MCP_SESSION_ID).is_none());
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), sent);
}
