//! JSON shapes of the ECS `Cluster`, `ContainerInstance`, `Resource`,
//! `TaskDefinition`, `Task` and `Failure` structures, with the field names
//! of the ECS API reference.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::state::{Cluster, ContainerInstance, Resources, unix_seconds};
use crate::task_definitions::TaskDefinition;
use crate::tasks::{StopCode, Task, TaskContainer};

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
    failure_json(arn, "MISSING")
}

pub fn failure_json(arn: &str, reason: &str) -> Value {
    json!({ "arn": arn, "reason": reason })
}

pub fn task_definition_json(definition: &TaskDefinition) -> Value {
    let containers: Vec<&Value> = (definition.containers.iter())
        .map(|container| &container.definition)
        .collect();
    // ECS lists FARGATE as compatible when the definition meets its rules,
    // of which the fake checks the network mode and task-level sizes.
    let mut compatibilities = vec!["EC2"];
    let fargate_ready = definition.network_mode.as_deref() == Some("awsvpc")
        && definition.cpu.is_some()
        && definition.memory.is_some();
    if fargate_ready {
        compatibilities.push("FARGATE");
    }
    let mut json = json!({
        "taskDefinitionArn": definition.arn,
        "family": definition.family,
        "revision": definition.revision,
        "status": "ACTIVE",
        "containerDefinitions": containers,
        "volumes": [],
        "placementConstraints": [],
        "requiresAttributes": [],
        "compatibilities": compatibilities,
        "requiresCompatibilities": definition.requires_compatibilities,
        "registeredAt": unix_seconds(definition.registered_at),
    });
    let optional = [
        ("cpu", &definition.cpu),
        ("memory", &definition.memory),
        ("networkMode", &definition.network_mode),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            json[name] = json!(value);
        }
    }
    json
}

pub fn task_json(task: &Task) -> Value {
    let spec = &task.spec;
    let containers: Vec<Value> = (spec.containers.iter())
        .map(|container| container_json(task, container))
        .collect();
    let mut json = json!({
        "taskArn": task.arn,
        "clusterArn": task.cluster_arn,
        "taskDefinitionArn": spec.task_definition_arn,
        "containerInstanceArn": task.container_instance_arn,
        "lastStatus": task.last_status.as_str(),
        "desiredStatus": task.desired_status.as_str(),
        "cpu": spec.cpu.to_string(),
        "memory": spec.memory.to_string(),
        "group": spec.group,
        "launchType": "EC2",
        "version": task.version,
        "createdAt": unix_seconds(task.created_at),
        "overrides": spec.overrides,
        "containers": containers,
        "attachments": [],
        "tags": [],
    });
    let map = json.as_object_mut().expect("a task is a JSON object");
    insert_lifecycle_fields(map, task);
    json
}

/// Adds the task fields that ECS sends only once they have a value.
fn insert_lifecycle_fields(map: &mut Map<String, Value>, task: &Task) {
    let seconds = |at: Option<SystemTime>| at.map(|at| unix_seconds(at).into());
    let started_by = task.spec.started_by.as_deref().map(Value::from);
    insert_some(map, "startedBy", started_by);
    insert_some(map, "startedAt", seconds(task.started_at));
    insert_some(map, "stoppingAt", seconds(task.stopped_at));
    insert_some(map, "stoppedAt", seconds(task.stopped_at));
    let stopped_reason = task.stopped_reason.as_deref().map(Value::from);
    insert_some(map, "stoppedReason", stopped_reason);
    insert_some(
        map,
        "stopCode",
        task.stop_code.map(|code| code.as_str().into()),
    );
}

fn container_json(task: &Task, container: &TaskContainer) -> Value {
    let mut json = json!({
        "taskArn": task.arn,
        "name": container.name,
        "image": container.image,
        "lastStatus": task.last_status.as_str(),
        "cpu": container.cpu.to_string(),
    });
    let map = json.as_object_mut().expect("a container is a JSON object");
    insert_some(
        map,
        "memory",
        container.memory.map(|mib| mib.to_string().into()),
    );
    let reservation = container.memory_reservation;
    insert_some(
        map,
        "memoryReservation",
        reservation.map(|mib| mib.to_string().into()),
    );
    if task.stop_code == Some(StopCode::EssentialContainerExited) {
        map.insert("exitCode".to_owned(), 0.into());
    }
    json
}

fn insert_some(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(name.to_owned(), value);
    }
}
