//! A TCP proxy on 127.0.0.1 that injects faults between tend and a peer
//! that speaks a request-reply protocol, such as Redis. Each burst the
//! client sends after a reply counts as one request. A request may be
//! delayed, or the proxy may close both sides of the connection, as a
//! reset or a crashed peer looks to the client. It closes them either
//! before the request reaches the peer, or after the peer has acted on it
//! and before the reply gets back. No installable fault proxy exists here,
//! so the tests carry this one. `http_fault_proxy` is its HTTP counterpart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Fault rates, each a probability per request.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Chance that a request ends the connection: half of these before the
    /// peer receives the request, half after it has acted on it.
    pub drop: f64,
    /// Chance that a request is held back for `latency` first.
    pub delay: f64,
    pub latency: Duration,
}

impl Faults {
    /// `rate` of requests end their connection and as many are delayed
    /// by 20 ms.
    pub const fn at(rate: f64) -> Self {
        Self {
            drop: rate,
            delay: rate,
            latency: Duration::from_millis(20),
        }
    }
}

pub struct FaultProxy {
    pub address: SocketAddr,
    /// Requests seen.
    pub requests: Arc<AtomicU64>,
    /// Connections ended by an injected fault.
    pub dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// State of one proxied connection, shared by its two directions.
struct Exchange {
    /// The next client burst starts a new request.
    fresh: AtomicBool,
    /// Drop the connection instead of relaying the peer's next reply.
    drop_reply: AtomicBool,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let counters = (requests.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = counters.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, faults, counters).await;
                    }
                });
            }
        });
        Self {
            address,
            requests,
            dropped,
            task,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests, {} connections dropped",
            self.requests.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed)
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both directions until either side closes or a fault hits.
async fn pipe(
    client: TcpStream,
    server: TcpStream,
    faults: Faults,
    (requests, dropped): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let exchange = Exchange {
        fresh: AtomicBool::new(true),
        drop_reply: AtomicBool::new(false),
    };
    let upstream = requests_to_peer(
        &mut client_read,
        &mut server_write,
        faults,
        &exchange,
        &requests,
    );
    let downstream = replies_to_client(&mut server_read, &mut client_write, &exchange);
    // Whichever direction ends first ends the connection.
    let faulted = tokio::select! {
        faulted = upstream => faulted,
        faulted = downstream => faulted,
    };
    if faulted {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies client bursts to the peer, deciding each request's fate at its
/// first burst; returns true when a fault ended the connection.
async fn requests_to_peer<R, W>(
    from: &mut R,
    to: &mut W,
    faults: Faults,
    exchange: &Exchange,
    requests: &AtomicU64,
) -> bool
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        if exchange.fresh.swap(false, Ordering::AcqRel) {
            requests.fetch_add(1, Ordering::Relaxed);
            if fastrand::f64() < faults.delay {
                tokio::time::sleep(faults.latency).await;
            }
            if fastrand::f64() < faults.drop {
                if fastrand::bool() {
                    return true;
                }
                exchange.drop_reply.store(true, Ordering::Release);
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return false;
        }
    }
}

/// Copies the peer's replies to the client; returns true when a fault
/// ended the connection.
async fn replies_to_client<R, W>(from: &mut R, to: &mut W, exchange: &Exchange) -> bool
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        if exchange.drop_reply.swap(false, Ordering::AcqRel) {
            return true;
        }
        exchange.fresh.store(true, Ordering::Release);
        if to.write_all(&buffer[..read]).await.is_err() {
            return false;
        }
    }
}

/// Parses `http://host:port` into a socket address.
pub fn address_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an http://IP:port URL")
}
