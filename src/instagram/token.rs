//! Long-lived token refresh. A refreshed token is stored in Redis
//! (`P:instagram:token`) together with a hash of the configured token it
//! descends from, so the next start uses it, and a newly configured token
//! replaces it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::Gauge;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::api::{ApiError, InstagramApi};
use crate::config::Secret;
use crate::redis_client::Redis;

/// Instagram refuses to refresh a token younger than 24 hours.
const MIN_AGE: Duration = Duration::from_secs(24 * 3600);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct TokenStore {
    redis: Redis,
    api: InstagramApi,
    /// Hash of the configured token, to tell whether the stored one descends from it.
    origin: String,
    /// Refresh once less than this is left.
    refresh_before: Duration,
    expiry: Gauge,
}

impl TokenStore {
    pub fn new(
        redis: Redis,
        api: InstagramApi,
        configured: &Secret,
        refresh_before: Duration,
        expiry: Gauge,
    ) -> Self {
        let origin = hex::encode(&Sha256::digest(configured.expose().as_bytes())[..8]);
        Self {
            redis,
            api,
            origin,
            refresh_before,
            expiry,
        }
    }

    fn key(&self) -> String {
        format!("{}:instagram:token", self.redis.prefix())
    }

    /// Switches to the stored token, if one descends from the configured one,
    /// and refreshes it when it is older than a day and near its expiry (or
    /// its expiry is unknown and a day has passed since the last attempt).
    pub async fn ensure_fresh(&self) -> Result<(), ApiError> {
        let stored: Vec<(String, String)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.key()))
            .await
            .unwrap_or_default();
        let stored: std::collections::HashMap<String, String> = stored.into_iter().collect();
        let number = |field: &str| stored.get(field).and_then(|v| v.parse::<u64>().ok());
        let ours = stored.get("origin") == Some(&self.origin);
        if ours && let Some(token) = stored.get("token") {
            self.api.set_token(Secret::new(token.clone()));
        }
        let now = now_secs();
        let (refreshed_at, expires_at, attempted_at) = if ours {
            (
                number("refreshed_at"),
                number("expires_at"),
                number("attempted_at"),
            )
        } else {
            (None, None, None)
        };
        if let Some(expires_at) = expires_at {
            self.expiry.set(expires_at as f64);
        }
        let old_enough = refreshed_at.is_none_or(|at| now.saturating_sub(at) >= MIN_AGE.as_secs());
        let near_expiry =
            expires_at.is_none_or(|at| at.saturating_sub(now) < self.refresh_before.as_secs());
        let not_tried_today =
            attempted_at.is_none_or(|at| now.saturating_sub(at) >= MIN_AGE.as_secs());
        if !(old_enough && near_expiry && not_tried_today) {
            return Ok(());
        }
        let _: Result<(), _> = self
            .redis
            .query(
                redis::cmd("HSET")
                    .arg(self.key())
                    .arg("origin")
                    .arg(&self.origin)
                    .arg("attempted_at")
                    .arg(now),
            )
            .await;
        match self.api.refresh_token().await {
            Ok(refreshed) => {
                let expires_at = now + refreshed.expires_in;
                let _: () = self
                    .redis
                    .query(
                        redis::cmd("HSET")
                            .arg(self.key())
                            .arg("token")
                            .arg(&refreshed.access_token)
                            .arg("refreshed_at")
                            .arg(now)
                            .arg("expires_at")
                            .arg(expires_at),
                    )
                    .await
                    .unwrap_or(());
                self.api.set_token(Secret::new(refreshed.access_token));
                self.expiry.set(expires_at as f64);
                info!(
                    expires_in_days = refreshed.expires_in / 86_400,
                    "Instagram access token refreshed"
                );
                Ok(())
            }
            Err(ApiError::TokenInvalid { .. })
            | Err(ApiError::Transport(_))
            | Err(ApiError::Throttled { .. }) => Ok(()),
            Err(error) => {
                // Too young a token or a refresh disabled by Meta: keep using it.
                warn!(%error, "refreshing the Instagram access token failed; retrying in a day");
                Ok(())
            }
        }
    }
}
