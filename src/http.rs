//! The HTTP port. Every endpoint is a GET:
//!
//! - `/metrics`: Prometheus text format.
//! - `/healthz`: liveness. 200 unless a loop is wedged (a pass running far
//!   past its timeout) or stopped while tend is not shutting down. It never
//!   waits on a pass or a dependency, so a slow first pass cannot fail it.
//! - `/readyz`: readiness. 200 once every enabled loop has finished a
//!   successful pass and Redis answers; otherwise 503 with one reason a line.
//! - `/status`: JSON per loop (state, last result and error, last success,
//!   next run, the last pass's summary) and dependency state. No secrets.
//!
//! Anything else gets 404, other methods 405.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::redis_client::Redis;
use crate::runtime::{LoopState, StatusBoard};

/// Bound on the Redis check behind `/readyz` and `/status`.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(1);

/// What the endpoints read.
pub struct HttpState {
    pub registry: Registry,
    pub board: StatusBoard,
    /// Redis, when an enabled loop needs it.
    pub redis: Option<Redis>,
    pub started: Instant,
    /// Cancelled on SIGTERM: readiness turns off and stopped loops are expected.
    pub shutdown: CancellationToken,
}

/// Serves requests on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%error, "accept failed");
                continue;
            }
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, &request).await) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Keep-alive scrapers would hold connections open forever.
    connections.shutdown().await;
}

async fn route(state: &HttpState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => metrics(state),
        "/healthz" => healthz(state),
        "/readyz" => readyz(state).await,
        "/status" => status(state).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; endpoints: /metrics /healthz /readyz /status\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn metrics(state: &HttpState) -> Response<Full<Bytes>> {
    match crate::metrics::encode(&state.registry) {
        Ok(body) => {
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {error}\n"),
        ),
    }
}

fn healthz(state: &HttpState) -> Response<Full<Bytes>> {
    let now = Instant::now();
    let mut problems = Vec::new();
    for (name, status) in state.board.snapshot() {
        if let Some(reason) = status.wedged(now) {
            problems.push(format!("loop {name} is wedged: {reason}"));
        }
        if status.state == LoopState::Stopped && !state.shutdown.is_cancelled() {
            problems.push(format!("loop {name} stopped unexpectedly"));
        }
    }
    if problems.is_empty() {
        text(StatusCode::OK, "ok\n".to_owned())
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, lines(&problems))
    }
}

async fn redis_problem(state: &HttpState) -> Option<String> {
    let redis = state.redis.as_ref()?;
    match tokio::time::timeout(DEPENDENCY_TIMEOUT, redis.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!("redis is unreachable: {error}")),
        Err(_) => Some(format!(
            "redis did not answer PING within {}s",
            DEPENDENCY_TIMEOUT.as_secs()
        )),
    }
}

async fn readyz(state: &HttpState) -> Response<Full<Bytes>> {
    let mut problems = Vec::new();
    if state.shutdown.is_cancelled() {
        problems.push("shutting down".to_owned());
    }
    for (name, status) in state.board.snapshot() {
        if status.last_success_at.is_none() {
            let detail = match &status.last_error {
                Some(error) => format!("last error: {error}"),
                None => "first pass still running".to_owned(),
            };
            problems.push(format!(
                "loop {name} has not finished a successful pass yet ({detail})"
            ));
        }
    }
    problems.extend(redis_problem(state).await);
    if problems.is_empty() {
        text(StatusCode::OK, "ready\n".to_owned())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}", lines(&problems)),
        )
    }
}

fn lines(problems: &[String]) -> String {
    problems.iter().map(|p| format!("- {p}\n")).collect()
}

async fn status(state: &HttpState) -> Response<Full<Bytes>> {
    let redis = match (&state.redis, redis_problem(state).await) {
        (None, _) => json!("not used"),
        (Some(_), None) => json!("ok"),
        (Some(_), Some(problem)) => json!(problem),
    };
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "shutting_down": state.shutdown.is_cancelled(),
        "loops": state.board.snapshot(),
        "dependencies": { "redis": redis },
    });
    let mut response = text(StatusCode::OK, format!("{body:#}\n"));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
