//! Task definitions and tasks in the ECS fake, seen through the real
//! `aws-sdk-ecs` client: RunTask placement and resource accounting,
//! idempotency, staged failures, StartTask, the task lifecycle and the
//! task admin endpoints.

use std::time::Duration;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerOverride, DesiredStatus, LaunchType, PlacementConstraint,
    PlacementConstraintType, PlacementStrategy, PlacementStrategyType, Task, TaskOverride,
    TaskStopCode,
};
use serde_json::json;

use crate::support::ecs_fake::{
    FakeEcs, InstanceUpdate, SeededInstance, cpu_and_memory, describe_one, register_task_definition,
};

/// Starts a fake with extra arguments, seeds cluster `alpha` with `count`
/// instances of `cpu` units and `memory` MiB each, and registers task
/// definition `job`, whose tasks take 256 units and 512 MiB. Returns the
/// fake and the instances in seed order.
async fn start_with_job(
    args: &[&str],
    count: u32,
    cpu: i32,
    memory: i32,
) -> (FakeEcs, Vec<SeededInstance>) {
    let fake = FakeEcs::start_with_args(args).await;
    let group = json!({ "count": count, "cpu": cpu, "memory": memory });
    let seed = json!({ "clusters": [{ "name": "alpha", "instance_groups": [group] }] });
    let instances = fake.seed(&seed).await.clusters.remove(0).instances;
    register_task_definition(&fake.client(), "job", 256, 512).await;
    (fake, instances)
}

/// Returns a RunTask request for one task of `job` in `alpha`.
fn run_job(fake: &FakeEcs) -> RunTaskFluentBuilder {
    let request = fake.client().run_task().cluster("alpha");
    request.task_definition("job").launch_type(LaunchType::Ec2)
}

/// Sets the remaining CPU or memory of an instance through the admin
/// endpoint. `None` keeps the value.
async fn set_remaining(
    fake: &FakeEcs,
    instance: &SeededInstance,
    cpu: Option<i32>,
    memory: Option<i32>,
) {
    let update = InstanceUpdate {
        remaining_cpu: cpu,
        remaining_memory: memory,
        ..InstanceUpdate::default()
    };
    fake.update_instance("alpha", &instance.arn, &update).await;
}

fn member_of(expression: &str) -> PlacementConstraint {
    let builder = PlacementConstraint::builder().r#type(PlacementConstraintType::MemberOf);
    builder.expression(expression).build()
}

fn pin(instance: &SeededInstance) -> PlacementConstraint {
    member_of(&format!("ec2InstanceId == {}", instance.ec2_instance_id))
}

async fn run(fake: &FakeEcs, family: &str, count: i32) -> RunTaskOutput {
    let request = run_job(fake).task_definition(family).count(count);
    request.send().await.expect("RunTask failed")
}

async fn describe_task(fake: &FakeEcs, arn: &str) -> Task {
    let request = fake.client().describe_tasks().cluster("alpha").tasks(arn);
    let output = request.send().await.expect("DescribeTasks failed");
    output.tasks()[0].clone()
}

fn task_arns(output: &RunTaskOutput) -> Vec<String> {
    let arns = output
        .tasks()
        .iter()
        .map(|task| task.task_arn().expect("no taskArn"));
    arns.map(str::to_owned).collect()
}

/// Returns the `(arn, reason)` pairs of a RunTask reply's failures.
fn failures(output: &RunTaskOutput) -> Vec<(String, String)> {
    let pair = |failure: &aws_sdk_ecs::types::Failure| {
        let arn = failure.arn().unwrap_or_default().to_owned();
        (arn, failure.reason().unwrap_or_default().to_owned())
    };
    output.failures().iter().map(pair).collect()
}

async fn remaining(fake: &FakeEcs, instance: &SeededInstance) -> (i32, i32) {
    let described = describe_one(fake, "alpha", &instance.arn).await;
    cpu_and_memory(described.remaining_resources())
}

#[tokio::test]
async fn task_definition_revisions_are_described() {
    let fake = FakeEcs::start().await;
    let client = fake.client();
    let first = register_task_definition(&client, "job", 256, 512).await;
    let second = register_task_definition(&client, "job", 512, 1024).await;
    assert_eq!(
        first,
        "arn:aws:ecs:us-east-1:123456789012:task-definition/job:1"
    );
    assert_eq!(
        second,
        "arn:aws:ecs:us-east-1:123456789012:task-definition/job:2"
    );

    let cases = [
        ("job", &second),
        ("job:1", &first),
        (first.as_str(), &first),
    ];
    for (reference, expected) in cases {
        let request = client.describe_task_definition().task_definition(reference);
        let output = request.send().await.expect("DescribeTaskDefinition failed");
        let definition = output.task_definition().expect("no taskDefinition");
        assert_eq!(definition.task_definition_arn(), Some(expected.as_str()));
        assert_eq!(definition.family(), Some("job"));
        assert_eq!(definition.status().map(|s| s.as_str()), Some("ACTIVE"));
        let container = &definition.container_definitions()[0];
        assert_eq!(container.name(), Some("main"));
        assert_eq!(container.essential(), Some(true));
    }
    let latest = client.describe_task_definition().task_definition("job");
    let latest = latest.send().await.expect("DescribeTaskDefinition failed");
    let latest = latest.task_definition().expect("no taskDefinition");
    assert_eq!(latest.revision(), 2);
    assert_eq!(latest.container_definitions()[0].cpu(), 512);
    assert_eq!(latest.container_definitions()[0].memory(), Some(1024));
}

#[tokio::test]
async fn unknown_task_definition_is_client_error() {
    let fake = FakeEcs::start().await;
    let client = fake.client();
    register_task_definition(&client, "job", 256, 512).await;

    for reference in [
        "ghost",
        "job:2",
        "arn:aws:ecs:us-east-1:123456789012:task-definition/job:9",
    ] {
        let request = client.describe_task_definition().task_definition(reference);
        let error = request
            .send()
            .await
            .expect_err("an unknown task definition was found");
        let error = error.into_service_error();
        assert!(error.is_client_exception(), "{reference}: {error:?}");
        assert_eq!(error.message(), Some("Unable to describe task definition."));
    }
}

#[tokio::test]
async fn container_without_memory_is_rejected() {
    let fake = FakeEcs::start().await;
    let container = ContainerDefinition::builder()
        .name("main")
        .image("busybox")
        .cpu(128);
    let request = fake.client().register_task_definition().family("job");
    let result = request
        .container_definitions(container.build())
        .send()
        .await;

    let error = result.expect_err("a container without memory was accepted");
    assert!(error.into_service_error().is_client_exception());

    let container = ContainerDefinition::builder().name("main").image("busybox");
    let request = fake.client().register_task_definition().family("job");
    let request = request
        .container_definitions(container.build())
        .memory("1 GB");
    let output = request
        .send()
        .await
        .expect("task-level memory was rejected");
    let definition = output.task_definition().expect("no taskDefinition");
    assert_eq!(definition.memory(), Some("1 GB"));
}

#[tokio::test]
async fn run_task_takes_instance_resources() {
    let (fake, instances) = start_with_job(&[], 1, 1024, 2048).await;
    let instance = &instances[0];

    let output = run(&fake, "job", 1).await;

    assert!(output.failures().is_empty(), "{:?}", output.failures());
    let task = &output.tasks()[0];
    assert_eq!(task.last_status(), Some("PENDING"));
    assert_eq!(task.desired_status(), Some("RUNNING"));
    assert_eq!(task.container_instance_arn(), Some(instance.arn.as_str()));
    assert_eq!((task.cpu(), task.memory()), (Some("256"), Some("512")));
    assert_eq!(task.group(), Some("family:job"));
    let described = describe_one(&fake, "alpha", &instance.arn).await;
    assert_eq!(cpu_and_memory(described.remaining_resources()), (768, 1536));
    assert_eq!(described.running_tasks_count(), 1);
    assert_eq!(described.pending_tasks_count(), 0);
    // Seeded at 1, bumped by the placement and by the start.
    assert_eq!(described.version(), 3);
}

#[tokio::test]
async fn member_of_pins_the_instance() {
    let (fake, instances) = start_with_job(&[], 3, 1024, 2048).await;
    set_remaining(&fake, &instances[1], None, Some(100)).await;
    let request = run_job(&fake);

    let rejected = request
        .clone()
        .placement_constraints(pin(&instances[1]))
        .send()
        .await;
    let rejected = rejected.expect("RunTask failed");
    assert!(rejected.tasks().is_empty());
    let expected = vec![(instances[1].arn.clone(), "RESOURCE:MEMORY".to_owned())];
    assert_eq!(failures(&rejected), expected);

    let placed = request
        .clone()
        .placement_constraints(pin(&instances[2]))
        .send()
        .await;
    let placed = placed.expect("RunTask failed");
    let task = &placed.tasks()[0];
    assert_eq!(
        task.container_instance_arn(),
        Some(instances[2].arn.as_str())
    );

    let ids = format!(
        "{}, {}",
        instances[1].ec2_instance_id, instances[0].ec2_instance_id
    );
    let listed = member_of(&format!("ec2InstanceId in [{ids}]"));
    let placed = request.placement_constraints(listed).send().await;
    let placed = placed.expect("RunTask failed");
    let task = &placed.tasks()[0];
    assert_eq!(
        task.container_instance_arn(),
        Some(instances[0].arn.as_str())
    );
}

#[tokio::test]
async fn run_task_rejects_invalid_parameters() {
    let (fake, _instances) = start_with_job(&[], 1, 1024, 2048).await;
    let request = run_job(&fake);

    for count in [0, 11] {
        let result = request.clone().count(count).send().await;
        let error = result.expect_err("an invalid count was accepted");
        let error = error.into_service_error();
        assert!(
            error.is_invalid_parameter_exception(),
            "count {count}: {error:?}"
        );
    }
    let unparsable = member_of("ec2InstanceId ~= i-1");
    let result = request
        .clone()
        .placement_constraints(unparsable)
        .send()
        .await;
    let error = result.expect_err("an unparsable expression was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let long_token = "t".repeat(65);
    let result = request.clone().client_token(long_token).send().await;
    let error = result.expect_err("a 65-character clientToken was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());

    let result = request.clone().cluster("ghost").send().await;
    let error = result.expect_err("an unknown cluster was accepted");
    assert!(error.into_service_error().is_cluster_not_found_exception());
    assert!(fake.tasks().await.is_empty());
}

#[tokio::test]
async fn empty_cluster_has_no_instances() {
    let fake = FakeEcs::start().await;
    fake.seed(&json!({ "clusters": [{ "name": "alpha" }] }))
        .await;
    register_task_definition(&fake.client(), "job", 256, 512).await;

    let request = run_job(&fake);
    let error = request
        .send()
        .await
        .expect_err("RunTask placed a task on no instance");

    assert_eq!(
        error.message(),
        Some("No Container Instances were found in your cluster.")
    );
    assert!(error.into_service_error().is_invalid_parameter_exception());
}

#[tokio::test]
async fn count_places_what_fits() {
    let (fake, instances) = start_with_job(&[], 1, 4096, 1024).await;
    let instance = &instances[0];

    let output = run(&fake, "job", 3).await;

    assert_eq!(output.tasks().len(), 2);
    let expected = vec![(instance.arn.clone(), "RESOURCE:MEMORY".to_owned())];
    assert_eq!(failures(&output), expected);
    assert_eq!(remaining(&fake, instance).await, (3584, 0));
    assert_eq!(fake.tasks().await.len(), 2);
}

#[tokio::test]
async fn disconnected_agent_is_reported() {
    let (fake, instances) = start_with_job(&[], 1, 1024, 2048).await;
    let instance = &instances[0];
    let disconnected = InstanceUpdate {
        agent_connected: Some(false),
        ..InstanceUpdate::default()
    };
    fake.update_instance("alpha", &instance.arn, &disconnected)
        .await;

    let output = run(&fake, "job", 1).await;

    assert!(output.tasks().is_empty());
    let expected = vec![(instance.arn.clone(), "AGENT".to_owned())];
    assert_eq!(failures(&output), expected);
}

#[tokio::test]
async fn client_token_makes_run_task_idempotent() {
    let (fake, instances) = start_with_job(&[], 1, 1024, 2048).await;
    let instance = &instances[0];
    let request = run_job(&fake)
        .client_token("message-1")
        .placement_constraints(pin(instance));

    let first = request.clone().send().await.expect("RunTask failed");
    let retried = request.clone().send().await.expect("the retry failed");

    let arns = task_arns(&first);
    assert_eq!(arns.len(), 1);
    assert_eq!(task_arns(&retried), arns);
    assert_eq!(fake.tasks().await.len(), 1);
    assert_eq!(fake.tasks().await[0]["client_token"], "message-1");
    assert_eq!(remaining(&fake, instance).await, (768, 1536));

    let changed = request.started_by("someone-else").send().await;
    let error = changed.expect_err("a reused token with other parameters was accepted");
    let aws_sdk_ecs::operation::run_task::RunTaskError::ConflictException(conflict) =
        error.into_service_error()
    else {
        panic!("expected ConflictException");
    };
    assert_eq!(conflict.resource_ids(), arns);
    assert_eq!(fake.tasks().await.len(), 1);
    assert_eq!(fake.calls().await.get("RunTask"), Some(&3));
}

#[tokio::test]
async fn overrides_change_task_size() {
    let (fake, instances) = start_with_job(&[], 1, 4096, 8192).await;
    let instance = &instances[0];
    let request = run_job(&fake);

    let container = ContainerOverride::builder()
        .name("main")
        .cpu(1024)
        .memory(2048);
    let overrides = TaskOverride::builder().container_overrides(container.build());
    let output = request.clone().overrides(overrides.build()).send().await;
    let output = output.expect("RunTask failed");
    let task = &output.tasks()[0];
    assert_eq!((task.cpu(), task.memory()), (Some("1024"), Some("2048")));
    assert_eq!(remaining(&fake, instance).await, (3072, 6144));

    let overrides = TaskOverride::builder().cpu("512").memory("1 GB");
    let output = request.clone().overrides(overrides.build()).send().await;
    let output = output.expect("RunTask failed");
    let task = &output.tasks()[0];
    assert_eq!((task.cpu(), task.memory()), (Some("512"), Some("1024")));
    assert_eq!(remaining(&fake, instance).await, (2560, 5120));

    let unknown = ContainerOverride::builder().name("sidecar").memory(64);
    let overrides = TaskOverride::builder().container_overrides(unknown.build());
    let result = request.overrides(overrides.build()).send().await;
    let error = result.expect_err("an override of an unknown container was accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());
}

#[tokio::test]
async fn staged_failures_precede_placement() {
    let (fake, instances) = start_with_job(&[], 1, 1024, 2048).await;
    let instance = &instances[0];
    fake.stage_run_task_failures("RESOURCE:MEMORY", 2).await;

    for _ in 0..2 {
        let output = run(&fake, "job", 1).await;
        assert!(output.tasks().is_empty());
        let expected = vec![(instance.arn.clone(), "RESOURCE:MEMORY".to_owned())];
        assert_eq!(failures(&output), expected);
    }
    let output = run(&fake, "job", 1).await;

    assert_eq!(output.tasks().len(), 1);
    assert_eq!(fake.tasks().await.len(), 1);
    assert_eq!(remaining(&fake, instance).await, (768, 1536));
}

#[tokio::test]
async fn task_runs_then_exits_once() {
    let args = ["--task-start-delay", "300ms", "--task-run-time", "1s"];
    let (fake, instances) = start_with_job(&args, 1, 1024, 2048).await;
    let instance = &instances[0];
    let arn = task_arns(&run(&fake, "job", 1).await).remove(0);

    let pending = describe_task(&fake, &arn).await;
    assert_eq!(pending.last_status(), Some("PENDING"));
    assert_eq!(
        describe_one(&fake, "alpha", &instance.arn)
            .await
            .pending_tasks_count(),
        1
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = describe_task(&fake, &arn).await;
    assert_eq!(running.last_status(), Some("RUNNING"));
    assert!(running.started_at().is_some());
    let described = describe_one(&fake, "alpha", &instance.arn).await;
    assert_eq!(described.running_tasks_count(), 1);
    assert_eq!(described.pending_tasks_count(), 0);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stopped = describe_task(&fake, &arn).await;
    assert_eq!(stopped.last_status(), Some("STOPPED"));
    assert_eq!(stopped.desired_status(), Some("STOPPED"));
    assert_eq!(
        stopped.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited)
    );
    assert_eq!(
        stopped.stopped_reason(),
        Some("Essential container in task exited")
    );
    let described = describe_one(&fake, "alpha", &instance.arn).await;
    assert_eq!(described.running_tasks_count(), 0);
    assert_eq!(
        cpu_and_memory(described.remaining_resources()),
        (1024, 2048)
    );
    let version = described.version();
    let again = describe_one(&fake, "alpha", &instance.arn).await;
    assert_eq!(again.version(), version, "the exit was applied twice");
}

#[tokio::test]
async fn task_config_applies_to_new_tasks() {
    let (fake, _instances) = start_with_job(&[], 1, 1024, 2048).await;
    let early = task_arns(&run(&fake, "job", 1).await).remove(0);

    fake.configure_tasks(60_000, None).await;
    let late = task_arns(&run(&fake, "job", 1).await).remove(0);

    assert_eq!(
        describe_task(&fake, &early).await.last_status(),
        Some("RUNNING")
    );
    assert_eq!(
        describe_task(&fake, &late).await.last_status(),
        Some("PENDING")
    );
    let tasks = fake.tasks().await;
    let statuses: Vec<_> = tasks.iter().map(|task| &task["last_status"]).collect();
    assert_eq!(statuses, [&json!("RUNNING"), &json!("PENDING")]);
}

#[tokio::test]
async fn stop_task_frees_resources_once() {
    let (fake, instances) = start_with_job(&[], 1, 1024, 2048).await;
    let instance = &instances[0];
    let arns = task_arns(&run(&fake, "job", 2).await);
    let request = fake.client().stop_task().cluster("alpha").task(&arns[0]);
    let request = request.reason("no longer needed");

    let first = request.clone().send().await.expect("StopTask failed");
    let second = request.send().await.expect("the second StopTask failed");

    let task = first.task().expect("no task");
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert_eq!(task.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(task.stopped_reason(), Some("no longer needed"));
    let again = second.task().expect("no task");
    assert_eq!(again.stopped_at(), task.stopped_at());
    assert_eq!(again.version(), task.version());
    let described = describe_one(&fake, "alpha", &instance.arn).await;
    assert_eq!(cpu_and_memory(described.remaining_resources()), (768, 1536));
    assert_eq!(described.running_tasks_count(), 1);
}

#[tokio::test]
async fn describe_tasks_reports_missing() {
    let (fake, _instances) = start_with_job(&[], 1, 1024, 2048).await;
    let known = task_arns(&run(&fake, "job", 1).await).remove(0);
    let unknown_id = "0123456789abcdef0123456789abcdef";
    let client = fake.client();

    let request = client
        .describe_tasks()
        .cluster("alpha")
        .tasks(&known)
        .tasks(unknown_id);
    let output = request.send().await.expect("DescribeTasks failed");

    assert_eq!(output.tasks().len(), 1);
    assert_eq!(output.tasks()[0].task_arn(), Some(known.as_str()));
    let failure = &output.failures()[0];
    assert_eq!(failure.reason(), Some("MISSING"));
    let expected = format!("arn:aws:ecs:us-east-1:123456789012:task/alpha/{unknown_id}");
    assert_eq!(failure.arn(), Some(expected.as_str()));

    let too_many = vec![known; 101];
    let request = client
        .describe_tasks()
        .cluster("alpha")
        .set_tasks(Some(too_many));
    let error = request.send().await.expect_err("101 tasks were accepted");
    assert!(error.into_service_error().is_invalid_parameter_exception());
}

#[tokio::test]
async fn start_task_uses_given_instances() {
    let (fake, instances) = start_with_job(&[], 2, 1024, 2048).await;
    set_remaining(&fake, &instances[1], Some(0), None).await;
    let unknown_id = "0123456789abcdef0123456789abcdef";

    let request = fake
        .client()
        .start_task()
        .cluster("alpha")
        .task_definition("job");
    let request = request
        .container_instances(&instances[0].id)
        .container_instances(&instances[1].arn)
        .container_instances(unknown_id);
    let output = request.send().await.expect("StartTask failed");

    assert_eq!(output.tasks().len(), 1);
    let task = &output.tasks()[0];
    assert_eq!(
        task.container_instance_arn(),
        Some(instances[0].arn.as_str())
    );
    let reasons: Vec<_> = output.failures().iter().map(|f| f.reason()).collect();
    assert_eq!(reasons, [Some("RESOURCE:CPU"), Some("MISSING")]);
    assert_eq!(output.failures()[0].arn(), Some(instances[1].arn.as_str()));
    assert_eq!(remaining(&fake, &instances[0]).await, (768, 1536));
}

#[tokio::test]
async fn list_tasks_filters_and_pages() {
    let (fake, instances) = start_with_job(&[], 1, 65536, 65536).await;
    let instance = &instances[0];
    let client = fake.client();
    register_task_definition(&client, "other", 10, 10).await;
    for _ in 0..11 {
        run(&fake, "job", 10).await;
    }
    let request = run_job(&fake).task_definition("other");
    let other = request
        .started_by("tend")
        .send()
        .await
        .expect("RunTask failed");
    let stopped = task_arns(&other).remove(0);
    let request = client.stop_task().cluster("alpha").task(&stopped);
    request.send().await.expect("StopTask failed");

    let paginator = client.list_tasks().cluster("alpha").into_paginator();
    let pages = paginator.send().collect::<Result<Vec<_>, _>>().await;
    let sizes: Vec<usize> = pages
        .expect("ListTasks failed")
        .iter()
        .map(|p| p.task_arns().len())
        .collect();
    assert_eq!(sizes, [100, 10]);

    let filters = [
        client.list_tasks().family("other"),
        client
            .list_tasks()
            .started_by("tend")
            .desired_status(DesiredStatus::Stopped),
        client
            .list_tasks()
            .container_instance(&instance.arn)
            .family("job"),
    ];
    let expected_counts = [0, 1, 110];
    for (request, expected) in filters.into_iter().zip(expected_counts) {
        let request = request.cluster("alpha").max_results(100);
        let paginator = request.into_paginator().items().send();
        let arns = paginator.collect::<Result<Vec<_>, _>>().await;
        assert_eq!(arns.expect("ListTasks failed").len(), expected);
    }
}

#[tokio::test]
async fn strategies_choose_the_instance() {
    let (fake, instances) = start_with_job(&[], 3, 4096, 4096).await;
    set_remaining(&fake, &instances[2], None, Some(1024)).await;
    let request = run_job(&fake);

    let binpack = PlacementStrategy::builder().r#type(PlacementStrategyType::Binpack);
    let binpack = binpack.field("memory").build();
    let packed = request.clone().placement_strategy(binpack).send().await;
    let packed = packed.expect("RunTask failed");
    let task = &packed.tasks()[0];
    assert_eq!(
        task.container_instance_arn(),
        Some(instances[2].arn.as_str())
    );

    let spread = PlacementStrategy::builder().r#type(PlacementStrategyType::Spread);
    let spread = spread.field("instanceId").build();
    let spread = request
        .clone()
        .placement_strategy(spread)
        .count(2)
        .send()
        .await;
    let spread = spread.expect("RunTask failed");
    let placed_on: Vec<_> = (spread.tasks().iter())
        .map(|task| task.container_instance_arn())
        .collect();
    let expected = [
        Some(instances[0].arn.as_str()),
        Some(instances[1].arn.as_str()),
    ];
    assert_eq!(placed_on, expected);

    let distinct = PlacementConstraint::builder().r#type(PlacementConstraintType::DistinctInstance);
    let request = request
        .group("batch")
        .placement_constraints(distinct.build());
    let output = request.count(4).send().await.expect("RunTask failed");
    assert_eq!(output.tasks().len(), 3);
    let reason = output.failures()[0].reason();
    assert_eq!(
        reason,
        Some("DistinctInstance placement constraint unsatisfied.")
    );
}
