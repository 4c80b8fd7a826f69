//! JSON shapes of the ECS `Cluster`, `ContainerInstance`, `Resource` and
//! `Failure` structures, with the field names of the ECS API reference.

use serde_json::{Value, json};

use crate::state::{Cluster, ContainerInstance, Resources};

pub fn cluster_json(cluster: &Cluster) -> Value {
    json!({
        "clusterArn": cluster.arn,
        "clusterName": cluster.name,
        "status": cluster.status.as_str(),
        "registeredContainerInstancesCount": cluster.listed_instances().count(),
        "runningTasksCount": cluster.running_tasks(),
        "pendingTasksCount": cluster.pending_tasks(),
        "activeServicesCount": 0,
        "statistics": [],
        "tags": [],
        "settings": [{ "name": "containerInsights", "value": "disabled" }],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    })
}

pub fn instance_json(instance: &ContainerInstance) -> Value {
    let attributes: Vec<Value> = instance
        .attributes
        .iter()
        .map(|attribute| match &attribute.value {
            Some(value) => json!({ "name": attribute.name, "value": value }),
            None => json!({ "name": attribute.name }),
        })
        .collect();
    json!({
        "containerInstanceArn": instance.arn,
        "ec2InstanceId": instance.ec2_instance_id,
        "version": instance.version,
        "versionInfo": {
            "agentVersion": "1.90.0",
            "agentHash": "fake",
            "dockerVersion": "DockerVersion: 25.0.8",
        },
        "status": instance.status.as_str(),
        "agentConnected": instance.agent_connected,
        "runningTasksCount": instance.running_tasks,
        "pendingTasksCount": instance.pending_tasks,
        "registeredResources": resources_json(&instance.registered),
        "remainingResources": resources_json(&instance.remaining),
        "registeredAt": instance.registered_at,
        "attributes": attributes,
        "attachments": [],
        "tags": [],
    })
}

/// Returns the four resources ECS reports for an instance. Every entry
/// carries all three numeric fields, zero where unused, as ECS sends them.
fn resources_json(resources: &Resources) -> Value {
    json!([
        integer_resource("CPU", resources.cpu),
        integer_resource("MEMORY", resources.memory),
        string_set_resource("PORTS", &resources.ports),
        string_set_resource("PORTS_UDP", &resources.ports_udp),
    ])
}

fn integer_resource(name: &str, value: i32) -> Value {
    json!({
        "name": name,
        "type": "INTEGER",
        "integerValue": value,
        "longValue": 0,
        "doubleValue": 0.0,
    })
}

fn string_set_resource(name: &str, values: &[String]) -> Value {
    json!({
        "name": name,
        "type": "STRINGSET",
        "stringSetValue": values,
        "integerValue": 0,
        "longValue": 0,
        "doubleValue": 0.0,
    })
}

pub fn missing_failure(arn: &str) -> Value {
    json!({ "arn": arn, "reason": "MISSING" })
}
