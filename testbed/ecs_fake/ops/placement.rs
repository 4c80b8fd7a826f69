//! Task placement for RunTask: placement constraints and strategies, and
//! the choice of a container instance with room for a task.
//!
//! Candidates are the ACTIVE instances of the cluster that satisfy every
//! constraint. A candidate whose agent is disconnected, or whose remaining
//! CPU or memory is below the task's, is rejected with the failure reason
//! ECS uses. Without a strategy the first fitting instance in registration
//! order wins, which keeps tests deterministic.

use serde::Deserialize;

use crate::protocol::AwsError;
use crate::state::{Cluster, ContainerInstance, InstanceStatus};
use crate::tasks::{Task, TaskSpec};

/// Maximum numbers of constraints and strategies in one RunTask call.
const MAX_CONSTRAINTS: usize = 10;
const MAX_STRATEGIES: usize = 5;

#[derive(Deserialize)]
pub struct ConstraintInput {
    #[serde(rename = "type")]
    kind: Option<String>,
    expression: Option<String>,
}

#[derive(Deserialize)]
pub struct StrategyInput {
    #[serde(rename = "type")]
    kind: Option<String>,
    field: Option<String>,
}

enum Constraint {
    /// No two active tasks of the same group on one instance.
    DistinctInstance,
    MemberOf(Expression),
}

/// A cluster query language expression of the form `SUBJECT == VALUE`,
/// `SUBJECT != VALUE`, `SUBJECT in [A, B]` or `SUBJECT not_in [A, B]`.
struct Expression {
    subject: Subject,
    negated: bool,
    values: Vec<String>,
}

enum Subject {
    Ec2InstanceId,
    /// `attribute:NAME`: the value of a custom or built-in attribute.
    Attribute(String),
}

enum Strategy {
    Random,
    /// Prefer the instance with the least remaining CPU or memory.
    Binpack {
        memory: bool,
    },
    /// Prefer the instance, or the attribute value, with the fewest tasks.
    Spread(Subject),
}

/// RunTask failure reason for an instance that cannot take a task.
pub type Rejection = &'static str;

pub struct Placement {
    constraints: Vec<Constraint>,
    strategies: Vec<Strategy>,
}

impl Placement {
    pub fn parse(
        constraints: &[ConstraintInput],
        strategies: &[StrategyInput],
    ) -> Result<Self, AwsError> {
        if constraints.len() > MAX_CONSTRAINTS || strategies.len() > MAX_STRATEGIES {
            return Err(AwsError::invalid_parameter(format!(
                "RunTask accepts at most {MAX_CONSTRAINTS} placementConstraints and \
                 {MAX_STRATEGIES} placementStrategy entries."
            )));
        }
        Ok(Self {
            constraints: constraints
                .iter()
                .map(parse_constraint)
                .collect::<Result<_, _>>()?,
            strategies: strategies
                .iter()
                .map(parse_strategy)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Returns the `seq` of the instance to place the task on, or the
    /// failures to report: the resource and agent rejections of the
    /// candidates, or the constraint rejections when no instance is a
    /// candidate.
    pub fn choose<'a>(
        &self,
        cluster: &Cluster,
        tasks: impl Iterator<Item = &'a Task> + Clone,
        spec: &TaskSpec,
    ) -> Result<u64, Vec<(String, Rejection)>> {
        let mut fitting = Vec::new();
        let mut resource_failures = Vec::new();
        let mut constraint_failures = Vec::new();
        for instance in active_instances(cluster) {
            if let Some(rejection) = self.constraint_rejection(instance, tasks.clone(), spec) {
                constraint_failures.push((instance.arn.clone(), rejection));
            } else if let Some(rejection) = instance_rejection(instance, spec) {
                resource_failures.push((instance.arn.clone(), rejection));
            } else {
                fitting.push(instance);
            }
        }
        let best = fitting
            .into_iter()
            .min_by_key(|instance| (self.strategy_key(cluster, instance), instance.seq));
        match best {
            Some(instance) => Ok(instance.seq),
            None if resource_failures.is_empty() => Err(constraint_failures),
            None => Err(resource_failures),
        }
    }

    /// Returns the first ACTIVE instance that satisfies the constraints,
    /// whatever its resources, for naming a staged failure.
    pub fn first_candidate<'a, 'b>(
        &self,
        cluster: &'a Cluster,
        tasks: impl Iterator<Item = &'b Task> + Clone,
        spec: &TaskSpec,
    ) -> Option<&'a ContainerInstance> {
        active_instances(cluster).find(|instance| {
            self.constraint_rejection(instance, tasks.clone(), spec)
                .is_none()
        })
    }

    fn constraint_rejection<'a>(
        &self,
        instance: &ContainerInstance,
        mut tasks: impl Iterator<Item = &'a Task>,
        spec: &TaskSpec,
    ) -> Option<Rejection> {
        self.constraints
            .iter()
            .find_map(|constraint| match constraint {
                Constraint::MemberOf(expression) => (!expression.matches(instance))
                    .then_some("MemberOf placement constraint unsatisfied."),
                Constraint::DistinctInstance => tasks
                    .any(|task| {
                        task.instance_seq == instance.seq
                            && !task.is_stopped()
                            && task.spec.group == spec.group
                    })
                    .then_some("DistinctInstance placement constraint unsatisfied."),
            })
    }

    /// Returns the sort key of an instance under the strategies: the
    /// smallest key wins, and each strategy breaks the ties of the one
    /// before it.
    fn strategy_key(&self, cluster: &Cluster, instance: &ContainerInstance) -> Vec<i64> {
        let task_count = |member: &ContainerInstance| {
            i64::from(member.running_tasks) + i64::from(member.pending_tasks)
        };
        let key = |strategy: &Strategy| match strategy {
            Strategy::Random => fastrand::i64(..),
            Strategy::Binpack { memory: true } => i64::from(instance.remaining.memory),
            Strategy::Binpack { memory: false } => i64::from(instance.remaining.cpu),
            Strategy::Spread(Subject::Ec2InstanceId) => task_count(instance),
            Strategy::Spread(Subject::Attribute(name)) => active_instances(cluster)
                .filter(|member| attribute(member, name) == attribute(instance, name))
                .map(task_count)
                .sum(),
        };
        self.strategies.iter().map(key).collect()
    }
}

/// Tells why an instance that satisfies the constraints cannot take a
/// task, if it cannot.
// NOTE: ECS documents the reasons but not their order when several apply.
// The fake checks the agent, then CPU, then memory.
pub fn instance_rejection(instance: &ContainerInstance, spec: &TaskSpec) -> Option<Rejection> {
    if !instance.agent_connected {
        Some("AGENT")
    } else if instance.remaining.cpu < spec.cpu {
        Some("RESOURCE:CPU")
    } else if instance.remaining.memory < spec.memory {
        Some("RESOURCE:MEMORY")
    } else {
        None
    }
}

/// Tells whether the cluster has an ACTIVE instance to place tasks on.
pub fn has_active_instances(cluster: &Cluster) -> bool {
    active_instances(cluster).next().is_some()
}

fn active_instances(cluster: &Cluster) -> impl Iterator<Item = &ContainerInstance> + Clone {
    (cluster.instances.values()).filter(|instance| instance.status == InstanceStatus::Active)
}

fn attribute<'a>(instance: &'a ContainerInstance, name: &str) -> Option<&'a str> {
    let found = instance
        .attributes
        .iter()
        .find(|attribute| attribute.name == name);
    found.and_then(|attribute| attribute.value.as_deref())
}

impl Expression {
    fn matches(&self, instance: &ContainerInstance) -> bool {
        let value = match &self.subject {
            Subject::Ec2InstanceId => Some(instance.ec2_instance_id.as_str()),
            Subject::Attribute(name) => attribute(instance, name),
        };
        let listed = value.is_some_and(|value| self.values.iter().any(|v| v == value));
        listed != self.negated
    }
}

fn parse_constraint(input: &ConstraintInput) -> Result<Constraint, AwsError> {
    let expression = input
        .expression
        .as_deref()
        .filter(|text| !text.trim().is_empty());
    match (input.kind.as_deref(), expression) {
        (Some("distinctInstance"), None) => Ok(Constraint::DistinctInstance),
        (Some("distinctInstance"), Some(_)) => Err(AwsError::invalid_parameter(
            "A distinctInstance placement constraint cannot have an expression.",
        )),
        (Some("memberOf"), Some(text)) => parse_expression(text).map(Constraint::MemberOf),
        (Some("memberOf"), None) => Err(AwsError::invalid_parameter(
            "A memberOf placement constraint needs an expression.",
        )),
        (kind, _) => Err(AwsError::invalid_parameter(format!(
            "Invalid placement constraint type {kind:?}: expected distinctInstance or memberOf."
        ))),
    }
}

/// Parses the expressions the fake evaluates. ECS accepts more of the
/// cluster query language, which the fake rejects by name.
fn parse_expression(text: &str) -> Result<Expression, AwsError> {
    let unsupported = || {
        AwsError::invalid_parameter(format!(
            "Invalid or unsupported placement constraint expression {text:?}: the ECS fake \
             evaluates ec2InstanceId or attribute:NAME with ==, !=, in [...] or not_in [...]."
        ))
    };
    // Each operator with whether it negates and whether it takes a list.
    let operators = [
        (" not_in ", true, true),
        (" in ", false, true),
        ("!=", true, false),
        ("==", false, false),
    ];
    let (subject, negated, takes_list, rest) = operators
        .iter()
        .find_map(|(operator, negated, takes_list)| {
            let (subject, rest) = text.split_once(operator)?;
            Some((subject.trim(), *negated, *takes_list, rest.trim()))
        })
        .ok_or_else(unsupported)?;
    let subject = parse_subject(subject).ok_or_else(unsupported)?;
    let values = parse_values(rest, takes_list).ok_or_else(unsupported)?;
    Ok(Expression {
        subject,
        negated,
        values,
    })
}

/// Parses the right-hand side of an expression: `[A, B]` for a list
/// operator, else one value. Values contain no whitespace or brackets.
fn parse_values(text: &str, takes_list: bool) -> Option<Vec<String>> {
    let list = (text.strip_prefix('[')).and_then(|rest| rest.strip_suffix(']'));
    let values: Vec<String> = match list {
        Some(list) => list
            .split(',')
            .map(|value| value.trim().to_owned())
            .collect(),
        None => vec![text.to_owned()],
    };
    let valid_value = |value: &String| {
        !value.is_empty() && !value.contains(char::is_whitespace) && !value.contains(['[', ']'])
    };
    (list.is_some() == takes_list && values.iter().all(valid_value)).then_some(values)
}

fn parse_subject(text: &str) -> Option<Subject> {
    if text == "ec2InstanceId" {
        return Some(Subject::Ec2InstanceId);
    }
    let name = text.strip_prefix("attribute:")?;
    let valid = !name.is_empty() && !name.contains(char::is_whitespace);
    valid.then(|| Subject::Attribute(name.to_owned()))
}

fn parse_strategy(input: &StrategyInput) -> Result<Strategy, AwsError> {
    let field = input.field.as_deref();
    let strategy = match (input.kind.as_deref(), field) {
        (Some("random"), None) => Some(Strategy::Random),
        (Some("binpack"), Some(field)) if field.eq_ignore_ascii_case("memory") => {
            Some(Strategy::Binpack { memory: true })
        }
        (Some("binpack"), Some(field)) if field.eq_ignore_ascii_case("cpu") => {
            Some(Strategy::Binpack { memory: false })
        }
        (Some("spread"), Some("instanceId" | "host")) => {
            Some(Strategy::Spread(Subject::Ec2InstanceId))
        }
        (Some("spread"), Some(field)) => match parse_subject(field) {
            Some(Subject::Attribute(name)) => Some(Strategy::Spread(Subject::Attribute(name))),
            _ => None,
        },
        _ => None,
    };
    strategy.ok_or_else(|| {
        AwsError::invalid_parameter(format!(
            "Invalid placement strategy type {:?} with field {field:?}: use random without a \
             field, binpack on cpu or memory, or spread on instanceId, host or attribute:NAME.",
            input.kind
        ))
    })
}
