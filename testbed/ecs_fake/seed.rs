//! Seed documents: a JSON description of clusters and groups of identical
//! container instances that replaces the whole state, from `--seed FILE` or
//! `POST /_fake/state`.
//!
//! ```json
//! {"clusters": [{"name": "alpha", "fargate_running_tasks": 0,
//!   "instance_groups": [{"count": 101, "cpu": 4096, "memory": 8192,
//!     "used_cpu": 0, "used_memory": 0, "status": "ACTIVE",
//!     "agent_connected": true, "running_tasks": 0, "pending_tasks": 0}]}]}
//! ```
//!
//! Every key but `name` is optional. `count` defaults to 1, `cpu` and
//! `memory` to the RegisterContainerInstance defaults, `status` to ACTIVE,
//! `agent_connected` to true and the rest to 0. `used_cpu` and
//! `used_memory` are subtracted from the remaining resources.

use serde::Serialize;
use serde_json::Value;

use crate::fields::Fields;
use crate::ops::validate_cluster_name;
use crate::state::{DEFAULT_CPU, DEFAULT_MEMORY, InstanceStatus, NewInstance, Resources, State};

/// Largest number of instances one seed may create, which keeps a typo in
/// `count` from exhausting memory.
const MAX_SEED_INSTANCES: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct Seed {
    pub clusters: Vec<ClusterSeed>,
}

#[derive(Debug, Clone)]
pub struct ClusterSeed {
    pub name: String,
    pub fargate_running_tasks: u32,
    pub instance_groups: Vec<GroupSeed>,
}

/// `count` identical container instances.
#[derive(Debug, Clone)]
pub struct GroupSeed {
    pub count: u32,
    pub instance: NewInstance,
}

/// ARNs and ids the seed created, for tests to refer to.
#[derive(Debug, Serialize)]
pub struct SeedReply {
    pub clusters: Vec<ClusterReply>,
}

#[derive(Debug, Serialize)]
pub struct ClusterReply {
    pub name: String,
    pub arn: String,
    pub instances: Vec<InstanceReply>,
}

#[derive(Debug, Serialize)]
pub struct InstanceReply {
    pub arn: String,
    pub id: String,
    pub ec2_instance_id: String,
}

/// Validates a seed document. The error names the invalid field by its
/// path, such as `clusters[0].instance_groups[1].used_cpu`.
pub fn parse_seed(document: &Value) -> Result<Seed, String> {
    let root = Fields::new(document, "", &["clusters"])?;
    let mut clusters = Vec::new();
    let mut total_instances = 0;
    for (index, value) in root.array("clusters")?.iter().enumerate() {
        let cluster = parse_cluster(value, format!("clusters[{index}]"))?;
        if clusters
            .iter()
            .any(|c: &ClusterSeed| c.name == cluster.name)
        {
            return Err(format!(
                "clusters[{index}].name: cluster {:?} appears twice",
                cluster.name
            ));
        }
        total_instances += cluster
            .instance_groups
            .iter()
            .map(|group| u64::from(group.count))
            .sum::<u64>();
        clusters.push(cluster);
    }
    if total_instances > MAX_SEED_INSTANCES {
        return Err(format!(
            "clusters: {total_instances} instances in total, more than the limit of \
             {MAX_SEED_INSTANCES}"
        ));
    }
    Ok(Seed { clusters })
}

fn parse_cluster(value: &Value, path: String) -> Result<ClusterSeed, String> {
    let keys = ["name", "fargate_running_tasks", "instance_groups"];
    let fields = Fields::new(value, &path, &keys)?;
    let name = fields.required("name", fields.string("name")?)?;
    validate_cluster_name(name).map_err(|error| format!("{}: {error}", fields.path("name")))?;

    let mut instance_groups = Vec::new();
    for (index, group) in fields.array("instance_groups")?.iter().enumerate() {
        let path = format!("{}[{index}]", fields.path("instance_groups"));
        instance_groups.push(parse_group(group, path)?);
    }
    Ok(ClusterSeed {
        name: name.to_owned(),
        fargate_running_tasks: fields.count("fargate_running_tasks")?.unwrap_or(0),
        instance_groups,
    })
}

fn parse_group(value: &Value, path: String) -> Result<GroupSeed, String> {
    let keys = [
        "count",
        "cpu",
        "memory",
        "used_cpu",
        "used_memory",
        "status",
        "agent_connected",
        "running_tasks",
        "pending_tasks",
    ];
    let fields = Fields::new(value, &path, &keys)?;
    let cpu = fields.amount("cpu")?.unwrap_or(DEFAULT_CPU);
    let memory = fields.amount("memory")?.unwrap_or(DEFAULT_MEMORY);
    let used_cpu = fields.amount("used_cpu")?.unwrap_or(0);
    let used_memory = fields.amount("used_memory")?.unwrap_or(0);
    if used_cpu > cpu {
        return Err(format!(
            "{}: {used_cpu} exceeds cpu {cpu}",
            fields.path("used_cpu")
        ));
    }
    if used_memory > memory {
        return Err(format!(
            "{}: {used_memory} exceeds memory {memory}",
            fields.path("used_memory")
        ));
    }

    let mut instance = NewInstance::new(Resources::new(cpu, memory));
    instance.remaining.cpu = cpu - used_cpu;
    instance.remaining.memory = memory - used_memory;
    instance.status = fields.status("status")?.unwrap_or(InstanceStatus::Active);
    instance.agent_connected = fields.boolean("agent_connected")?.unwrap_or(true);
    instance.running_tasks = fields.count("running_tasks")?.unwrap_or(0);
    instance.pending_tasks = fields.count("pending_tasks")?.unwrap_or(0);
    Ok(GroupSeed {
        count: fields.count("count")?.unwrap_or(1),
        instance,
    })
}

/// Replaces the clusters of `state` with those of `seed`, numbering
/// clusters and instances from one again so that a seed always produces
/// the same ARNs.
pub fn apply_seed(state: &mut State, seed: &Seed) -> SeedReply {
    *state = State::new(&state.region, &state.account);
    let mut clusters = Vec::new();
    for cluster_seed in &seed.clusters {
        let cluster_seq = state.insert_cluster(&cluster_seed.name);
        let mut instances = Vec::new();
        for group in &cluster_seed.instance_groups {
            for _ in 0..group.count {
                let seq = state.insert_instance(cluster_seq, group.instance.clone());
                let instance = &state.clusters[&cluster_seq].instances[&seq];
                instances.push(InstanceReply {
                    arn: instance.arn.clone(),
                    id: instance.id.clone(),
                    ec2_instance_id: instance.ec2_instance_id.clone(),
                });
            }
        }
        let cluster = state
            .clusters
            .get_mut(&cluster_seq)
            .expect("cluster exists");
        cluster.fargate_running_tasks = cluster_seed.fargate_running_tasks;
        clusters.push(ClusterReply {
            name: cluster.name.clone(),
            arn: cluster.arn.clone(),
            instances,
        });
    }
    SeedReply { clusters }
}
