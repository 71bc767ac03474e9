//! Issuers and their key sets: discovery, fetching, rotation, cooldown and bounded staleness.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use portcullis_core::{ConfigError, check_url};
use portcullis_lookup::{FetchError, HttpFetcher};
use serde::Deserialize;

use crate::SigningAlgorithm;
use crate::verify::VerifyingKey;

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeySource {
    /// RFC 8414 authorization server metadata, then OpenID Connect discovery.
    Discovery,
    /// A JWKS URI given directly.
    JwksUri(String),
}

/// A trusted token issuer: its exact `iss`, where its keys come from, and the algorithms it may use.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub(crate) issuer: String,
    source: KeySource,
    pub(crate) algorithms: Vec<SigningAlgorithm>,
    pub(crate) require_at_jwt: bool,
}

impl Issuer {
    /// An issuer whose JWKS URI is found through discovery: first RFC 8414
    /// (`/.well-known/oauth-authorization-server` inserted before the issuer's path), then OpenID Connect
    /// (`/.well-known/openid-configuration` appended). The `issuer` of the document must equal `issuer` exactly.
    ///
    /// # Errors
    /// An issuer that is not an absolute `https` URL (or `http` on loopback), or that has a query or fragment.
    pub fn discover(issuer: &str) -> Result<Self, ConfigError> {
        let uri = check_url("issuer", issuer)?;
        if uri.query().is_some() {
            return Err(ConfigError::new("issuer", "must not have a query"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            source: KeySource::Discovery,
            algorithms: SigningAlgorithm::ALL.to_vec(),
            require_at_jwt: true,
        })
    }

    /// An issuer whose keys are served at `jwks_uri`.
    ///
    /// # Errors
    /// As [`Issuer::discover`], and for a `jwks_uri` that is not an absolute `https` URL (or `http` on loopback).
    pub fn with_jwks_uri(issuer: &str, jwks_uri: &str) -> Result<Self, ConfigError> {
        check_url("jwks_uri", jwks_uri)?;
        Ok(Self {
            source: KeySource::JwksUri(jwks_uri.to_owned()),
            ..Self::discover(issuer)?
        })
    }

    /// Restricts the algorithms this issuer may sign with (all asymmetric algorithms unless set).
    ///
    /// # Errors
    /// An empty list.
    pub fn with_algorithms(mut self, algorithms: &[SigningAlgorithm]) -> Result<Self, ConfigError> {
        if algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "must name at least one algorithm",
            ));
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    /// Accepts tokens whose header `typ` is not `at+jwt`.
    ///
    /// By default the RFC 9068 explicit type is required, so that an ID token or another JWT from the same issuer
    /// cannot pass as an access token. Some authorization servers issue access tokens typed `JWT`; for those, the
    /// audience check still keeps ID tokens out (their `aud` is the client, not this resource).
    pub fn allow_untyped_tokens(mut self) -> Self {
        self.require_at_jwt = false;
        self
    }

    /// The issuer identifier (`iss`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Asks the issuer now, as `portcullis check-config --online` does: its discovery document (RFC 8414, then
    /// OpenID Connect) must be reachable and name exactly this issuer (clients reject metadata whose `issuer`
    /// differs from the URL they derived it from, a trailing slash included), and its key set must hold at least
    /// one usable key. Returns the JWKS URI and the number of usable keys.
    ///
    /// # Errors
    /// What is wrong, for a person to read: no discovery document, one that names another issuer, no `jwks_uri`,
    /// or a key set that cannot be fetched or holds no usable key.
    pub async fn probe(&self, fetcher: &HttpFetcher) -> Result<(String, usize), String> {
        // The same discovery and key-set reading as validation uses, so that the check says what serving will do.
        let discovered = self.discover_jwks_uri(fetcher).await;
        let jwks_uri = match (&self.source, discovered) {
            // Clients reject such metadata, whether or not the keys come from a configured URI.
            (_, Err(Undiscovered::OtherIssuer { url, named })) => {
                return Err(format!(
                    "the discovery document at {url} names the issuer {named:?}, not {:?}: write the issuer \
                     exactly as the document does (clients reject the difference)",
                    self.issuer
                ));
            }
            (KeySource::JwksUri(uri), _) => uri.clone(),
            (KeySource::Discovery, Ok(uri)) => uri,
            (KeySource::Discovery, Err(Undiscovered::NoJwksUri)) => {
                return Err("the discovery document has no usable jwks_uri".to_owned());
            }
            (KeySource::Discovery, Err(Undiscovered::Unreachable(problems))) => {
                let problems: Vec<String> = problems
                    .iter()
                    .map(|(url, err)| format!("{url}: {err}"))
                    .collect();
                return Err(format!("no discovery document: {}", problems.join("; ")));
            }
        };
        let (keys, _) = fetch_key_set(fetcher, &jwks_uri)
            .await
            .map_err(|err| format!("the key set at {jwks_uri}: {err}"))?;
        if keys.is_empty() {
            return Err(format!(
                "the key set at {jwks_uri} holds no usable signing key"
            ));
        }
        Ok((jwks_uri, keys.len()))
    }

    /// The JWKS URI from the first discovery document that names exactly this issuer (RFC 8414, then OpenID
    /// Connect). A document that names another issuer is passed over, as clients pass it over.
    async fn discover_jwks_uri(&self, fetcher: &HttpFetcher) -> Result<String, Undiscovered> {
        let mut other = None;
        let mut unreachable = Vec::new();
        for url in self.discovery_urls() {
            match fetcher.get_json::<Metadata>(&url).await {
                Ok(doc) if doc.value.issuer == self.issuer => {
                    let uri = doc.value.jwks_uri.ok_or(Undiscovered::NoJwksUri)?;
                    check_url("jwks_uri", &uri).map_err(|_| Undiscovered::NoJwksUri)?;
                    return Ok(uri);
                }
                Ok(doc) => {
                    other.get_or_insert(Undiscovered::OtherIssuer {
                        url,
                        named: doc.value.issuer,
                    });
                }
                Err(err) => unreachable.push((url, err)),
            }
        }
        Err(other.unwrap_or(Undiscovered::Unreachable(unreachable)))
    }

    /// The RFC 8414 and OIDC discovery URLs, in the order they are tried.
    fn discovery_urls(&self) -> [String; 2] {
        let trimmed = self.issuer.trim_end_matches('/');
        let (origin, path) = match trimmed.find("://").map(|at| at + 3) {
            Some(after_scheme) => match trimmed[after_scheme..].find('/') {
                Some(slash) => trimmed.split_at(after_scheme + slash),
                None => (trimmed, ""),
            },
            None => (trimmed, ""),
        };
        [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{trimmed}/.well-known/openid-configuration"),
        ]
    }
}

/// Timing of key-set fetches, shared by all issuers of a validator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyPolicy {
    /// Refresh after this long when the server gives no usable `Cache-Control`.
    pub(crate) default_refresh: Duration,
    /// Bounds applied to a server's `max-age`.
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    /// At most one refetch for an unknown `kid` per this interval.
    pub(crate) unknown_kid_cooldown: Duration,
    /// With no usable key set, at most one fetch attempt per this interval.
    pub(crate) cold_retry: Duration,
    /// How long past its refresh time a key set is still used while fetches fail.
    pub(crate) max_stale: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            default_refresh: Duration::from_secs(15 * 60),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 60 * 60),
            unknown_kid_cooldown: Duration::from_secs(30),
            cold_retry: Duration::from_secs(5),
            max_stale: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// One verified-usable key of an issuer.
pub(crate) struct Key {
    kid: Option<String>,
    jwk: Jwk,
    pub(crate) verifying: VerifyingKey,
}

/// An issuer's keys as last fetched.
pub(crate) struct KeySet {
    keys: Vec<Key>,
    generation: u64,
    refresh_at: Instant,
}

impl KeySet {
    /// Keys that may verify a token with this `kid` and algorithm. With a `kid`, only the key with that id;
    /// without one, every key that fits the algorithm.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: SigningAlgorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |key| {
            alg.fits(&key.jwk)
                && match kid {
                    Some(kid) => key.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    fn has_kid(&self, kid: Option<&str>, alg: SigningAlgorithm) -> bool {
        self.candidates(kid, alg).next().is_some()
    }
}

/// Why no key could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The key set has no key for this token: the token is invalid.
    NoSuchKey,
    /// No usable key set: the issuer is unreachable.
    Unavailable,
}

/// The live state of one issuer.
pub(crate) struct IssuerKeys {
    pub(crate) config: Issuer,
    policy: KeyPolicy,
    fetcher: HttpFetcher,
    keys: ArcSwapOption<KeySet>,
    jwks_uri: ArcSwapOption<String>,
    /// Held only by the one task that fetches; requests never wait on it while holding anything else.
    fetch_lock: tokio::sync::Mutex<()>,
    /// When each kind of fetch was last attempted; each kind is rate-limited on its own, so that the first fetch
    /// does not delay the first rotation, and a flood of unknown kids does not delay recovery from an outage.
    last_attempts: [Mutex<Option<Instant>>; 3],
}

/// Why a key set is fetched, which decides how often that may happen.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A token names a `kid` the current set lacks: at most once per cooldown.
    UnknownKid,
    /// No usable key set: at most once per cold retry interval.
    Cold,
    /// The set is due for its scheduled refresh: at most once per minimum refresh interval.
    Scheduled,
}

impl IssuerKeys {
    pub(crate) fn new(config: Issuer, policy: KeyPolicy, fetcher: HttpFetcher) -> Self {
        let jwks_uri = match &config.source {
            KeySource::JwksUri(uri) => Some(Arc::new(uri.clone())),
            KeySource::Discovery => None,
        };
        Self {
            config,
            policy,
            fetcher,
            keys: ArcSwapOption::new(None),
            jwks_uri: ArcSwapOption::new(jwks_uri),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_attempts: Default::default(),
        }
    }

    /// The key set to verify a token signed with `alg` and `kid`, fetching when needed.
    pub(crate) async fn key_set_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: SigningAlgorithm,
    ) -> Result<Arc<KeySet>, KeyError> {
        let now = Instant::now();
        let current = self.keys.load_full();
        match current {
            Some(set) if now < set.refresh_at + self.policy.max_stale => {
                if now >= set.refresh_at {
                    self.refresh_in_background(set.generation);
                }
                if set.has_kid(kid, alg) {
                    return Ok(set);
                }
                // Possibly a rotation: refetch, at most once per cooldown.
                let set = self
                    .refresh(set.generation, Trigger::UnknownKid)
                    .await
                    .unwrap_or(set);
                if set.has_kid(kid, alg) {
                    Ok(set)
                } else {
                    Err(KeyError::NoSuchKey)
                }
            }
            stale_or_none => {
                let generation = stale_or_none.as_ref().map_or(0, |set| set.generation);
                let set = self
                    .refresh(generation, Trigger::Cold)
                    .await
                    .ok_or(KeyError::Unavailable)?;
                if now >= set.refresh_at + self.policy.max_stale {
                    return Err(KeyError::Unavailable);
                }
                if set.has_kid(kid, alg) {
                    Ok(set)
                } else {
                    Err(KeyError::NoSuchKey)
                }
            }
        }
    }

    /// Fetches the key set if there is none yet.
    pub(crate) async fn prefetch(&self) {
        if self.keys.load().is_none() {
            let _ = self.refresh(0, Trigger::Cold).await;
        }
    }

    fn refresh_in_background(self: &Arc<Self>, generation: u64) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _ = this.refresh(generation, Trigger::Scheduled).await;
        });
    }

    /// Fetches the key set, single-flight: callers that arrive while a fetch runs wait for it and share its
    /// result. Each trigger is rate-limited on its own. Returns the newest key set, or `None` if there is none.
    async fn refresh(&self, seen_generation: u64, trigger: Trigger) -> Option<Arc<KeySet>> {
        let (gate, min_interval) = match trigger {
            Trigger::UnknownKid => (&self.last_attempts[0], self.policy.unknown_kid_cooldown),
            Trigger::Cold => (&self.last_attempts[1], self.policy.cold_retry),
            Trigger::Scheduled => (&self.last_attempts[2], self.policy.min_refresh),
        };
        let _guard = self.fetch_lock.lock().await;
        let current = self.keys.load_full();
        if current.as_ref().map_or(0, |set| set.generation) != seen_generation {
            return current;
        }
        {
            let mut last = gate.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < min_interval) {
                return current;
            }
            *last = Some(now);
        }
        match self.fetch(seen_generation + 1).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.keys.store(Some(Arc::clone(&set)));
                tracing::debug!(
                    target: "portcullis::token",
                    issuer = %self.config.issuer,
                    keys = set.keys.len(),
                    "key set fetched"
                );
                Some(set)
            }
            Err(err) => {
                tracing::warn!(
                    target: "portcullis::token",
                    issuer = %self.config.issuer,
                    error = %err,
                    "key set fetch failed; keeping the last good key set"
                );
                current
            }
        }
    }

    async fn fetch(&self, generation: u64) -> Result<KeySet, FetchError> {
        let jwks_uri = match self.jwks_uri.load_full() {
            Some(uri) => uri,
            None => {
                let uri = Arc::new(self.discover().await?);
                self.jwks_uri.store(Some(Arc::clone(&uri)));
                uri
            }
        };
        let (keys, max_age) = fetch_key_set(&self.fetcher, &jwks_uri).await?;
        let refresh_after = max_age.map_or(self.policy.default_refresh, |age| {
            age.clamp(self.policy.min_refresh, self.policy.max_refresh)
        });
        Ok(KeySet {
            keys,
            generation,
            refresh_at: Instant::now() + refresh_after,
        })
    }

    async fn discover(&self) -> Result<String, FetchError> {
        self.config
            .discover_jwks_uri(&self.fetcher)
            .await
            .map_err(|why| match why {
                Undiscovered::OtherIssuer { .. } => {
                    tracing::warn!(
                        target: "portcullis::token",
                        issuer = %self.config.issuer,
                        "discovery document names another issuer; ignored"
                    );
                    FetchError::Malformed
                }
                Undiscovered::NoJwksUri => FetchError::Malformed,
                Undiscovered::Unreachable(mut errors) => {
                    errors.pop().map_or(FetchError::Malformed, |(_, err)| err)
                }
            })
    }
}

/// Why discovery gave no JWKS URI.
enum Undiscovered {
    /// A document answered, naming another issuer (the first such one).
    OtherIssuer { url: String, named: String },
    /// The issuer's document has no `jwks_uri`, or not an acceptable URL.
    NoJwksUri,
    /// No document could be fetched: each URL with its error.
    Unreachable(Vec<(String, FetchError)>),
}

/// The usable keys of the key set at `uri`, and how long the server says it may be kept.
async fn fetch_key_set(
    fetcher: &HttpFetcher,
    uri: &str,
) -> Result<(Vec<Key>, Option<Duration>), FetchError> {
    let fetched = fetcher.get_json::<RawJwks>(uri).await?;
    let keys = fetched
        .value
        .keys
        .into_iter()
        .filter_map(parse_key)
        .collect();
    Ok((keys, fetched.max_age))
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(default)]
    jwks_uri: Option<String>,
}

/// One key of a set; a key that cannot be used is skipped, never fatal for the set.
fn parse_key(value: serde_json::Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    // A usable key fits at least one algorithm (symmetric keys fit none) and forms a valid public key.
    let verifying = VerifyingKey::from_jwk(&jwk)?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        jwk,
        verifying,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_rfc_8414_and_oidc() {
        let issuer = Issuer::discover("https://as.example.com").expect("valid");
        assert_eq!(
            issuer.discovery_urls(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server".to_owned(),
                "https://as.example.com/.well-known/openid-configuration".to_owned(),
            ]
        );
        let issuer = Issuer::discover("https://as.example.com/tenant/a/").expect("valid");
        assert_eq!(
            issuer.discovery_urls(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/a".to_owned(),
                "https://as.example.com/tenant/a/.well-known/openid-configuration".to_owned(),
            ]
        );
    }

    #[test]
    fn issuer_configuration_is_checked() {
        assert!(Issuer::discover("http://as.example.com").is_err());
        assert!(Issuer::discover("https://as.example.com?x=1").is_err());
        assert!(Issuer::with_jwks_uri("https://as.example.com", "ftp://x").is_err());
        assert!(
            Issuer::discover("https://as.example.com")
                .expect("valid")
                .with_algorithms(&[])
                .is_err()
        );
    }

    #[test]
    fn bad_keys_are_skipped() {
        let keys = [
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            serde_json::json!({"kty": "RSA", "kid": "broken"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "use": "enc"}),
            serde_json::json!("not an object"),
        ];
        assert!(keys.into_iter().all(|k| parse_key(k).is_none()));
    }
}
