//! The ecs-events loop: EventBridge-shaped ECS events from an SQS queue in
//! moto applied to the capacity cache in version order.

use std::time::Duration;

use serde_json::{Value, json};
use tend::ecs_capacity::events::{EventMetrics, EventsReconciler};
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::runtime::{CancellationToken, Reconciler};

use crate::support::ecs_fake::{FakeEcs, InstanceUpdate, ecs_client};
use crate::support::env::shared_redis;
use crate::support::scheduler::sqs_client;
use crate::support::unique;

fn resources(cpu: i64, memory: i64) -> Value {
    json!([{"name": "CPU", "type": "INTEGER", "integerValue": cpu},
           {"name": "MEMORY", "type": "INTEGER", "integerValue": memory}])
}

fn instance_event(cluster: &str, instance: &str, version: i64, memory: i64) -> String {
    json!({
        "version": "0", "id": unique("event"), "detail-type": "ECS Container Instance State Change",
        "source": "aws.ecs", "account": "123456789012", "region": "us-east-1",
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "resources": [instance],
        "detail": {"clusterArn": cluster, "containerInstanceArn": instance, "ec2InstanceId": "i-0000000000000001",
                   "status": "ACTIVE", "agentConnected": true, "runningTasksCount": 0, "pendingTasksCount": 0,
                   "version": version, "registeredResources": resources(2048, 4096),
                   "remainingResources": resources(2048, memory)}
    })
    .to_string()
}

#[tokio::test]
async fn events_applied_in_version_order() {
    let fake = FakeEcs::start().await;
    let name = unique("events");
    let reply = fake
        .seed(&json!({"clusters": [{"name": name, "instance_groups": [{"cpu": 2048, "memory": 4096}]}]}))
        .await;
    let instance_arn = reply.clusters[0].instances[0].arn.clone();
    let redis = shared_redis();
    let cache = CapacityCache::new(redis, true);
    let registry = prometheus::Registry::new();
    let ecs = ecs_client(fake.endpoint());
    let capacity = CapacityReconciler::new(
        Observer::new(ecs.clone(), Vec::new()),
        cache.clone(),
        EcsMetrics::register(&registry).unwrap(),
        2,
    );
    capacity.reconcile(&CancellationToken::new()).await.unwrap();
    let reader = CapacityReader::new(cache.clone(), Duration::from_secs(60));
    let cached = reader.cluster(&name).await.unwrap();
    let (cluster_arn, version) = (
        cached.cluster.arn.clone(),
        cached.cluster.instances[0].version,
    );

    let sqs = sqs_client();
    let queue_url = crate::support::scheduler::events_queue().await;
    let events = EventsReconciler::new(
        sqs.clone(),
        ecs,
        cache.clone(),
        queue_url.clone(),
        Duration::from_secs(1),
        EventMetrics::register(&registry).unwrap(),
    );
    let send = |body: String| {
        let (sqs, url) = (sqs.clone(), queue_url.clone());
        async move {
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let memory =
        || async { reader.cluster(&name).await.unwrap().cluster.instances[0].remaining_memory };

    // A newer event applies; an older one and a duplicate do not.
    send(instance_event(
        &cluster_arn,
        &instance_arn,
        version + 2,
        256,
    ))
    .await;
    events.reconcile(&CancellationToken::new()).await.unwrap();
    assert_eq!(memory().await, 256);
    send(instance_event(
        &cluster_arn,
        &instance_arn,
        version + 1,
        4096,
    ))
    .await;
    send(instance_event(
        &cluster_arn,
        &instance_arn,
        version + 2,
        256,
    ))
    .await;
    send("not an event".to_owned()).await;
    events.reconcile(&CancellationToken::new()).await.unwrap();
    assert_eq!(memory().await, 256);

    // A task event makes tend read the instance, as ECS reports it now.
    let update = InstanceUpdate {
        remaining_memory: Some(100),
        ..InstanceUpdate::default()
    };
    // Three changes take the fake's version past the events sent above.
    for _ in 0..3 {
        fake.update_instance(&name, &instance_arn, &update).await;
    }
    let task_event = json!({
        "version": "0", "id": unique("event"), "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "detail": {"clusterArn": cluster_arn, "containerInstanceArn": instance_arn, "lastStatus": "RUNNING", "version": 2}
    });
    send(task_event.to_string()).await;
    events.reconcile(&CancellationToken::new()).await.unwrap();
    assert_eq!(memory().await, 100);

    let metrics = tend::metrics::encode(&registry).unwrap();
    for line in [
        "tend_ecs_events_total{result=\"applied\"} 1",
        "tend_ecs_events_total{result=\"ignored_older\"} 2",
        "tend_ecs_events_total{result=\"malformed\"} 1",
        "tend_ecs_events_total{result=\"instance_read\"} 1",
        "tend_ecs_event_latency_seconds_count 2",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    // Every message was deleted.
    let left = sqs
        .receive_message()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
    assert!(left.messages().is_empty());

    // A lost event is repaired by the next full refresh.
    let update = InstanceUpdate {
        remaining_memory: Some(3000),
        ..InstanceUpdate::default()
    };
    fake.update_instance(&name, &instance_arn, &update).await;
    capacity.reconcile(&CancellationToken::new()).await.unwrap();
    assert_eq!(memory().await, 3000);
}

#[tokio::test]
async fn run_follows_fake_events_between_refreshes() {
    let fake = FakeEcs::start().await;
    let name = unique("events-run");
    let reply = fake
        .seed(&json!({"clusters": [{"name": name, "instance_groups": [{"cpu": 2048, "memory": 4096}]}]}))
        .await;
    let instance_arn = reply.clusters[0].instances[0].arn.clone();
    let queue_url = crate::support::scheduler::events_queue().await;
    fake.set_events_queue(&queue_url, &crate::support::env::moto_endpoint())
        .await;
    let prefix = unique("tendevents");
    // A full refresh every 10 minutes: only events can update the cache here.
    let env = crate::support::tend::TendEnv::new(
        fake.endpoint(),
        crate::support::env::REDIS_URL,
        &prefix,
    )
    .set(
        "AWS_ENDPOINT_URL_SQS",
        &crate::support::env::moto_endpoint(),
    )
    .set("TEND_ECS_CAPACITY_INTERVAL", "10m")
    .set("TEND_ECS_CAPACITY_MAX_AGE", "20m")
    .set("TEND_ECS_CAPACITY_EVENTS_QUEUE", &queue_url)
    .set("TEND_ECS_CAPACITY_EVENTS_WAIT", "2s");
    let tend = env.spawn_run();
    tend.wait_ready(Duration::from_secs(30)).await;

    let update = InstanceUpdate {
        remaining_memory: Some(1234),
        ..InstanceUpdate::default()
    };
    fake.update_instance(&name, &instance_arn, &update).await;
    let mut config = crate::support::env::redis_config(crate::support::env::REDIS_URL);
    config.key_prefix = prefix.clone();
    let reader = CapacityReader::new(
        CapacityCache::new(tend::redis_client::Redis::new(&config).unwrap(), true),
        Duration::from_secs(3600),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cached = reader.cluster(&name).await.unwrap();
        if cached.cluster.instances[0].remaining_memory == 1234 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "event not applied:\n{}",
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = tend.get("/metrics").await;
    assert!(
        metrics.contains("tend_ecs_events_total{result=\"applied\"}"),
        "{metrics}"
    );
    drop(tend);
    crate::support::env::delete_keys(&format!("{prefix}:*"));
    crate::support::env::delete_keys(&format!("*cluster/{name}*"));
}

#[tokio::test]
async fn task_event_kept_when_instance_unreadable() {
    use crate::support::http_fault_proxy::{HttpFaultProxy, HttpFaults, Peer};
    let fake = FakeEcs::start().await;
    let name = unique("events-unread");
    let reply = fake
        .seed(&json!({"clusters": [{"name": name, "instance_groups": [{"cpu": 2048, "memory": 4096}]}]}))
        .await;
    let instance_arn = reply.clusters[0].instances[0].arn.clone();
    let cache = CapacityCache::new(shared_redis(), true);
    let registry = prometheus::Registry::new();
    CapacityReconciler::new(
        Observer::new(ecs_client(fake.endpoint()), vec![name.clone()]),
        cache.clone(),
        EcsMetrics::register(&registry).unwrap(),
        2,
    )
    .reconcile(&CancellationToken::new())
    .await
    .unwrap();
    let cluster_arn = CapacityReader::new(cache.clone(), Duration::from_secs(60))
        .cluster(&name)
        .await
        .unwrap()
        .cluster
        .arn;

    // ECS fails every call, so the instance behind a task event stays unread.
    let broken = HttpFaults {
        error: 1.0,
        ..HttpFaults::at(0.0)
    };
    let ecs_proxy = HttpFaultProxy::start(fake.endpoint(), Peer::Aws, broken).await;
    let sqs = sqs_client();
    let queue_url = crate::support::scheduler::events_queue().await;
    let events = EventsReconciler::new(
        sqs.clone(),
        ecs_client(&ecs_proxy.url()),
        cache,
        queue_url.clone(),
        Duration::from_secs(1),
        EventMetrics::register(&registry).unwrap(),
    );
    let task_event = json!({
        "version": "0", "id": unique("event"), "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "detail": {"clusterArn": cluster_arn, "containerInstanceArn": instance_arn, "lastStatus": "RUNNING", "version": 2}
    });
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(task_event.to_string())
        .send()
        .await
        .unwrap();
    events.reconcile(&CancellationToken::new()).await.unwrap();

    assert!(ecs_proxy.counts.faults() > 0, "ECS was never asked");
    assert_eq!(
        messages_in_flight(&sqs, &queue_url).await,
        1,
        "the task event was deleted although its instance was never read"
    );
    crate::support::env::delete_keys(&format!("*cluster/{name}*"));
}

#[tokio::test]
async fn task_event_of_unknown_cluster_dropped() {
    let fake = FakeEcs::start().await;
    let cache = CapacityCache::new(shared_redis(), true);
    let registry = prometheus::Registry::new();
    let sqs = sqs_client();
    let queue_url = crate::support::scheduler::events_queue().await;
    let events = EventsReconciler::new(
        sqs.clone(),
        ecs_client(fake.endpoint()),
        cache,
        queue_url.clone(),
        Duration::from_secs(1),
        EventMetrics::register(&registry).unwrap(),
    );
    // ECS returns ClusterNotFoundException, which no retry changes.
    let cluster_arn = format!(
        "arn:aws:ecs:us-east-1:123456789012:cluster/{}",
        unique("gone")
    );
    let task_event = json!({
        "version": "0", "id": unique("event"), "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "detail": {"clusterArn": cluster_arn,
                   "containerInstanceArn": format!("{cluster_arn}/0123456789abcdef"),
                   "lastStatus": "RUNNING", "version": 2}
    });
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(task_event.to_string())
        .send()
        .await
        .unwrap();
    events.reconcile(&CancellationToken::new()).await.unwrap();

    assert_eq!(
        messages_in_flight(&sqs, &queue_url).await,
        0,
        "an event that can never be applied stays queued"
    );
}

/// Messages received from `queue_url` and neither deleted nor visible yet.
async fn messages_in_flight(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible as InFlight;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(InFlight)
        .send()
        .await
        .unwrap();
    attributes
        .attributes()
        .and_then(|a| a.get(&InFlight))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
