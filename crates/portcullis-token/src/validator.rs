//! [`TokenValidator`]: a credential in, a [`Principal`] out, with a cache in between.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use highway::{HighwayHash as _, HighwayHasher};
use portcullis_core::{
    AuthMethod, BasicCredential, BearerToken, ConfigError, Credential, Principal, Rejection,
    RejectionKind, TokenShape, check_url,
};
use portcullis_lookup::{ExpiringCache, HttpFetcher};

use crate::api_token::{ApiToken, ApiTokenOwner, VerifyApiToken};
use crate::jwks::{IssuerKeys, KeyError, KeyPolicy};
use crate::jwt::{Claims, Header, Parts, SiteClaim};
use crate::{Clock, Introspection, Issuer, SystemClock};

/// What the cache remembers about a credential.
#[derive(Clone)]
enum Cached {
    Valid(Principal),
    Invalid(RejectionKind),
}

/// What the cache says about a credential.
pub(crate) enum Lookup {
    /// The answer, from the cache.
    Hit(Result<Principal, Rejection>),
    /// Not cached: the credential's cache key, for the validation that follows.
    Miss(u128),
}

/// Why an uncached validation did not produce a principal.
enum Failure {
    /// The credential is bad: cached briefly, answered with this reason.
    Invalid(RejectionKind),
    /// No answer could be had (key set, introspection or verifier unreachable): never cached; 503.
    Unavailable,
}

impl From<RejectionKind> for Failure {
    fn from(kind: RejectionKind) -> Self {
        Self::Invalid(kind)
    }
}

/// Turns a [`Credential`] into a [`Principal`]: JWT access tokens through their issuer's keys, opaque tokens
/// through introspection, API tokens through a [`VerifyApiToken`]. Cheap to clone.
///
/// # Security
/// - A token is only checked with keys of the issuer its `iss` names, and only if that issuer is configured.
/// - The algorithm must be on the issuer's allowlist and fit the key; `none` and HMAC never are.
/// - `exp` is required; `nbf`/`iat` are checked with the leeway; `aud` must contain the resource.
/// - A token is validated by the path its shape selects, and only that one: a JWT that fails is never tried as
///   an API key, nor the reverse.
/// - Cache keys are keyed 128-bit HighwayHash digests (a random key per validator) of the whole credential, never
///   the token.
#[derive(Clone)]
pub struct TokenValidator(Arc<Inner>);

struct Inner {
    resource: String,
    issuers: HashMap<String, Arc<IssuerKeys>>,
    introspection: Option<Introspection>,
    api_tokens: Option<Arc<dyn VerifyApiToken>>,
    site_claim: Option<SiteClaim>,
    leeway: u64,
    max_token_len: usize,
    max_ttl: Duration,
    introspection_ttl: Duration,
    api_token_ttl: Duration,
    negative_ttl: Duration,
    /// As configured, for `Debug`: the cache bound and the key-set timing.
    capacity: u64,
    key_policy: KeyPolicy,
    clock: Arc<dyn Clock>,
    fetcher: HttpFetcher,
    cache: ExpiringCache<u128, Cached>,
    digest_key: highway::Key,
    uncached: AtomicU64,
}

/// Counters of a [`TokenValidator`], for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidatorStats {
    /// Validations that missed the cache and did the full work (parse, key lookup, signature, introspection or
    /// verifier call).
    pub uncached_validations: u64,
}

impl TokenValidator {
    /// Starts configuring a validator for the protected resource `resource` (its canonical URI, the audience
    /// every token must name, RFC 8707).
    pub fn builder(resource: &str) -> TokenValidatorBuilder {
        TokenValidatorBuilder {
            resource: resource.to_owned(),
            issuers: Vec::new(),
            introspection: None,
            api_tokens: None,
            site_claim: None,
            site_claim_delimiter: None,
            leeway: Duration::from_secs(60),
            max_token_len: 8 * 1024,
            max_ttl: Duration::from_secs(5 * 60),
            introspection_ttl: Duration::from_secs(60),
            api_token_ttl: Duration::from_secs(5 * 60),
            negative_ttl: Duration::from_secs(10),
            capacity: 100_000,
            clock: Arc::new(SystemClock),
            fetcher: None,
            key_policy: KeyPolicy::default(),
        }
    }

    /// Validates a credential, from the cache when it can.
    ///
    /// # Errors
    /// The [`Rejection`] to answer with: 401 for an invalid credential, 503 when a service needed to decide is
    /// unreachable and nothing is cached.
    pub async fn validate(&self, credential: &Credential) -> Result<Principal, Rejection> {
        match self.cached(credential) {
            Lookup::Hit(answer) => answer,
            Lookup::Miss(key) => self.validate_missed(key, credential).await,
        }
    }

    /// The cached answer for a credential, without waiting: what the layer tries first.
    pub(crate) fn cached(&self, credential: &Credential) -> Lookup {
        let inner = &*self.0;
        let key = inner.digest(credential);
        match inner.cache.get(&key) {
            Some(cached) => Lookup::Hit(self.answer(key, cached)),
            None => Lookup::Miss(key),
        }
    }

    /// Validates a credential that [`cached`](Self::cached) missed (`key` is its digest), sharing the work with
    /// concurrent callers for the same credential.
    pub(crate) async fn validate_missed(
        &self,
        key: u128,
        credential: &Credential,
    ) -> Result<Principal, Rejection> {
        let cached = self.load(key, credential).await?;
        self.answer(key, cached)
    }

    fn answer(&self, key: u128, cached: Cached) -> Result<Principal, Rejection> {
        let inner = &*self.0;
        match cached {
            Cached::Valid(principal) => {
                // A cached principal is re-checked against the clock on every hit.
                let expired = principal.expires_at().is_some_and(|exp| {
                    let exp = exp.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    inner.clock.now_unix() >= exp.saturating_add(inner.leeway)
                });
                if expired {
                    inner.cache.invalidate(&key);
                    return Err(Rejection::new(RejectionKind::ExpiredToken));
                }
                Ok(principal)
            }
            Cached::Invalid(kind) => Err(Rejection::new(kind)),
        }
    }

    fn load<'a>(
        &'a self,
        key: u128,
        credential: &'a Credential,
    ) -> Pin<Box<dyn Future<Output = Result<Cached, Rejection>> + Send + 'a>> {
        let inner = &*self.0;
        Box::pin(async move {
            inner
                .cache
                .get_or_load(key, async {
                    inner.uncached.fetch_add(1, Ordering::Relaxed);
                    match inner.validate_uncached(credential).await {
                        Ok((principal, ttl)) => Ok((Cached::Valid(principal), ttl)),
                        Err(Failure::Invalid(kind)) => {
                            Ok((Cached::Invalid(kind), inner.negative_ttl))
                        }
                        Err(Failure::Unavailable) => Err(()),
                    }
                })
                .await
                .map_err(|_| Rejection::new(RejectionKind::TemporarilyUnavailable))
        })
    }

    /// Fetches the key set of every issuer now, instead of at the first request that needs it. Failures are
    /// logged and left for later requests to retry: the server starts even when an issuer is down.
    pub async fn prefetch_keys(&self) {
        for issuer in self.0.issuers.values() {
            issuer.prefetch().await;
        }
    }

    /// Counters since the validator was built.
    #[must_use]
    pub fn stats(&self) -> ValidatorStats {
        ValidatorStats {
            uncached_validations: self.0.uncached.load(Ordering::Relaxed),
        }
    }

    /// The protected resource this validator checks `aud` against.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.0.resource
    }
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("resource", &self.0.resource)
            .field("issuers", &self.0.issuers.keys().collect::<Vec<_>>())
            .field("introspection", &self.0.introspection)
            .field("api_tokens", &self.0.api_tokens)
            .field("site_claim", &self.0.site_claim)
            .field("max_ttl", &self.0.max_ttl)
            .field("introspection_ttl", &self.0.introspection_ttl)
            .field("api_token_ttl", &self.0.api_token_ttl)
            .field("negative_ttl", &self.0.negative_ttl)
            .field("capacity", &self.0.capacity)
            .field("key_policy", &self.0.key_policy)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The cache key of a credential: HighwayHash with a 128-bit output, keyed with a random 256-bit
    /// per-validator key, over a tag for the credential kind and the credential.
    ///
    /// A key collision would hand one caller another's cached principal. To aim one, an attacker needs a
    /// credential whose digest equals that of a victim's cached credential: the victim's token is unknown to them,
    /// the key is random per validator and never leaves the process, and no digest is ever shown (not in logs,
    /// not in answers), so all that is left is guessing, at odds of one in 2^128 per cached entry. That asks for a
    /// wide keyed hash, not for collision resistance against someone who knows the key; HighwayHash is a keyed
    /// hash built for it (its authors' analysis: output bits uniform, resistant to differential and rotational
    /// attacks; it has had less public cryptanalysis than SipHash). Measured on a 1 KB token (BENCHMARKS.md):
    /// 0.23 us, against 0.39 us for keyed SipHash-1-3-128 and 0.95 us for keyed SHA-256, and the digest is most of
    /// the warm path.
    fn digest(&self, credential: &Credential) -> u128 {
        let mut hasher = HighwayHasher::new(self.digest_key);
        match credential {
            Credential::Bearer(token) => {
                hasher.append(b"B");
                hasher.append(token.secret().expose_secret().as_bytes());
            }
            Credential::Basic(basic) => {
                // The email cannot contain NUL (control characters are refused when parsing), so the encoding is
                // unambiguous.
                hasher.append(b"P");
                hasher.append(basic.email().as_bytes());
                hasher.append(b"\0");
                hasher.append(basic.token().expose_secret().as_bytes());
            }
            // Credential is non-exhaustive; a kind this validator does not know still gets a distinct key.
            #[allow(unreachable_patterns)]
            _ => hasher.append(b"?"),
        }
        let [low, high] = hasher.finalize128();
        u128::from(high) << 64 | u128::from(low)
    }

    fn now(&self) -> u64 {
        self.clock.now_unix()
    }

    fn ttl_until(&self, exp: Option<u64>, cap: Duration) -> Duration {
        match exp {
            Some(exp) => cap.min(Duration::from_secs(exp.saturating_sub(self.now()))),
            None => cap,
        }
    }

    async fn validate_uncached(
        &self,
        credential: &Credential,
    ) -> Result<(Principal, Duration), Failure> {
        match credential {
            Credential::Bearer(token) => match token.shape() {
                TokenShape::Jwt => self.validate_jwt(token).await,
                TokenShape::ServiceAccountKey => {
                    self.validate_api_token(
                        AuthMethod::ServiceAccountKey,
                        ApiToken::ServiceAccount {
                            key: token.secret(),
                        },
                    )
                    .await
                }
                _ => self.validate_opaque(token).await,
            },
            Credential::Basic(basic) => self.validate_personal(basic).await,
            #[allow(unreachable_patterns)]
            _ => Err(RejectionKind::InvalidToken.into()),
        }
    }

    async fn validate_jwt(&self, token: &BearerToken) -> Result<(Principal, Duration), Failure> {
        let token = token.secret().expose_secret();
        if token.len() > self.max_token_len {
            return Err(RejectionKind::InvalidToken.into());
        }
        // Everything that needs no key is checked first: a malformed, foreign, expired or misaddressed token
        // costs no fetch and no signature check.
        let parts = Parts::split(token)?;
        let (header, alg) = Header::parse(parts.header, false)?;
        let claims = Claims::from_segment(parts.payload, self.site_claim.as_ref())?;
        let issuer_url = claims.iss.as_deref().ok_or(RejectionKind::InvalidToken)?;
        let issuer = self
            .issuers
            .get(issuer_url)
            .ok_or(RejectionKind::InvalidToken)?;
        if !issuer.config.algorithms.contains(&alg) {
            return Err(RejectionKind::InvalidToken.into());
        }
        if issuer.config.require_at_jwt {
            Header::parse(parts.header, true)?;
        }
        let exp = claims.check_times(self.now(), self.leeway, true)?;
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.names_resource(&self.resource))
        {
            return Err(RejectionKind::WrongAudience.into());
        }
        let subject = claims
            .sub
            .clone()
            .or_else(|| claims.client_id.clone())
            .ok_or(RejectionKind::InvalidToken)?;

        let kid = header.kid.as_deref();
        let keys = issuer
            .key_set_for(kid, alg)
            .await
            .map_err(|err| match err {
                KeyError::NoSuchKey => Failure::Invalid(RejectionKind::InvalidToken),
                KeyError::Unavailable => Failure::Unavailable,
            })?;
        let verified = keys.candidates(kid, alg).any(|key| {
            key.verifying
                .verify(alg, parts.message.as_bytes(), parts.signature)
        });
        if !verified {
            return Err(RejectionKind::InvalidToken.into());
        }

        let principal = self.oauth_principal(subject, issuer_url, &claims, exp);
        Ok((principal, self.ttl_until(exp, self.max_ttl)))
    }

    async fn validate_opaque(&self, token: &BearerToken) -> Result<(Principal, Duration), Failure> {
        let Some(introspection) = &self.introspection else {
            return Err(RejectionKind::InvalidToken.into());
        };
        if token.secret().len() > self.max_token_len {
            return Err(RejectionKind::InvalidToken.into());
        }
        let claims = introspection
            .introspect(&self.fetcher, token.secret(), self.site_claim.as_ref())
            .await
            .map_err(|err| {
                tracing::warn!(target: "portcullis::token", error = %err, "introspection failed");
                Failure::Unavailable
            })?;
        introspection.check(&claims, &self.resource)?;
        let exp = claims.check_times(self.now(), self.leeway, false)?;
        let subject = claims
            .sub
            .clone()
            .or_else(|| claims.username.clone())
            .or_else(|| claims.client_id.clone())
            .ok_or(RejectionKind::InvalidToken)?;
        let issuer = claims
            .iss
            .clone()
            .or_else(|| introspection.issuer.clone())
            .unwrap_or_else(|| introspection.endpoint.clone());
        let principal = self.oauth_principal(subject, &issuer, &claims, exp);
        Ok((principal, self.ttl_until(exp, self.introspection_ttl)))
    }

    fn oauth_principal(
        &self,
        subject: String,
        issuer: &str,
        claims: &Claims,
        exp: Option<u64>,
    ) -> Principal {
        let mut builder = Principal::builder(AuthMethod::OAuth, subject)
            .with_issuer(issuer)
            .with_scopes(claims.scopes());
        if let Some(client_id) = claims.client_id.as_ref().or(claims.azp.as_ref()) {
            builder = builder.with_client_id(client_id.as_str());
        }
        if let Some(sites) = claims.site_grants() {
            builder = builder.with_site_grants(sites);
        }
        if let Some(exp) = exp {
            builder = builder.with_expires_at(UNIX_EPOCH + Duration::from_secs(exp));
        }
        builder.verified()
    }

    async fn validate_personal(
        &self,
        basic: &BasicCredential,
    ) -> Result<(Principal, Duration), Failure> {
        self.validate_api_token(
            AuthMethod::PersonalApiToken,
            ApiToken::Personal {
                email: basic.email(),
                token: basic.token(),
            },
        )
        .await
    }

    async fn validate_api_token(
        &self,
        method: AuthMethod,
        token: ApiToken<'_>,
    ) -> Result<(Principal, Duration), Failure> {
        let Some(verifier) = &self.api_tokens else {
            return Err(RejectionKind::InvalidToken.into());
        };
        let owner: ApiTokenOwner = verifier
            .verify(token)
            .await
            .map_err(|_| Failure::Unavailable)?
            .ok_or(RejectionKind::InvalidToken)?;
        let mut builder =
            Principal::builder(method, owner.account_id).with_organization(owner.organization);
        if let Some(sites) = owner.sites {
            builder = builder.with_site_grants(sites);
        }
        Ok((builder.verified(), self.api_token_ttl))
    }
}

/// Configures a [`TokenValidator`]. Everything is checked by [`build`](Self::build).
#[must_use]
pub struct TokenValidatorBuilder {
    resource: String,
    issuers: Vec<Issuer>,
    introspection: Option<Introspection>,
    api_tokens: Option<Arc<dyn VerifyApiToken>>,
    site_claim: Option<String>,
    site_claim_delimiter: Option<char>,
    leeway: Duration,
    max_token_len: usize,
    max_ttl: Duration,
    introspection_ttl: Duration,
    api_token_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    clock: Arc<dyn Clock>,
    fetcher: Option<HttpFetcher>,
    key_policy: KeyPolicy,
}

impl TokenValidatorBuilder {
    /// Trusts JWT access tokens from this issuer.
    pub fn add_issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The issuer identifiers trusted so far, exactly as configured.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(Issuer::issuer)
    }

    /// Validates opaque Bearer tokens by introspection.
    pub fn with_introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Verifies personal API tokens and service-account keys with `verifier`.
    pub fn with_api_token_verifier(mut self, verifier: impl VerifyApiToken) -> Self {
        self.api_tokens = Some(Arc::new(verifier));
        self
    }

    /// Reads the sites a token was granted for from this claim (a string or an array of strings).
    pub fn with_site_claim(mut self, claim: &str) -> Self {
        self.site_claim = Some(claim.to_owned());
        self
    }

    /// A site claim that is one string holds a list separated by `delimiter`: `' '` (`"site-a site-b"`) or `','`
    /// (`"site-a, site-b"`, spaces around each id allowed), for authorization servers that can emit a multi-valued
    /// property only as one string. Without it, a string is one id. A JSON array is read as ids either way; a claim
    /// of any other type, an empty item or a malformed id makes the token invalid (401), never "no grants".
    pub fn with_site_claim_delimiter(mut self, delimiter: char) -> Self {
        self.site_claim_delimiter = Some(delimiter);
        self
    }

    /// Clock skew tolerated for `exp`, `nbf` and `iat` (60 s unless set; at most 5 minutes).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The clock for `exp`, `nbf` and `iat` (the system clock unless set).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Longest token accepted, in bytes (8 KiB unless set).
    pub fn with_max_token_len(mut self, max: usize) -> Self {
        self.max_token_len = max;
        self
    }

    /// Most entries the validation cache holds (100 000 unless set).
    pub fn with_cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Longest a validated JWT is cached (5 minutes unless set); never past its `exp`.
    pub fn with_max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Longest an introspection answer is cached (60 s unless set); never past the token's `exp`.
    pub fn with_introspection_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_ttl = ttl;
        self
    }

    /// How long a verified API token is cached (5 minutes unless set).
    pub fn with_api_token_ttl(mut self, ttl: Duration) -> Self {
        self.api_token_ttl = ttl;
        self
    }

    /// How long an invalid credential is remembered (10 s unless set).
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The HTTP client for discovery, key sets and introspection (timeouts and size cap).
    pub fn with_fetcher(mut self, fetcher: HttpFetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// At most one key-set refetch for an unknown `kid` per `cooldown` (30 s unless set).
    pub fn with_unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.key_policy.unknown_kid_cooldown = cooldown;
        self
    }

    /// With no usable key set (issuer down), at most one fetch attempt per `interval` (5 s unless set).
    pub fn with_cold_retry(mut self, interval: Duration) -> Self {
        self.key_policy.cold_retry = interval;
        self
    }

    /// How long past its refresh time the last good key set is still used while fetches fail (24 h unless set).
    pub fn with_max_key_staleness(mut self, staleness: Duration) -> Self {
        self.key_policy.max_stale = staleness;
        self
    }

    /// Checks the configuration and builds the validator.
    ///
    /// # Errors
    /// A resource that is not an absolute `https` URI (or `http` on loopback); no way to validate anything; the
    /// same issuer twice; a leeway over 5 minutes; a token limit outside 256 B to 64 KiB; a zero cache capacity.
    pub fn build(self) -> Result<TokenValidator, ConfigError> {
        check_url("resource", &self.resource)?;
        if self.issuers.is_empty() && self.introspection.is_none() && self.api_tokens.is_none() {
            return Err(ConfigError::new(
                "issuers",
                "configure at least one issuer, introspection, or an API-token verifier",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 5 minutes"));
        }
        if !(256..=64 * 1024).contains(&self.max_token_len) {
            return Err(ConfigError::new(
                "max_token_len",
                "must be between 256 and 65536 bytes",
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new("cache_capacity", "must be at least 1"));
        }
        if self.site_claim.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new("site_claim", "must not be empty"));
        }
        match (self.site_claim_delimiter, &self.site_claim) {
            (Some(' ' | ','), Some(_)) | (None, _) => {}
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "site_claim_delimiter",
                    "set the site claim it splits too",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "site_claim_delimiter",
                    "must be a space or a comma",
                ));
            }
        }
        install_crypto_provider();
        let fetcher = match self.fetcher {
            Some(fetcher) => fetcher,
            None => HttpFetcher::new()
                .map_err(|_| ConfigError::new("fetcher", "cannot set up the HTTP client"))?,
        };
        let mut issuers = HashMap::new();
        for issuer in self.issuers {
            let name = issuer.issuer.clone();
            let keys = Arc::new(IssuerKeys::new(issuer, self.key_policy, fetcher.clone()));
            if issuers.insert(name, keys).is_some() {
                return Err(ConfigError::new(
                    "issuers",
                    "the same issuer is configured twice",
                ));
            }
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|_| {
            ConfigError::new("digest_key", "the system random source is unavailable")
        })?;
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&random[8 * i..8 * i + 8]);
            u64::from_le_bytes(bytes)
        };
        let digest_key = highway::Key([word(0), word(1), word(2), word(3)]);
        Ok(TokenValidator(Arc::new(Inner {
            resource: self.resource,
            issuers,
            introspection: self.introspection,
            api_tokens: self.api_tokens,
            site_claim: self.site_claim.map(|name| SiteClaim {
                name,
                delimiter: self.site_claim_delimiter,
            }),
            leeway: self.leeway.as_secs(),
            max_token_len: self.max_token_len,
            max_ttl: self.max_ttl,
            introspection_ttl: self.introspection_ttl,
            api_token_ttl: self.api_token_ttl,
            negative_ttl: self.negative_ttl,
            capacity: self.capacity,
            key_policy: self.key_policy,
            clock: self.clock,
            fetcher,
            cache: ExpiringCache::new(self.capacity),
            digest_key,
            uncached: AtomicU64::new(0),
        })))
    }
}

impl fmt::Debug for TokenValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidatorBuilder")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// With both crypto features on (feature unification), pick aws-lc-rs explicitly rather than let jsonwebtoken
/// panic at the first verification.
fn install_crypto_provider() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
    }
}
