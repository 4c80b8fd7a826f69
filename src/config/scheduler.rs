//! Scheduler settings: `[scheduler]` in the file, `TEND_SCHEDULER_*` in the
//! environment.

use std::time::Duration;

use serde::Serialize;

use super::human_duration;
use super::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorityPolicy {
    /// Nothing of lower priority starts while a higher-priority request waits.
    Strict,
    /// Lower-priority requests may use capacity that the waiting
    /// higher-priority request cannot use.
    Backfill,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerConfig {
    pub enabled: bool,
    /// SQS queue URLs, highest priority first.
    pub queues: Vec<String>,
    /// Queue that receives invalid and unplaceable requests with the reason.
    pub dead_letter_queue: String,
    pub policy: PriorityPolicy,
    pub placement: crate::scheduler::Strategy,
    /// Pause between rounds when there is nothing to do.
    #[serde(serialize_with = "human_duration")]
    pub interval: Duration,
    /// Long-polling wait of each receive (0 to 20 s).
    #[serde(serialize_with = "human_duration")]
    pub wait_time: Duration,
    /// Invisibility of a received message; renewed while it waits for room.
    #[serde(serialize_with = "human_duration")]
    pub visibility_timeout: Duration,
    /// Lifetime of a capacity reservation if its replica dies mid-launch.
    #[serde(serialize_with = "human_duration")]
    pub reservation_ttl: Duration,
    /// Receives after which a request that keeps failing for a reason other
    /// than capacity goes to the dead-letter queue.
    pub max_receives: u64,
    /// How long task definition sizes are cached.
    #[serde(serialize_with = "human_duration")]
    pub task_definition_ttl: Duration,
    /// A launched task not RUNNING after this counts as stuck.
    #[serde(serialize_with = "human_duration")]
    pub stuck_after: Duration,
    #[serde(serialize_with = "human_duration")]
    pub pass_timeout: Duration,
    /// Cap on the backoff after failed rounds, kept short so placements
    /// resume within seconds after Redis or AWS return.
    #[serde(serialize_with = "human_duration")]
    pub backoff_max: Duration,
}

pub(super) fn read_scheduler(s: &mut Settings<'_>) -> SchedulerConfig {
    let policy: String = s.value("scheduler.policy", "strict".to_owned());
    let policy = match policy.as_str() {
        "strict" => PriorityPolicy::Strict,
        "backfill" => PriorityPolicy::Backfill,
        other => {
            s.invalid(
                "scheduler.policy",
                format!("= {other:?} is invalid: use \"strict\" or \"backfill\""),
            );
            PriorityPolicy::Strict
        }
    };
    let placement: String = s.value("scheduler.placement", "binpack".to_owned());
    let placement = match placement.as_str() {
        "binpack" => crate::scheduler::Strategy::Binpack,
        "spread" => crate::scheduler::Strategy::Spread,
        other => {
            s.invalid(
                "scheduler.placement",
                format!("= {other:?} is invalid: use \"binpack\" or \"spread\""),
            );
            crate::scheduler::Strategy::Binpack
        }
    };
    let config = SchedulerConfig {
        enabled: s.value("scheduler.enabled", false),
        queues: s.value("scheduler.queues", Vec::new()),
        dead_letter_queue: s.value("scheduler.dead_letter_queue", String::new()),
        policy,
        placement,
        interval: s.value("scheduler.interval", Duration::from_secs(1)),
        wait_time: s.value("scheduler.wait_time", Duration::from_secs(1)),
        visibility_timeout: s.value("scheduler.visibility_timeout", Duration::from_secs(120)),
        reservation_ttl: s.value("scheduler.reservation_ttl", Duration::from_secs(60)),
        max_receives: s.value("scheduler.max_receives", 5),
        task_definition_ttl: s.value("scheduler.task_definition_ttl", Duration::from_secs(300)),
        stuck_after: s.value("scheduler.stuck_after", Duration::from_secs(300)),
        pass_timeout: s.value("scheduler.pass_timeout", Duration::from_secs(45)),
        backoff_max: s.value("scheduler.backoff_max", Duration::from_secs(2)),
    };
    validate_scheduler(s, &config);
    config
}

fn validate_scheduler(s: &mut Settings<'_>, config: &SchedulerConfig) {
    if config.enabled && config.queues.is_empty() {
        s.invalid(
            "scheduler.queues",
            "is empty: list the SQS queue URLs, highest priority first",
        );
    }
    if config.enabled && config.dead_letter_queue.is_empty() {
        s.invalid(
            "scheduler.dead_letter_queue",
            "is missing: set the SQS queue URL for rejected requests",
        );
    }
    for url in config
        .queues
        .iter()
        .chain(Some(&config.dead_letter_queue).filter(|u| !u.is_empty()))
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            s.invalid(
                "scheduler.queues",
                format!("contains {url:?}, which is not an SQS queue URL (https://...)"),
            );
        }
    }
    if config.wait_time > Duration::from_secs(20) {
        s.invalid(
            "scheduler.wait_time",
            "must be at most 20s, the SQS long-polling limit",
        );
    }
    if config.visibility_timeout < config.pass_timeout * 2
        || config.visibility_timeout > Duration::from_secs(43_200)
    {
        s.invalid(
            "scheduler.visibility_timeout",
            format!(
                "is {}, but must be at least twice scheduler.pass_timeout ({}), because held messages are renewed once per pass, and at most 12h",
                humantime::format_duration(config.visibility_timeout),
                humantime::format_duration(config.pass_timeout),
            ),
        );
    }
    if config.reservation_ttl < Duration::from_secs(1) {
        s.invalid("scheduler.reservation_ttl", "must be at least 1s");
    }
    if config.max_receives == 0 {
        s.invalid("scheduler.max_receives", "must be at least 1");
    }
    if config.interval.is_zero() || config.pass_timeout.is_zero() || config.backoff_max.is_zero() {
        s.invalid(
            "scheduler.interval",
            "scheduler.interval, pass_timeout and backoff_max must be above zero",
        );
    }
}
