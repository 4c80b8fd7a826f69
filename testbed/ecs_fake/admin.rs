//! Admin endpoints under `/_fake/` that tests use to set up and inspect
//! the fake. They are not part of the ECS API. Requests and responses are
//! JSON, and errors are `{"error": "..."}` with a 4xx status.

use serde_json::{Value, json};

use crate::admin_tasks;
use crate::events::admin as events_admin;
use crate::fake::{Fake, Fault};
use crate::fields::Fields;
use crate::ops::{instance_json, is_operation};
use crate::seed::{apply_seed, parse_seed};
use crate::state::{ClusterStatus, ContainerInstance, InstanceStatus};

/// Paths of the admin endpoints, for telling a wrong method from an
/// unknown path.
const PATHS: [&str; 9] = [
    "/_fake/reset",
    "/_fake/state",
    "/_fake/calls",
    "/_fake/calls/reset",
    "/_fake/faults",
    "/_fake/instances/update",
    "/_fake/run_task_failures",
    "/_fake/tasks",
    "/_fake/tasks/config",
];

/// An admin response: HTTP status and JSON body.
pub struct AdminReply {
    pub status: u16,
    pub body: Value,
}

impl AdminReply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }
}

/// Runs one admin request after applying the task transitions that are
/// due, so the tasks it reads or changes are current.
pub fn handle(fake: &mut Fake, method: &str, path: &str, body: &[u8]) -> AdminReply {
    fake.advance_tasks();
    let result = match (method, path) {
        ("POST", "/_fake/reset") => {
            fake.reset();
            Ok(json!({}))
        }
        ("POST", "/_fake/state") => parse_json(body).and_then(|seed| replace_state(fake, &seed)),
        ("GET", "/_fake/calls") => Ok(json!(fake.calls)),
        ("POST", "/_fake/calls/reset") => {
            fake.calls.clear();
            Ok(json!({}))
        }
        ("POST", "/_fake/faults") => parse_json(body).and_then(|fault| set_fault(fake, &fault)),
        ("POST", "/_fake/instances/update") => {
            parse_json(body).and_then(|update| update_instance(fake, &update))
        }
        ("POST", "/_fake/run_task_failures") => {
            parse_json(body).and_then(|staged| admin_tasks::stage_failures(fake, &staged))
        }
        ("GET", "/_fake/tasks") => Ok(admin_tasks::list_tasks(fake)),
        ("POST", "/_fake/tasks/config") => {
            parse_json(body).and_then(|config| admin_tasks::configure(fake, &config))
        }
        ("POST", "/_fake/events") => {
            parse_json(body).and_then(|target| events_admin::set_target(fake, &target))
        }
        ("GET", "/_fake/events") => Ok(fake.outbox.status_json()),
        ("POST", "/_fake/events/drop") => {
            parse_json(body).and_then(|count| events_admin::drop_next(fake, &count))
        }
        ("POST", "/_fake/events/duplicate") => {
            parse_json(body).and_then(|count| events_admin::duplicate_next(fake, &count))
        }
        ("POST", "/_fake/events/hold") => Ok(events_admin::hold(fake)),
        ("POST", "/_fake/events/release") => Ok(events_admin::release(fake)),
        (_, known) if PATHS.contains(&known) || events_admin::PATHS.contains(&known) => {
            return AdminReply::error(405, format!("method {method} is not allowed on {path}"));
        }
        _ => return AdminReply::error(404, format!("no admin endpoint at {path}")),
    };
    match result {
        Ok(body) => AdminReply::ok(body),
        Err(message) => {
            tracing::info!(%path, error = %message, "rejected admin request");
            AdminReply::error(400, message)
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON body: {error}"))
}

/// Replaces the clusters and instances with a seed document. The call
/// counts and faults are kept.
fn replace_state(fake: &mut Fake, document: &Value) -> Result<Value, String> {
    let seed = parse_seed(document)?;
    let reply = apply_seed(&mut fake.state, &seed);
    tracing::info!(clusters = seed.clusters.len(), "replaced state from seed");
    Ok(json!(reply))
}

/// Queues `count` failures of one operation with the error code `error`,
/// replacing any fault queued for it. A count of 0 removes the fault.
fn set_fault(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    let fields = Fields::new(body, "", &["operation", "error", "count", "message"])?;
    let operation = fields.required("operation", fields.string("operation")?)?;
    if !is_operation(operation) {
        return Err(format!(
            "operation: {operation:?} is not an operation the fake implements"
        ));
    }
    let code = fields.required("error", fields.string("error")?)?;
    if code.is_empty() {
        return Err("error: must not be empty".to_owned());
    }
    let count = fields.count("count")?.unwrap_or(1);
    let message = match fields.string("message")? {
        Some(message) => message.to_owned(),
        None if code == "ThrottlingException" => "Rate exceeded".to_owned(),
        None => format!("{code} injected by the ECS fake"),
    };

    if count == 0 {
        fake.faults.remove(operation);
    } else {
        let fault = Fault {
            code: code.to_owned(),
            message,
            remaining: count,
        };
        fake.faults.insert(operation.to_owned(), fault);
    }
    tracing::info!(%operation, %code, count, "set fault");
    Ok(json!({ "operation": operation, "error": code, "count": count }))
}

/// Fields of `POST /_fake/instances/update` after the instance reference.
struct InstanceUpdate {
    remaining_cpu: Option<i32>,
    remaining_memory: Option<i32>,
    agent_connected: Option<bool>,
    status: Option<InstanceStatus>,
    running_tasks: Option<u32>,
    pending_tasks: Option<u32>,
}

/// Changes the resources, agent state, status or task counts of one
/// instance and bumps its version. Returns the instance in the ECS shape.
/// An invalid request changes nothing.
fn update_instance(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    let keys = [
        "cluster",
        "container_instance",
        "remaining_cpu",
        "remaining_memory",
        "agent_connected",
        "status",
        "running_tasks",
        "pending_tasks",
    ];
    let fields = Fields::new(body, "", &keys)?;
    let cluster_ref = fields.required("cluster", fields.string("cluster")?)?;
    let instance_ref =
        fields.required("container_instance", fields.string("container_instance")?)?;
    let update = InstanceUpdate {
        remaining_cpu: fields.amount("remaining_cpu")?,
        remaining_memory: fields.amount("remaining_memory")?,
        agent_connected: fields.boolean("agent_connected")?,
        status: fields.status("status")?,
        running_tasks: fields.count("running_tasks")?,
        pending_tasks: fields.count("pending_tasks")?,
    };

    let cluster = (fake.state.find_cluster_mut(cluster_ref))
        .filter(|cluster| cluster.status == ClusterStatus::Active)
        .ok_or_else(|| format!("cluster: no active cluster {cluster_ref:?}"))?;
    let instance = cluster.find_instance_mut(instance_ref).ok_or_else(|| {
        format!("container_instance: no instance {instance_ref:?} in cluster {cluster_ref:?}")
    })?;
    apply_update(instance, &update)?;
    let reply = json!({ "containerInstance": instance_json(instance) });
    let instance_seq = instance.seq;
    let cluster_seq = cluster.seq;
    fake.state.record_instance_change(cluster_seq, instance_seq);
    Ok(reply)
}

fn apply_update(instance: &mut ContainerInstance, update: &InstanceUpdate) -> Result<(), String> {
    let registered = &instance.registered;
    if let Some(cpu) = update.remaining_cpu.filter(|cpu| *cpu > registered.cpu) {
        return Err(format!(
            "remaining_cpu: {cpu} exceeds the registered CPU {}",
            registered.cpu
        ));
    }
    if let Some(memory) = update
        .remaining_memory
        .filter(|memory| *memory > registered.memory)
    {
        return Err(format!(
            "remaining_memory: {memory} exceeds the registered memory {}",
            registered.memory
        ));
    }

    instance.remaining.cpu = update.remaining_cpu.unwrap_or(instance.remaining.cpu);
    instance.remaining.memory = update.remaining_memory.unwrap_or(instance.remaining.memory);
    instance.agent_connected = update.agent_connected.unwrap_or(instance.agent_connected);
    instance.status = update.status.unwrap_or(instance.status);
    instance.running_tasks = update.running_tasks.unwrap_or(instance.running_tasks);
    instance.pending_tasks = update.pending_tasks.unwrap_or(instance.pending_tasks);
    instance.bump_version();
    tracing::info!(arn = %instance.arn, version = instance.version, "updated container instance");
    Ok(())
}
