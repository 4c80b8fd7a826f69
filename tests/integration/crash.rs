//! kill -9 while tend writes the cache: every cluster must stay consistent
//! (each cluster's keys come from one snapshot) and a restart converges.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::support::ecs_fake::{FakeEcs, InstanceUpdate};
use crate::support::env::{REDIS_URL, delete_keys};
use crate::support::tend::TendEnv;
use crate::support::unique;

const CLUSTERS: usize = 12;
const INSTANCES: u32 = 150;

/// Checks that every cached cluster's keys agree with each other. Returns
/// the number of clusters checked.
fn check_consistent(prefix: &str) -> usize {
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut redis = client.get_connection().unwrap();
    let arns: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:ecs:clusters"))
        .query(&mut redis)
        .unwrap();
    for arn in &arns {
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{prefix}:ecs:cluster:{arn}"))
            .query(&mut redis)
            .unwrap();
        let instances: Vec<serde_json::Value> = serde_json::from_str(&hash["instances"]).unwrap();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{prefix}:ecs:cluster:{arn}:instances"))
            .query(&mut redis)
            .unwrap();
        assert_eq!(members.len(), instances.len(), "instance set of {arn}");
        let seed_keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{arn}:instance:*"))
            .query(&mut redis)
            .unwrap();
        assert_eq!(seed_keys.len(), instances.len(), "seed hashes of {arn}");
        let mut free_memory = 0;
        for instance in &instances {
            let key = format!("{arn}:instance:{}", instance["arn"].as_str().unwrap());
            let remaining: i64 = redis::cmd("HGET")
                .arg(&key)
                .arg("remaining_memory")
                .query(&mut redis)
                .unwrap();
            assert_eq!(
                remaining,
                instance["remaining_memory"].as_i64().unwrap(),
                "{key}"
            );
            if instance["status"] == "ACTIVE" && instance["agent_connected"] == true {
                free_memory += remaining;
            }
        }
        let seed_free: i64 = redis::cmd("GET")
            .arg(format!("{arn}:remaining_memory"))
            .query(&mut redis)
            .unwrap();
        assert_eq!(seed_free, free_memory, "{arn}:remaining_memory");
        assert_eq!(
            hash["free_memory"],
            free_memory.to_string(),
            "free_memory of {arn}"
        );
    }
    arns.len()
}

#[tokio::test]
async fn kill_during_writes_keeps_cache_consistent() {
    let fake = FakeEcs::start().await;
    let names: Vec<String> = (0..CLUSTERS).map(|_| unique("crash")).collect();
    let clusters: Vec<_> = names
        .iter()
        .map(|name| json!({"name": name, "instance_groups": [{"count": INSTANCES, "cpu": 2048, "memory": 4096}]}))
        .collect();
    let reply = fake.seed(&json!({ "clusters": clusters })).await;
    let prefix = unique("tendcrash");
    let env = TendEnv::new(fake.endpoint(), REDIS_URL, &prefix)
        .set("TEND_ECS_CAPACITY_INTERVAL", "1s")
        .set("TEND_RUNTIME_LEASE_TTL", "1s")
        .set("TEND_ECS_CAPACITY_CLUSTERS", &names.join(","));

    for round in 0..6u64 {
        // Change some instances so consecutive snapshots differ.
        for (index, cluster) in names.iter().enumerate() {
            let arn = &reply.clusters[index].instances[round as usize].arn;
            let update = InstanceUpdate {
                remaining_memory: Some(1000 + 100 * round as i32),
                ..InstanceUpdate::default()
            };
            fake.update_instance(cluster, arn, &update).await;
        }
        let mut tend = env.spawn_run();
        // Kill at a different point of a pass each round.
        tokio::time::sleep(Duration::from_millis(400 + 370 * round)).await;
        tend.kill9();
        check_consistent(&prefix);
    }

    // A restart converges to the fake's current state once the killed
    // process's lease has expired.
    let recovery = std::time::Instant::now();
    let tend = env.spawn_run();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while check_consistent(&prefix) < CLUSTERS {
        assert!(
            std::time::Instant::now() < deadline,
            "not every cluster cached:\n{}",
            tend.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "cache kill -9: 6 kills mid-write, every cluster consistent after each; \
         {CLUSTERS} clusters cached {:.1?} after the restart",
        recovery.elapsed()
    );
    drop(tend);
    delete_keys(&format!("{prefix}:*"));
    for name in &names {
        delete_keys(&format!("*cluster/{name}*"));
    }
}
