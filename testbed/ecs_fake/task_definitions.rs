//! Task definitions: revisions per family, and lookup by family, by
//! `family:revision` or by ARN, as RunTask and DescribeTaskDefinition
//! accept them.

use std::time::SystemTime;

use serde_json::Value;

use crate::state::State;

/// One container definition with the fields that size a task. `definition`
/// keeps the whole object as registered, so DescribeTaskDefinition returns
/// the fields the fake does not interpret, such as `command`.
#[derive(Debug, Clone)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    /// CPU units, 0 when unset, as ECS reports it.
    pub cpu: i32,
    /// Hard memory limit in MiB.
    pub memory: Option<i32>,
    /// Soft memory limit in MiB.
    pub memory_reservation: Option<i32>,
    pub definition: Value,
}

/// One revision of a task definition family. All revisions are ACTIVE
/// because the fake does not implement DeregisterTaskDefinition.
#[derive(Debug, Clone)]
pub struct TaskDefinition {
    pub family: String,
    pub revision: u32,
    pub arn: String,
    /// Task-level CPU as registered, such as `"1024"` or `"1 vCPU"`.
    pub cpu: Option<String>,
    /// Task-level CPU in CPU units.
    pub cpu_units: Option<i32>,
    /// Task-level memory as registered, such as `"2048"` or `"2 GB"`.
    pub memory: Option<String>,
    /// Task-level memory in MiB.
    pub memory_mib: Option<i32>,
    pub containers: Vec<ContainerDefinition>,
    pub requires_compatibilities: Vec<String>,
    pub network_mode: Option<String>,
    pub registered_at: SystemTime,
}

impl TaskDefinition {
    /// Tells whether tasks of this definition may use the EC2 launch type:
    /// `requiresCompatibilities` is empty or lists EC2.
    pub fn supports_ec2(&self) -> bool {
        self.requires_compatibilities.is_empty()
            || self
                .requires_compatibilities
                .iter()
                .any(|kind| kind == "EC2")
    }
}

/// A task definition before registration gives it a revision and an ARN.
#[derive(Debug, Clone)]
pub struct NewTaskDefinition {
    pub family: String,
    pub cpu: Option<(String, i32)>,
    pub memory: Option<(String, i32)>,
    pub containers: Vec<ContainerDefinition>,
    pub requires_compatibilities: Vec<String>,
    pub network_mode: Option<String>,
}

impl State {
    /// Adds the next revision of a family, revision 1 for a new family.
    pub fn insert_task_definition(&mut self, new: NewTaskDefinition) -> &TaskDefinition {
        let revisions = self.task_definitions.entry(new.family.clone()).or_default();
        let revision = revisions.len() as u32 + 1;
        let arn = format!(
            "arn:aws:ecs:{}:{}:task-definition/{}:{revision}",
            self.region, self.account, new.family
        );
        let (cpu, cpu_units) = new.cpu.unzip();
        let (memory, memory_mib) = new.memory.unzip();
        revisions.push(TaskDefinition {
            family: new.family,
            revision,
            arn,
            cpu,
            cpu_units,
            memory,
            memory_mib,
            containers: new.containers,
            requires_compatibilities: new.requires_compatibilities,
            network_mode: new.network_mode,
            registered_at: SystemTime::now(),
        });
        revisions.last().expect("a revision was just added")
    }

    /// Finds a task definition by ARN, by `family:revision`, or by family
    /// alone for its latest revision.
    pub fn find_task_definition(&self, reference: &str) -> Option<&TaskDefinition> {
        if reference.starts_with("arn:") {
            let (_, name) = reference.rsplit_once(":task-definition/")?;
            let found = self.find_task_definition(name)?;
            return (found.arn == reference).then_some(found);
        }
        let (family, revision) = match reference.split_once(':') {
            Some((family, revision)) => (family, Some(revision.parse::<u32>().ok()?)),
            None => (reference, None),
        };
        let revisions = self.task_definitions.get(family)?;
        match revision {
            Some(revision) => revisions.get(usize::try_from(revision).ok()?.checked_sub(1)?),
            None => revisions.last(),
        }
    }
}
