//! SQS side of the scheduler: receive, keep invisible while held, hand
//! back, delete, and move to the dead-letter queue with a reason.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};

/// One priority's queue.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Last path segment of the URL, used as the `queue` metric label.
    pub name: String,
    pub url: String,
}

impl Queue {
    pub fn from_url(url: &str) -> Self {
        let name = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(url)
            .to_owned();
        Self {
            name,
            url: url.to_owned(),
        }
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Index of its queue in priority order (0 is highest).
    pub priority: usize,
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// When the producer sent it (SQS `SentTimestamp`).
    pub sent_at: Option<SystemTime>,
    /// SQS `ApproximateReceiveCount`, this receive included.
    pub receive_count: u32,
    /// Until when SQS keeps it invisible to other consumers.
    pub invisible_until: Instant,
}

/// Failure of an SQS call, naming the operation, the queue and the cause.
#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} on {queue} failed: {message}")]
pub struct IntakeError {
    operation: &'static str,
    queue: String,
    message: String,
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
    queue: &str,
) -> impl FnOnce(SdkError<E, R>) -> IntakeError {
    move |error| IntakeError {
        operation,
        queue: queue.to_owned(),
        message: DisplayErrorContext(&error).to_string(),
    }
}

/// Message attribute that carries the dead-letter reason.
pub const REASON_ATTRIBUTE: &str = "tend_reason";

#[derive(Clone)]
pub struct Intake {
    client: Client,
    pub queues: Vec<Queue>,
    dead_letter_url: String,
    /// Invisibility requested on receive and renewed while a message is held.
    pub visibility: Duration,
}

impl Intake {
    pub fn new(
        client: Client,
        queues: Vec<Queue>,
        dead_letter_url: String,
        visibility: Duration,
    ) -> Self {
        Self {
            client,
            queues,
            dead_letter_url,
            visibility,
        }
    }

    /// Receives up to `max` (1 to 10) messages from queue `priority`,
    /// waiting up to `wait` for the first one.
    pub async fn receive(
        &self,
        priority: usize,
        max: i32,
        wait: Duration,
    ) -> Result<Vec<Received>, IntakeError> {
        let queue = &self.queues[priority];
        let reply = self
            .client
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(self.visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(failed("ReceiveMessage", &queue.name))?;
        let now = Instant::now();
        let messages = reply
            .messages()
            .iter()
            .filter_map(|message| {
                let attributes = message.attributes();
                let attribute =
                    |name: MessageSystemAttributeName| attributes.and_then(|a| a.get(&name));
                Some(Received {
                    priority,
                    message_id: message.message_id()?.to_owned(),
                    receipt_handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    sent_at: attribute(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|ms| ms.parse::<u64>().ok())
                        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                    invisible_until: now + self.visibility,
                })
            })
            .collect();
        Ok(messages)
    }

    /// Sets how long `message` stays invisible from now; zero returns it to
    /// its queue at once.
    pub async fn set_visibility(
        &self,
        message: &mut Received,
        visibility: Duration,
    ) -> Result<(), IntakeError> {
        let queue = &self.queues[message.priority];
        self.client
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(visibility.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(failed("ChangeMessageVisibility", &queue.name))?;
        message.invisible_until = Instant::now() + visibility;
        Ok(())
    }

    pub async fn delete(&self, message: &Received) -> Result<(), IntakeError> {
        let queue = &self.queues[message.priority];
        self.client
            .delete_message()
            .queue_url(&queue.url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map_err(failed("DeleteMessage", &queue.name))?;
        Ok(())
    }

    /// Copies `message` to the dead-letter queue with `reason`, then deletes
    /// it from its queue. A crash between the two leaves a duplicate in the
    /// dead-letter queue, never a loss.
    pub async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), IntakeError> {
        let queue = &self.queues[message.priority];
        let text = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("data type and value are set")
        };
        // SQS counts attributes toward its 256 KiB limit, so a body at the
        // limit cannot be copied whole: keep its first 200 KiB and mark it.
        let limit = 200 * 1024;
        let truncated = message.body.len() > limit;
        let mut end = message.body.len().min(limit);
        while !message.body.is_char_boundary(end) {
            end -= 1;
        }
        let body = &message.body[..end];
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(if body.is_empty() {
                "(empty body)"
            } else {
                body
            })
            .message_attributes(REASON_ATTRIBUTE, text(reason))
            .message_attributes("tend_source_queue", text(&queue.name))
            .message_attributes("tend_message_id", text(&message.message_id))
            .message_attributes(
                "tend_body_truncated",
                text(if truncated { "true" } else { "false" }),
            )
            .send()
            .await
            .map_err(failed("SendMessage", "the dead-letter queue"))?;
        self.delete(message).await
    }

    /// Approximate number of visible messages in queue `priority`.
    pub async fn depth(&self, priority: usize) -> Result<i64, IntakeError> {
        let queue = &self.queues[priority];
        let reply = self
            .client
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(failed("GetQueueAttributes", &queue.name))?;
        Ok(reply
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Sends a request body to queue `url`; returns the message id.
    pub async fn send(client: &Client, url: &str, body: String) -> Result<String, IntakeError> {
        let reply = client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(failed("SendMessage", url))?;
        Ok(reply.message_id().unwrap_or_default().to_owned())
    }
}
