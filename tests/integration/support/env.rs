//! Redis and moto for tests: the shared Redis on 127.0.0.1:6379 with a
//! prefix per test, a private Redis where a test needs special settings, and
//! the moto server that `testbed/test.sh` starts.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tend::config::{RedisConfig, RedisUrl};
use tend::redis_client::Redis;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Redis settings with a unique key prefix.
pub fn redis_config(url: &str) -> RedisConfig {
    RedisConfig {
        url: RedisUrl::new(url),
        key_prefix: super::unique("tendtest"),
        seed_keys: true,
        timeout: Duration::from_secs(2),
    }
}

/// A client of the shared Redis with a unique prefix.
pub fn shared_redis() -> Redis {
    Redis::new(&redis_config(REDIS_URL)).expect("valid Redis URL")
}

/// Endpoint of the moto server started by `testbed/test.sh`.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(
        "MOTO_ENDPOINT is not set: run the suite with testbed/test.sh, which starts moto, \
         or start moto_server yourself and export MOTO_ENDPOINT=http://127.0.0.1:PORT",
    )
}

/// A free TCP port on 127.0.0.1 (free when probed; tests bind it soon after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A private redis-server with extra arguments, stopped on drop.
pub struct PrivateRedis {
    pub port: u16,
    extra: Vec<String>,
    child: Child,
}

impl PrivateRedis {
    pub fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(port, &extra);
        Self { port, extra, child }
    }

    /// Starts the server again on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port, &self.extra);
    }

    fn spawn(port: u16, extra: &[String]) -> Child {
        let mut child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        wait_for_port(port, || {
            let status = child.try_wait().expect("wait works")?;
            Some(format!(
                "redis-server exited with {status} before listening"
            ))
        });
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server, keeping the port number for a later restart.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something listens on `port`, at most 15 s. Panics early
/// with the message `exited` returns, once the process has exited.
pub fn wait_for_port(port: u16, mut exited: impl FnMut() -> Option<String>) {
    // Generous: a loaded two-core machine can take seconds to start tend.
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(message) = exited() {
            panic!("{message}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 15 s");
}

/// Deletes every key matching `pattern` in the shared Redis.
pub fn delete_keys(pattern: &str) {
    let client = redis::Client::open(REDIS_URL).expect("valid URL");
    let mut connection = client.get_connection().expect("Redis on 127.0.0.1:6379");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut connection)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query(&mut connection)
            .unwrap_or(());
    }
}
