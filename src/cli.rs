//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tend",
    version,
    about = "Reconciling sidecar: ECS capacity cache, scheduler, Instagram archive"
)]
pub struct Cli {
    /// TOML config file; every key can also be set with a TEND_* variable.
    #[arg(long, short, global = true, env = "TEND_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every enabled loop and the HTTP server until SIGTERM or SIGINT.
    Run,
    /// Run one loop in the foreground, without the HTTP server.
    Reconcile {
        #[arg(value_enum)]
        name: LoopName,
        /// Run a single pass, print its summary and exit (1 if it failed).
        #[arg(long)]
        once: bool,
        /// Print what a pass would do without writing anything (instagram only).
        #[arg(long, requires = "once")]
        dry_run: bool,
    },
    /// Check in the capacity cache whether a task fits on a single instance.
    ///
    /// Exit status: 0 when it fits (or, without --cpu/--memory, when the cache
    /// is fresh), 1 when it does not fit, 2 when the cache is stale, the
    /// cluster is not cached or Redis fails.
    Capacity {
        /// Cluster name or ARN; all cached clusters when omitted.
        #[arg(long)]
        cluster: Option<String>,
        /// CPU units the task needs (1024 per vCPU).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        cpu: i64,
        /// Memory the task needs, in MiB.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        memory: i64,
        /// Refuse cache entries older than this (default: ecs_capacity.max_age).
        #[arg(long, value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
    },
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Validate a task request and send it to a priority queue.
    Submit(SubmitArgs),
    /// Exit 0 when a running tend's /healthz answers 200, for container
    /// health checks in images without a shell or curl.
    Healthcheck {
        /// Liveness URL (default: /healthz on http.listen's port on 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Queue URL, or the name of one of scheduler.queues (its last path segment).
    #[arg(long)]
    pub queue: String,
    /// The whole request as JSON; the other request options then must be absent.
    #[arg(long, conflicts_with_all = ["cluster", "task_definition", "cpu", "memory", "count", "overrides", "started_by", "group"])]
    pub body: Option<String>,
    /// Cluster name or ARN.
    #[arg(long, required_unless_present = "body")]
    pub cluster: Option<String>,
    /// Task definition family, family:revision or ARN.
    #[arg(long, required_unless_present = "body")]
    pub task_definition: Option<String>,
    /// CPU units per task (default: from the task definition).
    #[arg(long)]
    pub cpu: Option<i64>,
    /// MiB per task (default: from the task definition).
    #[arg(long)]
    pub memory: Option<i64>,
    /// Tasks to start, 1 to 10.
    #[arg(long)]
    pub count: Option<i64>,
    /// RunTask overrides as JSON, in the ECS TaskOverride shape.
    #[arg(long)]
    pub overrides: Option<String>,
    #[arg(long)]
    pub started_by: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoopName {
    /// Refresh the Redis cache of ECS cluster capacity.
    EcsCapacity,
    /// Place queued task requests on ECS.
    Scheduler,
    /// Archive Instagram media in S3 and publish it on Ghost.
    Instagram,
}
