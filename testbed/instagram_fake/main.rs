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

#[path = "../common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;

use crate::fake::Fake;
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

    /// Base URL written into CDN links and paging links, such as the
    /// address of a proxy in front of the fake. Defaults to the listening
    /// address.
    #[arg(long)]
    public_url: Option<String>,
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
    serve::init_tracing();
    serve::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), String> {
    let (listener, address) = serve::bind(args.listen).await?;

    let ttl_seconds = i64::try_from(args.url_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let base_url = match &args.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{address}"),
    };
    let mut fake = Fake::new(base_url, ttl_seconds, args.calls_per_hour);
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
    let shutdown = serve::Shutdown::install()?;
    serve::announce(address)?;
    tracing::info!(%address, url_ttl = ?args.url_ttl, "Instagram fake started");
    serve::serve(listener, shutdown, move |request| {
        server::respond(Arc::clone(&fake), request)
    })
    .await;
    tracing::info!("Instagram fake stopped");
    Ok(())
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
