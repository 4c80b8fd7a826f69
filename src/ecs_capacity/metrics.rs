//! Per-cluster capacity metrics, updated after each cluster write.

use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::model::{Cluster, Summary};
use crate::metrics::register;

/// Statuses ECS reports for container instances; used to clear series of a
/// status that no instance has any more.
const INSTANCE_STATUSES: &[&str] = &[
    "ACTIVE",
    "DRAINING",
    "REGISTERING",
    "DEREGISTERING",
    "REGISTRATION_FAILED",
];

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Clone)]
pub struct EcsMetrics {
    free_cpu: GaugeVec,
    free_memory: GaugeVec,
    largest_free_cpu: GaugeVec,
    largest_free_memory: GaugeVec,
    instances: IntGaugeVec,
    schedulable: IntGaugeVec,
    fargate_only: IntGaugeVec,
    observed: GaugeVec,
    clusters: IntGauge,
    missing: IntGauge,
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    register(registry, GaugeVec::new(Opts::new(name, help), labels)?)
}

fn int_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

impl EcsMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let cluster = &["cluster"];
        Ok(Self {
            free_cpu: gauge(
                registry,
                "tend_ecs_cluster_free_cpu_units",
                "Remaining CPU units (1024 per vCPU) summed over schedulable container instances.",
                cluster,
            )?,
            free_memory: gauge(
                registry,
                "tend_ecs_cluster_free_memory_bytes",
                "Remaining memory summed over schedulable container instances.",
                cluster,
            )?,
            largest_free_cpu: gauge(
                registry,
                "tend_ecs_cluster_largest_free_cpu_units",
                "Most remaining CPU units on any single schedulable container instance.",
                cluster,
            )?,
            largest_free_memory: gauge(
                registry,
                "tend_ecs_cluster_largest_free_memory_bytes",
                "Most remaining memory on any single schedulable container instance.",
                cluster,
            )?,
            instances: int_gauge(
                registry,
                "tend_ecs_cluster_instances",
                "Registered container instances by ECS status.",
                &["cluster", "status"],
            )?,
            schedulable: int_gauge(
                registry,
                "tend_ecs_cluster_schedulable_instances",
                "Container instances that accept new tasks: ACTIVE with a connected agent.",
                cluster,
            )?,
            fargate_only: int_gauge(
                registry,
                "tend_ecs_cluster_fargate_only",
                "1 when the cluster runs tasks but has no container instances (no EC2 capacity to track).",
                cluster,
            )?,
            observed: gauge(
                registry,
                "tend_ecs_cluster_observed_timestamp_seconds",
                "Unix time of the ECS observation the cached entry holds; the cache age is time() minus this.",
                cluster,
            )?,
            clusters: register(
                registry,
                IntGauge::new("tend_ecs_clusters", "Clusters in the capacity cache.")?,
            )?,
            missing: register(
                registry,
                IntGauge::new(
                    "tend_ecs_missing_clusters",
                    "Configured clusters that ECS reports as missing.",
                )?,
            )?,
        })
    }

    pub fn record(&self, cluster: &Cluster, summary: &Summary, observed_unix: f64) {
        let name = cluster.name.as_str();
        let labels = &[name];
        self.free_cpu
            .with_label_values(labels)
            .set(summary.free_cpu as f64);
        self.free_memory
            .with_label_values(labels)
            .set(summary.free_memory as f64 * MIB);
        self.largest_free_cpu
            .with_label_values(labels)
            .set(summary.largest_free_cpu as f64);
        self.largest_free_memory
            .with_label_values(labels)
            .set(summary.largest_free_memory as f64 * MIB);
        self.schedulable
            .with_label_values(labels)
            .set(summary.schedulable_instances);
        self.fargate_only
            .with_label_values(labels)
            .set(i64::from(summary.fargate_only));
        self.observed.with_label_values(labels).set(observed_unix);
        for status in INSTANCE_STATUSES {
            let count = summary
                .instances_by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.instances.with_label_values(&[name, status]).set(count);
        }
    }

    /// Drops every series of a cluster that left the cache.
    pub fn forget(&self, name: &str) {
        let labels = &[name];
        for family in [
            &self.free_cpu,
            &self.free_memory,
            &self.largest_free_cpu,
            &self.largest_free_memory,
            &self.observed,
        ] {
            let _ = family.remove_label_values(labels);
        }
        let _ = self.schedulable.remove_label_values(labels);
        let _ = self.fargate_only.remove_label_values(labels);
        for status in INSTANCE_STATUSES {
            let _ = self.instances.remove_label_values(&[name, status]);
        }
    }

    pub fn set_totals(&self, clusters: usize, missing: usize) {
        self.clusters.set(clusters as i64);
        self.missing.set(missing as i64);
    }
}
