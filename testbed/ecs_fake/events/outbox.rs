//! The fake's side of event delivery: the queue and SQS endpoint events go
//! to, the test switches that drop, duplicate or hold events, the counters,
//! and the channel to the background sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Events that may wait for the sender before new ones count as failed.
pub const CHANNEL_CAPACITY: usize = 10_000;

/// Event destination: an SQS queue URL and the SQS endpoint to call.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub queue_url: String,
    pub endpoint: String,
}

/// One SQS message for the sender.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub target: Target,
    pub resource_arn: String,
    pub body: String,
}

/// Event counts since the fake started. A duplicated event counts once in
/// `duplicated` and twice in `sent`.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Outbox {
    pub target: Option<Target>,
    /// SQS endpoint from `--sqs-endpoint`, used when a request sets a queue
    /// without one.
    pub default_endpoint: Option<String>,
    pub drop_next: u32,
    pub duplicate_next: u32,
    pub holding: bool,
    /// Events that the hold switch keeps back, oldest first.
    held_events: Vec<Outgoing>,
    channel: Option<mpsc::Sender<Outgoing>>,
    pub counters: Arc<Counters>,
}

impl Outbox {
    /// Creates the outbox and the receiving end for the sender task.
    pub fn new(
        target: Option<Target>,
        default_endpoint: Option<String>,
    ) -> (Self, mpsc::Receiver<Outgoing>) {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let outbox = Self {
            target,
            default_endpoint,
            drop_next: 0,
            duplicate_next: 0,
            holding: false,
            held_events: Vec::new(),
            channel: Some(sender),
            counters: Arc::new(Counters::default()),
        };
        (outbox, receiver)
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Queues one event body for the target, applying the drop, duplicate
    /// and hold switches in that order. Without a target it does nothing.
    pub fn enqueue(&mut self, resource_arn: String, body: String) {
        let Some(target) = self.target.clone() else {
            return;
        };
        if self.drop_next > 0 {
            self.drop_next -= 1;
            Counters::add(&self.counters.dropped, 1);
            tracing::info!(resource = %resource_arn, "dropped event as requested");
            return;
        }
        let outgoing = Outgoing {
            target,
            resource_arn,
            body,
        };
        let copies = if self.duplicate_next > 0 {
            self.duplicate_next -= 1;
            Counters::add(&self.counters.duplicated, 1);
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.holding {
                self.held_events.push(outgoing.clone());
            } else {
                self.hand_over(outgoing.clone());
            }
        }
    }

    /// Stops holding and sends the held events, newest first.
    pub fn release(&mut self) -> usize {
        self.holding = false;
        let held = std::mem::take(&mut self.held_events);
        let count = held.len();
        for outgoing in held.into_iter().rev() {
            self.hand_over(outgoing);
        }
        count
    }

    /// Clears the switches and discards held events, for `/_fake/reset`.
    /// The target and the counters stay.
    pub fn reset_switches(&mut self) {
        self.drop_next = 0;
        self.duplicate_next = 0;
        self.holding = false;
        self.discard_held("reset");
    }

    /// Closes the channel so that the sender finishes the queued events
    /// and stops. Held events are discarded.
    pub fn close(&mut self) {
        self.discard_held("shutdown");
        self.channel = None;
    }

    fn discard_held(&mut self, cause: &str) {
        if !self.held_events.is_empty() {
            tracing::warn!(count = self.held_events.len(), %cause, "discarded held events");
            self.held_events.clear();
        }
    }

    fn hand_over(&self, outgoing: Outgoing) {
        let Some(channel) = &self.channel else {
            Counters::add(&self.counters.failed, 1);
            tracing::warn!(resource = %outgoing.resource_arn,
                "failed to send event: the sender has stopped");
            return;
        };
        if let Err(error) = channel.try_send(outgoing) {
            Counters::add(&self.counters.failed, 1);
            tracing::warn!(%error, capacity = CHANNEL_CAPACITY,
                "failed to queue event for the sender");
        }
    }

    /// Returns the counters, switches and target as `GET /_fake/events`
    /// reports them.
    pub fn status_json(&self) -> Value {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        json!({
            "sent": read(&counters.sent),
            "dropped": read(&counters.dropped),
            "duplicated": read(&counters.duplicated),
            "failed": read(&counters.failed),
            "held": self.held_events.len(),
            "holding": self.holding,
            "drop_next": self.drop_next,
            "duplicate_next": self.duplicate_next,
            "queue_url": self.target.as_ref().map(|target| &target.queue_url),
            "endpoint": self.target.as_ref().map(|target| &target.endpoint),
        })
    }
}
