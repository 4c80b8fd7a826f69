//! Metrics every reconcile loop exports, labelled by loop name.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::metrics::{GaugeVec, register};

#[derive(Clone)]
pub struct LoopMetrics {
    /// Finished passes by loop and result (`success`, `error`).
    pub passes: IntCounterVec,
    pub duration: HistogramVec,
    pub last_success: GaugeVec,
    pub consecutive_failures: IntGaugeVec,
}

impl LoopMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let passes = IntCounterVec::new(
            Opts::new(
                "tend_reconcile_passes_total",
                "Reconcile passes finished, by loop and result (success or error).",
            ),
            &["loop", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tend_reconcile_duration_seconds",
                "Duration of reconcile passes, by loop.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            &["loop"],
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "tend_reconcile_last_success_timestamp_seconds",
                "Unix time at which the loop last finished a successful pass.",
            ),
            &["loop"],
        )?;
        let consecutive_failures = IntGaugeVec::new(
            Opts::new(
                "tend_reconcile_consecutive_failures",
                "Failed passes in a row since the loop's last success.",
            ),
            &["loop"],
        )?;
        Ok(Self {
            passes: register(registry, passes)?,
            duration: register(registry, duration)?,
            last_success: register(registry, last_success)?,
            consecutive_failures: register(registry, consecutive_failures)?,
        })
    }

    /// Creates every series of `name` at zero, so dashboards and alerts see
    /// the loop before its first pass ends.
    pub fn init_loop(&self, name: &str) {
        for result in ["success", "error"] {
            self.passes.with_label_values(&[name, result]);
        }
        self.duration.with_label_values(&[name]);
        self.consecutive_failures.with_label_values(&[name]).set(0);
    }
}
