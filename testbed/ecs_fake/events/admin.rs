//! Admin endpoints for events:
//!
//! - `POST /_fake/events` `{"queue_url": "...", "endpoint": "http://127.0.0.1:PORT"}`
//!   sends events to that queue through that SQS endpoint. `endpoint`
//!   defaults to `--sqs-endpoint`, and a `queue_url` of `null` stops events.
//! - `GET /_fake/events` returns the counters `sent`, `dropped`,
//!   `duplicated` and `failed`, the switches and the target.
//! - `POST /_fake/events/drop` `{"count": N}` drops the next N events.
//! - `POST /_fake/events/duplicate` `{"count": N}` sends the next N twice.
//! - `POST /_fake/events/hold` keeps events back until
//!   `POST /_fake/events/release`, which sends them newest first.

use serde_json::{Value, json};

use super::outbox::Target;
use crate::fake::Fake;
use crate::fields::Fields;

pub const PATHS: [&str; 5] = [
    "/_fake/events",
    "/_fake/events/drop",
    "/_fake/events/duplicate",
    "/_fake/events/hold",
    "/_fake/events/release",
];

/// Sets or clears the queue that events go to.
pub fn set_target(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    let fields = Fields::new(body, "", &["queue_url", "endpoint"])?;
    let endpoint = fields.string("endpoint")?;
    let outbox = &mut fake.outbox;
    if fields.is_null("queue_url") {
        outbox.target = None;
        tracing::info!("stopped sending events");
        return Ok(outbox.status_json());
    }
    let queue_url = fields.required("queue_url", fields.string("queue_url")?)?;
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| outbox.default_endpoint.clone());
    outbox.target = Some(target(queue_url, endpoint.as_deref())?);
    tracing::info!(%queue_url, "sending events");
    Ok(outbox.status_json())
}

/// Checks a queue URL and SQS endpoint. The endpoint has no built-in
/// default, so the fake calls only an endpoint that the command line or the
/// request names.
pub fn target(queue_url: &str, endpoint: Option<&str>) -> Result<Target, String> {
    if !is_http_url(queue_url) {
        return Err(format!(
            "queue_url: invalid URL {queue_url:?}, expected http:// or https://"
        ));
    }
    let Some(endpoint) = endpoint else {
        return Err(
            "endpoint: missing SQS endpoint: pass \"endpoint\" or start the fake with \
             --sqs-endpoint"
                .to_owned(),
        );
    };
    if !is_http_url(endpoint) {
        return Err(format!(
            "endpoint: invalid URL {endpoint:?}, expected http:// or https://"
        ));
    }
    Ok(Target {
        queue_url: queue_url.to_owned(),
        endpoint: endpoint.to_owned(),
    })
}

fn is_http_url(text: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| text.len() > scheme.len() && text.starts_with(scheme))
}

/// Drops the next `count` events, replacing any count set before.
pub fn drop_next(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    fake.outbox.drop_next = read_count(body)?;
    tracing::info!(count = fake.outbox.drop_next, "dropping the next events");
    Ok(fake.outbox.status_json())
}

/// Sends the next `count` events twice, replacing any count set before.
pub fn duplicate_next(fake: &mut Fake, body: &Value) -> Result<Value, String> {
    fake.outbox.duplicate_next = read_count(body)?;
    tracing::info!(
        count = fake.outbox.duplicate_next,
        "duplicating the next events"
    );
    Ok(fake.outbox.status_json())
}

pub fn hold(fake: &mut Fake) -> Value {
    fake.outbox.holding = true;
    tracing::info!("holding events");
    fake.outbox.status_json()
}

pub fn release(fake: &mut Fake) -> Value {
    let count = fake.outbox.release();
    tracing::info!(count, "released held events newest first");
    let mut status = fake.outbox.status_json();
    status["released"] = json!(count);
    status
}

fn read_count(body: &Value) -> Result<u32, String> {
    let fields = Fields::new(body, "", &["count"])?;
    fields.required("count", fields.count("count")?)
}
