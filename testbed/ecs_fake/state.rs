//! In-memory model of the ECS account the fake serves: clusters, their
//! container instances with registered and remaining resources, task
//! definitions and tasks. Every generated identifier comes from a counter,
//! so the same requests produce the same ARNs and EC2 instance ids.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::events::Journal;
use crate::task_definitions::TaskDefinition;
use crate::tasks::{ClientTokenRecord, Task};

/// CPU units a container instance registers when `totalResources` omits CPU,
/// the value moto's `ContainerInstance` registers.
pub const DEFAULT_CPU: i32 = 4096;
/// Memory in MiB a container instance registers when `totalResources` omits
/// MEMORY, the value moto's `ContainerInstance` registers.
pub const DEFAULT_MEMORY: i32 = 7482;
/// Ports the ECS agent reserves on every instance it registers.
pub const DEFAULT_PORTS: [&str; 5] = ["22", "2375", "2376", "51678", "51679"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStatus {
    Active,
    /// A deleted cluster: still described, never listed.
    Inactive,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }
}

/// Container instance status values of the ECS API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    Active,
    Draining,
    Registering,
    Deregistering,
    RegistrationFailed,
    /// A deregistered instance: still described, never listed.
    Inactive,
}

impl InstanceStatus {
    const ALL: [Self; 6] = [
        Self::Active,
        Self::Draining,
        Self::Registering,
        Self::Deregistering,
        Self::RegistrationFailed,
        Self::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
            Self::Registering => "REGISTERING",
            Self::Deregistering => "DEREGISTERING",
            Self::RegistrationFailed => "REGISTRATION_FAILED",
            Self::Inactive => "INACTIVE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// CPU units, memory in MiB and reserved TCP and UDP ports of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub cpu: i32,
    pub memory: i32,
    pub ports: Vec<String>,
    pub ports_udp: Vec<String>,
}

impl Resources {
    pub fn new(cpu: i32, memory: i32) -> Self {
        Self {
            cpu,
            memory,
            ports: DEFAULT_PORTS.iter().map(|port| port.to_string()).collect(),
            ports_udp: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ContainerInstance {
    /// Position in registration order, which is also the listing order.
    pub seq: u64,
    /// The 32 hex digits at the end of the ARN.
    pub id: String,
    pub arn: String,
    pub ec2_instance_id: String,
    /// Increases by one on every change, as the ECS `version` field does.
    pub version: i64,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    pub running_tasks: u32,
    pub pending_tasks: u32,
    pub registered: Resources,
    pub remaining: Resources,
    /// Seconds since the Unix epoch.
    pub registered_at: f64,
    pub attributes: Vec<Attribute>,
}

impl ContainerInstance {
    pub fn bump_version(&mut self) {
        self.version += 1;
    }

    pub fn is_listed(&self) -> bool {
        self.status != InstanceStatus::Inactive
    }

    /// Tells whether `reference` is this instance's ARN or bare id.
    pub fn matches(&self, reference: &str) -> bool {
        if reference.starts_with("arn:") {
            self.arn == reference
        } else {
            self.id == reference
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    /// Position in creation order, which is also the listing order.
    pub seq: u64,
    pub name: String,
    pub arn: String,
    pub status: ClusterStatus,
    /// Tasks that run without a container instance, as Fargate tasks do.
    pub fargate_running_tasks: u32,
    /// Instances keyed by `seq`, deregistered ones included.
    pub instances: BTreeMap<u64, ContainerInstance>,
}

impl Cluster {
    pub fn listed_instances(&self) -> impl Iterator<Item = &ContainerInstance> {
        self.instances
            .values()
            .filter(|instance| instance.is_listed())
    }

    pub fn find_instance(&self, reference: &str) -> Option<&ContainerInstance> {
        self.instances
            .values()
            .find(|instance| instance.matches(reference))
    }

    pub fn find_instance_mut(&mut self, reference: &str) -> Option<&mut ContainerInstance> {
        self.instances
            .values_mut()
            .find(|instance| instance.matches(reference))
    }

    pub fn running_tasks(&self) -> u64 {
        let on_instances: u64 = self
            .listed_instances()
            .map(|instance| u64::from(instance.running_tasks))
            .sum();
        u64::from(self.fargate_running_tasks) + on_instances
    }

    pub fn pending_tasks(&self) -> u64 {
        self.listed_instances()
            .map(|instance| u64::from(instance.pending_tasks))
            .sum()
    }
}

/// Properties of a container instance before it joins a cluster.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub ec2_instance_id: Option<String>,
    pub registered: Resources,
    pub remaining: Resources,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    pub running_tasks: u32,
    pub pending_tasks: u32,
    pub attributes: Vec<Attribute>,
}

impl NewInstance {
    pub fn new(registered: Resources) -> Self {
        Self {
            ec2_instance_id: None,
            remaining: registered.clone(),
            registered,
            status: InstanceStatus::Active,
            agent_connected: true,
            running_tasks: 0,
            pending_tasks: 0,
            attributes: Vec::new(),
        }
    }
}

/// All clusters of one account in one region.
#[derive(Debug, Clone)]
pub struct State {
    pub region: String,
    pub account: String,
    /// Clusters keyed by `seq`, deleted ones included.
    pub clusters: BTreeMap<u64, Cluster>,
    /// Revisions of each task definition family, revision 1 first.
    pub task_definitions: BTreeMap<String, Vec<TaskDefinition>>,
    /// Tasks keyed by `seq`, which is also the listing order. Stopped tasks
    /// stay, as ECS keeps describing them for a while.
    pub tasks: BTreeMap<u64, Task>,
    /// RunTask requests that placed tasks, keyed by their `clientToken`.
    pub client_tokens: BTreeMap<String, ClientTokenRecord>,
    /// Events recorded by the current request.
    pub journal: Journal,
    next_cluster_seq: u64,
    next_instance_seq: u64,
    next_task_seq: u64,
}

impl State {
    pub fn new(region: &str, account: &str) -> Self {
        Self {
            region: region.to_owned(),
            account: account.to_owned(),
            clusters: BTreeMap::new(),
            task_definitions: BTreeMap::new(),
            tasks: BTreeMap::new(),
            client_tokens: BTreeMap::new(),
            journal: Journal::default(),
            next_cluster_seq: 1,
            next_instance_seq: 1,
            next_task_seq: 1,
        }
    }

    pub fn cluster_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{}:cluster/{name}",
            self.region, self.account
        )
    }

    pub fn instance_arn(&self, cluster_name: &str, id: &str) -> String {
        instance_arn(&self.region, &self.account, cluster_name, id)
    }

    pub fn task_arn(&self, cluster_name: &str, id: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{}:task/{cluster_name}/{id}",
            self.region, self.account
        )
    }

    /// Returns the `seq` for a new task and its id, the 32 hex digits at
    /// the end of its ARN.
    pub fn allocate_task_id(&mut self) -> (u64, String) {
        let seq = self.next_task_seq;
        self.next_task_seq += 1;
        // The salt keeps task ids apart from instance ids of the same seq.
        let salted = seq ^ 0x7a5c_0000_0000_0000;
        (
            seq,
            format!("{:016x}{:016x}", scramble(salted), scramble(!salted)),
        )
    }

    /// Finds a cluster, deleted ones included, by name or ARN.
    pub fn find_cluster(&self, reference: &str) -> Option<&Cluster> {
        self.clusters
            .values()
            .find(|cluster| cluster_matches(cluster, reference))
    }

    pub fn find_cluster_mut(&mut self, reference: &str) -> Option<&mut Cluster> {
        self.clusters
            .values_mut()
            .find(|cluster| cluster_matches(cluster, reference))
    }

    /// Creates an active cluster, or reactivates a deleted one of that name,
    /// and returns its `seq`. The caller checks that no active one exists.
    pub fn insert_cluster(&mut self, name: &str) -> u64 {
        if let Some(cluster) = self.find_cluster_mut(name) {
            cluster.status = ClusterStatus::Active;
            cluster.fargate_running_tasks = 0;
            return cluster.seq;
        }
        let seq = self.next_cluster_seq;
        self.next_cluster_seq += 1;
        let cluster = Cluster {
            seq,
            name: name.to_owned(),
            arn: self.cluster_arn(name),
            status: ClusterStatus::Active,
            fargate_running_tasks: 0,
            instances: BTreeMap::new(),
        };
        self.clusters.insert(seq, cluster);
        seq
    }

    /// Adds an instance to the cluster with `cluster_seq` and returns its
    /// `seq`. Panics if no such cluster exists.
    pub fn insert_instance(&mut self, cluster_seq: u64, new: NewInstance) -> u64 {
        let seq = self.next_instance_seq;
        self.next_instance_seq += 1;
        let id = container_instance_id(seq);
        let cluster_name = self.clusters[&cluster_seq].name.clone();
        let instance = ContainerInstance {
            seq,
            arn: self.instance_arn(&cluster_name, &id),
            id,
            ec2_instance_id: new.ec2_instance_id.unwrap_or_else(|| ec2_instance_id(seq)),
            version: 1,
            status: new.status,
            agent_connected: new.agent_connected,
            running_tasks: new.running_tasks,
            pending_tasks: new.pending_tasks,
            registered: new.registered,
            remaining: new.remaining,
            registered_at: unix_seconds_now(),
            attributes: new.attributes,
        };
        let cluster = self.clusters.get_mut(&cluster_seq).expect("cluster exists");
        cluster.instances.insert(seq, instance);
        seq
    }
}

pub fn instance_arn(region: &str, account: &str, cluster_name: &str, id: &str) -> String {
    format!("arn:aws:ecs:{region}:{account}:container-instance/{cluster_name}/{id}")
}

fn cluster_matches(cluster: &Cluster, reference: &str) -> bool {
    if reference.starts_with("arn:") {
        cluster.arn == reference
    } else {
        cluster.name == reference
    }
}

/// Mixes the bits of `value` with the SplitMix64 finalizer, a bijection, so
/// distinct counters give distinct identifiers that still look random.
fn scramble(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn container_instance_id(seq: u64) -> String {
    format!("{:016x}{:016x}", scramble(seq), scramble(!seq))
}

/// Returns an EC2 instance id: `i-` and 17 hex digits, the first one 0.
fn ec2_instance_id(seq: u64) -> String {
    format!("i-0{:016x}", scramble(seq ^ 0x5eed))
}

fn unix_seconds_now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Converts a time to seconds since the Unix epoch with millisecond
/// precision, the timestamp format of the ECS JSON protocol.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| (elapsed.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}
