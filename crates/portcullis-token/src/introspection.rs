//! RFC 7662 token introspection for opaque access tokens.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::{ConfigError, RejectionKind, Secret, check_url};
use portcullis_lookup::{FetchError, HttpFetcher};

use crate::jwt::{Claims, SiteClaim};

/// Where and how opaque tokens are introspected (RFC 7662), with `client_secret_basic` client authentication.
#[derive(Clone)]
pub struct Introspection {
    pub(crate) endpoint: String,
    authorization: Secret,
    pub(crate) issuer: Option<String>,
}

impl Introspection {
    /// Introspects at `endpoint`, authenticating as `client_id` with `client_secret` (HTTP Basic, with both
    /// parts form-encoded as RFC 6749 section 2.3.1 requires).
    ///
    /// # Errors
    /// An endpoint that is not an absolute `https` URL (or `http` on loopback), or an empty client id.
    pub fn new(
        endpoint: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> Result<Self, ConfigError> {
        check_url("introspection_endpoint", endpoint)?;
        if client_id.is_empty() {
            return Err(ConfigError::new(
                "introspection_client_id",
                "must not be empty",
            ));
        }
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            encode(client_id),
            encode(client_secret.expose_secret())
        );
        Ok(Self {
            endpoint: endpoint.to_owned(),
            authorization: Secret::new(format!("Basic {}", STANDARD.encode(pair))),
            issuer: None,
        })
    }

    /// The issuer whose tokens this endpoint introspects: an answer that names another `iss` is refused.
    #[must_use]
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Asks the endpoint about a token. `Ok` is a definitive answer (active or not); `Err` means the endpoint
    /// could not give one (and nothing may be cached).
    pub(crate) async fn introspect(
        &self,
        fetcher: &HttpFetcher,
        token: &Secret,
        site_claim: Option<&SiteClaim>,
    ) -> Result<Claims, FetchError> {
        let fetched = fetcher
            .post_form_bytes(
                &self.endpoint,
                Some(self.authorization.expose_secret()),
                &[
                    ("token", token.expose_secret()),
                    ("token_type_hint", "access_token"),
                ],
            )
            .await?;
        // Decoded with the claim rules: a key given twice (say `active`) makes the answer broken.
        let claims =
            Claims::from_json(&fetched.value, site_claim).map_err(|_| FetchError::Malformed)?;
        // `active` is REQUIRED and boolean (RFC 7662 section 2.2); anything else is a broken answer, not a "no".
        match claims.active {
            Some(serde_json::Value::Bool(_)) => Ok(claims),
            _ => Err(FetchError::Malformed),
        }
    }

    /// Checks a definitive answer.
    pub(crate) fn check(&self, claims: &Claims, resource: &str) -> Result<(), RejectionKind> {
        if claims.active != Some(serde_json::Value::Bool(true)) {
            return Err(RejectionKind::InvalidToken);
        }
        if let (Some(expected), Some(actual)) = (&self.issuer, &claims.iss)
            && expected != actual
        {
            return Err(RejectionKind::InvalidToken);
        }
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.names_resource(resource))
        {
            return Err(RejectionKind::WrongAudience);
        }
        Ok(())
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint)
            .field("authorization", &self.authorization)
            .field("issuer", &self.issuer)
            .finish()
    }
}
