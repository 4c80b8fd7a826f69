//! Benchmark of the ecs-capacity loop: API calls and Redis round trips per
//! refresh, refresh time at 100 clusters x 1,000 instances, and capacity
//! query latency from the cache next to the naive four-call ECS walk.
//!
//! Run with `testbed/bench.sh`, which starts moto and exports MOTO_ENDPOINT;
//! the ECS fake and Redis on 127.0.0.1:6379 are used as the tests use them.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use tend::config::{RedisConfig, RedisUrl};
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Reconciler};

use crate::common::{Fake, ecs_client};

/// Sums the per-operation counts of `GET /_fake/calls`.
async fn total_calls(fake: &Fake) -> u64 {
    let calls = fake.get("/_fake/calls").await;
    calls
        .as_object()
        .map_or(0, |map| map.values().filter_map(|v| v.as_u64()).sum())
}

fn redis(prefix: &str) -> Redis {
    Redis::new(&RedisConfig {
        url: RedisUrl::new("redis://127.0.0.1:6379"),
        key_prefix: prefix.to_owned(),
        seed_keys: true,
        timeout: Duration::from_secs(5),
    })
    .expect("valid Redis URL")
}

fn reconciler(endpoint: &str, redis: &Redis, clusters: Vec<String>) -> CapacityReconciler {
    let cache = CapacityCache::new(redis.clone(), true);
    let metrics = EcsMetrics::register(&prometheus::Registry::new()).expect("metrics register");
    CapacityReconciler::new(
        Observer::new(ecs_client(endpoint), clusters),
        cache,
        metrics,
        8,
    )
}

fn seed(prefix: &str, clusters: usize, instances: u32) -> serde_json::Value {
    let clusters: Vec<_> = (0..clusters)
        .map(|index| {
            json!({"name": format!("{prefix}-{index}"), "fargate_running_tasks": u32::from(instances == 0),
                   "instance_groups": [{"count": instances, "cpu": 2048, "memory": 4096, "used_memory": 1024}]})
        })
        .collect();
    json!({ "clusters": clusters })
}

fn cleanup(prefix: &str) {
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("valid URL");
    let mut connection = client.get_connection().expect("Redis answers");
    for pattern in [format!("{prefix}:*"), format!("*cluster/{prefix}-*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut connection)
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL")
                .arg(chunk)
                .query(&mut connection)
                .unwrap_or(());
        }
    }
}

fn minimum_calls(clusters: usize, instances: u32) -> u64 {
    let pages = |n: u64| n.div_ceil(100);
    let per_cluster = if instances == 0 {
        0
    } else {
        2 * pages(u64::from(instances))
    };
    pages(clusters as u64).max(1) + pages(clusters as u64) + clusters as u64 * per_cluster
}

async fn calls_per_refresh() {
    println!("## ECS API calls and Redis round trips per refresh\n");
    println!("| clusters | instances each | ECS calls | minimum | Redis round trips |");
    println!("|---:|---:|---:|---:|---:|");
    for (clusters, instances) in [(1, 0), (1, 100), (1, 101), (3, 250), (10, 1000), (101, 5)] {
        let fake = Fake::start();
        let prefix = format!("bench-calls-{clusters}-{instances}");
        fake.post("/_fake/state", &seed(&prefix, clusters, instances))
            .await;
        let redis = redis(&prefix);
        let loop_ = reconciler(&fake.endpoint, &redis, Vec::new());
        // Warm the script cache so the count shows steady-state passes.
        loop_
            .reconcile(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        fake.post("/_fake/calls/reset", &json!({})).await;
        let round_trips = redis.round_trips();
        loop_
            .reconcile(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        let calls = total_calls(&fake).await;
        println!(
            "| {clusters} | {instances} | {calls} | {} | {} |",
            minimum_calls(clusters, instances),
            redis.round_trips() - round_trips
        );
        cleanup(&prefix);
    }
}

async fn large_refresh() {
    println!("\n## Refresh of 100 clusters x 1,000 instances against the fake\n");
    let fake = Fake::start();
    let prefix = "bench-large";
    fake.post("/_fake/state", &seed(prefix, 100, 1000)).await;
    let redis = redis(prefix);
    let loop_ = reconciler(&fake.endpoint, &redis, Vec::new());
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        loop_
            .reconcile(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "passes: {:?}; median {:.2} s",
        times,
        times[1].as_secs_f64()
    );
    cleanup(prefix);
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * fraction).round() as usize]
}

/// The seed script's walk: four ECS calls to learn one cluster's capacity.
async fn naive_walk(client: &aws_sdk_ecs::Client, cluster: &str, memory: i64) -> bool {
    let listed = client.list_clusters().send().await.expect("ListClusters");
    let arn = listed
        .cluster_arns()
        .iter()
        .find(|arn| arn.ends_with(&format!("/{cluster}")))
        .expect("cluster listed")
        .clone();
    client
        .describe_clusters()
        .clusters(&arn)
        .send()
        .await
        .expect("DescribeClusters");
    let instances = client
        .list_container_instances()
        .cluster(&arn)
        .send()
        .await
        .expect("ListContainerInstances");
    let described = client
        .describe_container_instances()
        .cluster(&arn)
        .set_container_instances(Some(instances.container_instance_arns().to_vec()))
        .send()
        .await
        .expect("DescribeContainerInstances");
    described.container_instances().iter().any(|instance| {
        instance
            .remaining_resources()
            .iter()
            .any(|r| r.name() == Some("MEMORY") && i64::from(r.integer_value()) >= memory)
    })
}

async fn moto_instances(endpoint: &str, count: usize) -> Vec<String> {
    let body = format!(
        "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&MinCount={count}&MaxCount={count}"
    );
    let reply = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("moto answers")
        .text()
        .await
        .expect("body");
    reply
        .split("<instanceId>")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("</instanceId>")
                .map(|(id, _)| id.to_owned())
        })
        .collect()
}

async fn query_latency() {
    println!("\n## Capacity query: cache read next to the four-call walk, same moto server\n");
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run testbed/bench.sh");
    let client = ecs_client(&endpoint);
    let cluster = format!("bench-query-{}", std::process::id());
    client
        .create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    for ec2_id in moto_instances(&endpoint, 10).await {
        let document = json!({ "instanceId": ec2_id }).to_string();
        client
            .register_container_instance()
            .cluster(&cluster)
            .instance_identity_document(document)
            .send()
            .await
            .expect("RegisterContainerInstance");
    }
    let prefix = "bench-query";
    let redis = redis(prefix);
    reconciler(&endpoint, &redis, vec![cluster.clone()])
        .reconcile(&CancellationToken::new())
        .await
        .expect("pass succeeds");
    let reader = CapacityReader::new(CapacityCache::new(redis, true), Duration::from_secs(3600));
    let arn = reader.cluster(&cluster).await.expect("cached").cluster.arn;

    const ROUNDS: usize = 200;
    let (mut cached, mut walked) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let fits = reader
            .fits(&arn, 512, 1024)
            .await
            .expect("cache read")
            .is_some();
        cached.push(started.elapsed());
        let started = Instant::now();
        let walk_fits = naive_walk(&client, &cluster, 1024).await;
        walked.push(started.elapsed());
        assert_eq!(fits, walk_fits);
    }
    let (cache_p50, walk_p50) = (percentile(&mut cached, 0.5), percentile(&mut walked, 0.5));
    let (cache_p99, walk_p99) = (percentile(&mut cached, 0.99), percentile(&mut walked, 0.99));
    println!("| method | p50 | p99 |");
    println!("|---|---:|---:|");
    println!("| cache (one HGETALL by ARN) | {cache_p50:.2?} | {cache_p99:.2?} |");
    println!("| four-call ECS walk (moto) | {walk_p50:.2?} | {walk_p99:.2?} |");
    println!(
        "\nratio walk/cache at p50: {:.1}x ({ROUNDS} interleaved rounds, 10 instances)",
        walk_p50.as_secs_f64() / cache_p50.as_secs_f64()
    );
    cleanup(prefix);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; this harness takes no options.
    calls_per_refresh().await;
    large_refresh().await;
    query_latency().await;
}
