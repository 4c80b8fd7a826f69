//! ECS side of the scheduler: task sizes, RunTask pinned to one instance,
//! and reading back one instance after a launch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{
    LaunchType, PlacementConstraint, PlacementConstraintType, TaskDefinition,
};

use super::request::{TaskRequest, task_override};
use crate::ecs_capacity::Instance;
use crate::ecs_capacity::observe::convert_instance;

/// Result of a RunTask call for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// ECS accepted the tasks.
    Started { task_arns: Vec<String> },
    /// ECS refused the client token as used before with other parameters:
    /// a previous delivery of the same message started its tasks.
    StartedEarlier,
    /// ECS had no room after all (`RESOURCE:CPU`, `RESOURCE:MEMORY`,
    /// `AGENT`, ...): the cache was behind. Retry soon; not the request's fault.
    NoCapacity { reason: String },
    /// Throttling, a server error or a network failure: retry after backoff.
    Transient { reason: String },
    /// The request itself is wrong (unknown task definition, invalid
    /// parameter): retrying will not help.
    Rejected { reason: String },
}

/// Failure reasons that mean "no room right now" rather than a bad request.
fn is_capacity_reason(reason: &str) -> bool {
    reason.starts_with("RESOURCE:") || reason.starts_with("AGENT") || reason == "LOCATION"
}

fn is_transient<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code == "ServerException"
                || code == "ServiceUnavailableException"
        }
        _ => true,
    }
}

/// Client token for RunTask: stable per SQS message, so a redelivered
/// message never starts a second task. ECS allows at most 64 characters.
pub fn client_token(message_id: &str) -> String {
    let token: String = format!("tend-{message_id}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    token.chars().take(64).collect()
}

/// Per-task CPU units and MiB.
pub type TaskSize = (i64, i64);

pub struct Launcher {
    client: Client,
    /// Task definition sizes, with when they were read.
    sizes: Mutex<HashMap<String, (TaskSize, Instant)>>,
    size_ttl: Duration,
}

impl Launcher {
    pub fn new(client: Client, size_ttl: Duration) -> Self {
        Self {
            client,
            sizes: Mutex::new(HashMap::new()),
            size_ttl,
        }
    }

    /// Returns the per-task size of `request`: its own `cpu`/`memory`, or the
    /// task definition's (cached for the configured time).
    pub async fn task_size(&self, request: &TaskRequest) -> Result<TaskSize, Launch> {
        if let (Some(cpu), Some(memory)) = (request.cpu, request.memory) {
            return Ok((cpu, memory));
        }
        let definition = &request.task_definition;
        let cached = self
            .sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(definition)
            .copied();
        let size = match cached {
            Some((size, read_at)) if read_at.elapsed() < self.size_ttl => size,
            _ => {
                let size = self.describe_size(definition).await?;
                self.sizes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(definition.clone(), (size, Instant::now()));
                size
            }
        };
        Ok((
            request.cpu.unwrap_or(size.0),
            request.memory.unwrap_or(size.1),
        ))
    }

    async fn describe_size(&self, definition: &str) -> Result<TaskSize, Launch> {
        let reply = self
            .client
            .describe_task_definition()
            .task_definition(definition)
            .send()
            .await
            .map_err(|error| {
                let reason = format!(
                    "DescribeTaskDefinition {definition} failed: {}",
                    DisplayErrorContext(&error)
                );
                if is_transient(&error) {
                    Launch::Transient { reason }
                } else {
                    Launch::Rejected { reason }
                }
            })?;
        let Some(task) = reply.task_definition() else {
            return Err(Launch::Rejected {
                reason: format!("task definition {definition} not found"),
            });
        };
        size_of(task).ok_or_else(|| Launch::Rejected {
            reason: format!(
                "task definition {definition} sets no memory at task or container level; set memory in the request"
            ),
        })
    }

    /// Calls RunTask for `request` on `instance` only, with a client token
    /// derived from the SQS message id.
    pub async fn run(
        &self,
        cluster_arn: &str,
        request: &TaskRequest,
        instance: &Instance,
        message_id: &str,
    ) -> Launch {
        let Some(ec2_id) = &instance.ec2_instance_id else {
            return Launch::NoCapacity {
                reason: format!(
                    "instance {} has no EC2 instance id to pin the task to",
                    instance.arn
                ),
            };
        };
        let constraint = PlacementConstraint::builder()
            .r#type(PlacementConstraintType::MemberOf)
            .expression(format!("ec2InstanceId == {ec2_id}"))
            .build();
        let mut call = self
            .client
            .run_task()
            .cluster(cluster_arn)
            .task_definition(&request.task_definition)
            .count(request.count as i32)
            .launch_type(LaunchType::Ec2)
            .placement_constraints(constraint)
            .client_token(client_token(message_id))
            .set_started_by(request.started_by.clone())
            .set_group(request.group.clone());
        if let Some(overrides) = &request.overrides {
            match task_override(overrides) {
                Ok(converted) => call = call.overrides(converted),
                Err(error) => return Launch::Rejected { reason: error.0 },
            }
        }
        match call.send().await {
            Ok(reply) => {
                let task_arns: Vec<String> = reply
                    .tasks()
                    .iter()
                    .filter_map(|t| t.task_arn().map(str::to_owned))
                    .collect();
                if let Some(failure) = reply.failures().first() {
                    let reason = failure.reason().unwrap_or("unknown").to_owned();
                    let detail = failure
                        .detail()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    if task_arns.is_empty() && is_capacity_reason(&reason) {
                        return Launch::NoCapacity { reason };
                    }
                    if task_arns.is_empty() {
                        return Launch::Rejected {
                            reason: format!("RunTask failed: {reason}{detail}"),
                        };
                    }
                }
                if task_arns.is_empty() {
                    return Launch::Transient {
                        reason: "RunTask returned neither tasks nor failures".to_owned(),
                    };
                }
                Launch::Started { task_arns }
            }
            Err(error) => {
                // The client token was used before with other parameters:
                // an earlier delivery of this message already started its
                // task (on another instance) and died before deleting it.
                if let SdkError::ServiceError(service) = &error
                    && service.err().code() == Some("ConflictException")
                {
                    return Launch::StartedEarlier;
                }
                let reason = format!("RunTask failed: {}", DisplayErrorContext(&error));
                if is_transient(&error) {
                    Launch::Transient { reason }
                } else {
                    Launch::Rejected { reason }
                }
            }
        }
    }

    /// Reads one container instance, for the cache after a launch or a
    /// rejection.
    pub async fn describe_instance(
        &self,
        cluster_arn: &str,
        instance_arn: &str,
    ) -> Option<Instance> {
        let reply = self
            .client
            .describe_container_instances()
            .cluster(cluster_arn)
            .container_instances(instance_arn)
            .send()
            .await
            .map_err(|error| tracing::debug!(error = %DisplayErrorContext(&error), "DescribeContainerInstances failed"))
            .ok()?;
        reply
            .container_instances()
            .first()
            .and_then(convert_instance)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Task-level cpu/memory, else the sum over containers (memory falls back to
/// the soft limit, `memoryReservation`). `None` when no memory is set.
fn size_of(task: &TaskDefinition) -> Option<TaskSize> {
    let task_cpu = task.cpu().and_then(|c| c.parse::<i64>().ok());
    let task_memory = task.memory().and_then(|m| m.parse::<i64>().ok());
    let containers = task.container_definitions();
    let container_cpu: i64 = containers.iter().map(|c| i64::from(c.cpu())).sum();
    let container_memory: Option<i64> = containers
        .iter()
        .map(|c| c.memory().or(c.memory_reservation()).map(i64::from))
        .sum();
    let memory = task_memory.or(container_memory)?;
    Some((task_cpu.unwrap_or(container_cpu), memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_fits_ecs_limit() {
        let token = client_token("8d1a6c0e-5bd9-4a43-a1c6-2c4ab6f9c4e1");
        assert_eq!(token, "tend-8d1a6c0e-5bd9-4a43-a1c6-2c4ab6f9c4e1");
        assert!(client_token(&"x".repeat(100)).len() <= 64);
        assert_eq!(client_token("a b/c"), "tend-abc");
    }

    #[test]
    fn capacity_reasons_recognised() {
        assert!(is_capacity_reason("RESOURCE:MEMORY"));
        assert!(is_capacity_reason("RESOURCE:CPU"));
        assert!(is_capacity_reason("AGENT"));
        assert!(!is_capacity_reason("MISSING"));
    }
}
