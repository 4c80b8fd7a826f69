//! Long-lived token refresh. A refreshed token is stored in Redis
//! (`P:instagram:token`) together with a hash of the configured token it
//! descends from, so the next start uses it, and a newly configured token
//! replaces it.

use std::sync::atomic::{AtomicBool, Ordering};
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
    configured: Secret,
    /// Whether the API client currently uses the stored (refreshed) token.
    using_stored: AtomicBool,
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
            configured: configured.clone(),
            using_stored: AtomicBool::new(false),
        }
    }

    /// Drops a stored token that Instagram rejected and goes back to the
    /// configured one. Returns false when the configured token was in use
    /// already, so there is nothing to fall back to.
    pub async fn fall_back(&self) -> bool {
        if !self.using_stored.swap(false, Ordering::Relaxed) {
            return false;
        }
        warn!("Instagram rejected the stored refreshed token; using the configured token again");
        let _: Result<(), _> = self.redis.query(redis::cmd("DEL").arg(self.key())).await;
        self.api.set_token(self.configured.clone());
        true
    }

    fn key(&self) -> String {
        format!("{}:instagram:token", self.redis.prefix())
    }

    /// Reads the stored token state. State descending from another
    /// configured token is deleted: the configured token was replaced.
    async fn load(&self) -> Stored {
        let fields: Vec<(String, String)> = match self
            .redis
            .query(redis::cmd("HGETALL").arg(self.key()))
            .await
        {
            Ok(fields) => fields,
            Err(error) => {
                warn!(%error, "reading the stored Instagram token failed; using the configured one");
                return Stored::default();
            }
        };
        let fields: std::collections::HashMap<String, String> = fields.into_iter().collect();
        if fields
            .get("origin")
            .is_some_and(|origin| *origin != self.origin)
        {
            let _: Result<(), _> = self.redis.query(redis::cmd("DEL").arg(self.key())).await;
            return Stored::default();
        }
        let number = |field: &str| fields.get(field).and_then(|v| v.parse::<u64>().ok());
        Stored {
            token: fields.get("token").cloned(),
            refreshed_at: number("refreshed_at"),
            expires_at: number("expires_at"),
            attempted_at: number("attempted_at"),
        }
    }

    /// Switches to the stored token, if one descends from the configured one,
    /// and refreshes it when it is older than a day and near its expiry (or
    /// its expiry is unknown), at most one attempt a day.
    pub async fn ensure_fresh(&self) -> Result<(), ApiError> {
        let stored = self.load().await;
        if let Some(token) = &stored.token {
            self.api.set_token(Secret::new(token.clone()));
            self.using_stored.store(true, Ordering::Relaxed);
        }
        if let Some(expires_at) = stored.expires_at {
            self.expiry.set(expires_at as f64);
        }
        let now = now_secs();
        let day = MIN_AGE.as_secs();
        let old_enough = stored
            .refreshed_at
            .is_none_or(|at| now.saturating_sub(at) >= day);
        let near_expiry = stored
            .expires_at
            .is_none_or(|at| at.saturating_sub(now) < self.refresh_before.as_secs());
        let not_tried_today = stored
            .attempted_at
            .is_none_or(|at| now.saturating_sub(at) >= day);
        if old_enough && near_expiry && not_tried_today {
            self.refresh(now).await;
        }
        Ok(())
    }

    async fn refresh(&self, now: u64) {
        let attempt = redis::cmd("HSET")
            .arg(self.key())
            .arg("origin")
            .arg(&self.origin)
            .arg("attempted_at")
            .arg(now)
            .clone();
        let _: Result<(), _> = self.redis.query(&attempt).await;
        let refreshed = match self.api.refresh_token().await {
            Ok(refreshed) => refreshed,
            Err(error) => {
                // A token younger than a day, throttling or a network failure:
                // keep using the current token and try again tomorrow.
                warn!(%error, "refreshing the Instagram access token failed; retrying in a day");
                return;
            }
        };
        let expires_at = now + refreshed.expires_in;
        let store = redis::cmd("HSET")
            .arg(self.key())
            .arg("token")
            .arg(&refreshed.access_token)
            .arg("refreshed_at")
            .arg(now)
            .arg("expires_at")
            .arg(expires_at)
            .clone();
        if let Err(error) = self.redis.query::<()>(&store).await {
            warn!(%error, "storing the refreshed Instagram token failed; the next start uses the configured one");
        }
        self.api.set_token(Secret::new(refreshed.access_token));
        self.using_stored.store(true, Ordering::Relaxed);
        self.expiry.set(expires_at as f64);
        info!(
            expires_in_days = refreshed.expires_in / 86_400,
            "Instagram access token refreshed"
        );
    }
}

/// Token state kept in Redis.
#[derive(Debug, Default)]
struct Stored {
    token: Option<String>,
    refreshed_at: Option<u64>,
    expires_at: Option<u64>,
    attempted_at: Option<u64>,
}
