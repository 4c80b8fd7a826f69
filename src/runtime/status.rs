//! Shared record of each loop's state, read by `/status`, `/readyz` and `/healthz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// State of one loop as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoopStatus {
    /// `idle` between passes, `running` during one, `stopped` after shutdown.
    pub state: LoopState,
    /// Passes finished since start, successful or not.
    pub passes: u64,
    /// `success` or `error` for the last finished pass.
    pub last_result: Option<&'static str>,
    /// Error of the last failed pass, with its causes.
    pub last_error: Option<String>,
    #[serde(with = "rfc3339_option")]
    pub last_success_at: Option<SystemTime>,
    #[serde(with = "rfc3339_option")]
    pub next_run_at: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub last_duration_seconds: Option<f64>,
    /// What the last successful pass observed and did, as the loop reports it.
    pub summary: serde_json::Value,
    /// Monotonic start of the running pass, for wedge detection.
    #[serde(skip)]
    pub running_since: Option<Instant>,
    /// Longest a pass may run before `/healthz` calls the loop wedged.
    #[serde(skip)]
    pub pass_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopState {
    Idle,
    Running,
    Stopped,
}

impl LoopStatus {
    fn new(pass_timeout: Duration) -> Self {
        Self {
            state: LoopState::Idle,
            passes: 0,
            last_result: None,
            last_error: None,
            last_success_at: None,
            next_run_at: None,
            consecutive_failures: 0,
            last_duration_seconds: None,
            summary: serde_json::Value::Null,
            running_since: None,
            pass_timeout,
        }
    }

    /// Returns why the loop looks wedged, if it does: a pass running well past
    /// its timeout means the runner itself is stuck.
    pub fn wedged(&self, now: Instant) -> Option<String> {
        let since = self.running_since?;
        let limit = self.pass_timeout + Duration::from_secs(30);
        let running = now.saturating_duration_since(since);
        (running > limit).then(|| {
            format!(
                "pass running for {}s (limit {}s)",
                running.as_secs(),
                limit.as_secs()
            )
        })
    }
}

/// Every enabled loop's status, shared between the runners and the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    loops: Arc<Mutex<BTreeMap<&'static str, LoopStatus>>>,
}

impl StatusBoard {
    pub fn register(&self, name: &'static str, pass_timeout: Duration) {
        self.lock().insert(name, LoopStatus::new(pass_timeout));
    }

    /// Applies `change` to the status of loop `name`.
    pub fn update(&self, name: &'static str, change: impl FnOnce(&mut LoopStatus)) {
        if let Some(status) = self.lock().get_mut(name) {
            change(status);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, LoopStatus> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, LoopStatus>> {
        // A panic while holding this lock leaves plain data behind, still
        // worth serving, so a poisoned lock is used as is.
        self.loops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

mod rfc3339_option {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        value: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(time) => {
                serializer.serialize_str(&humantime::format_rfc3339_millis(*time).to_string())
            }
            None => serializer.serialize_none(),
        }
    }
}
