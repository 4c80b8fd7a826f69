//! `tend-ecs-fake`: an in-memory ECS endpoint that speaks the awsJson1_1
//! protocol of the ECS API, so that `aws-sdk-ecs` talks to it unchanged.
//! Unlike moto it pages List results (at most 100 per page), honours
//! `totalResources` on RegisterContainerInstance, can inject errors, and
//! places tasks on instances with CPU and memory accounting, so RunTask can
//! fail with `RESOURCE:CPU` or `RESOURCE:MEMORY`.
//!
//! It prints `listening on http://ADDRESS` as its first line on stdout once
//! it accepts connections, logs to stderr, and exits on SIGTERM or SIGINT.

mod admin;
mod admin_tasks;
mod events;
mod fake;
mod fields;
mod ops;
mod protocol;
mod seed;
mod server;
mod state;
mod task_definitions;
mod tasks;

#[path = "../common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;

use crate::events::outbox::{Outbox, Target};
use crate::fake::Fake;
use crate::server::SharedFake;
use crate::state::State;
use crate::tasks::TaskTiming;

#[derive(Debug, Parser)]
#[command(
    name = "tend-ecs-fake",
    about = "In-memory ECS endpoint for tests and local runs"
)]
struct Args {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// AWS region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// 12-digit AWS account id used in ARNs.
    #[arg(long, default_value = "123456789012", value_parser = parse_account)]
    account: String,

    /// JSON seed document with the initial clusters and instances, in the
    /// format `POST /_fake/state` accepts.
    #[arg(long)]
    seed: Option<PathBuf>,

    /// How long a new task stays PENDING, such as `200ms`. With 0 it is
    /// RUNNING from the next request on.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    task_start_delay: Duration,

    /// How long a task runs before its essential container exits and it
    /// stops, such as `5m`. Without it tasks run until StopTask.
    #[arg(long, value_parser = humantime::parse_duration)]
    task_run_time: Option<Duration>,

    /// SQS queue URL that receives an EventBridge event for every container
    /// instance and task change. Needs --sqs-endpoint.
    #[arg(long, requires = "sqs_endpoint")]
    events_queue_url: Option<String>,

    /// SQS endpoint that events are sent to, such as moto's
    /// `http://127.0.0.1:PORT`. Also the default for `POST /_fake/events`.
    #[arg(long)]
    sqs_endpoint: Option<String>,
}

fn parse_account(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("invalid account id {text:?}: expected 12 digits"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), String> {
    let mut state = State::new(&args.region, &args.account);
    if let Some(path) = &args.seed {
        load_seed(&mut state, path)?;
    }
    let timing = TaskTiming {
        start_delay: args.task_start_delay,
        run_time: args.task_run_time,
    };
    let target = events_target(&args)?;
    let (outbox, receiver) = Outbox::new(target, args.sqs_endpoint.clone());
    let sender = tokio::spawn(events::sender::run(receiver, Arc::clone(&outbox.counters)));
    let fake = Arc::new(Mutex::new(Fake::new(state, timing, outbox)));
    let ticker = tokio::spawn(advance_while_sending(Arc::clone(&fake)));

    let (listener, address) = serve::bind(args.listen).await?;
    // The handlers are installed before the address is announced, so a
    // signal sent right after the announcement still stops the fake cleanly.
    let shutdown = serve::Shutdown::install()?;
    serve::announce(address)?;
    tracing::info!(%address, region = %args.region, account = %args.account, "ECS fake started");

    let serving = Arc::clone(&fake);
    serve::serve(listener, shutdown, move |request| {
        server::respond(Arc::clone(&serving), request)
    })
    .await;
    ticker.abort();
    drain_events(&fake, sender).await;
    tracing::info!("ECS fake stopped");
    Ok(())
}

/// Returns the events queue and SQS endpoint that the flags set, if any.
fn events_target(args: &Args) -> Result<Option<Target>, String> {
    let Some(queue_url) = &args.events_queue_url else {
        return Ok(None);
    };
    let target = events::admin::target(queue_url, args.sqs_endpoint.as_deref())
        .map_err(|error| format!("invalid --events-queue-url or --sqs-endpoint: {error}"))?;
    Ok(Some(target))
}

/// How often task starts and exits are applied while events are on.
const EVENT_TICK: Duration = Duration::from_millis(100);
/// Maximum wait at shutdown for the sender to send the queued events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies due task starts and exits every `EVENT_TICK` while an events
/// queue is set. Without events the fake needs no timer, because every
/// request applies them first, but an event consumer may send no request.
async fn advance_while_sending(fake: SharedFake) {
    let mut interval = tokio::time::interval(EVENT_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut guard = server::lock(&fake);
        if guard.outbox.is_enabled() {
            guard.advance_tasks();
            guard.flush_events();
        }
    }
}

/// Closes the event channel and waits for the sender to send what is
/// queued, for at most `DRAIN_TIMEOUT`.
async fn drain_events(fake: &SharedFake, sender: tokio::task::JoinHandle<()>) {
    server::lock(fake).outbox.close();
    match tokio::time::timeout(DRAIN_TIMEOUT, sender).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "event sender failed"),
        Err(_) => tracing::warn!(timeout = ?DRAIN_TIMEOUT, "stopped before all events were sent"),
    }
}

fn load_seed(state: &mut State, path: &Path) -> Result<(), String> {
    let display_path = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("failed to read seed file {display_path}: {error}"))?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("invalid JSON in seed file {display_path}: {error}"))?;
    let seed = seed::parse_seed(&document)
        .map_err(|error| format!("invalid seed file {display_path}: {error}"))?;
    seed::apply_seed(state, &seed);
    tracing::info!(path = %display_path, clusters = seed.clusters.len(), "loaded seed");
    Ok(())
}
