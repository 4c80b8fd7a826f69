//! One module per command; this one loads the configuration, sets up
//! logging and maps results to exit statuses.

mod capacity;
pub mod loops;
mod reconcile;
mod run;
mod submit;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};

/// Exit status for an invalid configuration (EX_USAGE from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

pub fn main(cli: Cli) -> ExitCode {
    let config = match Config::from_process(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tend: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Command::CheckConfig = cli.command {
        return check_config(&config);
    }
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tend: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run => run::run(config).await,
            Command::Reconcile {
                name,
                once,
                dry_run,
            } => reconcile::reconcile(config, name, once, dry_run).await,
            Command::Capacity {
                cluster,
                cpu,
                memory,
                max_age,
            } => capacity::capacity(config, cluster, cpu, memory, max_age).await,
            Command::Submit(args) => submit::submit(config, args).await,
            Command::Healthcheck { url } => healthcheck(&config, url).await,
            Command::CheckConfig => unreachable!("handled before the runtime starts"),
        }
    })
}

async fn healthcheck(config: &Config, url: Option<String>) -> ExitCode {
    let url =
        url.unwrap_or_else(|| format!("http://127.0.0.1:{}/healthz", config.http.listen.port()));
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("tend: cannot build the HTTP client: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            let status = response.status();
            eprintln!(
                "tend: {url} answered {status}: {}",
                response.text().await.unwrap_or_default().trim()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("tend: {url} did not answer: {}", error.without_url());
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: &Config) -> ExitCode {
    for warning in &config.warnings {
        eprintln!("tend: warning: {warning}");
    }
    println!("configuration is valid; effective values (secrets masked):");
    match serde_json::to_string_pretty(config) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("tend: cannot print the configuration: {error}"),
    }
    ExitCode::SUCCESS
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
