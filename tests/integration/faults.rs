//! The capacity loop converges to the right state with faults injected
//! between tend and its peers (the ECS fake and Redis): 5% of forwarded
//! 16 KiB chunks end their connection, so about one request in five of
//! the large describe calls fails, and 20% of chunks are delayed.

use std::time::Duration;

use serde_json::json;
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Reconciler};

use crate::support::ecs_fake::{FakeEcs, ecs_client};
use crate::support::env::{REDIS_URL, redis_config, shared_redis};
use crate::support::fault_proxy::{FaultProxy, Faults, address_of};
use crate::support::unique;

const FAULTS: Faults = Faults {
    drop: 0.05,
    delay: 0.2,
    latency: Duration::from_millis(20),
};

/// Runs passes until one succeeds; returns how many failed first.
async fn until_success<R: Reconciler>(reconciler: &R, limit: usize) -> usize {
    for failures in 0..limit {
        if reconciler
            .reconcile(&CancellationToken::new())
            .await
            .is_ok()
        {
            return failures;
        }
    }
    panic!("no successful pass in {limit} attempts");
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
    let ecs_proxy = FaultProxy::start(address_of(fake.endpoint()), FAULTS).await;
    let redis_proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap(), FAULTS).await;

    let mut config = redis_config(&format!("redis://{}", redis_proxy.address));
    config.key_prefix = unique("tendfaulty");
    let faulty_redis = Redis::new(&config).unwrap();
    let reconciler = CapacityReconciler::new(
        Observer::new(ecs_client(&ecs_proxy.url()), vec![name.clone()]),
        CapacityCache::new(faulty_redis, true),
        EcsMetrics::register(&prometheus::Registry::new()).unwrap(),
        2,
    );
    let failures = until_success(&reconciler, 300).await;
    println!(
        "failed passes before success: {failures}; connections dropped: ecs {}, redis {}",
        ecs_proxy.dropped.load(std::sync::atomic::Ordering::Relaxed),
        redis_proxy
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    // Read back without faults: the cache matches the fake exactly.
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
    let _ = shared_redis();
    crate::support::env::delete_keys(&format!("{}:*", config.key_prefix));
    crate::support::env::delete_keys(&format!("*cluster/{name}*"));
}
