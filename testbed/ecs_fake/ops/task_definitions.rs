//! RegisterTaskDefinition and DescribeTaskDefinition, and the parsing of
//! task-level CPU and memory strings that RunTask overrides share.

use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_input;
use super::shapes::task_definition_json;
use crate::protocol::AwsError;
use crate::state::State;
use crate::task_definitions::{ContainerDefinition, NewTaskDefinition};

/// Maximum family and container name length ECS accepts.
const MAX_NAME_LEN: usize = 255;
/// CPU units in one vCPU and MiB in one GB, for sizes such as `"1 vCPU"`.
const UNITS_PER_VCPU: f64 = 1024.0;
const MIB_PER_GB: f64 = 1024.0;
const COMPATIBILITIES: [&str; 4] = ["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"];
const NETWORK_MODES: [&str; 4] = ["bridge", "host", "awsvpc", "none"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterInput {
    family: String,
    container_definitions: Vec<Value>,
    cpu: Option<String>,
    memory: Option<String>,
    requires_compatibilities: Option<Vec<String>>,
    network_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerInput {
    name: Option<String>,
    image: Option<String>,
    cpu: Option<i32>,
    memory: Option<i32>,
    memory_reservation: Option<i32>,
}

/// Registers the next revision of a task definition family.
pub fn register(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: RegisterInput = parse_input(input)?;
    check_name("family", &input.family)?;
    let cpu = input
        .cpu
        .map(|text| parse_cpu(&text).map(|units| (text, units)));
    let memory = input
        .memory
        .map(|text| parse_memory(&text).map(|mib| (text, mib)));
    let (cpu, memory) = (cpu.transpose()?, memory.transpose()?);
    let containers = parse_containers(input.container_definitions, memory.is_some())?;

    let requires_compatibilities = input.requires_compatibilities.unwrap_or_default();
    check_enums(&requires_compatibilities, input.network_mode.as_deref())?;

    let new = NewTaskDefinition {
        family: input.family,
        cpu,
        memory,
        containers,
        requires_compatibilities,
        network_mode: input.network_mode,
    };
    let definition = state.insert_task_definition(new);
    tracing::info!(arn = %definition.arn, "registered task definition");
    Ok(json!({ "taskDefinition": task_definition_json(definition), "tags": [] }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    task_definition: String,
}

/// Describes a task definition given by ARN, `family:revision` or family.
pub fn describe(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DescribeInput = parse_input(input)?;
    let Some(definition) = state.find_task_definition(&input.task_definition) else {
        return Err(AwsError::client("Unable to describe task definition."));
    };
    Ok(json!({ "taskDefinition": task_definition_json(definition), "tags": [] }))
}

/// Checks `requiresCompatibilities` and `networkMode` against the values
/// of the ECS API.
fn check_enums(compatibilities: &[String], network_mode: Option<&str>) -> Result<(), AwsError> {
    let unknown = (compatibilities.iter()).find(|kind| !COMPATIBILITIES.contains(&kind.as_str()));
    if let Some(unknown) = unknown {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid requiresCompatibilities value {unknown:?}: expected one of {}.",
            COMPATIBILITIES.join(", ")
        )));
    }
    if let Some(mode) = network_mode.filter(|mode| !NETWORK_MODES.contains(mode)) {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid networkMode {mode:?}: expected one of {}.",
            NETWORK_MODES.join(", ")
        )));
    }
    Ok(())
}

/// Checks the container definitions. Without task-level memory, each
/// container needs `memory` or `memoryReservation`, as ECS requires for
/// the EC2 launch type.
fn parse_containers(
    definitions: Vec<Value>,
    has_task_memory: bool,
) -> Result<Vec<ContainerDefinition>, AwsError> {
    if definitions.is_empty() {
        return Err(AwsError::client("Container list cannot be empty."));
    }
    let mut containers: Vec<ContainerDefinition> = Vec::new();
    for definition in definitions {
        let container = parse_container(definition, has_task_memory)?;
        if containers.iter().any(|other| other.name == container.name) {
            return Err(AwsError::client(format!(
                "Container names must be unique within a task definition: {:?} appears twice.",
                container.name
            )));
        }
        containers.push(container);
    }
    Ok(containers)
}

fn parse_container(
    mut definition: Value,
    has_task_memory: bool,
) -> Result<ContainerDefinition, AwsError> {
    let input: ContainerInput = parse_input(definition.clone())?;
    let name = input.name.clone().unwrap_or_default();
    check_name("containerDefinitions.name", &name)?;
    let image = input.image.clone().filter(|image| !image.is_empty());
    let image = image.ok_or_else(|| {
        AwsError::client(format!(
            "Container {name:?} needs an image: image must not be empty."
        ))
    })?;
    check_container_sizes(&name, &input, has_task_memory)?;

    // ECS reports the defaults of these two fields in the definition.
    let object = definition
        .as_object_mut()
        .expect("parse_input accepted an object");
    object.entry("cpu").or_insert(json!(0));
    object.entry("essential").or_insert(json!(true));
    Ok(ContainerDefinition {
        name,
        image,
        cpu: input.cpu.unwrap_or(0),
        memory: input.memory,
        memory_reservation: input.memory_reservation,
        definition,
    })
}

/// Checks the sizes of a container: CPU of at least 0, memory limits of
/// at least 1 MiB with the hard one not below the soft one, and one of
/// them unless the task sets its memory.
fn check_container_sizes(
    name: &str,
    input: &ContainerInput,
    has_task_memory: bool,
) -> Result<(), AwsError> {
    let checks = [
        ("cpu", input.cpu, 0),
        ("memory", input.memory, 1),
        ("memoryReservation", input.memory_reservation, 1),
    ];
    for (field, value, minimum) in checks {
        if let Some(value) = value.filter(|value| *value < minimum) {
            return Err(AwsError::client(format!(
                "Invalid '{field}' setting for container '{name}': {value} is below the \
                 minimum of {minimum}."
            )));
        }
    }
    let reservation = input.memory_reservation;
    if let (Some(memory), Some(reservation)) = (input.memory, reservation)
        && memory < reservation
    {
        return Err(AwsError::client(format!(
            "Invalid 'memory' setting for container '{name}': memory {memory} must not be \
             less than memoryReservation {reservation}."
        )));
    }
    if input.memory.is_none() && reservation.is_none() && !has_task_memory {
        return Err(AwsError::client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or \
             'memoryReservation' must be specified."
        )));
    }
    Ok(())
}

/// Checks a family or container name: 1 to 255 letters, digits, hyphens
/// and underscores.
fn check_name(field: &str, name: &str) -> Result<(), AwsError> {
    let valid_chars = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars {
        return Err(AwsError::client(format!(
            "Invalid {field} {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, hyphens and \
             underscores."
        )));
    }
    Ok(())
}

/// Parses task-level CPU: CPU units such as `"1024"`, or vCPUs such as
/// `"0.5 vCPU"`.
pub fn parse_cpu(text: &str) -> Result<i32, AwsError> {
    parse_size(text, "vcpu", UNITS_PER_VCPU)
        .ok_or_else(|| AwsError::client(format!("Invalid 'cpu' setting for task: {text:?}.")))
}

/// Parses task-level memory: MiB such as `"2048"`, or GB such as `"2 GB"`.
pub fn parse_memory(text: &str) -> Result<i32, AwsError> {
    parse_size(text, "gb", MIB_PER_GB)
        .ok_or_else(|| AwsError::client(format!("Invalid 'memory' setting for task: {text:?}.")))
}

/// Parses a whole number, or a number followed by `unit` (any case) which
/// is multiplied by `factor`. Returns `None` for anything else or for a
/// result that is not a positive `i32`.
fn parse_size(text: &str, unit: &str, factor: f64) -> Option<i32> {
    let text = text.trim();
    if let Ok(plain) = text.parse::<i32>() {
        return (plain > 0).then_some(plain);
    }
    let lower = text.to_ascii_lowercase();
    let number: f64 = lower.strip_suffix(unit)?.trim().parse().ok()?;
    let scaled = (number * factor).round();
    (scaled >= 1.0 && scaled <= f64::from(i32::MAX)).then_some(scaled as i32)
}
