//! Scheduler metrics. `queue` labels carry the queue name, which is also
//! the priority; `reason` labels take a small fixed set of values.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::metrics::register;

#[derive(Clone)]
pub struct SchedulerMetrics {
    pub queue_depth: IntGaugeVec,
    pub held: IntGaugeVec,
    pub placements: IntCounterVec,
    pub rejections: IntCounterVec,
    pub launch_failures: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub wait: HistogramVec,
    pub inversions: IntCounter,
    pub launch_latency: Histogram,
    pub stuck: IntGauge,
    pub stopped_before_running: IntCounter,
}

/// Wait buckets from a second to an hour: requests wait for capacity.
const WAIT_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

impl SchedulerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let queue = &["queue"];
        let reason = &["reason"];
        Ok(Self {
            queue_depth: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tend_scheduler_queue_depth",
                        "Approximate visible messages in each priority queue (SQS ApproximateNumberOfMessages).",
                    ),
                    queue,
                )?,
            )?,
            held: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tend_scheduler_held_requests",
                        "Received requests waiting for capacity, kept invisible in SQS, per queue.",
                    ),
                    queue,
                )?,
            )?,
            placements: register(
                registry,
                IntCounterVec::new(
                    Opts::new("tend_scheduler_placements_total", "Tasks ECS accepted, per queue."),
                    queue,
                )?,
            )?,
            rejections: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "tend_scheduler_rejections_total",
                        "RunTask calls ECS rejected for lack of capacity, by ECS reason (RESOURCE:CPU, RESOURCE:MEMORY, AGENT).",
                    ),
                    reason,
                )?,
            )?,
            launch_failures: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "tend_scheduler_launch_failures_total",
                        "Launches that failed for a reason other than capacity: transient (retried after backoff) or rejected (the request is wrong).",
                    ),
                    reason,
                )?,
            )?,
            dead_lettered: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "tend_scheduler_dead_lettered_total",
                        "Requests moved to the dead-letter queue, by reason (invalid_request, cannot_fit, unknown_cluster, launch_failed).",
                    ),
                    reason,
                )?,
            )?,
            wait: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tend_scheduler_wait_seconds",
                        "Time from enqueue (SQS SentTimestamp) to ECS accepting the task, per queue.",
                    )
                    .buckets(WAIT_BUCKETS.to_vec()),
                    queue,
                )?,
            )?,
            inversions: register(
                registry,
                IntCounter::new(
                    "tend_scheduler_priority_inversions_total",
                    "Lower-priority starts while a higher-priority request that fit was waiting; must stay 0.",
                )?,
            )?,
            launch_latency: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "tend_scheduler_launch_latency_seconds",
                        "Time from ECS accepting a task to the task reaching RUNNING.",
                    )
                    .buckets(WAIT_BUCKETS.to_vec()),
                )?,
            )?,
            stuck: register(
                registry,
                IntGauge::new(
                    "tend_scheduler_tasks_stuck_provisioning",
                    "Launched tasks still not RUNNING after scheduler.stuck_after.",
                )?,
            )?,
            stopped_before_running: register(
                registry,
                IntCounter::new(
                    "tend_scheduler_tasks_stopped_before_running_total",
                    "Launched tasks that stopped without ever reaching RUNNING.",
                )?,
            )?,
        })
    }

    /// Creates the per-queue series, and the counters of every known
    /// reason, at zero, so `increase()` sees the first event.
    pub fn init_queues(&self, names: &[String]) {
        for reason in ["RESOURCE:CPU", "RESOURCE:MEMORY", "AGENT"] {
            self.rejections.with_label_values(&[reason]);
        }
        for reason in ["transient", "rejected"] {
            self.launch_failures.with_label_values(&[reason]);
        }
        for reason in [
            "invalid_request",
            "cannot_fit",
            "unknown_cluster",
            "launch_failed",
        ] {
            self.dead_lettered.with_label_values(&[reason]);
        }
        for name in names {
            self.queue_depth.with_label_values(&[name]).set(0);
            self.held.with_label_values(&[name]).set(0);
            self.placements.with_label_values(&[name]);
            self.wait.with_label_values(&[name]);
        }
    }
}
