//! Builds the enabled loops and the clients they share from the configuration.

use std::sync::Arc;

use prometheus::Registry;

use crate::aws::{self, AwsSetupError, RequestMetrics};
use crate::config::Config;
use crate::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use crate::redis_client::Redis;
use crate::runtime::Schedule;

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
    /// Shared Redis client, when any loop needs one.
    pub redis: Option<Redis>,
}

impl Loops {
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.ecs_capacity.is_some() {
            names.push(crate::ecs_capacity::LOOP_NAME);
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
        redis: None,
    };
    let ecs = &config.ecs_capacity;
    if ecs.enabled {
        let sdk = aws::load(&config.aws).await?;
        let request_metrics = RequestMetrics::register(registry)?;
        let ecs_config = aws_sdk_ecs::config::Builder::from(&sdk)
            .interceptor(request_metrics)
            .build();
        let observer = Observer::new(
            aws_sdk_ecs::Client::from_conf(ecs_config),
            ecs.clusters.clone(),
        );
        let cache = CapacityCache::new(redis.clone(), config.redis.seed_keys);
        let reconciler = CapacityReconciler::new(
            observer,
            cache,
            EcsMetrics::register(registry)?,
            ecs.concurrency as usize,
        );
        loops.ecs_capacity = Some((
            Arc::new(reconciler),
            schedule(config, ecs.interval, ecs.pass_timeout),
        ));
        loops.redis = Some(redis);
    }
    Ok(loops)
}
