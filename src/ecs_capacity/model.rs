//! Observed ECS state and the capacity figures derived from it.
//!
//! CPU is in ECS CPU units (1024 per vCPU) and memory in MiB, as ECS reports
//! them; metrics convert memory to bytes.

use serde::{Deserialize, Serialize};

/// One container instance as DescribeContainerInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub arn: String,
    pub ec2_instance_id: Option<String>,
    /// ECS status: ACTIVE, DRAINING, REGISTERING, DEREGISTERING, ...
    pub status: String,
    pub agent_connected: bool,
    /// Running plus pending tasks: both hold resources on the instance.
    pub active_tasks: i64,
    pub registered_cpu: i64,
    pub registered_memory: i64,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
    /// ECS's per-instance change counter: a higher version is newer state.
    pub version: i64,
}

impl Instance {
    /// Returns whether new tasks can be placed here: ACTIVE with a connected agent.
    /// DRAINING instances accept no new tasks and a disconnected agent
    /// cannot start any.
    pub fn schedulable(&self) -> bool {
        self.status == "ACTIVE" && self.agent_connected
    }

    /// Returns whether a task needing `cpu` units and `memory` MiB fits here now.
    pub fn fits(&self, cpu: i64, memory: i64) -> bool {
        self.schedulable() && self.remaining_cpu >= cpu && self.remaining_memory >= memory
    }
}

/// One cluster with every registered container instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub running_tasks: i64,
    pub pending_tasks: i64,
    /// Sorted by ARN, so snapshots compare and serialise deterministically.
    pub instances: Vec<Instance>,
}

/// Figures derived from a cluster's instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Sum of remaining CPU over schedulable instances.
    pub free_cpu: i64,
    pub free_memory: i64,
    /// The most CPU free on any single schedulable instance.
    pub largest_free_cpu: i64,
    /// The most memory free on any single schedulable instance.
    pub largest_free_memory: i64,
    /// The largest registered CPU of any schedulable instance: a task
    /// needing more can never fit in this cluster as it is.
    pub largest_registered_cpu: i64,
    pub largest_registered_memory: i64,
    pub instances_total: i64,
    pub schedulable_instances: i64,
    /// Instances whose agent is disconnected, whatever their status.
    pub disconnected_instances: i64,
    /// Instance counts by ECS status, sorted by status.
    pub instances_by_status: Vec<(String, i64)>,
    /// No container instances but running or pending tasks: Fargate only,
    /// so there is no EC2 capacity to track and the cluster is not "full".
    pub fargate_only: bool,
}

impl Cluster {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            instances_total: self.instances.len() as i64,
            fargate_only: self.instances.is_empty() && self.running_tasks + self.pending_tasks > 0,
            ..Summary::default()
        };
        let mut by_status = std::collections::BTreeMap::<&str, i64>::new();
        for instance in &self.instances {
            *by_status.entry(&instance.status).or_default() += 1;
            if !instance.agent_connected {
                summary.disconnected_instances += 1;
            }
            if !instance.schedulable() {
                continue;
            }
            summary.schedulable_instances += 1;
            summary.free_cpu += instance.remaining_cpu;
            summary.free_memory += instance.remaining_memory;
            summary.largest_free_cpu = summary.largest_free_cpu.max(instance.remaining_cpu);
            summary.largest_free_memory =
                summary.largest_free_memory.max(instance.remaining_memory);
            summary.largest_registered_cpu =
                summary.largest_registered_cpu.max(instance.registered_cpu);
            summary.largest_registered_memory = summary
                .largest_registered_memory
                .max(instance.registered_memory);
        }
        summary.instances_by_status = by_status
            .into_iter()
            .map(|(s, n)| (s.to_owned(), n))
            .collect();
        summary
    }

    /// Replaces one instance with a newer observation of it. Returns false,
    /// changing nothing, when the cache already holds that version or a newer
    /// one (events arrive duplicated and out of order) or when the instance
    /// is not in this cluster.
    pub fn apply_newer(&mut self, update: Instance) -> bool {
        match self.instances.iter_mut().find(|i| i.arn == update.arn) {
            Some(current) if update.version > current.version => {
                *current = update;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn instance(arn: &str, status: &str, connected: bool, cpu: i64, memory: i64) -> Instance {
        Instance {
            arn: arn.into(),
            ec2_instance_id: Some(format!("i-{arn}")),
            status: status.into(),
            agent_connected: connected,
            active_tasks: 0,
            registered_cpu: 4096,
            registered_memory: 8192,
            remaining_cpu: cpu,
            remaining_memory: memory,
            version: 1,
        }
    }

    fn cluster(instances: Vec<Instance>) -> Cluster {
        Cluster {
            arn: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
            name: "c".into(),
            status: "ACTIVE".into(),
            running_tasks: 0,
            pending_tasks: 0,
            instances,
        }
    }

    #[test]
    fn draining_and_disconnected_not_free() {
        let summary = cluster(vec![
            instance("a", "ACTIVE", true, 1024, 2048),
            instance("b", "DRAINING", true, 4096, 4096),
            instance("c", "ACTIVE", false, 4096, 4096),
        ])
        .summary();
        assert_eq!(summary.free_memory, 2048);
        assert_eq!(summary.largest_free_memory, 2048);
        assert_eq!(summary.schedulable_instances, 1);
        assert_eq!(summary.disconnected_instances, 1);
        assert_eq!(
            summary.instances_by_status,
            [("ACTIVE".into(), 2), ("DRAINING".into(), 1)]
        );
    }

    #[test]
    fn fragmented_memory_does_not_fit() {
        let c = cluster(
            (0..5)
                .map(|i| instance(&i.to_string(), "ACTIVE", true, 1024, 100))
                .collect(),
        );
        assert_eq!(c.summary().free_memory, 500);
        assert!(!c.instances.iter().any(|i| i.fits(0, 200)));
    }

    #[test]
    fn fargate_only_needs_tasks_and_no_instances() {
        let mut c = cluster(Vec::new());
        assert!(!c.summary().fargate_only);
        c.running_tasks = 3;
        assert!(c.summary().fargate_only);
    }

    #[test]
    fn older_version_never_overwrites() {
        let mut c = cluster(vec![instance("a", "ACTIVE", true, 1024, 512)]);
        c.instances[0].version = 5;
        let mut stale = instance("a", "ACTIVE", true, 1024, 256);
        stale.version = 4;
        assert!(!c.apply_newer(stale.clone()));
        stale.version = 5;
        assert!(!c.apply_newer(stale.clone()));
        stale.version = 6;
        assert!(c.apply_newer(stale));
        assert_eq!(c.instances[0].remaining_memory, 256);
    }
}
