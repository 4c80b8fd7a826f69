//! Placing held requests: choose, reserve, launch, and settle the message.

use tracing::{info, warn};

use super::{Held, Placed, Scheduler, SchedulerError, State, Tally, waited};
use crate::config::PriorityPolicy;
use crate::ecs_capacity::CachedCluster;
use crate::ecs_capacity::reader::ReadError;
use crate::scheduler::launch::Launch;
use crate::scheduler::placement::choose;

impl Scheduler {
    /// Places the held requests of `priority` in order. Returns whether a
    /// request of this priority is left waiting for room.
    pub(super) async fn place_priority(
        &self,
        state: &mut State,
        priority: usize,
        clusters: &[CachedCluster],
        tally: &mut Tally,
    ) -> Result<bool, SchedulerError> {
        let mut waiting = false;
        let mut index = 0;
        while index < state.held[priority].len() {
            let placed = self.place(state, priority, index, clusters, tally).await?;
            match placed {
                Placed::Started | Placed::Gone => {
                    state.held[priority].remove(index);
                }
                Placed::Waiting => {
                    waiting = true;
                    // Strict order: nothing behind a waiting request starts.
                    if self.parts.policy == PriorityPolicy::Strict {
                        break;
                    }
                    index += 1;
                }
            }
        }
        Ok(waiting)
    }

    fn launched_key(&self, message_id: &str) -> String {
        format!("{}:sched:launched:{message_id}", self.parts.redis.prefix())
    }

    async fn place(
        &self,
        state: &mut State,
        priority: usize,
        index: usize,
        clusters: &[CachedCluster],
        tally: &mut Tally,
    ) -> Result<Placed, SchedulerError> {
        let held = &state.held[priority][index];
        let message_id = held.message.message_id.clone();

        // A redelivery of a message already launched: only delete it.
        let launched: Option<String> = self
            .parts
            .redis
            .query(redis::cmd("GET").arg(self.launched_key(&message_id)))
            .await?;
        if let Some(tasks) = launched {
            info!(%message_id, %tasks, "request already launched; deleting the redelivered message");
            self.delete_launched(&held.message).await;
            return Ok(Placed::Gone);
        }

        // Read the cluster again: launches earlier in this round changed it.
        let cached = match self.parts.reader.cluster(&held.request.cluster).await {
            Ok(cached) => cached,
            Err(ReadError::NotCached { .. }) => {
                let reason = format!(
                    "unknown cluster: {} is not in the capacity cache; check the name or ecs_capacity.clusters",
                    held.request.cluster
                );
                self.dead_letter(&held.message, "unknown_cluster", &reason)
                    .await?;
                tally.dead_lettered += 1;
                return Ok(Placed::Gone);
            }
            Err(error) => return Err(error.into()),
        };
        let cached = &cached;
        if let Some(reason) = never_fits(held, cached) {
            self.dead_letter(&held.message, "cannot_fit", &reason)
                .await?;
            tally.dead_lettered += 1;
            return Ok(Placed::Gone);
        }

        let (cpu, memory) = held.need();
        let arn = cached.cluster.arn.clone();
        let reserved = self.parts.reservations.reserved(&arn).await?;
        let Some(instance) = choose(
            &cached.cluster.instances,
            &reserved,
            cpu,
            memory,
            self.parts.strategy,
        )
        .cloned() else {
            return Ok(Placed::Waiting);
        };
        if !self
            .parts
            .reservations
            .reserve(&arn, &instance.arn, &message_id, cpu, memory)
            .await?
        {
            // Another replica took the room first, and the next round reads the new state.
            return Ok(Placed::Waiting);
        }
        if priority > 0 && self.higher_fits(state, priority, clusters).await? {
            self.parts.metrics.inversions.inc();
            warn!(%message_id, "starting a request while a higher-priority one that fits waits");
        }

        let held = &state.held[priority][index];
        let launch = self
            .parts
            .launcher
            .run(&arn, &held.request, &instance, &message_id)
            .await;
        let result = self
            .settle(&arn, &instance.arn, launch, priority, index, state, tally)
            .await;
        self.parts.reservations.release(&arn, &message_id).await?;
        result
    }

    /// Acts on RunTask's result for the held request at `index`.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        cluster_arn: &str,
        instance_arn: &str,
        launch: Launch,
        priority: usize,
        index: usize,
        state: &mut State,
        tally: &mut Tally,
    ) -> Result<Placed, SchedulerError> {
        let held = &mut state.held[priority][index];
        let message_id = held.message.message_id.clone();
        match launch {
            Launch::Started { task_arns } => {
                let marker = task_arns.join(",");
                let _: () = self
                    .parts
                    .redis
                    .query(
                        redis::cmd("SET")
                            .arg(self.launched_key(&message_id))
                            .arg(&marker)
                            .arg("EX")
                            .arg(super::LAUNCHED_MARKER_TTL_SECONDS),
                    )
                    .await?;
                self.delete_launched(&held.message).await;
                self.refresh_instance(cluster_arn, instance_arn).await;
                let queue = self.queue_name(priority);
                self.parts
                    .metrics
                    .placements
                    .with_label_values(&[queue])
                    .inc_by(task_arns.len() as u64);
                if let Some(seconds) = waited(held.message.sent_at) {
                    self.parts
                        .metrics
                        .wait
                        .with_label_values(&[queue])
                        .observe(seconds);
                }
                self.parts.tracker.follow(cluster_arn, &task_arns);
                let size = held.size;
                let smallest = &mut state.smallest[priority];
                *smallest = Some(smallest.map_or(size, |s| (s.0.min(size.0), s.1.min(size.1))));
                info!(%message_id, queue, tasks = %marker, instance = instance_arn, "task started");
                tally.started += 1;
                Ok(Placed::Started)
            }
            Launch::NoCapacity { reason } => {
                self.parts
                    .metrics
                    .rejections
                    .with_label_values(&[&reason])
                    .inc();
                info!(%message_id, instance = instance_arn, %reason, "ECS had no room after all; refreshing the instance and keeping the request first in line");
                self.refresh_instance(cluster_arn, instance_arn).await;
                tally.capacity_rejections += 1;
                Ok(Placed::Waiting)
            }
            Launch::Transient { reason } => {
                self.parts
                    .metrics
                    .launch_failures
                    .with_label_values(&["transient"])
                    .inc();
                tally.transient = Some(reason);
                Ok(Placed::Waiting)
            }
            Launch::Rejected { reason } => {
                self.fail(&mut held.message, &reason, tally).await?;
                Ok(Placed::Gone)
            }
            Launch::StartedEarlier => {
                let marker = redis::cmd("SET")
                    .arg(self.launched_key(&message_id))
                    .arg("started by an earlier delivery")
                    .arg("EX")
                    .arg(super::LAUNCHED_MARKER_TTL_SECONDS)
                    .clone();
                let _: () = self.parts.redis.query(&marker).await?;
                info!(%message_id, "an earlier delivery already started this request; deleting the message");
                self.delete_launched(&held.message).await;
                Ok(Placed::Gone)
            }
        }
    }

    /// Deletes the message of a launched request. A failure (a stale
    /// receipt after redelivery, say) is only logged: the launched marker
    /// makes whoever receives it next delete it without launching again.
    async fn delete_launched(&self, message: &crate::scheduler::intake::Received) {
        if let Err(error) = self.parts.intake.delete(message).await {
            warn!(message_id = %message.message_id, %error, "deleting a launched request failed; the next receive deletes it");
        }
    }

    /// Re-reads one instance into the cache after a launch or a rejection,
    /// so the next choice sees what ECS sees. A failure only delays that
    /// until the next full refresh.
    async fn refresh_instance(&self, cluster_arn: &str, instance_arn: &str) {
        let Some(instance) = self
            .parts
            .launcher
            .describe_instance(cluster_arn, instance_arn)
            .await
        else {
            return;
        };
        if let Err(error) = self.parts.cache.apply_instance(cluster_arn, instance).await {
            tracing::debug!(error = %crate::runtime::error_chain(&error), "refreshing the instance in the cache failed");
        }
    }
}

/// Why `held` can never fit in `cluster` as it is, if so: more than the
/// largest registered instance (whatever its status), or no instances.
fn never_fits(held: &Held, cached: &CachedCluster) -> Option<String> {
    let (cpu, memory) = held.need();
    if cached.cluster.instances.is_empty() {
        let kind = if cached.summary.fargate_only {
            "a Fargate-only cluster"
        } else {
            "a cluster"
        };
        return Some(format!(
            "cannot fit on any instance: {} is {kind} with no EC2 container instances",
            cached.cluster.name
        ));
    }
    let largest_cpu = cached
        .cluster
        .instances
        .iter()
        .map(|i| i.registered_cpu)
        .max()
        .unwrap_or(0);
    let largest_memory = cached
        .cluster
        .instances
        .iter()
        .map(|i| i.registered_memory)
        .max()
        .unwrap_or(0);
    (cpu > largest_cpu || memory > largest_memory).then(|| {
        format!(
            "cannot fit on any instance: needs {cpu} CPU units and {memory} MiB ({} x {} CPU, {} MiB), \
             the largest instance in {} has {largest_cpu} CPU units and {largest_memory} MiB registered",
            held.request.count, held.size.0, held.size.1, cached.cluster.name
        )
    })
}
