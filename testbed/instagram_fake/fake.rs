//! The whole fake behind the server lock: the account, its media, the
//! valid tokens, queued faults, call counts, usage and the URL signer.

use std::collections::{BTreeMap, HashSet};

use crate::cdn::Signer;
use crate::media::Library;
use crate::tokens::Tokens;
use crate::usage::Usage;

/// The Instagram professional account that `/me` describes.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub account_type: String,
}

impl Default for Account {
    fn default() -> Self {
        Self {
            id: "17841400000000000".to_owned(),
            username: "tend.fake".to_owned(),
            account_type: "BUSINESS".to_owned(),
        }
    }
}

/// A queued error that the next Graph calls return.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: i64,
    pub remaining: u32,
    /// Minutes reported in `estimated_time_to_regain_access`.
    pub regain_minutes: u32,
}

#[derive(Debug)]
pub struct Fake {
    /// Base of every URL the fake returns, such as `http://127.0.0.1:41234`.
    pub base_url: String,
    /// How long signed CDN URLs stay valid, in seconds.
    pub url_ttl_seconds: i64,
    pub account: Account,
    pub library: Library,
    pub tokens: Tokens,
    pub fault: Option<Fault>,
    /// Calls per endpoint kind (`me`, `me/media`, `media`,
    /// `refresh_access_token`, `cdn`), failed ones included.
    pub calls: BTreeMap<String, u64>,
    pub usage: Usage,
    pub signer: Signer,
}

impl Fake {
    pub fn new(base_url: String, url_ttl_seconds: i64, calls_per_hour: u32) -> Self {
        Self {
            base_url,
            url_ttl_seconds,
            account: Account::default(),
            library: Library::default(),
            tokens: Tokens::default(),
            fault: None,
            calls: BTreeMap::new(),
            usage: Usage::new(calls_per_hour),
            signer: Signer::new(),
        }
    }

    /// Consumes one use of the queued fault, if any.
    pub fn take_fault(&mut self) -> Option<Fault> {
        let fault = self.fault.as_mut()?;
        fault.remaining -= 1;
        let used = fault.clone();
        if fault.remaining == 0 {
            self.fault = None;
        }
        Some(used)
    }

    /// Returns the ids a new post may not use: the account id alone, for a
    /// request that replaces every post.
    pub fn reserved_ids(&self) -> HashSet<String> {
        HashSet::from([self.account.id.clone()])
    }
}
