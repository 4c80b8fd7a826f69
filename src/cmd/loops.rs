//! Builds the enabled loops and the clients they share from the configuration.

use std::sync::Arc;

use prometheus::Registry;

use crate::aws::{self, AwsSetupError, RequestMetrics};
use crate::config::Config;
use crate::ecs_capacity::events::{EventMetrics, EventsReconciler};
use crate::ecs_capacity::reader::CapacityReader;
use crate::ecs_capacity::{CapacityCache, CapacityReconciler, EcsMetrics, Observer};
use crate::instagram::{
    ApiMetrics, Archive, Ghost, InstagramApi, InstagramMetrics, InstagramReconciler, Renderer,
    TokenStore,
};
use crate::redis_client::Redis;
use crate::runtime::{Lease, Leased, Schedule};
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
    #[error(transparent)]
    Ghost(#[from] crate::instagram::GhostError),
    #[error(transparent)]
    Template(#[from] crate::instagram::TemplateError),
    #[error("cannot read instagram.template {path}: {source}")]
    TemplateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// The loops to run, each with its schedule.
pub struct Loops {
    pub ecs_capacity: Option<(Arc<Leased<CapacityReconciler>>, Schedule)>,
    pub ecs_events: Option<(Arc<EventsReconciler>, Schedule)>,
    pub scheduler: Option<(Arc<Scheduler>, Schedule)>,
    pub instagram: Option<(Arc<Leased<InstagramReconciler>>, Schedule)>,
    /// Shared Redis client, when any loop needs one.
    pub redis: Option<Redis>,
}

impl Loops {
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.ecs_capacity.is_some() {
            names.push(crate::ecs_capacity::LOOP_NAME);
        }
        if self.ecs_events.is_some() {
            names.push(crate::ecs_capacity::events::LOOP_NAME);
        }
        if self.scheduler.is_some() {
            names.push(crate::scheduler::LOOP_NAME);
        }
        if self.instagram.is_some() {
            names.push(crate::instagram::LOOP_NAME);
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
        ecs_events: None,
        scheduler: None,
        instagram: None,
        redis: None,
    };
    if !config.ecs_capacity.enabled && !config.scheduler.enabled && !config.instagram.enabled {
        return Ok(loops);
    }
    let sdk = aws::load(&config.aws).await?;
    let request_metrics = RequestMetrics::register(registry)?;
    let leader = crate::metrics::register(
        registry,
        prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "tend_leader",
                "1 when this replica holds the lease of a single-writer loop (ecs-capacity, instagram).",
            ),
            &["loop"],
        )?,
    )?;
    let ecs_client = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&sdk)
            .interceptor(request_metrics.clone())
            .build(),
    );
    let cache = CapacityCache::new(redis.clone(), config.redis.seed_keys);
    loops.redis = Some(redis.clone());
    let sqs_client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(request_metrics.clone())
            .build(),
    );
    if let (true, Some(queue)) = (
        config.ecs_capacity.enabled,
        &config.ecs_capacity.events_queue,
    ) {
        let wait = config.ecs_capacity.events_wait;
        let events = EventsReconciler::new(
            sqs_client.clone(),
            ecs_client.clone(),
            cache.clone(),
            queue.clone(),
            wait,
            EventMetrics::register(registry)?,
        );
        let schedule = Schedule {
            backoff_max: config.ecs_capacity.backoff_max,
            ..schedule(config, wait, wait + std::time::Duration::from_secs(30))
        };
        loops.ecs_events = Some((Arc::new(events), schedule));
    }
    if config.scheduler.enabled {
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
    if config.instagram.enabled {
        let s3_client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(config.aws.s3_force_path_style)
                .interceptor(request_metrics.clone())
                .build(),
        );
        let reconciler = build_instagram(config, registry, &redis, s3_client)?;
        let ig = &config.instagram;
        let leased = lease(
            config,
            &redis,
            &leader,
            reconciler,
            crate::instagram::LOOP_NAME,
            ig.interval,
        );
        loops.instagram = Some((
            Arc::new(leased),
            schedule(config, ig.interval, ig.pass_timeout),
        ));
    }
    let ecs = &config.ecs_capacity;
    if ecs.enabled {
        let observer = Observer::new(ecs_client, ecs.clusters.clone());
        let capacity_lease = Lease::new(
            redis.clone(),
            crate::ecs_capacity::LOOP_NAME,
            config.runtime.replica_id.clone(),
            config.runtime.lease_ttl,
        );
        let fenced = cache.fenced(capacity_lease.token_key(), capacity_lease.token_handle());
        let reconciler = CapacityReconciler::new(
            observer,
            fenced,
            EcsMetrics::register(registry)?,
            ecs.concurrency as usize,
        );
        let schedule = Schedule {
            backoff_max: ecs.backoff_max,
            ..schedule(config, ecs.interval, ecs.pass_timeout)
        };
        let leased = Leased::new(reconciler, capacity_lease, leader.clone(), ecs.interval);
        loops.ecs_capacity = Some((Arc::new(leased), schedule));
    }
    Ok(loops)
}

/// Wraps a single-writer loop in its leader lease.
fn lease<R: crate::runtime::Reconciler>(
    config: &Config,
    redis: &Redis,
    leader: &prometheus::IntGaugeVec,
    reconciler: R,
    name: &'static str,
    interval: std::time::Duration,
) -> Leased<R> {
    let runtime = &config.runtime;
    let lease = Lease::new(
        redis.clone(),
        name,
        runtime.replica_id.clone(),
        runtime.lease_ttl,
    );
    Leased::new(reconciler, lease, leader.clone(), interval)
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

/// Builds the instagram loop from its settings.
pub fn build_instagram(
    config: &Config,
    registry: &Registry,
    redis: &Redis,
    s3_client: aws_sdk_s3::Client,
) -> Result<InstagramReconciler, SetupError> {
    let ig = &config.instagram;
    let http = reqwest::Client::builder()
        .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(SetupError::Http)?;
    let template = match &ig.template {
        Some(path) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| SetupError::TemplateFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let metrics = InstagramMetrics::register(registry)?;
    let api = InstagramApi::new(
        http.clone(),
        &ig.api_url,
        &ig.api_version,
        ig.access_token.clone(),
        ApiMetrics::register(registry)?,
    );
    let tokens = TokenStore::new(
        redis.clone(),
        api.clone(),
        &ig.access_token,
        ig.token_refresh_before,
        metrics.token_expiry.clone(),
    );
    let archive = Archive::new(
        s3_client,
        http.clone(),
        ig.bucket.clone(),
        ig.key_prefix.clone(),
        ig.cdn_hosts.clone(),
    );
    let settings = crate::instagram::Settings {
        page_size: ig.page_size as u32,
        tags: ig.tags.clone(),
        internal_tag: ig.internal_tag.clone(),
        public_base_url: ig.public_base_url.clone(),
        deleted: ig.deleted,
        full_interval: ig.full_interval,
    };
    Ok(InstagramReconciler::new(
        api,
        archive,
        Ghost::new(http, &ig.ghost_url, &ig.ghost_admin_key)?,
        Renderer::new(template)?,
        tokens,
        settings,
        metrics,
        redis.clone(),
    ))
}
