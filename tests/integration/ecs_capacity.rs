//! The ecs-capacity loop against the ECS fake (and moto) and real Redis.

use std::time::{Duration, SystemTime};

use serde_json::json;
use tend::ecs_capacity::reader::{CapacityReader, ReadError};
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, InstanceUpdate, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Reconciler};

use crate::support::ecs_fake::{FakeEcs, InstanceUpdate as FakeInstanceUpdate, ecs_client};
use crate::support::env::{PrivateRedis, shared_redis};
use crate::support::unique;

/// A reconciler wired to `endpoint` and a fresh Redis prefix.
struct Harness {
    reconciler: CapacityReconciler,
    cache: CapacityCache,
    redis: Redis,
    registry: prometheus::Registry,
}

impl Harness {
    fn new(endpoint: &str) -> Self {
        let redis = shared_redis();
        let cache = CapacityCache::new(redis.clone(), true);
        let registry = prometheus::Registry::new();
        let metrics = EcsMetrics::register(&registry).expect("metrics register");
        let observer = Observer::new(ecs_client(endpoint), Vec::new());
        Self {
            reconciler: CapacityReconciler::new(observer, cache.clone(), metrics, 4),
            cache,
            redis,
            registry,
        }
    }

    async fn pass(&self) -> serde_json::Value {
        let outcome = self
            .reconciler
            .reconcile(&CancellationToken::new())
            .await
            .expect("pass succeeds");
        outcome.summary
    }

    fn reader(&self) -> CapacityReader {
        CapacityReader::new(self.cache.clone(), Duration::from_secs(60))
    }

    async fn hash(&self, key: &str) -> std::collections::HashMap<String, String> {
        self.redis
            .query(redis::cmd("HGETALL").arg(key))
            .await
            .expect("HGETALL")
    }

    async fn string(&self, key: &str) -> Option<String> {
        self.redis
            .query(redis::cmd("GET").arg(key))
            .await
            .expect("GET")
    }
}

fn group(
    count: u32,
    cpu: i64,
    memory: i64,
    used_memory: i64,
    status: &str,
    connected: bool,
) -> serde_json::Value {
    json!({"count": count, "cpu": cpu, "memory": memory, "used_memory": used_memory,
           "status": status, "agent_connected": connected})
}

#[tokio::test]
async fn pages_past_one_hundred_instances() {
    let fake = FakeEcs::start().await;
    let (small, large) = (unique("e1-small"), unique("e1-large"));
    fake.seed(&json!({"clusters": [
        {"name": small, "instance_groups": [group(101, 2048, 4096, 0, "ACTIVE", true)]},
        {"name": large, "instance_groups": [group(250, 2048, 4096, 0, "ACTIVE", true)]},
    ]}))
    .await;
    let harness = Harness::new(fake.endpoint());
    fake.reset_calls().await;

    let summary = harness.pass().await;
    assert_eq!(summary["instances"], 351);

    let calls = fake.calls().await;
    assert_eq!(calls["ListClusters"], 1);
    assert_eq!(calls["DescribeClusters"], 1);
    // ceil(101/100) + ceil(250/100) = 2 + 3 of each: the minimum.
    assert_eq!(calls["ListContainerInstances"], 5);
    assert_eq!(calls["DescribeContainerInstances"], 5);

    let reader = harness.reader();
    assert_eq!(
        reader
            .cluster(&small)
            .await
            .unwrap()
            .cluster
            .instances
            .len(),
        101
    );
    let cached = reader.cluster(&large).await.unwrap();
    assert_eq!(cached.cluster.instances.len(), 250);
    assert_eq!(cached.summary.free_cpu, 250 * 2048);
    let members: Vec<String> = harness
        .redis
        .query(redis::cmd("SMEMBERS").arg(format!(
            "{}:ecs:cluster:{}:instances",
            harness.redis.prefix(),
            cached.cluster.arn
        )))
        .await
        .unwrap();
    assert_eq!(members.len(), 250);
}

#[tokio::test]
async fn fargate_only_cluster_not_full() {
    let fake = FakeEcs::start().await;
    let name = unique("e2-fargate");
    fake.seed(
        &json!({"clusters": [{"name": name, "fargate_running_tasks": 3, "instance_groups": []}]}),
    )
    .await;
    let harness = Harness::new(fake.endpoint());
    fake.reset_calls().await;
    harness.pass().await;

    let calls = fake.calls().await;
    assert_eq!(calls.get("ListContainerInstances").copied().unwrap_or(0), 0);
    let cached = harness.reader().cluster(&name).await.unwrap();
    assert!(cached.summary.fargate_only);
    assert_eq!(cached.cluster.running_tasks, 3);
    let hash = harness
        .hash(&format!(
            "{}:ecs:cluster:{}",
            harness.redis.prefix(),
            cached.cluster.arn
        ))
        .await;
    assert_eq!(hash["fargate_only"], "1");
    let metrics = tend::metrics::encode(&harness.registry).unwrap();
    assert!(
        metrics.contains(&format!(
            "tend_ecs_cluster_fargate_only{{cluster=\"{name}\"}} 1"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn full_resync_overwrites_but_older_update_does_not() {
    let fake = FakeEcs::start().await;
    let name = unique("e3-versions");
    let reply = fake
        .seed(&json!({"clusters": [{"name": name, "instance_groups": [group(1, 2048, 4096, 4096 - 512, "ACTIVE", true)]}]}))
        .await;
    let instance_arn = reply.clusters[0].instances[0].arn.clone();
    let harness = Harness::new(fake.endpoint());
    harness.pass().await;
    let cached = harness.reader().cluster(&name).await.unwrap();
    let current = cached.cluster.instances[0].clone();
    assert_eq!(current.remaining_memory, 512);

    // An event older than the cached entry never overwrites it.
    let mut stale = current.clone();
    stale.remaining_memory = 4096;
    stale.version = current.version - 1;
    let applied = harness
        .cache
        .apply_instance(&cached.cluster.arn, stale)
        .await
        .unwrap();
    assert_eq!(applied, InstanceUpdate::IgnoredOlder);
    // Nor does a duplicate of the cached version.
    let applied = harness
        .cache
        .apply_instance(&cached.cluster.arn, current.clone())
        .await
        .unwrap();
    assert_eq!(applied, InstanceUpdate::IgnoredOlder);

    // The event that took memory to 256 is lost; the next full listing has
    // a higher version and wins.
    let update = FakeInstanceUpdate {
        remaining_memory: Some(256),
        ..FakeInstanceUpdate::default()
    };
    fake.update_instance(&name, &instance_arn, &update).await;
    harness.pass().await;
    let cached = harness.reader().cluster(&name).await.unwrap();
    assert_eq!(cached.cluster.instances[0].remaining_memory, 256);
    assert!(cached.cluster.instances[0].version > current.version);
    let seed_key = format!("{}:instance:{}", cached.cluster.arn, instance_arn);
    assert_eq!(harness.hash(&seed_key).await["remaining_memory"], "256");

    // A newer single-instance update applies and keeps the cluster figures consistent.
    let mut newer = cached.cluster.instances[0].clone();
    newer.remaining_memory = 1024;
    newer.version += 1;
    let applied = harness
        .cache
        .apply_instance(&cached.cluster.arn, newer)
        .await
        .unwrap();
    assert_eq!(applied, InstanceUpdate::Applied);
    assert_eq!(
        harness
            .string(&format!("{}:remaining_memory", cached.cluster.arn))
            .await
            .as_deref(),
        Some("1024")
    );
}

#[tokio::test]
async fn draining_and_disconnected_visible_not_free() {
    let fake = FakeEcs::start().await;
    let name = unique("e4-status");
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [
        group(1, 2048, 4096, 2048, "ACTIVE", true),
        group(1, 2048, 4096, 0, "DRAINING", true),
        group(1, 2048, 4096, 0, "ACTIVE", false),
    ]}]}))
    .await;
    let harness = Harness::new(fake.endpoint());
    harness.pass().await;

    let cached = harness.reader().cluster(&name).await.unwrap();
    let arn = &cached.cluster.arn;
    assert_eq!(cached.summary.free_memory, 2048);
    assert_eq!(cached.summary.largest_free_memory, 2048);
    assert_eq!(cached.summary.schedulable_instances, 1);
    assert_eq!(
        harness
            .string(&format!("{arn}:remaining_memory"))
            .await
            .as_deref(),
        Some("2048")
    );
    assert!(cached.best_fit(0, 4096).is_none());

    let mut statuses = Vec::new();
    for instance in &cached.cluster.instances {
        let hash = harness
            .hash(&format!("{arn}:instance:{}", instance.arn))
            .await;
        assert_eq!(
            hash["remaining_memory"],
            instance.remaining_memory.to_string()
        );
        statuses.push(hash["status"].clone());
    }
    statuses.sort();
    assert_eq!(statuses, ["ACTIVE", "ACTIVE", "DRAINING"]);
    let hash = harness
        .hash(&format!("{}:ecs:cluster:{arn}", harness.redis.prefix()))
        .await;
    assert_eq!(hash["instances_status:DRAINING"], "1");
    assert_eq!(hash["disconnected_instances"], "1");
}

#[tokio::test]
async fn fragmented_memory_does_not_fit() {
    let fake = FakeEcs::start().await;
    let name = unique("e5-fragments");
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [group(5, 1024, 1024, 924, "ACTIVE", true)]}]}))
        .await;
    let harness = Harness::new(fake.endpoint());
    harness.pass().await;

    let reader = harness.reader();
    assert_eq!(
        reader.cluster(&name).await.unwrap().summary.free_memory,
        500
    );
    assert!(reader.fits(&name, 0, 200).await.unwrap().is_none());
    assert!(reader.fits(&name, 0, 100).await.unwrap().is_some());
}

#[tokio::test]
async fn deregistered_instances_and_deleted_clusters_leave() {
    let fake = FakeEcs::start().await;
    let (kept, dropped) = (unique("gone-kept"), unique("gone-dropped"));
    let reply = fake
        .seed(&json!({"clusters": [
            {"name": kept, "instance_groups": [group(2, 1024, 2048, 0, "ACTIVE", true)]},
            {"name": dropped, "instance_groups": []},
        ]}))
        .await;
    let harness = Harness::new(fake.endpoint());
    harness.pass().await;
    let dropped_arn = harness
        .reader()
        .cluster(&dropped)
        .await
        .unwrap()
        .cluster
        .arn;
    let kept_cluster = harness.reader().cluster(&kept).await.unwrap().cluster;
    let leaving = reply.clusters[0].instances[0].arn.clone();

    let client = ecs_client(fake.endpoint());
    client
        .deregister_container_instance()
        .cluster(&kept)
        .container_instance(&leaving)
        .force(true)
        .send()
        .await
        .unwrap();
    client
        .delete_cluster()
        .cluster(&dropped)
        .send()
        .await
        .unwrap();
    let summary = harness.pass().await;
    assert_eq!(summary["removed_clusters"], json!([dropped_arn]));

    let cached = harness.reader().cluster(&kept).await.unwrap();
    assert_eq!(cached.cluster.instances.len(), 1);
    assert!(
        harness
            .hash(&format!("{}:instance:{leaving}", kept_cluster.arn))
            .await
            .is_empty()
    );
    assert!(matches!(
        harness.reader().cluster(&dropped).await,
        Err(ReadError::NotCached { .. })
    ));
    assert!(
        harness
            .string(&format!("{dropped_arn}:remaining_cpu"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn throttled_pass_fails_then_recovers() {
    let fake = FakeEcs::start().await;
    let name = unique("throttle");
    fake.seed(&json!({"clusters": [{"name": name, "instance_groups": [group(1, 1024, 1024, 0, "ACTIVE", true)]}]}))
        .await;
    let harness = Harness::new(fake.endpoint());
    // More throttling than the SDK's three attempts absorb.
    fake.inject_fault("ListContainerInstances", "ThrottlingException", 3)
        .await;
    let error = harness
        .reconciler
        .reconcile(&CancellationToken::new())
        .await
        .unwrap_err();
    let text = tend::runtime::error_chain(&error);
    assert!(text.contains("ListContainerInstances failed"), "{text}");
    assert!(text.contains(&name), "{text}");
    harness.pass().await;
    assert!(harness.reader().cluster(&name).await.is_ok());
}

#[tokio::test]
async fn stale_cache_refused() {
    let redis = shared_redis();
    let cache = CapacityCache::new(redis, true);
    let cluster = tend::ecs_capacity::Cluster {
        arn: format!(
            "arn:aws:ecs:us-east-1:123456789012:cluster/{}",
            unique("stale")
        ),
        name: "stale".into(),
        status: "ACTIVE".into(),
        running_tasks: 0,
        pending_tasks: 0,
        instances: Vec::new(),
    };
    cache
        .write(&cluster, SystemTime::now() - Duration::from_secs(600))
        .await
        .unwrap();
    let reader = CapacityReader::new(cache, Duration::from_secs(60));
    match reader.cluster(&cluster.arn).await {
        Err(ReadError::Stale { age, .. }) => assert!(age >= Duration::from_secs(600)),
        other => panic!("expected a stale error, got {other:?}"),
    }
}

#[tokio::test]
async fn idle_connection_drop_is_transparent() {
    let server = PrivateRedis::start(&["--timeout", "1"]);
    let redis = Redis::new(&crate::support::env::redis_config(&server.url())).unwrap();
    redis.ping().await.unwrap();
    // The server closes connections idle for more than 1 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis
        .ping()
        .await
        .expect("the read after an idle drop succeeds");
    let value: Option<String> = redis.query(redis::cmd("GET").arg("absent")).await.unwrap();
    assert!(value.is_none());
}
