//! Tasks placed by RunTask and StartTask and their lifecycle. A task is
//! PENDING until its start delay passes, then RUNNING until its run time
//! passes or StopTask stops it, then STOPPED. Placing a task takes its CPU
//! and memory from the container instance, and stopping returns them once.
//!
//! The fake runs no timer. Instead, `State::advance_tasks` applies every
//! transition that is due whenever a request arrives.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::events::Journal;
use crate::state::{Cluster, ContainerInstance, State};

/// `stoppedReason` of a task whose run time has passed.
pub const EXITED_REASON: &str = "Essential container in task exited";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Running,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Stopped => "STOPPED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Running, Self::Stopped]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// `stopCode` values of the ECS API that the fake produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    EssentialContainerExited,
    UserInitiated,
}

impl StopCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EssentialContainerExited => "EssentialContainerExited",
            Self::UserInitiated => "UserInitiated",
        }
    }
}

/// How long a new task stays PENDING, and how long it then runs before its
/// essential container exits. `None` runs it until StopTask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskTiming {
    pub start_delay: Duration,
    pub run_time: Option<Duration>,
}

/// One container of a task, sized after the overrides.
#[derive(Debug, Clone)]
pub struct TaskContainer {
    pub name: String,
    pub image: String,
    pub cpu: i32,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
}

/// Everything about a task that RunTask or StartTask decides before
/// placing it: its definition, size, overrides and tags.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task_definition_arn: String,
    pub family: String,
    /// CPU units the task takes from its instance.
    pub cpu: i32,
    /// MiB the task takes from its instance.
    pub memory: i32,
    pub containers: Vec<TaskContainer>,
    /// The request's `overrides`, returned as given.
    pub overrides: Value,
    pub started_by: Option<String>,
    pub group: String,
    pub client_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub seq: u64,
    /// The 32 hex digits at the end of the ARN.
    pub id: String,
    pub arn: String,
    pub cluster_seq: u64,
    pub cluster_arn: String,
    pub instance_seq: u64,
    pub container_instance_arn: String,
    pub spec: TaskSpec,
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    /// Increases by one on every status change, as the ECS `version` does.
    pub version: i64,
    pub created_at: SystemTime,
    /// When the task becomes RUNNING.
    pub starts_at: SystemTime,
    pub run_time: Option<Duration>,
    pub started_at: Option<SystemTime>,
    pub stopped_at: Option<SystemTime>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<StopCode>,
}

impl Task {
    /// Tells whether `reference` is this task's ARN or bare id.
    pub fn matches(&self, reference: &str) -> bool {
        if reference.starts_with("arn:") {
            self.arn == reference
        } else {
            self.id == reference
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.last_status == TaskStatus::Stopped
    }

    /// Returns when the run time ends, for a RUNNING task that has one.
    fn exits_at(&self) -> Option<SystemTime> {
        Some(self.started_at? + self.run_time?)
    }
}

/// The outcome of the first RunTask request with a `clientToken`, which a
/// retry with the same token and parameters returns again.
#[derive(Debug, Clone)]
pub struct ClientTokenRecord {
    /// The request body without `clientToken`.
    pub parameters: Value,
    pub task_arns: Vec<String>,
    pub failures: Vec<Value>,
}

impl State {
    /// Places a PENDING task on one instance of a cluster: the instance
    /// loses the task's CPU and memory, counts one more pending task and
    /// bumps its version. Returns the task's `seq`. Panics if the cluster or
    /// instance does not exist.
    pub fn place_task(
        &mut self,
        cluster_seq: u64,
        instance_seq: u64,
        spec: TaskSpec,
        timing: TaskTiming,
    ) -> u64 {
        let (seq, id) = self.allocate_task_id();
        let cluster = &self.clusters[&cluster_seq];
        let arn = self.task_arn(&cluster.name, &id);
        let cluster_arn = cluster.arn.clone();

        let cluster = self.clusters.get_mut(&cluster_seq).expect("cluster exists");
        let instance = cluster
            .instances
            .get_mut(&instance_seq)
            .expect("instance exists");
        instance.remaining.cpu -= spec.cpu;
        instance.remaining.memory -= spec.memory;
        instance.pending_tasks += 1;
        instance.bump_version();

        let now = SystemTime::now();
        let task = Task {
            seq,
            id,
            arn,
            cluster_seq,
            cluster_arn,
            instance_seq,
            container_instance_arn: instance.arn.clone(),
            spec,
            last_status: TaskStatus::Pending,
            desired_status: TaskStatus::Running,
            version: 1,
            created_at: now,
            starts_at: now + timing.start_delay,
            run_time: timing.run_time,
            started_at: None,
            stopped_at: None,
            stopped_reason: None,
            stop_code: None,
        };
        self.journal.record_task(&task);
        self.tasks.insert(seq, task);
        self.record_instance_change(cluster_seq, instance_seq);
        seq
    }

    /// Applies every start and exit that is due at `now`. A task whose
    /// start and exit are both due goes through RUNNING to STOPPED, with
    /// the times at which each was due.
    pub fn advance_tasks(&mut self, now: SystemTime) {
        let State {
            tasks,
            clusters,
            journal,
            ..
        } = self;
        for task in tasks.values_mut().filter(|task| !task.is_stopped()) {
            if task.last_status == TaskStatus::Pending && task.starts_at <= now {
                task.last_status = TaskStatus::Running;
                task.started_at = Some(task.starts_at);
                task.version += 1;
                journal.record_task(task);
                if let Some(instance) = task_instance(clusters, task) {
                    instance.pending_tasks = instance.pending_tasks.saturating_sub(1);
                    instance.running_tasks += 1;
                    instance.bump_version();
                    journal.record_instance(&task.cluster_arn, instance);
                }
            }
            if let Some(exits_at) = task.exits_at().filter(|exits_at| *exits_at <= now) {
                let reason = Some(EXITED_REASON.to_owned());
                let stop = Stop {
                    at: exits_at,
                    code: StopCode::EssentialContainerExited,
                    reason,
                };
                stop_one(clusters, journal, task, stop);
            }
        }
    }

    /// Stops a task now, as StopTask does. A stopped task stays unchanged,
    /// so its resources return to the instance only once.
    pub fn stop_task(&mut self, seq: u64, reason: Option<String>) {
        let State {
            tasks,
            clusters,
            journal,
            ..
        } = self;
        if let Some(task) = tasks.get_mut(&seq) {
            let stop = Stop {
                at: SystemTime::now(),
                code: StopCode::UserInitiated,
                reason,
            };
            stop_one(clusters, journal, task, stop);
        }
    }
}

/// When and why a task stops.
struct Stop {
    at: SystemTime,
    code: StopCode,
    reason: Option<String>,
}

/// Marks a task STOPPED and returns its CPU and memory to its instance,
/// unless it is already stopped, and records both changes as events.
fn stop_one(
    clusters: &mut BTreeMap<u64, Cluster>,
    journal: &mut Journal,
    task: &mut Task,
    stop: Stop,
) {
    if task.is_stopped() {
        return;
    }
    let was = task.last_status;
    task.last_status = TaskStatus::Stopped;
    task.desired_status = TaskStatus::Stopped;
    task.stopped_at = Some(stop.at);
    task.stop_code = Some(stop.code);
    task.stopped_reason = stop.reason;
    task.version += 1;
    journal.record_task(task);

    let Some(instance) = task_instance(clusters, task) else {
        return;
    };
    // A re-registration may have lowered the registered amounts since the
    // task was placed, so the remaining amounts never exceed them.
    instance.remaining.cpu = (instance.remaining.cpu + task.spec.cpu).min(instance.registered.cpu);
    instance.remaining.memory =
        (instance.remaining.memory + task.spec.memory).min(instance.registered.memory);
    match was {
        TaskStatus::Pending => instance.pending_tasks = instance.pending_tasks.saturating_sub(1),
        _ => instance.running_tasks = instance.running_tasks.saturating_sub(1),
    }
    instance.bump_version();
    journal.record_instance(&task.cluster_arn, instance);
}

fn task_instance<'a>(
    clusters: &'a mut BTreeMap<u64, Cluster>,
    task: &Task,
) -> Option<&'a mut ContainerInstance> {
    let cluster = clusters.get_mut(&task.cluster_seq)?;
    cluster.instances.get_mut(&task.instance_seq)
}
