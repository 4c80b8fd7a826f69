//! Process and connection handling shared by `tend-ecs-fake` and
//! `tend-instagram-fake`: logging to stderr, the listening socket, the
//! `listening on http://ADDRESS` line that tests read, the HTTP/1 accept
//! loop and the stop on SIGTERM or SIGINT. Each fake passes its own request
//! handler. Both binaries include this file with `#[path]`.

use std::convert::Infallible;
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Sends log lines to stderr, filtered by `RUST_LOG` or at `info` without
/// it, because stdout carries only the listening address.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}

/// Logs the error that stopped the fake, if any, and returns the process
/// exit code.
pub fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the listening socket and returns it with the address it got, which
/// differs from `address` when that has port 0.
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| format!("failed to listen on {address}: {error}"))?;
    let local_address = listener
        .local_addr()
        .map_err(|error| format!("failed to read the listening address: {error}"))?;
    Ok((listener, local_address))
}

/// Handlers for SIGTERM and SIGINT, either of which stops `serve`.
pub struct Shutdown {
    terminate: Signal,
    interrupt: Signal,
}

impl Shutdown {
    pub fn install() -> Result<Self, String> {
        let terminate = signal(SignalKind::terminate())
            .map_err(|error| format!("failed to install the SIGTERM handler: {error}"))?;
        let interrupt = signal(SignalKind::interrupt())
            .map_err(|error| format!("failed to install the SIGINT handler: {error}"))?;
        Ok(Self {
            terminate,
            interrupt,
        })
    }
}

/// Prints the listening address as the first stdout line, which tests read
/// to learn the port.
pub fn announce(address: SocketAddr) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{address}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("failed to write the listening address to stdout: {error}"))
}

/// Accepts connections until SIGTERM or SIGINT arrives, and serves each one
/// on its own task, where `handler` builds the response to every request.
pub async fn serve<H, F, B>(listener: TcpListener, mut shutdown: Shutdown, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let service = service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // The task serves HTTP/1 requests on this connection
                    // until the client closes it.
                    let connection = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service.clone());
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Accept fails on transient conditions such as running
                    // out of file descriptors, so pause instead of spinning.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.terminate.recv() => return,
            _ = shutdown.interrupt.recv() => return,
        }
    }
}
