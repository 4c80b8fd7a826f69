//! One scheduling round: renew held messages, receive what can be placed,
//! and place requests in priority order.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::intake::{Intake, IntakeError, Received};
use super::launch::{Launch, Launcher, TaskSize};
use super::metrics::SchedulerMetrics;
use super::placement::{Strategy, choose, slots};
use super::request::TaskRequest;
use super::reservations::Reservations;
use super::tracker::Tracker;
use crate::config::PriorityPolicy;
use crate::ecs_capacity::reader::{CapacityReader, ReadError};
use crate::ecs_capacity::{CacheError, CachedCluster, CapacityCache};
use crate::redis_client::Redis;
use crate::runtime::{CancellationToken, Outcome, Reconciler};

/// How long a launched message id is remembered, to skip redeliveries.
const LAUNCHED_MARKER_TTL_SECONDS: u64 = 24 * 3600;
/// Most receive batches from one priority in one round.
const MAX_BATCHES: usize = 10;
/// How often queue depths are read.
const DEPTH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("capacity cache unavailable; no task is launched without it")]
    Capacity(#[from] ReadError),
    #[error("capacity cache unavailable; no task is launched without it")]
    Cache(#[from] CacheError),
    #[error("Redis command failed")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error("capacity cache is empty; is the ecs-capacity loop running against this Redis?")]
    EmptyCache,
    #[error("launch will be retried: {0}")]
    Transient(String),
}

/// A received, valid request waiting to be placed.
struct Held {
    message: Received,
    request: TaskRequest,
    /// CPU units and MiB per task.
    size: TaskSize,
}

impl Held {
    fn need(&self) -> TaskSize {
        (
            self.size.0 * self.request.count,
            self.size.1 * self.request.count,
        )
    }
}

/// Outcome of one held request in this round.
enum Placed {
    Started,
    /// It stays at the head of its priority.
    Waiting,
    /// Dead-lettered, deleted as a duplicate, or handed back to SQS.
    Gone,
}

/// Everything the scheduler is built from.
pub struct SchedulerParts {
    pub intake: Intake,
    pub launcher: Launcher,
    pub cache: CapacityCache,
    pub reader: CapacityReader,
    pub reservations: Reservations,
    pub redis: Redis,
    pub metrics: SchedulerMetrics,
    pub tracker: Tracker,
    pub policy: PriorityPolicy,
    pub strategy: Strategy,
    pub wait_time: Duration,
    pub max_receives: u32,
}

/// Mutable state kept between rounds; one round runs at a time.
struct State {
    /// Held requests per priority, oldest first.
    held: Vec<VecDeque<Held>>,
    /// Smallest task size started per priority, for the receive estimate.
    /// Only started requests count: one that can never fit would otherwise
    /// shrink the estimate to nothing.
    smallest: Vec<Option<TaskSize>>,
    depth_read_at: Option<Instant>,
}

pub struct Scheduler {
    parts: SchedulerParts,
    state: Mutex<State>,
}

#[derive(Default)]
struct Tally {
    received: usize,
    started: usize,
    capacity_rejections: usize,
    dead_lettered: usize,
    transient: Option<String>,
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Self {
        let queues = parts.intake.queues.len();
        let names: Vec<String> = parts.intake.queues.iter().map(|q| q.name.clone()).collect();
        parts.metrics.init_queues(&names);
        Self {
            parts,
            state: Mutex::new(State {
                held: (0..queues).map(|_| VecDeque::new()).collect(),
                smallest: vec![None; queues],
                depth_read_at: None,
            }),
        }
    }

    fn queue_name(&self, priority: usize) -> &str {
        &self.parts.intake.queues[priority].name
    }

    /// Renews the invisibility of held messages before it runs out. A
    /// message whose renewal fails is dropped from the held list: its
    /// receipt is stale (it became visible and another consumer received
    /// it) or it is gone, and in both cases SQS still has it.
    async fn renew(&self, state: &mut State) {
        let visibility = self.parts.intake.visibility;
        for queue in &mut state.held {
            let mut kept = VecDeque::with_capacity(queue.len());
            for mut held in queue.drain(..) {
                let left = held
                    .message
                    .invisible_until
                    .saturating_duration_since(Instant::now());
                if left >= visibility / 2 {
                    kept.push_back(held);
                    continue;
                }
                match self
                    .parts
                    .intake
                    .set_visibility(&mut held.message, visibility)
                    .await
                {
                    Ok(()) => kept.push_back(held),
                    Err(error) => warn!(
                        message_id = %held.message.message_id,
                        %error,
                        "renewing a held request failed; leaving it to SQS"
                    ),
                }
            }
            *queue = kept;
        }
    }

    /// Number of messages to receive from `priority`: what the cached free
    /// capacity could take of tasks the size of the smallest started from
    /// this queue, at most 10 (the SQS batch limit). When that is none but
    /// some instance has room at all, one message is received anyway, so a
    /// waiting request of this priority is known by its real size before any
    /// lower-priority request may take the room.
    fn receive_limit(&self, clusters: &[CachedCluster], smallest: Option<TaskSize>) -> i32 {
        let any_room = clusters
            .iter()
            .any(|c| c.cluster.instances.iter().any(|i| i.fits(1, 1)));
        let estimate: i64 = match smallest {
            Some((cpu, memory)) => clusters
                .iter()
                .map(|c| slots(&c.cluster.instances, &Default::default(), cpu, memory))
                .sum(),
            None => 0,
        };
        match estimate {
            0 if any_room => 1,
            _ => estimate.clamp(0, 10) as i32,
        }
    }

    /// Receives and places requests of one priority. While every request
    /// received so far has started, it receives again until a receive
    /// returns nothing: SQS may return fewer messages than asked even when
    /// more are queued, so only an empty receive shows that no request of
    /// this priority is left in SQS for lower priorities to overtake.
    /// Returns whether a request of this priority is left waiting.
    async fn serve_priority(
        &self,
        state: &mut State,
        priority: usize,
        clusters: &[CachedCluster],
        tally: &mut Tally,
    ) -> Result<bool, SchedulerError> {
        for _ in 0..MAX_BATCHES {
            if state.held[priority].is_empty() {
                let current = self.parts.reader.all().await?;
                let limit = self.receive_limit(&current, state.smallest[priority]);
                if limit == 0 {
                    return Ok(false);
                }
                let before = tally.received;
                self.receive(state, priority, limit, tally).await?;
                if tally.received == before {
                    return Ok(false);
                }
            }
            let waiting = self
                .place_priority(state, priority, clusters, tally)
                .await?;
            if waiting || tally.transient.is_some() {
                return Ok(waiting);
            }
        }
        Ok(false)
    }

    async fn receive(
        &self,
        state: &mut State,
        priority: usize,
        limit: i32,
        tally: &mut Tally,
    ) -> Result<(), SchedulerError> {
        let messages = self
            .parts
            .intake
            .receive(priority, limit, self.parts.wait_time)
            .await?;
        tally.received += messages.len();
        for mut message in messages {
            let request = match TaskRequest::parse(&message.body) {
                Ok(request) => request,
                Err(invalid) => {
                    let reason = format!("invalid request: {invalid}");
                    self.dead_letter(&message, "invalid_request", &reason)
                        .await?;
                    tally.dead_lettered += 1;
                    continue;
                }
            };
            match self.parts.launcher.task_size(&request).await {
                Ok(size) => {
                    state.held[priority].push_back(Held {
                        message,
                        request,
                        size,
                    });
                }
                Err(Launch::Transient { reason }) => {
                    // Hand it back at once; the round fails and backs off.
                    self.parts
                        .intake
                        .set_visibility(&mut message, Duration::ZERO)
                        .await?;
                    tally.transient = Some(reason);
                }
                Err(other) => {
                    let reason = match other {
                        Launch::Rejected { reason } | Launch::NoCapacity { reason } => reason,
                        Launch::Started { .. }
                        | Launch::StartedEarlier
                        | Launch::Transient { .. } => String::new(),
                    };
                    self.fail(&mut message, &reason, tally).await?;
                }
            }
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &Received,
        label: &str,
        reason: &str,
    ) -> Result<(), IntakeError> {
        warn!(
            message_id = %message.message_id,
            queue = self.queue_name(message.priority),
            reason,
            "request moved to the dead-letter queue"
        );
        self.parts.intake.dead_letter(message, reason).await?;
        self.parts
            .metrics
            .dead_lettered
            .with_label_values(&[label])
            .inc();
        Ok(())
    }

    /// Handles a failure that is the request's fault: back to SQS with a
    /// delay, or to the dead-letter queue after `max_receives` receives.
    async fn fail(
        &self,
        message: &mut Received,
        reason: &str,
        tally: &mut Tally,
    ) -> Result<(), IntakeError> {
        self.parts
            .metrics
            .launch_failures
            .with_label_values(&["rejected"])
            .inc();
        if message.receive_count >= self.parts.max_receives {
            let reason = format!(
                "launch failed {} times; last error: {reason}",
                message.receive_count
            );
            tally.dead_lettered += 1;
            return self.dead_letter(message, "launch_failed", &reason).await;
        }
        warn!(message_id = %message.message_id, receive_count = message.receive_count, reason, "launch failed; the request will be retried");
        let delay = Duration::from_secs(30 * u64::from(message.receive_count));
        self.parts.intake.set_visibility(message, delay).await
    }

    /// Returns whether some held request of a priority above `priority` fits now.
    async fn higher_fits(
        &self,
        state: &State,
        priority: usize,
        clusters: &[CachedCluster],
    ) -> Result<bool, SchedulerError> {
        for held in state.held[..priority].iter().flatten() {
            let Some(cached) = clusters
                .iter()
                .find(|c| matches_cluster(c, &held.request.cluster))
            else {
                continue;
            };
            let reserved = self
                .parts
                .reservations
                .reserved(&cached.cluster.arn)
                .await?;
            let (cpu, memory) = held.need();
            if choose(
                &cached.cluster.instances,
                &reserved,
                cpu,
                memory,
                self.parts.strategy,
            )
            .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

pub(super) fn matches_cluster(cached: &CachedCluster, name_or_arn: &str) -> bool {
    cached.cluster.arn == name_or_arn || cached.cluster.name == name_or_arn
}

mod place;

impl Reconciler for Scheduler {
    type Error = SchedulerError;

    fn name(&self) -> &'static str {
        super::LOOP_NAME
    }

    async fn reconcile(&self, _shutdown: &CancellationToken) -> Result<Outcome, SchedulerError> {
        let mut state = self.state.lock().await;
        self.renew(&mut state).await;
        self.parts
            .tracker
            .poll(self.parts.launcher.client(), &self.parts.metrics)
            .await;
        let clusters = self.parts.reader.all().await?;
        if clusters.is_empty() {
            return Err(SchedulerError::EmptyCache);
        }
        let mut tally = Tally::default();
        let mut blocked = false;
        for priority in 0..state.held.len() {
            if blocked && self.parts.policy == PriorityPolicy::Strict {
                break;
            }
            blocked |= self
                .serve_priority(&mut state, priority, &clusters, &mut tally)
                .await?;
        }
        self.report(&mut state).await;
        if let Some(reason) = tally.transient {
            return Err(SchedulerError::Transient(reason));
        }
        let held: usize = state.held.iter().map(VecDeque::len).sum();
        let summary = json!({
            "received": tally.received,
            "started": tally.started,
            "held": held,
            "capacity_rejections": tally.capacity_rejections,
            "dead_lettered": tally.dead_lettered,
        });
        // Run again at once while work moves; a capacity rejection means the
        // cache was behind and the refreshed instance may take the request.
        let busy = tally.started > 0 || tally.capacity_rejections > 0 || tally.dead_lettered > 0;
        Ok(Outcome {
            requeue_after: busy.then_some(Duration::ZERO),
            summary,
        })
    }

    async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        for held in state.held.iter_mut().flat_map(|queue| queue.drain(..)) {
            let mut message = held.message;
            match self
                .parts
                .intake
                .set_visibility(&mut message, Duration::ZERO)
                .await
            {
                Ok(()) => {
                    info!(message_id = %message.message_id, "held request returned to its queue")
                }
                Err(error) => {
                    warn!(message_id = %message.message_id, %error, "returning a held request failed; SQS returns it when its visibility timeout ends")
                }
            }
        }
    }
}

impl Scheduler {
    /// Updates the held and queue depth gauges.
    async fn report(&self, state: &mut State) {
        for (priority, held) in state.held.iter().enumerate() {
            self.parts
                .metrics
                .held
                .with_label_values(&[self.queue_name(priority)])
                .set(held.len() as i64);
        }
        if state
            .depth_read_at
            .is_some_and(|at| at.elapsed() < DEPTH_INTERVAL)
        {
            return;
        }
        state.depth_read_at = Some(Instant::now());
        for priority in 0..state.held.len() {
            match self.parts.intake.depth(priority).await {
                Ok(depth) => self
                    .parts
                    .metrics
                    .queue_depth
                    .with_label_values(&[self.queue_name(priority)])
                    .set(depth),
                Err(error) => tracing::debug!(%error, "reading the queue depth failed"),
            }
        }
    }
}

/// Seconds since `sent_at`, for the wait histogram.
fn waited(sent_at: Option<SystemTime>) -> Option<f64> {
    SystemTime::now()
        .duration_since(sent_at?)
        .ok()
        .map(|d| d.as_secs_f64())
}
