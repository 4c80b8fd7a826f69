//! StartTask, DescribeTasks, ListTasks and StopTask.

use serde::Deserialize;
use serde_json::{Value, json};

use super::instances::failure_arn;
use super::placement::instance_rejection;
use super::shapes::{failure_json, missing_failure, task_json};
use super::task_spec::{TaskRequest, build_spec};
use super::{PageRequest, active_cluster, check_describe_count, page, parse_input};
use crate::fake::Fake;
use crate::protocol::AwsError;
use crate::state::{Cluster, State};
use crate::tasks::{Task, TaskStatus};

/// Maximum number of container instances in one StartTask call.
const MAX_START_INSTANCES: usize = 10;
/// Maximum StopTask `reason` length ECS accepts.
const MAX_STOP_REASON_LEN: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartTaskInput {
    #[serde(flatten)]
    task: TaskRequest,
    container_instances: Vec<String>,
}

/// Starts one task on each given container instance that has room. An
/// unknown or deregistered instance is a MISSING failure. StartTask takes
/// no `clientToken` and no placement constraints, as in ECS. The fake also
/// starts tasks on DRAINING instances, because ECS documents draining as
/// keeping its own scheduler from placing tasks there.
pub fn start_task(fake: &mut Fake, input: Value) -> Result<Value, AwsError> {
    let input: StartTaskInput = parse_input(input)?;
    let count = input.container_instances.len();
    if !(1..=MAX_START_INSTANCES).contains(&count) {
        return Err(AwsError::invalid_parameter(format!(
            "containerInstances must have 1 to {MAX_START_INSTANCES} items, got {count}."
        )));
    }
    let cluster_seq = active_cluster(&fake.state, input.task.cluster.as_deref())?.seq;
    let spec = build_spec(&fake.state, &input.task, None)?;

    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for reference in &input.container_instances {
        let cluster = &fake.state.clusters[&cluster_seq];
        let found = (cluster.find_instance(reference)).filter(|instance| instance.is_listed());
        let Some(instance) = found else {
            let (region, account) = (&fake.state.region, &fake.state.account);
            failures.push(missing_failure(&failure_arn(
                region,
                account,
                &cluster.name,
                reference,
            )));
            continue;
        };
        if let Some(reason) = instance_rejection(instance, &spec) {
            failures.push(failure_json(&instance.arn, reason));
            continue;
        }
        let instance_seq = instance.seq;
        let seq = fake
            .state
            .place_task(cluster_seq, instance_seq, spec.clone(), fake.task_timing);
        tasks.push(task_json(&fake.state.tasks[&seq]));
    }
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

#[derive(Deserialize)]
struct DescribeInput {
    cluster: Option<String>,
    tasks: Vec<String>,
}

/// Describes tasks of one cluster by ARN or id, stopped ones included.
/// Unknown tasks are MISSING failures.
pub fn describe(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: DescribeInput = parse_input(input)?;
    if input.tasks.is_empty() {
        return Err(AwsError::invalid_parameter("Tasks cannot be empty."));
    }
    check_describe_count("tasks", input.tasks.len())?;
    let cluster = active_cluster(state, input.cluster.as_deref())?;

    let mut found = Vec::new();
    let mut failures = Vec::new();
    for reference in &input.tasks {
        match find_task(state, cluster, reference) {
            Some(task) => found.push(task_json(task)),
            None if reference.starts_with("arn:") => failures.push(missing_failure(reference)),
            None => failures.push(missing_failure(&state.task_arn(&cluster.name, reference))),
        }
    }
    Ok(json!({ "tasks": found, "failures": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    cluster: Option<String>,
    container_instance: Option<String>,
    family: Option<String>,
    started_by: Option<String>,
    service_name: Option<String>,
    desired_status: Option<String>,
    launch_type: Option<String>,
    #[serde(flatten)]
    page: PageRequest,
}

impl ListInput {
    /// Tells whether a task of the listed cluster passes the filters.
    /// `instance_seq` is `Some(None)` for an unknown `containerInstance`,
    /// which matches no task.
    fn matches(&self, task: &Task, status: TaskStatus, instance_seq: Option<Option<u64>>) -> bool {
        let started_by = task.spec.started_by.as_ref();
        task.desired_status == status
            && instance_seq.is_none_or(|seq| seq == Some(task.instance_seq))
            && (self.family.as_ref()).is_none_or(|family| *family == task.spec.family)
            && (self.started_by.as_ref()).is_none_or(|by| Some(by) == started_by)
            && self.service_name.is_none()
            && (self.launch_type.as_deref()).is_none_or(|kind| kind == "EC2")
    }

    /// Returns the page token scope: the cluster and every filter, so a
    /// token is valid only for the same listing.
    fn scope(&self, cluster_arn: &str, status: TaskStatus) -> String {
        let filters = [
            &self.container_instance,
            &self.family,
            &self.started_by,
            &self.service_name,
            &self.launch_type,
        ];
        format!("ListTasks\n{cluster_arn}\n{}\n{filters:?}", status.as_str())
    }
}

/// Lists task ARNs in the order the tasks were placed. Without
/// `desiredStatus` it lists tasks whose desired status is RUNNING, as ECS
/// does. The fake runs no services, so `serviceName` matches no task.
pub fn list(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: ListInput = parse_input(input)?;
    let status_text = input.desired_status.as_deref().unwrap_or("RUNNING");
    let status = TaskStatus::parse(status_text).ok_or_else(|| {
        AwsError::invalid_parameter(format!(
            "Invalid desiredStatus {status_text:?}: expected RUNNING, PENDING or STOPPED."
        ))
    })?;
    let cluster = active_cluster(state, input.cluster.as_deref())?;
    let instance_seq = (input.container_instance.as_deref()).map(|reference| {
        cluster
            .find_instance(reference)
            .map(|instance| instance.seq)
    });

    let matching = (state.tasks.values())
        .filter(|task| task.cluster_seq == cluster.seq)
        .filter(|task| input.matches(task, status, instance_seq))
        .map(|task| (task.seq, task.arn.clone()));
    let page = page(matching, &input.page, &input.scope(&cluster.arn, status))?;

    let mut output = json!({ "taskArns": page.items });
    if let Some(token) = page.next_token {
        output["nextToken"] = Value::String(token);
    }
    Ok(output)
}

#[derive(Deserialize)]
struct StopInput {
    cluster: Option<String>,
    task: String,
    reason: Option<String>,
}

/// Stops a task at once and returns its CPU and memory to its instance.
/// ECS passes through STOPPING states first; the fake skips them. Stopping
/// a stopped task returns it unchanged.
pub fn stop(state: &mut State, input: Value) -> Result<Value, AwsError> {
    let input: StopInput = parse_input(input)?;
    if let Some(reason) = (input.reason.as_ref()).filter(|r| r.len() > MAX_STOP_REASON_LEN) {
        return Err(AwsError::invalid_parameter(format!(
            "reason can have at most {MAX_STOP_REASON_LEN} characters, got {}.",
            reason.len()
        )));
    }
    let cluster = active_cluster(state, input.cluster.as_deref())?;
    let seq = (find_task(state, cluster, &input.task).map(|task| task.seq))
        .ok_or_else(|| AwsError::invalid_parameter("The referenced task was not found."))?;

    state.stop_task(seq, input.reason);
    let task = &state.tasks[&seq];
    tracing::info!(task = %task.arn, "stopped task");
    Ok(json!({ "task": task_json(task) }))
}

fn find_task<'a>(state: &'a State, cluster: &Cluster, reference: &str) -> Option<&'a Task> {
    (state.tasks.values()).find(|task| task.cluster_seq == cluster.seq && task.matches(reference))
}
