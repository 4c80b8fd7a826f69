//! The background task that sends queued events to SQS with SendMessage,
//! one at a time, so events reach the queue in the order the fake made
//! them.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use tokio::sync::mpsc;

use super::outbox::{Counters, Outgoing};

/// Maximum time one SendMessage call may take, retries included, so a dead
/// endpoint delays the events behind it by at most this much.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends every event from `receiver` until the outbox closes the channel.
/// A failed send is logged and counted, and the next event goes on.
pub async fn run(mut receiver: mpsc::Receiver<Outgoing>, counters: Arc<Counters>) {
    let mut client: Option<(String, aws_sdk_sqs::Client)> = None;
    while let Some(outgoing) = receiver.recv().await {
        let endpoint = &outgoing.target.endpoint;
        let sqs = match &client {
            Some((cached, sqs)) if cached == endpoint => sqs.clone(),
            _ => {
                let sqs = sqs_client(endpoint);
                client = Some((endpoint.clone(), sqs.clone()));
                sqs
            }
        };
        let request = sqs
            .send_message()
            .queue_url(&outgoing.target.queue_url)
            .message_body(&outgoing.body);
        match request.send().await {
            Ok(_) => Counters::add(&counters.sent, 1),
            Err(error) => {
                Counters::add(&counters.failed, 1);
                tracing::warn!(error = %DisplayErrorContext(&error),
                    queue_url = %outgoing.target.queue_url, resource = %outgoing.resource_arn,
                    "failed to send event to SQS");
            }
        }
    }
    tracing::info!("event sender stopped");
}

/// Builds an SQS client for `endpoint` with region us-east-1 and static
/// dummy credentials, so no credential provider chain or instance metadata
/// endpoint is consulted.
fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(SEND_TIMEOUT)
        .build();
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "ecs-fake"))
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}
