//! The task request message: the JSON body of an SQS message.
//!
//! ```json
//! {"cluster": "web", "task_definition": "api:12", "cpu": 256, "memory": 512,
//!  "count": 1, "overrides": {}, "started_by": "deploy-bot", "group": "api"}
//! ```
//! `cluster` and `task_definition` are required. `cpu` (ECS units) and
//! `memory` (MiB) are per task; when absent they are read from the task
//! definition. `count` is 1 to 10 (RunTask's limit) and defaults to 1.
//! `overrides` is passed to RunTask as is. Validation names the offending
//! field, so a dead-lettered request says what to fix.

use aws_sdk_ecs::types::{ContainerOverride, KeyValuePair, TaskOverride};
use serde_json::{Map, Value};

/// SQS's maximum message size; larger bodies cannot have come from SQS.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// ECS accepts at most 10 tasks per RunTask call.
pub const MAX_COUNT: i64 = 10;
/// ECS limits `startedBy` to 128 characters.
const MAX_STARTED_BY: usize = 128;
/// ECS limits `group` to 255 characters.
const MAX_GROUP: usize = 255;

const FIELDS: &[&str] = &[
    "cluster",
    "task_definition",
    "cpu",
    "memory",
    "count",
    "overrides",
    "started_by",
    "group",
];

/// A validated task request.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub cluster: String,
    pub task_definition: String,
    /// CPU units per task, if the request sets it.
    pub cpu: Option<i64>,
    /// MiB per task, if the request sets it.
    pub memory: Option<i64>,
    pub count: i64,
    /// RunTask `overrides`, an object in the ECS TaskOverride shape.
    pub overrides: Option<Map<String, Value>>,
    pub started_by: Option<String>,
    pub group: Option<String>,
}

/// Rejection of a body as a request; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest(message.into())
}

impl TaskRequest {
    /// Parses and validates a message body.
    pub fn parse(body: &str) -> Result<Self, InvalidRequest> {
        if body.len() > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "body is {} bytes, over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            )));
        }
        let value: Value = serde_json::from_str(body)
            .map_err(|error| invalid(format!("body is not valid JSON: {error}")))?;
        let Value::Object(fields) = value else {
            return Err(invalid(
                "body must be a JSON object with cluster and task_definition",
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(invalid(format!(
                "unknown field {unknown:?}; allowed fields: {}",
                FIELDS.join(", ")
            )));
        }
        let request = Self {
            cluster: required_string(&fields, "cluster")?,
            task_definition: required_string(&fields, "task_definition")?,
            cpu: positive(&fields, "cpu")?,
            memory: positive(&fields, "memory")?,
            count: count(&fields)?,
            overrides: overrides(&fields)?,
            started_by: optional_string(&fields, "started_by", MAX_STARTED_BY)?,
            group: optional_string(&fields, "group", MAX_GROUP)?,
        };
        Ok(request)
    }

    /// Serialises the request as a message body.
    pub fn to_body(&self) -> String {
        let mut fields = Map::new();
        fields.insert("cluster".into(), self.cluster.clone().into());
        fields.insert(
            "task_definition".into(),
            self.task_definition.clone().into(),
        );
        if let Some(cpu) = self.cpu {
            fields.insert("cpu".into(), cpu.into());
        }
        if let Some(memory) = self.memory {
            fields.insert("memory".into(), memory.into());
        }
        fields.insert("count".into(), self.count.into());
        if let Some(overrides) = &self.overrides {
            fields.insert("overrides".into(), Value::Object(overrides.clone()));
        }
        if let Some(started_by) = &self.started_by {
            fields.insert("started_by".into(), started_by.clone().into());
        }
        if let Some(group) = &self.group {
            fields.insert("group".into(), group.clone().into());
        }
        Value::Object(fields).to_string()
    }
}

fn required_string(fields: &Map<String, Value>, name: &str) -> Result<String, InvalidRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(invalid(format!("missing required field {name}"))),
        Some(Value::String(text)) if text.trim().is_empty() => {
            Err(invalid(format!("field {name} is empty")))
        }
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(invalid(format!(
            "field {name} must be a string, got {other}"
        ))),
    }
}

fn optional_string(
    fields: &Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, InvalidRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() > max => Err(invalid(format!(
            "field {name} has {} characters; ECS allows at most {max}",
            text.chars().count()
        ))),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(invalid(format!(
            "field {name} must be a string, got {other}"
        ))),
    }
}

fn positive(fields: &Map<String, Value>, name: &str) -> Result<Option<i64>, InvalidRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_i64() {
            Some(number) if number > 0 => Ok(Some(number)),
            _ => Err(invalid(format!(
                "field {name} must be a positive whole number, got {value}"
            ))),
        },
    }
}

fn count(fields: &Map<String, Value>) -> Result<i64, InvalidRequest> {
    match fields.get("count") {
        None | Some(Value::Null) => Ok(1),
        Some(value) => match value.as_i64() {
            Some(number) if (1..=MAX_COUNT).contains(&number) => Ok(number),
            _ => Err(invalid(format!(
                "field count must be a whole number from 1 to {MAX_COUNT}, got {value}"
            ))),
        },
    }
}

fn overrides(fields: &Map<String, Value>) -> Result<Option<Map<String, Value>>, InvalidRequest> {
    match fields.get("overrides") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            task_override(map)?;
            Ok(Some(map.clone()))
        }
        Some(other) => Err(invalid(format!(
            "field overrides must be a JSON object, got {other}"
        ))),
    }
}

/// Fields of RunTask's TaskOverride that requests may set.
const OVERRIDE_FIELDS: &[&str] = &[
    "containerOverrides",
    "cpu",
    "memory",
    "taskRoleArn",
    "executionRoleArn",
];
/// Fields of a ContainerOverride that requests may set.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "command",
    "environment",
    "cpu",
    "memory",
    "memoryReservation",
];

/// Converts `overrides` (ECS's TaskOverride JSON shape) for RunTask.
pub fn task_override(map: &Map<String, Value>) -> Result<TaskOverride, InvalidRequest> {
    if let Some(unknown) = map
        .keys()
        .find(|key| !OVERRIDE_FIELDS.contains(&key.as_str()))
    {
        return Err(invalid(format!(
            "unknown field overrides.{unknown}; supported: {}",
            OVERRIDE_FIELDS.join(", ")
        )));
    }
    let mut builder = TaskOverride::builder();
    for name in ["cpu", "memory", "taskRoleArn", "executionRoleArn"] {
        let Some(value) = map.get(name) else { continue };
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) if matches!(name, "cpu" | "memory") => number.to_string(),
            other => {
                return Err(invalid(format!(
                    "field overrides.{name} must be a string, got {other}"
                )));
            }
        };
        builder = match name {
            "cpu" => builder.cpu(text),
            "memory" => builder.memory(text),
            "taskRoleArn" => builder.task_role_arn(text),
            _ => builder.execution_role_arn(text),
        };
    }
    match map.get("containerOverrides") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                builder = builder.container_overrides(container_override(item, index)?);
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "field overrides.containerOverrides must be an array, got {other}"
            )));
        }
    }
    Ok(builder.build())
}

fn container_override(item: &Value, index: usize) -> Result<ContainerOverride, InvalidRequest> {
    let path = format!("overrides.containerOverrides[{index}]");
    let Value::Object(fields) = item else {
        return Err(invalid(format!("field {path} must be an object")));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !CONTAINER_FIELDS.contains(&key.as_str()))
    {
        return Err(invalid(format!(
            "unknown field {path}.{unknown}; supported: {}",
            CONTAINER_FIELDS.join(", ")
        )));
    }
    let mut builder = ContainerOverride::builder();
    match fields.get("name") {
        Some(Value::String(name)) if !name.is_empty() => builder = builder.name(name),
        _ => {
            return Err(invalid(format!(
                "field {path}.name must be the container's name"
            )));
        }
    }
    if let Some(command) = fields.get("command") {
        let words = command
            .as_array()
            .filter(|words| words.iter().all(Value::is_string));
        let Some(words) = words else {
            return Err(invalid(format!(
                "field {path}.command must be an array of strings"
            )));
        };
        for word in words.iter().filter_map(Value::as_str) {
            builder = builder.command(word);
        }
    }
    if let Some(environment) = fields.get("environment") {
        let pairs = environment
            .as_array()
            .ok_or_else(|| invalid(format!("field {path}.environment must be an array")))?;
        for pair in pairs {
            let (Some(name), Some(value)) = (pair["name"].as_str(), pair["value"].as_str()) else {
                return Err(invalid(format!(
                    "field {path}.environment entries must be {{\"name\": string, \"value\": string}}"
                )));
            };
            builder = builder.environment(KeyValuePair::builder().name(name).value(value).build());
        }
    }
    for name in ["cpu", "memory", "memoryReservation"] {
        let Some(value) = fields.get(name) else {
            continue;
        };
        let number = value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                invalid(format!(
                    "field {path}.{name} must be a whole number, got {value}"
                ))
            })?;
        builder = match name {
            "cpu" => builder.cpu(number),
            "memory" => builder.memory(number),
            _ => builder.memory_reservation(number),
        };
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &str) -> String {
        TaskRequest::parse(body).unwrap_err().0
    }

    #[test]
    fn minimal_request_defaults() {
        let request = TaskRequest::parse(r#"{"cluster":"c","task_definition":"t:1"}"#).unwrap();
        assert_eq!(request.count, 1);
        assert_eq!(request.cpu, None);
        assert_eq!(TaskRequest::parse(&request.to_body()).unwrap(), request);
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        assert!(reason("{}").contains("cluster"));
        assert!(reason("not json").contains("not valid JSON"));
        assert!(reason(r#"{"cluster":"c","task_definition":"t","count":11}"#).contains("count"));
        assert!(reason(r#"{"cluster":"c","task_definition":"t","count":0}"#).contains("count"));
        assert!(reason(r#"{"cluster":"c","task_definition":"t","memory":-5}"#).contains("memory"));
        assert!(reason(r#"{"cluster":"c","task_definition":"t","cpu":1.5}"#).contains("cpu"));
        assert!(reason(r#"{"cluster":"c","task_definition":""}"#).contains("task_definition"));
        assert!(
            reason(r#"{"cluster":"c","task_definition":"t","overrides":[]}"#).contains("overrides")
        );
        assert!(reason(r#"{"cluster":"c","task_definition":"t","colour":1}"#).contains("colour"));
        assert!(reason("[1]").contains("JSON object"));
    }

    #[test]
    fn overrides_converted_for_run_task() {
        let body = r#"{"cluster":"c","task_definition":"t","overrides":{"containerOverrides":
            [{"name":"app","command":["run","--fast"],"environment":[{"name":"A","value":"1"}],"memory":256}],
            "taskRoleArn":"arn:aws:iam::1:role/r"}}"#;
        let request = TaskRequest::parse(body).unwrap();
        let converted = task_override(request.overrides.as_ref().unwrap()).unwrap();
        let container = &converted.container_overrides()[0];
        assert_eq!(container.name(), Some("app"));
        assert_eq!(container.command(), ["run", "--fast"]);
        assert_eq!(container.memory(), Some(256));
        assert_eq!(converted.task_role_arn(), Some("arn:aws:iam::1:role/r"));
    }

    #[test]
    fn invalid_overrides_name_the_path() {
        let body = r#"{"cluster":"c","task_definition":"t","overrides":{"containerOverrides":[{"name":"a","command":"x"}]}}"#;
        assert!(reason(body).contains("overrides.containerOverrides[0].command"));
        let body = r#"{"cluster":"c","task_definition":"t","overrides":{"volumes":[]}}"#;
        assert!(reason(body).contains("overrides.volumes"));
    }

    #[test]
    fn oversized_body_rejected() {
        let body = format!(
            r#"{{"cluster":"c","task_definition":"t","group":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert!(reason(&body).contains("limit"));
    }

    #[test]
    fn long_started_by_rejected() {
        let body = format!(
            r#"{{"cluster":"c","task_definition":"t","started_by":"{}"}}"#,
            "x".repeat(129)
        );
        assert!(reason(&body).contains("started_by"));
    }
}
