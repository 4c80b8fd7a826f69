//! EventBridge events of the ECS fake, received from a moto SQS queue with
//! `aws-sdk-sqs`: the envelope, the container instance and task details,
//! `detail.version` order, and the drop, duplicate and hold switches.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerInstanceStatus, LaunchType, Resource};
use serde_json::{Value, json};

use crate::support::ecs_fake::{
    EventCounters, FakeEcs, InstanceUpdate, SeededInstance, register_task_definition,
};
use crate::support::env::{free_port, moto_endpoint};
use crate::support::scheduler::sqs_client;
use crate::support::unique;

const INSTANCE_EVENT: &str = "ECS Container Instance State Change";
const TASK_EVENT: &str = "ECS Task State Change";
/// How long a test waits for events to reach the queue.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

async fn create_queue() -> String {
    let output = sqs_client()
        .create_queue()
        .queue_name(unique("ecs-events"))
        .send()
        .await
        .expect("CreateQueue failed");
    output.queue_url().expect("no queue URL").to_owned()
}

/// Receives and deletes messages until `count` arrived, and returns their
/// bodies as JSON in the order received. Panics if fewer arrive in time.
async fn receive(queue_url: &str, count: usize) -> Vec<Value> {
    let client = sqs_client();
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    let mut events = Vec::new();
    while events.len() < count {
        assert!(
            Instant::now() < deadline,
            "received {} of {count} events in {RECEIVE_TIMEOUT:?}: {events:#?}",
            events.len()
        );
        let request = client.receive_message().queue_url(queue_url);
        let output = request.max_number_of_messages(10).wait_time_seconds(1);
        let output = output.send().await.expect("ReceiveMessage failed");
        for message in output.messages() {
            let body = message.body().expect("message without body");
            events.push(serde_json::from_str(body).expect("event is not JSON"));
            let handle = message.receipt_handle().expect("no receipt handle");
            let delete = client.delete_message().queue_url(queue_url);
            delete
                .receipt_handle(handle)
                .send()
                .await
                .expect("DeleteMessage failed");
        }
    }
    events
}

/// Checks that no message is waiting in the queue.
async fn assert_queue_empty(queue_url: &str) {
    let request = sqs_client().receive_message().queue_url(queue_url);
    let output = request.wait_time_seconds(1).send().await;
    let output = output.expect("ReceiveMessage failed");
    assert!(
        output.messages().is_empty(),
        "unexpected events: {:?}",
        output.messages()
    );
}

/// Polls the event counters until `done` holds for them.
async fn wait_for_counters(fake: &FakeEcs, done: impl Fn(&EventCounters) -> bool) -> EventCounters {
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    loop {
        let counters = fake.event_counters().await;
        if done(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "counters stayed {counters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a fake with cluster `alpha` and one instance of 2048 CPU units
/// and 4096 MiB, then points its events at a new queue. Seeding records no
/// events, so the queue starts empty.
async fn start_seeded() -> (FakeEcs, SeededInstance, String) {
    let fake = FakeEcs::start().await;
    let group = json!({ "count": 1, "cpu": 2048, "memory": 4096 });
    let seed = json!({ "clusters": [{ "name": "alpha", "instance_groups": [group] }] });
    let instance = fake
        .seed(&seed)
        .await
        .clusters
        .remove(0)
        .instances
        .remove(0);
    let queue_url = create_queue().await;
    fake.set_events_queue(&queue_url, &moto_endpoint()).await;
    (fake, instance, queue_url)
}

/// Sets the remaining CPU of `alpha`'s instance, one instance change.
async fn set_remaining_cpu(fake: &FakeEcs, instance: &SeededInstance, cpu: i32) {
    let update = InstanceUpdate {
        remaining_cpu: Some(cpu),
        ..InstanceUpdate::default()
    };
    fake.update_instance("alpha", &instance.arn, &update).await;
}

fn integer_resource(detail: &Value, list: &str, name: &str) -> i64 {
    let resources = detail[list].as_array().expect("resources are an array");
    let resource = resources.iter().find(|resource| resource["name"] == name);
    let resource = resource.unwrap_or_else(|| panic!("no {name} in {list}"));
    assert_eq!(resource["type"], "INTEGER");
    resource["integerValue"].as_i64().expect("integerValue")
}

fn assert_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("time {value} is not a string"));
    humantime::parse_rfc3339(text).unwrap_or_else(|error| panic!("time {text:?}: {error}"));
}

fn assert_envelope(event: &Value, detail_type: &str, arn: &str) {
    assert_eq!(event["version"], "0");
    assert_eq!(event["detail-type"], detail_type);
    assert_eq!(event["source"], "aws.ecs");
    assert_eq!(event["account"], "123456789012");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(event["resources"], json!([arn]));
    let id = event["id"].as_str().expect("id is a string");
    assert_eq!(id.len(), 36, "id {id:?} is not in the UUID layout");
    assert_eq!(
        id.matches('-').count(),
        4,
        "id {id:?} is not in the UUID layout"
    );
    assert_time(&event["time"]);
    assert_time(&event["detail"]["updatedAt"]);
}

/// Returns the `detail.version` of each event, in order.
fn versions(events: &[&Value]) -> Vec<i64> {
    let version = |event: &&Value| event["detail"]["version"].as_i64().expect("no version");
    events.iter().map(version).collect()
}

fn assert_increasing(versions: &[i64]) {
    let increasing = versions.windows(2).all(|pair| pair[0] < pair[1]);
    assert!(increasing, "versions {versions:?} do not increase");
}

fn of_type<'a>(events: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    (events.iter())
        .filter(|event| event["detail-type"] == detail_type)
        .collect()
}

#[tokio::test]
async fn instance_events_follow_changes() {
    let queue_url = create_queue().await;
    let moto = moto_endpoint();
    let args = ["--events-queue-url", &queue_url, "--sqs-endpoint", &moto];
    let fake = FakeEcs::start_with_args(&args).await;
    let client = fake.client();
    client
        .create_cluster()
        .cluster_name("alpha")
        .send()
        .await
        .expect("CreateCluster failed");

    let cpu = Resource::builder()
        .name("CPU")
        .r#type("INTEGER")
        .integer_value(2048)
        .build();
    let memory = Resource::builder()
        .name("MEMORY")
        .r#type("INTEGER")
        .integer_value(4096);
    let register = client.register_container_instance().cluster("alpha");
    let register = register
        .total_resources(cpu)
        .total_resources(memory.build());
    let output = register
        .send()
        .await
        .expect("RegisterContainerInstance failed");
    let instance = output.container_instance().expect("no containerInstance");
    let arn = instance
        .container_instance_arn()
        .expect("no ARN")
        .to_owned();
    let ec2_instance_id = instance.ec2_instance_id().expect("no EC2 id").to_owned();

    let drain = client.update_container_instances_state().cluster("alpha");
    let drain = drain
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Draining);
    drain
        .send()
        .await
        .expect("UpdateContainerInstancesState failed");
    let update = InstanceUpdate {
        remaining_cpu: Some(1024),
        agent_connected: Some(false),
        ..InstanceUpdate::default()
    };
    fake.update_instance("alpha", &arn, &update).await;
    let deregister = client.deregister_container_instance().cluster("alpha");
    deregister
        .container_instance(&arn)
        .send()
        .await
        .expect("Deregister failed");

    let events = receive(&queue_url, 4).await;
    for event in &events {
        assert_envelope(event, INSTANCE_EVENT, &arn);
        let detail = &event["detail"];
        assert_eq!(
            detail["clusterArn"],
            "arn:aws:ecs:us-east-1:123456789012:cluster/alpha"
        );
        assert_eq!(detail["containerInstanceArn"], arn.as_str());
        assert_eq!(detail["ec2InstanceId"], ec2_instance_id.as_str());
        assert_eq!(integer_resource(detail, "registeredResources", "CPU"), 2048);
        assert_eq!(
            integer_resource(detail, "registeredResources", "MEMORY"),
            4096
        );
        assert_eq!(detail["runningTasksCount"], 0);
        assert_eq!(detail["pendingTasksCount"], 0);
        assert_time(&detail["registeredAt"]);
    }
    let details: Vec<&Value> = events.iter().map(|event| &event["detail"]).collect();
    let statuses: Vec<&Value> = details.iter().map(|detail| &detail["status"]).collect();
    assert_eq!(
        statuses,
        [
            &json!("ACTIVE"),
            &json!("DRAINING"),
            &json!("DRAINING"),
            &json!("INACTIVE")
        ]
    );
    let remaining_cpu: Vec<i64> = (details.iter())
        .map(|detail| integer_resource(detail, "remainingResources", "CPU"))
        .collect();
    assert_eq!(remaining_cpu, [2048, 2048, 1024, 1024]);
    assert_eq!(details[0]["agentConnected"], true);
    assert_eq!(details[2]["agentConnected"], false);
    assert_increasing(&versions(&events.iter().collect::<Vec<_>>()));

    let counters = wait_for_counters(&fake, |counters| counters.sent == 4).await;
    assert_eq!(counters.failed, 0);
    assert_eq!(counters.queue_url.as_deref(), Some(queue_url.as_str()));
}

#[tokio::test]
async fn task_events_cover_lifecycle() {
    let (fake, instance, queue_url) = start_seeded().await;
    let client = fake.client();
    register_task_definition(&client, "job", 256, 512).await;
    let run = client.run_task().cluster("alpha").task_definition("job");
    let run = run.launch_type(LaunchType::Ec2).started_by("tests");
    let output = run.send().await.expect("RunTask failed");
    let task_arn = output.tasks()[0]
        .task_arn()
        .expect("no task ARN")
        .to_owned();

    // The fake applies task starts every 100 ms while events are on, so
    // the task turns RUNNING without another ECS request.
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    while fake.tasks().await[0]["last_status"] != "RUNNING" {
        assert!(Instant::now() < deadline, "task never turned RUNNING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = client
        .stop_task()
        .cluster("alpha")
        .task(&task_arn)
        .reason("done");
    stop.send().await.expect("StopTask failed");

    // Three task events and three instance events: placed, started, stopped.
    let events = receive(&queue_url, 6).await;
    let tasks = of_type(&events, TASK_EVENT);
    let statuses: Vec<&Value> = tasks
        .iter()
        .map(|event| &event["detail"]["lastStatus"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("PENDING"), &json!("RUNNING"), &json!("STOPPED")]
    );
    assert_eq!(versions(&tasks), [1, 2, 3]);
    for event in &tasks {
        assert_envelope(event, TASK_EVENT, &task_arn);
        let detail = &event["detail"];
        assert_eq!(detail["taskArn"], task_arn.as_str());
        assert_eq!(
            detail["clusterArn"],
            "arn:aws:ecs:us-east-1:123456789012:cluster/alpha"
        );
        assert_eq!(detail["containerInstanceArn"], instance.arn.as_str());
        assert_eq!(detail["cpu"], "256");
        assert_eq!(detail["memory"], "512");
        assert_eq!(detail["startedBy"], "tests");
        assert_eq!(detail["group"], "family:job");
        assert_time(&detail["createdAt"]);
    }
    assert_eq!(tasks[0]["detail"]["desiredStatus"], "RUNNING");
    assert_time(&tasks[1]["detail"]["startedAt"]);
    let stopped = &tasks[2]["detail"];
    assert_eq!(stopped["desiredStatus"], "STOPPED");
    assert_eq!(stopped["stoppedReason"], "done");
    assert_eq!(stopped["stopCode"], "UserInitiated");

    let instances = of_type(&events, INSTANCE_EVENT);
    assert_increasing(&versions(&instances));
    let counts: Vec<(i64, i64, i64)> = (instances.iter())
        .map(|event| {
            let detail = &event["detail"];
            let cpu = integer_resource(detail, "remainingResources", "CPU");
            let pending = detail["pendingTasksCount"]
                .as_i64()
                .expect("pendingTasksCount");
            let running = detail["runningTasksCount"]
                .as_i64()
                .expect("runningTasksCount");
            (cpu, pending, running)
        })
        .collect();
    assert_eq!(counts, [(1792, 1, 0), (1792, 0, 1), (2048, 0, 0)]);
}

#[tokio::test]
async fn drop_switch_loses_next_event() {
    let (fake, instance, queue_url) = start_seeded().await;
    fake.drop_events(1).await;
    set_remaining_cpu(&fake, &instance, 1000).await;
    set_remaining_cpu(&fake, &instance, 900).await;

    let events = receive(&queue_url, 1).await;
    let detail = &events[0]["detail"];
    assert_eq!(integer_resource(detail, "remainingResources", "CPU"), 900);
    // The seed registered the instance at version 1.
    assert_eq!(detail["version"], 3);
    let counters = wait_for_counters(&fake, |counters| counters.sent == 1).await;
    assert_eq!(counters.dropped, 1);
    assert_queue_empty(&queue_url).await;
}

#[tokio::test]
async fn duplicate_switch_repeats_next_event() {
    let (fake, instance, queue_url) = start_seeded().await;
    fake.duplicate_events(1).await;
    set_remaining_cpu(&fake, &instance, 1000).await;
    set_remaining_cpu(&fake, &instance, 900).await;

    let events = receive(&queue_url, 3).await;
    assert_eq!(versions(&events.iter().collect::<Vec<_>>()), [2, 2, 3]);
    assert_eq!(
        events[0]["id"], events[1]["id"],
        "a duplicate keeps its event id"
    );
    let counters = wait_for_counters(&fake, |counters| counters.sent == 3).await;
    assert_eq!(counters.duplicated, 1);
}

#[tokio::test]
async fn hold_switch_releases_newest_first() {
    let (fake, instance, queue_url) = start_seeded().await;
    fake.hold_events().await;
    for cpu in [1000, 900, 800] {
        set_remaining_cpu(&fake, &instance, cpu).await;
    }
    assert_eq!(fake.event_counters().await.held, 3);
    assert_queue_empty(&queue_url).await;

    assert_eq!(fake.release_events().await, 3);
    let events = receive(&queue_url, 3).await;
    assert_eq!(versions(&events.iter().collect::<Vec<_>>()), [4, 3, 2]);

    // After the release, events flow in order again.
    set_remaining_cpu(&fake, &instance, 700).await;
    let events = receive(&queue_url, 1).await;
    assert_eq!(events[0]["detail"]["version"], 5);
    assert_eq!(fake.event_counters().await.held, 0);
}

#[tokio::test]
async fn failed_send_counted_not_fatal() {
    let (fake, instance, _queue_url) = start_seeded().await;
    // Nothing listens on a port that was free a moment ago, so the
    // connection is refused.
    let dead_endpoint = format!("http://127.0.0.1:{}", free_port());
    let queue_url = format!("{dead_endpoint}/123456789012/missing");
    fake.set_events_queue(&queue_url, &dead_endpoint).await;
    set_remaining_cpu(&fake, &instance, 1000).await;

    let counters = wait_for_counters(&fake, |counters| counters.failed == 1).await;
    assert_eq!(counters.sent, 0);
    set_remaining_cpu(&fake, &instance, 900).await;
    fake.clear_events_queue().await;
    assert_eq!(fake.event_counters().await.queue_url, None);
}

#[tokio::test]
async fn events_admin_rejects_invalid_targets() {
    let fake = FakeEcs::start().await;
    let cases = [
        (
            json!({ "queue_url": "queue", "endpoint": "http://127.0.0.1:1" }),
            "queue_url",
        ),
        (json!({ "queue_url": "http://127.0.0.1:1/1/q" }), "endpoint"),
        (
            json!({ "queue_url": "http://127.0.0.1:1/1/q", "endpoint": "127.0.0.1" }),
            "endpoint",
        ),
        (
            json!({ "queue_url": "http://127.0.0.1:1/1/q", "region": "x" }),
            "region",
        ),
    ];
    for (body, field) in cases {
        let (status, reply) = fake.admin_post("/_fake/events", &body).await;
        assert_eq!(status, 400, "{body} was accepted: {reply}");
        let message = reply["error"].as_str().expect("no error message");
        assert!(
            message.starts_with(field),
            "{body}: unexpected error {message:?}"
        );
    }
    let (status, reply) = fake.admin_post("/_fake/events/drop", &json!({})).await;
    assert_eq!(status, 400, "drop without count was accepted: {reply}");
    let counters = fake.event_counters().await;
    assert_eq!(counters.queue_url, None);
    assert_eq!(counters.sent, 0);
}
