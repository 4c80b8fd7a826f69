//! The `tend` binary as users run it: `run` with its endpoints and signals,
//! `reconcile --once`, `capacity` and `check-config`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::ecs_fake::FakeEcs;
use crate::support::env::{REDIS_URL, delete_keys, free_port};
use crate::support::tend::TendEnv;
use crate::support::unique;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn seeded_fake(name: &str) -> FakeEcs {
    let fake = FakeEcs::start().await;
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [
        {"count": 2, "cpu": 2048, "memory": 4096, "used_cpu": 1024, "used_memory": 1024},
        {"count": 1, "cpu": 2048, "memory": 4096, "status": "DRAINING"},
    ]}]}))
    .await;
    fake
}

#[tokio::test]
async fn run_serves_endpoints_and_stops_on_sigterm() {
    let name = unique("cli-run");
    let fake = seeded_fake(&name).await;
    let prefix = unique("tendcli");
    let env = TendEnv::new(fake.endpoint(), REDIS_URL, &prefix)
        .set("TEND_ECS_CAPACITY_INTERVAL", "1s")
        .set("TEND_ECS_CAPACITY_MAX_AGE", "10s")
        .set("TEND_RUNTIME_SHUTDOWN_GRACE", "5s");
    let mut tend = env.spawn_run();
    tend.wait_ready(Duration::from_secs(30)).await;

    let (status, body) = tend.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, body) = tend.get("/metrics").await;
    assert_eq!(status, 200);
    for family in [
        "tend_reconcile_passes_total{loop=\"ecs-capacity\",result=\"success\"}",
        "tend_reconcile_duration_seconds_bucket",
        "tend_build_info{version=\"0.1.0\"} 1",
        "tend_reconcile_last_success_timestamp_seconds",
        "tend_reconcile_consecutive_failures{loop=\"ecs-capacity\"} 0",
        "tend_aws_requests_total{operation=\"DescribeContainerInstances\",outcome=\"ok\",service=\"ECS\"}",
        &format!("tend_ecs_cluster_free_memory_bytes{{cluster=\"{name}\"}} 6442450944"),
        &format!("tend_ecs_cluster_largest_free_cpu_units{{cluster=\"{name}\"}} 1024"),
        &format!("tend_ecs_cluster_instances{{cluster=\"{name}\",status=\"DRAINING\"}} 1"),
    ] {
        assert!(body.contains(family), "missing {family} in:\n{body}");
    }

    let (status, body) = tend.get("/status").await;
    assert_eq!(status, 200);
    let status_json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loop_status = &status_json["loops"]["ecs-capacity"];
    assert_eq!(loop_status["last_result"], "success");
    assert_eq!(loop_status["summary"]["instances"], 3);
    assert_eq!(status_json["dependencies"]["redis"], "ok");

    let (status, _) = tend.get("/nope").await;
    assert_eq!(status, 404);
    let posted = reqwest::Client::new()
        .post(tend.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 405);

    // `tend capacity` answers from what the running loop cached.
    let fits = env.output(&[
        "capacity",
        "--cluster",
        &name,
        "--cpu",
        "1024",
        "--memory",
        "3072",
    ]);
    assert_eq!(
        fits.status.code(),
        Some(0),
        "{}{}",
        stdout(&fits),
        stderr(&fits)
    );
    assert!(stdout(&fits).contains("fits:"), "{}", stdout(&fits));
    let too_big = env.output(&["capacity", "--cluster", &name, "--memory", "4000"]);
    assert_eq!(too_big.status.code(), Some(1), "{}", stdout(&too_big));
    assert!(stdout(&too_big).contains("does not fit"));

    let exit = tend.terminate(Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit:?}\n{}", tend.log());
    let log = tend.log();
    assert!(log.contains("tend started"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    delete_keys(&format!("{prefix}:*"));
    delete_keys(&format!("*cluster/{name}*"));
}

#[tokio::test]
async fn readyz_names_unreachable_redis() {
    let name = unique("cli-noredis");
    let fake = seeded_fake(&name).await;
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let env = TendEnv::new(fake.endpoint(), &closed, "unused").set("TEND_REDIS_TIMEOUT", "300ms");
    let tend = env.spawn_run();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (status, body) = tend.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("redis"), "{body}");
    assert!(body.contains("ecs-capacity"), "{body}");
    let (status, _) = tend.get("/healthz").await;
    assert_eq!(status, 200, "liveness must not depend on Redis");
}

#[tokio::test]
async fn reconcile_once_prints_summary() {
    let name = unique("cli-once");
    let fake = seeded_fake(&name).await;
    let prefix = unique("tendonce");
    let env = TendEnv::new(fake.endpoint(), REDIS_URL, &prefix);
    let output = env.output(&["reconcile", "ecs-capacity", "--once"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("ecs-capacity pass succeeded"), "{text}");
    assert!(text.contains("instances: 3"), "{text}");

    let table = env.output(&["capacity"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.contains("CLUSTER"), "{text}");
    assert!(text.contains(&name), "{text}");
    assert!(text.contains("2/3 schedulable"), "{text}");
    delete_keys(&format!("{prefix}:*"));
    delete_keys(&format!("*cluster/{name}*"));
}

#[test]
fn missing_region_fails_fast() {
    let env = TendEnv::new("http://127.0.0.1:9", REDIS_URL, "unused").remove("AWS_REGION");
    let started = Instant::now();
    let output = env.output(&["reconcile", "ecs-capacity", "--once"]);
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&output).contains("missing AWS region"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("AWS_REGION"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_config_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(
        &path,
        "[ecs_capacity]\ninterval = \"soon\"\nclusterz = []\n[redis]\nurl = \"redis://:hunter2@cache:6379\"\n",
    )
    .unwrap();
    let env = TendEnv::new("http://127.0.0.1:9", REDIS_URL, "unused")
        .remove("TEND_REDIS_URL")
        .set("TEND_HTTP_LISTEN", "not-an-address");
    let output = env.output(&["--config", path.to_str().unwrap(), "check-config"]);
    assert_eq!(output.status.code(), Some(64));
    let text = stderr(&output);
    assert!(text.contains("ecs_capacity.interval"), "{text}");
    assert!(text.contains("ecs_capacity.clusterz"), "{text}");
    assert!(text.contains("TEND_HTTP_LISTEN"), "{text}");

    std::fs::write(&path, "[redis]\nurl = \"redis://:hunter2@cache:6379\"\n").unwrap();
    let env = env.set("TEND_HTTP_LISTEN", "127.0.0.1:9464");
    let output = env.output(&["--config", path.to_str().unwrap(), "check-config"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn capacity_without_cache_exits_two() {
    let env = TendEnv::new("http://127.0.0.1:9", REDIS_URL, &unique("tendempty"));
    let output = env.output(&["capacity", "--cluster", "nowhere", "--cpu", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not in the capacity cache"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn healthcheck_command_follows_healthz() {
    let name = unique("cli-health");
    let fake = seeded_fake(&name).await;
    let env = TendEnv::new(fake.endpoint(), REDIS_URL, &unique("tendhealth"));
    let tend = env.spawn_run();
    let url = tend.url("/healthz");
    let healthy = env.output(&["healthcheck", "--url", &url]);
    assert_eq!(healthy.status.code(), Some(0), "{}", stderr(&healthy));
    let closed = format!("http://127.0.0.1:{}/healthz", free_port());
    let down = env.output(&["healthcheck", "--url", &closed]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains("did not answer"),
        "{}",
        stderr(&down)
    );
}
