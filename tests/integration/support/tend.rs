//! Runs the `tend` binary as a user would, against test peers.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::env::{free_port, wait_for_port};

/// Environment for one `tend` process: dummy AWS credentials, a region, the
/// ECS endpoint and tend's own settings.
#[derive(Clone, Debug)]
pub struct TendEnv {
    pub vars: BTreeMap<String, String>,
}

impl TendEnv {
    pub fn new(ecs_endpoint: &str, redis_url: &str, key_prefix: &str) -> Self {
        let mut vars = BTreeMap::new();
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/tend-test-aws-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/tend-test-aws-credentials",
            ),
            ("AWS_ENDPOINT_URL_ECS", ecs_endpoint),
            ("TEND_REDIS_URL", redis_url),
            ("TEND_REDIS_KEY_PREFIX", key_prefix),
            ("TEND_LOG_LEVEL", "tend=debug,info"),
        ] {
            vars.insert(key.to_owned(), value.to_owned());
        }
        Self { vars }
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn remove(mut self, key: &str) -> Self {
        self.vars.remove(key);
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tend"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        command.envs(&self.vars);
        command
    }

    /// Runs a command to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("tend binary runs")
    }

    /// Starts `tend run` on a free port.
    pub fn spawn_run(&self) -> RunningTend {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temporary log file");
        let child = self
            .command(&["run"])
            .env("TEND_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file reopens"))
            .spawn()
            .expect("tend binary runs");
        let mut tend = RunningTend { port, child, log };
        tend.wait_listening();
        tend
    }
}

/// A `tend run` process, killed on drop.
pub struct RunningTend {
    pub port: u16,
    pub child: Child,
    /// tend's log, printed when the test fails.
    log: tempfile::NamedTempFile,
}

impl RunningTend {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GETs `path`; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(self.url(path))
            .await
            .expect("tend answers HTTP");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Polls `/readyz` until it returns 200.
    pub async fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let (status, body) = self.get("/readyz").await;
            if status == 200 {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "tend not ready after {limit:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status, at most `limit`.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "tend did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the HTTP port accepts connections. A panic here prints
    /// the log, from `drop`, and quotes it when tend exited first.
    fn wait_listening(&mut self) {
        let port = self.port;
        wait_for_port(port, || {
            let status = self.child.try_wait().expect("wait works")?;
            Some(format!(
                "tend exited with {status} before listening:\n{}",
                self.log()
            ))
        });
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningTend {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for RunningTend {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- tend log ---\n{}", self.log());
        }
    }
}
