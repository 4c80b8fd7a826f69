//! The `ecs-capacity` loop: keeps a Redis cache of every tracked ECS
//! cluster's container instances and free capacity.
//!
//! Desired state: Redis mirrors ECS. Each pass observes every tracked
//! cluster, writes each one atomically as soon as it is read, then deletes
//! clusters that ECS no longer reports. Writes are full snapshots, so a pass
//! is safe to repeat after a crash at any await.

pub mod cache;
pub mod events;
mod metrics;
pub mod model;
pub mod observe;
pub mod reader;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::SystemTime;

use futures_util::{StreamExt, stream};
use serde_json::json;
use tracing::{info, warn};

pub use cache::{CacheError, CachedCluster, CapacityCache, InstanceUpdate};
pub use metrics::EcsMetrics;
pub use model::{Cluster, Instance, Summary};
pub use observe::{ObserveError, Observer};

use crate::runtime::{CancellationToken, Outcome, Reconciler, error_chain};

pub const LOOP_NAME: &str = "ecs-capacity";

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("capacity cache update failed")]
    Cache(#[from] CacheError),
    #[error("{failed} of {total} clusters failed to refresh; first failure: {first}")]
    ClustersFailed {
        failed: usize,
        total: usize,
        first: String,
    },
}

pub struct CapacityReconciler {
    observer: Observer,
    cache: CapacityCache,
    metrics: EcsMetrics,
    concurrency: usize,
    /// Missing clusters reported by the previous pass, to warn only on change.
    last_missing: Mutex<Vec<String>>,
}

impl CapacityReconciler {
    pub fn new(
        observer: Observer,
        cache: CapacityCache,
        metrics: EcsMetrics,
        concurrency: usize,
    ) -> Self {
        Self {
            observer,
            cache,
            metrics,
            concurrency: concurrency.max(1),
            last_missing: Mutex::new(Vec::new()),
        }
    }

    /// Observes one cluster and writes it; returns its summary.
    async fn refresh(&self, header: &observe::ClusterHeader) -> Result<Summary, CapacityError> {
        let cluster = self.observer.cluster(header).await?;
        let observed_at = SystemTime::now();
        self.cache.write(&cluster, observed_at).await?;
        let summary = cluster.summary();
        let unix = observed_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.metrics.record(&cluster, &summary, unix.as_secs_f64());
        Ok(summary)
    }

    /// Owned-argument form of [`Self::refresh`], so the stream's futures
    /// borrow nothing but `self` (the borrow checker cannot prove a borrowed
    /// item lives long enough inside a `Send` future).
    async fn refresh_owned(
        &self,
        header: observe::ClusterHeader,
    ) -> (String, Result<Summary, CapacityError>) {
        let result = self.refresh(&header).await;
        (header.arn, result)
    }

    fn report_missing(&self, missing: &[String]) {
        let mut last = self.last_missing.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_slice() != missing {
            if !missing.is_empty() {
                warn!(clusters = ?missing, "configured ECS clusters not found; check ecs_capacity.clusters");
            }
            *last = missing.to_vec();
        }
    }

    async fn remove_stale(&self, live: &BTreeSet<&str>) -> Result<Vec<String>, CacheError> {
        let mut removed = Vec::new();
        for arn in self.cache.cluster_arns().await? {
            if live.contains(arn.as_str()) {
                continue;
            }
            self.cache.remove(&arn).await?;
            let name = arn
                .rsplit_once("cluster/")
                .map_or(arn.as_str(), |(_, name)| name);
            self.metrics.forget(name);
            info!(cluster = %arn, "cluster no longer in ECS; removed from the cache");
            removed.push(arn);
        }
        Ok(removed)
    }
}

impl Reconciler for CapacityReconciler {
    type Error = CapacityError;

    fn name(&self) -> &'static str {
        LOOP_NAME
    }

    async fn reconcile(&self, _shutdown: &CancellationToken) -> Result<Outcome, CapacityError> {
        let list = self.observer.clusters().await?;
        self.report_missing(&list.missing);

        let results: Vec<(String, Result<Summary, CapacityError>)> =
            stream::iter(list.clusters.clone())
                .map(|header| self.refresh_owned(header))
                .buffer_unordered(self.concurrency)
                .collect()
                .await;

        let live: BTreeSet<&str> = list.clusters.iter().map(|c| c.arn.as_str()).collect();
        let removed = self.remove_stale(&live).await?;
        self.metrics
            .set_totals(list.clusters.len(), list.missing.len());

        let (mut instances, mut schedulable, mut failures) = (0, 0, Vec::new());
        for (arn, result) in &results {
            match result {
                Ok(summary) => {
                    instances += summary.instances_total;
                    schedulable += summary.schedulable_instances;
                }
                Err(error) => failures.push(format!("{arn}: {}", error_chain(error))),
            }
        }
        if let Some(first) = failures.first() {
            return Err(CapacityError::ClustersFailed {
                failed: failures.len(),
                total: results.len(),
                first: first.clone(),
            });
        }
        Ok(Outcome::done(json!({
            "clusters": list.clusters.len(),
            "instances": instances,
            "schedulable_instances": schedulable,
            "missing_clusters": list.missing,
            "removed_clusters": removed,
        })))
    }
}
