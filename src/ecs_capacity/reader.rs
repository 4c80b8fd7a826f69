//! Answers "does this task fit right now?" from the cache, with one Redis
//! read per cluster given by ARN, instead of four ECS API calls.
//!
//! A task fits when a single schedulable instance has both the CPU and the
//! memory free: the cluster's sums can hide fragmentation (five instances
//! with 100 MiB free each cannot run a 200 MiB task). Entries older than
//! the configured maximum age are refused rather than trusted.

use std::time::{Duration, SystemTime};

use super::cache::{CacheError, CachedCluster, CapacityCache};
use super::model::Instance;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(
        "cluster {cluster} is not in the capacity cache; check the name, or whether the ecs-capacity loop tracks it"
    )]
    NotCached { cluster: String },
    #[error(
        "capacity cache for cluster {cluster} is {}s old, older than the maximum age of {}s; \
         check that the ecs-capacity loop is running",
        age.as_secs(),
        max_age.as_secs()
    )]
    Stale {
        cluster: String,
        age: Duration,
        max_age: Duration,
    },
}

#[derive(Clone)]
pub struct CapacityReader {
    cache: CapacityCache,
    max_age: Duration,
}

impl CapacityReader {
    pub fn new(cache: CapacityCache, max_age: Duration) -> Self {
        Self { cache, max_age }
    }

    /// Reads one cluster by name or ARN, refusing a stale entry.
    pub async fn cluster(&self, name_or_arn: &str) -> Result<CachedCluster, ReadError> {
        let arn = if name_or_arn.starts_with("arn:") {
            name_or_arn.to_owned()
        } else {
            let suffix = format!(":cluster/{name_or_arn}");
            let arns = self.cache.cluster_arns().await?;
            arns.into_iter()
                .find(|arn| arn.ends_with(&suffix))
                .ok_or_else(|| ReadError::NotCached {
                    cluster: name_or_arn.to_owned(),
                })?
        };
        let cached = self
            .cache
            .read(&arn)
            .await?
            .ok_or_else(|| ReadError::NotCached {
                cluster: name_or_arn.to_owned(),
            })?;
        self.check_fresh(cached)
    }

    /// Reads every cached cluster, refusing if any entry is stale.
    pub async fn all(&self) -> Result<Vec<CachedCluster>, ReadError> {
        let mut clusters = Vec::new();
        for arn in self.cache.cluster_arns().await? {
            // A cluster removed between the two reads is simply skipped.
            if let Some(cached) = self.cache.read(&arn).await? {
                clusters.push(self.check_fresh(cached)?);
            }
        }
        Ok(clusters)
    }

    /// Returns the instance a task of `cpu` units and `memory` MiB would go
    /// to in `cluster` (best fit), or `None` when no single instance fits.
    pub async fn fits(
        &self,
        cluster: &str,
        cpu: i64,
        memory: i64,
    ) -> Result<Option<Instance>, ReadError> {
        let cached = self.cluster(cluster).await?;
        Ok(cached.best_fit(cpu, memory).cloned())
    }

    fn check_fresh(&self, cached: CachedCluster) -> Result<CachedCluster, ReadError> {
        let age = cached.age(SystemTime::now());
        if age > self.max_age {
            return Err(ReadError::Stale {
                cluster: cached.cluster.name.clone(),
                age,
                max_age: self.max_age,
            });
        }
        Ok(cached)
    }
}
