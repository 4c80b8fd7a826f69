//! `tend run`: every enabled loop plus the HTTP server, until a signal.
//!
//! Shutdown: the first SIGTERM or SIGINT stops new passes and turns
//! readiness off; running passes get `runtime.shutdown_grace` to finish. A
//! second signal, or the grace period running out, exits at once.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::loops;
use crate::config::Config;
use crate::http::{HttpState, serve};
use crate::runtime::{LoopMetrics, Runner, StatusBoard, error_chain};

pub async fn run(config: Config) -> ExitCode {
    let registry = prometheus::Registry::new();
    let loops = match loops::build(&config, &registry).await {
        Ok(loops) => loops,
        Err(error) => {
            error!(error = %error_chain(&error), "startup failed");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.http.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            error!(address = %config.http.listen, %error, "cannot listen; set http.listen (TEND_HTTP_LISTEN) to a free address");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(config.http.listen);
    let board = StatusBoard::default();
    let shutdown = CancellationToken::new();
    if let Err(error) = crate::metrics::register_build_info(&registry) {
        error!(%error, "registering metrics failed");
        return ExitCode::FAILURE;
    }
    let runner = match LoopMetrics::register(&registry) {
        Ok(metrics) => Runner::new(board.clone(), metrics),
        Err(error) => {
            error!(%error, "registering metrics failed");
            return ExitCode::FAILURE;
        }
    };

    let mut tasks = JoinSet::new();
    let names = loops.names();
    if let Some((reconciler, schedule)) = loops.ecs_capacity {
        runner.spawn(&mut tasks, reconciler, schedule, shutdown.clone());
    }
    if let Some((reconciler, schedule)) = loops.ecs_events {
        runner.spawn(&mut tasks, reconciler, schedule, shutdown.clone());
    }
    if let Some((reconciler, schedule)) = loops.scheduler {
        runner.spawn(&mut tasks, reconciler, schedule, shutdown.clone());
    }
    if let Some((reconciler, schedule)) = loops.instagram {
        runner.spawn(&mut tasks, reconciler, schedule, shutdown.clone());
    }
    let state = Arc::new(HttpState {
        registry,
        board,
        redis: loops.redis,
        started: Instant::now(),
        shutdown: shutdown.clone(),
    });
    let server = tokio::spawn(serve(listener, state, shutdown.clone()));
    info!(
        version = env!("CARGO_PKG_VERSION"),
        loops = ?names,
        listen = %address,
        "tend started"
    );
    if names.is_empty() {
        warn!("no loop is enabled; only the HTTP server runs");
    }

    wait_for_signal(&shutdown).await;
    let grace = config.runtime.shutdown_grace;
    info!(
        grace_seconds = grace.as_secs(),
        "shutting down; waiting for running passes"
    );
    let drained = tokio::select! {
        () = async { while tasks.join_next().await.is_some() {} } => true,
        () = tokio::time::sleep(grace) => false,
        () = wait_for_second_signal() => false,
    };
    if !drained {
        warn!("shutdown grace period over or second signal; stopping running passes");
        tasks.shutdown().await;
    }
    let _ = server.await;
    info!("tend stopped");
    ExitCode::SUCCESS
}

/// Waits for SIGTERM (Kubernetes) or SIGINT (a developer's Ctrl-C) and
/// cancels `shutdown`.
async fn wait_for_signal(shutdown: &CancellationToken) {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            error!(%error, "cannot listen for SIGTERM; stopping");
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
    shutdown.cancel();
}

async fn wait_for_second_signal() {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
