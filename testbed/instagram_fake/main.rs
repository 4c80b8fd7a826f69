//! `tend-instagram-fake`: an in-memory stand-in for the Instagram API with
//! Instagram Login (graph.instagram.com) and the Instagram CDN on one port.
//! It serves the account's media with field selection and cursor paging,
//! signs CDN URLs that expire, streams generated PNG images and MP4-looking
//! videos, refreshes tokens and injects Graph API errors.
//!
//! It prints `listening on http://ADDRESS` as its first line on stdout once
//! it accepts connections, logs to stderr, and exits on SIGTERM or SIGINT.

mod admin;
mod cdn;
mod content;
mod fake;
mod generate;
mod graph;
mod graph_error;
mod media;
mod paging;
mod png;
mod query;
mod render;
mod seed;
mod server;
mod time;
mod tokens;
mod usage;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::fake::Fake;
use crate::server::SharedFake;
use crate::tokens::{TOKEN_LIFETIME_SECONDS, TokenTimes};

#[derive(Debug, Parser)]
#[command(
    name = "tend-instagram-fake",
    about = "In-memory Instagram Graph API and CDN for tests and local runs"
)]
struct Args {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// JSON seed file with the account and its media:
    /// {"account": {"id", "username", "account_type"}, "media": [...]}, where
    /// "media" has the format `POST /_fake/media` accepts.
    #[arg(long)]
    seed: Option<PathBuf>,

    /// The access token the Graph API accepts at start. It counts as issued
    /// 30 days ago and expiring in 30 days, so it can be refreshed at once.
    #[arg(long, default_value = "IGAAtendfaketoken")]
    token: String,

    /// How long signed CDN URLs stay valid, such as 1h or 90s.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    url_ttl: Duration,

    /// Graph calls per rolling hour that make up 100% in the X-App-Usage
    /// header. The fake reports usage but never throttles by itself.
    #[arg(long, default_value_t = 200)]
    calls_per_hour: u32,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text)
        .map_err(|error| format!("invalid duration {text:?}: {error}"))?;
    if ttl.as_secs() == 0 {
        return Err(format!("invalid duration {text:?}: must be at least 1s"));
    }
    Ok(ttl)
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();

    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("failed to listen on {}: {error}", args.listen))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("failed to read the listening address: {error}"))?;

    let ttl_seconds = i64::try_from(args.url_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut fake = Fake::new(
        format!("http://{address}"),
        ttl_seconds,
        args.calls_per_hour,
    );
    let now = time::now();
    let issued = now - TOKEN_LIFETIME_SECONDS / 2;
    let times = TokenTimes {
        created_at: issued,
        expires_at: issued + TOKEN_LIFETIME_SECONDS,
    };
    fake.tokens.replace(&args.token, times);
    if let Some(path) = &args.seed {
        load_seed(&mut fake, path)?;
    }
    let fake = Arc::new(Mutex::new(fake));

    // The handlers are installed before the address is announced, so a
    // signal sent right after the announcement still stops the fake cleanly.
    let terminate = signal(SignalKind::terminate())
        .map_err(|error| format!("failed to install the SIGTERM handler: {error}"))?;
    let interrupt = signal(SignalKind::interrupt())
        .map_err(|error| format!("failed to install the SIGINT handler: {error}"))?;

    announce(address)?;
    tracing::info!(%address, url_ttl = ?args.url_ttl, "Instagram fake started");
    serve(listener, fake, terminate, interrupt).await;
    tracing::info!("Instagram fake stopped");
    Ok(())
}

/// Accepts connections until SIGTERM or SIGINT arrives.
async fn serve(
    listener: TcpListener,
    fake: SharedFake,
    mut terminate: Signal,
    mut interrupt: Signal,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(server::serve_connection(stream, Arc::clone(&fake)));
                }
                Err(error) => {
                    // Accept fails on transient conditions such as running
                    // out of file descriptors, so pause instead of spinning.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = terminate.recv() => return,
            _ = interrupt.recv() => return,
        }
    }
}

/// Prints the listening address as the first stdout line, which tests read
/// to learn the port.
fn announce(address: SocketAddr) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{address}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("failed to write the listening address to stdout: {error}"))
}

fn load_seed(fake: &mut Fake, path: &Path) -> Result<(), String> {
    let display_path = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("failed to read seed file {display_path}: {error}"))?;
    let seed: seed::SeedFile = serde_json::from_str(&text)
        .map_err(|error| format!("invalid seed file {display_path}: {error}"))?;

    let account = &mut fake.account;
    if let Some(id) = seed.account.id {
        seed::validate_id(&id)
            .map_err(|error| format!("invalid seed file {display_path}: account.id: {error}"))?;
        account.id = id;
    }
    account.username = seed.account.username.unwrap_or(account.username.clone());
    account.account_type = (seed.account.account_type).unwrap_or(account.account_type.clone());

    let posts = seed::parse_media(&seed.media, &fake.reserved_ids())
        .map_err(|error| format!("invalid seed file {display_path}: {error}"))?;
    tracing::info!(path = %display_path, posts = posts.len(), "loaded seed");
    fake.library.replace(posts);
    Ok(())
}
