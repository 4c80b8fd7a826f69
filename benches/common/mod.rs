//! Helpers shared by the benchmarks: a `tend-ecs-fake` process per
//! scenario and an ECS client for any endpoint. Each bench target includes
//! this module with `mod common;`. Cargo does not build it as a bench of its
//! own, because it discovers only files directly in `benches/`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running `tend-ecs-fake` on a free port of 127.0.0.1. Dropping it kills
/// the process.
pub struct Fake {
    child: Child,
    pub endpoint: String,
}

impl Fake {
    /// Starts the fake and waits for the `listening on http://ADDRESS` line
    /// it prints once it accepts connections.
    pub fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tend-ecs-fake"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the ECS fake starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the fake prints its address");
        let endpoint = line.trim().trim_start_matches("listening on ").to_owned();
        Self { child, endpoint }
    }

    /// Posts `body` to an admin path such as `/_fake/state` and returns the
    /// JSON reply. Panics on a status other than 2xx.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.endpoint))
            .json(body)
            .send()
            .await
            .expect("fake answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("JSON reply")
    }

    /// Returns the JSON reply of an admin path such as `/_fake/calls`.
    // Not every bench reads admin state.
    #[allow(dead_code)]
    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.endpoint))
            .await
            .expect("fake answers")
            .json()
            .await
            .expect("JSON reply")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds an ECS client for `endpoint` (moto or the fake) in us-east-1 with
/// the dummy credentials both accept.
pub fn ecs_client(endpoint: &str) -> aws_sdk_ecs::Client {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_ecs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_ecs::Client::from_conf(config)
}
