//! API tokens: personal API tokens (Basic `email:token`) and service-account keys (Bearer with a prefix).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use portcullis_core::{ConfigError, OrgId, Secret, SiteId};
use portcullis_lookup::{ConfigureHttpSource, FetchError, HttpSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An API token to verify.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum ApiToken<'a> {
    /// A personal API token, sent as `Basic base64(email:token)`.
    Personal {
        /// The account email, as sent.
        email: &'a str,
        /// The token.
        token: &'a Secret,
    },
    /// A service-account API key, sent as `Bearer <key>`.
    ServiceAccount {
        /// The key.
        key: &'a Secret,
    },
}

/// Who an API token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiTokenOwner {
    /// The account or service-account id.
    pub account_id: String,
    /// The organization the account belongs to.
    pub organization: OrgId,
    /// The sites the token may be used for, where the verifier says so.
    pub sites: Option<Vec<SiteId>>,
}

impl ApiTokenOwner {
    /// An owner with no site list.
    #[must_use]
    pub fn new(account_id: impl Into<String>, organization: OrgId) -> Self {
        Self {
            account_id: account_id.into(),
            organization,
            sites: None,
        }
    }
}

/// The verifier could not give an answer (down, slow, broken). Never cached; the request gets 503.
#[derive(Debug, thiserror::Error)]
#[error("the API-token verifier is unavailable")]
pub struct VerifyError(());

impl VerifyError {
    /// A verifier failure.
    #[must_use]
    pub fn unavailable() -> Self {
        Self(())
    }
}

/// A boxed future, as returned by [`VerifyApiToken::verify`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Checks API tokens.
///
/// `Ok(Some(owner))`: valid. `Ok(None)`: not valid (unknown, wrong, revoked), answered the same way for every
/// reason. `Err`: no answer could be had.
pub trait VerifyApiToken: fmt::Debug + Send + Sync + 'static {
    /// Verifies one token.
    fn verify<'a>(
        &'a self,
        token: ApiToken<'a>,
    ) -> BoxFuture<'a, Result<Option<ApiTokenOwner>, VerifyError>>;
}

/// Hex SHA-256 of a token: the form in which a [`FileTokenStore`] keeps it.
#[must_use]
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// API tokens kept as SHA-256 digests in a TOML file.
///
/// ```toml
/// [[personal]]
/// email = "ada@example.com"
/// account_id = "acc-ada"
/// organization = "org-a"
/// token_sha256 = "<hex sha-256 of the token>"  # see token_digest
/// sites = ["site-a"]                           # optional
///
/// [[service_account]]
/// account_id = "svc-build"
/// organization = "org-a"
/// key_sha256 = "<hex sha-256 of the key>"
/// ```
///
/// # Security
/// Only digests are stored. Digests are compared in constant time; an unknown email is compared against a dummy
/// digest, so it takes the same path and gives the same answer as a wrong token.
#[derive(Clone)]
pub struct FileTokenStore {
    personal: HashMap<String, Entry>,
    service: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    owner: ApiTokenOwner,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchema {
    #[serde(default)]
    personal: Vec<PersonalRow>,
    #[serde(default)]
    service_account: Vec<ServiceRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonalRow {
    email: String,
    account_id: String,
    organization: String,
    token_sha256: String,
    #[serde(default)]
    sites: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRow {
    account_id: String,
    organization: String,
    key_sha256: String,
    #[serde(default)]
    sites: Option<Vec<String>>,
}

impl FileTokenStore {
    /// Reads a store from a TOML file.
    ///
    /// # Errors
    /// An unreadable file, or any problem [`FileTokenStore::from_toml`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| {
            ConfigError::new("api_tokens", format!("cannot read the token file: {e}"))
        })?;
        Self::from_toml(&text)
    }

    /// Parses a store from TOML text.
    ///
    /// # Errors
    /// Malformed TOML, an unknown key, a digest that is not 64 hex digits, a malformed organization or site id,
    /// or the same email twice.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let schema: FileSchema = toml::from_str(text).map_err(|e| {
            ConfigError::new("api_tokens", format!("invalid TOML: {}", e.message()))
        })?;
        let mut personal = HashMap::new();
        for row in schema.personal {
            let entry = entry(
                &row.token_sha256,
                row.account_id,
                &row.organization,
                row.sites,
            )?;
            if personal
                .insert(row.email.to_ascii_lowercase(), entry)
                .is_some()
            {
                return Err(ConfigError::new(
                    "api_tokens",
                    "the same email appears twice",
                ));
            }
        }
        let service = schema
            .service_account
            .into_iter()
            .map(|row| {
                entry(
                    &row.key_sha256,
                    row.account_id,
                    &row.organization,
                    row.sites,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { personal, service })
    }

    fn check(&self, token: ApiToken<'_>) -> Option<ApiTokenOwner> {
        match token {
            ApiToken::Personal { email, token } => {
                let digest: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
                let found = self.personal.get(&email.to_ascii_lowercase());
                let expected = found.map_or([0u8; 32], |entry| entry.digest);
                let matches: bool = digest.ct_eq(&expected).into();
                found.filter(|_| matches).map(|entry| entry.owner.clone())
            }
            ApiToken::ServiceAccount { key } => {
                let digest: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
                // Every entry is compared, so the time taken does not depend on which one matches.
                let mut found = None;
                for entry in &self.service {
                    if bool::from(digest.ct_eq(&entry.digest)) {
                        found = Some(entry.owner.clone());
                    }
                }
                found
            }
        }
    }
}

fn entry(
    hex_digest: &str,
    account_id: String,
    organization: &str,
    sites: Option<Vec<String>>,
) -> Result<Entry, ConfigError> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest)
        .map_err(|_| ConfigError::new("api_tokens", "a digest must be 64 hex digits (SHA-256)"))?;
    if account_id.is_empty() {
        return Err(ConfigError::new(
            "api_tokens",
            "account_id must not be empty",
        ));
    }
    let organization = OrgId::new(organization)?;
    let sites = sites
        .map(|sites| {
            sites
                .iter()
                .map(|s| SiteId::parse(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Entry {
        digest,
        owner: ApiTokenOwner {
            account_id,
            organization,
            sites,
        },
    })
}

impl VerifyApiToken for FileTokenStore {
    fn verify<'a>(
        &'a self,
        token: ApiToken<'a>,
    ) -> BoxFuture<'a, Result<Option<ApiTokenOwner>, VerifyError>> {
        let answer = self.check(token);
        Box::pin(async move { Ok(answer) })
    }
}

impl fmt::Debug for FileTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokenStore")
            .field("personal", &self.personal.len())
            .field("service_account", &self.service.len())
            .finish()
    }
}

/// Verifies API tokens by asking the operator's identity endpoint.
///
/// `POST <endpoint>` with a JSON body, `{"kind":"personal","email":..,"token":..}` or
/// `{"kind":"service_account","key":..}`; the answer is `{"valid":true,"account_id":..,"organization":..,
/// "sites":[..]}` or `{"valid":false}`. Any other answer (non-2xx, timeout, malformed) is a [`VerifyError`].
#[derive(Clone, Debug)]
pub struct HttpTokenVerifier {
    source: HttpSource,
}

impl HttpTokenVerifier {
    /// A verifier at `endpoint`.
    ///
    /// # Errors
    /// An endpoint that is not an absolute `https` URL (or `http` on loopback), or an HTTP client that cannot be
    /// set up.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            source: HttpSource::post("api_token_verifier", endpoint)?,
        })
    }

    async fn ask(&self, token: ApiToken<'_>) -> Result<Option<ApiTokenOwner>, FetchError> {
        let body = match token {
            ApiToken::Personal { email, token } => VerifyRequest {
                kind: "personal",
                email: Some(email),
                token: Some(token.expose_secret()),
                key: None,
            },
            ApiToken::ServiceAccount { key } => VerifyRequest {
                kind: "service_account",
                email: None,
                token: None,
                key: Some(key.expose_secret()),
            },
        };
        let answer = self.source.post_json::<VerifyAnswer, _>(&body).await?.value;
        if !answer.valid {
            return Ok(None);
        }
        let (Some(account_id), Some(organization)) = (answer.account_id, answer.organization)
        else {
            return Err(FetchError::Malformed);
        };
        let organization = OrgId::new(&organization).map_err(|_| FetchError::Malformed)?;
        let sites = answer
            .sites
            .map(|sites| {
                sites
                    .iter()
                    .map(|s| SiteId::parse(s))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|_| FetchError::Malformed)?;
        Ok(Some(ApiTokenOwner {
            account_id,
            organization,
            sites,
        }))
    }
}

#[derive(Serialize)]
struct VerifyRequest<'a> {
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    valid: bool,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    sites: Option<Vec<String>>,
}

impl VerifyApiToken for HttpTokenVerifier {
    fn verify<'a>(
        &'a self,
        token: ApiToken<'a>,
    ) -> BoxFuture<'a, Result<Option<ApiTokenOwner>, VerifyError>> {
        Box::pin(async move {
            self.ask(token).await.map_err(|err| {
                tracing::warn!(target: "portcullis::token", error = %err, "API-token verifier failed");
                VerifyError::unavailable()
            })
        })
    }
}

impl ConfigureHttpSource for HttpTokenVerifier {
    fn map_sources(self, f: impl Fn(HttpSource) -> HttpSource) -> Self {
        Self {
            source: f(self.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = r#"
        [[personal]]
        email = "Ada@Example.com"
        account_id = "acc-ada"
        organization = "org-a"
        token_sha256 = "DIGEST_ADA"
        sites = ["site-a"]

        [[service_account]]
        account_id = "svc-build"
        organization = "org-b"
        key_sha256 = "DIGEST_SVC"
    "#;

    fn store() -> FileTokenStore {
        let text = STORE
            .replace("DIGEST_ADA", &token_digest("pat-ada"))
            .replace("DIGEST_SVC", &token_digest("pcsa_build"));
        FileTokenStore::from_toml(&text).expect("valid store")
    }

    #[test]
    fn personal_tokens_match_email_case_insensitively_and_digest_exactly() {
        let store = store();
        let token = Secret::new("pat-ada");
        let owner = store.check(ApiToken::Personal {
            email: "ada@example.com",
            token: &token,
        });
        assert_eq!(owner.map(|o| o.account_id), Some("acc-ada".to_owned()));
        let wrong = Secret::new("pat-adb");
        assert!(
            store
                .check(ApiToken::Personal {
                    email: "ada@example.com",
                    token: &wrong
                })
                .is_none()
        );
        assert!(
            store
                .check(ApiToken::Personal {
                    email: "bob@example.com",
                    token: &token
                })
                .is_none()
        );
    }

    #[test]
    fn service_keys_match_by_digest() {
        let store = store();
        let key = Secret::new("pcsa_build");
        let owner = store
            .check(ApiToken::ServiceAccount { key: &key })
            .expect("known key");
        assert_eq!(owner.organization.as_str(), "org-b");
        assert!(
            store
                .check(ApiToken::ServiceAccount {
                    key: &Secret::new("pcsa_other")
                })
                .is_none()
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for bad in [
            "[[personal]]\nemail='a'\naccount_id='x'\norganization='o'\ntoken_sha256='zz'",
            "[[personal]]\nemail='a'\naccount_id='x'\norganization='o b'\ntoken_sha256='00'",
            "[[robots]]\n",
            "not toml",
        ] {
            let err = FileTokenStore::from_toml(bad).expect_err("refused");
            assert!(!err.problem().is_empty());
        }
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
