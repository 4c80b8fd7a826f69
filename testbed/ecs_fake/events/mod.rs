//! EventBridge events that the fake sends to an SQS queue, as real ECS
//! publishes "ECS Container Instance State Change" and "ECS Task State
//! Change" events that users route to a queue.
//!
//! Every change records an event in the state's `Journal` while the
//! request holds the lock. At the end of the request the server moves the
//! recorded events to the `Outbox`, which applies the test switches (drop,
//! duplicate, hold) and hands them to the background sender in order.
//! Seeding the state records no events.

pub mod admin;
pub mod outbox;
pub mod sender;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::ops::{instance_json, task_json};
use crate::protocol;
use crate::state::{ContainerInstance, State};
use crate::tasks::Task;

pub const INSTANCE_DETAIL_TYPE: &str = "ECS Container Instance State Change";
pub const TASK_DETAIL_TYPE: &str = "ECS Task State Change";

/// One state change: the changed resource and its ECS shape at that moment.
#[derive(Debug, Clone)]
pub struct Event {
    pub detail_type: &'static str,
    pub resource_arn: String,
    pub time: SystemTime,
    pub detail: Value,
}

/// Events recorded since the end of the last request. Recording is off
/// unless an events queue is set, so the fake renders no JSON otherwise.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    enabled: bool,
    recorded: Vec<Event>,
}

impl Journal {
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.recorded)
    }

    /// Records the instance as it is now, in the shape of the `detail` of
    /// an "ECS Container Instance State Change" event.
    pub fn record_instance(&mut self, cluster_arn: &str, instance: &ContainerInstance) {
        if !self.enabled {
            return;
        }
        let time = SystemTime::now();
        let mut detail = instance_json(instance);
        detail["clusterArn"] = json!(cluster_arn);
        detail["updatedAt"] = json!(iso_time(time));
        iso_field(&mut detail, "registeredAt");
        self.recorded.push(Event {
            detail_type: INSTANCE_DETAIL_TYPE,
            resource_arn: instance.arn.clone(),
            time,
            detail,
        });
    }

    /// Records the task as it is now, in the shape of the `detail` of an
    /// "ECS Task State Change" event.
    pub fn record_task(&mut self, task: &Task) {
        if !self.enabled {
            return;
        }
        let time = SystemTime::now();
        let mut detail = task_json(task);
        detail["updatedAt"] = json!(iso_time(time));
        for field in ["createdAt", "startedAt", "stoppingAt", "stoppedAt"] {
            iso_field(&mut detail, field);
        }
        self.recorded.push(Event {
            detail_type: TASK_DETAIL_TYPE,
            resource_arn: task.arn.clone(),
            time,
            detail,
        });
    }
}

impl State {
    /// Records the current state of one instance, if it exists.
    pub fn record_instance_change(&mut self, cluster_seq: u64, instance_seq: u64) {
        let State {
            clusters, journal, ..
        } = self;
        let Some(cluster) = clusters.get(&cluster_seq) else {
            return;
        };
        if let Some(instance) = cluster.instances.get(&instance_seq) {
            journal.record_instance(&cluster.arn, instance);
        }
    }
}

/// Wraps an event in the EventBridge envelope and serializes it as the
/// SQS message body that an EventBridge rule with an SQS target delivers.
pub fn envelope(region: &str, account: &str, event: &Event) -> String {
    let envelope = json!({
        "version": "0",
        "id": protocol::request_id(),
        "detail-type": event.detail_type,
        "source": "aws.ecs",
        "account": account,
        "time": humantime::format_rfc3339_seconds(event.time).to_string(),
        "region": region,
        "resources": [event.resource_arn],
        "detail": event.detail,
    });
    envelope.to_string()
}

/// Formats a time as events carry it, such as `2026-01-02T03:04:05.678Z`.
fn iso_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Replaces a timestamp in seconds since the Unix epoch, the ECS API
/// format, with the ISO 8601 string that events carry instead.
fn iso_field(detail: &mut Value, field: &str) {
    let Some(seconds) = detail.get(field).and_then(Value::as_f64) else {
        return;
    };
    let time = UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0));
    detail[field] = json!(iso_time(time));
}
