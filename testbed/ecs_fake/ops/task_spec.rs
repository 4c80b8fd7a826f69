//! Request fields that RunTask and StartTask share, and the task size they
//! give: the task definition with the request's overrides applied.

use serde::Deserialize;
use serde_json::Value;

use super::parse_input;
use super::task_definitions::{parse_cpu, parse_memory};
use crate::protocol::AwsError;
use crate::state::State;
use crate::task_definitions::{ContainerDefinition, TaskDefinition};
use crate::tasks::{TaskContainer, TaskSpec};

/// Maximum `startedBy` and `group` lengths ECS accepts.
const MAX_STARTED_BY_LEN: usize = 128;
const MAX_GROUP_LEN: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRequest {
    pub cluster: Option<String>,
    pub task_definition: String,
    pub overrides: Option<Value>,
    pub started_by: Option<String>,
    pub group: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverrideInput {
    #[serde(default)]
    container_overrides: Vec<ContainerOverrideInput>,
    cpu: Option<String>,
    memory: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerOverrideInput {
    name: Option<String>,
    cpu: Option<i32>,
    memory: Option<i32>,
    memory_reservation: Option<i32>,
}

/// Builds the spec of the tasks a request starts.
pub fn build_spec(
    state: &State,
    request: &TaskRequest,
    client_token: Option<String>,
) -> Result<TaskSpec, AwsError> {
    // NOTE: ECS's error code for an unknown task definition in RunTask is
    // taken from CreateService, which returns this ClientException.
    let definition = (state.find_task_definition(&request.task_definition))
        .ok_or_else(|| AwsError::client("TaskDefinition not found."))?;
    if !definition.supports_ec2() {
        return Err(AwsError::invalid_parameter(
            "Task definition does not support launch_type EC2.",
        ));
    }
    check_started_by(request.started_by.as_deref())?;
    check_group(request.group.as_deref())?;
    let overrides: OverrideInput = match &request.overrides {
        Some(value) => parse_input(value.clone())?,
        None => OverrideInput::default(),
    };
    let (cpu, memory, containers) = size_task(definition, &overrides)?;

    Ok(TaskSpec {
        task_definition_arn: definition.arn.clone(),
        family: definition.family.clone(),
        cpu,
        memory,
        containers,
        overrides: (request.overrides.clone()).unwrap_or_else(|| Value::Object(Default::default())),
        started_by: request.started_by.clone(),
        group: (request.group.clone()).unwrap_or_else(|| format!("family:{}", definition.family)),
        client_token,
    })
}

/// Returns the CPU units and MiB a task takes, and its containers. The
/// task takes the task-level CPU and memory when set, the override winning
/// over the definition, else the sum over its containers, where a container
/// without `memory` counts its `memoryReservation`.
fn size_task(
    definition: &TaskDefinition,
    overrides: &OverrideInput,
) -> Result<(i32, i32, Vec<TaskContainer>), AwsError> {
    let containers = override_containers(definition, &overrides.container_overrides)?;
    let task_cpu = overrides.cpu.as_deref().map(parse_cpu).transpose()?;
    let task_memory = overrides.memory.as_deref().map(parse_memory).transpose()?;
    let container_cpu = containers.iter().map(|container| container.cpu).sum();
    let container_memory = (containers.iter())
        .map(|container| container.memory.or(container.memory_reservation))
        .map(|memory| memory.unwrap_or(0))
        .sum();

    let cpu = task_cpu.or(definition.cpu_units).unwrap_or(container_cpu);
    let memory = task_memory
        .or(definition.memory_mib)
        .unwrap_or(container_memory);
    Ok((cpu, memory, containers))
}

/// Applies container overrides, each of which must name a container of the
/// task definition.
fn override_containers(
    definition: &TaskDefinition,
    overrides: &[ContainerOverrideInput],
) -> Result<Vec<TaskContainer>, AwsError> {
    for container_override in overrides {
        let name = container_override.name.as_deref().unwrap_or_default();
        if !definition
            .containers
            .iter()
            .any(|container| container.name == name)
        {
            return Err(AwsError::invalid_parameter(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
    }
    let sized = |container: &ContainerDefinition| {
        let found = overrides
            .iter()
            .find(|o| o.name.as_deref() == Some(&container.name));
        TaskContainer {
            name: container.name.clone(),
            image: container.image.clone(),
            cpu: found.and_then(|o| o.cpu).unwrap_or(container.cpu),
            memory: found.and_then(|o| o.memory).or(container.memory),
            memory_reservation: (found.and_then(|o| o.memory_reservation))
                .or(container.memory_reservation),
        }
    };
    Ok(definition.containers.iter().map(sized).collect())
}

fn check_group(group: Option<&str>) -> Result<(), AwsError> {
    if let Some(group) = group.filter(|group| group.len() > MAX_GROUP_LEN) {
        return Err(AwsError::invalid_parameter(format!(
            "group can have at most {MAX_GROUP_LEN} characters, got {}.",
            group.len()
        )));
    }
    Ok(())
}

/// Checks `startedBy`: up to 128 letters, digits, hyphens, forward slashes
/// and underscores.
fn check_started_by(started_by: Option<&str>) -> Result<(), AwsError> {
    let Some(started_by) = started_by else {
        return Ok(());
    };
    let valid_chars = (started_by.bytes())
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'/' | b'_'));
    if started_by.len() > MAX_STARTED_BY_LEN || !valid_chars {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid startedBy {started_by:?}: use up to {MAX_STARTED_BY_LEN} letters, digits, \
             hyphens, forward slashes and underscores."
        )));
    }
    Ok(())
}
