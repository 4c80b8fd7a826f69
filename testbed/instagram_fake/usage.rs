//! Rate limit usage that the Graph API reports in the `X-App-Usage` and
//! `X-Business-Use-Case-Usage` headers, as percentages of an hourly call
//! budget. The fake only reports usage: it never throttles by itself, and
//! throttling errors come from faults that `POST /_fake/faults` queues.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Length of the rolling window Meta counts calls in: one hour.
const WINDOW_SECONDS: i64 = 3600;

/// Usage percentages, each from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentages {
    pub call_count: u32,
    pub total_cputime: u32,
    pub total_time: u32,
}

/// Graph calls of the last hour and the budget they are measured against.
#[derive(Debug)]
pub struct Usage {
    calls: VecDeque<i64>,
    calls_per_hour: u32,
    /// Percentages set by `POST /_fake/usage`, reported in place of the
    /// computed ones.
    pub fixed: Option<Percentages>,
}

impl Usage {
    pub fn new(calls_per_hour: u32) -> Self {
        Self {
            calls: VecDeque::new(),
            calls_per_hour: calls_per_hour.max(1),
            fixed: None,
        }
    }

    /// Records one Graph call at `now` and drops calls older than an hour.
    pub fn record(&mut self, now: i64) {
        self.calls.push_back(now);
        while self
            .calls
            .front()
            .is_some_and(|&call| call <= now - WINDOW_SECONDS)
        {
            self.calls.pop_front();
        }
    }

    /// Returns the usage to report now. `call_count` is the share of the
    /// hourly budget used. Time is not measured, so `total_time` and
    /// `total_cputime` are fixed fractions of it.
    pub fn current(&self) -> Percentages {
        if let Some(fixed) = self.fixed {
            return fixed;
        }
        let used = self.calls.len() as u64 * 100 / u64::from(self.calls_per_hour);
        let call_count = u32::try_from(used.min(100)).expect("at most 100");
        Percentages {
            call_count,
            total_cputime: call_count / 4,
            total_time: call_count / 2,
        }
    }
}

/// Returns the `X-App-Usage` header value, such as
/// `{"call_count":12,"total_cputime":3,"total_time":6}`.
pub fn app_usage_header(usage: Percentages) -> String {
    serde_json::to_string(&usage).expect("percentages serialize")
}

/// Returns the `X-Business-Use-Case-Usage` header value: usage keyed by the
/// Instagram account id, with `estimated_time_to_regain_access` in minutes.
pub fn business_usage_header(account_id: &str, usage: Percentages, regain_minutes: u32) -> String {
    // NOTE: Meta's rate limiting page puts Instagram Platform calls under
    // business use case limits and shows this header's layout, but whether
    // graph.instagram.com sends it and with which `type` value is not
    // confirmed. "instagram" is a guess.
    let entry = json!({
        "type": "instagram",
        "call_count": usage.call_count,
        "total_cputime": usage.total_cputime,
        "total_time": usage.total_time,
        "estimated_time_to_regain_access": regain_minutes,
    });
    json!({ account_id: [entry] }).to_string()
}
