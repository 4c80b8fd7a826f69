//! Leader lease in Redis for loops that must have a single writer.
//!
//! `P:lease:{loop}` holds the holder's id with a time to live; the holder
//! renews it while it works. Each new holder gets a fencing token from
//! `P:lease:{loop}:fence` (a counter), stored in `P:lease:{loop}:token`:
//! a write that carries an older token than the stored one comes from a
//! replica that lost the lease and is refused.
//!
//! # Guarantees
//! At most one replica holds a loop's lease at any time, as long as Redis
//! does not lose the key (a failover to a replica that missed the last
//! write can hand the lease out twice; fencing then refuses the older
//! holder's cache writes). A holder that dies or loses Redis is replaced
//! within one time to live.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;
use redis::{RedisError, Script};
use serde_json::json;
use tracing::{info, warn};

use super::{CancellationToken, Outcome, Reconciler};
use crate::redis_client::Redis;

/// Takes or renews the lease KEYS[1] for holder ARGV[1] for ARGV[2] ms.
/// Returns the holder's fencing token, or 0 when another replica holds it.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[3]) or '0')
end
if holder then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], token)
return token
";

/// Deletes the lease KEYS[1] if ARGV[1] still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

#[derive(Clone)]
pub struct Lease {
    redis: Redis,
    name: &'static str,
    holder: String,
    ttl: Duration,
    acquire: Script,
    release: Script,
    /// The fencing token of the current holding, 0 when not held.
    token: Arc<AtomicU64>,
}

impl Lease {
    pub fn new(redis: Redis, name: &'static str, holder: String, ttl: Duration) -> Self {
        Self {
            redis,
            name,
            holder,
            ttl,
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            token: Arc::default(),
        }
    }

    fn key(&self) -> String {
        format!("{}:lease:{}", self.redis.prefix(), self.name)
    }

    /// Key of the current holder's fencing token, for fenced writes.
    pub fn token_key(&self) -> String {
        format!("{}:token", self.key())
    }

    /// Fencing token of the current holding; 0 when not the holder.
    pub fn token(&self) -> u64 {
        self.token.load(Ordering::Relaxed)
    }

    /// Shared handle on the fencing token, for fenced writes.
    pub fn token_handle(&self) -> Arc<AtomicU64> {
        self.token.clone()
    }

    /// Takes or renews the lease; returns whether this replica holds it.
    pub async fn acquire(&self) -> Result<bool, RedisError> {
        let mut invocation = self.acquire.prepare_invoke();
        invocation
            .key(self.key())
            .key(format!("{}:fence", self.key()))
            .key(self.token_key())
            .arg(&self.holder)
            .arg(self.ttl.as_millis() as u64);
        let token: u64 = self
            .redis
            .run(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        let previous = self.token.swap(token, Ordering::Relaxed);
        if token != 0 && previous != token {
            info!(loop = self.name, holder = %self.holder, fencing_token = token, "lease acquired");
        }
        Ok(token != 0)
    }

    /// Gives the lease up at once, so another replica takes over without
    /// waiting for the time to live.
    pub async fn release(&self) {
        self.token.store(0, Ordering::Relaxed);
        let mut invocation = self.release.prepare_invoke();
        invocation.key(self.key()).arg(&self.holder);
        let released: Result<i64, _> = self
            .redis
            .run(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await;
        if let Err(error) = released {
            warn!(loop = self.name, %error, "releasing the lease failed; it expires by itself");
        }
    }
}

/// Runs `inner` only while this replica holds its loop's lease, renewing
/// the lease during the pass. A pass whose lease is lost is stopped at
/// its next await, which every loop tolerates (writes are safe to repeat).
///
/// The lease is renewed between passes too: the wrapper runs every third
/// of the time to live and runs `inner` only when its own schedule (its
/// requeue delay, or `interval`) says so.
pub struct Leased<R> {
    inner: R,
    lease: Lease,
    leader: IntGaugeVec,
    interval: Duration,
    /// When `inner` runs next; `None` runs it at once.
    next_run: Mutex<Option<Instant>>,
    /// Wait up to twice the time to live for the lease instead of standing
    /// by, for single passes from the command line.
    wait_for_lease: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum LeasedError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Inner(E),
    #[error("lease for loop {0} could not be checked in Redis")]
    Redis(&'static str, #[source] RedisError),
    #[error("lease for loop {0} was lost during the pass; another replica takes over")]
    Lost(&'static str),
    #[error(
        "another replica holds the lease for loop {0}; stop it or wait for its lease to expire"
    )]
    HeldElsewhere(&'static str),
}

impl<R: Reconciler> Leased<R> {
    pub fn new(inner: R, lease: Lease, leader: IntGaugeVec, interval: Duration) -> Self {
        leader.with_label_values(&[inner.name()]).set(0);
        Self {
            inner,
            lease,
            leader,
            interval,
            next_run: Mutex::new(None),
            wait_for_lease: AtomicBool::new(false),
        }
    }

    /// Makes a pass wait for the lease (up to twice its time to live) and
    /// fail if another replica keeps it, instead of standing by.
    pub fn set_wait_for_lease(&self) {
        self.wait_for_lease.store(true, Ordering::Relaxed);
    }

    async fn acquire_or_wait(&self) -> Result<bool, LeasedError<R::Error>> {
        let name = self.inner.name();
        let deadline = Instant::now() + self.lease.ttl * 2;
        loop {
            let held = self
                .lease
                .acquire()
                .await
                .map_err(|error| LeasedError::Redis(name, error))?;
            if held || !self.wait_for_lease.load(Ordering::Relaxed) {
                return Ok(held);
            }
            if Instant::now() >= deadline {
                return Err(LeasedError::HeldElsewhere(name));
            }
            tokio::time::sleep(self.lease.ttl / 10).await;
        }
    }

    fn next_run(&self) -> MutexGuard<'_, Option<Instant>> {
        self.next_run.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Renews the lease every third of its time to live; returns when a
    /// renewal fails or finds the lease held by another replica.
    async fn keep_renewed(&self) {
        loop {
            tokio::time::sleep(self.lease.ttl / 3).await;
            match self.lease.acquire().await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    }
}

impl<R: Reconciler> Reconciler for Leased<R> {
    type Error = LeasedError<R::Error>;

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn reconcile(&self, shutdown: &CancellationToken) -> Result<Outcome, Self::Error> {
        let name = self.inner.name();
        let renew_every = self.lease.ttl / 3;
        let held = self.acquire_or_wait().await?;
        self.leader.with_label_values(&[name]).set(i64::from(held));
        if !held {
            // Standby: the holder may die; try again within its time to live.
            *self.next_run() = None;
            return Ok(Outcome {
                requeue_after: Some(renew_every),
                summary: json!({ "leader": false }),
            });
        }
        if let Some(due) = *self.next_run() {
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                return Ok(Outcome {
                    requeue_after: Some(wait.min(renew_every)),
                    summary: json!({ "leader": true }),
                });
            }
        }
        let outcome = tokio::select! {
            result = self.inner.reconcile(shutdown) => result.map_err(LeasedError::Inner)?,
            () = self.keep_renewed() => {
                self.leader.with_label_values(&[name]).set(0);
                return Err(LeasedError::Lost(name));
            }
        };
        let delay = outcome.requeue_after.unwrap_or(self.interval);
        *self.next_run() = Some(Instant::now() + delay);
        Ok(Outcome {
            requeue_after: Some(delay.min(renew_every)),
            summary: outcome.summary,
        })
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
        self.lease.release().await;
        self.leader.with_label_values(&[self.inner.name()]).set(0);
    }
}
