//! Capacity reservations in Redis, shared by every scheduler replica.
//!
//! A replica reserves CPU and memory on an instance before it calls RunTask
//! and releases the reservation once the cache shows the task (or ECS
//! rejected it). The reserve script checks the cached free capacity minus
//! all live reservations on that instance and adds its own in one atomic
//! step, so two replicas can never both take the last room on an instance.
//! A reservation expires after its time to live, so a replica that dies
//! mid-launch blocks capacity only that long.
//!
//! Key: `P:sched:reservations:{cluster_arn}`, a hash of reservation token to
//! `instance_arn|cpu|memory|expires_at_ms`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{RedisError, Script};

use super::placement::Reserved;
use crate::ecs_capacity::cache::free_key;
use crate::redis_client::Redis;

/// Reserves ARGV[2] CPU and ARGV[3] MiB on instance ARGV[1] under token
/// ARGV[4] until ARGV[5] (ms). Returns 1 when reserved (or already held by
/// this token), 0 when the instance lacks room or is not schedulable.
const RESERVE: &str = r"
local free = redis.call('HGET', KEYS[1], ARGV[1])
if not free then return 0 end
local cpu, memory = string.match(free, '^(-?%d+)|(-?%d+)$')
cpu, memory = tonumber(cpu), tonumber(memory)
local now = tonumber(ARGV[6])
local entries = redis.call('HGETALL', KEYS[2])
for k = 1, #entries, 2 do
  local token, value = entries[k], entries[k + 1]
  local instance, rc, rm, expires = string.match(value, '^(.*)|(%d+)|(%d+)|(%d+)$')
  if not expires or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[2], token)
  elseif token == ARGV[4] then
    return 1
  elseif instance == ARGV[1] then
    cpu = cpu - tonumber(rc)
    memory = memory - tonumber(rm)
  end
end
if cpu < tonumber(ARGV[2]) or memory < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[5])
redis.call('PEXPIREAT', KEYS[2], ARGV[5])
return 1
";

#[derive(Clone)]
pub struct Reservations {
    redis: Redis,
    ttl: Duration,
    reserve: Script,
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Reservations {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self {
            redis,
            ttl,
            reserve: Script::new(RESERVE),
        }
    }

    fn key(&self, cluster_arn: &str) -> String {
        format!("{}:sched:reservations:{cluster_arn}", self.redis.prefix())
    }

    /// Reserves `cpu` units and `memory` MiB on `instance_arn`; false when
    /// another reservation or a newer cache write left too little room.
    pub async fn reserve(
        &self,
        cluster_arn: &str,
        instance_arn: &str,
        token: &str,
        cpu: i64,
        memory: i64,
    ) -> Result<bool, RedisError> {
        let now = SystemTime::now();
        let mut invocation = self.reserve.prepare_invoke();
        invocation
            .key(free_key(self.redis.prefix(), cluster_arn))
            .key(self.key(cluster_arn))
            .arg(instance_arn)
            .arg(cpu)
            .arg(memory)
            .arg(token)
            .arg(unix_ms(now + self.ttl))
            .arg(unix_ms(now));
        let reserved: i64 = self
            .redis
            .run(|mut connection| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        Ok(reserved == 1)
    }

    /// Releases the reservation `token`; releasing twice is harmless.
    pub async fn release(&self, cluster_arn: &str, token: &str) -> Result<(), RedisError> {
        let _: i64 = self
            .redis
            .query(redis::cmd("HDEL").arg(self.key(cluster_arn)).arg(token))
            .await?;
        Ok(())
    }

    /// Live reservations of a cluster, summed per instance.
    pub async fn reserved(&self, cluster_arn: &str) -> Result<Reserved, RedisError> {
        let entries: Vec<(String, String)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.key(cluster_arn)))
            .await?;
        let now = unix_ms(SystemTime::now());
        let mut reserved = Reserved::default();
        for (_, value) in entries {
            let mut parts = value.rsplitn(4, '|');
            let (Some(expires), Some(memory), Some(cpu), Some(instance)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(expires), Ok(memory), Ok(cpu)) = (
                expires.parse::<u64>(),
                memory.parse::<i64>(),
                cpu.parse::<i64>(),
            ) else {
                continue;
            };
            if expires > now {
                let entry = reserved.entry(instance.to_owned()).or_insert((0, 0));
                entry.0 += cpu;
                entry.1 += memory;
            }
        }
        Ok(reserved)
    }
}
