//! Runs reconcilers: one task per loop, scheduled passes, backoff, status.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{LoopMetrics, LoopState, Outcome, Reconciler, StatusBoard, error_chain};
use crate::metrics::unix_now;

/// When one loop runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    /// Fraction of the interval added or removed at random.
    pub jitter: f64,
    pub pass_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Schedule {
    fn next_interval(&self) -> Duration {
        let spread = (fastrand::f64() * 2.0 - 1.0) * self.jitter;
        self.interval.mul_f64((1.0 + spread).max(0.0))
    }

    /// Delays after consecutive failures, doubling from `backoff_initial`
    /// and never above `backoff_max`. backon's jitter adds up to the current
    /// delay again, so the doubling stops at half of `backoff_max`.
    fn backoff(&self) -> ExponentialBackoff {
        let cap = self.backoff_max / 2;
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_initial.min(cap))
            .with_max_delay(cap)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassFailure {
    #[error("{0}")]
    Failed(String),
    #[error("pass timed out after {0:?}")]
    TimedOut(Duration),
}

/// Starts loops and records their passes.
#[derive(Clone)]
pub struct Runner {
    board: StatusBoard,
    metrics: LoopMetrics,
}

impl Runner {
    pub fn new(board: StatusBoard, metrics: LoopMetrics) -> Self {
        Self { board, metrics }
    }

    /// Spawns `reconciler` on `tasks`; the task ends after `shutdown` is
    /// cancelled and the running pass, if any, has finished.
    pub fn spawn<R: Reconciler>(
        &self,
        tasks: &mut JoinSet<()>,
        reconciler: Arc<R>,
        schedule: Schedule,
        shutdown: CancellationToken,
    ) {
        let runner = self.clone();
        runner.prepare(reconciler.name(), &schedule);
        tasks.spawn(async move { runner.run_loop(reconciler, schedule, shutdown).await });
    }

    /// Registers a loop's status and metrics before its first pass.
    pub fn prepare(&self, name: &'static str, schedule: &Schedule) {
        self.board.register(name, schedule.pass_timeout);
        self.metrics.init_loop(name);
    }

    async fn run_loop<R: Reconciler>(
        self,
        reconciler: Arc<R>,
        schedule: Schedule,
        shutdown: CancellationToken,
    ) {
        let name = reconciler.name();
        let mut backoff: Option<ExponentialBackoff> = None;
        while !shutdown.is_cancelled() {
            let delay = match self
                .run_pass(reconciler.as_ref(), &schedule, &shutdown)
                .await
            {
                Ok(outcome) => {
                    backoff = None;
                    outcome
                        .requeue_after
                        .unwrap_or_else(|| schedule.next_interval())
                }
                Err(_) => backoff
                    .get_or_insert_with(|| schedule.backoff())
                    .next()
                    .unwrap_or(schedule.backoff_max),
            };
            // checked_add: a requeue delay too large for a timestamp shows
            // no next run instead of panicking.
            self.board.update(name, |status| {
                status.next_run_at = SystemTime::now().checked_add(delay)
            });
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        reconciler.shutdown().await;
        self.board.update(name, |status| {
            status.state = LoopState::Stopped;
            status.next_run_at = None;
        });
        info!(loop = name, "loop stopped");
    }

    /// Runs one pass with its timeout and records the result.
    pub async fn run_pass<R: Reconciler>(
        &self,
        reconciler: &R,
        schedule: &Schedule,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, PassFailure> {
        let name = reconciler.name();
        let started = Instant::now();
        self.board.update(name, |status| {
            status.state = LoopState::Running;
            status.running_since = Some(started);
        });
        let span = info_span!("reconcile", loop = name);
        let result = tokio::time::timeout(schedule.pass_timeout, reconciler.reconcile(shutdown))
            .instrument(span)
            .await;
        let result = match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(error)) => Err(PassFailure::Failed(error_chain(&error))),
            Err(_) => Err(PassFailure::TimedOut(schedule.pass_timeout)),
        };
        self.record(name, started.elapsed(), &result);
        result
    }

    fn record(&self, name: &'static str, elapsed: Duration, result: &Result<Outcome, PassFailure>) {
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics.passes.with_label_values(&[name, label]).inc();
        self.metrics
            .duration
            .with_label_values(&[name])
            .observe(elapsed.as_secs_f64());
        let mut failures = 0;
        self.board.update(name, |status| {
            status.state = LoopState::Idle;
            status.running_since = None;
            status.passes += 1;
            status.last_duration_seconds = Some(elapsed.as_secs_f64());
            status.last_result = Some(label);
            match result {
                Ok(outcome) => {
                    status.consecutive_failures = 0;
                    status.last_error = None;
                    status.last_success_at = Some(SystemTime::now());
                    status.summary = outcome.summary.clone();
                }
                Err(failure) => {
                    status.consecutive_failures += 1;
                    status.last_error = Some(failure.to_string());
                }
            }
            failures = status.consecutive_failures;
        });
        self.metrics
            .consecutive_failures
            .with_label_values(&[name])
            .set(i64::from(failures));
        match result {
            Ok(_) => {
                self.metrics
                    .last_success
                    .with_label_values(&[name])
                    .set(unix_now());
                debug!(loop = name, seconds = elapsed.as_secs_f64(), "pass succeeded");
            }
            Err(failure) => warn!(
                loop = name,
                consecutive_failures = failures,
                error = %failure,
                "pass failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("peer unavailable")]
    struct Unavailable;

    /// Fails its first `failures` passes, then succeeds.
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
    }

    impl Reconciler for Flaky {
        type Error = Unavailable;

        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn reconcile(&self, _shutdown: &CancellationToken) -> Result<Outcome, Unavailable> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call < self.failures {
                Err(Unavailable)
            } else {
                Ok(Outcome::default())
            }
        }
    }

    fn runner() -> (Runner, StatusBoard, prometheus::Registry) {
        let registry = prometheus::Registry::new();
        let board = StatusBoard::default();
        let metrics = LoopMetrics::register(&registry).unwrap();
        (Runner::new(board.clone(), metrics), board, registry)
    }

    fn schedule() -> Schedule {
        Schedule {
            interval: Duration::from_secs(60),
            jitter: 0.0,
            pass_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
        }
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        let delays: Vec<Duration> = schedule().backoff().take(200).collect();
        let max = Duration::from_secs(8);
        assert!(delays.iter().all(|delay| *delay <= max), "{delays:?}");
        // Jitter keeps going at the cap, between half of it and all of it.
        let late = &delays[10..];
        assert!(late.iter().all(|delay| *delay >= max / 2), "{late:?}");
        assert!(late.iter().any(|delay| *delay != late[0]), "{late:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_then_recover() {
        let (runner, board, _registry) = runner();
        let flaky = Arc::new(Flaky {
            failures: 3,
            calls: AtomicU32::new(0),
        });
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        runner.spawn(&mut tasks, flaky.clone(), schedule(), shutdown.clone());

        // Three failures back off by at most 2 + 4 + 8 seconds (1 s doubling
        // with jitter below twice the delay, never above 8 s), far less than
        // the 60 s interval.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
        let status = board.snapshot()["flaky"].clone();
        assert_eq!(status.consecutive_failures, 0);
        assert_eq!(status.last_result, Some("success"));
        assert_eq!(status.passes, 4);

        shutdown.cancel();
        tasks.join_next().await.unwrap().unwrap();
        assert_eq!(board.snapshot()["flaky"].state, LoopState::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pass_records_error_and_metrics() {
        let (runner, board, registry) = runner();
        let flaky = Flaky {
            failures: 1,
            calls: AtomicU32::new(0),
        };
        runner.prepare("flaky", &schedule());
        let result = runner
            .run_pass(&flaky, &schedule(), &CancellationToken::new())
            .await;
        assert!(matches!(result, Err(PassFailure::Failed(ref text)) if text == "peer unavailable"));
        let status = board.snapshot()["flaky"].clone();
        assert_eq!(status.consecutive_failures, 1);
        assert_eq!(status.last_error.as_deref(), Some("peer unavailable"));
        let text = crate::metrics::encode(&registry).unwrap();
        assert!(
            text.contains("tend_reconcile_passes_total{loop=\"flaky\",result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tend_reconcile_consecutive_failures{loop=\"flaky\"} 1"),
            "{text}"
        );
    }

    struct Slow;

    impl Reconciler for Slow {
        type Error = Unavailable;

        fn name(&self) -> &'static str {
            "slow"
        }

        async fn reconcile(&self, _shutdown: &CancellationToken) -> Result<Outcome, Unavailable> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Outcome::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pass_past_timeout_fails() {
        let (runner, _board, _registry) = runner();
        runner.prepare("slow", &schedule());
        let result = runner
            .run_pass(&Slow, &schedule(), &CancellationToken::new())
            .await;
        assert!(matches!(result, Err(PassFailure::TimedOut(_))));
    }
}
