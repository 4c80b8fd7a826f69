//! Typed configuration: one TOML file plus `TEND_*` environment overrides.
//!
//! Every key can be overridden by an environment variable named after its
//! path (`redis.url` → `TEND_REDIS_URL`), so tend runs with no file at all.
//! Loading reports every invalid value at once, by name, before anything
//! starts. AWS settings come from the standard AWS environment and
//! credential chain; only the region and endpoint can also be set here.

mod instagram;
mod scheduler;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use instagram::InstagramConfig;
use instagram::read_instagram;
use scheduler::read_scheduler;
pub use scheduler::{PriorityPolicy, SchedulerConfig};
pub use settings::env_name;
use settings::{Settings, format_problems};

/// Environment variables starting with `TEND_` that are not config keys.
const OTHER_VARIABLES: &[&str] = &["TEND_CONFIG"];

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub http: HttpConfig,
    pub redis: RedisConfig,
    pub aws: AwsConfig,
    pub runtime: RuntimeConfig,
    pub log: LogConfig,
    pub ecs_capacity: EcsCapacityConfig,
    pub scheduler: SchedulerConfig,
    pub instagram: InstagramConfig,
    /// Problems worth a warning that do not stop tend, such as a config
    /// file with secrets that other users can read.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpConfig {
    /// Address of the one port serving `/metrics`, `/healthz`, `/readyz`, `/status`.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedisConfig {
    pub url: RedisUrl,
    /// Prefix of tend's own keys; the seed-compatible keys have none.
    pub key_prefix: String,
    /// Whether to also write the seed-compatible keys that older consumers read.
    pub seed_keys: bool,
    /// Bound on connecting and on each command.
    #[serde(serialize_with = "human_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct AwsConfig {
    /// Region; when unset, `AWS_REGION`, `AWS_DEFAULT_REGION` or the shared
    /// config profile decide. Never probed from the instance metadata service.
    pub region: Option<String>,
    /// Endpoint for every AWS service, for emulators; `AWS_ENDPOINT_URL` works too.
    pub endpoint_url: Option<String>,
    /// Address S3 buckets in the path (`host/bucket/key`), as emulators need.
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeConfig {
    /// Time allowed after SIGTERM for running passes to finish.
    #[serde(serialize_with = "human_duration")]
    pub shutdown_grace: Duration,
    /// First delay after a failed pass; it doubles on each further failure.
    #[serde(serialize_with = "human_duration")]
    pub backoff_initial: Duration,
    /// Cap on the delay after failures.
    #[serde(serialize_with = "human_duration")]
    pub backoff_max: Duration,
    /// Fraction of each interval added or removed at random, so replicas and
    /// loops do not call the same APIs in lockstep.
    pub jitter: f64,
    /// Time to live of the leader lease of single-writer loops
    /// (ecs-capacity, instagram): a dead holder is replaced within it.
    #[serde(serialize_with = "human_duration")]
    pub lease_ttl: Duration,
    /// This replica's name in leases; defaults to the host name and process id.
    pub replica_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive such as `info` or `tend=debug,info`;
    /// `RUST_LOG` takes precedence.
    pub level: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EcsCapacityConfig {
    pub enabled: bool,
    /// Time between full refreshes of every cluster.
    #[serde(serialize_with = "human_duration")]
    pub interval: Duration,
    /// Bound on one refresh; a pass that runs longer fails and is retried.
    #[serde(serialize_with = "human_duration")]
    pub pass_timeout: Duration,
    /// Cluster names or ARNs to track; empty tracks every cluster in the region.
    pub clusters: Vec<String>,
    /// Oldest cache entry that readers such as `tend capacity` accept.
    #[serde(serialize_with = "human_duration")]
    pub max_age: Duration,
    /// Clusters observed at the same time during one refresh.
    pub concurrency: u64,
    /// SQS queue that EventBridge feeds with ECS state-change events; when
    /// set, the `ecs-events` loop applies them between full refreshes.
    pub events_queue: Option<String>,
    /// Long-polling wait of each receive from the events queue (1 to 20 s).
    #[serde(serialize_with = "human_duration")]
    pub events_wait: Duration,
    /// Cap on the backoff after failed refreshes or event passes, kept
    /// short so that the cache is refilled within seconds after Redis or
    /// ECS return.
    #[serde(serialize_with = "human_duration")]
    pub backoff_max: Duration,
}

/// Serialises a duration as `check-config` and `/status` readers expect
/// to write it: "30s", "5m".
pub(crate) fn human_duration<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

/// A secret value (token, API key) that never appears in output: `Display`,
/// `Debug` and serialisation all print `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret itself, for sending it where it belongs only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(unset)" } else { "***" })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// Redis URL whose password never appears in output: `Display`, `Debug`
/// and serialisation all mask it.
#[derive(Clone)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// Returns the URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => {
                let user = rest[..at].split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{}", &rest[at + 1..])
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error(
        "invalid configuration ({} {}):\n{}",
        .0.len(),
        if .0.len() == 1 { "problem" } else { "problems" },
        format_problems(.0)
    )]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads the file at `path` (if any) and applies the `TEND_*` variables in `env`.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Self::from_table(toml::Table::new(), "(no config file)".to_owned(), env);
        };
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: label.clone(),
            source,
        })?;
        let mut config = Self::parse(&text, &label, env)?;
        config.warnings.extend(exposed_secrets(path));
        Ok(config)
    }

    /// Parses config file text and applies the `TEND_*` variables in `env`.
    /// `label` names the file in error messages. Unlike [`Config::load`],
    /// it cannot check who may read the file.
    pub fn parse(
        text: &str,
        label: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let table = text
            .parse::<toml::Table>()
            .map_err(|error| ConfigError::Syntax {
                path: label.to_owned(),
                message: error.to_string(),
            })?;
        Self::from_table(table, label.to_owned(), env)
    }

    fn from_table(
        table: toml::Table,
        label: String,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut settings = Settings::new(table, label, env);
        let config = Self::read(&mut settings);
        let problems = settings.finish(OTHER_VARIABLES);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Loads with the process environment.
    pub fn from_process(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load(path, &env)
    }

    fn read(s: &mut Settings<'_>) -> Self {
        Self {
            http: HttpConfig {
                listen: s.value("http.listen", SocketAddr::from(([0, 0, 0, 0], 9464))),
            },
            redis: read_redis(s),
            aws: read_aws(s),
            runtime: read_runtime(s),
            log: read_log(s),
            ecs_capacity: read_ecs_capacity(s),
            scheduler: read_scheduler(s),
            instagram: read_instagram(s),
            warnings: Vec::new(),
        }
    }
}

/// Warns when the file at `path` sets a secret and other users may read it.
fn exposed_secrets(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o044 == 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let table = text.parse::<toml::Table>().ok()?;
    let set = |section: &str, key: &str| table.get(section).and_then(|t| t.get(key)).is_some();
    let redis_password = table
        .get("redis")
        .and_then(|t| t.get("url"))
        .and_then(|v| v.as_str())
        .is_some_and(|url| RedisUrl::new(url).redacted() != url);
    let secrets =
        set("instagram", "access_token") || set("instagram", "ghost_admin_key") || redis_password;
    secrets.then(|| {
        format!(
            "config file {} contains secrets and is readable by other users (mode {:o}); \
             run chmod 600 on it, or pass the secrets as TEND_* variables from a secret store",
            path.display(),
            mode & 0o777
        )
    })
}

fn read_redis(s: &mut Settings<'_>) -> RedisConfig {
    let url: String = s.value("redis.url", "redis://127.0.0.1:6379".to_owned());
    let redis_url = RedisUrl(url);
    if !redis_url.0.starts_with("redis://") && !redis_url.0.starts_with("redis+unix://") {
        s.invalid(
            "redis.url",
            format!("= {redis_url} is invalid: use a redis:// or redis+unix:// URL (TLS, rediss://, is not built in)"),
        );
    } else if let Err(error) = redis::Client::open(redis_url.0.as_str()) {
        s.invalid("redis.url", format!("= {redis_url} is invalid: {error}"));
    }
    let key_prefix: String = s.value("redis.key_prefix", "tend".to_owned());
    if key_prefix.is_empty()
        || key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c == '{' || c == '}')
    {
        s.invalid(
            "redis.key_prefix",
            format!("= {key_prefix:?} is invalid: use a non-empty prefix without spaces or braces, such as \"tend\""),
        );
    }
    let timeout = s.value("redis.timeout", Duration::from_secs(2));
    if timeout.is_zero() {
        s.invalid("redis.timeout", "must be above zero, such as \"2s\"");
    }
    RedisConfig {
        url: redis_url,
        key_prefix,
        seed_keys: s.value("redis.seed_keys", true),
        timeout,
    }
}

fn read_aws(s: &mut Settings<'_>) -> AwsConfig {
    let region: Option<String> = s.optional("aws.region");
    if region.as_deref().is_some_and(|r| r.trim().is_empty()) {
        s.invalid(
            "aws.region",
            "is empty: set a region such as \"us-east-1\" or remove the key",
        );
    }
    let endpoint_url: Option<String> = s.optional("aws.endpoint_url");
    if let Some(url) = &endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        s.invalid(
            "aws.endpoint_url",
            format!("= {url:?} is invalid: use an http:// or https:// URL"),
        );
    }
    AwsConfig {
        region,
        endpoint_url,
        s3_force_path_style: s.value("aws.s3_force_path_style", false),
    }
}

fn read_runtime(s: &mut Settings<'_>) -> RuntimeConfig {
    let runtime = RuntimeConfig {
        shutdown_grace: s.value("runtime.shutdown_grace", Duration::from_secs(25)),
        backoff_initial: s.value("runtime.backoff_initial", Duration::from_secs(1)),
        backoff_max: s.value("runtime.backoff_max", Duration::from_secs(300)),
        jitter: s.value("runtime.jitter", 0.1),
        lease_ttl: s.value("runtime.lease_ttl", Duration::from_secs(15)),
        replica_id: s.value("runtime.replica_id", default_replica_id()),
    };
    if runtime.lease_ttl < Duration::from_secs(1) {
        s.invalid("runtime.lease_ttl", "must be at least 1s");
    }
    if runtime.backoff_initial.is_zero() {
        s.invalid(
            "runtime.backoff_initial",
            "must be above zero, such as \"1s\"",
        );
    }
    if runtime.backoff_max < runtime.backoff_initial {
        s.invalid(
            "runtime.backoff_max",
            "must be at least runtime.backoff_initial",
        );
    }
    if !(0.0..=0.5).contains(&runtime.jitter) {
        s.invalid(
            "runtime.jitter",
            format!(
                "= {} is out of range: use a fraction from 0 to 0.5",
                runtime.jitter
            ),
        );
    }
    runtime
}

/// Host name (the pod name in Kubernetes) and process id.
fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tend".to_owned());
    format!("{host}-{}", std::process::id())
}

fn read_log(s: &mut Settings<'_>) -> LogConfig {
    let format: String = s.value("log.format", "text".to_owned());
    let format = match format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            s.invalid(
                "log.format",
                format!("= {other:?} is invalid: use \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    let level: String = s.value("log.level", "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        s.invalid(
            "log.level",
            format!("= {level:?} is invalid: use a level such as \"info\" or a filter such as \"tend=debug,info\""),
        );
    }
    LogConfig { format, level }
}

fn read_ecs_capacity(s: &mut Settings<'_>) -> EcsCapacityConfig {
    let config = EcsCapacityConfig {
        enabled: s.value("ecs_capacity.enabled", true),
        interval: s.value("ecs_capacity.interval", Duration::from_secs(30)),
        pass_timeout: s.value("ecs_capacity.pass_timeout", Duration::from_secs(120)),
        clusters: s.value("ecs_capacity.clusters", Vec::new()),
        max_age: s.value("ecs_capacity.max_age", Duration::from_secs(120)),
        concurrency: s.value("ecs_capacity.concurrency", 8),
        events_queue: s.optional("ecs_capacity.events_queue"),
        events_wait: s.value("ecs_capacity.events_wait", Duration::from_secs(5)),
        backoff_max: s.value("ecs_capacity.backoff_max", Duration::from_secs(3)),
    };
    if let Some(url) = &config.events_queue
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        s.invalid(
            "ecs_capacity.events_queue",
            format!("= {url:?} is invalid: use the SQS queue URL"),
        );
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(20)).contains(&config.events_wait) {
        s.invalid(
            "ecs_capacity.events_wait",
            "must be from 1s to 20s, the SQS long-polling range",
        );
    }
    if config.interval < Duration::from_secs(1) {
        s.invalid("ecs_capacity.interval", "must be at least 1s");
    }
    if config.backoff_max < Duration::from_secs(1) {
        s.invalid(
            "ecs_capacity.backoff_max",
            format!(
                "= {} is below the minimum: use at least 1s, such as \"3s\"",
                humantime::format_duration(config.backoff_max)
            ),
        );
    }
    if config.pass_timeout.is_zero() {
        s.invalid(
            "ecs_capacity.pass_timeout",
            "must be above zero, such as \"2m\"",
        );
    }
    if config.max_age < config.interval {
        let (max_age, interval) = (
            humantime::format_duration(config.max_age),
            humantime::format_duration(config.interval),
        );
        s.invalid(
            "ecs_capacity.max_age",
            format!(
                "= {max_age} is below ecs_capacity.interval ({interval}), so every read would find the cache \
                 stale; set it to at least {interval}"
            ),
        );
    }
    if !(1..=64).contains(&config.concurrency) {
        s.invalid(
            "ecs_capacity.concurrency",
            format!("= {} is out of range: use 1 to 64", config.concurrency),
        );
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tend.toml");
        std::fs::write(&path, file).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(Some(&path), &env)
    }

    #[test]
    fn defaults_need_no_file() {
        let env = BTreeMap::from([(
            "TEND_REDIS_URL".to_owned(),
            "redis://10.0.0.5:6380".to_owned(),
        )]);
        let config = Config::load(None, &env).unwrap();
        assert_eq!(config.redis.url.expose(), "redis://10.0.0.5:6380");
        assert!(config.ecs_capacity.enabled);
        assert_eq!(config.ecs_capacity.interval, Duration::from_secs(30));
    }

    #[test]
    fn all_problems_reported_together() {
        let error = load(
            "[ecs_capacity]\ninterval = \"0s\"\nconcurrency = 0\n[log]\nformat = \"xml\"\n",
            &[("TEND_REDIS_URL", "http://x")],
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("4 problems"), "{text}");
        assert!(text.contains("ecs_capacity.interval"), "{text}");
        assert!(text.contains("ecs_capacity.concurrency"), "{text}");
        assert!(text.contains("log.format"), "{text}");
        assert!(text.contains("redis.url"), "{text}");
    }

    #[test]
    fn redis_password_masked() {
        let url = RedisUrl("redis://user:hunter2@cache:6379/0".to_owned());
        assert_eq!(url.to_string(), "redis://user:***@cache:6379/0");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&url).unwrap().contains("hunter2"));
    }

    #[test]
    fn readable_secrets_warned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tend.toml");
        std::fs::write(&path, "[instagram]\naccess_token = \"IGAAsecret\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = Config::load(Some(&path), &BTreeMap::new()).unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].contains("chmod 600"),
            "{:?}",
            config.warnings
        );
        assert!(!config.warnings[0].contains("IGAAsecret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            Config::load(Some(&path), &BTreeMap::new())
                .unwrap()
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn syntax_error_names_file() {
        let error = load("[redis\n", &[]).unwrap_err();
        assert!(error.to_string().contains("tend.toml"), "{error}");
    }
}
