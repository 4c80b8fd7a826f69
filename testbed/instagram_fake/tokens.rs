//! Long-lived Instagram User access tokens: which are valid, when each was
//! issued and when it expires, and refreshing them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::graph_error::GraphError;

/// Lifetime of a long-lived token: 60 days, per Meta's refresh_access_token
/// reference.
pub const TOKEN_LIFETIME_SECONDS: i64 = 60 * 86_400;

/// Minimum age of a token that may be refreshed: 24 hours.
const MIN_REFRESH_AGE_SECONDS: i64 = 86_400;

/// Issue and expiry times of one token, in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct TokenTimes {
    pub created_at: i64,
    pub expires_at: i64,
}

/// A token as `GET /_fake/token` lists it.
#[derive(Debug, Serialize)]
pub struct TokenListing {
    pub token: String,
    pub created_at: String,
    pub expires_at: String,
}

/// A refreshed token and its remaining lifetime in seconds.
#[derive(Debug)]
pub struct Refreshed {
    pub token: String,
    pub expires_in: i64,
}

/// The tokens the Graph API accepts. Every other token is invalid.
#[derive(Debug, Default)]
pub struct Tokens {
    valid: BTreeMap<String, TokenTimes>,
}

impl Tokens {
    /// Makes `token` the only valid token.
    pub fn replace(&mut self, token: &str, times: TokenTimes) {
        self.valid.clear();
        self.valid.insert(token.to_owned(), times);
    }

    /// Makes `token` invalid. Returns false if it was not valid.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.valid.remove(token).is_some()
    }

    pub fn listing(&self) -> Vec<TokenListing> {
        let listing = self.valid.iter().map(|(token, times)| TokenListing {
            token: token.clone(),
            created_at: crate::time::format(times.created_at),
            expires_at: crate::time::format(times.expires_at),
        });
        listing.collect()
    }

    /// Checks the `access_token` parameter of a request at time `now`.
    pub fn check(&self, token: Option<&str>, now: i64) -> Result<TokenTimes, GraphError> {
        let token = token.filter(|token| !token.is_empty());
        let token = token.ok_or_else(GraphError::missing_token)?;
        let times = *self
            .valid
            .get(token)
            .ok_or_else(GraphError::invalid_token)?;
        if times.expires_at <= now {
            return Err(GraphError::expired_token(times.expires_at, now));
        }
        Ok(times)
    }

    /// Issues a new token valid for 60 days if `token` is valid and at
    /// least 24 hours old. The old token stays valid until an admin call
    /// revokes or replaces it.
    pub fn refresh(&mut self, token: Option<&str>, now: i64) -> Result<Refreshed, GraphError> {
        let times = self.check(token, now)?;
        if now - times.created_at < MIN_REFRESH_AGE_SECONDS {
            return Err(GraphError::token_too_young());
        }
        let new_token = new_token();
        let expires_at = now + TOKEN_LIFETIME_SECONDS;
        let new_times = TokenTimes {
            created_at: now,
            expires_at,
        };
        self.valid.insert(new_token.clone(), new_times);
        Ok(Refreshed {
            token: new_token,
            expires_in: expires_at - now,
        })
    }
}

/// Returns a random token that starts with `IGAA`, as tokens of the
/// Instagram API with Instagram Login do.
fn new_token() -> String {
    let random: String = (0..48).map(|_| fastrand::alphanumeric()).collect();
    format!("IGAA{random}")
}
