//! The same ECS topology built through the real SDK against moto and against
//! the ECS fake must give the same cache: the fake is only trusted where it
//! agrees with moto on the calls both implement.

use std::time::Duration;

use aws_sdk_ecs::types::{ContainerInstanceStatus, Resource};
use serde_json::json;
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CachedCluster, CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::runtime::{CancellationToken, Reconciler};

use crate::support::ecs_fake::{FakeEcs, ecs_client};
use crate::support::env::{delete_keys, moto_endpoint, shared_redis};
use crate::support::unique;

/// Launches EC2 instances through moto's EC2 query API (moto registers a
/// container instance only for an EC2 instance it knows) and returns their ids.
async fn moto_ec2_instances(endpoint: &str, count: usize) -> Vec<String> {
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
        .expect("moto answers RunInstances")
        .text()
        .await
        .unwrap();
    let ids: Vec<String> = reply
        .split("<instanceId>")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("</instanceId>")
                .map(|(id, _)| id.to_owned())
        })
        .collect();
    assert_eq!(ids.len(), count, "{reply}");
    ids
}

/// Creates a cluster with three instances (moto's fixed 4096 CPU and
/// 7482 MiB each), drains the first and deregisters the third.
async fn build_topology(client: &aws_sdk_ecs::Client, cluster: &str, ec2_ids: &[String]) {
    client
        .create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("CreateCluster");
    let mut arns = Vec::new();
    for ec2_id in ec2_ids {
        let document = json!({ "instanceId": ec2_id }).to_string();
        let reply = client
            .register_container_instance()
            .cluster(cluster)
            .instance_identity_document(document)
            .total_resources(
                Resource::builder()
                    .name("CPU")
                    .r#type("INTEGER")
                    .integer_value(4096)
                    .build(),
            )
            .total_resources(
                Resource::builder()
                    .name("MEMORY")
                    .r#type("INTEGER")
                    .integer_value(7482)
                    .build(),
            )
            .send()
            .await
            .expect("RegisterContainerInstance");
        let arn = reply
            .container_instance()
            .and_then(|i| i.container_instance_arn())
            .unwrap();
        arns.push(arn.to_owned());
    }
    client
        .update_container_instances_state()
        .cluster(cluster)
        .container_instances(&arns[0])
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .expect("UpdateContainerInstancesState");
    client
        .deregister_container_instance()
        .cluster(cluster)
        .container_instance(&arns[2])
        .force(true)
        .send()
        .await
        .expect("DeregisterContainerInstance");
}

/// Builds the topology on `endpoint`, runs one pass and reads the cache.
async fn cache_after_pass(endpoint: &str, cluster: &str, ec2_ids: &[String]) -> CachedCluster {
    let client = ecs_client(endpoint);
    build_topology(&client, cluster, ec2_ids).await;
    let redis = shared_redis();
    let prefix = redis.prefix().to_owned();
    let cache = CapacityCache::new(redis, true);
    let metrics = EcsMetrics::register(&prometheus::Registry::new()).unwrap();
    // Only this cluster: moto is shared by every test of the run.
    let observer = Observer::new(client, vec![cluster.to_owned()]);
    let reconciler = CapacityReconciler::new(observer, cache.clone(), metrics, 2);
    reconciler
        .reconcile(&CancellationToken::new())
        .await
        .expect("pass succeeds");
    let cached = CapacityReader::new(cache, Duration::from_secs(60))
        .cluster(cluster)
        .await
        .expect("cluster cached");
    delete_keys(&format!("{prefix}:*"));
    delete_keys(&format!("{}:*", cached.cluster.arn));
    cached
}

fn check(cached: &CachedCluster) {
    let mut statuses: Vec<&str> = cached
        .cluster
        .instances
        .iter()
        .map(|i| i.status.as_str())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["ACTIVE", "DRAINING"]);
    assert_eq!(cached.summary.schedulable_instances, 1);
    assert_eq!(cached.summary.free_cpu, 4096);
    assert_eq!(cached.summary.free_memory, 7482);
    assert_eq!(cached.summary.largest_free_memory, 7482);
    assert!(cached.summary.instances_total == 2);
    assert!(cached.best_fit(4096, 7482).is_some());
    assert!(cached.best_fit(4097, 1).is_none());
    for instance in &cached.cluster.instances {
        assert_eq!(instance.registered_cpu, 4096);
        assert_eq!(instance.registered_memory, 7482);
        assert!(
            instance
                .ec2_instance_id
                .as_deref()
                .is_some_and(|id| id.starts_with("i-"))
        );
    }
}

#[tokio::test]
async fn moto_and_fake_give_same_cache() {
    let cluster = unique("conformance");
    let ec2_ids = moto_ec2_instances(&moto_endpoint(), 3).await;
    let from_moto = cache_after_pass(&moto_endpoint(), &cluster, &ec2_ids).await;
    let fake = FakeEcs::start().await;
    let from_fake = cache_after_pass(fake.endpoint(), &cluster, &ec2_ids).await;
    check(&from_moto);
    check(&from_fake);
    assert_eq!(from_moto.summary, from_fake.summary);
}
