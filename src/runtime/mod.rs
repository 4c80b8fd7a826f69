//! Generic reconcile runtime: runs each loop on its own schedule, applies the
//! error policy, records status and metrics, and stops on shutdown. It knows
//! nothing of AWS, Redis or any loop's domain.
//!
//! # Contract with reconcilers
//! A pass observes the world and acts, then returns an [`Outcome`]: done (run
//! again after the loop's interval, with jitter) or requeue after a delay the
//! reconciler chooses. A pass never sleeps to retry: it returns an error and
//! the runtime's exponential backoff with jitter, capped, decides when the
//! next pass runs. Each pass is bounded by a timeout.

mod lease;
mod metrics;
mod runner;
mod status;

use std::error::Error;
use std::future::Future;
use std::time::Duration;

pub use lease::{Lease, Leased, LeasedError};
pub use metrics::LoopMetrics;
pub use runner::{PassFailure, Runner, Schedule};
pub use status::{LoopState, LoopStatus, StatusBoard};
pub use tokio_util::sync::CancellationToken;

/// Result of a finished pass: when the runtime runs the next one.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Run the next pass after this delay instead of the loop's interval.
    pub requeue_after: Option<Duration>,
    /// What the pass observed and did, shown in `/status` and in
    /// `tend reconcile --once`.
    pub summary: serde_json::Value,
}

impl Outcome {
    /// Creates the outcome of a pass that converged: the next one runs after
    /// the loop's interval.
    pub fn done(summary: serde_json::Value) -> Self {
        Self {
            requeue_after: None,
            summary,
        }
    }
}

/// One loop's observe-diff-act pass.
pub trait Reconciler: Send + Sync + 'static {
    type Error: Error + Send + Sync + 'static;

    /// Loop name used in metrics labels, logs and `/status`.
    fn name(&self) -> &'static str;

    /// Runs one pass. `shutdown` is cancelled on SIGTERM: a long pass may
    /// stop early at a point where stopping loses nothing.
    fn reconcile(
        &self,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// Hands back work the loop holds between passes, once the loop has
    /// stopped for good (after SIGTERM, or after a single pass).
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Formats an error with its chain of causes, for status and logs.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
