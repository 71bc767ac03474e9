//! The signature algorithms an issuer may use, and which keys fit them.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};

/// An asymmetric JWS signature algorithm (RFC 7518). HMAC and `none` are deliberately absent: a resource server
/// verifies with public keys only, so a token can never be "signed" with a public key used as an HMAC secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// Every supported algorithm: the default allowlist of an issuer.
    pub const ALL: [Self; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The JOSE name (`RS256`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` value, exactly (case-sensitive, as RFC 7515 requires).
    #[must_use]
    pub fn from_jose(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    #[cfg_attr(feature = "aws-lc-rs", allow(dead_code))]
    pub(crate) fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    /// Whether a JWK can verify this algorithm: the key type and curve must fit (RFC 8725 section 3.1), and a key
    /// that names its own `alg` is only used for that one.
    pub(crate) fn fits(self, jwk: &Jwk) -> bool {
        let key_fits = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => matches!(
                self,
                Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512
            ),
            AlgorithmParameters::EllipticCurve(ec) => matches!(
                (self, &ec.curve),
                (Self::ES256, EllipticCurve::P256) | (Self::ES384, EllipticCurve::P384)
            ),
            AlgorithmParameters::OctetKeyPair(okp) => {
                self == Self::EdDSA && okp.curve == EllipticCurve::Ed25519
            }
            _ => false,
        };
        let alg_fits = jwk
            .common
            .key_algorithm
            .is_none_or(|named| named.to_string() == self.as_str());
        key_fits && alg_fits
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_jose(s).ok_or(UnknownAlgorithm(()))
    }
}

/// The name is not a supported asymmetric JWS algorithm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a supported signature algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA)")]
pub struct UnknownAlgorithm(());
