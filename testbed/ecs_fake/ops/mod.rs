//! ECS operations: the dispatch table and the input handling they share.

mod clusters;
mod instances;
mod placement;
mod run_task;
mod shapes;
mod task_definitions;
mod task_spec;
mod tasks;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::fake::Fake;
use crate::protocol::{self, AwsError, code, decode_page_token, encode_page_token};
use crate::state::{Cluster, ClusterStatus, State};

pub use clusters::validate_cluster_name;
pub use shapes::{instance_json, task_json};

/// Function that runs one operation: it takes the parsed JSON request body
/// and returns the JSON response body. It runs under the state lock, so it
/// must not block.
#[derive(Clone, Copy)]
enum Handler {
    /// An operation that reads or changes only the ECS state.
    State(fn(&mut State, Value) -> Result<Value, AwsError>),
    /// An operation that also uses the fake's settings: the task timing and
    /// the staged RunTask failures.
    Fake(fn(&mut Fake, Value) -> Result<Value, AwsError>),
}

/// Operations the fake implements. Adding an operation is one row here and
/// one handler function.
const OPERATIONS: &[(&str, Handler)] = &[
    ("CreateCluster", Handler::State(clusters::create_cluster)),
    ("DeleteCluster", Handler::State(clusters::delete_cluster)),
    ("ListClusters", Handler::State(clusters::list_clusters)),
    (
        "DescribeClusters",
        Handler::State(clusters::describe_clusters),
    ),
    (
        "RegisterContainerInstance",
        Handler::State(instances::register),
    ),
    (
        "DeregisterContainerInstance",
        Handler::State(instances::deregister),
    ),
    (
        "UpdateContainerInstancesState",
        Handler::State(instances::update_state),
    ),
    ("ListContainerInstances", Handler::State(instances::list)),
    (
        "DescribeContainerInstances",
        Handler::State(instances::describe),
    ),
    (
        "RegisterTaskDefinition",
        Handler::State(task_definitions::register),
    ),
    (
        "DescribeTaskDefinition",
        Handler::State(task_definitions::describe),
    ),
    ("RunTask", Handler::Fake(run_task::run_task)),
    ("StartTask", Handler::Fake(tasks::start_task)),
    ("DescribeTasks", Handler::State(tasks::describe)),
    ("ListTasks", Handler::State(tasks::list)),
    ("StopTask", Handler::State(tasks::stop)),
];

/// Largest `maxResults` of a List call, and its default.
const MAX_PAGE_SIZE: i64 = 100;
/// Largest number of clusters, instances or tasks one Describe call accepts.
const MAX_DESCRIBE_ITEMS: usize = 100;

pub fn is_operation(name: &str) -> bool {
    OPERATIONS.iter().any(|(operation, _)| *operation == name)
}

/// Runs one ECS request: applies the task transitions that are due, counts
/// the call, applies a queued fault, then parses the body and calls the
/// operation's handler.
pub fn dispatch(fake: &mut Fake, target: Option<&str>, body: &[u8]) -> Result<Value, AwsError> {
    fake.advance_tasks();
    let operation = protocol::operation_name(target)?;
    let Some((name, handler)) = OPERATIONS.iter().find(|(name, _)| *name == operation) else {
        return Err(AwsError::new(
            code::UNKNOWN_OPERATION,
            format!("operation {operation} is not supported by the ECS fake"),
        ));
    };
    *fake.calls.entry((*name).to_owned()).or_default() += 1;

    if let Some(fault) = fake.take_fault(name) {
        return Err(AwsError::new(&fault.code, fault.message));
    }

    let input = parse_body(body)?;
    match handler {
        Handler::State(handler) => handler(&mut fake.state, input),
        Handler::Fake(handler) => handler(fake, input),
    }
}

/// Parses a request body. An empty body counts as `{}`, so a request with
/// no parameters may omit it.
fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| AwsError::new(code::SERIALIZATION, format!("invalid JSON: {error}")))?;
    if !value.is_object() {
        return Err(AwsError::new(
            code::SERIALIZATION,
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Converts the request body into an operation's input type. A field of the
/// wrong JSON type is a `SerializationException`, the code AWS JSON
/// services return for a body that does not match the model.
fn parse_input<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input)
        .map_err(|error| AwsError::new(code::SERIALIZATION, error.to_string()))
}

/// Finds an active cluster by name or ARN, `default` when none is given.
fn active_cluster<'a>(state: &'a State, reference: Option<&str>) -> Result<&'a Cluster, AwsError> {
    state
        .find_cluster(reference.unwrap_or("default"))
        .filter(|cluster| cluster.status == ClusterStatus::Active)
        .ok_or_else(AwsError::cluster_not_found)
}

fn active_cluster_mut<'a>(
    state: &'a mut State,
    reference: Option<&str>,
) -> Result<&'a mut Cluster, AwsError> {
    state
        .find_cluster_mut(reference.unwrap_or("default"))
        .filter(|cluster| cluster.status == ClusterStatus::Active)
        .ok_or_else(AwsError::cluster_not_found)
}

/// Request fields shared by the List operations.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageRequest {
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// One page of a listing in `seq` order.
struct Page<T> {
    items: Vec<T>,
    next_token: Option<String>,
}

/// Cuts one page out of `items`, which must be sorted by `seq`. `scope`
/// names the listing, so a token of one listing is invalid in another.
fn page<T>(
    items: impl Iterator<Item = (u64, T)>,
    request: &PageRequest,
    scope: &str,
) -> Result<Page<T>, AwsError> {
    let size = request.max_results.unwrap_or(MAX_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(AwsError::invalid_parameter(format!(
            "maxResults must be between 1 and {MAX_PAGE_SIZE}, got {size}."
        )));
    }
    let after = match request.next_token.as_deref() {
        Some(token) if !token.is_empty() => Some(decode_page_token(token, scope)?),
        _ => None,
    };

    let mut remaining = items.filter(|(seq, _)| after.is_none_or(|after| *seq > after));
    let mut page_items = Vec::new();
    let mut last_seq = 0;
    for (seq, item) in remaining.by_ref().take(size as usize) {
        page_items.push(item);
        last_seq = seq;
    }
    let next_token = remaining.next().map(|_| encode_page_token(scope, last_seq));
    Ok(Page {
        items: page_items,
        next_token,
    })
}

/// Rejects a Describe request with more than `MAX_DESCRIBE_ITEMS` names.
fn check_describe_count(field: &str, count: usize) -> Result<(), AwsError> {
    if count > MAX_DESCRIBE_ITEMS {
        return Err(AwsError::invalid_parameter(format!(
            "{field} can have at most {MAX_DESCRIBE_ITEMS} items, got {count}."
        )));
    }
    Ok(())
}
