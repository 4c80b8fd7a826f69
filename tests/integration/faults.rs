//! Each loop converges to the right state with faults injected on every
//! peer. 20% of requests to the ECS fake, moto (SQS and S3), Ghost, the
//! Instagram fake and Redis meet a reset, the peer's throttling error or a
//! 5xx, some after the peer has already acted on them. Another 20% are
//! delayed. Each test then checks the state directly, without faults.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Reconciler};

use crate::scheduler_flow::{assert_started_once, request_load, scheduler_env, wait_all_started};
use crate::support::ecs_fake::{FakeEcs, ecs_client};
use crate::support::env::{REDIS_URL, delete_keys, moto_endpoint, redis_config};
use crate::support::fault_proxy::{FaultProxy, Faults, address_of};
use crate::support::http_fault_proxy::{HttpFaultProxy, HttpFaults, Peer};
use crate::support::instagram_fake::InstagramFake;
use crate::support::unique;

/// The share of requests that fail, on every peer.
const RATE: f64 = 0.2;

/// Redis behind a fault proxy.
async fn faulty_redis() -> FaultProxy {
    FaultProxy::start(address_of("http://127.0.0.1:6379"), Faults::at(RATE)).await
}

/// moto behind a fault proxy.
async fn faulty_moto() -> HttpFaultProxy {
    HttpFaultProxy::start(&moto_endpoint(), Peer::Aws, HttpFaults::at(RATE)).await
}

#[tokio::test]
async fn capacity_cache_converges_through_faults() {
    let fake = FakeEcs::start().await;
    let name = unique("faulty");
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [
        {"count": 150, "cpu": 2048, "memory": 4096, "used_memory": 1024},
        {"count": 3, "cpu": 2048, "memory": 4096, "status": "DRAINING"}
    ]}]}))
    .await;
    let ecs_proxy = HttpFaultProxy::start(fake.endpoint(), Peer::Aws, HttpFaults::at(RATE)).await;
    let redis_proxy = faulty_redis().await;

    let mut config = redis_config(&format!("redis://{}", redis_proxy.address));
    config.key_prefix = unique("tendfaulty");
    let reconciler = CapacityReconciler::new(
        Observer::new(ecs_client(&ecs_proxy.url()), vec![name.clone()]),
        CapacityCache::new(Redis::new(&config).unwrap(), true),
        EcsMetrics::register(&prometheus::Registry::new()).unwrap(),
        2,
    );
    // Passes run back to back until ten have succeeded; failed ones in
    // between must not leave the cache wrong.
    let mut failed = 0;
    let mut succeeded = 0;
    while succeeded < 10 {
        match reconciler.reconcile(&CancellationToken::new()).await {
            Ok(_) => succeeded += 1,
            Err(_) => failed += 1,
        }
        assert!(failed < 100, "{failed} failed passes");
    }
    println!(
        "capacity: {failed} failed and {succeeded} good passes; ECS {}; Redis {}",
        ecs_proxy.counts.summary(),
        redis_proxy.summary()
    );
    assert!(ecs_proxy.counts.faults() > 0, "no ECS fault injected");
    assert!(
        redis_proxy.dropped.load(Ordering::Relaxed) > 0,
        "no Redis fault injected"
    );

    let mut direct = redis_config(REDIS_URL);
    direct.key_prefix = config.key_prefix.clone();
    let reader = CapacityReader::new(
        CapacityCache::new(Redis::new(&direct).unwrap(), true),
        Duration::from_secs(600),
    );
    let cached = reader.cluster(&name).await.unwrap();
    assert_eq!(cached.cluster.instances.len(), 153);
    assert_eq!(cached.summary.schedulable_instances, 150);
    assert_eq!(cached.summary.free_memory, 150 * 3072);
    delete_keys(&format!("{}:*", config.key_prefix));
    delete_keys(&format!("*cluster/{name}*"));
}

#[tokio::test]
async fn scheduler_starts_each_request_once_through_faults() {
    let fake = FakeEcs::start().await;
    let total = 40;
    let queues = request_load(&fake, "faultsched", total).await;
    let ecs_proxy = HttpFaultProxy::start(fake.endpoint(), Peer::Aws, HttpFaults::at(RATE)).await;
    let sqs_proxy = faulty_moto().await;
    let redis_proxy = faulty_redis().await;
    let redis_prefix = unique("tendfaultsched");
    let tend = scheduler_env(&fake, &queues, &format!("redis://{}", redis_proxy.address))
        .set("AWS_ENDPOINT_URL_ECS", &ecs_proxy.url())
        .set("AWS_ENDPOINT_URL_SQS", &sqs_proxy.url())
        .set("TEND_REDIS_KEY_PREFIX", &redis_prefix)
        // A message whose receive reply a fault dropped is visible again
        // after this.
        .set("TEND_SCHEDULER_VISIBILITY_TIMEOUT", "20s")
        .set("TEND_SCHEDULER_PASS_TIMEOUT", "10s")
        .spawn_run();

    let started = Instant::now();
    wait_all_started(&fake, &queues, total, Duration::from_secs(180), &tend).await;
    println!(
        "scheduler: {total} requests started in {:.1?}; ECS {}; SQS {}; Redis {}",
        started.elapsed(),
        ecs_proxy.counts.summary(),
        sqs_proxy.counts.summary(),
        redis_proxy.summary()
    );
    assert_started_once(&fake, &queues, total).await;
    let (_, metrics) = tend.get("/metrics").await;
    assert!(
        metrics.contains("tend_scheduler_priority_inversions_total 0"),
        "{metrics}"
    );
    assert!(ecs_proxy.counts.faults() > 0, "no ECS fault injected");
    assert!(sqs_proxy.counts.faults() > 0, "no SQS fault injected");
    drop(tend);
    delete_keys(&format!("{redis_prefix}:*"));
}

#[tokio::test]
async fn instagram_backfill_completes_once_through_faults() {
    // The CDN links the fake hands out point at the proxy too.
    let graph_listener = HttpFaultProxy::reserve().await;
    let graph_url = format!("http://{}", graph_listener.local_addr().unwrap());
    let fake = InstagramFake::start_with_args(&["--public-url", &graph_url]).await;
    let graph_proxy = HttpFaultProxy::start_on(
        graph_listener,
        fake.graph_url(),
        Peer::Instagram,
        HttpFaults::at(RATE),
    );
    let count = 20;
    let prefix = crate::instagram::media_id("faults");
    let reply = fake
        .generate(
            &json!({"count": count, "prefix": prefix, "start": "2021-01-01T00:00:00+0000",
                          "with_carousels": true, "with_videos": true}),
        )
        .await;
    assert_eq!(reply["created"], count, "{reply}");

    let (ghost_url, _) = crate::support::instagram::ghost_env();
    let ghost_proxy = HttpFaultProxy::start(&ghost_url, Peer::Ghost, HttpFaults::at(RATE)).await;
    let s3_proxy = faulty_moto().await;
    let redis_proxy = faulty_redis().await;
    let bucket = crate::support::instagram::bucket().await;
    let tag = format!("#{}", unique("tend-faults"));
    let mut env = crate::support::instagram::env_for(&fake, &bucket, &tag, &unique("tendfaults"));
    for (key, value) in [
        ("TEND_INSTAGRAM_API_URL", graph_proxy.url()),
        ("TEND_INSTAGRAM_GHOST_URL", ghost_proxy.url()),
        ("AWS_ENDPOINT_URL_S3", s3_proxy.url()),
        ("TEND_REDIS_URL", format!("redis://{}", redis_proxy.address)),
    ] {
        env.insert(key.to_owned(), value);
    }

    // One `reconcile --once` pass after another, until one succeeds with
    // nothing left to do.
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes <= 200, "no clean pass in 200");
        // Waits on a blocking thread: the runtime's thread runs the proxies.
        let mut command = crate::instagram::reconcile_once(&env, &[]);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("tend runs");
        let summary = String::from_utf8_lossy(&output.stdout);
        let idle = ["posts created: 0\n", "posts updated: 0\n", "archived: 0\n"]
            .iter()
            .all(|line| summary.contains(line));
        if output.status.success() && idle && !summary.contains("throttled") {
            break;
        }
    }
    println!(
        "instagram: {count} items in {passes} passes; Graph and CDN {}; Ghost {}; S3 {}; Redis {}",
        graph_proxy.counts.summary(),
        ghost_proxy.counts.summary(),
        s3_proxy.counts.summary(),
        redis_proxy.summary()
    );
    assert!(ghost_proxy.counts.faults() > 0, "no Ghost fault injected");
    assert!(
        graph_proxy.counts.faults() > 0,
        "no Graph API fault injected"
    );
    crate::support::instagram::check_backfill(&bucket, &tag, count).await;
}

#[tokio::test]
async fn events_follow_the_fake_through_faults() {
    let fake = FakeEcs::start().await;
    let name = unique("faultevents");
    let reply = fake
        .seed(&json!({"clusters": [{"name": name, "instance_groups": [{"count": 10, "cpu": 2048, "memory": 4096}]}]}))
        .await;
    let queue_url = crate::support::scheduler::events_queue().await;
    // The fake sends its events to moto directly, as EventBridge would.
    fake.set_events_queue(&queue_url, &moto_endpoint()).await;
    let ecs_proxy = HttpFaultProxy::start(fake.endpoint(), Peer::Aws, HttpFaults::at(RATE)).await;
    let sqs_proxy = faulty_moto().await;
    let redis_proxy = faulty_redis().await;
    let prefix = unique("tendfaultevents");
    // A full refresh every 10 minutes: after the first, only events can
    // bring the cache up to date.
    let tend = crate::support::tend::TendEnv::new(
        &ecs_proxy.url(),
        &format!("redis://{}", redis_proxy.address),
        &prefix,
    )
    .set("AWS_ENDPOINT_URL_SQS", &sqs_proxy.url())
    .set("TEND_ECS_CAPACITY_INTERVAL", "10m")
    .set("TEND_ECS_CAPACITY_MAX_AGE", "20m")
    .set("TEND_ECS_CAPACITY_EVENTS_QUEUE", &queue_url)
    .set("TEND_ECS_CAPACITY_EVENTS_WAIT", "1s")
    .spawn_run();
    tend.wait_ready(Duration::from_secs(60)).await;

    // Three changes per instance; the last one is what the cache must show.
    let instances = &reply.clusters[0].instances;
    for round in 0..3 {
        for (index, instance) in instances.iter().enumerate() {
            let update = crate::support::ecs_fake::InstanceUpdate {
                remaining_memory: Some(1000 * round + index as i32),
                ..Default::default()
            };
            fake.update_instance(&name, &instance.arn, &update).await;
        }
    }
    let mut direct = redis_config(REDIS_URL);
    direct.key_prefix = prefix.clone();
    let reader = CapacityReader::new(
        CapacityCache::new(Redis::new(&direct).unwrap(), true),
        Duration::from_secs(3600),
    );
    let expected = |index: usize| 2000 + index as i64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    loop {
        let cached = reader.cluster(&name).await.unwrap();
        let behind = instances
            .iter()
            .enumerate()
            .filter(|(index, instance)| {
                let found = cached
                    .cluster
                    .instances
                    .iter()
                    .find(|c| c.arn == instance.arn);
                found.map(|c| c.remaining_memory) != Some(expected(*index))
            })
            .count();
        if behind == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{behind} instances behind: {:?}\n{}",
            cached
                .cluster
                .instances
                .iter()
                .map(|c| c.remaining_memory)
                .collect::<Vec<_>>(),
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "events: 30 changes cached in {:.1?}; ECS {}; SQS {}; Redis {}",
        started.elapsed(),
        ecs_proxy.counts.summary(),
        sqs_proxy.counts.summary(),
        redis_proxy.summary()
    );
    drop(tend);
    delete_keys(&format!("{prefix}:*"));
    delete_keys(&format!("*cluster/{name}*"));
}
