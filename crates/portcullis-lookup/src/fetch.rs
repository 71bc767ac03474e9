//! A small, careful HTTP client for JSON documents.

use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_LENGTH};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a fetch failed. None of these is ever cached by the callers: a failed fetch means "unavailable", not
/// "invalid".
///
/// The message names the failure, never the body or the credentials of the request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server did not answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed or broke.
    #[error("connection failed")]
    Connect,
    /// The server answered with a status other than 2xx.
    #[error("unexpected status {0}")]
    Status(u16),
    /// The answer is larger than the configured cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The answer is not the JSON document expected.
    #[error("malformed response")]
    Malformed,
    /// The client could not be set up, or the URL is unusable.
    #[error("invalid client configuration")]
    Config,
}

/// A decoded answer and how long the server said it stays fresh.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched<T> {
    /// The decoded document.
    pub value: T,
    /// `Cache-Control: max-age`, or zero for `no-store`/`no-cache`; `None` when the server said nothing.
    pub max_age: Option<Duration>,
}

/// An HTTP client for small JSON documents.
///
/// - One total timeout per request (connect, send, and the whole answer).
/// - Answers larger than `max_body` bytes are refused, also when they arrive without a length.
/// - Redirects are not followed, and proxies from the environment are not used: every fetch goes where the
///   configuration says.
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpFetcher {
    /// Default total timeout of one request.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default cap on the size of an answer.
    pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

    /// A fetcher with the default timeout and size cap.
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new() -> Result<Self, FetchError> {
        Self::with_limits(Self::DEFAULT_TIMEOUT, Self::DEFAULT_MAX_BODY)
    }

    /// A fetcher with a total timeout per request and a cap on the size of an answer.
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn with_limits(timeout: Duration, max_body: usize) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| FetchError::Config)?;
        Ok(Self { client, max_body })
    }

    /// `GET url`, decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<Fetched<T>, FetchError> {
        let request = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        self.send(request).await
    }

    /// `GET url` with an `Authorization` header value, decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get_json_with<T: DeserializeOwned>(
        &self,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<Fetched<T>, FetchError> {
        let mut request = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        self.send(request).await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body and an optional `Authorization` header value
    /// (e.g. HTTP Basic client authentication), decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<Fetched<T>, FetchError> {
        let raw = self.post_form_bytes(url, authorization, form).await?;
        decode(raw)
    }

    /// As [`post_form`](Self::post_form), but returns the raw JSON bytes, for callers that decode with their own
    /// rules (e.g. refusing duplicate keys).
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn post_form_bytes(
        &self,
        url: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<Fetched<Vec<u8>>, FetchError> {
        let body: String = form_encode(form);
        let mut request = self
            .client
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        self.send_bytes(request).await
    }

    /// `POST url` with a JSON body and an optional `Authorization` header value, decoded as JSON.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: &B,
    ) -> Result<Fetched<T>, FetchError> {
        let body = serde_json::to_vec(body).map_err(|_| FetchError::Config)?;
        let mut request = self
            .client
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Fetched<T>, FetchError> {
        decode(self.send_bytes(request).await?)
    }

    async fn send_bytes(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Fetched<Vec<u8>>, FetchError> {
        let mut response = request.send().await.map_err(classify)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            value: body,
            max_age,
        })
    }
}

fn decode<T: DeserializeOwned>(raw: Fetched<Vec<u8>>) -> Result<Fetched<T>, FetchError> {
    let value = serde_json::from_slice(&raw.value).map_err(|_| FetchError::Malformed)?;
    Ok(Fetched {
        value,
        max_age: raw.max_age,
    })
}

fn classify(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        FetchError::Timeout
    } else if err.is_builder() {
        FetchError::Config
    } else {
        FetchError::Connect
    }
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `max-age` from a `Cache-Control` value; zero for `no-store` and `no-cache`.
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, secs)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
        {
            max_age = secs
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_max_age("Max-Age=\"60\""),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("max-age=10, no-cache"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=-1"), None);
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("token", "a b+c/=é"), ("token_type_hint", "access_token")]),
            "token=a+b%2Bc%2F%3D%C3%A9&token_type_hint=access_token"
        );
    }
}
