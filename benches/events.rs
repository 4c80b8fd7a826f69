//! Event-to-cache latency of the ecs-events loop (ECS fake → SQS in moto →
//! tend → Redis), next to the staleness of refreshing by polling alone.
//!
//! Run with `testbed/bench.sh events`, which starts moto.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fake, ecs_client};
use serde_json::json;
use tend::config::{RedisConfig, RedisUrl};
use tend::ecs_capacity::events::{EventMetrics, EventsReconciler};
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, LoopMetrics, Reconciler, Runner, Schedule, StatusBoard};
use tokio::task::JoinSet;

const CHANGES: usize = 50;
const POLL_INTERVAL: Duration = Duration::from_secs(5);

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * fraction).round() as usize]
}

fn schedule(interval: Duration) -> Schedule {
    Schedule {
        interval,
        jitter: 0.1,
        pass_timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
    }
}

/// Changes the instance `count` times and measures how long each change
/// takes to show in the cache.
async fn measure(
    fake: &Fake,
    reader: &CapacityReader,
    instance: &str,
    count: usize,
    base: i64,
) -> Vec<Duration> {
    let mut samples = Vec::new();
    for n in 0..count {
        // Spread the changes over the polling cycle.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..400))).await;
        let memory = base + n as i64;
        let started = Instant::now();
        fake.post(
            "/_fake/instances/update",
            &json!({"cluster": "events", "container_instance": instance, "remaining_memory": memory}),
        )
        .await;
        loop {
            let cached = reader.cluster("events").await.expect("cluster cached");
            if cached.cluster.instances[0].remaining_memory == memory {
                samples.push(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    samples
}

#[tokio::main]
async fn main() {
    let moto = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run testbed/bench.sh events");
    let fake = Fake::start();
    let reply = fake
        .post("/_fake/state", &json!({"clusters": [{"name": "events", "instance_groups": [{"cpu": 2048, "memory": 4096}]}]}))
        .await;
    let instance = reply["clusters"][0]["instances"][0]["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .endpoint_url(&moto)
            .build(),
    );
    let queue = sqs
        .create_queue()
        .queue_name(format!("bench-events-{}", std::process::id()))
        .send()
        .await
        .expect("CreateQueue");
    let queue_url = queue.queue_url().unwrap().to_owned();
    fake.post(
        "/_fake/events",
        &json!({"queue_url": queue_url, "endpoint": moto}),
    )
    .await;

    let prefix = format!("bench-events-{}", std::process::id());
    let redis = Redis::new(&RedisConfig {
        url: RedisUrl::new("redis://127.0.0.1:6379"),
        key_prefix: prefix,
        seed_keys: true,
        timeout: Duration::from_secs(5),
    })
    .expect("valid Redis URL");
    let cache = CapacityCache::new(redis, true);
    let registry = prometheus::Registry::new();
    let ecs = ecs_client(&fake.endpoint);
    let capacity = CapacityReconciler::new(
        Observer::new(ecs.clone(), vec!["events".into()]),
        cache.clone(),
        EcsMetrics::register(&registry).unwrap(),
        1,
    );
    capacity
        .reconcile(&CancellationToken::new())
        .await
        .expect("first refresh");
    let reader = CapacityReader::new(cache.clone(), Duration::from_secs(3600));
    let runner = Runner::new(
        StatusBoard::default(),
        LoopMetrics::register(&registry).unwrap(),
    );

    println!("## Event-to-cache latency ({CHANGES} instance changes)\n");
    let events = EventsReconciler::new(
        sqs,
        ecs,
        cache.clone(),
        queue_url,
        Duration::from_secs(5),
        EventMetrics::register(&registry).unwrap(),
    );
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    runner.spawn(
        &mut tasks,
        Arc::new(events),
        schedule(Duration::from_secs(5)),
        stop.clone(),
    );
    let mut with_events = measure(&fake, &reader, &instance, CHANGES, 1000).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    println!(
        "events, long polling: p50 {:.0?}, p99 {:.0?}, max {:.0?}",
        percentile(&mut with_events, 0.5),
        percentile(&mut with_events, 0.99),
        with_events.last().unwrap()
    );

    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    runner.spawn(
        &mut tasks,
        Arc::new(capacity),
        schedule(POLL_INTERVAL),
        stop.clone(),
    );
    let mut polling = measure(&fake, &reader, &instance, 20, 2000).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    println!(
        "polling only, full refresh every {POLL_INTERVAL:?}: p50 {:.1?}, p99 {:.1?} (20 changes)",
        percentile(&mut polling, 0.5),
        percentile(&mut polling, 0.99)
    );
}
