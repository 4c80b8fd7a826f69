//! Scheduler placement against the ECS fake's RunTask, moto's SQS and Redis:
//! priority order, capacity rejections, redelivery, replicas, outages and
//! shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::ecs_fake::{FakeEcs, ecs_client};
use crate::support::env::PrivateRedis;
use crate::support::scheduler::{Harness, Options, Queues};
use crate::support::tend::TendEnv;
use crate::support::unique;

/// Registers a task definition of one container with `cpu` and `memory`.
pub(crate) async fn task_definition(endpoint: &str, family: &str, cpu: i32, memory: i32) -> String {
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("main")
        .image("example/worker:1")
        .cpu(cpu)
        .memory(memory)
        .build();
    let reply = ecs_client(endpoint)
        .register_task_definition()
        .family(family)
        .container_definitions(container)
        .send()
        .await
        .expect("RegisterTaskDefinition");
    reply
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_owned()
}

/// Every task the fake started, oldest first, as DescribeTasks shows them
/// (fields `startedBy`, `createdAt` in seconds, `lastStatus`).
pub(crate) async fn fake_tasks(fake: &FakeEcs) -> Vec<Value> {
    tasks_of(fake.endpoint()).await
}

pub async fn tasks_of(endpoint: &str) -> Vec<Value> {
    use aws_sdk_ecs::types::DesiredStatus;
    let client = ecs_client(endpoint);
    let clusters = client.list_clusters().send().await.expect("ListClusters");
    let mut tasks = Vec::new();
    for cluster in clusters.cluster_arns() {
        let mut arns = Vec::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut pages = client
                .list_tasks()
                .cluster(cluster)
                .desired_status(status)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                arns.extend(page.expect("ListTasks").task_arns().iter().cloned());
            }
        }
        for chunk in arns.chunks(100) {
            let described = client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .expect("DescribeTasks");
            for task in described.tasks() {
                tasks.push(json!({
                    "taskArn": task.task_arn(),
                    "startedBy": task.started_by(),
                    "lastStatus": task.last_status(),
                    "createdAt": task.created_at().map(|t| t.as_secs_f64()),
                }));
            }
        }
    }
    tasks.sort_by(|a, b| {
        let at = |t: &Value| t["createdAt"].as_f64().unwrap_or(0.0);
        at(a)
            .total_cmp(&at(b))
            .then_with(|| a["taskArn"].as_str().cmp(&b["taskArn"].as_str()))
    });
    tasks
}

async fn configure_tasks(fake: &FakeEcs, run_time_ms: u64) {
    let (status, body) = fake
        .admin_post(
            "/_fake/tasks/config",
            &json!({"start_delay_ms": 0, "run_time_ms": run_time_ms}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn stage_failures(fake: &FakeEcs, reason: &str, count: u32) {
    let (status, body) = fake
        .admin_post(
            "/_fake/run_task_failures",
            &json!({"reason": reason, "count": count}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub(crate) fn request(cluster: &str, family: &str, memory: i64, started_by: &str) -> String {
    json!({"cluster": cluster, "task_definition": family, "cpu": 100, "memory": memory, "started_by": started_by})
        .to_string()
}

pub(crate) async fn run_task_calls(fake: &FakeEcs) -> u64 {
    fake.calls().await.get("RunTask").copied().unwrap_or(0)
}

#[tokio::test]
async fn high_priority_overtakes_waiting_low() {
    let fake = FakeEcs::start().await;
    let cluster = unique("s1");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 1024, "memory": 512}]}]}))
        .await;
    configure_tasks(&fake, 1500).await;
    task_definition(fake.endpoint(), "s1-worker", 100, 100).await;
    let queues = Queues::create(2, None).await;
    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tends1"),
        &Options::default(),
    );

    for _ in 0..100 {
        queues
            .send(1, &request(&cluster, "s1-worker", 100, "low"))
            .await;
    }
    // Fill the instance with low-priority tasks first.
    harness.refresh().await;
    for _ in 0..3 {
        harness.round().await.expect("round succeeds");
    }
    let before_high = fake_tasks(&fake).await.len();
    assert_eq!(before_high, 5, "512 MiB holds five 100 MiB tasks");
    for _ in 0..5 {
        queues
            .send(0, &request(&cluster, "s1-worker", 100, "high"))
            .await;
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.refresh().await;
        harness.round().await.expect("round succeeds");
        let tasks = fake_tasks(&fake).await;
        if tasks.iter().filter(|t| t["startedBy"] == "high").count() == 5 {
            // Every task started after the high requests arrived, up to the
            // fifth high one, is high priority.
            let later: Vec<&str> = tasks[before_high..]
                .iter()
                .filter_map(|t| t["startedBy"].as_str())
                .collect();
            let fifth_high = later.iter().rposition(|s| *s == "high").unwrap();
            assert!(
                later[..=fifth_high].iter().all(|s| *s == "high"),
                "start order: {later:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "high-priority requests did not all start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        harness.sample("tend_scheduler_priority_inversions_total"),
        0.0
    );
    // Every RunTask call started a task: none was made that the cache knew
    // could not fit.
    assert_eq!(
        run_task_calls(&fake).await as usize,
        fake_tasks(&fake).await.len()
    );
    harness.cleanup();
}

#[tokio::test]
async fn capacity_rejections_keep_retry_budget() {
    let fake = FakeEcs::start().await;
    let cluster = unique("s2");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 4096, "memory": 8192}]}]}))
        .await;
    task_definition(fake.endpoint(), "s2-worker", 100, 100).await;
    let queues = Queues::create(1, Some(5)).await;
    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tends2"),
        &Options::default(),
    );
    harness.refresh().await;
    queues
        .send(0, &request(&cluster, "s2-worker", 100, "s2"))
        .await;

    stage_failures(&fake, "RESOURCE:MEMORY", 5).await;
    for _ in 0..5 {
        harness.round().await.expect("round succeeds");
    }
    assert_eq!(
        harness.sample("tend_scheduler_rejections_total{reason=\"RESOURCE:MEMORY\"}"),
        5.0
    );
    assert_eq!(run_task_calls(&fake).await, 5);

    // Then one real failure: an unknown task definition revision.
    stage_failures(&fake, "MISSING", 1).await;
    harness.round().await.expect("round succeeds");
    assert_eq!(
        harness.sample("tend_scheduler_launch_failures_total{reason=\"rejected\"}"),
        1.0
    );
    assert!(
        queues.dead_lettered().await.is_empty(),
        "not dead-lettered by tend"
    );
    // SQS counted one receive only, so its redrive did not fire either.
    assert_eq!(
        queues.total(0).await,
        1,
        "the request is still in its queue"
    );
    assert!(fake_tasks(&fake).await.is_empty());
    harness.cleanup();
}

#[tokio::test]
async fn redelivered_message_launches_once() {
    let fake = FakeEcs::start().await;
    let cluster = unique("s3");
    let reply = fake
        .seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 1024, "memory": 1024, "used_memory": 1024}]}]}))
        .await;
    task_definition(fake.endpoint(), "s3-worker", 100, 100).await;
    let queues = Queues::create(1, None).await;
    let prefix = unique("tends3");
    let options = Options {
        visibility: Duration::from_secs(2),
        ..Options::default()
    };
    let replicas: Vec<Harness> = (0..3)
        .map(|_| Harness::new(fake.endpoint(), &queues, &prefix, &options))
        .collect();
    // Room for one task, so the first receive takes the message...
    let instance = &reply.clusters[0].instances[0].arn;
    let room = crate::support::ecs_fake::InstanceUpdate {
        remaining_memory: Some(100),
        ..Default::default()
    };
    let full = crate::support::ecs_fake::InstanceUpdate {
        remaining_memory: Some(0),
        ..Default::default()
    };
    queues
        .send(0, &request(&cluster, "s3-worker", 100, "s3"))
        .await;

    // ...then each replica receives it in turn while the room is gone again
    // and its visibility runs out: three deliveries of one message.
    for replica in &replicas {
        fake.update_instance(&cluster, instance, &room).await;
        replica.refresh().await;
        fake.update_instance(&cluster, instance, &full).await;
        stage_failures(&fake, "RESOURCE:MEMORY", 1).await;
        replica.round().await.expect("round succeeds");
        tokio::time::sleep(Duration::from_millis(2200)).await;
    }
    fake.update_instance(&cluster, instance, &room).await;
    for replica in &replicas {
        replica.refresh().await;
        replica.round().await.expect("round succeeds");
    }
    let started = fake_tasks(&fake).await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(queues.total(0).await, 0);
    replicas[0].cleanup();
}

#[tokio::test]
async fn three_replicas_never_oversubscribe() {
    let fake = FakeEcs::start().await;
    let cluster = unique("replicas");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"count": 2, "cpu": 2048, "memory": 512}]}]}))
        .await;
    task_definition(fake.endpoint(), "rep-worker", 100, 100).await;
    let queues = Queues::create(1, None).await;
    let prefix = unique("tendrep");
    let first = Harness::new(fake.endpoint(), &queues, &prefix, &Options::default());
    let second = Harness::new(fake.endpoint(), &queues, &prefix, &Options::default());
    let third = Harness::new(fake.endpoint(), &queues, &prefix, &Options::default());
    for _ in 0..20 {
        queues
            .send(0, &request(&cluster, "rep-worker", 100, "rep"))
            .await;
    }
    first.refresh().await;
    for _ in 0..6 {
        let (a, b, c) = tokio::join!(first.round(), second.round(), third.round());
        a.expect("first replica's round succeeds");
        b.expect("second replica's round succeeds");
        c.expect("third replica's round succeeds");
    }
    // Two instances of 512 MiB hold exactly ten 100 MiB tasks.
    assert_eq!(fake_tasks(&fake).await.len(), 10);
    let rejected: f64 = [&first, &second, &third]
        .iter()
        .map(|replica| {
            replica.sample("tend_scheduler_rejections_total{reason=\"RESOURCE:MEMORY\"}")
        })
        .sum();
    assert_eq!(rejected, 0.0, "a replica tried room the other had taken");
    assert_eq!(run_task_calls(&fake).await, 10);
    first.cleanup();
}

/// `tend run` with both loops against the fake, moto and `redis_url`.
pub(crate) fn scheduler_env(fake: &FakeEcs, queues: &Queues, redis_url: &str) -> TendEnv {
    TendEnv::new(fake.endpoint(), redis_url, &unique("tendrun"))
        .set(
            "AWS_ENDPOINT_URL_SQS",
            &crate::support::env::moto_endpoint(),
        )
        .set("TEND_ECS_CAPACITY_INTERVAL", "1s")
        .set("TEND_SCHEDULER_ENABLED", "true")
        .set("TEND_SCHEDULER_QUEUES", &queues.urls.join(","))
        .set("TEND_SCHEDULER_DEAD_LETTER_QUEUE", &queues.dead_letter)
        .set("TEND_SCHEDULER_WAIT_TIME", "0s")
        .set("TEND_REDIS_TIMEOUT", "500ms")
        .set("TEND_RUNTIME_SHUTDOWN_GRACE", "10s")
}

#[tokio::test]
async fn redis_outage_blocks_launches_then_resumes() {
    let fake = FakeEcs::start().await;
    let cluster = unique("r2");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 4096, "memory": 8192}]}]}))
        .await;
    task_definition(fake.endpoint(), "r2-worker", 100, 100).await;
    let queues = Queues::create(1, None).await;
    let mut redis = PrivateRedis::start(&[]);
    let tend = scheduler_env(&fake, &queues, &redis.url()).spawn_run();
    tend.wait_ready(Duration::from_secs(30)).await;

    // Redis is down for 10 s while requests wait in the queue.
    redis.stop();
    let stopped = Instant::now();
    for _ in 0..3 {
        queues
            .send(0, &request(&cluster, "r2-worker", 100, "r2"))
            .await;
    }
    let mut reported = None;
    while stopped.elapsed() < Duration::from_secs(10) {
        let (status, body) = tend.get("/readyz").await;
        if status == 503 && body.contains("redis") && reported.is_none() {
            reported = Some(stopped.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        run_task_calls(&fake).await,
        0,
        "no launch without a capacity answer"
    );
    let reported = reported.expect("/readyz reported Redis as down");
    let (status, body) = tend.get("/readyz").await;
    assert_eq!(status, 503, "{body}");

    redis.restart();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(30);
    let mut first_launch = None;
    while fake_tasks(&fake).await.len() < 3 {
        if first_launch.is_none() && run_task_calls(&fake).await > 0 {
            first_launch = Some(restarted.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "launches did not resume:\n{}",
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_started = restarted.elapsed();
    tend.wait_ready(Duration::from_secs(10)).await;
    println!(
        "redis outage: not ready after {reported:.1?}; after Redis returned: first launch {:.1?}, \
         all 3 started {all_started:.1?}, ready {:.1?}",
        first_launch.unwrap_or(all_started),
        restarted.elapsed()
    );
    assert_eq!(queues.total(0).await, 0, "nothing left in the queue");
    assert!(queues.dead_lettered().await.is_empty(), "nothing lost");
    assert_eq!(fake_tasks(&fake).await.len(), 3, "each request once");
}

#[tokio::test]
async fn sigterm_returns_held_requests_at_once() {
    let fake = FakeEcs::start().await;
    let cluster = unique("term");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 4096, "memory": 8192}]}]}))
        .await;
    task_definition(fake.endpoint(), "term-worker", 100, 100).await;
    // ECS keeps saying no, so received requests stay held.
    stage_failures(&fake, "RESOURCE:CPU", 100_000).await;
    let queues = Queues::create(2, None).await;
    queues
        .send(0, &request(&cluster, "term-worker", 100, "term"))
        .await;
    let mut tend = scheduler_env(&fake, &queues, crate::support::env::REDIS_URL).spawn_run();
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_task_calls(&fake).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the request was never tried:\n{}",
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let exit = tend.terminate(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}\n{}", tend.log());
    // Visible again at once, not after the 120 s visibility timeout.
    assert_eq!(queues.visible(0).await, 1, "{}", tend.log());
    assert!(
        tend.log().contains("held request returned to its queue"),
        "{}",
        tend.log()
    );
}

/// A large high-priority request that does not fit and a small
/// low-priority one that does: `strict` starts neither, `backfill` starts
/// the small one.
async fn large_high_small_low(policy: tend::config::PriorityPolicy) -> Vec<Value> {
    let fake = FakeEcs::start().await;
    let cluster = unique("policy");
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [
        {"cpu": 4096, "memory": 8192, "used_memory": 7168}
    ]}]}))
    .await;
    task_definition(fake.endpoint(), "policy-worker", 100, 100).await;
    let queues = Queues::create(2, None).await;
    let options = Options {
        policy,
        ..Options::default()
    };
    let harness = Harness::new(fake.endpoint(), &queues, &unique("tendpolicy"), &options);
    harness.refresh().await;
    queues
        .send(0, &request(&cluster, "policy-worker", 4096, "high"))
        .await;
    queues
        .send(1, &request(&cluster, "policy-worker", 512, "low"))
        .await;
    for _ in 0..3 {
        harness.round().await.expect("round succeeds");
    }
    assert_eq!(
        harness.sample("tend_scheduler_priority_inversions_total"),
        0.0
    );
    harness.cleanup();
    fake_tasks(&fake).await
}

#[tokio::test]
async fn strict_policy_holds_lower_priorities() {
    let started = large_high_small_low(tend::config::PriorityPolicy::Strict).await;
    assert!(started.is_empty(), "{started:?}");
}

#[tokio::test]
async fn backfill_policy_uses_spare_room() {
    let started = large_high_small_low(tend::config::PriorityPolicy::Backfill).await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["startedBy"], "low");
}

/// Queues `total` requests for 100 MiB tasks, alternating between two
/// queues, for a new cluster with room for all of them (40 per instance).
pub(crate) async fn request_load(fake: &FakeEcs, label: &str, total: usize) -> Queues {
    let cluster = unique(label);
    let instances = total.div_ceil(40).max(4);
    fake.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"count": instances, "cpu": 4096, "memory": 4096}]}]}))
        .await;
    let family = format!("{label}-worker");
    task_definition(fake.endpoint(), &family, 100, 100).await;
    let queues = Queues::create(2, None).await;
    for n in 0..total {
        let body = request(&cluster, &family, 100, &format!("request-{n}"));
        queues.send(n % 2, &body).await;
    }
    queues
}

/// Waits until `total` tasks run and both queues are empty, at most `limit`.
pub(crate) async fn wait_all_started(
    fake: &FakeEcs,
    queues: &Queues,
    total: usize,
    limit: Duration,
    tend: &crate::support::tend::RunningTend,
) {
    let deadline = Instant::now() + limit;
    loop {
        let started = fake_tasks(fake).await.len();
        let waiting = queues.total(0).await + queues.total(1).await;
        if started >= total && waiting == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{started} started, {waiting} waiting:\n{}",
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks that each of the `total` requests started exactly one task and
/// none was dead-lettered.
pub(crate) async fn assert_started_once(fake: &FakeEcs, queues: &Queues, total: usize) {
    let started = fake_tasks(fake).await;
    let mut labels: Vec<&str> = started
        .iter()
        .filter_map(|t| t["startedBy"].as_str())
        .collect();
    labels.sort_unstable();
    let before = labels.len();
    labels.dedup();
    assert_eq!(before, total, "exactly one task per request");
    assert_eq!(labels.len(), total, "no request started twice");
    assert!(
        queues.dead_lettered().await.is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn kills_during_scheduling_lose_and_duplicate_nothing() {
    let fake = FakeEcs::start().await;
    // Enough requests that scheduling outlasts 20 kills.
    let total = 500;
    let queues = request_load(&fake, "killsched", total).await;
    let redis_prefix = unique("tendkillsched");
    let env = scheduler_env(&fake, &queues, crate::support::env::REDIS_URL)
        .set("TEND_REDIS_KEY_PREFIX", &redis_prefix)
        .set("TEND_RUNTIME_LEASE_TTL", "1s")
        // Requests a killed process held come back after 10 s.
        .set("TEND_SCHEDULER_VISIBILITY_TIMEOUT", "10s")
        .set("TEND_SCHEDULER_PASS_TIMEOUT", "5s");

    // Kill at random points, restarting each time, until 20 kills have
    // landed with requests still waiting.
    let seed = fastrand::u64(..);
    println!("kill points seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut under_load = 0;
    let mut kills = 0;
    while under_load < 20 && kills < 40 {
        let mut tend = env.spawn_run();
        tokio::time::sleep(Duration::from_millis(rng.u64(50..700))).await;
        tend.kill9();
        kills += 1;
        if fake_tasks(&fake).await.len() < total {
            under_load += 1;
        }
    }
    assert_eq!(
        under_load, 20,
        "only {under_load} of {kills} kills landed with requests waiting; queue more requests"
    );

    let before_restart = fake_tasks(&fake).await.len();
    let recovery = Instant::now();
    let tend = env.spawn_run();
    wait_all_started(&fake, &queues, total, Duration::from_secs(90), &tend).await;
    println!(
        "scheduler kill -9: {under_load} of {kills} kills with requests waiting; {before_restart} of \
         {total} started before the last restart, the rest {:.1?} after it",
        recovery.elapsed()
    );
    assert_started_once(&fake, &queues, total).await;
}

#[tokio::test]
async fn token_used_elsewhere_counts_as_started() {
    let fake = FakeEcs::start().await;
    let cluster = unique("conflict");
    let reply = fake
        .seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"count": 2, "cpu": 4096, "memory": 4096}]}]}))
        .await;
    task_definition(fake.endpoint(), "conflict-worker", 100, 100).await;
    let queues = Queues::create(1, None).await;
    let message_id = queues
        .send(0, &request(&cluster, "conflict-worker", 100, "conflict"))
        .await;

    // An earlier delivery started the task on the second instance and died
    // before deleting the message.
    let second = &reply.clusters[0].instances[1];
    let constraint = aws_sdk_ecs::types::PlacementConstraint::builder()
        .r#type(aws_sdk_ecs::types::PlacementConstraintType::MemberOf)
        .expression(format!("ec2InstanceId == {}", second.ec2_instance_id))
        .build();
    ecs_client(fake.endpoint())
        .run_task()
        .cluster(&cluster)
        .task_definition("conflict-worker")
        .placement_constraints(constraint)
        .client_token(tend::scheduler::client_token(&message_id))
        .started_by("conflict")
        .send()
        .await
        .expect("first RunTask");
    // Now the first instance is the tighter fit, so the scheduler picks it.
    let tight = crate::support::ecs_fake::InstanceUpdate {
        remaining_memory: Some(1000),
        ..Default::default()
    };
    fake.update_instance(&cluster, &reply.clusters[0].instances[0].arn, &tight)
        .await;

    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tendconflict"),
        &Options::default(),
    );
    harness.refresh().await;
    harness.round().await.expect("round succeeds");

    assert_eq!(fake_tasks(&fake).await.len(), 1, "no second task");
    assert_eq!(queues.total(0).await, 0, "the message is deleted");
    assert!(queues.dead_lettered().await.is_empty());
    assert_eq!(
        harness.sample("tend_scheduler_launch_failures_total{reason=\"rejected\"}"),
        0.0
    );
    harness.cleanup();
}
