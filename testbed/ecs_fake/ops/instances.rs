//! RegisterContainerInstance, DeregisterContainerInstance,
//! UpdateContainerInstancesState, ListContainerInstances and
//! DescribeContainerInstances.

use serde::Deserialize;
use serde_json::{Value, json};

use super::shapes::{instance_json, missing_failure};
use super::{
    PageRequest, active_cluster, active_cluster_mut, check_describe_count, page, parse_input,
};
use crate::protocol::{AwsError, code};
use crate::state::{
    Attribute, Cluster, DEFAULT_CPU, DEFAULT_MEMORY, InstanceStatus, NewInstance, Resources, State,
    instance_arn,
};

/// Largest number of instances one UpdateContainerInstancesState call
/// accepts, as in the ECS API reference.
const MAX_STATE_UPDATES: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceInput {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    integer_value: Option<i64>,
    string_set_value: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct AttributeInput {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterInput {
    cluster: Option<String>,
    instance_identity_document: Option<String>,
    total_resources: Option<Vec<ResourceInput>>,
    attributes: Option<Vec<AttributeInput>>,
    container_instance_arn: Option<String>,
}

/// Registers a container instance with the CPU, MEMORY, PORTS and
/// PORTS_UDP values of `totalResources`, or the defaults for those absent.
/// With `containerInstanceArn` it re-registers that instance instead.
pub fn register(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: RegisterInput = parse_input(input)?;
    let registered = registered_resources(input.total_resources.unwrap_or_default())?;
    let ec2_instance_id = input
        .instance_identity_document
        .as_deref()
        .map(instance_id_from_document)
        .transpose()?;
    let cluster = active_cluster_mut(state, input.cluster.as_deref())?;

    if let Some(arn) = &input.container_instance_arn {
        let cluster_seq = cluster.seq;
        let (reply, instance_seq) = reregister(cluster, arn, registered)?;
        state.record_instance_change(cluster_seq, instance_seq);
        return Ok(reply);
    }

    let mut new = NewInstance::new(registered);
    new.ec2_instance_id = ec2_instance_id;
    new.attributes = (input.attributes.unwrap_or_default().into_iter())
        .map(|attribute| Attribute {
            name: attribute.name,
            value: attribute.value,
        })
        .collect();
    let cluster_seq = cluster.seq;
    let seq = state.insert_instance(cluster_seq, new);
    let instance = &state.clusters[&cluster_seq].instances[&seq];
    tracing::info!(arn = %instance.arn, "registered container instance");
    let reply = json!({ "containerInstance": instance_json(instance) });
    state.record_instance_change(cluster_seq, seq);
    Ok(reply)
}

/// Replaces the registered resources of an existing instance and keeps the
/// amounts its tasks use. Returns the reply and the instance's `seq`.
fn reregister(
    cluster: &mut Cluster,
    arn: &str,
    registered: Resources,
) -> Result<(Value, u64), AwsError> {
    let Some(instance) = cluster.find_instance_mut(arn) else {
        return Err(AwsError::invalid_parameter(format!(
            "Container instance {arn} not found."
        )));
    };
    if !instance.is_listed() {
        return Err(AwsError::new(
            code::CLIENT,
            format!("Container instance {} is inactive.", instance.id),
        ));
    }
    let used_cpu = instance.registered.cpu - instance.remaining.cpu;
    let used_memory = instance.registered.memory - instance.remaining.memory;
    instance.remaining = registered.clone();
    instance.remaining.cpu = (registered.cpu - used_cpu).max(0);
    instance.remaining.memory = (registered.memory - used_memory).max(0);
    instance.registered = registered;
    instance.bump_version();
    let reply = json!({ "containerInstance": instance_json(instance) });
    Ok((reply, instance.seq))
}

fn registered_resources(total: Vec<ResourceInput>) -> Result<Resources, AwsError> {
    let mut resources = Resources::new(DEFAULT_CPU, DEFAULT_MEMORY);
    for resource in total {
        let name = resource.name.as_deref().unwrap_or_default();
        match name {
            "CPU" => resources.cpu = integer_value(&resource, name)?,
            "MEMORY" => resources.memory = integer_value(&resource, name)?,
            "PORTS" => resources.ports = string_set_value(resource, "PORTS")?,
            "PORTS_UDP" => resources.ports_udp = string_set_value(resource, "PORTS_UDP")?,
            // NOTE: custom resources such as GPU are accepted but not stored,
            // so they are missing from DescribeContainerInstances.
            _ => {}
        }
    }
    Ok(resources)
}

fn integer_value(resource: &ResourceInput, name: &str) -> Result<i32, AwsError> {
    let kind = resource.kind.as_deref().unwrap_or("INTEGER");
    if kind != "INTEGER" {
        return Err(AwsError::invalid_parameter(format!(
            "Resource {name} must have type INTEGER, got {kind}."
        )));
    }
    let value = resource.integer_value.unwrap_or(0);
    i32::try_from(value)
        .ok()
        .filter(|value| *value >= 0)
        .ok_or_else(|| {
            AwsError::invalid_parameter(format!(
                "Resource {name} has invalid integerValue {value}: expected 0 to {}.",
                i32::MAX
            ))
        })
}

fn string_set_value(resource: ResourceInput, name: &str) -> Result<Vec<String>, AwsError> {
    let kind = resource.kind.as_deref().unwrap_or("STRINGSET");
    if kind != "STRINGSET" {
        return Err(AwsError::invalid_parameter(format!(
            "Resource {name} must have type STRINGSET, got {kind}."
        )));
    }
    Ok(resource.string_set_value.unwrap_or_default())
}

/// Reads `instanceId` from an EC2 instance identity document.
fn instance_id_from_document(document: &str) -> Result<String, AwsError> {
    let parsed: Value = serde_json::from_str(document).unwrap_or(Value::Null);
    match parsed.get("instanceId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(AwsError::invalid_parameter(
            "instanceIdentityDocument must be a JSON object with a non-empty instanceId.",
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeregisterInput {
    cluster: Option<String>,
    container_instance: String,
    #[serde(default)]
    force: bool,
}

/// Sets an instance INACTIVE: it leaves ListContainerInstances and the
/// cluster counts but stays visible to DescribeContainerInstances, as in
/// ECS. Without `force`, an instance with tasks is rejected.
pub fn deregister(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DeregisterInput = parse_input(input)?;
    let cluster = active_cluster_mut(state, input.cluster.as_deref())?;
    let reference = input.container_instance;
    // NOTE: the error code for an unknown instance is a best guess because
    // the ECS API reference does not name it.
    let Some(instance) = cluster
        .find_instance_mut(&reference)
        .filter(|instance| instance.is_listed())
    else {
        return Err(AwsError::invalid_parameter(format!(
            "Container instance {reference} not found."
        )));
    };
    if !input.force && instance.running_tasks + instance.pending_tasks > 0 {
        return Err(AwsError::invalid_parameter(
            "Found running tasks on the instance: stop them first or set force.",
        ));
    }
    instance.status = InstanceStatus::Inactive;
    instance.bump_version();
    tracing::info!(arn = %instance.arn, "deregistered container instance");
    let reply = json!({ "containerInstance": instance_json(instance) });
    let instance_seq = instance.seq;
    let cluster_seq = cluster.seq;
    state.record_instance_change(cluster_seq, instance_seq);
    Ok(reply)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateStateInput {
    cluster: Option<String>,
    container_instances: Vec<String>,
    status: String,
}

/// Sets instances ACTIVE or DRAINING. Unknown or deregistered instances are
/// reported as MISSING failures.
pub fn update_state(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: UpdateStateInput = parse_input(input)?;
    let status = match input.status.as_str() {
        "ACTIVE" => InstanceStatus::Active,
        "DRAINING" => InstanceStatus::Draining,
        other => {
            return Err(AwsError::invalid_parameter(format!(
                "Invalid status {other:?}: expected ACTIVE or DRAINING."
            )));
        }
    };
    if input.container_instances.len() > MAX_STATE_UPDATES {
        return Err(AwsError::invalid_parameter(format!(
            "containerInstances can have at most {MAX_STATE_UPDATES} items, got {}.",
            input.container_instances.len()
        )));
    }

    let (region, account) = (state.region.clone(), state.account.clone());
    let cluster = active_cluster_mut(state, input.cluster.as_deref())?;
    let mut updated = Vec::new();
    let mut changed = Vec::new();
    let mut failures = Vec::new();
    for reference in &input.container_instances {
        let found = cluster
            .find_instance_mut(reference)
            .filter(|instance| instance.is_listed());
        let Some(instance) = found else {
            let arn = failure_arn(&region, &account, &cluster.name, reference);
            failures.push(missing_failure(&arn));
            continue;
        };
        if instance.status != status {
            instance.status = status;
            instance.bump_version();
            changed.push(instance.seq);
        }
        updated.push(instance_json(instance));
    }
    let cluster_seq = cluster.seq;
    for instance_seq in changed {
        state.record_instance_change(cluster_seq, instance_seq);
    }
    Ok(json!({ "containerInstances": updated, "failures": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    status: Option<String>,
    filter: Option<String>,
    #[serde(flatten)]
    page: PageRequest,
}

/// Lists instance ARNs in registration order. Without a status filter it
/// returns every status but INACTIVE, as ECS does.
pub fn list(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: ListInput = parse_input(input)?;
    if input
        .filter
        .as_deref()
        .is_some_and(|filter| !filter.is_empty())
    {
        return Err(AwsError::invalid_parameter(
            "The ECS fake does not evaluate cluster query language filters.",
        ));
    }
    let status = match input.status.as_deref() {
        None => None,
        Some(text) => Some(
            InstanceStatus::parse(text)
                .filter(|status| *status != InstanceStatus::Inactive)
                .ok_or_else(|| AwsError::invalid_parameter(format!("Invalid status {text:?}.")))?,
        ),
    };
    let cluster = active_cluster(state, input.cluster.as_deref())?;

    let scope = format!(
        "ListContainerInstances\n{}\n{}",
        cluster.arn,
        input.status.as_deref().unwrap_or_default()
    );
    let matching = cluster
        .listed_instances()
        .filter(|instance| status.is_none_or(|status| instance.status == status))
        .map(|instance| (instance.seq, instance.arn.clone()));
    let page = page(matching, &input.page, &scope)?;

    let mut output = json!({ "containerInstanceArns": page.items });
    if let Some(token) = page.next_token {
        output["nextToken"] = Value::String(token);
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    cluster: Option<String>,
    container_instances: Vec<String>,
}

/// Describes instances, deregistered ones included, in request order.
/// Unknown instances are reported as MISSING failures.
pub fn describe(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DescribeInput = parse_input(input)?;
    if input.container_instances.is_empty() {
        return Err(AwsError::invalid_parameter(
            "containerInstances must not be empty.",
        ));
    }
    check_describe_count("containerInstances", input.container_instances.len())?;
    let cluster = active_cluster(state, input.cluster.as_deref())?;

    let mut found = Vec::new();
    let mut failures = Vec::new();
    for reference in &input.container_instances {
        match cluster.find_instance(reference) {
            Some(instance) => found.push(instance_json(instance)),
            None => {
                let arn = failure_arn(&state.region, &state.account, &cluster.name, reference);
                failures.push(missing_failure(&arn));
            }
        }
    }
    Ok(json!({ "containerInstances": found, "failures": failures }))
}

/// Returns the ARN to report for an instance that was not found: the
/// reference itself when it is an ARN, else the ARN built from the id.
pub(super) fn failure_arn(
    region: &str,
    account: &str,
    cluster_name: &str,
    reference: &str,
) -> String {
    if reference.starts_with("arn:") {
        reference.to_owned()
    } else {
        instance_arn(region, account, cluster_name, reference)
    }
}
