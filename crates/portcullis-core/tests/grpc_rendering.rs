//! gRPC rejections must look exactly like what tonic itself produces for the same status.

use http::StatusCode;
use portcullis_core::{Challenge, Protocol, Rejection, RejectionKind};

fn tonic_code(kind: RejectionKind) -> tonic::Code {
    match kind.grpc_code() {
        16 => tonic::Code::Unauthenticated,
        7 => tonic::Code::PermissionDenied,
        14 => tonic::Code::Unavailable,
        8 => tonic::Code::ResourceExhausted,
        3 => tonic::Code::InvalidArgument,
        5 => tonic::Code::NotFound,
        other => panic!("unexpected gRPC code {other} for {kind:?}"),
    }
}

#[test]
fn grpc_rejections_match_tonic_status_into_http() {
    let challenge = Challenge::new("https://grpc.example.com/.well-known/oauth-protected-resource")
        .expect("valid");
    for kind in RejectionKind::ALL {
        let ours = challenge.respond::<()>(Rejection::new(kind), Protocol::Grpc);
        let theirs = tonic::Status::new(tonic_code(kind), kind.description()).into_http::<()>();

        assert_eq!(ours.status(), StatusCode::OK, "{kind:?}");
        assert_eq!(ours.status(), theirs.status(), "{kind:?}");
        for name in ["content-type", "grpc-status", "grpc-message"] {
            assert_eq!(
                ours.headers().get(name),
                theirs.headers().get(name),
                "{kind:?}: {name}"
            );
        }
        assert_eq!(
            ours.extensions().get::<Rejection>().map(Rejection::kind),
            Some(kind),
            "typed reason in the extensions"
        );
    }
}

#[test]
fn grpc_codes_follow_the_http_status() {
    let expected = [
        (
            RejectionKind::MissingCredential,
            tonic::Code::Unauthenticated,
        ),
        (RejectionKind::InvalidToken, tonic::Code::Unauthenticated),
        (RejectionKind::SiteNotGranted, tonic::Code::PermissionDenied),
        (
            RejectionKind::InsufficientScope,
            tonic::Code::PermissionDenied,
        ),
        (
            RejectionKind::TemporarilyUnavailable,
            tonic::Code::Unavailable,
        ),
        (
            RejectionKind::AmbiguousCredential,
            tonic::Code::InvalidArgument,
        ),
    ];
    for (kind, code) in expected {
        assert_eq!(tonic_code(kind), code, "{kind:?}");
    }
}

#[test]
fn grpc_challenges_carry_www_authenticate_as_metadata() {
    let challenge = Challenge::new("https://grpc.example.com/.well-known/oauth-protected-resource")
        .expect("valid");
    let response = challenge.respond::<()>(
        Rejection::new(RejectionKind::MissingCredential),
        Protocol::Grpc,
    );
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer resource_metadata=\"https://grpc.example.com/.well-known/oauth-protected-resource\""
    );
    let unavailable = challenge.respond::<()>(
        Rejection::new(RejectionKind::TemporarilyUnavailable),
        Protocol::Grpc,
    );
    assert_eq!(unavailable.headers()["grpc-status"], "14");
    assert_eq!(unavailable.headers()["retry-after"], "5");
}
