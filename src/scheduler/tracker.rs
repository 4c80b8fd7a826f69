//! Follows launched tasks until RUNNING or STOPPED, for launch latency,
//! tasks stuck before RUNNING, and tasks that stopped before running.
//! The list lives in memory: after a restart the metrics miss the tasks
//! launched before it, and nothing else depends on them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::DisplayErrorContext;
use tracing::{debug, warn};

use super::metrics::SchedulerMetrics;

/// Bound on followed tasks; the oldest are dropped beyond it.
const MAX_TRACKED: usize = 10_000;
/// DescribeTasks accepts at most 100 tasks per call.
const DESCRIBE_CHUNK: usize = 100;

struct Tracked {
    cluster_arn: String,
    accepted_at: Instant,
}

pub struct Tracker {
    tasks: Mutex<BTreeMap<String, Tracked>>,
    stuck_after: Duration,
}

impl Tracker {
    pub fn new(stuck_after: Duration) -> Self {
        Self {
            tasks: Mutex::new(BTreeMap::new()),
            stuck_after,
        }
    }

    pub fn follow(&self, cluster_arn: &str, task_arns: &[String]) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for arn in task_arns {
            tasks.insert(
                arn.clone(),
                Tracked {
                    cluster_arn: cluster_arn.to_owned(),
                    accepted_at: Instant::now(),
                },
            );
        }
        while tasks.len() > MAX_TRACKED {
            let oldest = tasks
                .iter()
                .min_by_key(|(_, t)| t.accepted_at)
                .map(|(arn, _)| arn.clone());
            if let Some(arn) = oldest {
                tasks.remove(&arn);
            }
        }
    }

    /// Reads the state of every followed task and updates the metrics.
    pub async fn poll(&self, client: &Client, metrics: &SchedulerMetrics) {
        let by_cluster: BTreeMap<String, Vec<String>> = {
            let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (arn, tracked) in tasks.iter() {
                grouped
                    .entry(tracked.cluster_arn.clone())
                    .or_default()
                    .push(arn.clone());
            }
            grouped
        };
        for (cluster, arns) in by_cluster {
            for chunk in arns.chunks(DESCRIBE_CHUNK) {
                match client
                    .describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                {
                    Ok(reply) => self.record(&reply, metrics),
                    Err(error) => {
                        debug!(error = %DisplayErrorContext(&error), "DescribeTasks failed; retrying next pass")
                    }
                }
            }
        }
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let stuck = tasks
            .values()
            .filter(|t| t.accepted_at.elapsed() > self.stuck_after)
            .count();
        metrics.stuck.set(stuck as i64);
    }

    fn record(
        &self,
        reply: &aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput,
        metrics: &SchedulerMetrics,
    ) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for task in reply.tasks() {
            let Some(arn) = task.task_arn() else { continue };
            let status = task.last_status().unwrap_or_default();
            match status {
                "RUNNING" => {
                    if let Some(tracked) = tasks.remove(arn) {
                        metrics
                            .launch_latency
                            .observe(tracked.accepted_at.elapsed().as_secs_f64());
                    }
                }
                "STOPPED" | "DEPROVISIONING" | "DELETED" if tasks.remove(arn).is_some() => {
                    metrics.stopped_before_running.inc();
                    warn!(
                        task = arn,
                        reason = task.stopped_reason().unwrap_or_default(),
                        "task stopped before reaching RUNNING"
                    );
                }
                _ => {}
            }
        }
        // Tasks ECS no longer knows cannot be followed further.
        for failure in reply.failures() {
            if let Some(arn) = failure.arn() {
                tasks.remove(arn);
            }
        }
    }
}
