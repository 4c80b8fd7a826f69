//! CreateCluster, DeleteCluster, ListClusters and DescribeClusters.

use serde::Deserialize;
use serde_json::{Value, json};

use super::shapes::{cluster_json, missing_failure};
use super::{PageRequest, active_cluster, check_describe_count, page, parse_input};
use crate::protocol::{AwsError, code};
use crate::state::{ClusterStatus, State};

/// Largest cluster name length ECS accepts.
const MAX_CLUSTER_NAME_LEN: usize = 255;

/// Checks the ECS rule for cluster names: 1 to 255 ASCII letters, digits,
/// hyphens and underscores.
pub fn validate_cluster_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if name.is_empty() || name.len() > MAX_CLUSTER_NAME_LEN || !valid_chars {
        return Err(format!(
            "invalid cluster name {name:?}: use 1 to {MAX_CLUSTER_NAME_LEN} letters, digits, \
             hyphens and underscores"
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateClusterInput {
    cluster_name: Option<String>,
}

/// Creates a cluster. Creating an existing active cluster returns it
/// unchanged, as ECS does.
pub fn create_cluster(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: CreateClusterInput = parse_input(input)?;
    let name = input.cluster_name.unwrap_or_else(|| "default".to_owned());
    validate_cluster_name(&name).map_err(AwsError::invalid_parameter)?;

    if let Ok(cluster) = active_cluster(state, Some(&name)) {
        return Ok(json!({ "cluster": cluster_json(cluster) }));
    }
    let seq = state.insert_cluster(&name);
    tracing::info!(cluster = %name, "created cluster");
    Ok(json!({ "cluster": cluster_json(&state.clusters[&seq]) }))
}

#[derive(Deserialize)]
struct DeleteClusterInput {
    cluster: String,
}

/// Marks a cluster INACTIVE. It stays visible to DescribeClusters but
/// leaves ListClusters, as in ECS.
pub fn delete_cluster(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DeleteClusterInput = parse_input(input)?;
    let cluster = super::active_cluster_mut(state, Some(&input.cluster))?;

    if cluster.listed_instances().next().is_some() {
        return Err(AwsError::new(
            code::CLUSTER_CONTAINS_INSTANCES,
            "The Cluster cannot be deleted while Container Instances are active or draining.",
        ));
    }
    if cluster.running_tasks() > 0 || cluster.pending_tasks() > 0 {
        return Err(AwsError::new(
            code::CLUSTER_CONTAINS_TASKS,
            "The Cluster cannot be deleted while Tasks are active.",
        ));
    }
    cluster.status = ClusterStatus::Inactive;
    tracing::info!(cluster = %cluster.name, "deleted cluster");
    Ok(json!({ "cluster": cluster_json(cluster) }))
}

/// Lists active cluster ARNs in creation order.
pub fn list_clusters(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let request: PageRequest = parse_input(input)?;
    let active = state
        .clusters
        .values()
        .filter(|cluster| cluster.status == ClusterStatus::Active)
        .map(|cluster| (cluster.seq, cluster.arn.clone()));
    let page = page(active, &request, "ListClusters")?;

    let mut output = json!({ "clusterArns": page.items });
    if let Some(token) = page.next_token {
        output["nextToken"] = Value::String(token);
    }
    Ok(output)
}

#[derive(Deserialize)]
struct DescribeClustersInput {
    clusters: Option<Vec<String>>,
}

/// Describes clusters by name or ARN, `default` when none is given. Unknown
/// clusters are reported as MISSING failures with the ARN they would have.
pub fn describe_clusters(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DescribeClustersInput = parse_input(input)?;
    let mut references = input.clusters.unwrap_or_default();
    if references.is_empty() {
        references.push("default".to_owned());
    }
    check_describe_count("clusters", references.len())?;

    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for reference in &references {
        match state.find_cluster(reference) {
            Some(cluster) => clusters.push(cluster_json(cluster)),
            None if reference.starts_with("arn:") => failures.push(missing_failure(reference)),
            None => failures.push(missing_failure(&state.cluster_arn(reference))),
        }
    }
    Ok(json!({ "clusters": clusters, "failures": failures }))
}
