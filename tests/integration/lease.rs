//! Leader lease: with three replicas, one writer at a time, and a fast
//! takeover when the holder dies; fenced cache writes from a former holder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tend::runtime::{
    CancellationToken, Lease, Leased, LoopMetrics, Outcome, Reconciler, Runner, Schedule,
    StatusBoard,
};
use tokio::task::JoinSet;

use crate::support::env::{delete_keys, shared_redis};
use crate::support::unique;

/// Counts passes per replica and the most passes ever running at once.
struct Writer {
    replica: usize,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    passes: Arc<[AtomicUsize; 3]>,
}

/// Marks the end of a pass when dropped, however the pass ends.
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

impl Reconciler for Writer {
    type Error = Never;

    fn name(&self) -> &'static str {
        "single-writer"
    }

    async fn reconcile(&self, _shutdown: &CancellationToken) -> Result<Outcome, Never> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        // A replica killed mid-pass still leaves the pass.
        let _leave = Leave(self.running.clone());
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.passes[self.replica].fetch_add(1, Ordering::SeqCst);
        Ok(Outcome {
            requeue_after: Some(Duration::from_millis(20)),
            summary: serde_json::Value::Null,
        })
    }
}

fn total(passes: &[AtomicUsize; 3]) -> [usize; 3] {
    [0, 1, 2].map(|i| passes[i].load(Ordering::SeqCst))
}

#[tokio::test]
async fn one_writer_and_fast_takeover() {
    let redis = shared_redis();
    let prefix = redis.prefix().to_owned();
    let ttl = Duration::from_secs(1);
    let running = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let passes: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let schedule = Schedule {
        interval: Duration::from_millis(20),
        jitter: 0.0,
        pass_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
    };
    let mut replicas = Vec::new();
    for replica in 0..3 {
        let registry = prometheus::Registry::new();
        let runner = Runner::new(
            StatusBoard::default(),
            LoopMetrics::register(&registry).unwrap(),
        );
        let leader =
            prometheus::IntGaugeVec::new(prometheus::Opts::new("leader", "leader"), &["loop"])
                .unwrap();
        let writer = Writer {
            replica,
            running: running.clone(),
            most_at_once: most_at_once.clone(),
            passes: passes.clone(),
        };
        let lease = Lease::new(
            redis.clone(),
            "single-writer",
            format!("replica-{replica}-{}", unique("r")),
            ttl,
        );
        let leased = Arc::new(Leased::new(writer, lease, leader, schedule.interval));
        let mut tasks = JoinSet::new();
        runner.spawn(&mut tasks, leased, schedule, CancellationToken::new());
        replicas.push(tasks);
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = total(&passes);
    let writers: Vec<usize> = (0..3).filter(|i| before[*i] > 0).collect();
    assert_eq!(writers.len(), 1, "exactly one replica wrote: {before:?}");
    assert_eq!(most_at_once.load(Ordering::SeqCst), 1);

    // The holder dies without releasing its lease.
    let holder = writers[0];
    replicas[holder].abort_all();
    let died = Instant::now();
    let takeover = loop {
        let now = total(&passes);
        if (0..3).any(|i| i != holder && now[i] > before[i]) {
            break died.elapsed();
        }
        assert!(
            died.elapsed() < ttl * 3,
            "no takeover after {:?}",
            died.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        takeover <= ttl + Duration::from_millis(700),
        "takeover took {takeover:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        most_at_once.load(Ordering::SeqCst),
        1,
        "never two writers at once"
    );
    let after = total(&passes);
    let new_writers = (0..3)
        .filter(|i| *i != holder && after[*i] > before[*i])
        .count();
    assert_eq!(new_writers, 1, "one new writer: {after:?}");
    for mut tasks in replicas {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    delete_keys(&format!("{prefix}:*"));
}

#[tokio::test]
async fn former_holder_cache_write_refused() {
    let redis = shared_redis();
    let prefix = redis.prefix().to_owned();
    let ttl = Duration::from_secs(1);
    let old = Lease::new(redis.clone(), "ecs-capacity", "old".into(), ttl);
    assert!(old.acquire().await.unwrap());
    let cache = tend::ecs_capacity::CapacityCache::new(redis.clone(), true)
        .fenced(old.token_key(), old.token_handle());
    let cluster = tend::ecs_capacity::Cluster {
        arn: format!(
            "arn:aws:ecs:us-east-1:123456789012:cluster/{}",
            unique("fenced")
        ),
        name: "fenced".into(),
        status: "ACTIVE".into(),
        running_tasks: 0,
        pending_tasks: 0,
        instances: Vec::new(),
    };
    cache
        .write(&cluster, std::time::SystemTime::now())
        .await
        .expect("holder writes");

    // The old holder stalls past its lease; a new replica takes over.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let new = Lease::new(redis.clone(), "ecs-capacity", "new".into(), ttl);
    assert!(new.acquire().await.unwrap());
    assert!(new.token() > old.token());
    let refused = cache.write(&cluster, std::time::SystemTime::now()).await;
    assert!(
        matches!(refused, Err(tend::ecs_capacity::CacheError::Fenced)),
        "{refused:?}"
    );
    delete_keys(&format!("{prefix}:*"));
    delete_keys(&format!("{}:*", cluster.arn));
}
