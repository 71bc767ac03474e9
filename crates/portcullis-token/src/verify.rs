//! Signature verification with keys prepared once per key set.
//!
//! With the `aws-lc-rs` feature (the default), each JWK becomes aws-lc-rs `ParsedPublicKey`s when its key set is
//! fetched, one per algorithm the key fits, so a token costs the signature check alone: `jsonwebtoken` rebuilds
//! the key from its JWK components on every call, which is about a tenth of an RS256 verification (BENCHMARKS.md).
//! With only `rust-crypto`, `jsonwebtoken`'s RustCrypto backend verifies.
//!
//! Which algorithm a key may serve is decided before this module is asked ([`SigningAlgorithm::fits`]): the key
//! type and curve must match, and a JWK that names its `alg` serves only that one.

use jsonwebtoken::jwk::Jwk;

use crate::SigningAlgorithm;

/// A JWK ready to verify signatures.
pub(crate) struct VerifyingKey {
    #[cfg(feature = "aws-lc-rs")]
    parsed: Vec<(SigningAlgorithm, aws_lc_rs::signature::ParsedPublicKey)>,
    #[cfg(not(feature = "aws-lc-rs"))]
    decoding: jsonwebtoken::DecodingKey,
}

impl VerifyingKey {
    /// Prepares `jwk` for every algorithm it fits; `None` when it fits none or its parameters do not form a
    /// valid public key.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let algorithms: Vec<SigningAlgorithm> = SigningAlgorithm::ALL
            .into_iter()
            .filter(|alg| alg.fits(jwk))
            .collect();
        if algorithms.is_empty() {
            return None;
        }
        Self::prepare(jwk, &algorithms)
    }

    #[cfg(feature = "aws-lc-rs")]
    fn prepare(jwk: &Jwk, algorithms: &[SigningAlgorithm]) -> Option<Self> {
        let parsed = algorithms
            .iter()
            .map(|&alg| aws_lc::parse(jwk, alg).map(|key| (alg, key)))
            .collect::<Option<Vec<_>>>()?;
        Some(Self { parsed })
    }

    #[cfg(not(feature = "aws-lc-rs"))]
    fn prepare(jwk: &Jwk, _algorithms: &[SigningAlgorithm]) -> Option<Self> {
        let decoding = jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?;
        Some(Self { decoding })
    }

    /// Whether `signature` (the third segment of a compact JWS, base64url) signs `message` (the first two
    /// segments and their dot) under `alg`. An algorithm the key was not prepared for never verifies.
    pub(crate) fn verify(&self, alg: SigningAlgorithm, message: &[u8], signature: &str) -> bool {
        #[cfg(feature = "aws-lc-rs")]
        {
            use base64::Engine as _;
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;

            let Some((_, key)) = self.parsed.iter().find(|(prepared, _)| *prepared == alg) else {
                return false;
            };
            let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
                return false;
            };
            key.verify_sig(message, &signature).is_ok()
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            jsonwebtoken::crypto::verify(signature, message, &self.decoding, alg.to_jsonwebtoken())
                .unwrap_or(false)
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
mod aws_lc {
    use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};

    use crate::SigningAlgorithm;

    /// The aws-lc-rs key for `alg` from the JWK's parameters. The caller has checked that the key fits `alg`.
    pub(super) fn parse(jwk: &Jwk, alg: SigningAlgorithm) -> Option<ParsedPublicKey> {
        let bytes = |b64: &str| URL_SAFE_NO_PAD.decode(b64).ok();
        match (&jwk.algorithm, alg) {
            (AlgorithmParameters::RSA(rsa), _) => {
                let params: &'static signature::RsaParameters = match alg {
                    SigningAlgorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    SigningAlgorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    SigningAlgorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    SigningAlgorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    SigningAlgorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    SigningAlgorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                let (n, e) = (bytes(&rsa.n)?, bytes(&rsa.e)?);
                RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                }
                .to_parsed_public_key(params)
                .ok()
            }
            (AlgorithmParameters::EllipticCurve(ec), _) => {
                let (algorithm, width): (&'static signature::EcdsaVerificationAlgorithm, usize) =
                    match (alg, &ec.curve) {
                        (SigningAlgorithm::ES256, EllipticCurve::P256) => {
                            (&signature::ECDSA_P256_SHA256_FIXED, 32)
                        }
                        (SigningAlgorithm::ES384, EllipticCurve::P384) => {
                            (&signature::ECDSA_P384_SHA384_FIXED, 48)
                        }
                        _ => return None,
                    };
                let (x, y) = (bytes(&ec.x)?, bytes(&ec.y)?);
                if x.len() != width || y.len() != width {
                    return None;
                }
                // SEC 1 uncompressed point; aws-lc checks that it lies on the curve.
                let mut point = Vec::with_capacity(1 + 2 * width);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ParsedPublicKey::new(algorithm, point).ok()
            }
            (AlgorithmParameters::OctetKeyPair(okp), SigningAlgorithm::EdDSA)
                if okp.curve == EllipticCurve::Ed25519 =>
            {
                ParsedPublicKey::new(&signature::ED25519, bytes(&okp.x)?).ok()
            }
            _ => None,
        }
    }
}

#[cfg(all(test, feature = "aws-lc-rs"))]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaKeyPair,
    };
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).expect("JWK")
    }

    /// Every algorithm verifies its own signature, and refuses a changed message, a changed signature and every
    /// other algorithm the key fits.
    fn check(jwk: &Jwk, alg: SigningAlgorithm, signature: &[u8]) {
        let key = VerifyingKey::from_jwk(jwk).expect("usable key");
        let encoded = b64(signature);
        assert!(key.verify(alg, MESSAGE, &encoded), "{alg}");
        assert!(
            !key.verify(alg, b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0", &encoded),
            "{alg}"
        );
        let mut changed = signature.to_vec();
        let middle = changed.len() / 2;
        changed[middle] ^= 1;
        assert!(!key.verify(alg, MESSAGE, &b64(&changed)), "{alg}");
        assert!(
            !key.verify(alg, MESSAGE, &format!("{encoded}=")),
            "{alg}: padding"
        );
        assert!(!key.verify(alg, MESSAGE, "!!"), "{alg}: not base64url");
        for other in SigningAlgorithm::ALL
            .into_iter()
            .filter(|&other| other != alg)
        {
            assert!(
                !key.verify(other, MESSAGE, &encoded),
                "{alg} signature as {other}"
            );
        }
    }

    #[test]
    fn rsa_algorithms() {
        let rng = SystemRandom::new();
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let jwk = jwk(json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)}));
        for (alg, encoding) in [
            (SigningAlgorithm::RS256, &signature::RSA_PKCS1_SHA256),
            (SigningAlgorithm::RS384, &signature::RSA_PKCS1_SHA384),
            (SigningAlgorithm::RS512, &signature::RSA_PKCS1_SHA512),
            (SigningAlgorithm::PS256, &signature::RSA_PSS_SHA256),
            (SigningAlgorithm::PS384, &signature::RSA_PSS_SHA384),
            (SigningAlgorithm::PS512, &signature::RSA_PSS_SHA512),
        ] {
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, MESSAGE, &mut sig).expect("sign");
            check(&jwk, alg, &sig);
        }
    }

    #[test]
    fn ecdsa_algorithms() {
        let rng = SystemRandom::new();
        let cases: [(
            SigningAlgorithm,
            &'static EcdsaSigningAlgorithm,
            &str,
            usize,
        ); 2] = [
            (
                SigningAlgorithm::ES256,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                "P-256",
                32,
            ),
            (
                SigningAlgorithm::ES384,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                "P-384",
                48,
            ),
        ];
        for (alg, signing, crv, width) in cases {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).expect("EC key");
            let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).expect("EC key");
            let point = pair.public_key().as_ref();
            let (x, y) = (&point[1..=width], &point[1 + width..]);
            let good = jwk(json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}));
            let sig = pair.sign(&rng, MESSAGE).expect("sign");
            check(&good, alg, sig.as_ref());
            // A point off the curve, or coordinates of the wrong width, make no key.
            let mut off = y.to_vec();
            off[width - 1] ^= 1;
            let off_curve = jwk(json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(&off)}));
            assert!(
                VerifyingKey::from_jwk(&off_curve).is_none(),
                "{alg}: off the curve"
            );
            let short = jwk(json!({"kty": "EC", "crv": crv, "x": b64(&x[1..]), "y": b64(y)}));
            assert!(VerifyingKey::from_jwk(&short).is_none(), "{alg}: short x");
        }
    }

    #[test]
    fn ed25519() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        let jwk =
            jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}));
        check(&jwk, SigningAlgorithm::EdDSA, pair.sign(MESSAGE).as_ref());
    }

    #[test]
    fn a_key_that_names_its_algorithm_serves_only_that_one() {
        let rng = SystemRandom::new();
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let jwk =
            jwk(json!({"kty": "RSA", "alg": "PS256", "n": b64(&public.n), "e": b64(&public.e)}));
        let key = VerifyingKey::from_jwk(&jwk).expect("usable key");
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, &rng, MESSAGE, &mut sig)
            .expect("sign");
        assert!(!key.verify(SigningAlgorithm::RS256, MESSAGE, &b64(&sig)));
        pair.sign(&signature::RSA_PSS_SHA256, &rng, MESSAGE, &mut sig)
            .expect("sign");
        assert!(key.verify(SigningAlgorithm::PS256, MESSAGE, &b64(&sig)));
    }
}
