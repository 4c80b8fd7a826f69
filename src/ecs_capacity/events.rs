//! The `ecs-events` loop: applies ECS state-change events, which
//! EventBridge delivers to an SQS queue, to the capacity cache within a
//! second of the change, between full refreshes.
//!
//! Each pass long-polls the queue once, applies what arrived and deletes
//! it, then runs again at once. Events can arrive late, twice or out of
//! order: an instance event is applied only if its `detail.version` is
//! newer than the cached one, and a task event triggers a read of its
//! instance (task events carry no instance capacity). The periodic full
//! refresh stays the safety net for lost events.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::error::DisplayErrorContext;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::Value;
use tracing::warn;

use super::cache::{CacheError, CapacityCache, InstanceUpdate};
use super::model::Instance;
use crate::metrics::register;
use crate::runtime::{CancellationToken, Outcome, Reconciler};

pub const LOOP_NAME: &str = "ecs-events";

/// How long received events stay invisible. A pass handles a batch of at
/// most ten events with a few calls, so this mainly decides how soon the
/// events of a failed pass come back (the queue's default is 30 s).
const EVENT_VISIBILITY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("SQS {operation} on the ECS events queue failed: {message}")]
    Queue {
        operation: &'static str,
        message: String,
    },
    #[error("capacity cache update failed")]
    Cache(#[from] CacheError),
}

#[derive(Clone)]
pub struct EventMetrics {
    events: IntCounterVec,
    latency: Histogram,
}

impl EventMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "tend_ecs_events_total",
                "ECS state-change events received, by result (applied, ignored_older, ignored_unknown, instance_read, malformed).",
            ),
            &["result"],
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "tend_ecs_event_latency_seconds",
                "Time from an ECS event (its time field) to the cache update it caused.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
        )?;
        let metrics = Self {
            events: register(registry, events)?,
            latency: register(registry, latency)?,
        };
        for result in [
            "applied",
            "ignored_older",
            "ignored_unknown",
            "instance_read",
            "malformed",
        ] {
            metrics.events.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    fn count(&self, result: &str) {
        self.events.with_label_values(&[result]).inc();
    }
}

/// The EventBridge envelope fields tend reads.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    time: Option<String>,
    detail: Value,
}

pub struct EventsReconciler {
    sqs: aws_sdk_sqs::Client,
    ecs: aws_sdk_ecs::Client,
    cache: CapacityCache,
    queue_url: String,
    wait: Duration,
    metrics: EventMetrics,
}

impl EventsReconciler {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        ecs: aws_sdk_ecs::Client,
        cache: CapacityCache,
        queue_url: String,
        wait: Duration,
        metrics: EventMetrics,
    ) -> Self {
        Self {
            sqs,
            ecs,
            cache,
            queue_url,
            wait,
            metrics,
        }
    }

    /// Applies one instance event; returns whether the cache changed, so
    /// the caller records the event's latency.
    async fn apply_instance_event(&self, detail: &Value) -> Result<bool, EventsError> {
        let (Some(cluster), Some(instance)) =
            (detail["clusterArn"].as_str(), instance_from_detail(detail))
        else {
            self.metrics.count("malformed");
            return Ok(false);
        };
        let result = self.cache.apply_instance(cluster, instance).await?;
        self.metrics.count(match result {
            InstanceUpdate::Applied => "applied",
            InstanceUpdate::IgnoredOlder => "ignored_older",
            InstanceUpdate::IgnoredUnknown => "ignored_unknown",
        });
        Ok(result == InstanceUpdate::Applied)
    }

    /// Reads the instances that task events touched and applies them.
    /// Returns the receipts of the task events whose instance read failed
    /// for a reason another try may fix, so they stay in the queue.
    async fn read_instances(
        &self,
        instances_by_cluster: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    ) -> Result<Vec<String>, EventsError> {
        let mut unread = Vec::new();
        for (cluster, receipts_by_instance) in instances_by_cluster {
            let arns: Vec<&String> = receipts_by_instance.keys().collect();
            for chunk in arns.chunks(100) {
                let reply = match self
                    .ecs
                    .describe_container_instances()
                    .cluster(&cluster)
                    .set_container_instances(Some(chunk.iter().map(|arn| (*arn).clone()).collect()))
                    .send()
                    .await
                {
                    Ok(reply) => reply,
                    Err(error) => {
                        // After a client error another try would fail the
                        // same way, so the next full refresh reads these
                        // instances instead.
                        let retry = is_transient(&error);
                        warn!(
                            %cluster,
                            instances = chunk.len(),
                            error = %aws_sdk_ecs::error::DisplayErrorContext(&error),
                            events = if retry { "kept for another try" } else { "dropped" },
                            "reading instances after task events failed"
                        );
                        if retry {
                            for arn in chunk {
                                unread.extend(receipts_by_instance[*arn].iter().cloned());
                            }
                        }
                        continue;
                    }
                };
                for instance in reply
                    .container_instances()
                    .iter()
                    .filter_map(super::observe::convert_instance)
                {
                    if self.cache.apply_instance(&cluster, instance).await?
                        == InstanceUpdate::Applied
                    {
                        self.metrics.count("instance_read");
                    }
                }
            }
        }
        Ok(unread)
    }

    async fn delete(&self, receipts: Vec<String>) -> Result<(), EventsError> {
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(index, receipt)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt handle are set")
            });
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|error| EventsError::Queue {
                    operation: "DeleteMessageBatch",
                    message: DisplayErrorContext(&error).to_string(),
                })?;
        }
        Ok(())
    }
}

impl Reconciler for EventsReconciler {
    type Error = EventsError;

    fn name(&self) -> &'static str {
        LOOP_NAME
    }

    async fn reconcile(&self, shutdown: &CancellationToken) -> Result<Outcome, EventsError> {
        let receive = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait.as_secs().min(20) as i32)
            .visibility_timeout(EVENT_VISIBILITY.as_secs() as i32)
            .send();
        let reply = tokio::select! {
            reply = receive => reply.map_err(|error| EventsError::Queue {
                operation: "ReceiveMessage",
                message: DisplayErrorContext(&error).to_string(),
            })?,
            () = shutdown.cancelled() => return Ok(Outcome::done(Value::Null)),
        };
        let mut receipts = Vec::new();
        let mut applied_times = Vec::new();
        // Task events by cluster and instance, with their receipts.
        let mut task_instances: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for message in reply.messages() {
            receipts.extend(message.receipt_handle().map(str::to_owned));
            let Ok(envelope) = serde_json::from_str::<Envelope>(message.body().unwrap_or_default())
            else {
                self.metrics.count("malformed");
                continue;
            };
            match envelope.detail_type.as_str() {
                "ECS Container Instance State Change" => {
                    if self.apply_instance_event(&envelope.detail).await? {
                        applied_times.extend(envelope.time);
                    }
                }
                "ECS Task State Change" => {
                    let detail = &envelope.detail;
                    if let (Some(cluster), Some(instance)) = (
                        detail["clusterArn"].as_str(),
                        detail["containerInstanceArn"].as_str(),
                    ) {
                        task_instances
                            .entry(cluster.to_owned())
                            .or_default()
                            .entry(instance.to_owned())
                            .or_default()
                            .extend(message.receipt_handle().map(str::to_owned));
                        applied_times.extend(envelope.time);
                    }
                }
                _ => self.metrics.count("malformed"),
            }
        }
        let unread = self.read_instances(task_instances).await?;
        receipts.retain(|receipt| !unread.contains(receipt));
        let now = SystemTime::now();
        for time in applied_times {
            if let Ok(at) = humantime::parse_rfc3339_weak(&time) {
                self.metrics
                    .latency
                    .observe(now.duration_since(at).unwrap_or_default().as_secs_f64());
            }
        }
        let received = receipts.len();
        self.delete(receipts).await?;
        Ok(Outcome {
            requeue_after: Some(Duration::ZERO),
            summary: serde_json::json!({ "events": received }),
        })
    }
}

/// Returns whether a failed instance read may succeed on another try, as
/// after transport failures, timeouts, throttling and ECS server errors.
/// Client errors, such as an unknown cluster or missing permissions, would
/// fail again.
fn is_transient(
    error: &aws_sdk_ecs::error::SdkError<
        aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> bool {
    use aws_sdk_ecs::error::ProvideErrorMetadata;
    let Some(service) = error.as_service_error() else {
        return true;
    };
    service.is_server_exception()
        || matches!(
            service.code(),
            Some("ThrottlingException" | "RequestLimitExceeded" | "ServiceUnavailable")
        )
}

/// Builds an instance from the `detail` of a container instance event,
/// which uses the DescribeContainerInstances field names.
fn instance_from_detail(detail: &Value) -> Option<Instance> {
    let resource = |list: &str, name: &str| {
        detail[list]
            .as_array()
            .and_then(|items| items.iter().find(|r| r["name"] == name))
            .and_then(|r| r["integerValue"].as_i64())
            .unwrap_or(0)
    };
    let count = |field: &str| detail[field].as_i64().unwrap_or(0);
    Some(Instance {
        arn: detail["containerInstanceArn"].as_str()?.to_owned(),
        ec2_instance_id: detail["ec2InstanceId"].as_str().map(str::to_owned),
        status: detail["status"].as_str()?.to_owned(),
        agent_connected: detail["agentConnected"].as_bool().unwrap_or(false),
        active_tasks: count("runningTasksCount") + count("pendingTasksCount"),
        registered_cpu: resource("registeredResources", "CPU"),
        registered_memory: resource("registeredResources", "MEMORY"),
        remaining_cpu: resource("remainingResources", "CPU"),
        remaining_memory: resource("remainingResources", "MEMORY"),
        version: detail["version"].as_i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_event_detail_parsed() {
        let detail = serde_json::json!({
            "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/c",
            "containerInstanceArn": "arn:aws:ecs:us-east-1:1:container-instance/c/abc",
            "ec2InstanceId": "i-0123", "status": "ACTIVE", "agentConnected": true,
            "runningTasksCount": 2, "pendingTasksCount": 1, "version": 7,
            "registeredResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                                    {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}],
            "remainingResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                                   {"name": "MEMORY", "type": "INTEGER", "integerValue": 512}]
        });
        let instance = instance_from_detail(&detail).unwrap();
        assert_eq!(instance.version, 7);
        assert_eq!(instance.active_tasks, 3);
        assert_eq!(instance.remaining_memory, 512);
        assert_eq!(instance.registered_cpu, 2048);
        assert!(instance_from_detail(&serde_json::json!({"status": "ACTIVE"})).is_none());
    }
}
