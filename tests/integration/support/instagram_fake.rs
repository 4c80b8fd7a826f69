//! Starts the `tend-instagram-fake` binary on a free loopback port and drives
//! its `/_fake/` admin endpoints. Each `InstagramFake` is its own process
//! with its own token, so tests that run in parallel share nothing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long the fake may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A Graph API response.
#[derive(Debug)]
pub struct GraphReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl GraphReply {
    /// Returns a header as text, or None when it is absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let value = self.headers.get(name)?;
        Some(value.to_str().expect("ASCII header"))
    }

    /// Returns the `X-App-Usage` header parsed as JSON.
    pub fn app_usage(&self) -> Value {
        let header = self.header("x-app-usage").expect("no X-App-Usage header");
        serde_json::from_str(header).expect("X-App-Usage is not JSON")
    }
}

/// A running `tend-instagram-fake` process, killed when dropped.
pub struct InstagramFake {
    /// Spawned with `kill_on_drop`, so dropping the handle stops the fake.
    _child: Child,
    /// Kept open so that the fake never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl InstagramFake {
    /// Starts a fake with no media and a token unique to this fake.
    pub async fn start() -> Self {
        Self::start_with_args(&[]).await
    }

    /// Starts a fake with extra command-line arguments, such as
    /// `["--seed", path]`. Panics if it does not announce its address.
    pub async fn start_with_args(args: &[&str]) -> Self {
        let token = super::unique("IGAAtesttoken").replace('-', "_");
        // The fake's stderr goes to the test output, so it logs only
        // warnings and errors unless RUST_LOG sets another filter.
        let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let mut child = Command::new(env!("CARGO_BIN_EXE_tend-instagram-fake"))
            .args(["--listen", "127.0.0.1:0", "--token", &token])
            .args(args)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("failed to spawn tend-instagram-fake");

        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("tend-instagram-fake exited without announcing an address"),
            Ok(Err(error)) => panic!("failed to read the stdout of tend-instagram-fake: {error}"),
            Err(_) => panic!("tend-instagram-fake printed no address within {START_TIMEOUT:?}"),
        };
        let base_url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line of tend-instagram-fake: {line:?}"))
            .to_owned();

        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("failed to build the HTTP client");
        Self {
            _child: child,
            _stdout: lines,
            base_url,
            token,
            http,
        }
    }

    /// Base URL to use in place of `https://graph.instagram.com`, such as
    /// `http://127.0.0.1:41234`. The CDN and admin endpoints share it.
    pub fn graph_url(&self) -> &str {
        &self.base_url
    }

    /// Returns the token the fake accepts from the start. It counts as
    /// issued 30 days before the start, so it can be refreshed at once.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `GET {graph_url}{path}` with `params` and this fake's token.
    pub async fn graph_get(&self, path: &str, params: &[(&str, &str)]) -> GraphReply {
        let mut params = params.to_vec();
        params.push(("access_token", &self.token));
        self.get_url(&format!("{}{path}", self.base_url), &params)
            .await
    }

    /// Sends `GET url` with `params` as given, with no token added, and
    /// reads the JSON reply.
    pub async fn get_url(&self, url: &str, params: &[(&str, &str)]) -> GraphReply {
        let request = self.http.get(url).query(params);
        let response = request.send().await.expect("Graph request failed");
        GraphReply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.json().await.expect("Graph reply is not JSON"),
        }
    }

    /// Sends a request to an admin endpoint and returns the status and the
    /// JSON body.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        let request = self.http.request(method, url).json(body);
        let response = request.send().await.expect("admin request failed");
        let status = response.status().as_u16();
        let reply = response.json().await.expect("admin reply is not JSON");
        (status, reply)
    }

    async fn admin_ok(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let (status, reply) = self.admin(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path} failed: {reply}");
        reply
    }

    /// Replaces the account's media with a JSON array of posts.
    pub async fn set_media(&self, media: &Value) {
        self.admin_ok(reqwest::Method::POST, "/_fake/media", media)
            .await;
    }

    /// Sets the caption of a post, or removes it with `None`.
    pub async fn set_caption(&self, id: &str, caption: Option<&str>) {
        let path = format!("/_fake/media/{id}");
        let body = json!({ "caption": caption });
        self.admin_ok(reqwest::Method::POST, &path, &body).await;
    }

    pub async fn delete_media(&self, id: &str) {
        let path = format!("/_fake/media/{id}");
        self.admin_ok(reqwest::Method::DELETE, &path, &Value::Null)
            .await;
    }

    /// Adds generated posts, as `POST /_fake/generate` describes, and
    /// returns the reply with `created`, `total`, `first_id` and `last_id`.
    pub async fn generate(&self, request: &Value) -> Value {
        self.admin_ok(reqwest::Method::POST, "/_fake/generate", request)
            .await
    }

    /// Makes the next `count` Graph calls fail with error `code`.
    pub async fn inject_fault(&self, code: i64, count: u32) {
        let body = json!({ "code": code, "count": count });
        self.admin_ok(reqwest::Method::POST, "/_fake/faults", &body)
            .await;
    }

    /// Makes `token` the only valid token, with timestamps such as
    /// `2016-01-02T03:04:05+0000`. `None` keeps the defaults: created now,
    /// expiring 60 days after creation.
    pub async fn set_token(&self, token: &str, created_at: Option<&str>, expires_at: Option<&str>) {
        let body = json!({ "token": token, "created_at": created_at, "expires_at": expires_at });
        self.admin_ok(reqwest::Method::POST, "/_fake/token", &body)
            .await;
    }

    pub async fn revoke_token(&self, token: &str) {
        let body = json!({ "token": token });
        self.admin_ok(reqwest::Method::POST, "/_fake/token/revoke", &body)
            .await;
    }

    /// Returns the valid tokens with their `created_at` and `expires_at`.
    pub async fn tokens(&self) -> Value {
        self.admin_ok(reqwest::Method::GET, "/_fake/token", &Value::Null)
            .await["tokens"]
            .clone()
    }

    /// Expires every CDN URL issued so far.
    pub async fn expire_cdn_urls(&self) {
        self.admin_ok(reqwest::Method::POST, "/_fake/cdn/expire", &Value::Null)
            .await;
    }

    /// Returns the number of calls per endpoint kind: `me`, `me/media`,
    /// `media`, `refresh_access_token` and `cdn`.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        let reply = self
            .admin_ok(reqwest::Method::GET, "/_fake/calls", &Value::Null)
            .await;
        serde_json::from_value(reply).expect("unexpected calls reply")
    }

    pub async fn reset_calls(&self) {
        self.admin_ok(reqwest::Method::POST, "/_fake/calls/reset", &Value::Null)
            .await;
    }

    /// Fixes the usage percentages the headers report, such as
    /// `{"call_count": 80, "total_cputime": 10, "total_time": 20}`, or with
    /// `None` returns to usage computed from the calls of the last hour.
    pub async fn set_usage(&self, usage: Option<&Value>) {
        let body = usage.cloned().unwrap_or(Value::Null);
        self.admin_ok(reqwest::Method::POST, "/_fake/usage", &body)
            .await;
    }
}
