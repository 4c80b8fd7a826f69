//! RunTask with the EC2 launch type: validation, staged failures,
//! `clientToken` idempotency and placement of up to 10 tasks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::placement::{ConstraintInput, Placement, StrategyInput, has_active_instances};
use super::shapes::{failure_json, task_json};
use super::task_spec::{TaskRequest, build_spec};
use super::{active_cluster, parse_input};
use crate::fake::Fake;
use crate::protocol::{AwsError, code};
use crate::state::State;
use crate::tasks::{ClientTokenRecord, TaskSpec};

/// Maximum number of tasks one RunTask call starts.
const MAX_COUNT: i64 = 10;
/// Maximum `clientToken` length ECS accepts.
const MAX_CLIENT_TOKEN_LEN: usize = 64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunTaskInput {
    #[serde(flatten)]
    task: TaskRequest,
    count: Option<i64>,
    launch_type: Option<String>,
    capacity_provider_strategy: Option<Vec<Value>>,
    #[serde(default)]
    placement_constraints: Vec<ConstraintInput>,
    #[serde(default)]
    placement_strategy: Vec<StrategyInput>,
    client_token: Option<String>,
}

/// The tasks and failures of one RunTask reply.
#[derive(Default)]
struct Outcome {
    task_arns: Vec<String>,
    failures: Vec<Value>,
}

/// Runs `count` tasks on the container instances of a cluster. A retry
/// with a `clientToken` that already placed tasks returns those tasks
/// again, and places nothing, when its other parameters are the same. A
/// failure staged with `POST /_fake/run_task_failures` takes precedence
/// over both, once the request is valid.
pub fn run_task(fake: &mut Fake, input: Value) -> Result<Value, AwsError> {
    let mut parameters = input.clone();
    if let Some(object) = parameters.as_object_mut() {
        object.remove("clientToken");
    }
    let input: RunTaskInput = parse_input(input)?;
    let count = check_count(input.count)?;
    check_launch_type(&input)?;
    check_client_token(input.client_token.as_deref())?;
    let placement = Placement::parse(&input.placement_constraints, &input.placement_strategy)?;
    let cluster_seq = active_cluster(&fake.state, input.task.cluster.as_deref())?.seq;
    let spec = build_spec(&fake.state, &input.task, input.client_token.clone())?;

    if let Some(reason) = fake.take_staged_run_task_failure() {
        let failure = staged_failure(&fake.state, cluster_seq, &placement, &spec, &reason);
        tracing::info!(%reason, "returned a staged RunTask failure");
        return Ok(json!({ "tasks": [], "failures": [failure] }));
    }
    if let Some(token) = &input.client_token
        && let Some(record) = fake.state.client_tokens.get(token)
    {
        return replay(&fake.state, record, &parameters);
    }

    let outcome = place(fake, cluster_seq, &placement, &spec, count)?;
    if let Some(token) = input.client_token {
        record_token(&mut fake.state, token, parameters, &outcome);
    }
    Ok(reply(&fake.state, &outcome))
}

/// Stores the outcome of a request with a `clientToken` for its retries.
// NOTE: a token whose request placed no task is not stored, so a retry
// after capacity frees up can still place the tasks. ECS documents
// idempotency only for requests that succeeded.
fn record_token(state: &mut State, token: String, parameters: Value, outcome: &Outcome) {
    if outcome.task_arns.is_empty() {
        return;
    }
    let record = ClientTokenRecord {
        parameters,
        task_arns: outcome.task_arns.clone(),
        failures: outcome.failures.clone(),
    };
    state.client_tokens.insert(token, record);
}

fn check_count(count: Option<i64>) -> Result<u32, AwsError> {
    let count = count.unwrap_or(1);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(AwsError::invalid_parameter(format!(
            "count must be between 1 and {MAX_COUNT}, got {count}."
        )));
    }
    Ok(count as u32)
}

fn check_launch_type(input: &RunTaskInput) -> Result<(), AwsError> {
    if let Some(kind) = input.launch_type.as_deref().filter(|kind| *kind != "EC2") {
        return Err(AwsError::invalid_parameter(format!(
            "The ECS fake runs tasks only with launchType EC2, got {kind}."
        )));
    }
    if input
        .capacity_provider_strategy
        .as_ref()
        .is_some_and(|items| !items.is_empty())
    {
        return Err(AwsError::invalid_parameter(
            "The ECS fake does not support capacityProviderStrategy: use launchType EC2.",
        ));
    }
    Ok(())
}

/// Checks the ECS rule for client tokens: 1 to 64 characters in the ASCII
/// range 33 to 126.
fn check_client_token(token: Option<&str>) -> Result<(), AwsError> {
    let Some(token) = token else {
        return Ok(());
    };
    let valid_chars = token.bytes().all(|byte| (33..=126).contains(&byte));
    if token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LEN || !valid_chars {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid clientToken {token:?}: use 1 to {MAX_CLIENT_TOKEN_LEN} printable ASCII \
             characters without spaces."
        )));
    }
    Ok(())
}

/// Places up to `count` tasks one after another, so each placement uses
/// the resources that the previous ones left. A task that fits nowhere
/// adds the instances' rejections to the failures, each pair of instance
/// and reason once.
fn place(
    fake: &mut Fake,
    cluster_seq: u64,
    placement: &Placement,
    spec: &TaskSpec,
    count: u32,
) -> Result<Outcome, AwsError> {
    let (state, timing) = (&mut fake.state, fake.task_timing);
    if !has_active_instances(&state.clusters[&cluster_seq]) {
        return Err(AwsError::invalid_parameter(
            "No Container Instances were found in your cluster.",
        ));
    }
    let mut outcome = Outcome::default();
    for _ in 0..count {
        let cluster = &state.clusters[&cluster_seq];
        match placement.choose(cluster, state.tasks.values(), spec) {
            Ok(instance_seq) => {
                let seq = state.place_task(cluster_seq, instance_seq, spec.clone(), timing);
                let task = &state.tasks[&seq];
                tracing::info!(task = %task.arn, instance = %task.container_instance_arn,
                    "placed task");
                outcome.task_arns.push(task.arn.clone());
            }
            Err(rejections) => {
                for (arn, reason) in rejections {
                    let failure = failure_json(&arn, reason);
                    if !outcome.failures.contains(&failure) {
                        outcome.failures.push(failure);
                    }
                }
            }
        }
    }
    Ok(outcome)
}

/// Returns the reply for a token that already placed tasks, or a
/// `ConflictException` listing those tasks when the parameters differ.
fn replay(
    state: &State,
    record: &ClientTokenRecord,
    parameters: &Value,
) -> Result<Value, AwsError> {
    if record.parameters != *parameters {
        return Err(AwsError::new(
            code::CONFLICT,
            "The clientToken is already in use with a different RunTask request.",
        )
        .with_member("resourceIds", json!(record.task_arns)));
    }
    let outcome = Outcome {
        task_arns: record.task_arns.clone(),
        failures: record.failures.clone(),
    };
    Ok(reply(state, &outcome))
}

fn reply(state: &State, outcome: &Outcome) -> Value {
    let tasks: Vec<Value> = (outcome.task_arns.iter())
        .filter_map(|arn| state.tasks.values().find(|task| task.arn == *arn))
        .map(task_json)
        .collect();
    json!({ "tasks": tasks, "failures": outcome.failures })
}

/// Returns the failure of a staged RunTask failure. It names the first
/// instance that satisfies the constraints, or the cluster if none does.
fn staged_failure(
    state: &State,
    cluster_seq: u64,
    placement: &Placement,
    spec: &TaskSpec,
    reason: &str,
) -> Value {
    let cluster = &state.clusters[&cluster_seq];
    let arn = match placement.first_candidate(cluster, state.tasks.values(), spec) {
        Some(instance) => &instance.arn,
        None => &cluster.arn,
    };
    failure_json(arn, reason)
}
