//! Scheduler intake: invalid and unplaceable requests go to the dead-letter
//! queue with a reason naming the problem, and the loop keeps running.

use serde_json::json;

use crate::support::ecs_fake::FakeEcs;
use crate::support::scheduler::{Harness, Options, Queues};
use crate::support::unique;

/// A fake with one cluster of one instance: 8 GiB and 4096 CPU units.
async fn one_instance_cluster() -> (FakeEcs, String) {
    let fake = FakeEcs::start().await;
    let name = unique("sched");
    fake.seed(
        &json!({"clusters": [{"name": name, "instance_groups": [{"cpu": 4096, "memory": 8192}]}]}),
    )
    .await;
    (fake, name)
}

/// Runs rounds until the queue is empty (at most `limit` rounds).
async fn drain(harness: &Harness, queues: &Queues, limit: usize) {
    for _ in 0..limit {
        harness.round().await.expect("round succeeds");
        if queues.total(0).await == 0 {
            return;
        }
    }
    panic!("queue not drained after {limit} rounds");
}

#[tokio::test]
async fn malformed_requests_dead_lettered_with_field() {
    let (fake, cluster) = one_instance_cluster().await;
    let queues = Queues::create(1, None).await;
    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tendsched"),
        &Options::default(),
    );
    harness.refresh().await;

    // A body of exactly 256 KiB, the SQS limit, with an over-long group.
    let padding = 256 * 1024 - r#"{"cluster":"c","task_definition":"t","group":""}"#.len();
    let huge = format!(
        r#"{{"cluster":"c","task_definition":"t","group":"{}"}}"#,
        "g".repeat(padding)
    );
    assert_eq!(huge.len(), 256 * 1024);
    let cases = [
        ("{}", "cluster"),
        ("not json", "not valid JSON"),
        (
            r#"{"cluster":"c","task_definition":"t","count":11}"#,
            "count",
        ),
        (
            r#"{"cluster":"c","task_definition":"t","memory":-5}"#,
            "memory",
        ),
        (huge.as_str(), "group"),
    ];
    for (body, _) in &cases {
        queues.send(0, body).await;
    }
    drain(&harness, &queues, 10).await;

    let dead = queues.dead_lettered().await;
    assert_eq!(dead.len(), cases.len(), "{dead:?}");
    for (body, field) in &cases {
        let prefix: String = body.chars().take(100).collect();
        let (_, reason) = dead
            .iter()
            .find(|(dead_body, _)| dead_body.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{prefix} not dead-lettered"));
        assert!(
            reason.contains(field),
            "reason {reason:?} should name {field}"
        );
        assert!(reason.starts_with("invalid request"), "{reason}");
    }
    let invalid = harness.sample("tend_scheduler_dead_lettered_total{reason=\"invalid_request\"}");
    assert_eq!(invalid, 5.0);
    // Nothing was launched for them.
    assert_eq!(fake.calls().await.get("RunTask").copied().unwrap_or(0), 0);
    let _ = cluster;
    harness.cleanup();
}

#[tokio::test]
async fn request_that_never_fits_dead_lettered() {
    let (fake, cluster) = one_instance_cluster().await;
    let queues = Queues::create(1, None).await;
    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tendsched"),
        &Options::default(),
    );
    harness.refresh().await;

    let too_big = json!({"cluster": cluster, "task_definition": "t", "cpu": 256, "memory": 16384});
    queues.send(0, &too_big.to_string()).await;
    let too_many = json!({"cluster": cluster, "task_definition": "t", "cpu": 1024, "memory": 2048, "count": 5});
    queues.send(0, &too_many.to_string()).await;
    let nowhere =
        json!({"cluster": unique("absent"), "task_definition": "t", "cpu": 1, "memory": 1});
    queues.send(0, &nowhere.to_string()).await;
    drain(&harness, &queues, 10).await;

    let dead = queues.dead_lettered().await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|(_, reason)| reason.as_str()).collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("cannot fit on any instance"))
            .count(),
        2,
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("8192 MiB")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not in the capacity cache")),
        "{reasons:?}"
    );
    assert_eq!(fake.calls().await.get("RunTask").copied().unwrap_or(0), 0);
    harness.cleanup();
}

#[tokio::test]
async fn nothing_received_without_capacity() {
    let fake = FakeEcs::start().await;
    let name = unique("full");
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [
        {"cpu": 1024, "memory": 512, "used_cpu": 1024, "used_memory": 512}
    ]}]}))
    .await;
    let queues = Queues::create(1, None).await;
    let harness = Harness::new(
        fake.endpoint(),
        &queues,
        &unique("tendsched"),
        &Options::default(),
    );
    harness.refresh().await;
    let body = json!({"cluster": name, "task_definition": "t", "cpu": 128, "memory": 100});
    queues.send(0, &body.to_string()).await;
    harness.round().await.expect("round succeeds");

    // The full cluster leaves the request in SQS, visible to everyone.
    assert_eq!(queues.visible(0).await, 1);
    let queue = tend::scheduler::Queue::from_url(&queues.urls[0]).name;
    let held = format!("tend_scheduler_held_requests{{queue=\"{queue}\"}}");
    assert!(
        harness.metrics().contains(&format!("{held} 0")),
        "{}",
        harness.metrics()
    );
    harness.cleanup();
}
