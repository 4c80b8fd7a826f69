//! An HTTP/1.1 reverse proxy on 127.0.0.1 that injects faults between
//! tend and an HTTP peer, one decision per request:
//!
//! - reset the connection before forwarding, or after the peer has acted
//!   on the request (the client never learns the outcome);
//! - reply with the peer's own throttling error, without forwarding;
//! - reply with the peer's own 5xx error, before forwarding or after the
//!   peer has acted on the request;
//! - hold the request back for a while (independent of the above).
//!
//! Errors take the shape the real service documents, so tend's clients
//! classify them as they would in production: AWS JSON-protocol errors
//! (`__type`, as ECS and SQS send them), S3's XML errors, Ghost's
//! `{"errors": [...]}` and the Graph API's `{"error": {...}}`.
//!
//! The proxy rewrites `Host` to the peer's address, as a reverse proxy in
//! front of Ghost must (Ghost redirects requests for another host to its
//! configured URL).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The service behind the proxy, which decides the shape of injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// An AWS endpoint: JSON-protocol services (ECS, SQS) and S3.
    Aws,
    /// The Ghost Admin API.
    Ghost,
    /// The Instagram Graph API and its CDN.
    Instagram,
}

/// Per-request fault rates.
#[derive(Debug, Clone, Copy)]
pub struct HttpFaults {
    /// Chance that a request meets a fault: a reset, a throttling error or
    /// a 5xx, each kind about equally likely.
    pub error: f64,
    /// Chance that a request is held back for `latency` first.
    pub delay: f64,
    pub latency: Duration,
}

impl HttpFaults {
    /// `rate` of requests fail and as many are delayed by up to 100 ms.
    pub const fn at(rate: f64) -> Self {
        Self {
            error: rate,
            delay: rate,
            latency: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ResetBefore,
    ResetAfter,
    Throttle,
    ErrorBefore,
    ErrorAfter,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Throttle,
        Fault::ErrorBefore,
        Fault::ErrorAfter,
    ];
}

/// What the proxy did, for the tests' reports.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub requests: AtomicU64,
    pub resets: AtomicU64,
    pub throttled: AtomicU64,
    pub errors: AtomicU64,
    /// Faults injected after the peer had acted on the request.
    pub after_peer: AtomicU64,
    pub delayed: AtomicU64,
}

impl FaultCounts {
    pub fn summary(&self) -> String {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "{} requests: {} reset, {} throttled, {} 5xx ({} of these after the peer acted), {} delayed",
            read(&self.requests),
            read(&self.resets),
            read(&self.throttled),
            read(&self.errors),
            read(&self.after_peer),
            read(&self.delayed),
        )
    }

    /// Requests that met a reset, a throttling error or a 5xx.
    pub fn faults(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
            + self.throttled.load(Ordering::Relaxed)
            + self.errors.load(Ordering::Relaxed)
    }
}

struct State {
    peer: Peer,
    target: String,
    faults: HttpFaults,
    counts: Arc<FaultCounts>,
    client: reqwest::Client,
}

type ProxyBody = BoxBody<Bytes, std::io::Error>;

pub struct HttpFaultProxy {
    pub address: SocketAddr,
    pub counts: Arc<FaultCounts>,
    task: JoinHandle<()>,
}

impl HttpFaultProxy {
    /// Reserves a loopback port, for a peer that needs the proxy's address
    /// before it starts (the proxy then needs the peer's).
    pub async fn reserve() -> TcpListener {
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port")
    }

    /// Proxies a fresh loopback port to `target` (`http://host:port`).
    pub async fn start(target: &str, peer: Peer, faults: HttpFaults) -> Self {
        Self::start_on(Self::reserve().await, target, peer, faults)
    }

    /// Proxies `listener` to `target`.
    pub fn start_on(listener: TcpListener, target: &str, peer: Peer, faults: HttpFaults) -> Self {
        let address = listener.local_addr().unwrap();
        let counts = Arc::new(FaultCounts::default());
        let state = Arc::new(State {
            peer,
            target: target.trim_end_matches('/').to_owned(),
            faults,
            counts: counts.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(request, state.clone()));
                    // An injected reset ends the connection with an error.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            counts,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An error from the service makes hyper close the connection without a response.
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for InjectedReset {}

async fn handle(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<ProxyBody>, InjectedReset> {
    let counts = &state.counts;
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if fastrand::f64() < state.faults.delay {
        counts.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(state.faults.latency).await;
    }
    let fault =
        (fastrand::f64() < state.faults.error).then(|| fastrand::choice(Fault::ALL).unwrap());
    let kind = ErrorKind::of(state.peer, &request);
    match fault {
        Some(Fault::ResetBefore) => {
            counts.resets.fetch_add(1, Ordering::Relaxed);
            return Err(InjectedReset);
        }
        Some(Fault::Throttle) => {
            counts.throttled.fetch_add(1, Ordering::Relaxed);
            return Ok(kind.throttled());
        }
        Some(Fault::ErrorBefore) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(kind.server_error());
        }
        _ => {}
    }

    let Some(response) = forward(request, &state).await else {
        // The peer itself failed; the client sees the connection end.
        return Err(InjectedReset);
    };
    match fault {
        Some(Fault::ResetAfter) => {
            // Reads the whole response first, so the peer has finished acting.
            let _ = response.bytes().await;
            counts.resets.fetch_add(1, Ordering::Relaxed);
            counts.after_peer.fetch_add(1, Ordering::Relaxed);
            Err(InjectedReset)
        }
        Some(Fault::ErrorAfter) => {
            let _ = response.bytes().await;
            counts.errors.fetch_add(1, Ordering::Relaxed);
            counts.after_peer.fetch_add(1, Ordering::Relaxed);
            Ok(kind.server_error())
        }
        _ => Ok(relay(response)),
    }
}

/// Headers a proxy must not copy hop to hop, plus `Host`, which reqwest
/// sets from the target URL.
fn hop_by_hop(name: &hyper::header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "expect"
    )
}

/// Sends the request to the peer; None when the peer could not be reached.
async fn forward(request: Request<Incoming>, state: &State) -> Option<reqwest::Response> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outgoing = state
        .client
        .request(parts.method, format!("{}{path}", state.target))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing.send().await.ok()
}

/// Streams the peer's response back unchanged.
fn relay(response: reqwest::Response) -> Response<ProxyBody> {
    let mut builder = Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if !hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    let frames = response
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(std::io::Error::other);
    builder
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap()
}

/// The error vocabulary of the service a request is for.
#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    /// AWS JSON protocol (`X-Amz-Target`), as ECS and SQS speak it.
    AwsJson {
        ecs: bool,
    },
    /// S3's REST-XML errors.
    S3,
    Ghost,
    Graph,
    /// The Instagram CDN, whose errors are those of any HTTP cache.
    Cdn,
}

impl ErrorKind {
    fn of(peer: Peer, request: &Request<Incoming>) -> Self {
        match peer {
            Peer::Aws => match request.headers().get("x-amz-target") {
                Some(target) => ErrorKind::AwsJson {
                    ecs: target.as_bytes().starts_with(b"AmazonEC2ContainerService"),
                },
                None => ErrorKind::S3,
            },
            Peer::Ghost => ErrorKind::Ghost,
            Peer::Instagram if request.uri().path().starts_with("/cdn/") => ErrorKind::Cdn,
            Peer::Instagram => ErrorKind::Graph,
        }
    }

    /// Builds the service's throttling error response.
    fn throttled(self) -> Response<ProxyBody> {
        match self {
            // ECS and SQS both name throttling ThrottlingException; the
            // SDKs retry it with backoff.
            ErrorKind::AwsJson { .. } => aws_json(400, "ThrottlingException", "Rate exceeded"),
            ErrorKind::S3 => s3_xml(503, "SlowDown", "Please reduce your request rate."),
            ErrorKind::Ghost => ghost(
                429,
                "TooManyRequestsError",
                "Too many requests have been made. Please wait a moment and try again.",
            ),
            // Graph API code 4, application request limit, without usage
            // headers: the client must fall back to its own wait.
            ErrorKind::Graph => graph(403, 4, "(#4) Application request limit reached", true),
            ErrorKind::Cdn => plain(429, "Too Many Requests"),
        }
    }

    /// Builds the service's internal error response.
    fn server_error(self) -> Response<ProxyBody> {
        match self {
            ErrorKind::AwsJson { ecs: true } => aws_json(
                500,
                "ServerException",
                "The server encountered an internal error.",
            ),
            ErrorKind::AwsJson { ecs: false } => aws_json(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error.",
            ),
            ErrorKind::S3 => s3_xml(
                500,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
            ErrorKind::Ghost => ghost(
                500,
                "InternalServerError",
                "The server has encountered an error.",
            ),
            ErrorKind::Graph => graph(503, 2, "Service temporarily unavailable", true),
            ErrorKind::Cdn => plain(502, "Bad Gateway"),
        }
    }
}

fn respond(status: u16, content_type: &str, body: String) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {});
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id())
        .body(BodyExt::boxed(body))
        .unwrap()
}

fn request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn aws_json(status: u16, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    let mut response = respond(status, "application/x-amz-json-1.1", body);
    response
        .headers_mut()
        .insert("x-amzn-errortype", code.parse().unwrap());
    response
}

fn s3_xml(status: u16, code: &str, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{}</RequestId></Error>",
        request_id()
    );
    respond(status, "application/xml", body)
}

fn ghost(status: u16, kind: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"errors": [{
        "message": message, "context": null, "type": kind, "details": null,
        "property": null, "help": null, "code": null, "id": request_id(),
    }]})
    .to_string();
    respond(status, "application/json; charset=utf-8", body)
}

fn graph(status: u16, code: i64, message: &str, transient: bool) -> Response<ProxyBody> {
    let body = serde_json::json!({"error": {
        "message": message, "type": "OAuthException", "code": code,
        "is_transient": transient, "fbtrace_id": request_id(),
    }})
    .to_string();
    respond(status, "application/json; charset=UTF-8", body)
}

fn plain(status: u16, text: &str) -> Response<ProxyBody> {
    respond(status, "text/plain", text.to_owned())
}
