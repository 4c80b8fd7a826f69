//! The capacity cache in Redis: one atomic write per cluster, and reads.
//!
//! # Keys
//! Seed-compatible (no prefix, read by existing consumers; `redis.seed_keys`):
//! - `{cluster_arn}:instance:{instance_arn}`: hash with `status active_tasks
//!   registered_cpu registered_memory remaining_cpu remaining_memory`, for
//!   every registered instance whatever its status;
//! - `{cluster_arn}:remaining_cpu`, `{cluster_arn}:remaining_memory`: sums
//!   over schedulable instances (ACTIVE with a connected agent).
//!
//! tend's own, under the configured prefix `P`:
//! - `P:ecs:clusters`: set of cached cluster ARNs;
//! - `P:ecs:cluster:{cluster_arn}`: hash with the figures of [`Summary`],
//!   `observed_at_ms`, a write `generation`, and `instances` (JSON array);
//! - `P:ecs:cluster:{cluster_arn}:instances`: set of instance ARNs, so a
//!   write can delete the seed hashes of deregistered instances;
//! - `P:ecs:cluster:{cluster_arn}:free`: hash of schedulable instance ARN to
//!   `remaining_cpu|remaining_memory`, which the scheduler's reservation
//!   script reads without decoding the whole cluster.
//!
//! # Guarantees
//! A cluster is written by one Lua script: readers see the whole previous
//! snapshot or the whole new one, never half, even if tend dies mid-write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{RedisError, Script};

use super::model::{Cluster, Instance, Summary};
use crate::redis_client::Redis;

/// Writes one cluster snapshot; see the module documentation for the keys.
/// Returns the new generation, -1 when an expected generation (ARGV[3]) is
/// given and differs from the stored one (someone wrote in between), or -2
/// when a fencing token (ARGV[8]) is given and is not the current lease
/// holder's (KEYS[7]): the writer lost its lease.
const WRITE_CLUSTER: &str = r"
local current = tonumber(redis.call('HGET', KEYS[2], 'generation') or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  return -1
end
if ARGV[8] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[8] then
  return -2
end
local seed = ARGV[2] == '1'
local prefix = ARGV[4]
local rows = cjson.decode(ARGV[5])
local keep = {}
for _, row in ipairs(rows) do keep[row[1]] = true end
for _, arn in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not keep[arn] or not seed then redis.call('DEL', prefix .. arn) end
end
redis.call('DEL', KEYS[3], KEYS[6])
for _, row in ipairs(rows) do
  redis.call('SADD', KEYS[3], row[1])
  if row[8] == 1 then
    redis.call('HSET', KEYS[6], row[1], row[6] .. '|' .. row[7])
  end
  if seed then
    local key = prefix .. row[1]
    redis.call('DEL', key)
    redis.call('HSET', key, 'status', row[2], 'active_tasks', row[3],
      'registered_cpu', row[4], 'registered_memory', row[5],
      'remaining_cpu', row[6], 'remaining_memory', row[7])
  end
end
if seed then
  redis.call('SET', KEYS[4], ARGV[6])
  redis.call('SET', KEYS[5], ARGV[7])
else
  redis.call('DEL', KEYS[4], KEYS[5])
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'generation', current + 1, unpack(ARGV, 9))
redis.call('SADD', KEYS[1], ARGV[1])
return current + 1
";

/// Removes a cluster and all its keys.
const REMOVE_CLUSTER: &str = r"
for _, arn in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[2] .. arn)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
";

/// A cluster as read back from the cache.
#[derive(Debug, Clone)]
pub struct CachedCluster {
    pub cluster: Cluster,
    pub summary: Summary,
    pub observed_at: SystemTime,
    pub generation: u64,
}

impl CachedCluster {
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.observed_at).unwrap_or_default()
    }

    /// The schedulable instance with the least remaining memory that still
    /// fits `cpu` and `memory`, then the least CPU; `None` when no single
    /// instance fits, whatever the cluster's sums say.
    pub fn best_fit(&self, cpu: i64, memory: i64) -> Option<&Instance> {
        self.cluster
            .instances
            .iter()
            .filter(|i| i.fits(cpu, memory))
            .min_by_key(|i| (i.remaining_memory, i.remaining_cpu))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Redis command failed")]
    Redis(#[from] RedisError),
    #[error("cache write refused: this replica no longer holds the ecs-capacity lease")]
    Fenced,
    #[error(
        "cached entry for cluster {cluster} is corrupt: {reason}; the next refresh rewrites it"
    )]
    Corrupt { cluster: String, reason: String },
}

/// Outcome of applying a single-instance update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceUpdate {
    Applied,
    /// The cache already contains this version or a newer one.
    IgnoredOlder,
    /// The cluster or the instance is not cached; the next refresh adds it.
    IgnoredUnknown,
}

#[derive(Clone)]
pub struct CapacityCache {
    redis: Redis,
    seed_keys: bool,
    /// Lease token key and this replica's token, when writes are fenced.
    fence: Option<(String, Arc<AtomicU64>)>,
    write: Script,
    remove: Script,
}

impl CapacityCache {
    pub fn new(redis: Redis, seed_keys: bool) -> Self {
        Self {
            redis,
            seed_keys,
            fence: None,
            write: Script::new(WRITE_CLUSTER),
            remove: Script::new(REMOVE_CLUSTER),
        }
    }

    /// Refuses writes unless `token` is the lease holder's token stored at
    /// `token_key` (a replica that lost its lease cannot overwrite the new
    /// holder's data).
    pub fn fenced(mut self, token_key: String, token: Arc<AtomicU64>) -> Self {
        self.fence = Some((token_key, token));
        self
    }

    fn index_key(&self) -> String {
        format!("{}:ecs:clusters", self.redis.prefix())
    }

    fn cluster_key(&self, arn: &str) -> String {
        format!("{}:ecs:cluster:{arn}", self.redis.prefix())
    }

    /// Returns the six fixed keys of a cluster, in the order both scripts use.
    fn cluster_keys(&self, arn: &str) -> [String; 6] {
        [
            self.index_key(),
            self.cluster_key(arn),
            format!("{}:ecs:cluster:{arn}:instances", self.redis.prefix()),
            format!("{arn}:remaining_cpu"),
            format!("{arn}:remaining_memory"),
            free_key(self.redis.prefix(), arn),
        ]
    }

    /// Replaces the cached snapshot of `cluster` in one round trip.
    pub async fn write(
        &self,
        cluster: &Cluster,
        observed_at: SystemTime,
    ) -> Result<u64, CacheError> {
        let generation = self.write_if(cluster, observed_at, None).await?;
        // Unconditional writes never conflict.
        Ok(generation.unwrap_or_default())
    }

    /// Writes `cluster` only if the stored generation is still `expected`
    /// (when given); `None` on conflict.
    async fn write_if(
        &self,
        cluster: &Cluster,
        observed_at: SystemTime,
        expected: Option<u64>,
    ) -> Result<Option<u64>, CacheError> {
        let summary = cluster.summary();
        let rows: Vec<serde_json::Value> = cluster
            .instances
            .iter()
            .map(|i| {
                serde_json::json!([
                    i.arn,
                    i.status,
                    i.active_tasks,
                    i.registered_cpu,
                    i.registered_memory,
                    i.remaining_cpu,
                    i.remaining_memory,
                    u8::from(i.schedulable()),
                ])
            })
            .collect();
        let mut invocation = self.write.prepare_invoke();
        for key in self.cluster_keys(&cluster.arn) {
            invocation.key(key);
        }
        invocation
            .arg(&cluster.arn)
            .arg(if self.seed_keys { "1" } else { "0" })
            .arg(expected.map(|g| g.to_string()).unwrap_or_default())
            .arg(format!("{}:instance:", cluster.arn))
            .arg(serde_json::to_string(&rows).unwrap_or_default())
            .arg(summary.free_cpu)
            .arg(summary.free_memory);
        match &self.fence {
            Some((key, token)) => invocation
                .key(key)
                .arg(token.load(Ordering::Relaxed).to_string()),
            None => invocation
                .key(format!("{}:lease:unfenced", self.redis.prefix()))
                .arg(""),
        };
        for (field, value) in hash_fields(cluster, &summary, observed_at) {
            invocation.arg(field).arg(value);
        }
        let generation: i64 = self
            .redis
            .run(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        if generation == -2 {
            return Err(CacheError::Fenced);
        }
        Ok(u64::try_from(generation).ok())
    }

    /// Deletes every key of the cluster with ARN `arn`.
    pub async fn remove(&self, arn: &str) -> Result<(), CacheError> {
        let mut invocation = self.remove.prepare_invoke();
        for key in self.cluster_keys(arn) {
            invocation.key(key);
        }
        invocation.arg(arn).arg(format!("{arn}:instance:"));
        let _: i64 = self
            .redis
            .run(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        Ok(())
    }

    /// ARNs of every cached cluster.
    pub async fn cluster_arns(&self) -> Result<Vec<String>, CacheError> {
        let mut arns: Vec<String> = self
            .redis
            .query(redis::cmd("SMEMBERS").arg(self.index_key()))
            .await?;
        arns.sort();
        Ok(arns)
    }

    /// Reads one cluster in one round trip; `None` when it is not cached.
    pub async fn read(&self, arn: &str) -> Result<Option<CachedCluster>, CacheError> {
        let fields: Vec<(String, String)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.cluster_key(arn)))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_cluster(arn, fields).map(Some)
    }

    /// Applies one instance's newer state (from an event or a targeted
    /// refresh) unless the cache already holds that version or a newer one.
    /// A full refresh still overwrites everything.
    pub async fn apply_instance(
        &self,
        cluster_arn: &str,
        update: Instance,
    ) -> Result<InstanceUpdate, CacheError> {
        // A concurrent full write bumps the generation; re-read and retry.
        for _ in 0..3 {
            let Some(mut cached) = self.read(cluster_arn).await? else {
                return Ok(InstanceUpdate::IgnoredUnknown);
            };
            let Some(current) = cached
                .cluster
                .instances
                .iter()
                .find(|i| i.arn == update.arn)
            else {
                return Ok(InstanceUpdate::IgnoredUnknown);
            };
            if current.version >= update.version {
                return Ok(InstanceUpdate::IgnoredOlder);
            }
            cached.cluster.apply_newer(update.clone());
            let written = self
                .write_if(&cached.cluster, cached.observed_at, Some(cached.generation))
                .await?;
            if written.is_some() {
                return Ok(InstanceUpdate::Applied);
            }
        }
        // Three writers in a row beat this update: the data it carried is at
        // most as new as theirs, which came from full refreshes.
        Ok(InstanceUpdate::IgnoredOlder)
    }
}

/// Key of the hash of free capacity per schedulable instance.
pub fn free_key(prefix: &str, cluster_arn: &str) -> String {
    format!("{prefix}:ecs:cluster:{cluster_arn}:free")
}

fn hash_fields(
    cluster: &Cluster,
    summary: &Summary,
    observed_at: SystemTime,
) -> Vec<(String, String)> {
    let observed_ms = observed_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut fields = vec![
        ("name".to_owned(), cluster.name.clone()),
        ("status".to_owned(), cluster.status.clone()),
        ("observed_at_ms".to_owned(), observed_ms.to_string()),
        (
            "running_tasks".to_owned(),
            cluster.running_tasks.to_string(),
        ),
        (
            "pending_tasks".to_owned(),
            cluster.pending_tasks.to_string(),
        ),
        (
            "fargate_only".to_owned(),
            u8::from(summary.fargate_only).to_string(),
        ),
        ("free_cpu".to_owned(), summary.free_cpu.to_string()),
        ("free_memory".to_owned(), summary.free_memory.to_string()),
        (
            "largest_free_cpu".to_owned(),
            summary.largest_free_cpu.to_string(),
        ),
        (
            "largest_free_memory".to_owned(),
            summary.largest_free_memory.to_string(),
        ),
        (
            "largest_registered_cpu".to_owned(),
            summary.largest_registered_cpu.to_string(),
        ),
        (
            "largest_registered_memory".to_owned(),
            summary.largest_registered_memory.to_string(),
        ),
        (
            "instances_total".to_owned(),
            summary.instances_total.to_string(),
        ),
        (
            "schedulable_instances".to_owned(),
            summary.schedulable_instances.to_string(),
        ),
        (
            "disconnected_instances".to_owned(),
            summary.disconnected_instances.to_string(),
        ),
        (
            "instances".to_owned(),
            serde_json::to_string(&cluster.instances).unwrap_or_default(),
        ),
    ];
    for (status, count) in &summary.instances_by_status {
        fields.push((format!("instances_status:{status}"), count.to_string()));
    }
    fields
}

fn parse_cluster(arn: &str, fields: Vec<(String, String)>) -> Result<CachedCluster, CacheError> {
    let map: std::collections::HashMap<String, String> = fields.into_iter().collect();
    let corrupt = |reason: &str| CacheError::Corrupt {
        cluster: arn.to_owned(),
        reason: reason.to_owned(),
    };
    let number = |field: &str| -> Result<i64, CacheError> {
        map.get(field)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(&format!("field {field} missing or not a number")))
    };
    let instances: Vec<Instance> =
        serde_json::from_str(map.get("instances").map_or("", String::as_str))
            .map_err(|error| corrupt(&format!("field instances: {error}")))?;
    let cluster = Cluster {
        arn: arn.to_owned(),
        name: map.get("name").cloned().unwrap_or_default(),
        status: map.get("status").cloned().unwrap_or_default(),
        running_tasks: number("running_tasks")?,
        pending_tasks: number("pending_tasks")?,
        instances,
    };
    let observed_ms = u64::try_from(number("observed_at_ms")?).unwrap_or_default();
    Ok(CachedCluster {
        summary: cluster.summary(),
        cluster,
        observed_at: UNIX_EPOCH + Duration::from_millis(observed_ms),
        generation: u64::try_from(number("generation")?).unwrap_or_default(),
    })
}
