//! Shared Redis connection with transparent reconnects.
//!
//! The connection manager reconnects in the background after the server
//! drops a connection (an idle `timeout` on the server, a failover), but
//! hands the triggering error to the caller. Every command tend sends is safe
//! to repeat (full snapshots, reads, scripts that check before they write),
//! so [`Redis::run`] retries a dropped connection twice, after 50 ms and
//! 100 ms, and the caller sees only a connection that stays down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError};

use crate::config::RedisConfig;

/// Pauses before the retries of a command whose connection was dropped.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(100)];

#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    /// Key prefix for tend's own keys.
    prefix: Arc<str>,
    round_trips: Arc<AtomicU64>,
}

impl Redis {
    /// Creates the client without connecting: the first command connects,
    /// so tend starts (and reports not ready) while Redis is down.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(config.url.expose())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, manager_config)?,
            prefix: Arc::from(config.key_prefix.as_str()),
            round_trips: Arc::default(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends a command, pipeline or script invocation prepared by `build`,
    /// retrying on a new connection when the connection was dropped.
    pub async fn run<T, F, Fut>(&self, build: F) -> Result<T, RedisError>
    where
        T: FromRedisValue,
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match build(self.connection.clone()).await {
                Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                    let Some(pause) = pauses.next() else {
                        return Err(error);
                    };
                    tracing::debug!(%error, "Redis connection dropped; retrying on a new connection");
                    tokio::time::sleep(*pause).await;
                }
                other => return other,
            }
        }
    }

    /// Sends one command.
    pub async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, RedisError> {
        self.run(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// Checks that Redis answers, for readiness.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let reply: String = self.query(&redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from((
                redis::ErrorKind::Client,
                "unexpected PING reply",
                reply,
            )))
        }
    }

    /// Commands and pipelines sent since start, retries included.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}
