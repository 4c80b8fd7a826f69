//! Reads clusters and container instances from the ECS API with the fewest
//! calls: list calls page at 100 and describe calls take at most 100 ARNs,
//! so a refresh costs ceil(C/100) ListClusters pages (none when clusters are
//! configured), ceil(C/100) DescribeClusters calls and, per cluster with
//! I > 0 instances, ceil(I/100) list pages plus ceil(I/100) describe calls.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::operation::describe_clusters::DescribeClustersError;
use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesError;
use aws_sdk_ecs::operation::list_clusters::ListClustersError;
use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesError;
use aws_sdk_ecs::types::{ContainerInstance, Resource};

use super::model::{Cluster, Instance};

/// Most ARNs one describe call accepts and most items one list page returns.
const PAGE: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("ECS ListClusters failed")]
    ListClustersFailed(#[source] Box<SdkError<ListClustersError>>),
    #[error("ECS DescribeClusters failed")]
    DescribeClustersFailed(#[source] Box<SdkError<DescribeClustersError>>),
    #[error("ECS ListContainerInstances failed for cluster {cluster}")]
    ListInstancesFailed {
        cluster: String,
        #[source]
        source: Box<SdkError<ListContainerInstancesError>>,
    },
    #[error("ECS DescribeContainerInstances failed for cluster {cluster}")]
    DescribeInstancesFailed {
        cluster: String,
        #[source]
        source: Box<SdkError<DescribeContainerInstancesError>>,
    },
}

/// A cluster as DescribeClusters reports it, before its instances are read.
#[derive(Debug, Clone)]
pub struct ClusterHeader {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub running_tasks: i64,
    pub pending_tasks: i64,
    pub registered_instances: i64,
}

/// Result of DescribeClusters over the tracked clusters.
#[derive(Debug, Default)]
pub struct ClusterList {
    pub clusters: Vec<ClusterHeader>,
    /// Configured names or ARNs that ECS reported as MISSING.
    pub missing: Vec<String>,
}

#[derive(Clone)]
pub struct Observer {
    client: Client,
    /// Cluster names or ARNs to track; empty tracks every cluster.
    configured: Vec<String>,
}

impl Observer {
    pub fn new(client: Client, configured: Vec<String>) -> Self {
        Self { client, configured }
    }

    /// Lists and describes every tracked cluster.
    pub async fn clusters(&self) -> Result<ClusterList, ObserveError> {
        let identifiers = if self.configured.is_empty() {
            self.list_cluster_arns().await?
        } else {
            self.configured.clone()
        };
        let mut list = ClusterList::default();
        for chunk in identifiers.chunks(PAGE) {
            let reply = self
                .client
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|error| ObserveError::DescribeClustersFailed(Box::new(error)))?;
            for cluster in reply.clusters() {
                list.clusters.push(ClusterHeader {
                    arn: cluster.cluster_arn().unwrap_or_default().to_owned(),
                    name: cluster.cluster_name().unwrap_or_default().to_owned(),
                    status: cluster.status().unwrap_or("UNKNOWN").to_owned(),
                    running_tasks: cluster.running_tasks_count().into(),
                    pending_tasks: cluster.pending_tasks_count().into(),
                    registered_instances: cluster.registered_container_instances_count().into(),
                });
            }
            list.missing.extend(
                reply
                    .failures()
                    .iter()
                    .filter_map(|f| f.arn().map(str::to_owned)),
            );
        }
        // A deleted cluster is still described for a while with status INACTIVE.
        list.clusters
            .retain(|c| !c.arn.is_empty() && c.status != "INACTIVE");
        Ok(list)
    }

    async fn list_cluster_arns(&self) -> Result<Vec<String>, ObserveError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_clusters()
            .max_results(PAGE as i32)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| ObserveError::ListClustersFailed(Box::new(error)))?;
            arns.extend(page.cluster_arns().iter().cloned());
        }
        Ok(arns)
    }

    /// Reads every container instance of `header`'s cluster.
    pub async fn cluster(&self, header: &ClusterHeader) -> Result<Cluster, ObserveError> {
        let mut instances = Vec::new();
        // DescribeClusters already said there are none: skip both calls.
        if header.registered_instances > 0 {
            let arns = self.list_instance_arns(&header.arn).await?;
            for chunk in arns.chunks(PAGE) {
                let reply = self
                    .client
                    .describe_container_instances()
                    .cluster(&header.arn)
                    .set_container_instances(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|source| ObserveError::DescribeInstancesFailed {
                        cluster: header.arn.clone(),
                        source: Box::new(source),
                    })?;
                // Instances deregistered since the list come back as MISSING
                // failures and are rightly left out.
                instances.extend(
                    reply
                        .container_instances()
                        .iter()
                        .filter_map(convert_instance),
                );
            }
        }
        instances.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(Cluster {
            arn: header.arn.clone(),
            name: header.name.clone(),
            status: header.status.clone(),
            running_tasks: header.running_tasks,
            pending_tasks: header.pending_tasks,
            instances,
        })
    }

    async fn list_instance_arns(&self, cluster: &str) -> Result<Vec<String>, ObserveError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_container_instances()
            .cluster(cluster)
            .max_results(PAGE as i32)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|source| ObserveError::ListInstancesFailed {
                cluster: cluster.to_owned(),
                source: Box::new(source),
            })?;
            arns.extend(page.container_instance_arns().iter().cloned());
        }
        Ok(arns)
    }
}

pub fn convert_instance(instance: &ContainerInstance) -> Option<Instance> {
    Some(Instance {
        arn: instance.container_instance_arn()?.to_owned(),
        ec2_instance_id: instance.ec2_instance_id().map(str::to_owned),
        status: instance.status().unwrap_or("UNKNOWN").to_owned(),
        agent_connected: instance.agent_connected(),
        active_tasks: i64::from(instance.running_tasks_count())
            + i64::from(instance.pending_tasks_count()),
        registered_cpu: resource(instance.registered_resources(), "CPU"),
        registered_memory: resource(instance.registered_resources(), "MEMORY"),
        remaining_cpu: resource(instance.remaining_resources(), "CPU"),
        remaining_memory: resource(instance.remaining_resources(), "MEMORY"),
        version: instance.version(),
    })
}

/// Integer value of resource `name`; 0 when ECS omits it.
fn resource(resources: &[Resource], name: &str) -> i64 {
    resources
        .iter()
        .find(|r| r.name() == Some(name))
        .map(|r| i64::from(r.integer_value()))
        .unwrap_or(0)
}
