//! `tend reconcile <loop>`: one loop in the foreground, without HTTP.

use std::process::ExitCode;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::loops;
use crate::cli::LoopName;
use crate::config::Config;
use crate::runtime::{LoopMetrics, Reconciler, Runner, Schedule, StatusBoard, error_chain};

pub async fn reconcile(config: Config, name: LoopName, once: bool, dry_run: bool) -> ExitCode {
    if dry_run && name != LoopName::Instagram {
        eprintln!(
            "tend: --dry-run is only available for the instagram loop; drop it to run a real pass"
        );
        return ExitCode::from(super::EXIT_CONFIG);
    }
    let registry = prometheus::Registry::new();
    let built = match loops::build(&config, &registry).await {
        Ok(built) => built,
        Err(error) => {
            error!(error = %error_chain(&error), "startup failed");
            return ExitCode::FAILURE;
        }
    };
    let runner = match LoopMetrics::register(&registry) {
        Ok(metrics) => Runner::new(StatusBoard::default(), metrics),
        Err(error) => {
            error!(%error, "registering metrics failed");
            return ExitCode::FAILURE;
        }
    };
    match name {
        LoopName::EcsCapacity => match built.ecs_capacity {
            Some((reconciler, schedule)) => {
                if once {
                    reconciler.set_wait_for_lease();
                }
                drive(&runner, reconciler, schedule, once).await
            }
            None => {
                eprintln!(
                    "tend: the ecs-capacity loop is disabled; set ecs_capacity.enabled = true (TEND_ECS_CAPACITY_ENABLED=true)"
                );
                ExitCode::FAILURE
            }
        },
        LoopName::Instagram => match built.instagram {
            Some((reconciler, schedule)) => {
                if once {
                    reconciler.set_wait_for_lease();
                }
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {pos} media items synced {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                reconciler.inner().set_progress(bar.clone());
                let code = if dry_run {
                    // A dry run writes nothing, so it needs no lease.
                    reconciler.inner().set_dry_run();
                    drive_once(&runner, reconciler.inner(), &schedule).await
                } else {
                    drive(&runner, reconciler, schedule, once).await
                };
                bar.finish_and_clear();
                code
            }
            None => {
                eprintln!(
                    "tend: the instagram loop is disabled; set instagram.enabled = true (TEND_INSTAGRAM_ENABLED=true)"
                );
                ExitCode::FAILURE
            }
        },
        LoopName::Scheduler => match built.scheduler {
            Some((reconciler, schedule)) => drive(&runner, reconciler, schedule, once).await,
            None => {
                eprintln!(
                    "tend: the scheduler loop is disabled; set scheduler.enabled = true (TEND_SCHEDULER_ENABLED=true)"
                );
                ExitCode::FAILURE
            }
        },
    }
}

async fn drive<R: Reconciler>(
    runner: &Runner,
    reconciler: std::sync::Arc<R>,
    schedule: Schedule,
    once: bool,
) -> ExitCode {
    let shutdown = CancellationToken::new();
    if !once {
        // Standing by for a lease is the normal state of a replica here.
        let mut tasks = JoinSet::new();
        runner.spawn(&mut tasks, reconciler, schedule, shutdown.clone());
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        return ExitCode::SUCCESS;
    }
    drive_once(runner, reconciler.as_ref(), &schedule).await
}

/// Runs one pass, prints its summary and hands back held work.
async fn drive_once<R: Reconciler>(
    runner: &Runner,
    reconciler: &R,
    schedule: &Schedule,
) -> ExitCode {
    let shutdown = CancellationToken::new();
    runner.prepare(reconciler.name(), schedule);
    let started = std::time::Instant::now();
    let result = runner.run_pass(reconciler, schedule, &shutdown).await;
    // Hand back anything the pass holds, such as messages waiting for room.
    reconciler.shutdown().await;
    match result {
        Ok(outcome) => {
            println!(
                "{} pass succeeded in {:.2}s",
                reconciler.name(),
                started.elapsed().as_secs_f64()
            );
            print_summary(&outcome.summary);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("tend: {} pass failed: {failure}", reconciler.name());
            ExitCode::FAILURE
        }
    }
}

fn print_summary(summary: &serde_json::Value) {
    let Some(fields) = summary.as_object() else {
        return;
    };
    for (key, value) in fields {
        let shown = match value {
            serde_json::Value::Array(items) if items.is_empty() => "none".to_owned(),
            serde_json::Value::Array(items) if items.len() > 3 => items
                .iter()
                .map(|item| {
                    format!(
                        "\n    {}",
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    )
                })
                .collect(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        println!("  {}: {shown}", key.replace('_', " "));
    }
}
