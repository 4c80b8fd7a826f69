//! Admin endpoints for tasks: staging RunTask failures, listing every task
//! the fake placed, and changing the task timing at runtime.
//!
//! - `POST /_fake/run_task_failures` `{"reason": "RESOURCE:MEMORY", "count": 5}`
//!   makes the next `count` RunTask calls return one failure with `reason`
//!   and no tasks. `count` defaults to 1, and 0 removes the staged failure.
//! - `GET /_fake/tasks` returns `{"tasks": [...]}` in placement order.
//! - `POST /_fake/tasks/config` `{"start_delay_ms": 100, "run_time_ms": 500}`
//!   sets the timing of tasks placed from then on. A `run_time_ms` of
//!   `null` lets tasks run until StopTask, and an absent key keeps its value.
//!
//! A seed from `POST /_fake/state` replaces the task definitions and tasks
//! with the clusters, but the staged failure and the timing stay.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake::{Fake, StagedFailure};
use crate::fields::Fields;
use crate::tasks::{Task, TaskTiming};

/// Stages a failure reason for the next RunTask calls, replacing any
/// staged before.
pub fn stage_failures(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    let fields = Fields::new(body, "", &["reason", "count"])?;
    let reason = fields.required("reason", fields.string("reason")?)?;
    if reason.is_empty() {
        return Err("reason: must not be empty".to_owned());
    }
    let count = fields.count("count")?.unwrap_or(1);

    fake.staged_run_task_failure = (count > 0).then(|| StagedFailure {
        reason: reason.to_owned(),
        remaining: count,
    });
    tracing::info!(%reason, count, "staged RunTask failures");
    Ok(json!({ "reason": reason, "count": count }))
}

/// Lists every task, stopped ones included, with its instance, status,
/// size and client token.
pub fn list_tasks(fake: &Fake) -> Value {
    let tasks: Vec<Value> = (fake.state.tasks.values())
        .map(|task| task_summary(fake, task))
        .collect();
    json!({ "tasks": tasks })
}

fn task_summary(fake: &Fake, task: &Task) -> Value {
    let ec2_instance_id = (fake.state.clusters.get(&task.cluster_seq))
        .and_then(|cluster| cluster.instances.get(&task.instance_seq))
        .map(|instance| instance.ec2_instance_id.clone());
    json!({
        "arn": task.arn,
        "id": task.id,
        "cluster": task.cluster_arn,
        "container_instance": task.container_instance_arn,
        "ec2_instance_id": ec2_instance_id,
        "task_definition": task.spec.task_definition_arn,
        "last_status": task.last_status.as_str(),
        "desired_status": task.desired_status.as_str(),
        "cpu": task.spec.cpu,
        "memory": task.spec.memory,
        "client_token": task.spec.client_token,
        "started_by": task.spec.started_by,
        "group": task.spec.group,
        "stop_code": task.stop_code.map(|code| code.as_str()),
    })
}

/// Changes the start delay or run time of tasks placed from now on.
/// Tasks already placed keep the timing they were placed with.
pub fn configure(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    let fields = Fields::new(body, "", &["start_delay_ms", "run_time_ms"])?;
    let mut timing = fake.task_timing;
    if let Some(delay) = fields.count("start_delay_ms")? {
        timing.start_delay = Duration::from_millis(delay.into());
    }
    if fields.is_null("run_time_ms") {
        timing.run_time = None;
    } else if let Some(run_time) = fields.count("run_time_ms")? {
        timing.run_time = Some(Duration::from_millis(run_time.into()));
    }

    fake.task_timing = timing;
    tracing::info!(?timing, "changed task timing");
    Ok(timing_json(timing))
}

fn timing_json(timing: TaskTiming) -> Value {
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    json!({
        "start_delay_ms": millis(timing.start_delay),
        "run_time_ms": timing.run_time.map(millis),
    })
}
