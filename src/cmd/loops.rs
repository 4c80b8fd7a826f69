//! Builds the enabled loops and the clients they share from the configuration.

use std::sync::Arc;

use prometheus::Registry;

use crate::aws::{self, AwsSetupError, RequestMetrics};
use crate::config::Config;
use crate::ecs_capacity::reader::CapacityReader;
use crate::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use crate::redis_client::Redis;
use crate::runtime::Schedule;
use crate::scheduler::{
    Intake, Launcher, Queue, Reservations, Scheduler, SchedulerMetrics, SchedulerParts, Tracker,
};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Aws(#[from] AwsSetupError),
    #[error("invalid Redis settings")]
    Redis(#[from] redis::RedisError),
    #[error("registering metrics failed")]
    Metrics(#[from] prometheus::Error),
}

/// The loops to run, each with its schedule.
pub struct Loops {
    pub ecs_capacity: Option<(Arc<CapacityReconciler>, Schedule)>,
    pub scheduler: Option<(Arc<Scheduler>, Schedule)>,
    /// Shared Redis client, when any loop needs one.
    pub redis: Option<Redis>,
}

impl Loops {
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.ecs_capacity.is_some() {
            names.push(crate::ecs_capacity::LOOP_NAME);
        }
        if self.scheduler.is_some() {
            names.push(crate::scheduler::LOOP_NAME);
        }
        names
    }
}

pub fn schedule(
    config: &Config,
    interval: std::time::Duration,
    pass_timeout: std::time::Duration,
) -> Schedule {
    Schedule {
        interval,
        jitter: config.runtime.jitter,
        pass_timeout,
        backoff_initial: config.runtime.backoff_initial,
        backoff_max: config.runtime.backoff_max,
    }
}

/// Builds every loop enabled in `config`, registering its metrics.
pub async fn build(config: &Config, registry: &Registry) -> Result<Loops, SetupError> {
    let redis = Redis::new(&config.redis)?;
    let mut loops = Loops {
        ecs_capacity: None,
        scheduler: None,
        redis: None,
    };
    if !config.ecs_capacity.enabled && !config.scheduler.enabled {
        return Ok(loops);
    }
    let sdk = aws::load(&config.aws).await?;
    let request_metrics = RequestMetrics::register(registry)?;
    let ecs_client = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&sdk)
            .interceptor(request_metrics.clone())
            .build(),
    );
    let cache = CapacityCache::new(redis.clone(), config.redis.seed_keys);
    loops.redis = Some(redis.clone());
    if config.scheduler.enabled {
        let sqs_client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(request_metrics)
                .build(),
        );
        let scheduler = build_scheduler(
            config,
            registry,
            &redis,
            &cache,
            ecs_client.clone(),
            sqs_client,
        )?;
        let schedule = Schedule {
            backoff_max: config.scheduler.backoff_max,
            ..schedule(
                config,
                config.scheduler.interval,
                config.scheduler.pass_timeout,
            )
        };
        loops.scheduler = Some((Arc::new(scheduler), schedule));
    }
    let ecs = &config.ecs_capacity;
    if ecs.enabled {
        let observer = Observer::new(ecs_client, ecs.clusters.clone());
        let reconciler = CapacityReconciler::new(
            observer,
            cache,
            EcsMetrics::register(registry)?,
            ecs.concurrency as usize,
        );
        let schedule = schedule(config, ecs.interval, ecs.pass_timeout);
        loops.ecs_capacity = Some((Arc::new(reconciler), schedule));
    }
    Ok(loops)
}

fn build_scheduler(
    config: &Config,
    registry: &Registry,
    redis: &Redis,
    cache: &CapacityCache,
    ecs_client: aws_sdk_ecs::Client,
    sqs_client: aws_sdk_sqs::Client,
) -> Result<Scheduler, SetupError> {
    let settings = &config.scheduler;
    let queues = settings
        .queues
        .iter()
        .map(|url| Queue::from_url(url))
        .collect();
    Ok(Scheduler::new(SchedulerParts {
        intake: Intake::new(
            sqs_client,
            queues,
            settings.dead_letter_queue.clone(),
            settings.visibility_timeout,
        ),
        launcher: Launcher::new(ecs_client, settings.task_definition_ttl),
        cache: cache.clone(),
        reader: CapacityReader::new(cache.clone(), config.ecs_capacity.max_age),
        reservations: Reservations::new(redis.clone(), settings.reservation_ttl),
        redis: redis.clone(),
        metrics: SchedulerMetrics::register(registry)?,
        tracker: Tracker::new(settings.stuck_after),
        policy: settings.policy,
        strategy: settings.placement,
        wait_time: settings.wait_time,
        max_receives: u32::try_from(settings.max_receives).unwrap_or(u32::MAX),
    }))
}
