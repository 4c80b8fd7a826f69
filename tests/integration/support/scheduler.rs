//! A scheduler wired to moto's SQS, the ECS fake and Redis, with the
//! capacity cache filled by a real ecs-capacity pass.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use tend::config::PriorityPolicy;
use tend::ecs_capacity::reader::CapacityReader;
use tend::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Outcome, Reconciler};
use tend::scheduler::{
    Intake, Launcher, Queue, REASON_ATTRIBUTE, Reservations, Scheduler, SchedulerError,
    SchedulerMetrics, SchedulerParts, Strategy, Tracker,
};

use super::ecs_fake::ecs_client;
use super::env::{delete_keys, moto_endpoint, redis_config};
use super::unique;

pub fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(moto_endpoint())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Queues created in moto for one test: priorities high to low, plus the
/// dead-letter queue.
pub struct Queues {
    pub urls: Vec<String>,
    pub dead_letter: String,
    pub client: aws_sdk_sqs::Client,
}

impl Queues {
    /// Creates `priorities` queues; with `max_receive_count`, each gets an
    /// SQS redrive policy to a separate redrive queue, as production setups do.
    pub async fn create(priorities: usize, max_receive_count: Option<u32>) -> Self {
        let client = sqs_client();
        let base = unique("q");
        let dead_letter = create_queue(&client, &format!("{base}-dead"), HashMap::new()).await;
        let mut attributes = HashMap::new();
        if let Some(count) = max_receive_count {
            let redrive = create_queue(&client, &format!("{base}-redrive"), HashMap::new()).await;
            let arn = queue_arn(&client, &redrive).await;
            let policy = json!({"deadLetterTargetArn": arn, "maxReceiveCount": count}).to_string();
            attributes.insert(QueueAttributeName::RedrivePolicy, policy);
        }
        let mut urls = Vec::new();
        for priority in 0..priorities {
            urls.push(
                create_queue(&client, &format!("{base}-p{priority}"), attributes.clone()).await,
            );
        }
        Self {
            urls,
            dead_letter,
            client,
        }
    }

    pub async fn send(&self, priority: usize, body: &str) -> String {
        let reply = self
            .client
            .send_message()
            .queue_url(&self.urls[priority])
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
        reply.message_id().unwrap().to_owned()
    }

    /// Receives every dead-lettered message: (body, reason).
    pub async fn dead_lettered(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        loop {
            let reply = self
                .client
                .receive_message()
                .queue_url(&self.dead_letter)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .expect("ReceiveMessage");
            if reply.messages().is_empty() {
                return found;
            }
            for message in reply.messages() {
                let reason = message
                    .message_attributes()
                    .and_then(|a| a.get(REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_owned();
                found.push((message.body().unwrap_or_default().to_owned(), reason));
                self.client
                    .delete_message()
                    .queue_url(&self.dead_letter)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }

    /// Visible messages of queue `priority` (not counting in-flight ones).
    pub async fn visible(&self, priority: usize) -> i64 {
        let reply = self
            .client
            .get_queue_attributes()
            .queue_url(&self.urls[priority])
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("GetQueueAttributes");
        reply
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Visible plus in-flight messages of queue `priority`.
    pub async fn total(&self, priority: usize) -> i64 {
        let reply = self
            .client
            .get_queue_attributes()
            .queue_url(&self.urls[priority])
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attributes = reply.attributes().cloned().unwrap_or_default();
        let read = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        read(QueueAttributeName::ApproximateNumberOfMessages)
            + read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }
}

/// Creates an empty queue for ECS events in moto; returns its URL.
pub async fn events_queue() -> String {
    create_queue(&sqs_client(), &unique("ecs-events"), HashMap::new()).await
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> String {
    let reply = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .expect("CreateQueue");
    reply.queue_url().unwrap().to_owned()
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    let reply = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes");
    reply.attributes().unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// Options of a test scheduler.
#[derive(Clone)]
pub struct Options {
    pub policy: PriorityPolicy,
    pub max_receives: u32,
    pub visibility: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: PriorityPolicy::Strict,
            max_receives: 5,
            visibility: Duration::from_secs(60),
        }
    }
}

/// A scheduler replica plus the capacity loop feeding its cache.
pub struct Harness {
    pub scheduler: Scheduler,
    pub capacity: CapacityReconciler,
    pub redis: Redis,
    pub registry: prometheus::Registry,
}

impl Harness {
    /// Builds a replica on `redis_prefix` (share it to run several replicas).
    pub fn new(ecs_endpoint: &str, queues: &Queues, redis_prefix: &str, options: &Options) -> Self {
        let mut config = redis_config(super::env::REDIS_URL);
        config.key_prefix = redis_prefix.to_owned();
        let redis = Redis::new(&config).expect("valid Redis URL");
        let cache = CapacityCache::new(redis.clone(), true);
        let registry = prometheus::Registry::new();
        let ecs = ecs_client(ecs_endpoint);
        let capacity = CapacityReconciler::new(
            Observer::new(ecs.clone(), Vec::new()),
            cache.clone(),
            EcsMetrics::register(&registry).unwrap(),
            4,
        );
        let intake = Intake::new(
            queues.client.clone(),
            queues.urls.iter().map(|url| Queue::from_url(url)).collect(),
            queues.dead_letter.clone(),
            options.visibility,
        );
        let scheduler = Scheduler::new(SchedulerParts {
            intake,
            launcher: Launcher::new(ecs, Duration::from_secs(300)),
            cache: cache.clone(),
            reader: CapacityReader::new(cache, Duration::from_secs(300)),
            reservations: Reservations::new(redis.clone(), Duration::from_secs(30)),
            redis: redis.clone(),
            metrics: SchedulerMetrics::register(&registry).unwrap(),
            tracker: Tracker::new(Duration::from_secs(300)),
            policy: options.policy,
            strategy: Strategy::Binpack,
            wait_time: Duration::ZERO,
            max_receives: options.max_receives,
        });
        Self {
            scheduler,
            capacity,
            redis,
            registry,
        }
    }

    pub async fn refresh(&self) {
        self.capacity
            .reconcile(&CancellationToken::new())
            .await
            .expect("capacity pass succeeds");
    }

    pub async fn round(&self) -> Result<Outcome, SchedulerError> {
        self.scheduler.reconcile(&CancellationToken::new()).await
    }

    pub fn metrics(&self) -> String {
        tend::metrics::encode(&self.registry).unwrap()
    }

    /// Value of one sample line `name{labels}` in the metrics, 0 if absent.
    pub fn sample(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    pub fn cleanup(&self) {
        delete_keys(&format!("{}:*", self.redis.prefix()));
    }
}
