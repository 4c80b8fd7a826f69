//! Scheduler benchmarks:
//! 1. placement decisions per second over 1,000 cached instances;
//! 2. a full cluster with mixed priorities, run once with tend's scheduler
//!    and once with the naive consumer it replaces (receive, call RunTask
//!    blindly, let a rejected message reappear after its visibility
//!    timeout), against the same ECS fake and moto SQS.
//!
//! Run with `testbed/bench.sh scheduler`, which starts moto.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tend::config::{PriorityPolicy, RedisConfig, RedisUrl};
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Instance, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Reconciler};
use tend::scheduler::{
    Intake, Launcher, Queue, Reservations, Reserved, Scheduler, SchedulerMetrics, SchedulerParts,
    Strategy, Tracker, choose,
};

use crate::common::{Fake, ecs_client};

/// Scaled scenario: the real case runs 5-minute tasks against a 30 s
/// visibility timeout; here tasks run 10 s against 1 s, the same 10:1 ratio.
const TASK_RUN_MS: u64 = 10_000;
const NAIVE_VISIBILITY_S: i32 = 1;
const LOW: usize = 100;
const HIGH: usize = 5;

fn placement_rate() {
    println!("## Placement decisions over 1,000 instances\n");
    let instances: Vec<Instance> = (0..1000)
        .map(|i| Instance {
            arn: format!("arn:aws:ecs:us-east-1:1:container-instance/c/{i:032x}"),
            ec2_instance_id: Some(format!("i-{i:017x}")),
            status: "ACTIVE".into(),
            agent_connected: i % 50 != 0,
            active_tasks: 3,
            registered_cpu: 4096,
            registered_memory: 8192,
            remaining_cpu: (i * 37 % 4096) as i64,
            remaining_memory: (i * 101 % 8192) as i64,
            version: 1,
        })
        .collect();
    let reserved: Reserved = instances
        .iter()
        .step_by(20)
        .map(|i| (i.arn.clone(), (256, 512)))
        .collect();
    for strategy in [Strategy::Binpack, Strategy::Spread] {
        let rounds = 50_000;
        let started = Instant::now();
        let mut found = 0usize;
        for n in 0..rounds {
            let memory = 128 + (n % 16) * 256;
            if choose(&instances, &reserved, 256, memory as i64, strategy).is_some() {
                found += 1;
            }
        }
        let elapsed = started.elapsed();
        println!(
            "{strategy:?}: {rounds} decisions in {elapsed:.2?} = {:.0}/s ({found} found an instance)",
            rounds as f64 / elapsed.as_secs_f64()
        );
    }
}

fn sqs_client() -> aws_sdk_sqs::Client {
    let endpoint =
        std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run testbed/bench.sh scheduler");
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// The scenario's peers: one instance of 1024 CPU / 512 MiB, a task
/// definition of 100 CPU / 100 MiB, two queues (high, low).
struct Scenario {
    fake: Fake,
    sqs: aws_sdk_sqs::Client,
    queues: Vec<String>,
    dead_letter: String,
}

async fn scenario(label: &str) -> Scenario {
    let fake = Fake::start();
    fake.post(
        "/_fake/state",
        &json!({"clusters": [{"name": "s1", "instance_groups": [{"cpu": 1024, "memory": 512}]}]}),
    )
    .await;
    fake.post(
        "/_fake/tasks/config",
        &json!({"start_delay_ms": 0, "run_time_ms": TASK_RUN_MS}),
    )
    .await;
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("main")
        .image("example/worker:1")
        .cpu(100)
        .memory(100)
        .build();
    ecs_client(&fake.endpoint)
        .register_task_definition()
        .family("worker")
        .container_definitions(container)
        .send()
        .await
        .expect("RegisterTaskDefinition");
    let sqs = sqs_client();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut queues = Vec::new();
    for name in ["high", "low", "dead"] {
        let reply = sqs
            .create_queue()
            .queue_name(format!("bench-{label}-{name}-{stamp}"))
            .send()
            .await
            .expect("CreateQueue");
        queues.push(reply.queue_url().unwrap().to_owned());
    }
    let dead_letter = queues.pop().unwrap();
    Scenario {
        fake,
        sqs,
        queues,
        dead_letter,
    }
}

async fn send(scenario: &Scenario, priority: usize, label: &str) {
    let body = json!({"cluster": "s1", "task_definition": "worker", "cpu": 100, "memory": 100, "started_by": label});
    scenario
        .sqs
        .send_message()
        .queue_url(&scenario.queues[priority])
        .message_body(body.to_string())
        .send()
        .await
        .expect("SendMessage");
}

/// Queues the low requests, lets them fill the cluster via `step`, then
/// queues the high ones and steps until all have started. Reports the
/// results from the fake's task list and call counts.
async fn run<F, Fut>(label: &str, scenario: &Scenario, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..LOW {
        send(scenario, 1, "low").await;
    }
    let fill_deadline = Instant::now() + Duration::from_secs(30);
    while started(&scenario.fake).await.len() < 5 && Instant::now() < fill_deadline {
        step().await;
    }
    let high_sent_at = SystemTime::now();
    for _ in 0..HIGH {
        send(scenario, 0, "high").await;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        step().await;
        let tasks = started(&scenario.fake).await;
        if tasks.iter().filter(|t| t["startedBy"] == "high").count() == HIGH
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report(label, scenario, high_sent_at).await;
}

/// Every task started in the fake, oldest first, with `startedBy` and
/// `createdAt` (seconds) as DescribeTasks reports them.
async fn started(fake: &Fake) -> Vec<Value> {
    use aws_sdk_ecs::types::DesiredStatus;
    let client = ecs_client(&fake.endpoint);
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let mut pages = client
            .list_tasks()
            .cluster("s1")
            .desired_status(status)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            arns.extend(page.expect("ListTasks").task_arns().iter().cloned());
        }
    }
    let mut tasks = Vec::new();
    for chunk in arns.chunks(100) {
        let described = client
            .describe_tasks()
            .cluster("s1")
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .expect("DescribeTasks");
        for task in described.tasks() {
            tasks.push(json!({
                "startedBy": task.started_by(),
                "createdAt": task.created_at().map(|t| t.as_secs_f64()),
            }));
        }
    }
    tasks.sort_by(|a, b| {
        let at = |t: &Value| t["createdAt"].as_f64().unwrap_or(0.0);
        at(a).total_cmp(&at(b))
    });
    tasks
}

fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(((values.len().max(1) - 1) as f64 * fraction).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

async fn report(label: &str, scenario: &Scenario, high_sent_at: SystemTime) {
    let tasks = started(&scenario.fake).await;
    let calls = scenario.fake.get("/_fake/calls").await;
    let run_task = calls["RunTask"].as_u64().unwrap_or(0);
    let high_at = high_sent_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let after: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["createdAt"].as_f64().unwrap_or(0.0) >= high_at)
        .collect();
    let last_high = after.iter().rposition(|t| t["startedBy"] == "high");
    let inversions = last_high.map_or(0, |last| {
        after[..last]
            .iter()
            .filter(|t| t["startedBy"] == "low")
            .count()
    });
    let mut waits: Vec<f64> = after
        .iter()
        .filter(|t| t["startedBy"] == "high")
        .map(|t| t["createdAt"].as_f64().unwrap_or(0.0) - high_at)
        .collect();
    println!(
        "| {label} | {run_task} | {} | {inversions} | {:.1} s | {:.1} s | {}/{HIGH} |",
        run_task.saturating_sub(tasks.len() as u64),
        percentile(&mut waits, 0.5),
        percentile(&mut waits, 0.99),
        waits.len(),
    );
}

async fn tend_scheduler(scenario: Scenario) {
    let prefix = format!("bench-sched-{}", std::process::id());
    let redis = Redis::new(&RedisConfig {
        url: RedisUrl::new("redis://127.0.0.1:6379"),
        key_prefix: prefix.clone(),
        seed_keys: false,
        timeout: Duration::from_secs(5),
    })
    .expect("valid Redis URL");
    let ecs = ecs_client(&scenario.fake.endpoint);
    let cache = CapacityCache::new(redis.clone(), false);
    let registry = prometheus::Registry::new();
    let capacity = CapacityReconciler::new(
        Observer::new(ecs.clone(), Vec::new()),
        cache.clone(),
        EcsMetrics::register(&registry).unwrap(),
        2,
    );
    let queues = scenario
        .queues
        .iter()
        .map(|url| Queue::from_url(url))
        .collect();
    let scheduler = Scheduler::new(SchedulerParts {
        intake: Intake::new(
            scenario.sqs.clone(),
            queues,
            scenario.dead_letter.clone(),
            Duration::from_secs(120),
        ),
        launcher: Launcher::new(ecs, Duration::from_secs(300)),
        cache: cache.clone(),
        reader: CapacityReader::new(cache, Duration::from_secs(300)),
        reservations: Reservations::new(redis.clone(), Duration::from_secs(60)),
        redis,
        metrics: SchedulerMetrics::register(&registry).unwrap(),
        tracker: Tracker::new(Duration::from_secs(300)),
        policy: PriorityPolicy::Strict,
        strategy: Strategy::Binpack,
        wait_time: Duration::ZERO,
        max_receives: 5,
    });
    // The capacity loop refreshes every second, as with interval = "1s".
    let last_refresh = std::cell::Cell::new(Instant::now() - Duration::from_secs(2));
    run("tend (strict)", &scenario, || async {
        if last_refresh.get().elapsed() >= Duration::from_secs(1) {
            capacity
                .reconcile(&CancellationToken::new())
                .await
                .expect("capacity pass");
            last_refresh.set(Instant::now());
        }
        let _ = scheduler.reconcile(&CancellationToken::new()).await;
    })
    .await;
    let inversions = tend::metrics::encode(&registry)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("tend_scheduler_priority_inversions_total"))
        .unwrap_or_default()
        .to_owned();
    println!("\n(tend's own counter: {inversions})");
}

/// The consumer tend replaces: receive from each queue in priority order,
/// call RunTask without knowing capacity, and leave rejected messages to
/// reappear after their visibility timeout.
async fn naive_step(scenario: &Scenario) {
    let ecs = ecs_client(&scenario.fake.endpoint);
    for url in &scenario.queues {
        let reply = scenario
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(NAIVE_VISIBILITY_S)
            .send()
            .await
            .expect("ReceiveMessage");
        for message in reply.messages() {
            let body: Value =
                serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
            let run = ecs
                .run_task()
                .cluster("s1")
                .task_definition("worker")
                .started_by(body["started_by"].as_str().unwrap_or("naive"))
                .send()
                .await;
            if run.is_ok_and(|reply| !reply.tasks().is_empty()) {
                let _ = scenario
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    placement_rate();
    println!("\n## Full cluster, {LOW} low then {HIGH} high requests (tasks {TASK_RUN_MS} ms)\n");
    println!(
        "| consumer | RunTask calls | rejected | low starts before the last high | high wait p50 | high wait p99 | high started |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    tend_scheduler(scenario("tend").await).await;
    let naive = scenario("naive").await;
    run("naive", &naive, || naive_step(&naive)).await;
}
