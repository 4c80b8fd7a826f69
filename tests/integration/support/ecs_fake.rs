//! Starts the `tend-ecs-fake` binary on a free loopback port and drives its
//! `/_fake/` admin endpoints. Each `FakeEcs` is its own process, so tests
//! that run in parallel do not share state.
//!
//! Task timing is set with `FakeEcs::start_with_args(&["--task-start-delay",
//! "200ms", "--task-run-time", "5m"])` or later with `configure_tasks`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::{Credentials, Region};
use aws_sdk_ecs::types::{ContainerDefinition, ContainerInstance, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long the fake may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds an ECS client for `endpoint` with region us-east-1 and static
/// dummy credentials, so no credential or region provider chain (and no
/// instance metadata endpoint) is consulted. Retries use the standard
/// strategy with 3 attempts and a 10 ms initial backoff to keep tests fast.
pub fn ecs_client(endpoint: &str) -> aws_sdk_ecs::Client {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10));
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_ecs::Client::from_conf(config)
}

/// Reply of `POST /_fake/state`: what the seed created, in seed order.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedReply {
    pub clusters: Vec<SeededCluster>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeededCluster {
    pub name: String,
    pub arn: String,
    pub instances: Vec<SeededInstance>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeededInstance {
    pub arn: String,
    /// The 32 hex digits at the end of the ARN.
    pub id: String,
    pub ec2_instance_id: String,
}

/// Changes for `POST /_fake/instances/update`. Fields left `None` keep
/// their value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstanceUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_cpu: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_memory: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks: Option<u32>,
}

/// Reply of `GET /_fake/events`: event counts since the fake started, the
/// number of held events and the queue events go to.
#[derive(Debug, Clone, Deserialize)]
pub struct EventCounters {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub failed: u64,
    /// Events that the hold switch keeps back now.
    pub held: u64,
    pub queue_url: Option<String>,
}

/// Returns the CPU and MEMORY values of an instance's resource list.
pub fn cpu_and_memory(resources: &[Resource]) -> (i32, i32) {
    let value = |name: &str| {
        let resource = resources
            .iter()
            .find(|resource| resource.name() == Some(name));
        resource
            .unwrap_or_else(|| panic!("no {name} resource"))
            .integer_value()
    };
    (value("CPU"), value("MEMORY"))
}

/// Describes one container instance through the SDK.
pub async fn describe_one(fake: &FakeEcs, cluster: &str, instance: &str) -> ContainerInstance {
    let client = fake.client();
    let request = client.describe_container_instances().cluster(cluster);
    let output = request.container_instances(instance).send().await;
    output
        .expect("DescribeContainerInstances failed")
        .container_instances()[0]
        .clone()
}

/// Registers a task definition with one container, `main`, that reserves
/// `cpu` units and `memory` MiB, and returns its ARN. A task of it takes
/// exactly that much from its container instance.
pub async fn register_task_definition(
    client: &aws_sdk_ecs::Client,
    family: &str,
    cpu: i32,
    memory: i32,
) -> String {
    let container = ContainerDefinition::builder()
        .name("main")
        .image("busybox")
        .cpu(cpu)
        .memory(memory)
        .build();
    let request = client.register_task_definition().family(family);
    let output = request.container_definitions(container).send().await;
    let output = output.expect("RegisterTaskDefinition failed");
    let definition = output.task_definition().expect("no taskDefinition");
    let arn = definition
        .task_definition_arn()
        .expect("no taskDefinitionArn");
    arn.to_owned()
}

/// An ECS response read without the SDK.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub request_id: Option<String>,
    /// The `x-amzn-ErrorType` header of an error response.
    pub error_type: Option<String>,
    pub body: Value,
}

/// A running `tend-ecs-fake` process, killed on drop.
pub struct FakeEcs {
    child: Child,
    /// Kept open so that the fake never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    endpoint: String,
    http: reqwest::Client,
}

impl FakeEcs {
    /// Starts a fake with empty state.
    pub async fn start() -> Self {
        Self::start_with_args(&[]).await
    }

    /// Starts a fake with extra command-line arguments, such as
    /// `["--seed", path]`. Panics if it does not announce its address.
    pub async fn start_with_args(args: &[&str]) -> Self {
        // The fake's stderr goes to the test output, so it logs only
        // warnings and errors unless RUST_LOG asks for more.
        let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let mut child = Command::new(env!("CARGO_BIN_EXE_tend-ecs-fake"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to spawn tend-ecs-fake");
        let (stdout, endpoint) = read_endpoint(&mut child).await;

        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("failed to build the HTTP client");
        Self {
            child,
            _stdout: stdout,
            endpoint,
            http,
        }
    }

    /// Base URL, such as `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Builds an ECS client for this fake with `ecs_client`.
    pub fn client(&self) -> aws_sdk_ecs::Client {
        ecs_client(&self.endpoint)
    }

    /// Sends a POST to an admin endpoint and returns the status and the
    /// JSON body.
    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .json(body);
        let response = request.send().await.expect("admin request failed");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.expect("admin reply is not JSON"),
        )
    }

    async fn admin_post_ok(&self, path: &str, body: &Value) -> Value {
        let (status, reply) = self.admin_post(path, body).await;
        assert_eq!(status, 200, "POST {path} failed: {reply}");
        reply
    }

    /// Sends an ECS request without the SDK, so tests can check the wire
    /// format. `target` is the whole `X-Amz-Target` header value.
    pub async fn aws_raw(&self, target: Option<&str>, body: &str) -> RawReply {
        let mut request = self.http.post(format!("{}/", self.endpoint));
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        let request = request
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_owned());
        let response = request.send().await.expect("ECS request failed");
        let header = |name: &str| {
            let value = response.headers().get(name);
            value.map(|value| value.to_str().expect("ASCII header").to_owned())
        };
        let (content_type, request_id) = (header("content-type"), header("x-amzn-requestid"));
        let error_type = header("x-amzn-errortype");
        RawReply {
            status: response.status().as_u16(),
            content_type,
            request_id,
            error_type,
            body: response.json().await.expect("ECS reply is not JSON"),
        }
    }

    /// Replaces the fake's state with a seed document.
    pub async fn seed(&self, seed: &Value) -> SeedReply {
        let reply = self.admin_post_ok("/_fake/state", seed).await;
        serde_json::from_value(reply).expect("unexpected seed reply")
    }

    /// Empties the state, call counts and faults.
    pub async fn reset(&self) {
        self.admin_post_ok("/_fake/reset", &Value::Null).await;
    }

    /// Sends a GET to an admin endpoint, checks that it succeeded and
    /// returns the JSON body.
    async fn admin_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.endpoint);
        let response = self.http.get(url).send().await;
        let response = response.unwrap_or_else(|error| panic!("GET {path} failed: {error}"));
        assert_eq!(response.status().as_u16(), 200, "GET {path} failed");
        response.json().await.expect("admin reply is not JSON")
    }

    /// Returns the number of calls per ECS operation.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        let reply = self.admin_get("/_fake/calls").await;
        serde_json::from_value(reply).expect("unexpected calls reply")
    }

    /// Returns every task the fake placed, stopped ones included, in
    /// placement order. Each is an object with `arn`, `id`, `cluster`,
    /// `container_instance`, `ec2_instance_id`, `task_definition`,
    /// `last_status`, `desired_status`, `cpu`, `memory`, `client_token`,
    /// `started_by`, `group` and `stop_code`.
    pub async fn tasks(&self) -> Vec<Value> {
        let reply = self.admin_get("/_fake/tasks").await;
        serde_json::from_value(reply["tasks"].clone()).expect("unexpected tasks reply")
    }

    /// Makes the next `count` RunTask calls return one failure with
    /// `reason`, such as `RESOURCE:MEMORY` or `AGENT`, and no tasks.
    pub async fn stage_run_task_failures(&self, reason: &str, count: u32) {
        let body = serde_json::json!({ "reason": reason, "count": count });
        self.admin_post_ok("/_fake/run_task_failures", &body).await;
    }

    /// Sets how long tasks placed from now on stay PENDING and then run
    /// before they stop by themselves. `None` runs them until StopTask.
    pub async fn configure_tasks(&self, start_delay_ms: u32, run_time_ms: Option<u32>) {
        let body = serde_json::json!({
            "start_delay_ms": start_delay_ms,
            "run_time_ms": run_time_ms,
        });
        self.admin_post_ok("/_fake/tasks/config", &body).await;
    }

    pub async fn reset_calls(&self) {
        self.admin_post_ok("/_fake/calls/reset", &Value::Null).await;
    }

    /// Makes the next `count` calls of `operation` fail with error `code`.
    pub async fn inject_fault(&self, operation: &str, code: &str, count: u32) {
        let fault = serde_json::json!({ "operation": operation, "error": code, "count": count });
        self.admin_post_ok("/_fake/faults", &fault).await;
    }

    /// Sends an event for every instance and task change to `queue_url`
    /// through the SQS endpoint `sqs_endpoint`, such as moto's URL.
    pub async fn set_events_queue(&self, queue_url: &str, sqs_endpoint: &str) {
        let body = serde_json::json!({ "queue_url": queue_url, "endpoint": sqs_endpoint });
        self.admin_post_ok("/_fake/events", &body).await;
    }

    /// Stops sending events.
    pub async fn clear_events_queue(&self) {
        let body = serde_json::json!({ "queue_url": null });
        self.admin_post_ok("/_fake/events", &body).await;
    }

    /// Drops the next `count` events, as a lost event.
    pub async fn drop_events(&self, count: u32) {
        let body = serde_json::json!({ "count": count });
        self.admin_post_ok("/_fake/events/drop", &body).await;
    }

    /// Sends the next `count` events twice, as a duplicate delivery.
    pub async fn duplicate_events(&self, count: u32) {
        let body = serde_json::json!({ "count": count });
        self.admin_post_ok("/_fake/events/duplicate", &body).await;
    }

    /// Holds events back until `release_events`.
    pub async fn hold_events(&self) {
        self.admin_post_ok("/_fake/events/hold", &Value::Null).await;
    }

    /// Sends the held events newest first, as an out-of-order delivery,
    /// and returns how many it released.
    pub async fn release_events(&self) -> u64 {
        let reply = self
            .admin_post_ok("/_fake/events/release", &Value::Null)
            .await;
        reply["released"].as_u64().expect("no released count")
    }

    pub async fn event_counters(&self) -> EventCounters {
        let reply = self.admin_get("/_fake/events").await;
        serde_json::from_value(reply).expect("unexpected events reply")
    }

    /// Changes one container instance and returns it in the ECS JSON shape.
    pub async fn update_instance(
        &self,
        cluster: &str,
        container_instance: &str,
        update: &InstanceUpdate,
    ) -> Value {
        let mut body = serde_json::to_value(update).expect("update serializes");
        body["cluster"] = cluster.into();
        body["container_instance"] = container_instance.into();
        let reply = self.admin_post_ok("/_fake/instances/update", &body).await;
        reply["containerInstance"].clone()
    }
}

impl Drop for FakeEcs {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Reads the first stdout line of the fake and returns the endpoint it
/// announces. Stops the fake and panics if it announces none in time.
async fn read_endpoint(child: &mut Child) -> (BufReader<ChildStdout>, String) {
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let read_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).map(|_| line);
        (stdout, read)
    });
    let Ok(joined) = tokio::time::timeout(START_TIMEOUT, read_line).await else {
        stop(child);
        panic!("tend-ecs-fake printed no address within {START_TIMEOUT:?}");
    };

    let (stdout, read) = joined.expect("the stdout reader panicked");
    let line = read.unwrap_or_else(|error| {
        stop(child);
        panic!("failed to read the stdout of tend-ecs-fake: {error}");
    });
    match line.trim().strip_prefix("listening on ") {
        Some(endpoint) => (stdout, endpoint.to_owned()),
        None => {
            let status = stop(child);
            panic!("tend-ecs-fake did not announce an address: {line:?}, exit status {status:?}");
        }
    }
}

/// Kills the fake, which is this process's own child, and reaps it.
fn stop(child: &mut Child) -> Option<ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}
