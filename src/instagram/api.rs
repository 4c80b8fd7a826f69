//! Client of the Instagram API with Instagram Login (graph.instagram.com).
//!
//! The access token travels as a query parameter, as the API requires, so
//! no URL this client builds is ever logged or put in an error. Errors from
//! the HTTP client are stripped of their URL. The `paging.next` links embed
//! the token and are never followed: the `after` cursor is used instead.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;

use super::media::{MEDIA_FIELDS, Media};
use crate::config::Secret;
use crate::metrics::register;

/// Graph error codes that mean "slow down": application, user, page and
/// hourly call limits, and the Instagram business use case limit.
const THROTTLING_CODES: &[i64] = &[4, 17, 32, 613, 80002];
/// Wait after a throttling error when the API suggests none. Meta documents
/// the limits as rolling one-hour windows, so retrying sooner wastes calls.
const THROTTLE_WAIT: Duration = Duration::from_secs(15 * 60);
/// Cap on the wait the API suggests. Instagram's business use case limits
/// count calls over a rolling 24 hours, so a longer suggestion is not a
/// real limit. Uncapped, a value near `u64::MAX` minutes would overflow.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "Instagram rejected the access token (code 190, subcode {subcode}): {message}; \
         create a new long-lived token and set instagram.access_token (TEND_INSTAGRAM_ACCESS_TOKEN)"
    )]
    TokenInvalid { subcode: i64, message: String },
    #[error("Instagram API throttled tend (code {code}): {message}; retrying in {}s", retry_after.as_secs())]
    Throttled {
        code: i64,
        message: String,
        retry_after: Duration,
    },
    #[error("Instagram API error {code}: {message}")]
    Api { code: i64, message: String },
    #[error("Instagram API request failed")]
    Transport(#[source] reqwest::Error),
    #[error("Instagram API returned an unexpected body: {0}")]
    Decode(String),
}

impl ApiError {
    fn from_transport(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }
}

/// One page of `/me/media`, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Media>,
    /// Cursor of the next page; `None` on the last page.
    pub after: Option<String>,
}

/// The body of a `/me/media` response.
#[derive(Deserialize)]
pub(crate) struct PageBody {
    data: Vec<Media>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: i64,
    /// Minutes until calls are allowed again, on business use case limits.
    #[serde(default)]
    estimated_time_to_regain_access: u64,
}

#[derive(Debug, Deserialize)]
pub struct Refreshed {
    pub access_token: String,
    /// Seconds until the new token expires.
    pub expires_in: u64,
}

#[derive(Clone)]
pub struct ApiMetrics {
    calls: IntCounterVec,
    usage: IntGaugeVec,
}

impl ApiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            calls: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "tend_instagram_api_requests_total",
                        "Instagram Graph API requests by endpoint and outcome (ok, throttled, token_invalid, error).",
                    ),
                    &["endpoint", "outcome"],
                )?,
            )?,
            usage: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tend_instagram_api_usage_percent",
                        "Share of the Instagram rate limit used, from the X-App-Usage header, by kind (call_count, total_time, total_cputime).",
                    ),
                    &["kind"],
                )?,
            )?,
        })
    }
}

#[derive(Clone)]
pub struct InstagramApi {
    http: reqwest::Client,
    /// `{api_url}/{version}`.
    versioned: String,
    root: String,
    token: Arc<RwLock<Secret>>,
    metrics: ApiMetrics,
}

impl InstagramApi {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        version: &str,
        token: Secret,
        metrics: ApiMetrics,
    ) -> Self {
        let root = api_url.trim_end_matches('/').to_owned();
        Self {
            http,
            versioned: format!("{root}/{version}"),
            root,
            token: Arc::new(RwLock::new(token)),
            metrics,
        }
    }

    fn token(&self) -> String {
        self.token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .expose()
            .to_owned()
    }

    /// Replaces the token used from now on (after a refresh).
    pub fn set_token(&self, token: Secret) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// Reads one page of the account's media, newest first.
    pub async fn media_page(&self, after: Option<&str>, limit: u32) -> Result<Page, ApiError> {
        let mut query = vec![
            ("fields", MEDIA_FIELDS.to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let body: PageBody = self
            .get(&format!("{}/me/media", self.versioned), "me/media", query)
            .await?;
        Ok(Page::from(body))
    }

    /// Reads one media item (or carousel child) with fresh signed URLs.
    pub async fn media(&self, id: &str) -> Result<Media, ApiError> {
        let query = vec![("fields", MEDIA_FIELDS.to_owned())];
        self.get(
            &format!("{}/{}", self.versioned, encode(id)),
            "media",
            query,
        )
        .await
    }

    /// Exchanges the long-lived token for a new one (valid 60 days).
    pub async fn refresh_token(&self) -> Result<Refreshed, ApiError> {
        let query = vec![("grant_type", "ig_refresh_token".to_owned())];
        self.get(
            &format!("{}/refresh_access_token", self.root),
            "refresh_access_token",
            query,
        )
        .await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        endpoint: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<T, ApiError> {
        query.push(("access_token", self.token()));
        let response = self
            .http
            .get(url)
            .query(&query)
            .send()
            .await
            .map_err(ApiError::from_transport)?;
        self.record_usage(response.headers());
        let status = response.status();
        let body = response.bytes().await.map_err(ApiError::from_transport)?;
        let result = decode(status, &body);
        let outcome = match &result {
            _ if status.is_success() => "ok",
            Err(ApiError::Throttled { .. }) => "throttled",
            Err(ApiError::TokenInvalid { .. }) => "token_invalid",
            _ => "error",
        };
        self.count(endpoint, outcome);
        result
    }

    fn count(&self, endpoint: &str, outcome: &str) {
        self.metrics
            .calls
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    fn record_usage(&self, headers: &reqwest::header::HeaderMap) {
        let Some(value) = headers.get("x-app-usage").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Ok(usage) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value)
        else {
            return;
        };
        for (kind, percent) in usage {
            if let Some(percent) = percent.as_i64() {
                self.metrics.usage.with_label_values(&[&kind]).set(percent);
            }
        }
    }
}

impl From<PageBody> for Page {
    /// Keeps the `after` cursor only when `paging.next` is present, because
    /// the Graph API omits `next` on the last page but may still send cursors.
    fn from(body: PageBody) -> Self {
        let after = body
            .paging
            .filter(|p| p.next.is_some())
            .and_then(|p| p.cursors)
            .and_then(|c| c.after);
        Self {
            items: body.data,
            after,
        }
    }
}

/// Decodes a Graph API response: the body as `T` on a success status,
/// otherwise the Graph error it carries, or the status alone when the body
/// is not a Graph error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<T, ApiError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|error| ApiError::Decode(error.to_string()));
    }
    Err(match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => classify(parsed.error),
        Err(_) => ApiError::Api {
            code: i64::from(status.as_u16()),
            message: format!("HTTP {status}"),
        },
    })
}

fn classify(error: GraphError) -> ApiError {
    match error.code {
        190 => ApiError::TokenInvalid {
            subcode: error.error_subcode,
            message: error.message,
        },
        code if THROTTLING_CODES.contains(&code) => ApiError::Throttled {
            code,
            message: error.message,
            retry_after: match error.estimated_time_to_regain_access {
                0 => THROTTLE_WAIT,
                minutes => Duration::from_secs(minutes.saturating_mul(60)).min(MAX_THROTTLE_WAIT),
            },
        },
        code => ApiError::Api {
            code,
            message: error.message,
        },
    }
}

/// Percent-encodes a path segment (media ids are digits, but never trust input).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_errors_classified() {
        let error = |code, subcode| GraphError {
            message: "m".into(),
            code,
            error_subcode: subcode,
            estimated_time_to_regain_access: 0,
        };
        assert!(matches!(
            classify(error(190, 463)),
            ApiError::TokenInvalid { subcode: 463, .. }
        ));
        for code in [4, 17, 32, 613] {
            assert!(matches!(
                classify(error(code, 0)),
                ApiError::Throttled { .. }
            ));
        }
        assert!(matches!(
            classify(error(100, 0)),
            ApiError::Api { code: 100, .. }
        ));
    }

    #[test]
    fn suggested_wait_capped() {
        for (minutes, expected) in [
            (17, Duration::from_secs(17 * 60)),
            (2 * 24 * 60, MAX_THROTTLE_WAIT),
            (u64::MAX, MAX_THROTTLE_WAIT),
        ] {
            let body = format!(
                r#"{{"error":{{"code":80002,"estimated_time_to_regain_access":{minutes}}}}}"#
            );
            let error =
                decode::<Refreshed>(reqwest::StatusCode::FORBIDDEN, body.as_bytes()).unwrap_err();
            let ApiError::Throttled { retry_after, .. } = error else {
                panic!("{minutes} minutes: not classified as throttling: {error}");
            };
            assert_eq!(retry_after, expected, "{minutes} minutes");
        }
    }

    #[test]
    fn path_segment_encoded() {
        assert_eq!(encode("17900000000000001"), "17900000000000001");
        assert_eq!(encode("../me?x"), "..%2Fme%3Fx");
    }
}
