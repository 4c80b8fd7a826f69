//! The ECS fake seen through the real `aws-sdk-ecs` client: paging, limits,
//! resources, instance status changes, injected faults and call counts.

use std::io::Write;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Cluster, ContainerInstanceStatus, Resource};
use serde_json::{Value, json};

use crate::support::ecs_fake::{
    FakeEcs, InstanceUpdate, SeedReply, cpu_and_memory, describe_one, ecs_client,
};

const TARGET: &str = "AmazonEC2ContainerServiceV20141113.";

/// Returns a seed with one cluster of `count` default instances.
fn one_cluster(name: &str, count: u32) -> Value {
    json!({ "clusters": [{ "name": name, "instance_groups": [{ "count": count }] }] })
}

/// Returns the instance ARNs of the first seeded cluster, in seed order.
fn instance_arns(seeded: &SeedReply) -> Vec<String> {
    let instances = &seeded.clusters[0].instances;
    instances
        .iter()
        .map(|instance| instance.arn.clone())
        .collect()
}

async fn describe_cluster(fake: &FakeEcs, name: &str) -> Cluster {
    let request = fake.client().describe_clusters().clusters(name);
    let output = request.send().await.expect("DescribeClusters failed");
    output.clusters()[0].clone()
}

async fn list_instances(
    fake: &FakeEcs,
    cluster: &str,
    status: Option<ContainerInstanceStatus>,
) -> Vec<String> {
    let client = fake.client();
    let request = client
        .list_container_instances()
        .cluster(cluster)
        .set_status(status);
    let output = request.send().await.expect("ListContainerInstances failed");
    output.container_instance_arns().to_vec()
}

async fn list_clusters(fake: &FakeEcs) -> Vec<String> {
    let output = fake.client().list_clusters().send().await;
    output.expect("ListClusters failed").cluster_arns().to_vec()
}

#[tokio::test]
async fn list_clusters_pages_at_hundred() {
    let fake = FakeEcs::start().await;
    let clusters: Vec<Value> = (0..250)
        .map(|i| json!({ "name": format!("c{i:03}") }))
        .collect();
    let seeded = fake.seed(&json!({ "clusters": clusters })).await;

    let paginator = fake.client().list_clusters().into_paginator();
    let pages = paginator.send().collect::<Result<Vec<_>, _>>().await;
    let pages = pages.expect("ListClusters failed");

    let sizes: Vec<usize> = pages.iter().map(|page| page.cluster_arns().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let listed: Vec<&String> = pages.iter().flat_map(|page| page.cluster_arns()).collect();
    let expected: Vec<&String> = seeded.clusters.iter().map(|cluster| &cluster.arn).collect();
    assert_eq!(listed, expected);
    assert_eq!(seeded.clusters[249].name, "c249");
    assert_eq!(fake.calls().await.get("ListClusters"), Some(&3));
}

#[tokio::test]
async fn list_rejects_invalid_page_requests() {
    let fake = FakeEcs::start().await;
    fake.seed(&one_cluster("alpha", 1)).await;
    let client = fake.client();

    let too_large = client.list_clusters().max_results(101).send().await;
    let error = too_large.expect_err("maxResults 101 was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let request = client.list_container_instances().cluster("alpha");
    let zero = request.max_results(0).send().await;
    let error = zero.expect_err("maxResults 0 was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let bad_token = client
        .list_clusters()
        .next_token("not-a-token")
        .send()
        .await;
    let error = bad_token.expect_err("a bad nextToken was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());
}

#[tokio::test]
async fn container_instances_page_at_hundred() {
    let fake = FakeEcs::start().await;
    let seeded = fake.seed(&one_cluster("alpha", 250)).await;
    let client = fake.client();

    let paginator = client
        .list_container_instances()
        .cluster("alpha")
        .into_paginator();
    let pages = paginator.send().collect::<Result<Vec<_>, _>>().await;
    let pages = pages.expect("ListContainerInstances failed");
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p.container_instance_arns().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|page| page.container_instance_arns().iter().cloned())
        .collect();
    assert_eq!(listed, instance_arns(&seeded));

    let request = client
        .list_container_instances()
        .cluster("alpha")
        .max_results(40);
    let small_pages = request.into_paginator().send().collect::<Vec<_>>().await;
    assert_eq!(small_pages.len(), 7);
    let total: usize = small_pages
        .iter()
        .map(|page| {
            page.as_ref()
                .expect("page failed")
                .container_instance_arns()
                .len()
        })
        .sum();
    assert_eq!(total, 250);
}

#[tokio::test]
async fn describe_rejects_over_hundred_instances() {
    let fake = FakeEcs::start().await;
    let arns = instance_arns(&fake.seed(&one_cluster("alpha", 101)).await);
    let client = fake.client();

    let request = client.describe_container_instances().cluster("alpha");
    let result = request
        .set_container_instances(Some(arns.clone()))
        .send()
        .await;
    let error = result.expect_err("101 instances were accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let request = client.describe_container_instances().cluster("alpha");
    let output = request
        .set_container_instances(Some(arns[..100].to_vec()))
        .send()
        .await;
    let output = output.expect("describing 100 instances failed");
    assert_eq!(output.container_instances().len(), 100);
    assert!(output.failures().is_empty());
}

#[tokio::test]
async fn describe_reports_missing_instances() {
    let fake = FakeEcs::start().await;
    let seeded = fake.seed(&one_cluster("alpha", 1)).await;
    let known = &seeded.clusters[0].instances[0];
    let unknown_id = "0123456789abcdef0123456789abcdef";
    let client = fake.client();

    let request = client.describe_container_instances().cluster("alpha");
    let request = request
        .container_instances(&known.id)
        .container_instances(unknown_id);
    let output = request
        .send()
        .await
        .expect("DescribeContainerInstances failed");

    assert_eq!(output.container_instances().len(), 1);
    let found = output.container_instances()[0].container_instance_arn();
    assert_eq!(found, Some(known.arn.as_str()));
    assert_eq!(output.failures().len(), 1);
    let failure = &output.failures()[0];
    assert_eq!(failure.reason(), Some("MISSING"));
    let expected_arn =
        format!("arn:aws:ecs:us-east-1:123456789012:container-instance/alpha/{unknown_id}");
    assert_eq!(failure.arn(), Some(expected_arn.as_str()));
}

#[tokio::test]
async fn describe_shows_seeded_instance() {
    let fake = FakeEcs::start().await;
    let group = json!({ "cpu": 2048, "memory": 4096, "used_cpu": 512, "used_memory": 1024,
        "status": "DRAINING", "agent_connected": false, "running_tasks": 2 });
    let seed = json!({ "clusters": [{ "name": "alpha", "instance_groups": [group] }] });
    let seeded = fake.seed(&seed).await;
    let expected = &seeded.clusters[0].instances[0];

    let instance = describe_one(&fake, "alpha", &expected.arn).await;

    let ec2_instance_id = instance.ec2_instance_id().expect("no ec2InstanceId");
    assert_eq!(ec2_instance_id, expected.ec2_instance_id);
    assert!(ec2_instance_id.starts_with("i-"), "{ec2_instance_id}");
    assert_eq!(ec2_instance_id.len(), 19, "{ec2_instance_id}");
    assert_eq!(expected.id.len(), 32, "{}", expected.id);
    assert_eq!(instance.status(), Some("DRAINING"));
    assert!(!instance.agent_connected());
    assert_eq!(instance.running_tasks_count(), 2);
    assert_eq!(instance.version(), 1);
    let registered_at = instance.registered_at().expect("no registeredAt");
    assert!(registered_at.secs() > 1_600_000_000, "{registered_at}");
    let registered = instance.registered_resources();
    assert_eq!(cpu_and_memory(registered), (2048, 4096));
    assert_eq!(cpu_and_memory(instance.remaining_resources()), (1536, 3072));
    let ports = registered.iter().find(|r| r.name() == Some("PORTS"));
    let ports = ports.expect("no PORTS resource");
    assert_eq!(ports.r#type(), Some("STRINGSET"));
    assert!(ports.string_set_value().contains(&"22".to_owned()));
    assert!(registered.iter().any(|r| r.name() == Some("PORTS_UDP")));
}

#[tokio::test]
async fn register_honours_total_resources() {
    let fake = FakeEcs::start().await;
    let client = fake.client();
    let created = client.create_cluster().cluster_name("beta").send().await;
    created.expect("CreateCluster failed");
    let resource = |name: &str, value: i32| {
        let builder = Resource::builder().name(name).r#type("INTEGER");
        builder.integer_value(value).build()
    };

    let request = client.register_container_instance().cluster("beta");
    let output = request
        .instance_identity_document(r#"{"instanceId":"i-0123456789abcdef0"}"#)
        .total_resources(resource("CPU", 1024))
        .total_resources(resource("MEMORY", 2048))
        .send()
        .await
        .expect("RegisterContainerInstance failed");

    let instance = output.container_instance().expect("no containerInstance");
    assert_eq!(instance.ec2_instance_id(), Some("i-0123456789abcdef0"));
    assert_eq!(
        cpu_and_memory(instance.registered_resources()),
        (1024, 2048)
    );
    assert_eq!(cpu_and_memory(instance.remaining_resources()), (1024, 2048));
    let cluster = describe_cluster(&fake, "beta").await;
    assert_eq!(cluster.registered_container_instances_count(), 1);

    let request = client.register_container_instance().cluster("beta");
    let defaults = request
        .send()
        .await
        .expect("registering with defaults failed");
    let instance = defaults.container_instance().expect("no containerInstance");
    assert_eq!(
        cpu_and_memory(instance.registered_resources()),
        (4096, 7482)
    );
}

#[tokio::test]
async fn draining_changes_status_and_listings() {
    let fake = FakeEcs::start().await;
    let arns = instance_arns(&fake.seed(&one_cluster("alpha", 3)).await);
    let client = fake.client();

    let request = client.update_container_instances_state().cluster("alpha");
    let request = request.container_instances(&arns[0]);
    let output = request
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await;
    let output = output.expect("UpdateContainerInstancesState failed");

    let updated = &output.container_instances()[0];
    assert_eq!(updated.status(), Some("DRAINING"));
    assert_eq!(updated.version(), 2);
    let draining = list_instances(&fake, "alpha", Some(ContainerInstanceStatus::Draining)).await;
    assert_eq!(draining, arns[..1]);
    let active = list_instances(&fake, "alpha", Some(ContainerInstanceStatus::Active)).await;
    assert_eq!(active, arns[1..]);
    assert_eq!(list_instances(&fake, "alpha", None).await, arns);
}

#[tokio::test]
async fn deregistered_instance_leaves_listings() {
    let fake = FakeEcs::start().await;
    let seeded = fake.seed(&one_cluster("alpha", 2)).await;
    let instances = &seeded.clusters[0].instances;
    let client = fake.client();

    let request = client.deregister_container_instance().cluster("alpha");
    let result = request.container_instance(&instances[0].id).send().await;
    result.expect("DeregisterContainerInstance failed");

    let listed = list_instances(&fake, "alpha", None).await;
    assert_eq!(listed, [instances[1].arn.clone()]);
    let cluster = describe_cluster(&fake, "alpha").await;
    assert_eq!(cluster.registered_container_instances_count(), 1);
    let deregistered = describe_one(&fake, "alpha", &instances[0].arn).await;
    assert_eq!(deregistered.status(), Some("INACTIVE"));
}

#[tokio::test]
async fn deregister_with_tasks_needs_force() {
    let fake = FakeEcs::start().await;
    let group = json!({ "running_tasks": 1 });
    let seed = json!({ "clusters": [{ "name": "alpha", "instance_groups": [group] }] });
    let arn = instance_arns(&fake.seed(&seed).await).remove(0);
    let client = fake.client();

    let request = client.deregister_container_instance().cluster("alpha");
    let rejected = request.container_instance(&arn).send().await;
    let error = rejected.expect_err("deregistered an instance with tasks");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let request = client.deregister_container_instance().cluster("alpha");
    let forced = request.container_instance(&arn).force(true).send().await;
    forced.expect("forced DeregisterContainerInstance failed");
    assert!(list_instances(&fake, "alpha", None).await.is_empty());
}

#[tokio::test]
async fn delete_cluster_needs_no_instances() {
    let fake = FakeEcs::start().await;
    let arn = instance_arns(&fake.seed(&one_cluster("alpha", 1)).await).remove(0);
    let client = fake.client();

    let rejected = client.delete_cluster().cluster("alpha").send().await;
    let error = rejected
        .expect_err("deleted a cluster with instances")
        .into_service_error();
    assert!(
        error.is_cluster_contains_container_instances_exception(),
        "{error:?}"
    );

    let request = client.deregister_container_instance().cluster("alpha");
    let result = request.container_instance(&arn).send().await;
    result.expect("DeregisterContainerInstance failed");
    let deleted = client.delete_cluster().cluster("alpha").send().await;
    deleted.expect("DeleteCluster failed");

    assert!(list_clusters(&fake).await.is_empty());
    let cluster = describe_cluster(&fake, "alpha").await;
    assert_eq!(cluster.status(), Some("INACTIVE"));
}

#[tokio::test]
async fn unknown_cluster_is_not_found() {
    let fake = FakeEcs::start().await;
    let client = fake.client();

    let listed = client
        .list_container_instances()
        .cluster("ghost")
        .send()
        .await;
    let error = listed
        .expect_err("listed an unknown cluster")
        .into_service_error();
    assert!(error.is_cluster_not_found_exception(), "{error:?}");

    let described = client.describe_clusters().clusters("ghost").send().await;
    let described = described.expect("DescribeClusters failed");
    assert!(described.clusters().is_empty());
    let failure = &described.failures()[0];
    assert_eq!(
        failure.arn(),
        Some("arn:aws:ecs:us-east-1:123456789012:cluster/ghost")
    );
    assert_eq!(failure.reason(), Some("MISSING"));
}

#[tokio::test]
async fn throttling_surfaces_after_retries() {
    let fake = FakeEcs::start().await;
    fake.seed(&one_cluster("alpha", 1)).await;
    fake.inject_fault("ListContainerInstances", "ThrottlingException", 5)
        .await;
    let client = ecs_client(fake.endpoint());

    let throttled = client
        .list_container_instances()
        .cluster("alpha")
        .send()
        .await;
    let error = throttled.expect_err("the throttled call succeeded");
    assert_eq!(error.code(), Some("ThrottlingException"));
    assert_eq!(error.message(), Some("Rate exceeded"));
    assert_eq!(fake.calls().await.get("ListContainerInstances"), Some(&3));

    // Two faults remain, so the third attempt of the next call succeeds.
    let retried = client
        .list_container_instances()
        .cluster("alpha")
        .send()
        .await;
    let retried = retried.expect("retries did not recover");
    assert_eq!(retried.container_instance_arns().len(), 1);
    assert_eq!(fake.calls().await.get("ListContainerInstances"), Some(&6));
}

#[tokio::test]
async fn server_exception_returns_500() {
    let fake = FakeEcs::start().await;
    fake.inject_fault("ListClusters", "ServerException", 1)
        .await;
    let target = format!("{TARGET}ListClusters");

    let failed = fake.aws_raw(Some(&target), "{}").await;

    assert_eq!(failed.status, 500);
    assert_eq!(failed.body["__type"], "ServerException");
    assert_eq!(failed.error_type.as_deref(), Some("ServerException"));
    let recovered = fake.aws_raw(Some(&target), "{}").await;
    assert_eq!(recovered.status, 200);
}

#[tokio::test]
async fn wire_format_matches_aws_json() {
    let fake = FakeEcs::start().await;
    let list_clusters = format!("{TARGET}ListClusters");

    let listed = fake.aws_raw(Some(&list_clusters), "").await;
    assert_eq!(listed.status, 200);
    let content_type = listed.content_type.as_deref();
    assert_eq!(content_type, Some("application/x-amz-json-1.1"));
    let request_id = listed.request_id.expect("no x-amzn-RequestId header");
    assert_eq!(request_id.len(), 36, "{request_id}");
    assert_eq!(listed.body, json!({ "clusterArns": [] }));
    assert_eq!(listed.error_type, None);

    let unknown = fake
        .aws_raw(Some(&format!("{TARGET}Frobnicate")), "{}")
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["__type"], "UnknownOperationException");
    let error_type = unknown.error_type.as_deref();
    assert_eq!(error_type, Some("UnknownOperationException"));

    let no_target = fake.aws_raw(None, "{}").await;
    assert_eq!(no_target.status, 400);
    assert_eq!(no_target.body["__type"], "UnknownOperationException");

    let malformed = fake.aws_raw(Some(&list_clusters), "{oops").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["__type"], "SerializationException");
    let error_type = malformed.error_type.as_deref();
    assert_eq!(error_type, Some("SerializationException"));
}

#[tokio::test]
async fn calls_are_counted_per_operation() {
    let fake = FakeEcs::start().await;
    let client = fake.client();
    for name in ["a", "b"] {
        let created = client.create_cluster().cluster_name(name).send().await;
        created.expect("CreateCluster failed");
    }
    list_clusters(&fake).await;

    let calls = fake.calls().await;
    assert_eq!(calls.get("CreateCluster"), Some(&2));
    assert_eq!(calls.get("ListClusters"), Some(&1));
    assert_eq!(calls.len(), 2, "{calls:?}");

    fake.reset_calls().await;
    assert!(fake.calls().await.is_empty());
    assert_eq!(
        list_clusters(&fake).await.len(),
        2,
        "resetting calls changed the state"
    );
}

#[tokio::test]
async fn fargate_only_cluster_counts_tasks() {
    let fake = FakeEcs::start().await;
    let seed = json!({ "clusters": [{ "name": "serverless", "fargate_running_tasks": 7 }] });
    fake.seed(&seed).await;

    let cluster = describe_cluster(&fake, "serverless").await;

    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert_eq!(cluster.registered_container_instances_count(), 0);
    assert_eq!(cluster.running_tasks_count(), 7);
    assert_eq!(cluster.pending_tasks_count(), 0);
    assert!(list_instances(&fake, "serverless", None).await.is_empty());
}

#[tokio::test]
async fn admin_update_bumps_version() {
    let fake = FakeEcs::start().await;
    let arn = instance_arns(&fake.seed(&one_cluster("alpha", 1)).await).remove(0);
    let update = InstanceUpdate {
        remaining_cpu: Some(100),
        agent_connected: Some(false),
        ..InstanceUpdate::default()
    };

    let reply = fake.update_instance("alpha", &arn, &update).await;

    assert_eq!(reply["version"], 2);
    let instance = describe_one(&fake, "alpha", &arn).await;
    assert_eq!(instance.version(), 2);
    assert!(!instance.agent_connected());
    assert_eq!(cpu_and_memory(instance.remaining_resources()), (100, 7482));
}

#[tokio::test]
async fn invalid_seed_names_the_field() {
    let fake = FakeEcs::start().await;
    let group = |group: Value| json!({ "clusters": [{ "name": "a", "instance_groups": [group] }] });
    let cases = [
        (
            group(json!({ "used_cpu": 9000 })),
            "clusters[0].instance_groups[0].used_cpu",
        ),
        (
            group(json!({ "cpus": 1 })),
            "clusters[0].instance_groups[0].cpus",
        ),
        (
            group(json!({ "status": "BUSY" })),
            "clusters[0].instance_groups[0].status",
        ),
        (
            json!({ "clusters": [{ "name": "a" }, { "name": "b", "fargate_running_tasks": "x" }] }),
            "clusters[1].fargate_running_tasks",
        ),
        (
            json!({ "clusters": [{ "name": "a" }, { "name": "a" }] }),
            "clusters[1].name",
        ),
        (
            json!({ "clusters": [{ "instance_groups": [] }] }),
            "clusters[0].name",
        ),
    ];

    for (seed, field) in cases {
        let (status, reply) = fake.admin_post("/_fake/state", &seed).await;
        assert_eq!(status, 400, "{seed} was accepted");
        let message = reply["error"].as_str().expect("no error message");
        assert!(
            message.starts_with(field),
            "{message:?} does not name {field}"
        );
    }
}

#[tokio::test]
async fn seed_file_loads_at_start() {
    let mut file = tempfile::NamedTempFile::new().expect("failed to create a temporary file");
    write!(file, "{}", one_cluster("seeded", 3)).expect("failed to write the seed file");
    let path = file.path().to_str().expect("UTF-8 path");

    let fake = FakeEcs::start_with_args(&["--seed", path]).await;

    assert_eq!(list_instances(&fake, "seeded", None).await.len(), 3);
}

#[tokio::test]
async fn reset_empties_state_and_calls() {
    let fake = FakeEcs::start().await;
    fake.seed(&one_cluster("alpha", 2)).await;
    list_clusters(&fake).await;

    fake.reset().await;

    assert!(fake.calls().await.is_empty());
    assert!(list_clusters(&fake).await.is_empty());
}
